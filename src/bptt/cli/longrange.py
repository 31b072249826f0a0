"""``bptt longrange``: train cells on the long-range tasks (adding, copy, temporal order) vs baselines."""

from __future__ import annotations

from ..errors import BpttError
from .common import (
    add_command,
    add_seed_option,
    add_threads_option,
    blas_threads,
    given_options,
    refuse_with_resume,
    track_given,
)

EXAMPLES = """\
  # the adding problem at three lengths, every cell, 20 minutes each:
  bptt longrange --task adding --T 100 200 400 --cell rnn irnn gru lstm --minutes 20 --out runs/adding
  # an LSTM (forget-gate bias 1) at T = 400 needs a larger Adam step than the default (BENCHMARKS.md):
  bptt longrange --task adding --T 400 --cell lstm --lr 5e-3 --minutes 20 --out runs/adding400
  # temporal order, an LSTM (forget-gate bias 1), until solved or 200,000 sequences:
  bptt longrange --task order --T 100 --cell lstm --sequences 200000 --out runs/order
  # the copy task, each cell's own initialisation and chrono where a cell takes it:
  bptt longrange --task copy --T 100 200 --cell gru lstm --init auto chrono --minutes 20 --out runs/copy
  # a quick look (seconds):
  bptt longrange --task adding --T 20 --cell lstm --sequences 4000 --eval-every 1000 --out runs/quick
  # continue an interrupted run (finished configurations are kept):
  bptt longrange --resume runs/adding
"""

# may be given with --resume: they change how a run is shown and how fast it goes, not what it computes
WITH_RESUME = ("resume", "quiet", "threads")
# a field of LongRangeConfig -> its option, for error messages
OPTIONS = {"tasks": "--task", "lengths": "--T", "T": "--T", "cells": "--cell", "inits": "--init"}


def add_parser(sub):
    from ..longrange.config import CELL_SPECS, INITS, LongRangeConfig
    from ..tasks.longrange import MAX_T, TASKS

    d = LongRangeConfig.__dataclass_fields__
    p = add_command(
        sub,
        "longrange",
        "train cells on the adding, copy and temporal-order tasks",
        "Train one model per configuration (task x --T x --cell x --init) by hand-written BPTT, the loss\n"
        "at the end of each sequence (many-to-one; the copy task: on its last 10 steps), within its\n"
        "budget (--minutes and/or --sequences), stopping once solved (on the validation sequences, at two\n"
        "evaluations in a row). Each is scored on fresh sequences\n"
        "against the memoryless baseline (adding: MSE 1/6 for always answering 1; copy: cross-entropy\n"
        "10 ln 8/(T+20) per step; order: accuracy 1/4). --out gets results.json (one record per\n"
        "configuration), table.md, learning curves and gradient norms, messages and reach (PNG) and\n"
        "report.html; each configuration's weights, log and checkpoint are in --out/runs/NAME.\n"
        "--resume DIR goes on.\n"
        "Cells: rnn (tanh), irnn (relu, identity W_aa: Le, Jaitly & Hinton 2015), gru, lstm.\n"
        "Initialisations (--init): auto (rnn default, irnn identity, gru default, lstm forget1),\n"
        "default (PyTorch's), orthogonal, identity, forget1 (LSTM forget-gate bias 1), chrono (gru, lstm;\n"
        "Tallec & Ollivier 2018).",
        EXAMPLES,
        run,
    )
    g = p.add_argument_group("configurations")
    g.add_argument(
        "--task", nargs="+", choices=list(TASKS), default=["adding"], help="the task(s) (default adding)"
    )
    g.add_argument(
        "--T", nargs="+", type=int, default=[100], metavar="N",
        help=f"sequence length(s), up to {MAX_T:,} (the copy task's sequences are T + 20 long) (default 100)",
    )  # fmt: skip
    g.add_argument(
        "--cell", nargs="+", choices=list(CELL_SPECS), default=list(CELL_SPECS),
        help="the cell(s) (default: all four)",
    )  # fmt: skip
    g.add_argument(
        "--init", nargs="+", choices=list(INITS), default=["auto"], help="initialisation(s) (default auto)"
    )
    g = p.add_argument_group("budget (per configuration; at least one)")
    g.add_argument("--minutes", type=float, metavar="M", help="wall time: training and evaluation")
    g.add_argument(
        "--sequences", type=int, metavar="N", help="training sequences (deterministic: same seed, same model)"
    )
    g.add_argument("--keep-going", action="store_true", help="train the whole budget even once solved")
    g = p.add_argument_group("training")

    def option(name, help, **kw):
        default = d[name.replace("-", "_")].default
        g.add_argument(f"--{name}", default=default, help=f"{help} (default {default})", **kw)

    option("hidden", "hidden units n_a", type=int)
    option("batch-size", "sequences per update", type=int)
    option("optimizer", "update rule", choices=["adam", "momentum", "sgd"])
    option("lr", "learning rate", type=float)
    option("clip", "clip the global gradient norm to this; 0 off", type=float)
    option("eval-every", "training sequences between evaluations and checkpoints", type=int, metavar="N")
    option("valid-size", "fresh sequences scored at each evaluation (the curve; solved or not)", type=int)
    option("test-size", "other fresh sequences scored at the end (the reported value)", type=int)
    option("probes", "validation sequences whose messages and reach are measured", type=int)
    option("dtype", "of the weights, gradients and optimizer state", choices=["float32", "float64"])
    add_seed_option(g, "random seed: parameters and the training stream, the same for every configuration")
    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="DIR", help="a new or empty directory for the run")
    g.add_argument(
        "--resume", metavar="DIR",
        help="continue the run in DIR with its settings; only --quiet and --threads may be given with it",
    )  # fmt: skip
    g.add_argument("--quiet", action="store_true", help="no progress display")
    add_threads_option(g)
    track_given(p, run)


