"""Pieces shared by the commands: help formatting, options, reading standard input as it arrives."""

from __future__ import annotations

import argparse

HELP_FORMAT = argparse.RawDescriptionHelpFormatter


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


TWO_CORES = "two cores"  # add_threads_option's default: 2 where this process may run on two cores


def two_cores():
    """2, or 1 where this process may run on one core only."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(2, cores)


def add_threads_option(p, why="the per-word matrices are small, one thread is fastest", default=1):
    shown = "2, or 1 on a machine with one core" if default is TWO_CORES else default
    p.add_argument(
        "--threads", type=int, default=two_cores() if default is TWO_CORES else default,
        help=f"BLAS threads (default {shown}: {why})",
    )  # fmt: skip


def seed(text):
    """The argparse type of every command's ``--seed``: an integer from 0 to 2**63 - 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 2**63 - 1, got {text}")
    return value


def track_given(p, run):
    """Make ``run(defaults, args)`` the command's function, with the options not typed left out of ``args``.

    So a command knows which options were given (``--resume`` refuses the others); `given_options` fills
    in their defaults, the ones --help shows.
    """
    import functools

    options = [a for a in p._actions if a.dest != "help"]
    p.set_defaults(run=functools.partial(run, {a.dest: a.default for a in options}))
    for a in options:
        a.default = argparse.SUPPRESS


def given_options(defaults, args):
    """The namespace with every default filled in, and the names of the options typed (`track_given`)."""
    given = [name for name in defaults if name in vars(args)]
    return argparse.Namespace(**{**defaults, **vars(args)}), given


def refuse_with_resume(given, allowed, settings):
    """``--resume`` goes on with a run's own ``settings`` (a file): refuse the options it would ignore."""
    from ..errors import BpttError

    ignored = ["--" + name.replace("_", "-") for name in given if name not in allowed]
    if ignored:
        raise BpttError(
            f"--resume: cannot be given with {', '.join(ignored)}: the run goes on with the {settings}"
            f" (only {' and '.join('--' + a for a in allowed if a != 'resume')} may be added)"
        )


def add_seed_option(p, help="random seed"):
    p.add_argument("--seed", type=seed, default=0, help=f"{help} (default 0)")


def blas_threads(n):
    """A context that limits NumPy's BLAS to n threads (``--threads``)."""
    from threadpoolctl import threadpool_limits

    from ..errors import BpttError

    if n < 1:
        raise BpttError(f"--threads: must be >= 1, got {n}")
    return threadpool_limits(n, user_api="blas")


def open_input(path=None):
    """Open ``--input PATH``, or standard input (None), to be read line by line.

    A regular file is read in blocks; a pipe, a terminal or a device (``<(zcat ...)``, a named pipe,
    ``/dev/stdin``) as lines arrive, with ``ready``. Errors are one line: a missing file, a
    directory, no permission, standard input closed (``<&-``).
    Returns: (stream with ``readline(limit)`` and ``close()``, its name, ``ready`` or None).
    """
    import os
    import stat
    import sys

    from ..errors import BpttError

    if path is None:
        if sys.stdin is None:  # started with descriptor 0 closed: Python sets it to None
            raise BpttError("standard input is closed: give the text as arguments, or --input FILE")
        try:
            fd = sys.stdin.fileno()
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except (AttributeError, OSError, ValueError):  # a stream without a descriptor (tests)
            return sys.stdin.buffer, "<stdin>", None
        if regular:
            return sys.stdin.buffer, "<stdin>", None
        pipe = PipeLines(fd)
        return pipe, "<stdin>", pipe.ready
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise BpttError(f"{path}: is a directory, expected a text file")
        f = open(path, "rb")
    except FileNotFoundError:
        raise BpttError(f"{path}: no such file") from None
    except OSError as e:
        raise BpttError(f"{path}: cannot read: {e.strerror or e}") from None
    if stat.S_ISREG(st.st_mode):
        return f, path, None
    pipe = PipeLines(f.fileno(), owner=f)  # a pipe or a device: answered as lines arrive
    return pipe, path, pipe.ready


class PipeLines:
    """A pipe or terminal read as lines arrive, with ``ready()``: is a whole line waiting?

    Reads the file descriptor itself (``os.read``), so that nothing hides in a buffer that
    ``select`` cannot see; ``readline(limit)`` is what ``conll.text_lines`` needs.
    owner: the file the descriptor belongs to, closed by ``close()`` (None: leave it open).
    """

    def __init__(self, fd, owner=None):
        self.fd, self.buf, self.pos, self.eof, self.owner = fd, bytearray(), 0, False, owner

    def close(self):
        if self.owner is not None:
            self.owner.close()

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


def run_training(args, given, settings, trainer):
    """``bptt lm train`` / ``bptt dates train``: a new run from ``settings(args)`` (a checked config), or
    with ``--resume DIR`` the run in DIR with its own settings (``trainer.settings_of``)."""
    from ..errors import BpttError
    from ..training.parallel import world
    from ..training.progress import Progress

    comm = world()  # `mpiexec -n N bptt lm train ...`: N processes train one model
    if args.resume:
        refuse_with_resume(given, ("resume", "quiet", "threads"), "run's own settings in " + args.resume)
        cfg = comm.on_root(lambda: trainer.settings_of(args.resume))
    else:
        if not args.out:
            raise BpttError("--out: required: a new or empty directory for the run (or --resume DIR)")
        for name in ("time_budget", "updates"):
            value = getattr(args, name)
            if value is not None and not value > 0:
                raise BpttError(f"--{name.replace('_', '-')}: the budget must be more than 0, got {value:g}")
        cfg = settings(args)
    progress = Progress(enabled=not args.quiet and comm.root, muted=not comm.root)  # process 0 speaks
    with blas_threads(args.threads), comm.collective():
        trainer(cfg, args.resume or args.out, progress, comm=comm).run(resume=bool(args.resume))
    return 0


def checked_settings(cls, options, **values):
    """``cls(**values)``, a checked settings dataclass, with an error naming the command-line option
    (``options`` maps a field to its option where they differ) instead of the field."""
    from ..errors import BpttError

    try:
        return cls(**values)
    except BpttError as e:  # "field: expected ..." names the field: say the option instead
        field, _, rest = str(e).partition(":")
        if field.startswith("--"):
            raise
        raise BpttError(f"{options.get(field, '--' + field.replace('_', '-'))}:{rest}") from None


def minutes_of(args, cls):
    """The wall-time budget: --time-budget, else none with --updates (a deterministic budget alone),
    else the settings' default."""
    if args.time_budget is not None:
        return args.time_budget
    return None if args.updates is not None else cls.__dataclass_fields__["minutes"].default


def add_budget_options(p, minutes, what):
    """--time-budget and --updates of a training command; ``minutes`` is the default budget, ``what`` the
    evaluations that count in it ("evaluations")."""
    g = p.add_argument_group("budget (at least one)")
    g.add_argument(
        "--time-budget", type=float, metavar="MINUTES",
        help=f"wall time, training and {what} (default {minutes:g}, none with --updates alone)",
    )  # fmt: skip
    g.add_argument("--updates", type=int, metavar="N", help="updates (deterministic: same seed, same model)")


def add_run_options(p, resume_help, threads_why, threads=1):
    """--out, --resume, --quiet and --threads of a training command."""
    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="DIR", help="a new or empty directory for the run")
    g.add_argument("--resume", metavar="DIR", help=resume_help)
    g.add_argument("--quiet", action="store_true", help="no progress display")
    add_threads_option(g, threads_why, threads)
