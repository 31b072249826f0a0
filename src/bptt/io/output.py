"""Files the user names for output: written safely whatever the name points to.

``open_output(PATH, inputs=...)`` is how a command writes a file the user named (``evaluate --output``)
or its standard output (``tag``, ``evaluate``):

    -, /dev/stdout           standard output itself (the same stream as ``print``), flushed at the end;
                             refused when it is closed (``bptt tag ... >&-``)
    a regular file, or none  written atomically (`bptt.io.atomic`): readers see the old file
                             or the new one, never half; an existing file keeps its permissions, and
                             one we may not write (read-only, ``chmod a-w``) is refused, not replaced
    a symbolic link          its target is written (atomically if a regular file); the link stays a link
    a FIFO, a device         written directly (``/dev/full``, ``>(conlleval)``, a named pipe)
    a directory              refused
    one of ``inputs``        refused: the same file (inode) as an input is never written over

Text (``evaluate --output``, ``tag``) and bytes (``binary=True``: the pictures of ``graph`` and
``gradflow``, the page of ``report``, the curves of a run) go through the same checks.
Every error is one `BpttError` line naming the path: ``dev.pred: cannot write: No space left on device``.
A reader that goes away (EPIPE) raises BrokenPipeError, which the command line ends quietly.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys

from ..errors import BpttError
from .atomic import atomic_open

STDOUT = "<stdout>"


def _stat(target):
    """os.stat of a path or an open file descriptor; None when there is none."""
    try:
        return os.fstat(target) if isinstance(target, int) else os.stat(target)
    except (OSError, ValueError):
        return None


def _stdout_stat():
    try:
        return os.fstat(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # replaced by a stream without a descriptor (tests)
        return None


def is_stdout(path):
    """Does ``path`` name standard output: ``-``, or the very file, pipe or terminal it is open on?"""
    if path == "-":
        return True
    out, st = _stdout_stat(), _stat(path)
    return out is not None and st is not None and (out.st_dev, out.st_ino) == (st.st_dev, st.st_ino)


def check_not_input(path, st, inputs):
    """Refuse to write over an input: ``st`` (the output's stat) is the same file as one of ``inputs``.

    inputs: paths, or open file descriptors (``0`` for standard input).
    """
    if st is None or not stat.S_ISREG(st.st_mode):  # a pipe or a device loses nothing
        return
    for inp in inputs:
        other = _stat(inp)
        if other is not None and (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            what = "<stdin>" if inp == 0 else f"the input file {os.fspath(inp)}"
            raise BpttError(f"{path}: is {what}: refusing to write over it")


def standard_output(binary=False):
    """``sys.stdout`` (its ``buffer`` with ``binary``); a `BpttError` when standard output is closed."""
    if sys.stdout is None:  # started with descriptor 1 closed (``>&-``): Python sets it to None
        raise BpttError("standard output is closed: nowhere to write (redirect it, e.g. > FILE)")
    return sys.stdout.buffer if binary else sys.stdout


def check_writable(path, st):
    """Refuse to replace an existing regular file we may not write (``chmod a-w``): the user's protection."""
    if st is not None and stat.S_ISREG(st.st_mode) and not os.access(path, os.W_OK):
        raise BpttError(f"{path}: is write-protected (no write permission): refusing to replace it")


def check_output(path, inputs=()):
    """Refuse a user-named output ``path`` that `open_output` would refuse, before any work is done.

    Checks everything but standard output: a directory, an input (``inputs``), a write-protected
    file, a missing folder. Returns: the path's os.stat (None when there is no such file yet).
    """
    path = os.fspath(path)
    st = _stat(path)
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise BpttError(f"{path}: is a directory")
    if st is not None and not stat.S_ISREG(st.st_mode):  # a FIFO, a terminal, a device: written directly
        return st
    check_not_input(path, st, inputs)
    check_writable(path, st)
    folder = os.path.dirname(os.path.abspath(_target(path)))
    if not os.path.isdir(folder):
        raise BpttError(f"{path}: cannot write: folder {folder} does not exist")
    return st


def _target(path):
    """The file a regular output is written to: through a symbolic link, its target."""
    return os.path.realpath(path) if os.path.islink(path) else path


@contextlib.contextmanager
def open_output(path, inputs=(), binary=False):
    """Open the user-named ``path`` for UTF-8 text, or bytes with ``binary`` (see the module docstring).

    inputs: the paths (or file descriptors) the command reads, never to be written over.
    Returns: a context manager giving a file (``write``, ``flush``); on a clean exit the
    output is complete (renamed into place, or flushed).
    """
    path = os.fspath(path)
    if is_stdout(path):
        stream = standard_output(binary)
        check_not_input(STDOUT, _stdout_stat(), inputs)
        out = Writer(stream, STDOUT)
        yield out
        out.flush()
        return
    st = check_output(path, inputs)
    if st is not None and not stat.S_ISREG(st.st_mode):  # a FIFO, a terminal, a device: write to it
        try:
            f = open(path, "wb") if binary else open(path, "w", encoding="utf-8", newline="\n")
        except OSError as e:
            raise BpttError(f"{path}: cannot write: {e.strerror or e}") from None
        try:
            out = Writer(f, path)
            yield out
            out.flush()
        finally:
            with contextlib.suppress(OSError):  # after a failed write, closing fails again
                f.close()
        return
    target = _target(path)  # write through a link: the link stays a link
    with atomic_open(target, "wb" if binary else "w") as f:
        yield Writer(f, path)
    if st is not None:
        with contextlib.suppress(OSError):
            os.chmod(target, stat.S_IMODE(st.st_mode))  # the file keeps its permissions


class Writer:
    """A file whose write errors are one line naming it (``dev.pred: cannot write: ...``)."""

    def __init__(self, f, name):
        self.f, self.name = f, name

    def write(self, data):
        with self._errors():
            return self.f.write(data)

    def flush(self):
        with self._errors():
            self.f.flush()

    def __getattr__(self, name):  # everything else is the file's (matplotlib asks for seek)
        return getattr(self.f, name)

    @contextlib.contextmanager
    def _errors(self):
        try:
            yield
        except BrokenPipeError:  # the reader went away: the command line ends quietly
            raise
        except OSError as e:
            if self.f in (sys.stdout, getattr(sys.stdout, "buffer", None)):
                discard_stdout()
            raise BpttError(f"{self.name}: cannot write: {e.strerror or e}") from None


def discard_stdout():
    """Point standard output at /dev/null, so that what is still buffered cannot fail again at exit."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
