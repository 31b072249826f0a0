"""``bptt demo``: watch BPTT learn a small built-in sequence task."""

from __future__ import annotations

import argparse
import time

import numpy as np

from ..model import init_params, sequence_loss
from ..optim import Adam, clip_grad_norm

EXAMPLES = """examples:
  bptt demo
  bptt demo --steps 300 --seed 1
"""


def add_parser(sub):
    p = sub.add_parser(
        "demo",
        help="train a small model on a built-in task and show it learning",
        description="Train the lecture's RNN by hand-written BPTT on a built-in task.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--steps", type=int, default=400, help="training steps (default 400)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(run=run)


def echo_task(rng, T=20, B=32, delay=3):
    """y⟨t⟩ = x⟨t−delay⟩: the network must remember its input for ``delay`` steps."""
    bits = rng.integers(0, 2, size=(T, B))
    X = bits[:, :, None].astype(np.float32) * 2 - 1  # (T, B, 1)
    Y = np.zeros((T, B), dtype=np.float32)
    Y[delay:] = bits[:-delay]
    return X, Y


def run(args):
    rng = np.random.default_rng(args.seed)
    params = init_params(1, 16, 1, seed=args.seed)
    opt = Adam(lr=0.01)
    start = time.perf_counter()
    print("task: y<t> = x<t-3> on random bits (the network must remember 3 steps back)")
    for step in range(1, args.steps + 1):
        X, Y = echo_task(rng)
        L, grads = sequence_loss(params, X, Y, reduction="mean")
        clip_grad_norm(grads, 5.0)
        opt.step(params, grads)
        if step % 50 == 0 or step == 1:
            print(f"step {step:4d}  loss per sequence {L:7.3f}")
    X, Y = echo_task(rng, B=256)
    from ..heads import output_forward
    from ..rnn import rnn_forward

    A, _ = rnn_forward(X, None, params)
    acc = float(((output_forward(A, params)[3:, :, 0] > 0.5) == (Y[3:] > 0.5)).mean())
    print(f"accuracy on fresh sequences: {acc:.3f}  ({time.perf_counter() - start:.1f} s)")
