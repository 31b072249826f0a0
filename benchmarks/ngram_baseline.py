"""Bits per character of interpolated Kneser–Ney character n-grams on the text of CoNLL files.

The text of a CoNLL file is its sentences one per line, the tokens (column 1) of each sentence joined
by single spaces, ``-DOCSTART-`` dropped, each line ending with "\\n"; the whole file is one stream of
characters. The vocabulary is the training text's distinct characters plus one "unknown" id for
characters of the evaluation text never seen in training. Every character of the evaluation stream is
scored, each "\\n" included; the first ones have the short history that exists (``bptt.lm.ngram``).
Prints one line per order: bits per character, and the seconds to fit and to score.

    nice -n 19 python benchmarks/ngram_baseline.py --train ../shared/data/conll2003/eng.train \\
        --eval ../shared/data/conll2003/eng.testa --orders 2 3 4 5 6 7
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from bptt.lm.ngram import KneserNey, bits_per_char

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "conll2003"))


def conll_text(path):
    """The text of a CoNLL file: one line per sentence, tokens joined by spaces, -DOCSTART- dropped."""
    lines, tokens = [], []
    with open(path, encoding="utf-8") as f:
        for raw in f:
            fields = raw.split()
            if fields and fields[0] != "-DOCSTART-":
                tokens.append(fields[0])
            elif not fields and tokens:  # a blank line ends a sentence
                lines.append(" ".join(tokens) + "\n")
                tokens = []
    if tokens:
        lines.append(" ".join(tokens) + "\n")
    return "".join(lines)


def encode(text, index, unknown):
    """Characters as ids in ``index``; characters not in it become ``unknown``. Returns (len(text),) int64."""
    return np.array([index.get(ch, unknown) for ch in text], dtype=np.int64)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", default=os.path.join(DATA, "eng.train"), help="CoNLL file to count on")
    p.add_argument("--eval", default=os.path.join(DATA, "eng.testa"), help="CoNLL file to score")
    p.add_argument("--orders", type=int, nargs="+", default=[2, 3, 4, 5, 6, 7])
    p.add_argument("--discount", type=float, default=0.75)
    args = p.parse_args(argv)

    train_text, eval_text = conll_text(args.train), conll_text(args.eval)
    chars = sorted(set(train_text))
    index = {ch: i for i, ch in enumerate(chars)}
    unknown = len(chars)  # one extra id for characters never seen in training
    train, dev = encode(train_text, index, unknown), encode(eval_text, index, unknown)
    V = len(chars) + 1
    print(
        f"train {len(train)} chars, eval {len(dev)} chars ({int((dev == unknown).sum())} unknown),"
        f" V = {V}, D = {args.discount}"
    )
    print(f"{'n':>2} {'bpc':>7} {'fit s':>7} {'score s':>8}")
    for n in args.orders:
        t0 = time.perf_counter()
        model = KneserNey(n, V, args.discount).fit([train])
        t1 = time.perf_counter()
        bpc = bits_per_char(model, [dev])
        t2 = time.perf_counter()
        print(f"{n:>2} {bpc:7.4f} {t1 - t0:7.2f} {t2 - t1:8.2f}", flush=True)


if __name__ == "__main__":
    main()
