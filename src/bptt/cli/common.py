"""Pieces shared by the commands: help formatting and reading text to tag."""

from __future__ import annotations

import argparse
import re

HELP_FORMAT = argparse.RawDescriptionHelpFormatter

# words, numbers with inner dots/commas/hyphens/apostrophes, or single punctuation marks
_TOKEN = re.compile(r"\w+(?:[-'’.,]\w+)*|[^\w\s]")


def tokenize(text):
    """Split a line of plain text into words and punctuation: "spell." → ["spell", "."]."""
    return _TOKEN.findall(text)


def add_command(sub, name, help, description, examples, run):
    """A subcommand with a description and an examples epilog."""
    p = sub.add_parser(
        name, help=help, description=description, epilog="examples:\n" + examples, formatter_class=HELP_FORMAT
    )
    p.set_defaults(run=run)
    return p


def add_reader_options(p):
    p.add_argument(
        "--tag-column", type=int, default=-1, metavar="N", help="column holding the tag (default: the last)"
    )
    p.add_argument(
        "--strip-prefix",
        default="auto",
        metavar="PREFIX",
        help="remove this prefix from every word, e.g. 'en:' for WikiANN"
        " (default 'auto': detect a language prefix; 'none' to keep words as they are)",
    )


def strip_prefix_arg(value):
    return None if value in (None, "none", "") else value


def add_threads_option(p):
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS threads (default 1: the per-word matrices are small, one thread is fastest)",
    )


def blas_threads(n):
    """A context that limits NumPy's BLAS to n threads (``--threads``)."""
    from threadpoolctl import threadpool_limits

    from ..errors import BpttError

    if n < 1:
        raise BpttError(f"--threads: must be >= 1, got {n}")
    return threadpool_limits(n, user_api="blas")


class PipeLines:
    """A pipe or terminal read as lines arrive, with ``ready()``: is a whole line waiting?

    Reads the file descriptor itself (``os.read``), so that nothing hides in a buffer that
    ``select`` cannot see; ``readline(limit)`` is what ``conll.text_lines`` needs.
    """

    def __init__(self, fd):
        self.fd, self.buf, self.pos, self.eof = fd, bytearray(), 0, False

    def _fill(self):
        import os

        if self.pos:  # drop what was read already
            del self.buf[: self.pos]
            self.pos = 0
        chunk = os.read(self.fd, 1 << 16)
        self.buf += chunk
        self.eof = not chunk

    def readline(self, limit):
        """The next line with its newline, at most ``limit`` bytes; b"" at the end of input."""
        while self.buf.find(b"\n", self.pos, self.pos + limit) < 0 and len(self.buf) - self.pos < limit:
            if self.eof:
                break
            self._fill()
        end = self.buf.find(b"\n", self.pos, self.pos + limit) + 1 or min(len(self.buf), self.pos + limit)
        line = bytes(self.buf[self.pos : end])
        self.pos = end
        return line

    def ready(self):
        """Can the next line (or the end of input) be read without waiting? Reads what has arrived."""
        import select

        while not self.eof and self.buf.find(b"\n", self.pos) < 0 and select.select([self.fd], [], [], 0)[0]:
            self._fill()
        return self.eof or self.buf.find(b"\n", self.pos) >= 0
