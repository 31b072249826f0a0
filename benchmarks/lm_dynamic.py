"""Dynamic evaluation of a character model (``bptt lm evaluate --dynamic``) against a Kneser–Ney n-gram
that adapts the same way, its learning rate chosen on the training text's held-out end, never on the
evaluation text.

    python benchmarks/lm_dynamic.py --model runs/lmc/cos --train ../shared/data/conll2003/eng.train \
        --eval ../shared/data/conll2003/eng.testa --threads 2

1. The held-out end of --train (as ``bptt lm train`` cut it: ``valid_fraction`` of the text, at a
   line end), scored with dynamic evaluation at each setting of the grid (--lr × --decay × --steps ×
   --pieces); the best one is kept.
2. --eval: the static bits per character and the dynamic ones at that setting.
3. The n-gram of --order fitted on the whole of --train: static (the baseline of ``bptt lm baseline``,
   here read in the model's pieces) and adaptive: the same pieces, counting each chunk of ``steps``
   characters once it is scored, as the network learns from it (`ngram.adaptive_bits_per_char`).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a run directory of bptt lm train (stream unit)")
    ap.add_argument("--train", required=True, help="the CoNLL file the model was trained on")
    ap.add_argument("--eval", required=True, help="the CoNLL file to score")
    ap.add_argument("--rule", choices=["rms", "sgd"], default="rms")
    ap.add_argument("--lr", type=float, nargs="+", default=[1e-3, 2e-3, 3e-3])
    ap.add_argument("--decay", type=float, nargs="+", default=[0.0, 0.01])
    ap.add_argument("--steps", type=int, nargs="+", default=[20], help="characters of each piece a step")
    ap.add_argument("--pieces", type=int, nargs="+", default=[1], help="pieces read side by side")
    ap.add_argument("--order", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--figure", help="with one piece: draw the four scores along the text into this PNG")
    ap.add_argument("--window", type=int, default=10000, help="characters averaged in the figure")
    args = ap.parse_args()

    import itertools

    from bptt.cli.common import blas_threads
    from bptt.lm.corpus import read_corpus
    from bptt.lm.model import load_lm, pieces
    from bptt.lm.ngram import KneserNey, adaptive_bits_per_char, bits_per_char
    from bptt.lm.trainer import read_settings, split_held_out

    model = load_lm(args.model)
    cfg = read_settings(args.model)["settings"]
    train = read_corpus([], [args.train], None)
    _, held = split_held_out(train, cfg.valid_fraction)
    text = read_corpus([], [args.eval], None)
    out = {"model": args.model, "rule": args.rule, "held_out": {}}
    grid = list(itertools.product(args.lr, args.decay, args.steps, args.pieces))
    with blas_threads(args.threads):
        out["held_out"]["static"] = model.bits_per_char(held)
        print(f"held-out end of the training text: static {out['held_out']['static']:.4f}", flush=True)
        for lr, decay, steps, n in grid:
            bpc = model.dynamic_bits_per_char(held, lr, args.rule, decay, steps, n)
            out["held_out"][f"lr {lr:g}, decay {decay:g}, steps {steps}, pieces {n}"] = bpc
            print(
                f"  dynamic, lr {lr:g}, decay {decay:g}, a step every {steps}, {n} piece(s): {bpc:.4f}",
                flush=True,
            )
        best = min(grid, key=lambda g: out["held_out"]["lr {:g}, decay {:g}, steps {}, pieces {}".format(*g)])
        lr, decay, steps, n = best
        out.update(lr=lr, decay=decay, steps=steps, pieces=n)
        out["static"] = model.bits_per_char(text)
        print(f"{args.eval}: static {out['static']:.4f}", flush=True)
        t = time.monotonic()
        dynamic = lstm_log_probs(model, text, n, lr, args.rule, decay, steps)  # ln p of every character
        out["dynamic"] = float(-dynamic.mean() / np.log(2))
        out["dynamic_seconds"] = time.monotonic() - t
        print(f"{args.eval}: dynamic with the held-out end's best {best}: {out['dynamic']:.4f}", flush=True)
    a = model.alphabet
    fit_on = [a.encode(train)]
    seqs = [a.encode("\n" + p + "\n") for p in pieces(text, n)]  # what the network reads: "\n" first
    out["ngram_static"] = bits_per_char(KneserNey(args.order, len(a)).fit(fit_on), seqs, 1)
    print(f"Kneser-Ney n = {args.order}, static: {out['ngram_static']:.4f}", flush=True)
    out["ngram_adaptive"] = adaptive_bits_per_char(fit_on, seqs, args.order, steps, 0.75, len(a), 1)
    print(
        f"Kneser-Ney n = {args.order}, adaptive (counting every {steps} characters):"
        f" {out['ngram_adaptive']:.4f}"
    )
    print(
        f"ratios to the n-gram: static {out['static'] / out['ngram_static']:.3f},"
        f" dynamic against adaptive {out['dynamic'] / out['ngram_adaptive']:.3f},"
        f" dynamic against static {out['dynamic'] / out['ngram_static']:.3f}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    if args.figure:
        if n != 1:
            raise SystemExit("--figure: the chosen setting reads the text as one piece only")
        with blas_threads(args.threads):
            static = lstm_log_probs(model, text, 1, 0.0, "sgd", 0.0, 1000)  # no step: the static score
        curves = {
            f"LSTM, static ({-static.mean() / np.log(2):.3f})": static,
            f"LSTM, dynamic ({out['dynamic']:.3f})": dynamic,
        }
        for adaptive in (False, True):
            lp = ngram_log_probs(fit_on, seqs[0], args.order, len(a), steps, adaptive)
            how = "adaptive" if adaptive else "static"
            curves[f"{args.order}-gram, {how} ({-lp.mean() / np.log(2):.3f})"] = lp
        draw(curves, args.window, args.eval, args.figure)


def lstm_log_probs(model, text, n, lr, rule, decay, steps):
    """ln p of every character of ``text`` read as ``n`` pieces with dynamic evaluation (lr 0: the static
    score); with one piece, in the text's order."""
    from bptt.lm.model import dynamic_groups, dynamic_log_probs

    groups = dynamic_groups(text, "stream", n)
    chunks = dynamic_log_probs(model.params, model.cell, model.alphabet, groups, lr, rule, decay, steps)
    return np.concatenate([lp[m] for lp, m in chunks])


