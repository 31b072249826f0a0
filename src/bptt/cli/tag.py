"""``bptt tag``: tag text with a trained model, streaming."""

from __future__ import annotations

import json
import sys

from ..errors import BpttError
from .common import PipeLines, add_command, add_threads_option, blas_threads, strip_prefix_arg, tokenize

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
        "or CoNLL columns). Output streams: memory does not grow with the input, and standard input\n"
        "from a terminal or a pipe is answered line by line as it arrives (a file, in blocks).\n"
        "Every input line (or argument, or CoNLL sentence) gives one record, in order, blank lines too:\n"
        'inline: one line (empty for a blank line); json: one line with its "line" number (1-based;\n'
        "for CoNLL input, the line of the sentence's first word); conll: 'word tag' lines and a blank\n"
        "line, so the n-th blank line of the output ends the n-th record (a blank input line: just it).",
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
        " per input line, with its number",
    )
    p.add_argument(
        "--strip-prefix",
        default="auto",
        metavar="PREFIX",
        help="for --input-format conll: remove this prefix from words (default auto)",
    )
    add_threads_option(p)


def _checked(located):
    """(line, words) for each (place, line, words), refusing a sentence too long to tag."""
    from ..tagging import check_length

    for place, line, words in located:
        check_length(words, place)
        yield line, words


def _lines(stream, name):
    """(``name:LINE``, LINE, words) for each line of a binary stream of UTF-8 text, blank ones too."""
    from ..conll import text_lines

    for lineno, line in text_lines(stream, name, "text"):
        yield f"{name}:{lineno}", lineno, tokenize(line)


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


def _stdin():
    """Standard input and its ``ready``: a pipe or terminal is answered line by line, a file in blocks."""
    import os
    import stat

    try:
        fd = sys.stdin.fileno()
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except (AttributeError, OSError, ValueError):  # a stream without a descriptor (tests)
        return sys.stdin.buffer, None
    if regular:
        return sys.stdin.buffer, None
    pipe = PipeLines(fd)
    return pipe, pipe.ready


def sentences_from(args):
    """The sentences to tag, read lazily: (line, words) pairs, one per input line (blank ones
    too) or CoNLL sentence; and the name of their source and its ``ready`` (None: read in blocks).
    """
    if args.text:
        out = [tokenize(t) for t in args.text]
        if not any(out):
            raise BpttError("text: no words to tag")
        return _checked((f"text[{i}]", i + 1, w) for i, w in enumerate(out)), "text", None
    if args.input and args.input_format == "conll":
        from ..conll import iter_conll

        strip = strip_prefix_arg(args.strip_prefix)
        sentences = iter_conll(args.input, strip_prefix=strip, require_tags=False)
        return _checked((f"{args.input}:{s.line}", s.line, s.words) for s in sentences), args.input, None
    if args.input:
        return _checked(_file_lines(args.input)), args.input, None
    stream, ready = _stdin()
    return _checked(_lines(stream, "<stdin>")), "<stdin>", ready


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
    import itertools

    from ..output import open_output
    from ..tagging import load_tagger

    tagger = load_tagger(args.model)
    located, source, ready = sentences_from(args)
    inputs = [args.input] if args.input else [] if args.text else [0]
    n = 0
    with open_output("-", inputs=inputs) as out:
        located, mine = itertools.tee(located)
        for block in tagger.tag_blocks((words for _, words in located), ready=ready):
            for (words, tags), (line, _) in zip(block, mine):
                n += bool(words)
                out.write(_format(args.format, tagger, line, words, tags))
            out.flush()  # answer what has arrived before reading on
    if n == 0:
        raise BpttError(f"{source}: no sentences to tag (empty input)")
    return 0


def _format(fmt, tagger, line, words, tags):
    """One output record: a line of text or JSON, or word-tag lines ending in a blank line."""
    from ..conll import spans

    if fmt == "inline":
        return inline(words, _iob2(tagger, tags)) + "\n"
    if fmt == "conll":
        return "".join(f"{w} {t}\n" for w, t in zip(words, tags)) + "\n"
    ents = [
        {"type": t, "start": s, "end": e, "text": " ".join(words[s:e])}
        for t, s, e in spans(_iob2(tagger, tags))
    ]
    return json.dumps({"line": line, "words": words, "tags": tags, "entities": ents}) + "\n"


def _iob2(tagger, tags):
    from ..conll import to_iob2

    return to_iob2(tags, tagger.scheme)
