"""``bptt gradflow``: how the gradient messages vanish or explode over time, and over training."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import BpttError
from ..models.tagger import MAX_WORDS
from .common import add_seed_option
from .graph import add_source_arguments, check_out

DEMO_EPOCHS = 15
MAX_DEMO_EPOCHS = 10_000  # --demo trains the lecture RNN on its echo task; 15 epochs show the picture

EXAMPLES = """examples:
  bptt gradflow --model runs/person --data ../shared/data/conll2003/eng.testa --out gradflow.png
  bptt gradflow --model runs/person --out gradflow.png        the training log alone
  bptt gradflow --demo --out gradflow.png                     the lecture RNN on the echo task

The picture: the messages ||dL/da<t>|| per position and epoch, how far back the gradient reaches
(||da<t>/da<t-d>||, spectral norm) per distance and epoch, the reach on sentences of --data, and the
gradient norm with the epochs where clipping fired. Colours are on a log scale.
"""


def add_parser(sub):
    p = sub.add_parser(
        "gradflow",
        help="plot how gradient messages vanish or explode over time and over training",
        description="Plot the gradient flow of a training run (.png or .svg): message norms over time"
        " steps and epochs, how far back gradients reach, and where gradient clipping fired.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_source_arguments(p, "train the lecture RNN on the echo task and log its gradient flow")
    p.add_argument("--data", metavar="FILE", help="CoNLL file whose sentences probe the reach (with --model)")
    p.add_argument("--sentences", type=int, default=20, help="probe sentences read from --data (default 20)")
    p.add_argument(
        "--K",
        type=int,
        default=40,
        help=f"longest distance probed, at most {MAX_WORDS:,} (default 40; the longest probe sentence's"
        " length when that is shorter)",
    )
    p.add_argument(
        "--epochs", type=int, default=DEMO_EPOCHS, help=f"--demo: epochs of 20 steps (default {DEMO_EPOCHS})"
    )
    add_seed_option(p, "--demo: random seed")
    p.set_defaults(run=run)


def run(args):
    from ..pictures.plots import plot_gradient_flow

    check_out(args)  # before any training
    if args.sentences < 1 or args.K < 1:
        raise BpttError("--sentences and --K: expected positive numbers")
    if args.K > MAX_WORDS:
        raise BpttError(f"--K: at most {MAX_WORDS:,} (no sentence is longer), got {args.K:,}")
    if args.demo and args.data is not None:
        raise BpttError("--data: probes a --model; --demo measures the lecture RNN on its own echo task")
    if args.demo and not 1 <= args.epochs <= MAX_DEMO_EPOCHS:
        raise BpttError(f"--epochs: expected 1 to {MAX_DEMO_EPOCHS:,} epochs, got {args.epochs:,}")
    if not args.demo and args.epochs != DEMO_EPOCHS:
        raise BpttError("--epochs: only with --demo (a --model's epochs are those it trained)")
    probe = None
    if args.demo:
        records, probe = demo_log(args.epochs, seed=args.seed)
    else:
        from ..models.tagger import check_not_another_model
        from ..pictures.report import read_log

        if not Path(args.model).is_dir():
            raise BpttError(f"--model: {args.model} is not a directory")
        check_not_another_model(args.model)
        records = read_log(Path(args.model) / "log.jsonl")
        if args.data is not None:
            probe = reach_probe(args.model, args.data, args.sentences, args.K)
    path = plot_gradient_flow(records, args.out, probe=probe)
    print(f"wrote {path}")


def reach_probe(model_dir, data, n_sentences, K):
    """Reach by distance on each of the first sentences of ``data``. Returns: (N, K)."""
    from ..io.conll import iter_conll
    from ..models.tagger import load_tagger

    tagger = load_tagger(model_dir)
    sentences = []
    for s in iter_conll(data, require_tags=False, strip_prefix="auto"):
        sentences.append(s.words)
        if len(sentences) == n_sentences:
            break
    K = min(K, max(len(words) for words in sentences))  # no distance beyond the longest sentence
    return np.stack([np.asarray(tagger.reach_profile([words], K=K), dtype=float) for words in sentences])


def echo_task(rng, T, B, delay):
    """Random ±1 inputs and y⟨t⟩ = [x⟨t−delay⟩ = +1]: the network must remember ``delay`` steps.

    Returns: X (T, B, 1), Y (T, B) float64 (Y is 0 for the first ``delay`` steps).
    """
    bits = rng.integers(0, 2, size=(T, B))
    Y = np.zeros((T, B))
    Y[delay:] = bits[:-delay]
    return (2.0 * bits - 1)[:, :, None], Y


def demo_log(epochs=15, seed=0, T=30, delay=6, n_a=16, steps_per_epoch=20, max_norm=1.0):
    """Train the lecture RNN on y⟨t⟩ = x⟨t−delay⟩ and log its gradient flow every epoch.

    Returns: the log records (as the tagger's log.jsonl has them) and the last probe's reach
    by distance (K,), both measured with the ledger on a fixed probe batch.
    """
    from ..diagnostics.ledger import ledger, reach_by_distance
    from ..models.lecture import init_params, sequence_loss
    from ..training.optim import Adam, clip_grad_norm

    if epochs < 1:
        raise BpttError(f"--epochs: expected a positive number, got {epochs}")
    rng = np.random.default_rng(seed)
    params = init_params(1, n_a, 1, seed=seed, dtype=np.float64)
    X_probe, Y_probe = echo_task(np.random.default_rng(seed + 1), T, 64, delay)
    opt = Adam(lr=0.01)
    records = []
    for epoch in range(1, epochs + 1):
        losses, norms, clipped = [], [], 0
        for _ in range(steps_per_epoch):
            X, Y = echo_task(rng, T, 32, delay)
            L, grads = sequence_loss(params, X, Y, reduction="mean")
            norm = clip_grad_norm(grads, max_norm)
            opt.step(params, grads)
            losses.append(L)
            norms.append(norm)
            clipped += norm > max_norm
        led = ledger(params, X_probe, Y_probe, reduction="mean")
        accuracy = float(((led.Y_hat[delay:, :, 0] > 0.5) == (Y_probe[delay:] > 0.5)).mean())
        records.append(
            {
                "epoch": epoch,
                "train_loss": float(np.mean(losses)),
                "dev": {"f1": accuracy, "token_accuracy": accuracy},
                "grad_norm": float(np.mean(norms)),
                "clip_fraction": clipped / steps_per_epoch,
                "message_norms": np.linalg.norm(led.messages, axis=2).mean(axis=1).tolist(),  # (T,)
                "reach": reach_by_distance(led.reach).tolist(),  # (T,) by distance from the end
            }
        )
    return records, reach_by_distance(led.reach)
