"""The ``bptt`` command line: one module per command, each with ``add_parser``.

Every command reports a user error as one line ``bptt: error: ...`` and exits
with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from ..errors import BpttError

# command name -> module under bptt.cli (imported only when needed, so `bptt tag` starts fast)
COMMANDS = {
    "demo": "demo",
    "graph": "graph",
    "gradflow": "gradflow",
    "report": "report",
    "train": "train",
    "evaluate": "evaluate",
    "tag": "tag",
    "export": "export",
    "bench": "bench",
    "longrange": "longrange",
    "lm": "lm",
    "sample": "sample",
    "dates": "dates",
}

EPILOG = """examples:
  bptt demo                                  train a person-name tagger on the built-in corpus
  bptt lm train --conll eng.train --out runs/lm   a character language model; then bptt sample
  bptt dates train --out runs/dates          an encoder-decoder with attention: dates to ISO dates
  bptt COMMAND --help                        options and examples of one command
"""


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error reported like every other error: one line ``bptt: error: ...``."""

    def error(self, message):
        self.exit(2, f"bptt: error: {message} (see {self.prog} --help)\n")


def build_parser(commands=None):
    parser = _Parser(
        prog="bptt",
        description="Recurrent networks trained by backpropagation through time, written out by hand.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show a full traceback on errors")
    parser.add_argument("--version", action="version", version=f"bptt {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (commands or COMMANDS).values():
        importlib.import_module(f"{__name__}.{module}").add_parser(sub)
    return parser


def _version():
    from .. import __version__

    return __version__


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"bptt: warning: {message}", file=sys.stderr if file is None else file)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    # import only the command that runs (plus help when none is named)
    name = next((a for a in argv if not a.startswith("-")), None)
    commands = {name: COMMANDS[name]} if name in COMMANDS else None
    parser = build_parser(commands)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from ..resources import keep_freed_memory

    keep_freed_memory()  # a step's arrays reuse the last step's pages (see its docstring)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning  # one line: bptt: warning: FILE:LINE: ...
            return args.run(args) or 0
    except BpttError as e:
        if args.debug:
            raise
        if not getattr(e, "quiet", False):  # quiet: another process of a parallel run says it
            print(f"bptt: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        if not getattr(e, "quiet", False):
            print("bptt: interrupted", file=sys.stderr)
        return 128 + getattr(e, "signum", 2)  # 130 for Ctrl-C (SIGINT), 143 for SIGTERM
    except BrokenPipeError:  # the reader went away (`bptt tag ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail
        return 141  # 128 + SIGPIPE, as the shell reports a process the pipe closed