def ngram_log_probs(fit_on, seq, order, V, steps, adaptive):
    """ln p of seq[1:] by Kneser–Ney fitted on ``fit_on``, counting each chunk once scored if ``adaptive``."""
    from bptt.lm.ngram import OnlineKneserNey

    model = OnlineKneserNey(order, V)
    for q in fit_on:
        model.observe(q)
    out = []
    for t in range(0, len(seq), steps):
        out.extend(model.log_prob(seq, i) for i in range(max(t, 1), min(len(seq), t + steps)))
        if adaptive:
            model.observe(seq, t, min(len(seq), t + steps))
    return np.array(out)


def draw(curves, window, name, path):
    """Top: the four scores along the text (moving averages); bottom: what adapting gains, static − adapting,
    for the network and for the n-gram."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 6), dpi=110)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    styles = [("#1f5fa8", "--"), ("#1f5fa8", "-"), ("#888888", "--"), ("#888888", "-")]
    smooth = {}
    for (label, lp), (colour, line) in zip(curves.items(), styles):
        smooth[label] = np.convolve(-lp / np.log(2), np.ones(window) / window, mode="valid")  # moving average
        x = (np.arange(len(smooth[label])) + window / 2) / 1000
        top.plot(x, smooth[label], color=colour, linestyle=line, linewidth=1.2, label=label)
    labels = list(smooth)
    for (static, adapting), colour, who in (
        (labels[:2], "#1f5fa8", "LSTM"),
        (labels[2:], "#888888", "n-gram"),
    ):
        gain = smooth[static] - smooth[adapting]
        bottom.plot(x, gain, color=colour, linewidth=1.2, label=f"{who}: static − adapting")
    bottom.axhline(0, color="black", linewidth=0.6)
    top.set_ylabel(f"bits per character\n({window:,}-character average)")
    bottom.set_ylabel("bits per character\ngained by adapting")
    bottom.set_xlabel(f"position in {name.rsplit('/', 1)[-1]} (thousands of characters)")
    top.set_title(
        "Dynamic evaluation: the LSTM learns the text as it reads it; the n-gram counts it", fontsize=10
    )
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    top.legend(fontsize=8, ncol=2, loc="lower center", bbox_to_anchor=(0.5, 1.06), frameon=False)
    bottom.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
