"""``bptt evaluate``: conlleval-style scores of a trained model on a CoNLL file."""

from __future__ import annotations

import sys

from .common import add_command, add_reader_options, add_threads_option, blas_threads, strip_prefix_arg

EXAMPLES = """\
  bptt evaluate --model runs/person --data ../shared/data/conll2003/eng.testa
  bptt evaluate --model runs/ner --data ../shared/data/conll2003/eng.testa --output dev.pred
  perl conlleval < dev.pred          # the original script scores the file identically
  bptt evaluate --model runs/ner --data dev.conll --output - | perl conlleval    # scores on stderr
"""


def add_parser(sub):
    p = add_command(
        sub,
        "evaluate",
        "score a model on a tagged CoNLL file",
        "Print entity-level precision, recall and F1 per type and overall (as conlleval computes\n"
        "them) and token accuracy; for the person task also token-level F1. Then the same scores\n"
        "on the unseen names only: entities none of whose words is in the model's vocabulary\n"
        "(the words of its training file), the measure of what generalises.",
        EXAMPLES,
        run,
    )
    p.add_argument("--model", required=True, metavar="DIR", help="model directory written by bptt train")
    p.add_argument("--data", required=True, metavar="FILE", help="CoNLL file with gold tags")
    p.add_argument(
        "--output",
        metavar="FILE",
        help="write 'word gold predicted' lines for conlleval: the gold tags as in --data (IOBES, which"
        " conlleval cannot read, as IOB2), the predicted ones in the same scheme; '-' or /dev/stdout:"
        " standard output, and the scores go to standard error. Never written over an input",
    )
    add_reader_options(p)
    add_threads_option(p)


def run(args):
    with blas_threads(args.threads):
        return _run(args)


def _run(args):
    import contextlib

    from ..io.conll import write_conll
    from ..io.output import is_stdout, open_output

    inputs = [args.data, *(f"{args.model}/{f}" for f in ("config.json", "vocab.json", "weights.safetensors"))]
    to_stdout = args.output is not None and is_stdout(args.output)
    with contextlib.ExitStack() as stack:  # the output is checked and opened before the work
        out = stack.enter_context(open_output(args.output, inputs)) if args.output else None
        report = sys.stderr if to_stdout else stack.enter_context(open_output("-", inputs))
        rows = _evaluate(args, report)
        for row in rows if out is not None else ():
            write_conll(out, *row)
    if args.output and not to_stdout:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _evaluate(args, report):
    """Score the model on --data, writing the scores to ``report``.

    Returns: the (words, gold, predicted) rows of --output: gold as in the file (IOBES as IOB2,
    which conlleval reads), the prediction in the same scheme.
    """
    from ..io.conll import detect_scheme, from_iob2, read_conll, to_iob2
    from ..models.metrics import evaluate, token_f1, unseen_span
    from ..models.tagger import check_length, load_tagger
    from ..training import person_only

    tagger = load_tagger(args.model)
    sentences = read_conll(
        args.data, tag_column=args.tag_column, strip_prefix=strip_prefix_arg(args.strip_prefix)
    )
    for s in sentences:
        check_length(s.words, f"{args.data}:{s.line}")
    scheme = detect_scheme(sentences, args.data)
    gold = [to_iob2(s.tags, scheme) for s in sentences]
    if tagger.cfg.task == "person":
        gold = [person_only(g) for g in gold]
    pred = tagger.predict([s.words for s in sentences])
    scores = evaluate(gold, pred)
    size = f"{len(sentences):,} sentences, {scores.tokens:,} words"
    print(f"{args.data}: {size} ({tagger.cfg.task} model)", file=report)
    print(scores.format(), file=report)
    if tagger.cfg.task == "person":
        p, r, f = token_f1(gold, pred)
        print(
            f"token level (is the word part of a name?): precision {p:6.2f}%  recall {r:6.2f}%  F1 {f:6.2f}",
            file=report,
        )
    unseen = evaluate(gold, pred, keep=unseen_span([s.words for s in sentences], tagger.vocab))
    print(
        f"unseen names (no word in the training vocabulary): {unseen.gold} of {scores.gold} gold, "
        f"{unseen.predicted} predicted; precision: {unseen.precision:6.2f}%; recall: {unseen.recall:6.2f}%; "
        f"FB1: {unseen.f1:6.2f}",
        file=report,
    )
    for t, s in unseen.per_type.items() if len(unseen.per_type) > 1 else ():
        scores_t = f"precision: {s.precision:6.2f}%; recall: {s.recall:6.2f}%; FB1: {s.f1:6.2f}"
        print(f"{t:>17}: {scores_t}  {s.support}", file=report)
    if scheme == "IOBES":  # conlleval reads E- and S- otherwise: IOB2 both
        return [(s.words, g, y) for s, g, y in zip(sentences, gold, pred)]
    keep = person_only if tagger.cfg.task == "person" else list  # the gold tags as written in the file
    return [(s.words, keep(s.tags), from_iob2(y, scheme)) for s, y in zip(sentences, pred)]
