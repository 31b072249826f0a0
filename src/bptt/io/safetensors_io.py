"""The safetensors format, written and read with NumPy alone (no pickle, no eval, no dependency).

A file has three parts (https://github.com/huggingface/safetensors):

    [8 bytes]  N, the length of the header: unsigned 64-bit little-endian
    [N bytes]  the header: UTF-8 JSON, padded with spaces to a multiple of 8 bytes,
               {"__metadata__": {str: str},                        (optional)
                name: {"dtype": "F32", "shape": [n_a, n_x], "data_offsets": [begin, end]}, ...}
    [the rest] the data: tensor `name` is bytes [begin, end) of it, little-endian, C order

Writing gives the reference implementation's bytes exactly: tensors ordered by dtype, widest first
(the reference's dtype order, ``DTYPES`` below, reversed), then by name, so each one starts aligned to
its item size. (Sorting by name alone would misalign an F64 placed after a BOOL.)

Reading trusts nothing. The whole header is checked against the file size before a byte of tensor
memory is allocated: known dtypes, shapes of non-negative integers whose byte count equals the span
of their offsets, tensors tiling the data exactly (no overlap, no gap, no trailing bytes), names of
printable characters. So a crafted file can neither run code nor make the reader allocate more than
the file itself holds; it fails with a one-line `BpttError` naming the file.

A model file that stands alone (a language or date model: no config.json beside it holding checksums)
is written with ``digest=True``: its metadata then holds ``tensors_sha256``, a SHA-256 over the other
metadata and every tensor's name, dtype, shape and bytes, and reading checks it, so a damaged byte is an
error instead of slightly wrong weights. Other safetensors readers ignore the key.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import struct
from collections.abc import Mapping

import numpy as np

from ..errors import BpttError
from .atomic import atomic_open

MAX_HEADER_BYTES = 100_000_000  # the reference implementation's limit on N
MAX_NDIM = 32  # NumPy 1.x's limit on dimensions

# safetensors dtype -> NumPy dtype (little-endian), in the order of the reference's `Dtype` enum
DTYPES = {
    "BOOL": np.dtype("?"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "I16": np.dtype("<i2"),
    "U16": np.dtype("<u2"),
    "F16": np.dtype("<f2"),
    "I32": np.dtype("<i4"),
    "U32": np.dtype("<u4"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "U64": np.dtype("<u8"),
}
DIGEST = "tensors_sha256"  # the metadata key of a file's own checksum (``digest=True``)
_RANK = {code: i for i, code in enumerate(DTYPES)}
_CODE = {(dt.kind, dt.itemsize): code for code, dt in DTYPES.items()}
_ENTRY_KEYS = ("dtype", "shape", "data_offsets")


def save_safetensors(path, arrays, metadata=None, digest=False):
    """Write ``arrays`` (name -> NumPy array) to ``path`` as safetensors, atomically.

    metadata: optional ``{str: str}``, stored as the header's ``__metadata__``; with ``digest`` it gets
    the file's checksum as well (``tensors_sha256``), checked by every read.
    Returns: None. The file holds the bytes the reference ``safetensors.numpy.save_file`` writes.
    """
    if digest:
        metadata = {**(metadata or {}), DIGEST: content_digest(arrays, metadata or {})}
    _path(path)
    header, tensors = _layout(arrays, metadata)
    with atomic_open(path) as f:
        f.write(header)
        for a in tensors:
            f.write(a.reshape(-1).view(np.uint8))  # (nbytes,) view, no copy


def _path(path):
    """``path`` as a string (a str or path-like), else one line naming the argument."""
    try:
        return os.fsdecode(os.fspath(path))
    except TypeError:
        raise BpttError(f"path: expected a file path, got {type(path).__name__}") from None


def _layout(arrays, metadata):
    """Check the arguments; return the 8-byte length + padded header, and the arrays in data order."""
    if not isinstance(arrays, Mapping):
        raise BpttError(f"arrays: expected a dict of name -> array, got {type(arrays).__name__}")
    entries = []
    for name, a in arrays.items():
        if not _good_name(name):
            raise BpttError(
                f"arrays: tensor name {name!r} must be a non-empty string of printable characters"
            )
        if not isinstance(a, (np.ndarray, np.generic)):
            raise BpttError(f"arrays[{name!r}]: expected a NumPy array, got {type(a).__name__}")
        code = _CODE.get((a.dtype.kind, a.dtype.itemsize))
        if code is None:
            raise BpttError(
                f"arrays[{name!r}]: dtype {a.dtype} has no safetensors equivalent"
                f" (supported: {', '.join(str(dt) for dt in DTYPES.values())})"
            )
        entries.append((name, code, np.asarray(a, dtype=DTYPES[code], order="C")))
    entries.sort(key=lambda e: (-_RANK[e[1]], e[0]))
    header = {} if metadata is None else {"__metadata__": _check_metadata("metadata", metadata)}
    offset = 0
    for name, code, a in entries:
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # pad to 8 bytes with spaces, as the reference does
    return struct.pack("<Q", len(text)) + text, [a for _, _, a in entries]


def content_digest(arrays, metadata):
    """SHA-256 (hex) over ``metadata`` but its own key and each array's name, dtype, shape and bytes."""
    h = hashlib.sha256(
        json.dumps({k: v for k, v in metadata.items() if k != DIGEST}, sort_keys=True).encode()
    )
    for name in sorted(arrays):
        a = np.asarray(arrays[name])
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))  # the bytes as the file holds them
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
        h.update(a.reshape(-1).view(np.uint8))
    return h.hexdigest()


