"""The README's figure: how far back the gradient reaches in taggers of each cell trained on CoNLL.

For each model directory, the reach ‖∂s⟨n⟩/∂s⟨n−d⟩‖₂ of the first word layer's left-to-right
direction (s = a⟨t⟩, or the whole LSTM state [a⟨t⟩; c⟨t⟩]), the product of the cell's step
Jacobians measured on dev sentences (``Tagger.reach_profile``), is drawn against the distance d:
median over sentences of at least K words, with the quartiles shaded.

    python benchmarks/reach_figure.py runs/cells/ner-rnn runs/cells/ner-gru runs/cells/ner-lstm \\
        --data ../shared/data/conll2003/eng.testa --out docs/img/reach-by-cell.png
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import bptt

COLOURS = {"rnn": "#d1402a", "gru": "#2a8f4a", "lstm": "#1f5fa8"}
NAMES = {"rnn": "vanilla tanh RNN", "gru": "GRU", "lstm": "LSTM"}


def profiles(model_dir, sentences, K):
    """(N, K) reach by distance of each sentence (first K words of sentences with ≥ K words)."""
    tagger = bptt.load_tagger(model_dir)
    rows = [np.asarray(tagger.reach_profile([words], K=K), dtype=float) for words in sentences]
    return tagger.cfg, np.stack(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", metavar="DIR")
    p.add_argument("--data", required=True, metavar="FILE", help="CoNLL file of sentences to measure on")
    p.add_argument("--K", type=int, default=30, help="distances 0..K-1 (default 30)")
    p.add_argument("--sentences", type=int, default=200, help="at most this many sentences (default 200)")
    p.add_argument("--out", required=True, metavar="PNG")
    args = p.parse_args(argv)
    sentences = [s.words for s in bptt.read_conll(args.data) if len(s.words) >= args.K][: args.sentences]
    if not sentences:
        raise SystemExit(f"{args.data}: no sentence of at least {args.K} words")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.2), dpi=110)
    ax = fig.add_subplot()
    d = np.arange(args.K)
    for model in args.models:
        cfg, R = profiles(model, sentences, args.K)
        lo, mid, hi = np.percentile(R, [25, 50, 75], axis=0)
        colour = COLOURS.get(cfg.cell, "black")
        label = f"{NAMES.get(cfg.cell, cfg.cell)}  ({cfg.task}, {cfg.hidden} units)"
        ax.plot(d, mid, color=colour, lw=2, label=label)
        ax.fill_between(d, lo, hi, color=colour, alpha=0.18, lw=0)
        print(
            f"{model}: {cfg.cell} median reach at d = 1, 5, 10, 20: "
            + ", ".join(f"{mid[k]:.3g}" for k in (1, 5, 10, 20) if k < args.K)
        )
    ax.set_yscale("log")
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("distance d = n − t (words back from word n)")
    ax.set_ylabel("‖∂s⟨n⟩ / ∂s⟨t⟩‖₂")
    ax.set_title(
        f"How far back the gradient reaches: trained CoNLL-2003 taggers, {len(sentences)} dev sentences",
        fontsize=9.5,
    )
    ax.legend(fontsize=8.5, loc="lower left")
    ax.grid(alpha=0.3, which="both", lw=0.4)
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
