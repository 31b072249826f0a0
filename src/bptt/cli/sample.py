"""``bptt sample``: text written by a trained character language model, one character at a time."""

from __future__ import annotations

import sys

from .common import HELP_FORMAT, add_threads_option, blas_threads, seed

EXAMPLES = """\
  bptt sample --model runs/lm --n 5 --length 300 --temperature 0.8 --prime "Harry"
  bptt sample --model runs/names --n 20            # a --unit line model: one invented name a line
  bptt sample --model runs/lm --temperature 0.5 --seed 7
"""


def add_parser(sub):
    p = sub.add_parser(
        "sample",
        help="write text with a trained character language model",
        description="Generate text (one-to-many): read --prime, then draw each next character from\n"
        "softmax(z / --temperature) and feed it back as the next input. A --unit line model writes one\n"
        "line per sample and stops at its end symbol. Characters of the prime the model never saw are\n"
        "read as its unknown symbol (a warning says so); the unknown symbol is never written.",
        formatter_class=HELP_FORMAT,
        epilog="examples:\n" + EXAMPLES,
    )
    p.add_argument("--model", required=True, metavar="DIR", help="the run directory of bptt lm train")
    p.add_argument("--n", type=int, default=5, help="samples to write (default 5)")
    p.add_argument("--length", type=int, default=300, help="characters per sample at most (default 300)")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature, > 0 (default 1)")
    p.add_argument("--prime", default="", help="text to start from (default: the start of a line)")
    p.add_argument("--seed", type=seed, default=None, help="random seed (default: a fresh one each run)")
    add_threads_option(p, "a few samples are drawn side by side")
    p.set_defaults(run=run)


def run(args):
    import numpy as np

    from ..errors import BpttError
    from ..lm.model import load_lm

    if not 1 <= args.n <= 100_000:
        raise BpttError(f"--n: expected 1 to 100000 samples, got {args.n}")
    if not 1 <= args.length <= 1_000_000:
        raise BpttError(f"--length: expected 1 to 1000000 characters, got {args.length}")
    if not args.temperature > 0 or args.temperature == float("inf"):
        raise BpttError(f"--temperature: expected a finite number > 0, got {args.temperature:g}")
    model = load_lm(args.model)
    unknown = model.alphabet.unknown_in(args.prime)
    if unknown:
        shown = "".join(unknown)
        print(
            f"bptt: warning: --prime: {shown!r} never seen in training: read as the unknown symbol",
            file=sys.stderr,
        )
    with blas_threads(args.threads):
        texts = model.sample(
            args.n, args.length, args.temperature, args.prime, np.random.default_rng(args.seed)
        )
    sep = "\n" if model.unit == "line" else "\n\n"
    sys.stdout.write(sep.join(t.rstrip("\n") if model.unit == "stream" else t for t in texts) + "\n")
    return 0
