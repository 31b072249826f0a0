"""``bptt tag``: tag text with a trained model, streaming."""

from __future__ import annotations

import json
import sys

from ..errors import BpttError
from .common import add_command, add_threads_option, blas_threads, strip_prefix_arg, tokenize

EXAMPLES = """\
  bptt tag --model runs/person "Harry Potter and Hermione Granger invented a new spell."
  echo "Ada Lovelace met Charles Babbage in London." | bptt tag --model runs/ner
  bptt tag --model runs/ner --input news.txt --format json > news.jsonl
  bptt tag --model runs/ner --input dev.conll --input-format conll --format conll
"""


def add_parser(sub):
    p = add_command(
        sub,
        "tag",
        "tag sentences with a trained model",
        "Tag text given as arguments, on standard input, or in --input FILE (one sentence per line,\n"
        "or CoNLL columns). Output streams: memory does not grow with the input.",
        EXAMPLES,
        run,
    )
    p.add_argument("text", nargs="*", help="sentences to tag (default: read standard input)")
    p.add_argument("--model", required=True, metavar="DIR", help="model directory written by bptt train")
    p.add_argument("--input", metavar="FILE", help="read sentences from FILE")
    p.add_argument(
        "--input-format",
        choices=["lines", "conll"],
        default="lines",
        help="lines: one sentence of plain text a line (default); conll: one word a line",
    )
    p.add_argument(
        "--format",
        choices=["inline", "conll", "json"],
        default="inline",
        help="inline: [Harry Potter]PER in the text (default); conll: word tag lines; json: a line"
        " per sentence",
    )
    p.add_argument(
        "--strip-prefix",
        default="auto",
        metavar="PREFIX",
        help="for --input-format conll: remove this prefix from words (default auto)",
    )
    add_threads_option(p)


def _checked(located):
    """The words of each (place, words) pair, refusing a sentence too long to tag."""
    from ..tagging import check_length

    for place, words in located:
        check_length(words, place)
        yield words


def _lines(stream, name):
    """(``name:LINE``, words) for each non-blank line of a binary stream of UTF-8 text."""
    from ..conll import text_lines

    for lineno, line in text_lines(stream, name, "text"):
        words = tokenize(line)
        if words:
            yield f"{name}:{lineno}", words


def _file_lines(path):
    import os

    if not os.path.isfile(path):
        raise BpttError(f"{path}: no such file")
    try:
        f = open(path, "rb")
    except OSError as e:
        raise BpttError(f"{path}: cannot read: {e.strerror}") from None
    with f:
        yield from _lines(f, path)


def sentences_from(args):
    """The sentences to tag, read lazily, and the name of their source."""
    if args.text:
        out = [tokenize(t) for t in args.text]
        if not any(out):
            raise BpttError("text: no words to tag")
        return _checked((f"text[{i}]", w) for i, w in enumerate(out) if w), "text"
    if args.input and args.input_format == "conll":
        from ..conll import iter_conll

        strip = strip_prefix_arg(args.strip_prefix)
        sentences = iter_conll(args.input, strip_prefix=strip, require_tags=False)
        return _checked((f"{args.input}:{s.line}", s.words) for s in sentences), args.input
    if args.input:
        return _checked(_file_lines(args.input)), args.input
    return _checked(_lines(sys.stdin.buffer, "<stdin>")), "<stdin>"


def inline(words, tags_iob2):
    """Words with each entity bracketed and typed: ``[Harry Potter]PER``."""
    from ..conll import spans

    out = list(words)
    for typ, start, end in spans(tags_iob2):
        out[start] = "[" + out[start]
        out[end - 1] = out[end - 1] + "]" + typ
    return " ".join(out)


def run(args):
    with blas_threads(args.threads):
        return _run(args)


def _run(args):
    from ..conll import spans
    from ..tagging import load_tagger

    tagger = load_tagger(args.model)
    sentences, source = sentences_from(args)
    n = 0
    out = sys.stdout
    for words, tags in tagger.tag_stream(sentences):
        n += 1
        if args.format == "inline":
            out.write(inline(words, _iob2(tagger, tags)) + "\n")
        elif args.format == "conll":
            out.write("".join(f"{w} {t}\n" for w, t in zip(words, tags)) + "\n")
        else:
            ents = [
                {"type": t, "start": s, "end": e, "text": " ".join(words[s:e])}
                for t, s, e in spans(_iob2(tagger, tags))
            ]
            out.write(json.dumps({"words": words, "tags": tags, "entities": ents}) + "\n")
    if n == 0:
        raise BpttError(f"{source}: no sentences to tag (empty input)")
    return 0


def _iob2(tagger, tags):
    from ..conll import to_iob2

    return to_iob2(tags, tagger.scheme)
