"""CoNLL column files and the IOB tag schemes.

A CoNLL file holds one token a line, in whitespace-separated columns: the word first, the tag last
(or in ``tag_column``); a blank line ends a sentence; a ``-DOCSTART-`` line marks a document
boundary and is not a sentence. Tags are ``O`` or ``X-TYPE`` with X one of B, I, E, S.

Three schemes write the same entities (here a PER entity of 2 tokens after one of 1 token):

    IOB1   I-PER  B-PER I-PER   I- starts an entity; B- only where an entity directly follows
                                another of the same type
    IOB2   B-PER  B-PER I-PER   every entity starts with B- (also called BIO)
    IOBES  S-PER  B-PER E-PER   B- begins, I- continues, E- ends an entity; S- is a one-token entity

Every tag sequence, in any of the three schemes and also an invalid one (I-PER after O in IOB2,
B-PER not closed by E-PER in IOBES), is read into entities by the rules of conlleval, the
CoNLL shared-task scorer (``spans``), so reading never depends on knowing the scheme (E- and S-
are read as IOBES means them; the original conlleval script does not, so files for it are written
in IOB1 or IOB2):

    a chunk ENDS after token t-1 when that token is E- or S-, or it is B-/I- and token t is
        O, B- or S-, or token t has another type;
    a chunk STARTS at token t when t is B- or S-, or t is I-/E- and token t-1 is O, E- or S-,
        or token t-1 has another type.

A sentence boundary counts as an O token. ``to_iob2`` and ``from_iob2`` convert exactly between
the schemes by reading the entities and writing them again.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import Iterator, NamedTuple

from ..errors import BpttError, check_choice

SCHEMES = ("IOB1", "IOB2", "IOBES")
DOCSTART = "-DOCSTART-"

# prefixes each scheme may use
_SCHEME_PREFIXES = {"IOB1": "BI", "IOB2": "BI", "IOBES": "BIES"}
# columns are separated by runs of spaces or tabs (not by other Unicode spaces, which may be in words)
_COLUMN_SEP = re.compile(r"[ \t]+")
# a WikiANN-style language prefix: "en:", "zh-yue:", "be-x-old:"
_LANG_PREFIX = re.compile(r"^([a-z]{2,3}(?:-[a-z]+)*:)(?=.)")
# longer lines are not CoNLL text (and would otherwise be read whole into memory)
_MAX_LINE_BYTES = 1 << 20


class Sentence(NamedTuple):
    """One sentence of a CoNLL file."""

    words: list[str]  # the tokens, prefix removed
    tags: list[str]  # one tag per word; empty when the file has no tag column
    line: int  # 1-based line number of the first token in its file


# --------------------------------------------------------------------------- tags


def _tag_error(tag):
    return f"invalid tag {tag!r} (expected O or X-TYPE with X one of B, I, E, S)"


def split_tag(tag):
    """Split a tag into (prefix, type): ``"B-PER"`` -> ``("B", "PER")``, ``"O"`` -> ``("O", "")``.

    Raises BpttError (message without location; callers add it) for anything else.
    """
    if tag == "O":
        return "O", ""
    if not isinstance(tag, str) or len(tag) < 3 or tag[1] != "-" or tag[0] not in "BIES":
        raise BpttError(_tag_error(tag))
    return tag[0], tag[2:]


def _split_all(tags, name):
    """Split every tag of a sequence, naming ``name[i]`` in the error."""
    if isinstance(tags, str):
        raise BpttError(f"{name}: expected a sequence of tags, got the string {tags!r}")
    out = []
    for i, tag in enumerate(tags):
        try:
            out.append(split_tag(tag))
        except BpttError as e:
            raise BpttError(f"{name}[{i}]: {e}") from None
    return out


def _chunk_ends(prev, prev_type, cur, cur_type):
    """Does a chunk end at the previous token, given the current one? (conlleval's rule)"""
    if prev == "O":
        return False
    if prev in "ES":
        return True
    # prev is B or I: the chunk goes on only into an I-/E- of the same type
    return cur in "OBS" or prev_type != cur_type


def _chunk_starts(prev, prev_type, cur, cur_type):
    """Does a chunk start at the current token, given the previous one? (conlleval's rule)"""
    if cur == "O":
        return False
    if cur in "BS":
        return True
    # cur is I or E: it continues only a B-/I- chunk of the same type
    return prev in "OES" or prev_type != cur_type


def _spans_of_split(split):
    """Entities of a split tag sequence by conlleval's rules: [(type, start, end_exclusive)]."""
    out = []
    prev, prev_type, start = "O", "", None
    for t, (cur, cur_type) in enumerate([*split, ("O", "")]):  # a sentence ends as an O would
        if start is not None and _chunk_ends(prev, prev_type, cur, cur_type):
            out.append((prev_type, start, t))
            start = None
        if _chunk_starts(prev, prev_type, cur, cur_type):
            start = t
        prev, prev_type = cur, cur_type
    return out


def spans(tags, name="tags"):
    """The entities of a tag sequence as conlleval reads them.

    Works for IOB1, IOB2, IOBES and invalid sequences alike: an I-X after O (or after another
    type) starts an entity, exactly as conlleval counts it.
    Returns: [(type, start, end_exclusive)] in order of start.
    """
    return _spans_of_split(_split_all(tags, name))


def _render(entities, n, scheme):
    """Write entities as a tag sequence of length n in the given scheme."""
    out = ["O"] * n
    prev_end, prev_type = -1, None
    for type_, s, e in entities:
        if scheme == "IOBES":
            if e - s == 1:
                out[s] = "S-" + type_
            else:
                out[s : e - 1] = ["I-" + type_] * (e - 1 - s)
                out[s] = "B-" + type_
                out[e - 1] = "E-" + type_
        else:
            out[s:e] = ["I-" + type_] * (e - s)
            # IOB1 marks with B- only an entity that directly follows another of its type
            if scheme == "IOB2" or (s == prev_end and type_ == prev_type):
                out[s] = "B-" + type_
        prev_end, prev_type = e, type_
    return out


def _check_scheme_tags(split, scheme, name):
    allowed = _SCHEME_PREFIXES[scheme]
    for i, (prefix, type_) in enumerate(split):
        if prefix != "O" and prefix not in allowed:
            raise BpttError(f"{name}[{i}]: tag {prefix}-{type_!s} is not valid in {scheme}")


def to_iob2(tags, scheme):
    """Convert a tag sequence from ``scheme`` (IOB1, IOB2 or IOBES) to IOB2.

    Tags must use the scheme's prefixes (no E-/S- in IOB1/IOB2); the entities are read by
    conlleval's rules, so an IOB2 input with I-X after O comes back with B-X there.
    Returns: list of IOB2 tags.
    """
    check_choice("scheme", scheme, SCHEMES)
    split = _split_all(tags, "tags")
    _check_scheme_tags(split, scheme, "tags")
    return _render(_spans_of_split(split), len(split), "IOB2")


def from_iob2(tags, scheme):
    """Convert an IOB2 tag sequence to ``scheme`` (IOB1, IOB2 or IOBES).

    Returns: list of tags; ``to_iob2(from_iob2(tags, s), s) == tags`` for every valid IOB2 ``tags``.
    """
    check_choice("scheme", scheme, SCHEMES)
    split = _split_all(tags, "tags")
    _check_scheme_tags(split, "IOB2", "tags")
    return _render(_spans_of_split(split), len(split), scheme)


class SchemeWarning(UserWarning):
    """Some tags of a file do not follow the scheme the rest of it is written in."""


def detect_scheme(tag_sequences, name=None):
    """The scheme of tag sequences (lists of tags, or Sentences), decided by most of their entities.

    The rule: "IOBES" if any E- or S- tag appears anywhere. Otherwise each entity that starts
    after O or after another type is a vote: I- there is IOB1, B- is IOB2 (a B- directly after
    an entity of its own type is both). The scheme with more votes wins, IOB2 on a tie (and
    when there is no vote: such sequences read the same in IOB1 and IOB2). Nothing is
    reinterpreted: every tag is read by conlleval's rules whatever the scheme, and the scheme
    only decides how tags are written back. Entities that start against the scheme (an I-X
    after O in IOB2, a B-X after O in IOB1, an I-/E- in IOBES) are named in a `SchemeWarning`:
    the first, ``name:LINE`` (or ``line LINE`` for Sentences, ``tag_sequences[k][i]`` for
    lists), and how many.
    Returns: "IOB1", "IOB2" or "IOBES".
    """
    has_es, starts = False, {"B": [], "I": [], "E": []}  # places of entity starts by prefix
    for k, seq in enumerate(tag_sequences):
        line = seq.line if isinstance(seq, Sentence) else None
        tags = seq.tags if isinstance(seq, Sentence) else seq
        prev = ("O", "")
        for i, cur in enumerate(_split_all(tags, f"tag_sequences[{k}]")):
            has_es = has_es or cur[0] in "ES"
            if cur[0] in starts and not (prev[0] in "BI" and prev[1] == cur[1]):
                starts[cur[0]].append((cur, k, i, line))
            prev = cur
    if has_es:
        scheme, expected, strays = "IOBES", "B-{0} or S-{0}", starts["I"] + starts["E"]
    elif len(starts["I"]) > len(starts["B"]):
        scheme, expected, strays = "IOB1", "I-{0}", starts["B"]
    else:
        scheme, expected, strays = "IOB2", "B-{0}", starts["I"]
    if strays:
        (prefix, type_), k, i, line = min(strays, key=lambda s: (s[1], s[2]))
        if line is None:
            place = f"{name or 'tag_sequences'}[{k}][{i}]"
        else:
            place = f"{name}:{line + i}" if name else f"line {line + i}"
        more = f" ({len(strays)} such tags)" if len(strays) > 1 else ""
        should = expected.format(type_)
        warnings.warn(
            f"{place}: {prefix}-{type_} starts an entity where {scheme} writes {should}{more};"
            " read as the start of an entity, as conlleval reads it",
            SchemeWarning,
            stacklevel=2,
        )
    return scheme


# --------------------------------------------------------------------------- files


def _check_path(path):
    if not isinstance(path, (str, os.PathLike)):
        raise BpttError(f"path: expected a file path, got {type(path).__name__}")
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if os.path.isdir(path):
        raise BpttError(f"{path}: is a directory, expected a CoNLL file")
    if not os.path.exists(path):
        raise BpttError(f"{path}: no such file")
    if not os.access(path, os.R_OK):
        raise BpttError(f"{path}: cannot read: permission denied")
    return path


def iter_conll(path, tag_column=-1, strip_prefix=None, require_tags=True, scheme=None) -> Iterator[Sentence]:
    """Read a CoNLL column file one sentence at a time, line by line (memory does not grow).

    tag_column: index of the tag column (default the last); the word is column 0.
    strip_prefix: a string such as ``"en:"`` removed from every word (every word must carry it),
        or ``"auto"``: the ``xx:`` language prefix shared by all words of the first sentence, if any.
    require_tags: when False, a file of words alone (one column) is allowed; tags are then ``[]``.
    scheme: when given ("IOB1", "IOB2", "IOBES"), tags must use only that scheme's prefixes.
    The path is checked at once; errors in the content are raised while iterating, as BpttError
    ``path:LINE: message``; a file with no sentence is an error at its end.
    Returns: an iterator of Sentence.
    """
    path = _check_path(path)
    _check_reader_options(tag_column, strip_prefix, scheme)
    return _iter_sentences(path, _lines(path), tag_column, strip_prefix, require_tags, scheme)


def iter_conll_stream(f, name, tag_column=-1, strip_prefix=None, require_tags=True, scheme=None):
    """`iter_conll` over an open binary stream (a pipe, standard input), read line by line as it comes.

    f: has ``readline(limit)`` (a binary file, `cli.common.PipeLines`); name: shown in errors.
    Returns: an iterator of Sentence; a sentence is yielded as soon as its blank line is read.
    """
    _check_reader_options(tag_column, strip_prefix, scheme)
    return _iter_sentences(name, text_lines(f, name), tag_column, strip_prefix, require_tags, scheme)


def _check_reader_options(tag_column, strip_prefix, scheme):
    if isinstance(tag_column, bool) or not isinstance(tag_column, int):
        raise BpttError(f"tag_column: expected an int column index, got {tag_column!r}")
    if strip_prefix is not None and (not isinstance(strip_prefix, str) or not strip_prefix):
        raise BpttError(f"strip_prefix: expected None, 'auto' or a non-empty string, got {strip_prefix!r}")
    if scheme is not None:
        check_choice("scheme", scheme, SCHEMES)


def read_conll(path, **kw) -> list[Sentence]:
    """Read a whole CoNLL file (see ``iter_conll`` for the arguments).

    Returns: list of Sentence (never empty: a file without sentences is an error).
    """
    return list(iter_conll(path, **kw))


def _lines(path, what="CoNLL"):
    """(line number, text) for each line of a UTF-8 text file, read line by line (``what``: as in
    `text_lines`)."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise BpttError(f"{path}: cannot read: {e.strerror}") from None
    with f:
        yield from text_lines(f, path, what)


def text_lines(f, name, what="CoNLL"):
    """(line number, text) for each line of a binary stream of UTF-8 text, read line by line.

    Errors name the line, ``name:LINE: ...``: a NUL byte, invalid UTF-8, a line over 1 MiB.
    """
    lineno = 0
    while True:
        raw = f.readline(_MAX_LINE_BYTES + 1)
        if not raw:
            return
        lineno += 1
        if len(raw) > _MAX_LINE_BYTES:
            raise BpttError(f"{name}:{lineno}: line over {_MAX_LINE_BYTES} bytes: not a {what} file")
        if b"\0" in raw:
            raise BpttError(f"{name}:{lineno}: NUL byte: binary content, not a {what} file")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BpttError(
                f"{name}:{lineno}: invalid UTF-8 (byte 0x{raw[e.start]:02x} at byte {e.start + 1})"
            ) from None
        if lineno == 1 and text.startswith("\ufeff"):  # a UTF-8 byte-order mark
            text = text[1:]
        yield lineno, text


def _bare_word(word, prefix, auto):
    """The word without its prefix (the one given, or while detecting, any language prefix)."""
    if prefix and word.startswith(prefix):
        return word[len(prefix) :]
    m = _LANG_PREFIX.match(word) if auto else None
    return word[m.end() :] if m else word


def _iter_sentences(path, lines, tag_column, strip_prefix, require_tags, scheme):
    allowed = _SCHEME_PREFIXES[scheme] if scheme else "BIES"
    good_tags = {"O"}  # tags already checked
    n_cols = n_cols_line = None  # the file's column count, and the line that set it
    prefix = None if strip_prefix == "auto" else strip_prefix
    auto = strip_prefix == "auto"
    words, tags, first_line, n_sentences = [], [], 0, 0

    def finish():
        nonlocal prefix, auto
        if auto:  # detect from the first sentence, then hold every word to it
            found = {m.group(1) if m else None for m in map(_LANG_PREFIX.match, (w for w, _ in words))}
            prefix = found.pop() if len(found) == 1 else None
            auto = False
        if prefix is not None:
            for w, lineno in words:
                if not w.startswith(prefix) or len(w) == len(prefix):
                    raise BpttError(f"{path}:{lineno}: word {w!r} does not start with prefix {prefix!r}")
        return Sentence([w[len(prefix) :] if prefix else w for w, _ in words], tags, first_line)

    for lineno, text in lines:
        text = text.strip(" \t\r\n")
        if not text:  # blank (or whitespace-only) line: end of sentence
            if words:
                n_sentences += 1
                yield finish()
                words, tags = [], []
            continue
        cols = _COLUMN_SEP.split(text)
        if _bare_word(cols[0], prefix, auto) == DOCSTART:
            if words:  # a document boundary also ends a sentence
                n_sentences += 1
                yield finish()
                words, tags = [], []
            continue
        if n_cols is None:
            n_cols, n_cols_line = len(cols), lineno
            if n_cols == 1 and require_tags:
                raise BpttError(f"{path}:{lineno}: expected at least 2 columns (word and tag), got 1")
            if n_cols > 1 and not -n_cols <= tag_column < n_cols:
                raise BpttError(f"{path}:{lineno}: tag_column {tag_column} out of range for {n_cols} columns")
            if n_cols > 1 and tag_column % n_cols == 0:
                raise BpttError(f"{path}:{lineno}: tag_column {tag_column} is column 0, the word")
        elif len(cols) != n_cols:
            raise BpttError(
                f"{path}:{lineno}: expected {n_cols} columns as on line {n_cols_line}, got {len(cols)}"
            )
        if not words:
            first_line = lineno
        words.append((cols[0], lineno))
        if n_cols > 1:
            tag = cols[tag_column]
            if tag not in good_tags:
                try:
                    p, _ = split_tag(tag)
                except BpttError as e:
                    raise BpttError(f"{path}:{lineno}: {e}") from None
                if p not in allowed:
                    raise BpttError(f"{path}:{lineno}: tag {tag!r} is not valid in {scheme}")
                good_tags.add(tag)
            tags.append(tag)
    if words:
        n_sentences += 1
        yield finish()
    if n_sentences == 0:
        raise BpttError(f"{path}: no sentences (empty file)")


def write_conll(file_obj, words, gold, pred):
    """Write one sentence as ``word gold pred`` lines and a blank line (what conlleval reads)."""
    if isinstance(words, str):
        raise BpttError(f"words: expected a sequence of words, got the string {words!r}")
    words, gold, pred = list(words), list(gold), list(pred)
    if not len(words) == len(gold) == len(pred):
        raise BpttError(f"write_conll: {len(words)} words, {len(gold)} gold tags, {len(pred)} predicted tags")
    for name, seq in (("words", words), ("gold", gold), ("pred", pred)):
        for i, s in enumerate(seq):
            if not isinstance(s, str) or not s or _COLUMN_SEP.search(s) or "\n" in s:
                raise BpttError(f"{name}[{i}]: {s!r} is empty or contains whitespace")
    file_obj.write("".join(f"{w} {g} {p}\n" for w, g, p in zip(words, gold, pred)) + "\n")
