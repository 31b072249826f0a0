"""A run's directory: what may be written where, run.json and the data it was trained on.

A run writes nothing before every input is read and checked, and then only into a new or empty
directory, or one holding this same run's run.json alone; ``overwrite`` replaces another run or a
model, never files of the user's. run.json records the settings and the absolute paths, sizes and
SHA-256 of the input files, and is checksummed itself: ``--resume`` refuses anything else.
"""

from __future__ import annotations

import json
import os
import reprlib
import shutil
import stat

from ..errors import BpttError
from ..io.atomic import is_temporary
from ..io.modelfiles import (
    CHECKPOINT,
    CHECKPOINT_FILES,
    CHECKPOINT_OLD,
    CHECKPOINT_TMP_PREFIX,
    MODEL_FORMAT,
    file_checksum,
    load_document,
    save_document,
)
from ..models.tagger_network import TaggerConfig
from .config import TrainConfig, check_sizes

# ---------------------------------------------------------------------------------- the run's directory

RUN_FILE = "run.json"
RUN_FORMAT, RUN_FORMAT_VERSION = "bptt-run", 1
DATA_FILES = ("train", "dev", "embeddings")  # the fields of TrainConfig that name input files
MODEL_FILES = ("config.json", "vocab.json", "weights.safetensors")
# every name a run writes in its directory; their temporary files are ".NAME.*.tmp" (`bptt.io.atomic`)
# and "checkpoint.tmp-*" (`bptt.io.modelfiles`)
RUN_FILES = (
    RUN_FILE,
    *MODEL_FILES,
    "log.jsonl",
    "loss.png",
    "f1.png",
    "sample.json",
    "checkpoint",
    "checkpoint.old",
)


# kept by --overwrite, and no reason to refuse a directory: `bptt report DIR` writes DIR/report.html, a
# page the user asked for (describing the run it was made from); a new run never writes or deletes it
KEPT_FILES = ("report.html",)


def _leftover(name, files=RUN_FILES):
    """A temporary file of an interrupted write of a run: never anything of value."""
    if files is RUN_FILES and name.startswith(CHECKPOINT_TMP_PREFIX):
        return True
    return is_temporary(name, files)


def _checkpoint_dirs(names):
    """The names among ``names`` that a run deletes as a whole: its checkpoint directories."""
    return [n for n in names if n in (CHECKPOINT, CHECKPOINT_OLD) or n.startswith(CHECKPOINT_TMP_PREFIX)]


