"""Model directories and training checkpoints: safetensors + JSON, written atomically, checked on load.

A model directory (written by training, read by tagging)::

    model/
      weights.safetensors   the parameters (`bptt.io.safetensors_io`)
      vocab.json            the vocabularies
      config.json           written last: "format": "bptt-model", "format_version", "bptt_version",
                            the hyper-parameters (the caller's config), "checksums" {file: {"sha256":
                            hex, "bytes": n}} of the two files above, and "self_sha256"

A training checkpoint, for ``--resume``, lives inside it::

    model/checkpoint/
      arrays.safetensors    parameters and optimizer moments, dtypes bit for bit
      state.json            "format": "bptt-checkpoint", "format_version", "bptt_version", "checksums"
                            of arrays.safetensors, "state" (epoch, step, RNG state, ...), "self_sha256"

"self_sha256" is the SHA-256 of the rest of its file in canonical JSON (sorted keys, no spaces, UTF-8),
so a flipped digit in a hyper-parameter or an epoch counter is caught like a flipped weight.
It catches accidents, not intent (anyone can recompute it): so `load_model_dir` also checks the
tensors the config implies (its ``expect``) against the weight file's header before reading any.

Nothing here unpickles or evaluates. Every file name is a constant of this module: none is ever read
from a file, so a crafted config cannot point a load anywhere else, and a symbolic link leading out of
the directory is refused. Loading checks presence, size and SHA-256 of each file before parsing it.

Atomicity. Every file is written by `bptt.io.atomic` (a temporary name in its own directory, renamed
over its target): readers see the old file or the new, never half of one. Overwriting a model directory
replaces its files one by one, config.json last; a crash in between leaves checksums that do not
match, reported as a corrupt directory, never a silent mix.
A checkpoint is replaced as a whole directory:

    1. write checkpoint.tmp-XXXX/ completely (each file fsynced, then the directory);
    2. if checkpoint/ exists: delete checkpoint.old/ if any, then rename checkpoint/ -> checkpoint.old/;
    3. rename checkpoint.tmp-XXXX/ -> checkpoint/;
    4. delete checkpoint.old/.

checkpoint/ only ever appears by renaming a complete directory, and checkpoint.old/ is only deleted
while checkpoint/ exists. So a SIGKILL at any moment leaves checkpoint/ complete, or (killed between
2 and 3) no checkpoint/ and a complete checkpoint.old/; `load_checkpoint` reads checkpoint/, falling
back to checkpoint.old/. One process saves a given checkpoint at a time.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
import warnings

import numpy as np

from .. import faults
from ..errors import BpttError
from .atomic import atomic_write, fsync_dir, umask
from .safetensors_io import open_regular, parse_json, read_safetensors, save_safetensors

MODEL_FORMAT = "bptt-model"
MODEL_FORMAT_VERSION = 1  # the newest model format this code reads and the one it writes
CHECKPOINT_FORMAT = "bptt-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1

CONFIG, VOCAB, WEIGHTS = "config.json", "vocab.json", "weights.safetensors"
CHECKPOINT, STATE, ARRAYS = "checkpoint", "state.json", "arrays.safetensors"
_OLD, _TMP_PREFIX = "checkpoint.old", "checkpoint.tmp-"
CHECKPOINT_OLD, CHECKPOINT_TMP_PREFIX = _OLD, _TMP_PREFIX  # a save's previous and unfinished directories
CHECKPOINT_FILES = (ARRAYS, STATE)  # every name a checkpoint directory holds (besides their temporary files)
_RESERVED = ("format", "format_version", "bptt_version", "checksums", "self_sha256")  # not the caller's
_MAX_CONFIG_BYTES = 16 * 2**20  # config.json and state.json hold hyper-parameters and counters, not data


# ---------------------------------------------------------------------------------------- model directories


def save_model_dir(directory, arrays, config, vocab):
    """Write a model directory: weights.safetensors, vocab.json, then config.json with their checksums.

    arrays: name -> NumPy array. config: JSON-serialisable hyper-parameters (not using the keys
    format, format_version, bptt_version, checksums, self_sha256). vocab: JSON-serialisable vocabularies.
    Returns: None.
    """
    label = os.fspath(directory)
    if not isinstance(config, dict):
        raise BpttError(f"config: expected a dict, got {type(config).__name__}")
    taken = [k for k in _RESERVED if k in config]
    if taken:
        raise BpttError(f"config: the key {taken[0]!r} is reserved for the file format")
    _check_json("config", config)
    vocab_text = _json_text("vocab", vocab).encode("utf-8")
    _makedirs(label)
    weights = os.path.join(label, WEIGHTS)
    save_safetensors(weights, arrays)
    atomic_write(os.path.join(label, VOCAB), vocab_text)
    doc = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "bptt_version": _bptt_version(),
        **config,
        "checksums": {WEIGHTS: _file_checksum(weights), VOCAB: _checksum(vocab_text)},
    }
    atomic_write(os.path.join(label, CONFIG), _manifest("config", doc, indent=2))


def load_model_dir(directory, expect=None):
    """Read and verify a model directory written by `save_model_dir`.

    expect: optional ``expect(config, vocab)`` returning the ``(name, shape)`` of every tensor the
    weights must hold (e.g. a generator). It is called once config.json and vocab.json are verified
    and parsed, and checked against the weight file's header before any tensor is allocated: a
    re-signed config.json cannot make loading cost more than the files hold.
    Returns: ``(arrays, config, vocab)``: name -> array, and the config and vocab as saved
    (tuples come back as lists; config without the format keys).
    """
    label = os.fspath(directory)
    root = _root(label, "model directory")
    doc, checksums = _read_manifest(root, label, CONFIG, MODEL_FORMAT, MODEL_FORMAT_VERSION, (WEIGHTS, VOCAB))
    with _open_member(root, label, VOCAB) as f:
        raw = _read_verified(f, label, VOCAB, CONFIG, checksums[VOCAB])
    vocab = parse_json(raw, os.path.join(label, VOCAB))
    config = {k: v for k, v in doc.items() if k not in _RESERVED}
    shapes = None if expect is None else expect(config, vocab)
    arrays = _load_weights(root, label, WEIGHTS, CONFIG, checksums[WEIGHTS], shapes)
    return arrays, config, vocab


# ---------------------------------------------------------------------------------------------- checkpoints


def save_checkpoint(directory, arrays, state):
    """Replace ``directory/checkpoint/`` as a whole, so a crash leaves the old or the new one loadable.

    arrays: name -> NumPy array (parameters, optimizer moments); saved bit for bit.
    state: JSON-serialisable dict (epoch, step, RNG state, counters, best F1, ...).
    Returns: None.
    """
    label = os.fspath(directory)
    if not isinstance(state, dict):
        raise BpttError(f"state: expected a dict, got {type(state).__name__}")
    _check_json("state", state)
    _makedirs(label)
    final, old = os.path.join(label, CHECKPOINT), os.path.join(label, _OLD)
    for stale in glob.glob(os.path.join(glob.escape(label), _TMP_PREFIX + "*")):  # left by a killed save
        shutil.rmtree(stale, ignore_errors=True)
    try:
        tmp = tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=label)
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes 0700; give what mkdir would
    except OSError as e:
        raise BpttError(f"{label}: cannot write: {e.strerror or e}") from None
    try:
        arrays_path = os.path.join(tmp, ARRAYS)
        save_safetensors(arrays_path, arrays)
        doc = {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "bptt_version": _bptt_version(),
            "checksums": {ARRAYS: _file_checksum(arrays_path)},
            "state": state,
        }
        atomic_write(os.path.join(tmp, STATE), _manifest("state", doc, indent=1))
        fsync_dir(tmp)  # 1. the new checkpoint is complete on disk
        if os.path.lexists(final):
            if os.path.lexists(old):
                shutil.rmtree(old)  # safe: checkpoint/ is complete
            os.replace(final, old)  # 2.
            fsync_dir(label)
            faults.point("checkpoint:swap")
        os.replace(tmp, final)  # 3.
        fsync_dir(label)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BpttError(f"{final}: cannot write: {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)  # 4. (a failure here is retried by the next save)


def load_checkpoint(directory):
    """Read the checkpoint saved by `save_checkpoint` in ``directory``.

    Falls back to the previous checkpoint (with a warning) when the newest is corrupt.
    Returns: ``(arrays, state)``, or None when ``directory`` holds no checkpoint.
    """
    label = os.fspath(directory)
    if not os.path.exists(label):
        return None
    root = _root(label, "directory")
    final, old = os.path.join(root, CHECKPOINT), os.path.join(root, _OLD)
    if os.path.lexists(final):
        try:
            return _load_checkpoint_dir(root, label, CHECKPOINT)
        except BpttError as error:
            if not os.path.lexists(old):
                raise
            try:
                result = _load_checkpoint_dir(root, label, _OLD)
            except BpttError:
                raise error from None
            warnings.warn(f"{error}; resuming from the previous checkpoint instead", stacklevel=2)
            return result
    if os.path.lexists(old):  # killed between steps 2 and 3 of a save
        return _load_checkpoint_dir(root, label, _OLD)
    return None


def _load_checkpoint_dir(root, label, name):
    sub = _inside(root, os.path.join(label, name), os.path.join(root, name))
    sub_label = os.path.join(label, name)
    if not os.path.isdir(sub):
        raise BpttError(f"{sub_label}: is not a directory")
    doc, checksums = _read_manifest(
        sub, sub_label, STATE, CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, (ARRAYS,)
    )
    state = doc.get("state")
    if not isinstance(state, dict):
        raise BpttError(f"{os.path.join(sub_label, STATE)}: expected a 'state' object")
    return _load_weights(sub, sub_label, ARRAYS, STATE, checksums[ARRAYS]), state


# ------------------------------------------------------------------------------------- self-checked files


def save_document(path, fmt, version, content):
    """Write ``content`` (a dict) as a JSON file that checks itself, as config.json and state.json do.

    The file holds "format": fmt, "format_version": version, "bptt_version", the keys of
    ``content``, empty "checksums" and, last, "self_sha256"; it is written atomically.
    Returns: None.
    """
    label = os.fspath(path)
    taken = [k for k in _RESERVED if k in content]
    if taken:
        raise BpttError(f"{label}: the key {taken[0]!r} is reserved for the file format")
    doc = {
        "format": fmt,
        "format_version": version,
        "bptt_version": _bptt_version(),
        **content,
        "checksums": {},
    }
    atomic_write(label, _manifest(label, doc, indent=1))


def load_document(path, fmt, version):
    """Read a file written by `save_document`, checking its format, version and self_sha256.

    Returns: its content (without the format keys).
    """
    directory, name = os.path.split(os.fspath(path))
    doc, _ = _read_manifest(_root(directory or ".", "directory"), directory, name, fmt, version, ())
    return {k: v for k, v in doc.items() if k not in _RESERVED}


def file_checksum(path):
    """``{"sha256": hex, "bytes": n}`` of a file, as the manifests record them (OSError if unreadable)."""
    return _file_checksum(path)


# ------------------------------------------------------------------------------------------- shared checks


def _root(label, what):
    """The real path of the directory ``label``, checked to be one."""
    if not os.path.exists(label):
        raise BpttError(f"{label}: no such {what}")
    if not os.path.isdir(label):
        raise BpttError(f"{label}: is not a directory (expected a {what})")
    if not os.access(label, os.R_OK | os.X_OK):  # mode 000, or another user's: say so, not "missing"
        raise BpttError(f"{label}: permission denied (cannot read the {what})")
    return os.path.realpath(label)


def _inside(root, label, path):
    """The real path of ``path``, refusing a symbolic link that leads outside ``root``."""
    real = os.path.realpath(path)
    try:
        inside = os.path.commonpath([real, root]) == root
    except ValueError:  # another drive
        inside = False
    if not inside:
        raise BpttError(
            f"{label}: is a symbolic link to {real}, outside {os.path.dirname(label) or '.'}; refusing it"
        )
    return real


def _open_member(root, label, name):
    """Open the file ``name`` of the directory ``root`` (shown as ``label``); errors name the file."""
    file = os.path.join(label, name)
    path = os.path.join(root, name)
    try:
        os.lstat(path)
    except FileNotFoundError:
        raise BpttError(f"{file}: missing (incomplete or damaged directory)") from None
    except OSError as e:  # a directory we may not search: the file may well be there
        raise BpttError(f"{file}: cannot read: {e.strerror or e}") from None
    return open_regular(_inside(root, file, path), file)


def _read_manifest(root, label, name, fmt, version, files):
    """Read the JSON file ``name`` that describes a directory; check its format and its checksums."""
    file = os.path.join(label, name)
    with _open_member(root, label, name) as f:
        size = os.fstat(f.fileno()).st_size
        if size > _MAX_CONFIG_BYTES:
            raise BpttError(f"{file}: {size} bytes, too large for a {fmt} description")
        doc = parse_json(f.read(size + 1), file)  # not f.read(_MAX_CONFIG_BYTES): 16 MB at once
    if not isinstance(doc, dict):
        raise BpttError(f"{file}: expected a JSON object, got {type(doc).__name__}")
    if doc.get("format") != fmt:
        raise BpttError(f"{file}: not a {fmt} file (its format is {doc.get('format')!r}, expected {fmt!r})")
    found = doc.get("format_version")
    if not isinstance(found, int) or isinstance(found, bool) or found < 1:
        raise BpttError(f"{file}: format_version must be a positive integer, got {found!r}")
    if found > version:
        raise BpttError(
            f"{file}: format_version {found} is newer than this bptt supports ({version}); upgrade bptt"
        )
    digest = doc.pop("self_sha256", None)
    if not _is_sha256(digest) or hashlib.sha256(_canonical(doc, file)).hexdigest() != digest:
        raise BpttError(f"{file}: does not match its self_sha256 (the file is corrupted, or was edited)")
    checksums = doc.get("checksums")
    if not isinstance(checksums, dict):
        raise BpttError(f"{file}: expected 'checksums', an object of file name -> {{sha256, bytes}}")
    for key, entry in checksums.items():
        if key not in files:
            raise BpttError(
                f"{file}: checksums name an unexpected file {key!r} (expected only {', '.join(files)})"
            )
        n = entry.get("bytes") if isinstance(entry, dict) else None
        ok = isinstance(n, int) and not isinstance(n, bool) and n >= 0 and _is_sha256(entry.get("sha256"))
        if not ok or len(entry) != 2:
            raise BpttError(f'{file}: checksums of {key!r} must be {{"sha256": 64 hex digits, "bytes": n}}')
    for key in files:
        if key not in checksums:
            raise BpttError(f"{file}: checksums lack an entry for {key!r}")
    return doc, checksums


def _read_verified(f, label, name, manifest, expect, keep=True):
    """Check the open file's size and SHA-256 against ``expect``; return its bytes when ``keep``."""
    file = os.path.join(label, name)
    size = os.fstat(f.fileno()).st_size
    if size != expect["bytes"]:
        raise BpttError(
            f"{file}: {size} bytes but {manifest} records {expect['bytes']} (truncated or replaced)"
        )
    h, chunks = hashlib.sha256(), []
    while chunk := f.read(1 << 20):
        h.update(chunk)
        if keep:
            chunks.append(chunk)
    if h.hexdigest() != expect["sha256"]:
        raise BpttError(f"{file}: SHA-256 does not match {manifest} (corrupted, or changed after saving)")
    return b"".join(chunks) if keep else None


