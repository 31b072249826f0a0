"""``bptt demo``: train a person-name tagger on the built-in synthetic corpus, in under a minute."""

from __future__ import annotations

import os
import tempfile
import time

from .common import add_command, add_seed_option, blas_threads

EXAMPLES = """\
  bptt demo                      # about a minute on 2 cores; keeps the model in runs/demo
  bptt demo --seconds 20 --out /tmp/demo
  bptt tag --model runs/demo "Ada Lovelace wrote to Charles Babbage."
"""

# the corpus is generated and held in memory, and a demo trains for --seconds: more would never be seen
MAX_SENTENCES = 100_000

REAL_DATA = (
    "bptt train --train ../shared/data/conll2003/eng.train --dev ../shared/data/conll2003/eng.testa"
    " --task person --out runs/person --time-budget 10"
)


def add_parser(sub):
    p = add_command(
        sub,
        "demo",
        "train a person-name tagger on a built-in corpus and tag the lecture's sentence",
        "Generate a synthetic corpus (the project's own templates and name lists), train the\n"
        "lecture's RNN as a bidirectional person-name tagger on it by hand-written BPTT, and tag\n"
        "sentences whose names never occur in the training corpus.",
        EXAMPLES,
        run,
    )
    p.add_argument(
        "--out", default="runs/demo", metavar="DIR", help="where to keep the model (default runs/demo)"
    )
    p.add_argument("--seconds", type=float, default=40, help="training time budget (default 40)")
    p.add_argument(
        "--sentences",
        type=int,
        default=4000,
        help=f"training sentences to generate, at most {MAX_SENTENCES:,} (default 4000)",
    )
    add_seed_option(p)


def _write(path, sentences):
    with open(path, "w", encoding="utf-8") as f:
        for s in sentences:
            f.write("".join(f"{w} {t}\n" for w, t in zip(s.words, s.tags)) + "\n")


def _holds_a_demo(out):
    """Whether ``out`` holds a run of ``bptt demo``: the demo replaces its own, and no other."""
    from ..errors import BpttError
    from ..training import read_run_file

    try:
        return read_run_file(out)[0].extra.get("demo") is True
    except BpttError:
        return False


def check_options(args):
    """Refuse bad options before any work, naming the option."""
    import math

    from ..errors import BpttError
    from ..training.rundir import RUN_FILES, check_out_dir, list_out_dir

    if not (math.isfinite(args.seconds) and args.seconds > 0):
        raise BpttError(f"--seconds: expected a number of seconds > 0, got {args.seconds:g}")
    if not 1 <= args.sentences <= MAX_SENTENCES:
        raise BpttError(
            f"--sentences: expected 1 to {MAX_SENTENCES:,} (the corpus is generated in memory, and a demo"
            f" trains for --seconds only; bptt train takes real data of any size), got {args.sentences:,}"
        )
    if not args.out:
        raise BpttError("--out: empty; name the directory for the model")
    demo = _holds_a_demo(args.out)
    check_out_dir(args.out, overwrite=True)  # refuses a directory of other files, whoever asks
    if not demo and any(n in RUN_FILES for n in list_out_dir(args.out) or ()):
        # bptt train's model or run: the demo replaces only its own, and has no --overwrite or --resume
        raise BpttError(
            f"{args.out}: holds a model or run of bptt train; the demo replaces only its own:"
            " choose another --out"
        )


def run(args):
    check_options(args)
    with blas_threads(1):  # small matrices: one BLAS thread is fastest
        return _run(args)


def _run(args):
    from ..io.synthetic import DEMO_SENTENCES, make_corpus
    from ..io.text import detokenize
    from ..models.metrics import evaluate
    from ..models.tagger import load_tagger
    from ..models.tagger_network import TaggerConfig
    from ..training import TrainConfig, person_only, train
    from .tag import inline_text

    start = time.monotonic()
    print("bptt demo: a person-name tagger trained by hand-written backpropagation through time.")
    print("The corpus is SYNTHETIC: sentences generated from bptt's own templates and name lists.")
    train_set = make_corpus(args.sentences, args.seed, "train")
    test_set = make_corpus(500, args.seed + 1, "test")  # first names and surnames never seen in training
    with tempfile.TemporaryDirectory() as tmp:
        paths = {k: os.path.join(tmp, k) for k in ("train", "test")}
        _write(paths["train"], train_set)
        _write(paths["test"], test_set)
        n_words = sum(len(s.words) for s in train_set)
        print(
            f"training on {len(train_set):,} sentences ({n_words:,} words);"
            " dev = 500 sentences with new names\n"
        )
        tcfg = TrainConfig(
            train=paths["train"],
            dev=paths["test"],
            time_budget=args.seconds / 60,
            epochs=12,
            patience=4,
            seed=args.seed,
            lr=3e-3,
            extra={"demo": True},
        )
        mcfg = TaggerConfig(
            task="person",
            word_dim=32,
            char_dim=16,
            char_hidden=16,
            hidden=48,
            dropout=0.3,
            word_dropout=0.3,
            cell="rnn",  # the lecture's network: the demo shows its BPTT, in seconds
        )
        train(tcfg, mcfg, args.out, overwrite=_holds_a_demo(args.out))
    tagger = load_tagger(args.out)

    pred = tagger.predict([s.words for s in test_set])
    scores = evaluate([person_only(s.tags) for s in test_set], pred)
    print(
        f"\nnames never seen in training: PER precision {scores.precision:.1f}  recall {scores.recall:.1f}"
        f"  F1 {scores.f1:.1f}"
    )
    print("\ntagging (the model marks [names]PER; P = its probability that a word is part of a name):")
    texts = [detokenize(s.split()) for s in DEMO_SENTENCES]  # as typed: "On Monday, Dr. Bartholomew ..."
    found = list(tagger.tag_many(texts))  # what `bptt tag` does: tokens, sentences, entities
    for text, entities in zip(texts, found):
        print("  " + inline_text(text, entities))
    first = tagger.trace([t.text for t in tagger.segment(texts[0]).tokens])
    print("\n  " + "  ".join(f"{w}:{p:.2f}" for w, p in zip(first["words"], first["y_hat"])))
    print(f"  names found in the lecture's sentence: {', '.join(e.text for e in found[0]) or 'none'}")
    print(f"\ndone in {time.monotonic() - start:.0f} s; the model is in {args.out}:")
    print(f'  bptt tag --model {args.out} "Ada Lovelace wrote to Charles Babbage."')
    print(f'  bptt graph --model {args.out} "{DEMO_SENTENCES[0]}" --out graph.png')
    print("To train on real data (CoNLL-2003, about 10 minutes):")
    print(f"  {REAL_DATA}")
    return 0