def run(defaults, args):
    from ..longrange import longrange

    args, given = given_options(defaults, args)
    if args.resume:
        refuse_with_resume(given, WITH_RESUME, f"settings in {args.resume}/longrange.json")
    elif not args.out:
        raise BpttError("--out: required: a new or empty directory for the run (or --resume DIR)")
    cfg = None if args.resume else config(args)  # every option checked before anything is written
    with blas_threads(args.threads):
        longrange(cfg, args.resume or args.out, resume=bool(args.resume), progress=not args.quiet)
    return 0


def config(args):
    """The run's LongRangeConfig from the options, checked (errors name the option)."""
    from ..longrange import LongRangeConfig

    for name in ("minutes", "sequences"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise BpttError(f"--{name}: the budget must be more than 0, got {value:g}")
    if args.minutes is None and args.sequences is None:
        raise BpttError("--minutes: a budget is needed: --minutes M, --sequences N or both")
    try:
        return LongRangeConfig(
            tasks=list(dict.fromkeys(args.task)),
            lengths=list(dict.fromkeys(args.T)),
            cells=list(dict.fromkeys(args.cell)),
            inits=list(dict.fromkeys(args.init)),
            minutes=args.minutes,
            sequences=args.sequences,
            hidden=args.hidden,
            batch_size=args.batch_size,
            optimizer=args.optimizer,
            lr=args.lr,
            clip=args.clip,
            eval_every=args.eval_every,
            valid_size=args.valid_size,
            test_size=args.test_size,
            probes=args.probes,
            keep_going=args.keep_going,
            seed=args.seed,
            dtype=args.dtype,
        )
    except BpttError as e:  # "field: expected ..." names the field: say the option instead
        field, _, rest = str(e).partition(":")
        raise BpttError(f"{OPTIONS.get(field, '--' + field.replace('_', '-'))}:{rest}") from None
