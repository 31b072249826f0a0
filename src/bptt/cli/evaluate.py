"""``bptt evaluate``: conlleval-style scores of a trained model on a CoNLL file."""

from __future__ import annotations

import sys

from .common import add_command, add_reader_options, add_threads_option, blas_threads, strip_prefix_arg

EXAMPLES = """\
  bptt evaluate --model runs/person --data ../shared/data/conll2003/eng.testa
  bptt evaluate --model runs/ner --data ../shared/data/conll2003/eng.testa --output dev.pred
  perl conlleval < dev.pred          # the original script scores the file identically
"""


def add_parser(sub):
    p = add_command(
        sub,
        "evaluate",
        "score a model on a tagged CoNLL file",
        "Print entity-level precision, recall and F1 per type and overall (as conlleval computes\n"
        "them) and token accuracy; for the person task also token-level F1.",
        EXAMPLES,
        run,
    )
    p.add_argument("--model", required=True, metavar="DIR", help="model directory written by bptt train")
    p.add_argument("--data", required=True, metavar="FILE", help="CoNLL file with gold tags")
    p.add_argument("--output", metavar="FILE", help="write 'word gold predicted' lines for conlleval")
    add_reader_options(p)
    add_threads_option(p)


def run(args):
    with blas_threads(args.threads):
        return _run(args)


def _run(args):
    from ..conll import detect_scheme, from_iob2, read_conll, to_iob2, write_conll
    from ..metrics import evaluate, token_f1
    from ..modelfiles import atomic_open
    from ..tagging import check_length, load_tagger
    from ..train import person_only

    tagger = load_tagger(args.model)
    sentences = read_conll(
        args.data, tag_column=args.tag_column, strip_prefix=strip_prefix_arg(args.strip_prefix)
    )
    for s in sentences:
        check_length(s.words, f"{args.data}:{s.line}")
    scheme = detect_scheme(sentences)
    gold = [to_iob2(s.tags, scheme) for s in sentences]
    if tagger.cfg.task == "person":
        gold = [person_only(g) for g in gold]
    pred = tagger.predict([s.words for s in sentences])
    scores = evaluate(gold, pred)
    print(f"{args.data}: {len(sentences):,} sentences, {scores.tokens:,} words ({tagger.cfg.task} model)")
    print(scores.format())
    if tagger.cfg.task == "person":
        p, r, f = token_f1(gold, pred)
        print(
            f"token level (is the word part of a name?): precision {p:6.2f}%  recall {r:6.2f}%  F1 {f:6.2f}"
        )
    if args.output:
        with atomic_open(args.output, "w") as f:
            for s, g, y in zip(sentences, gold, pred):
                write_conll(f, s.words, from_iob2(g, scheme), from_iob2(y, scheme))
        print(f"wrote {args.output}", file=sys.stderr)
    return 0
