"""Files the user names for output: written safely whatever the name points to.

``open_output(PATH, inputs=...)`` is how a command writes a file the user named (``evaluate --output``)
or its standard output (``tag``, ``evaluate``):

    -, /dev/stdout           standard output itself (the same stream as ``print``), flushed at the end
    a regular file, or none  written atomically (`modelfiles.atomic_open`): readers see the old file
                             or the new one, never half; an existing file keeps its permissions
    a symbolic link          its target is written (atomically if a regular file); the link stays a link
    a FIFO, a device         written directly (``/dev/full``, ``>(conlleval)``, a named pipe)
    one of ``inputs``        refused: the same file (inode) as an input is never written over

Every error is one `BpttError` line naming the path: ``dev.pred: cannot write: No space left on device``.
A reader that goes away (EPIPE) raises BrokenPipeError, which the command line ends quietly.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys

from .errors import BpttError

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


@contextlib.contextmanager
def open_output(path, inputs=()):
    """Open the user-named ``path`` for writing UTF-8 text (see the module docstring).

    inputs: the paths (or file descriptors) the command reads, never to be written over.
    Returns: a context manager giving a text file (``write``, ``flush``); on a clean exit the
    output is complete (renamed into place, or flushed).
    """
    path = os.fspath(path)
    if is_stdout(path):
        check_not_input(STDOUT, _stdout_stat(), inputs)
        out = Writer(sys.stdout, STDOUT)
        yield out
        out.flush()
        return
    st = _stat(path)
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise BpttError(f"{path}: is a directory")
    if st is not None and not stat.S_ISREG(st.st_mode):  # a FIFO, a terminal, a device: write to it
        try:
            f = open(path, "w", encoding="utf-8", newline="\n")
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
    check_not_input(path, st, inputs)
    from .modelfiles import atomic_open

    target = os.path.realpath(path) if os.path.islink(path) else path  # write through a link
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise BpttError(f"{path}: cannot write: folder {folder} does not exist")
    with atomic_open(target, "w") as f:
        yield Writer(f, path)
    if st is not None:
        with contextlib.suppress(OSError):
            os.chmod(target, stat.S_IMODE(st.st_mode))  # the file keeps its permissions


class Writer:
    """A text file whose write errors are one line naming it (``dev.pred: cannot write: ...``)."""

    def __init__(self, f, name):
        self.f, self.name = f, name

    def write(self, text):
        with self._errors():
            return self.f.write(text)

    def flush(self):
        with self._errors():
            self.f.flush()

    @contextlib.contextmanager
    def _errors(self):
        try:
            yield
        except BrokenPipeError:  # the reader went away: the command line ends quietly
            raise
        except OSError as e:
            if self.f is sys.stdout:
                discard_stdout()
            raise BpttError(f"{self.name}: cannot write: {e.strerror or e}") from None


def discard_stdout():
    """Point standard output at /dev/null, so that what is still buffered cannot fail again at exit."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
