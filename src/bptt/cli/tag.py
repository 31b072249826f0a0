"""``bptt tag``: tag text with a trained model, streaming."""

from __future__ import annotations

import json
import sys

from ..errors import BpttError
from .common import add_command, strip_prefix_arg, tokenize

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


def _lines(stream, name):
    for lineno, line in enumerate(stream, 1):
        words = tokenize(line)
        if words:
            yield words
        elif line.strip():
            raise BpttError(f"{name}:{lineno}: no words found in the line")


def _read_stdin_lines():
    try:
        yield from _lines(sys.stdin, "<stdin>")
    except UnicodeDecodeError as e:
        raise BpttError(f"<stdin>: not UTF-8 text ({e.reason})") from None


def _file_lines(path):
    import os

    if not os.path.isfile(path):
        raise BpttError(f"{path}: no such file")
    try:
        with open(path, encoding="utf-8") as f:
            if "\0" in f.read(4096):
                raise BpttError(f"{path}: binary file, expected text")
            f.seek(0)
            yield from _lines(f, path)
    except UnicodeDecodeError as e:
        raise BpttError(f"{path}: not UTF-8 text ({e.reason})") from None


def sentences_from(args):
    if args.text:
        out = [tokenize(t) for t in args.text]
        if not any(out):
            raise BpttError("text: no words to tag")
        return (w for w in out if w)
    if args.input and args.input_format == "conll":
        from ..conll import iter_conll

        return (
            s.words
            for s in iter_conll(
                args.input, strip_prefix=strip_prefix_arg(args.strip_prefix), require_tags=False
            )
        )
    if args.input:
        return _file_lines(args.input)
    return _read_stdin_lines()


def inline(words, tags_iob2):
    """Words with each entity bracketed and typed: ``[Harry Potter]PER``."""
    from ..conll import spans

    out = list(words)
    for typ, start, end in spans(tags_iob2):
        out[start] = "[" + out[start]
        out[end - 1] = out[end - 1] + "]" + typ
    return " ".join(out)


def run(args):
    from ..conll import spans
    from ..tagging import load_tagger

    tagger = load_tagger(args.model)
    n = 0
    out = sys.stdout
    for words, tags in tagger.tag_stream(sentences_from(args)):
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
        raise BpttError("input: no sentences to tag")
    return 0


def _iob2(tagger, tags):
    from ..conll import to_iob2

    return to_iob2(tags, tagger.scheme)
