"""``bptt bench``: time forward + BPTT of a cell against its PyTorch twin, or checkpointed BPTT's memory."""

from __future__ import annotations

import argparse
import json

from ..errors import BpttError

EXAMPLES = """examples:
  bptt bench                                 every shape in float32 and float64, 7 rounds
  bptt bench --quick                         3 short rounds: a first look in about a minute
  bptt bench --cell lstm --threads 2         the LSTM against torch.nn.LSTM, 2 threads each side
  bptt bench --cell all --quick              the vanilla cell, the GRU and the LSTM, one after the other
  bptt bench --shape 35,1,50,100 --dtype float64 --rounds 11
  bptt bench --json > bench.json             the full report as JSON
  bptt bench --memory                        checkpointed vs full BPTT: memory and time
  BPTT_NO_KERNELS=1 bptt bench --quick       the NumPy-only loops, without the compiled step kernels
"""


def add_parser(sub):
    p = sub.add_parser(
        "bench",
        help="benchmark forward + BPTT against torch.nn.RNN/GRU/LSTM (needs torch), or its memory",
        description=(
            "Time the hand-written forward + full BPTT of a cell against its twin torch.nn.RNN, GRU or "
            "LSTM + autograd on the CPU, "
            "same process, identical parameters and inputs, alternating rounds; report medians, "
            "the bptt/torch ratio, the fraction of this machine's GEMM throughput, and the per-step "
            "overhead probe in µs and in small NumPy calls. "
            "With --memory: stored and peak memory and time of checkpointed vs full BPTT."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--shape",
        action="append",
        metavar="T,B,N_X,N_A",
        help="benchmark this shape (repeatable; default: the five shapes of issue #4)",
    )
    p.add_argument(
        "--cell",
        action="append",
        choices=("rnn", "gru", "lstm", "all"),
        help="the cell to benchmark, against torch.nn.RNN, GRU or LSTM (repeatable; all: the three; "
        "default: rnn, the vanilla tanh cell)",
    )
    p.add_argument(
        "--dtype", action="append", choices=("float32", "float64"), help="repeatable (default: both)"
    )
    p.add_argument(
        "--rounds", type=int, help="alternating rounds per shape (default 7, --memory 11, --quick 3)"
    )
    p.add_argument("--quick", action="store_true", help="3 short rounds per shape")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="BLAS and torch threads (default: as many as NumPy's BLAS uses)",
    )
    p.add_argument("--no-probe", action="store_true", help="skip the per-step overhead probe T=1000, n=8")
    p.add_argument("--memory", action="store_true", help="checkpointed vs full BPTT memory instead")
    p.add_argument(
        "--lengths",
        default="1000,10000",
        metavar="T,...",
        help="with --memory: sequence lengths (default 1000,10000)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run)


def parse_sizes(name, text, count=None):
    """'35,1,50,100' -> (35, 1, 50, 100); BpttError naming the option when malformed."""
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise BpttError(f"{name}: expected comma-separated integers, got {text!r}") from None
    if (count is not None and len(sizes) != count) or any(n < 1 for n in sizes):
        want = f"{count} positive integers" if count else "positive integers"
        raise BpttError(f"{name}: expected {want}, got {text!r}")
    return sizes


def run(args):
    from ..bench import memory, speed  # only here: no other code imports the benchmarks (or torch)

    if args.rounds is not None and args.rounds < 1:
        raise BpttError(f"--rounds: expected at least 1, got {args.rounds}")
    if args.threads < 0:
        raise BpttError(f"--threads: expected a positive count (or 0 for NumPy's own), got {args.threads}")
    log = None if args.json else print  # the table streams out row by row
    if args.memory:
        lengths = parse_sizes("--lengths", args.lengths)
        rounds = args.rounds if args.rounds is not None else 3 if args.quick else 11
        report = memory.memory_benchmark(lengths, rounds=rounds, log=log)
    else:
        config = speed.BenchConfig(probe=not args.no_probe, threads=args.threads)
        if args.shape:
            config.shapes = tuple(parse_sizes("--shape", s, 4) for s in args.shape)
        if args.dtype:
            config.dtypes = tuple(dict.fromkeys(args.dtype))
        if args.cell:
            cells = [c for name in args.cell for c in (speed.CELL_NAMES if name == "all" else [name])]
            config.cells = tuple(dict.fromkeys(cells))
        if args.quick:
            config.rounds, config.min_time, config.pause = 3, 0.05, 0.05
        if args.rounds is not None:
            config.rounds = args.rounds
        report = speed.run_benchmark(config, log=log)
    if args.json:
        print(json.dumps(report, indent=2))
    return 0
