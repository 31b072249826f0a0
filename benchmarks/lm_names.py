"""A character model of person names (``bptt lm train --unit line --entities PER``): held-out names' bits
per character against Kneser–Ney n-grams, and how many sampled names are new.

    python benchmarks/lm_names.py --model runs/names --train ../shared/data/conll2003/eng.train \
        --eval ../shared/data/conll2003/eng.testa --samples 1000

Held-out names: the distinct PER entities of --eval (all of them, and those not among --train's).
Samples: drawn at temperature 1 (and --temperature), a sample is new when it is not one of the
training names.
"""

from __future__ import annotations

import argparse


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--train", required=True, help="the CoNLL file the model was trained on")
    ap.add_argument("--eval", required=True, help="a CoNLL file whose names are held out")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--temperature", type=float, nargs="+", default=[1.0, 0.8])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import numpy as np

    from bptt.lm.corpus import conll_text
    from bptt.lm.model import load_lm
    from bptt.lm.ngram import baseline_table

    model = load_lm(args.model)
    train = conll_text(args.train, "PER")
    held = conll_text(args.eval, "PER")
    known = set(train.split("\n")) - {""}
    unseen = "".join(n + "\n" for n in held.split("\n") if n and n not in known)
    print(f"training names {len(known):,}; held-out names {held.count(chr(10)):,}, of them not in training"
          f" {unseen.count(chr(10)):,}")  # fmt: skip
    for label, text in (("held-out names", held), ("unseen names", unseen)):
        line = f"{label}: {model.cell.name} {model.bits_per_char(text):.4f} bpc"
        for n, bpc in baseline_table(train, text, model.alphabet, "line", [3, 5, 7]):
            line += f"; KN n={n} {bpc:.4f}"
        print(line)
    for temperature in args.temperature:
        names = model.sample(args.samples, 60, temperature, "", np.random.default_rng(args.seed))
        new = [n for n in names if n not in known]
        print(f"temperature {temperature}: {len(new)}/{len(names)} samples are not training names"
              f" ({100 * len(new) / len(names):.1f}%); {len(set(new))} distinct new;"
              f" e.g. {', '.join(new[:12])}")  # fmt: skip


if __name__ == "__main__":
    main()