def check_checkpoint_dirs(out, names=None):
    """Refuse checkpoint directories in ``out`` holding anything a checkpoint never holds.

    A run replaces (and --overwrite deletes) checkpoint/, checkpoint.old/ and checkpoint.tmp-*/ as
    wholes: each must be a directory (not a link) of `CHECKPOINT_FILES` and their temporary files,
    so that a file the user put there is never deleted with it.
    """
    if names is None:
        try:
            names = os.listdir(out)
        except OSError as e:
            raise BpttError(f"{out}: cannot read the directory ({e.strerror})") from None
    for name in sorted(_checkpoint_dirs(names)):
        path = os.path.join(out, name)
        if os.path.islink(path) or not os.path.isdir(path):
            raise BpttError(
                f"{out}: holds files that are not a bptt run's ({name}: a checkpoint is a directory);"
                " choose a new or empty --out"
            )
        try:
            inside = os.listdir(path)
        except OSError as e:
            raise BpttError(f"{path}: cannot read the directory ({e.strerror})") from None
        foreign = sorted(
            n for n in inside if n not in CHECKPOINT_FILES and not _leftover(n, CHECKPOINT_FILES)
        )
        if foreign:
            shown = ", ".join(f"{name}/{n}" for n in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise BpttError(
                f"{out}: holds files that are not a bptt run's ({shown}); a checkpoint holds only"
                f" {' and '.join(CHECKPOINT_FILES)}: move them, or choose a new or empty --out"
            )


def check_out_dir(out, overwrite):
    """Refuse an ``out`` holding files a new run would replace, before any input is read.

    An empty or new directory is fine. Anything but a run's directory is refused even with
    ``overwrite``, which otherwise allows replacing a run or a trained model: a run's directory holds
    only names a run writes, and its run.json or config.json says it is bptt's (their "format"), so
    a user's own config.json or log.jsonl is never taken for one.
    Returns: True when ``out`` holds only a run.json, to be compared with the new run's once the data
    is read (`same_run`); False otherwise.
    """
    listed = list_out_dir(out)
    if listed is None:
        return False
    names = sorted(n for n in listed if not _leftover(n) and n not in KEPT_FILES)
    if not names and not _checkpoint_dirs(listed):
        return False
    foreign = [n for n in names if n not in RUN_FILES]
    if foreign or not _says_bptt(out):
        shown = ", ".join((foreign or names or listed)[:3]) + (", ..." if len(foreign or names) > 3 else "")
        raise BpttError(
            f"{out}: holds files that are not a bptt run's ({shown}); choose a new or empty --out"
        )
    check_checkpoint_dirs(out, listed)
    if overwrite:
        return False
    if any(n in MODEL_FILES for n in names):
        raise BpttError(f"{out}: holds a trained model; --overwrite replaces it, or choose another --out")
    if "checkpoint" in names or "checkpoint.old" in names:
        raise BpttError(
            f"{out}: holds an interrupted run; continue it with --resume {out}, or --overwrite starts again"
        )
    if names != [RUN_FILE]:
        raise BpttError(f"{out}: holds another run's {', '.join(names)}; --overwrite replaces them")
    return True


def list_out_dir(out):
    """The names in the output directory ``out``, or None when there is none; one line when ``out`` is not
    a directory or cannot be read."""
    if not os.path.lexists(out):
        return None
    if not os.path.isdir(out):
        raise BpttError(f"{out}: is not a directory (--out names the run's directory)")
    try:
        return os.listdir(out)
    except OSError as e:
        raise BpttError(f"{out}: cannot read the directory ({e.strerror})") from None


def _says_bptt(out):
    """Whether run.json or config.json in ``out`` says it is a bptt run's (its "format")."""
    for name, fmt in ((RUN_FILE, RUN_FORMAT), ("config.json", MODEL_FORMAT)):
        try:
            with open(os.path.join(out, name), "rb") as f:
                doc = json.loads(f.read(1 << 24))
        except (OSError, ValueError, RecursionError):  # missing, unreadable, not JSON
            continue
        if isinstance(doc, dict) and doc.get("format") == fmt:
            return True
    return False


def same_run(out, doc):
    """Whether ``out``/run.json holds ``doc``: the same settings and input files (paths and SHA-256).

    A directory holding only run.json is what a run leaves when it fails or is killed before its
    first epoch ends (SIGKILL; a power cut). When that run.json is this run's, running the same
    command again loses nothing, so it is allowed; any other run.json needs --overwrite.
    """
    try:
        return load_document(os.path.join(out, RUN_FILE), RUN_FORMAT, RUN_FORMAT_VERSION) == doc
    except BpttError:  # damaged, or another version's: not this run's
        return False


def start_run_dir(out, doc, overwrite):
    """Create ``out`` (with ``overwrite``: remove a previous run's files from it), then write run.json.

    run.json is replaced last, so an interruption in between leaves the previous run.json with some
    of its run's files: still one run's directory, never a mix of two runs.
    """
    try:
        os.makedirs(out, exist_ok=True)
        for name in os.listdir(out) if overwrite else ():
            if name != RUN_FILE and name not in KEPT_FILES and (name in RUN_FILES or _leftover(name)):
                path = os.path.join(out, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
    except OSError as e:
        raise BpttError(f"{out}: cannot prepare the output directory ({e.strerror or e})") from None
    save_document(os.path.join(out, RUN_FILE), RUN_FORMAT, RUN_FORMAT_VERSION, doc)


def check_regular_files(tcfg):
    """Refuse input files that are pipes, devices or sockets (``<(zcat train.gz)``, a named pipe).

    Training reads the training file more than once (vocabulary, then the data) and records every
    input's SHA-256 for --resume, which reads them again: a pipe would be drained, then wait forever.
    """
    for name in DATA_FILES:
        path = getattr(tcfg, name)
        try:
            st = os.stat(path) if path is not None else None
        except OSError:  # missing or unreadable: the reader says which
            continue
        if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
            raise BpttError(
                f"{path}: not a regular file (a pipe or device); --{name} must be a regular file: training"
                " reads it more than once and records its SHA-256 for --resume (decompress it to a file)"
            )


def data_checksums(tcfg):
    """``{field: {"sha256", "bytes"}}`` of each input file of the run (`DATA_FILES`)."""
    sums = {}
    for name in DATA_FILES:
        path = getattr(tcfg, name)
        if path is not None:
            try:
                sums[name] = file_checksum(path)
            except OSError as e:
                raise BpttError(f"{path}: cannot read: {e.strerror}") from None
    return sums


def read_run_file(out):
    """The settings of the run in ``out``, from its run.json: checksummed, every field checked.

    Returns: (TrainConfig, TaggerConfig, ``{field: {"sha256", "bytes"}}`` of its input files).
    """
    path = os.path.join(out, RUN_FILE)
    if not os.path.lexists(path):
        raise BpttError(f"{path}: no such file; --resume needs a directory written by bptt train")
    doc = load_document(path, RUN_FORMAT, RUN_FORMAT_VERSION)
    unknown = sorted(set(doc) - {"train", "model", "data"})
    if unknown:
        raise BpttError(f"{path}: unknown field {reprlib.repr(unknown[0])}")
    tcfg = TrainConfig.from_json(doc.get("train"), f"{path}: train")
    mcfg = TaggerConfig.from_json(doc.get("model"), f"{path}: model")
    check_sizes(mcfg, f"{path}: model")
    files = [n for n in DATA_FILES if getattr(tcfg, n) is not None]
    for name in files:
        if not os.path.isabs(getattr(tcfg, name)):
            raise BpttError(f"{path}: train.{name}: expected an absolute path, got {getattr(tcfg, name)!r}")
    data = doc.get("data")
    entry = {"sha256", "bytes"}
    if not (isinstance(data, dict) and sorted(data) == sorted(files)) or any(
        not (isinstance(data[n], dict) and set(data[n]) == entry) for n in files
    ):
        raise BpttError(f"{path}: data: expected the size and SHA-256 of each of {', '.join(files)}")
    return tcfg, mcfg, data


def check_data(tcfg, data):
    """Refuse input files that are not those the run started on (``data``: from `read_run_file`)."""
    changed = changed_file(tcfg, data, "the run was started on it")
    if changed:
        path, what = changed
        raise BpttError(
            f"{path}: changed since the run started ({what} differs); --resume continues only on the"
            " data the run started with: restore the file, or train a new run into another --out"
        )


def check_same_files(tcfg, data, rank):
    """Refuse input files that are not those process 0 read (``data``: its sizes and SHA-256): in a run
    on several processes each reads them itself, at the same paths."""
    changed = changed_file(tcfg, data, "process 0 read it")
    if changed:
        path, what = changed
        raise BpttError(
            f"{path}: differs from the file process 0 read ({what}); every process must read the same"
            f" files (this is process {rank})"
        )


def changed_file(tcfg, data, unreadable):
    """The first input file whose size or SHA-256 is not ``data``'s, as (path, "size" or "sha256"), or
    None; ``unreadable`` ends the error for a file that cannot be read."""
    for name, was in data.items():
        path = getattr(tcfg, name)
        try:
            now = file_checksum(path)
        except OSError as e:
            raise BpttError(f"{path}: cannot read ({e.strerror}); {unreadable}") from None
        if now != was:
            return path, "size" if now["bytes"] != was["bytes"] else "sha256"
    return None


# ---------------------------------------------------------------------------------- runs of other commands


def check_new_run_dir(out, settings_file, what):
    """A new run (of `bptt longrange`, `lm train`, `dates train`) writes only into a new or empty
    directory; one holding ``settings_file`` is ``what`` ("a long-range run"), to go on with --resume."""
    names = list_out_dir(out) or []
    if settings_file in names:
        raise BpttError(f"{out}: holds {what}; continue it with --resume {out}, or choose another --out")
    if names:
        shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
        raise BpttError(f"{out}: holds files ({shown}); choose a new or empty --out")


def read_run_document(out, settings_file, fmt, version, command, fields=("settings",)):
    """The checksummed settings document (``settings_file``) of the run of ``command`` in ``out``, which
    must hold exactly ``fields``. Errors are one line naming the directory or the file."""
    path = os.path.join(out, settings_file)
    if not os.path.isdir(out):
        raise BpttError(f"{out}: no such directory; --resume needs a directory written by {command}")
    if not os.path.lexists(path):
        raise BpttError(f"{path}: no such file; --resume needs a directory written by {command}")
    doc = load_document(path, fmt, version)
    unknown = sorted(set(doc) - set(fields))
    if unknown:
        raise BpttError(f"{path}: unknown field {unknown[0]!r}")
    missing = [f for f in fields if f not in doc]
    if missing:
        raise BpttError(f"{path}: missing the field {missing[0]!r}")
    return doc, path
