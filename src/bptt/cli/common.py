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
