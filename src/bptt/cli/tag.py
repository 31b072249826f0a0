"""``bptt tag``: tag text with a trained model, streaming."""

from __future__ import annotations

import contextlib
import json
import reprlib

from ..errors import BpttError
from .common import add_command, add_threads_option, blas_threads, open_input, strip_prefix_arg

EXAMPLES = """\
  bptt tag --model runs/person "Harry Potter and Hermione Granger invented a new spell."
  echo "Mr. Smith of Acme Corp. visited the U.S. Senate." | bptt tag --model runs/ner
  bptt tag --model runs/ner --input article.txt --format json > article.jsonl
  bptt tag --model runs/ner --input dev.conll --input-format conll --format conll
  bptt tag --model ner.onnx --input article.txt      # a file written by bptt export: the same output
"""


def add_parser(sub):
    p = add_command(
        sub,
        "tag",
        "tag sentences with a trained model",
        "Tag raw text given as arguments, on standard input, or in --input FILE (plain text, a\n"
        "paragraph or a sentence a line; or CoNLL columns). Text is cut into tokens as CoNLL-2003 is\n"
        "(U.S., Corp. and Mr. keep their period, won't is wo n't, Smith's is Smith 's) and into\n"
        "sentences, each tagged alone. Output streams: memory does not grow with the input, and\n"
        "standard input from a terminal or a pipe is answered line by line as it arrives.\n"
        "Every input line (or argument, or CoNLL sentence) gives one record, in order, blank lines too:\n"
        "inline: the line as it is, with [entities]TYPE bracketed in it; json: one line with its\n"
        '"line" number (1-based; for CoNLL input, the line of the sentence\'s first word), "words",\n'
        '"tags", each word\'s character "offsets" in the line, "sentences" (word ranges) and\n'
        '"entities" with type, text, char_start and char_end (offsets into the line; for CoNLL input,\n'
        "into the words joined by single spaces); conll: 'word tag' lines and a blank line, so the\n"
        "n-th blank line of the output ends the n-th record (a blank input line: just it).",
        EXAMPLES,
        run,
    )
    p.add_argument("text", nargs="*", help="sentences to tag (default: read standard input)")
    p.add_argument(
        "--model",
        required=True,
        metavar="DIR",
        help="model directory written by bptt train, or FILE.onnx written by bptt export (onnxruntime)",
    )
    p.add_argument(
        "--input",
        metavar="FILE",
        help="read sentences from FILE (a file, or a pipe or device, read as lines arrive); not with TEXT",
    )
    p.add_argument(
        "--input-format",
        choices=["lines", "conll"],
        default="lines",
        help="of --input or standard input: lines: plain text, one or more sentences a line (default);"
        " conll: one word a line",
    )
    p.add_argument(
        "--format",
        choices=["inline", "conll", "json"],
        default="inline",
        help="inline: [Harry Potter]PER in the text (default); conll: word tag lines; json: a line"
        " per input line: its number, words, tags, offsets and entities",
    )
    p.add_argument(
        "--strip-prefix",
        default="auto",
        metavar="PREFIX",
        help="for --input-format conll: remove this prefix from words (default auto)",
    )
    add_threads_option(p)


def _checked(located):
    """(line, Segmented) for each (place, line, Segmented), refusing a sentence too long to tag."""
    from ..models.tagger import check_length

    for place, line, seg in located:
        for a, b in seg.sentences:
            check_length(seg.tokens[a:b], place)
        yield line, seg


def _lines(stream, name, tagger):
    """(``name:LINE``, LINE, Segmented) for each line of a binary stream of UTF-8 text, blank ones
    too; the line without its line ending. The stream is closed at the end."""
    from ..io.conll import text_lines

    with contextlib.closing(stream):
        for lineno, line in text_lines(stream, name, "text"):
            line = line[:-1] if line.endswith("\n") else line
            line = line[:-1] if line.endswith("\r") else line
            yield f"{name}:{lineno}", lineno, tagger.segment(line)


