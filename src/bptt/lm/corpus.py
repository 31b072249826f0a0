"""The language model's text: files read as one stream of characters, or as one sequence per line.

What a text is, stated once (the n-gram baseline and the network read the same ids):

    --text FILE          the file's characters, UTF-8, as they are (a byte-order mark dropped);
                         Windows line ends "\\r\\n" become "\\n", so a line end is one character
    --conll FILE         the text of a CoNLL file: its sentences one a line, the words joined by single
                         spaces, each line ending in "\\n" (-DOCSTART- lines are not sentences)
    --entities PER       with --conll: the distinct entities of that type instead, one a line, in
                         their order of first appearance ("Peter Blackburn", ...)

Several files are one stream, in the order given. ``unit="stream"`` reads the stream as one long
sequence (trained with truncated BPTT, the state carried along); ``unit="line"`` reads each
line as its own sequence "\\n" + line + "\\n": the first "\\n" is the start symbol (read, never
predicted) and the last the end symbol (predicted: the model says where a line ends).

The alphabet: every character of the training text, plus "\\n", plus id 0, the unknown symbol
(shown "\\ufffd"), which a character never seen in training becomes — in evaluated text and in
a sampling prime — and which the model can never sample (it never saw it as a target).
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..errors import BpttError
from ..io.conll import _lines, iter_conll, spans

UNKNOWN = "\ufffd"
UNITS = ("stream", "line")
MAX_CHARS = 2**31 - 1  # texts are indexed with int64, but a 2 GiB text is not what this is for


class Alphabet:
    """The characters a model knows: id 0 the unknown symbol, ids 1… the characters, sorted."""

    def __init__(self, chars):
        chars = sorted(set(chars) | {"\n"} - {UNKNOWN})
        self.chars = [UNKNOWN, *chars]
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    @classmethod
    def of(cls, text):
        return cls(set(text))

    def encode(self, text):
        """Shapes: text of N characters. Returns: ids (N,) int64; unknown characters are 0."""
        get = self.index.get
        return np.fromiter((get(c, 0) for c in text), dtype=np.int64, count=len(text))

    def decode(self, ids):
        return "".join(self.chars[int(i)] for i in ids)

    def unknown_in(self, text):
        """The distinct characters of ``text`` this alphabet does not know, sorted."""
        return sorted(set(text) - set(self.index))

    def to_json(self):
        return json.dumps(self.chars[1:], ensure_ascii=False)

    @classmethod
    def from_json(cls, raw, where):
        try:
            chars = json.loads(raw)
        except ValueError:
            chars = None
        if not (isinstance(chars, list) and chars and all(isinstance(c, str) and len(c) == 1 for c in chars)):
            raise BpttError(f"{where}: alphabet: expected a JSON list of single characters")
        if len(set(chars)) != len(chars) or chars != sorted(chars) or "\n" not in chars:
            raise BpttError(f"{where}: alphabet: expected distinct sorted characters including a line end")
        return cls(chars)


def read_text(path):
    """A UTF-8 text file as one string ("\\r\\n" → "\\n"); errors name the file and the line."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise BpttError(f"{path}: is a directory, expected a text file")
    if not os.path.exists(path):
        raise BpttError(f"{path}: no such file")
    return "".join(text.replace("\r\n", "\n") for _, text in _lines(path, "text"))


def conll_text(path, entities=None):
    """The text of a CoNLL file: its sentences one a line, words joined by single spaces; or, with
    ``entities`` (a type such as "PER"), its distinct entities of that type, one a line."""
    if entities is None:
        return "".join(" ".join(s.words) + "\n" for s in iter_conll(path, require_tags=False))
    seen = {}
    for s in iter_conll(path):
        for name in entity_strings(s.words, s.tags, entities):
            seen.setdefault(name, None)
    if not seen:
        raise BpttError(f"{path}: no entity of type {entities}")
    return "".join(name + "\n" for name in seen)


def entity_strings(words, tags, kind):
    """The entities of type ``kind`` in one sentence as strings (IOB1 or IOB2 tags)."""
    return [" ".join(words[start:end]) for label, start, end in spans(tags) if label == kind]


def read_corpus(texts=(), conll=(), entities=None):
    """The training or evaluation text: --text files, then --conll files, as one string."""
    if not texts and not conll:
        raise BpttError("no text: give --text FILE or --conll FILE")
    if entities is not None and not conll:
        raise BpttError("--entities: needs --conll files (entities come from their tags)")
    parts = [read_text(p) for p in texts] + [conll_text(p, entities) for p in conll]
    text = "".join(p if not p or p.endswith("\n") else p + "\n" for p in parts)
    if not text.strip():
        names = ", ".join(map(str, [*texts, *conll]))
        raise BpttError(f"{names}: no text in the file(s)")
    if len(text) > MAX_CHARS:
        raise BpttError(f"the text has {len(text):,} characters; at most {MAX_CHARS:,} are read")
    return text


def lines_of(text):
    """The non-empty lines of a text (``unit="line"``)."""
    return [line for line in text.split("\n") if line]


def line_batch(lines, alphabet):
    """Lines as padded sequences "\\n" + line + "\\n", time-major.

    Returns: ids_in (T, B), ids_out (T, B), mask (T, B) bool; T = the longest line + 1.
    """
    T, B = max(map(len, lines)) + 1, len(lines)
    ids_in = np.zeros((T, B), dtype=np.int64)
    ids_out = np.zeros((T, B), dtype=np.int64)
    mask = np.zeros((T, B), dtype=bool)
    nl = alphabet.index["\n"]
    for b, line in enumerate(lines):
        ids = alphabet.encode(line)
        n = len(ids)
        ids_in[0, b], ids_in[1 : n + 1, b] = nl, ids  # read "\n" (start) then the line
        ids_out[:n, b], ids_out[n, b] = ids, nl  # predict the line, then "\n" (end)
        mask[: n + 1, b] = True
    return ids_in, ids_out, mask