def _load_weights(root, label, name, manifest, checksum, shapes=None):
    with _open_member(root, label, name) as f:
        _read_verified(f, label, name, manifest, checksum, keep=False)
        f.seek(0)
        arrays, _ = read_safetensors(f, os.path.join(label, name), max_bytes=checksum["bytes"], expect=shapes)
    return arrays


def _json_text(name, value, **dumps):
    """``value`` as strict JSON text, checked first to read back as it is (errors name the path)."""
    _check_json(name, value)
    return json.dumps(value, ensure_ascii=False, allow_nan=False, default=_item, **dumps)


def _manifest(name, doc, indent):
    """The bytes of a JSON file holding ``doc`` and, last, its "self_sha256"."""
    _check_json(name, doc)
    doc = {**doc, "self_sha256": hashlib.sha256(_canonical(doc, name)).hexdigest()}
    return (_json_text(name, doc, indent=indent) + "\n").encode("utf-8")


def _canonical(doc, where):
    """One spelling of a JSON value: sorted keys, no spaces, UTF-8 (keeping a crafted lone surrogate)."""
    try:
        text = json.dumps(
            doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_item
        )
    except (RecursionError, ValueError):
        raise BpttError(f"{where}: nests too deeply") from None
    return text.encode("utf-8", "surrogatepass")


