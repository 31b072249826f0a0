"""The one atomic file writer: every file bptt writes goes through `atomic_open`.

A file is written to a temporary name in its own directory (``.NAME.XXXX.tmp``), flushed, fsynced,
renamed over its target (`os.replace`) and the directory fsynced: readers see the old file or the
new, never half of one, and a crash leaves the old file in place. Model files, checkpoints, run.json,
the training log, pictures and every output a command writes to a regular file (`bptt.io.output`)
are written this way.

Test-only fault points (`bptt.faults`), with NAME the file's base name: ``write:NAME`` once the
temporary file exists, ``mid-write:NAME`` halfway through the first write, ``rename:NAME`` just
before the rename.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

from .. import faults
from ..errors import BpttError, check_choice


@contextlib.contextmanager
def atomic_open(path, mode="wb"):
    """Open a temporary file beside ``path``; on a clean exit make it ``path``, atomically and durably.

    Flushes, fsyncs, renames over ``path`` (`os.replace`) and fsyncs the directory. On an exception
    the temporary file is removed and ``path`` is untouched. OS errors become `BpttError` naming ``path``.
    mode: ``"wb"`` (bytes) or ``"w"`` (UTF-8 text).
    """
    check_choice("mode", mode, ("wb", "w"))
    label = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(label))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(label)}.", suffix=".tmp")
    except OSError as e:
        raise BpttError(f"{label}: cannot write: {e.strerror or e}") from None
    name = os.path.basename(label)
    try:
        faults.point(f"write:{name}")
        text = {"encoding": "utf-8", "newline": "\n"} if mode == "w" else {}
        with os.fdopen(fd, mode, **text) as f:
            yield _HalfWrite(f, name) if faults.armed(f"mid-write:{name}") else f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; give what open() would
        faults.point(f"rename:{name}")
        os.replace(tmp, label)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise BpttError(f"{label}: cannot write: {e.strerror or e}") from None
        raise
    fsync_dir(directory)


class _HalfWrite:
    """A file whose first write stops halfway at the fault point ``mid-write:NAME`` (`bptt.faults`)."""

    def __init__(self, f, name):
        self.f, self.name, self.first = f, name, True

    def write(self, data):
        if not self.first:
            return self.f.write(data)
        self.first = False
        if not isinstance(data, str):
            data = memoryview(data).cast("B")  # bytes or an array: a flat view of its bytes
        half = len(data) // 2
        self.f.write(data[:half])
        self.f.flush()
        faults.point(f"mid-write:{self.name}")
        return self.f.write(data[half:])

    def __getattr__(self, name):  # everything else is the file's
        return getattr(self.f, name)


def is_temporary(name, targets):
    """Whether the file ``name`` is the temporary file of an unfinished `atomic_open` of one of ``targets``
    (base names): what a killed write leaves behind, never anything of value."""
    return name.endswith(".tmp") and any(name.startswith(f".{t}.") for t in targets)


def atomic_write(path, data):
    """Write the bytes ``data`` to ``path`` atomically and durably (see `atomic_open`)."""
    with atomic_open(path) as f:
        f.write(data)


def fsync_dir(directory):
    """Make renames and creations in ``directory`` durable (a no-op where directories cannot be opened)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # the write itself succeeded; only its durability is left to the system
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def umask():
    """The process's umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no way to read it without setting it elsewhere
    os.umask(mask)
    return mask
