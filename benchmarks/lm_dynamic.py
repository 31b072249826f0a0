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
        out["dynamic"] = model.dynamic_bits_per_char(text, lr, args.rule, decay, steps, n)
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


if __name__ == "__main__":
    main()
