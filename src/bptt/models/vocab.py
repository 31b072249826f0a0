"""Words, characters and casing as integer ids.

Every distinct surface form (exact spelling) gets a *form id*; a form knows its word id
(lower-cased, digits mapped to 0), its casing class and its characters. Sentences are
encoded once as form ids, and a batch turns them into word, casing and character ids with
three gathers. Id 0 is padding everywhere and id 1 the unknown word / character.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from ..errors import BpttError

PAD, UNK = 0, 1
MAX_CHARS = 20  # longer words keep their first 10 and last 10 characters

CASINGS = ("<pad>", "lower", "UPPER", "Title", "mIxed", "digits", "has0digit", "punct", "other")
_DIGITS = re.compile(r"\d")


def normalize(word):
    """The word-embedding key: lower case, every digit replaced by 0."""
    return _DIGITS.sub("0", word.lower())


def casing(word):
    """Casing class of a word, an index into CASINGS."""
    if word.isdigit():
        return 5
    if any(c.isdigit() for c in word):
        return 6
    if not any(c.isalpha() for c in word):
        return 7
    if word.islower():
        return 1
    if word.isupper():
        return 2
    if word[0].isupper() and (len(word) == 1 or word[1:].islower()):
        return 3
    if any(c.isupper() for c in word):
        return 4
    return 8


def clip_chars(word):
    """At most MAX_CHARS characters: the beginning and the end carry the signal."""
    return word if len(word) <= MAX_CHARS else word[: MAX_CHARS // 2] + word[-MAX_CHARS // 2 :]


class Vocab:
    """Word and character vocabularies built from the training sentences."""

    def __init__(self, words, chars, counts=None):
        self.words = list(words)  # id -> normalised word; 0 <pad>, 1 <unk>
        self.chars = list(chars)  # id -> character; 0 <pad>, 1 <unk>
        self.word_id = {w: i for i, w in enumerate(self.words)}
        self.char_id = {c: i for i, c in enumerate(self.chars)}
        counts = counts or {}
        # singletons are replaced by <unk> at random during training, so <unk> gets trained
        self.singleton = np.zeros(len(self.words), dtype=bool)
        for w, n in counts.items():
            if n == 1 and w in self.word_id:
                self.singleton[self.word_id[w]] = True

    @classmethod
    def build(cls, sentences, min_count=1, extra_words=()):
        """From training sentences (lists of words), plus e.g. the words of pretrained vectors."""
        counts = Counter(normalize(w) for s in sentences for w in s)
        chars = Counter(c for s in sentences for w in s for c in w)
        words = ["<pad>", "<unk>"] + sorted(w for w, n in counts.items() if n >= min_count)
        known = set(words)
        words += sorted({w for w in extra_words if w not in known})
        return cls(words, ["<pad>", "<unk>"] + sorted(chars), counts)

    def to_json(self):
        return {
            "words": self.words,
            "chars": self.chars,
            "singletons": np.flatnonzero(self.singleton).tolist(),
        }

    @classmethod
    def from_json(cls, d, where="vocab"):
        """The vocabularies saved by `to_json`, checked; errors start with ``where``."""
        if not isinstance(d, dict):
            raise BpttError(f"{where}: expected an object with 'words' and 'chars', got {type(d).__name__}")
        unknown = [k for k in d if k not in ("words", "chars", "singletons")]
        if unknown:
            raise BpttError(f"{where}: unknown key {unknown[0][:60]!r}")
        for key in ("words", "chars"):
            items = d.get(key)
            ok = isinstance(items, list) and items[:2] == ["<pad>", "<unk>"]
            if not (ok and all(isinstance(w, str) for w in items)):  # (a text may hold "<unk>" too)
                raise BpttError(f"{where}: {key!r}: expected a list of strings, <pad> and <unk> first")
        singletons, n = d.get("singletons", []), len(d["words"])
        ok = isinstance(singletons, list)
        if not (ok and all(type(i) is int and 0 <= i < n for i in singletons)):
            raise BpttError(f"{where}: 'singletons': expected a list of word ids (integers 0 to {n - 1})")
        v = cls(d["words"], d["chars"])
        v.singleton[np.asarray(singletons, dtype=np.int64)] = True
        return v


class FormTable:
    """Surface forms seen so far, with their word id, casing and characters.

    Grows as new text is encoded; it is a cache of the vocabulary, not part of the model.
    """

    def __init__(self, vocab):
        self.vocab = vocab
        self.form_id = {"": 0}
        self.word = [PAD]
        self.case = [0]
        self.char_rows = [[]]

    def encode(self, words):
        """Form ids of a sentence. Returns: (T,) int64."""
        ids = np.empty(len(words), dtype=np.int64)
        for i, w in enumerate(words):
            f = self.form_id.get(w)
            if f is None:
                f = self.form_id[w] = len(self.word)
                self.word.append(self.vocab.word_id.get(normalize(w), UNK))
                self.case.append(casing(w))
                self.char_rows.append([self.vocab.char_id.get(c, UNK) for c in clip_chars(w)])
            ids[i] = f
        return ids

    def arrays(self):
        """Lookup tables indexed by form id: word (F,), case (F,), chars (F, MAX_CHARS), n_chars (F,)."""
        F = len(self.word)
        chars = np.zeros((F, MAX_CHARS), dtype=np.int64)
        n_chars = np.zeros(F, dtype=np.int64)
        for f, row in enumerate(self.char_rows):
            chars[f, : len(row)] = row
            n_chars[f] = len(row)
        return np.asarray(self.word), np.asarray(self.case), chars, n_chars