def _conll(stream, name, strip):
    """(``name:LINE``, LINE, Segmented) for each CoNLL sentence of a binary stream, its words as they are."""
    from ..io.conll import iter_conll_stream
    from ..io.text import pretokenized

    with contextlib.closing(stream):
        for s in iter_conll_stream(stream, name, strip_prefix=strip, require_tags=False):
            yield f"{name}:{s.line}", s.line, pretokenized(s.words)


def sentences_from(args, tagger):
    """The texts to tag, read lazily: (line, Segmented) pairs, one per input line (blank ones too)
    or CoNLL sentence; and the name of their source and its ``ready`` (None: read in blocks).

    The source is one of: the text arguments, --input FILE (a regular file, or a pipe or device read
    as lines arrive), or standard input; --input-format applies to the last two.
    """
    if args.text and args.input is not None:
        shown = reprlib.repr(" ".join(args.text))
        raise BpttError(f"--input: cannot be given with text to tag ({shown}): tag one or the other")
    if args.text and args.input_format != "lines":
        raise BpttError(
            f"--input-format {args.input_format}: reads --input or standard input; text arguments are"
            " plain text"
        )
    if args.text:
        out = [tagger.segment(t) for t in args.text]
        if not any(seg.tokens for seg in out):
            raise BpttError("text: no words to tag")
        return _checked((f"text[{i}]", i + 1, seg) for i, seg in enumerate(out)), "text", None
    stream, name, ready = open_input(args.input)
    if args.input_format == "conll":
        located = _conll(stream, name, strip_prefix_arg(args.strip_prefix))
    else:
        located = _lines(stream, name, tagger)
    return _checked(located), name, ready


def inline(words, tags_iob2):
    """Words with each entity bracketed and typed: ``[Harry Potter]PER``."""
    from ..io.conll import spans

    out = list(words)
    for typ, start, end in spans(tags_iob2):
        out[start] = "[" + out[start]
        out[end - 1] = out[end - 1] + "]" + typ
    return " ".join(out)


def inline_text(text, entities):
    """The text as it is, each entity bracketed and typed where it stands: ``Mr. [Smith]PER said``."""
    out, pos = [], 0
    for e in entities:
        out += [text[pos : e.char_start], "[", text[e.char_start : e.char_end], "]", e.type]
        pos = e.char_end
    out.append(text[pos:])
    return "".join(out)


def run(args):
    with blas_threads(args.threads):
        return _run(args)


def _run(args):
    import itertools

    from ..io.output import open_output
    from ..models.tagger import load_tagger

    tagger = load_tagger(args.model, threads=args.threads)
    located, source, ready = sentences_from(args, tagger)
    inputs = [args.input] if args.input else [] if args.text else [0]
    n = 0
    with open_output("-", inputs=inputs) as out:
        located, mine = itertools.tee(located)
        for tagged, (line, _) in zip(tagger.tag_segmented((seg for _, seg in located), ready=ready), mine):
            n += 1
            out.write(format_record(args.format, line, tagged))
            if ready is not None:
                out.flush()  # answer what has arrived before reading on
    if n == 0:  # blank lines are records (of no words); an input without a line has none
        raise BpttError(f"{source}: no sentences to tag (empty input)")
    return 0


def format_record(fmt, line, tagged):
    """One output record of a `Tagged` text: a line of text or JSON, or word-tag lines ending in a
    blank line."""
    seg = tagged.segmented
    words = [t.text for t in seg.tokens]
    if fmt == "inline":
        return inline_text(seg.text, tagged.entities) + "\n"
    if fmt == "conll":
        return "".join(f"{w} {t}\n" for w, t in zip(words, tagged.tags)) + "\n"
    ents = [
        {
            "type": e.type,
            "text": e.text,
            "char_start": e.char_start,
            "char_end": e.char_end,
            "start": s,
            "end": end,
        }
        for e, (_, s, end) in zip(tagged.entities, tagged.spans)
    ]
    record = {
        "line": line,
        "words": words,
        "tags": tagged.tags,
        "offsets": [[t.start, t.end] for t in seg.tokens],
        "sentences": [list(r) for r in seg.sentences],
        "entities": ents,
    }
    return json.dumps(record) + "\n"