def load_safetensors(path, *, max_bytes=None):
    """Read a safetensors file, checking all of its header before allocating any tensor.

    max_bytes: refuse a file whose tensors need more than this many bytes in all.
    Returns: ``(arrays, metadata)``: name -> array (sorted by name, native byte order, C order)
    and the header's ``__metadata__`` (``{}`` when absent).
    """
    label = _path(path)
    with open_regular(path, label) as f:
        return read_safetensors(f, label, max_bytes=max_bytes)


def open_regular(path, label):
    """Open ``path`` for binary reading, refusing anything but a regular file.

    (A FIFO would block the reader and a device never end.) Errors name ``label``.
    Returns: an unbuffered binary file object.
    """
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise BpttError(f"{label}: no such file") from None
    except OSError as e:
        raise BpttError(f"{label}: cannot open: {e.strerror or e}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise BpttError(f"{label}: is {what}, expected a file")
    return os.fdopen(fd, "rb", buffering=0)


def read_safetensors(f, label, *, max_bytes=None, expect=None):
    """Read safetensors from the start of the open binary file ``f``; errors name ``label``.

    expect: optional iterable of ``(name, shape)``: the tensors the file must hold, no more, no
    fewer, checked against the header before any tensor is allocated (and consumed only until
    the first difference, so it may be a generator over a crafted, huge description).
    Returns: ``(arrays, metadata)`` as `load_safetensors`.
    """
    try:
        size = os.fstat(f.fileno()).st_size
        return _read(f, size, label, max_bytes, expect)
    except OSError as e:
        raise BpttError(f"{label}: cannot read: {e.strerror or e}") from None


def _read(f, size, label, max_bytes, expect=None):
    if size < 8:
        raise BpttError(
            f"{label}: not a safetensors file ({size} bytes, fewer than the 8 of its header length)"
        )
    (n,) = struct.unpack("<Q", _read_exact(f, 8, label))
    if n > MAX_HEADER_BYTES:
        raise BpttError(
            f"{label}: not a safetensors file"
            f" (declares a {n}-byte header, over the {MAX_HEADER_BYTES} allowed)"
        )
    if n > size - 8:
        raise BpttError(
            f"{label}: declares a {n}-byte header but only {size - 8} bytes follow"
            " (truncated, or not a safetensors file)"
        )
    data_len = size - 8 - n
    if max_bytes is not None and data_len > max_bytes:
        raise BpttError(f"{label}: holds {data_len} bytes of tensor data, over the {max_bytes} allowed")
    tensors, metadata = _parse_header(_read_exact(f, n, label), data_len, label)
    if expect is not None:
        _check_expected(tensors, expect, label)
    arrays = {}
    for _, _, name, code, shape in tensors:  # in data order: one sequential read
        a = np.empty(shape, dtype=DTYPES[code])  # bytes checked against the file size: bounded
        if a.nbytes:
            _read_exact(f, a.nbytes, label, into=a.reshape(-1).view(np.uint8))
        if code == "BOOL" and a.size and a.view(np.uint8).max() > 1:
            raise BpttError(f"{label}: tensor {name!r} is BOOL but holds bytes other than 0 and 1")
        arrays[name] = a.astype(a.dtype.newbyteorder("="), copy=False)  # native order (a no-op on x86/ARM)
    if DIGEST in metadata and metadata[DIGEST] != content_digest(arrays, metadata):
        raise BpttError(
            f"{label}: its tensors or metadata differ from when it was written ({DIGEST} does not match):"
            " the file is damaged"
        )
    return dict(sorted(arrays.items())), metadata


def _parse_header(raw, data_len, label):
    """Check the header against the data length.

    Returns: ``[(begin, end, name, code, shape)]`` in data order, and the metadata.
    """
    header = parse_json(raw, f"{label}: header")
    if not isinstance(header, dict):
        raise BpttError(f"{label}: header is a JSON {type(header).__name__}, expected an object")
    metadata = header.pop("__metadata__", None)
    metadata = {} if metadata is None else _check_metadata(f"{label}: __metadata__", metadata)
    tensors = []
    for name, entry in header.items():
        if not _good_name(name):
            raise BpttError(f"{label}: tensor name {name!r} is empty or holds control characters")
        where = f"{label}: tensor {name!r}"
        if not isinstance(entry, dict) or sorted(entry) != sorted(_ENTRY_KEYS):
            raise BpttError(f"{where} must be an object with exactly the keys {', '.join(_ENTRY_KEYS)}")
        code, shape, offsets = (entry[k] for k in _ENTRY_KEYS)
        if not isinstance(code, str) or code not in DTYPES:
            raise BpttError(f"{where} has an unknown dtype {_short(code)} (known: {', '.join(DTYPES)})")
        if not _int_list(shape) or any(d < 0 for d in shape) or len(shape) > MAX_NDIM:
            raise BpttError(
                f"{where} has shape {_short(shape)}, not a list of at most {MAX_NDIM} non-negative integers"
            )
        if not (_int_list(offsets) and len(offsets) == 2 and 0 <= offsets[0] <= offsets[1]):
            raise BpttError(
                f"{where} has data_offsets {_short(offsets)}, not [begin, end] with 0 <= begin <= end"
            )
        begin, end = offsets
        if end > data_len:
            raise BpttError(
                f"{where} ends at byte {end} of the data but the data holds {data_len} bytes (truncated?)"
            )
        need = math.prod(shape) * DTYPES[code].itemsize
        if need != end - begin:
            raise BpttError(
                f"{where} declares shape {_short(shape)} needing {need} bytes"
                f" but its offsets span {end - begin}"
            )
        tensors.append((begin, end, name, code, shape))
    tensors.sort(key=lambda t: t[:3])
    pos = 0
    for begin, end, name, _, _ in tensors:  # the tensors must tile [0, data_len) exactly
        if begin != pos:
            what = (
                "overlaps the tensor before it"
                if begin < pos
                else f"leaves {begin - pos} unused bytes before it"
            )
            raise BpttError(f"{label}: tensor {name!r} at data_offsets [{begin}, {end}] {what}")
        pos = end
    if pos != data_len:
        raise BpttError(
            f"{label}: the tensors end at byte {pos} of the data but {data_len} bytes follow the header"
        )
    return tensors, metadata


def _check_expected(tensors, expect, label):
    """Check that the header declares exactly the ``(name, shape)`` pairs of ``expect``."""
    declared = {name: shape for _, _, name, _, shape in tensors}
    seen = set()
    for name, shape in expect:
        if name not in declared:
            raise BpttError(f"{label}: missing tensor {_short(name)} (the configuration needs it)")
        if declared[name] != list(shape):
            raise BpttError(
                f"{label}: tensor {_short(name)} has shape {_short(declared[name])},"
                f" the configuration needs {_short(list(shape))}"
            )
        seen.add(name)
    extra = sorted(set(declared) - seen)
    if extra:
        raise BpttError(f"{label}: holds a tensor {_short(extra[0])} that the configuration does not use")


def _read_exact(f, n, label, into=None):
    """Read exactly ``n`` bytes (into the writable buffer ``into`` when given); return them."""
    buf = bytearray(n) if into is None else into
    view = memoryview(buf).cast("B")
    got = 0
    while got < n:
        k = f.readinto(view[got:])
        if not k:
            raise BpttError(f"{label}: file ended early (changed while being read?)")
        got += k
    return bytes(buf) if into is None else into


def parse_json(raw, where):
    """Strict JSON from bytes: UTF-8, no repeated key, no NaN or Infinity.

    Errors are one line starting with ``where`` (a file name, or ``"file: header"``).
    Returns: the decoded value.
    """

    def unique(pairs):  # a second 'W_aa' would otherwise win silently
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen = set()
            dup = next(k for k, _ in pairs if k in seen or seen.add(k))
            raise BpttError(f"{where}: repeats the key {_short(dup)}")
        return obj

    def constant(name):
        raise BpttError(f"{where}: {name} is not valid JSON")

    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=unique, parse_constant=constant)
    except UnicodeDecodeError as e:
        raise BpttError(f"{where}: not UTF-8 text (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise BpttError(f"{where}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise BpttError(f"{where}: nests too deeply") from None
    except ValueError as e:  # e.g. an integer with more digits than Python converts
        raise BpttError(f"{where}: not valid JSON: {e}") from None


def _check_metadata(where, metadata):
    """Check a ``{str: str}`` of UTF-8-encodable strings; return it with sorted keys."""
    if not isinstance(metadata, Mapping):
        raise BpttError(f"{where}: expected a dict of str -> str, got {type(metadata).__name__}")
    for k, v in metadata.items():
        if not (isinstance(k, str) and isinstance(v, str) and _utf8(k) and _utf8(v)):
            raise BpttError(f"{where}: expected str -> str, got {_short(k)}: {_short(v)}")
    return dict(sorted(metadata.items()))


def _good_name(name):
    return isinstance(name, str) and name != "" and name != "__metadata__" and name.isprintable()


def _utf8(s):
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def _int_list(value):
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def _short(value, limit=60):
    """``repr(value)``, cut to ``limit`` characters, for one-line messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