def _item(value):
    return value.item()  # a NumPy scalar, already checked by _check_json


def _check_json(path, value):
    if value is None or isinstance(value, (bool, np.bool_)):
        return
    if isinstance(value, (int, np.integer)):
        return
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            raise BpttError(f"{path}: {value} is not valid JSON (store None instead)")
        return
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BpttError(f"{path}: holds a lone surrogate, not encodable as UTF-8") from None
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_json(f"{path}[{i}]", v)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise BpttError(f"{path}: key {k!r} is not a string (JSON would turn it into one)")
            _check_json(f"{path}[{k!r}]", v)
        return
    raise BpttError(f"{path}: {type(value).__name__} is not JSON-serialisable")


def _checksum(data):
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _file_checksum(path):
    h, n = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
    return {"sha256": h.hexdigest(), "bytes": n}


def _is_sha256(value):
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _makedirs(label):
    try:
        os.makedirs(label, exist_ok=True)
    except OSError as e:
        raise BpttError(f"{label}: cannot create the directory: {e.strerror or e}") from None


def _bptt_version():
    from .. import __version__  # here, not at the top: the package may import this module first

    return __version__


def check_weights(path, params, shapes):
    """Weights loaded from ``path`` are exactly ``shapes`` (name -> shape), finite, nothing else."""
    for k, shape in shapes.items():
        if k not in params or params[k].shape != tuple(shape):
            got = "missing" if k not in params else list(params[k].shape)
            raise BpttError(f"{path}: {k} is {got}, expected {list(shape)}")
        if not np.isfinite(params[k]).all():
            raise BpttError(f"{path}: {k} holds NaN or infinity")
    extra = sorted(set(params) - set(shapes))
    if extra:
        raise BpttError(f"{path}: unexpected array {extra[0]!r}")
