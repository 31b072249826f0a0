"""The exported models' inputs: how sentences become id arrays, time-major as everywhere in bptt.

A batch of B sentences, padded to the longest (T words), is five int64 arrays (`model_inputs`):

    words    (T, B)     word id: the word lower-cased, every digit made 0, looked up in the
                        vocabulary's "words"; 1 (<unk>) when absent, 0 on padding
    cases    (T, B)     casing class, an index into CASINGS (0 on padding)      [if case_dim > 0]
    chars    (T, B, C)  character ids of the word (its first 10 and last 10 when longer than
                        MAX_CHARS = 20), looked up in "chars", 1 when absent, 0-padded [if char_dim > 0]
    n_chars  (T, B)     characters in ``chars`` (0 on padding)                  [if char_dim > 0]
    lengths  (B,)       words in each sentence (at least 1)

C is any width ≥ the longest word of the batch. These are exactly the lookups `bptt.models.vocab`'s
``FormTable`` does for bptt's own network, so the inputs of an exported model and bptt's agree id
for id.
"""

from __future__ import annotations

import numpy as np

from ..models.tagger import tables_for
from ..models.tagger_network import make_batch
from ..models.vocab import CASINGS, MAX_CHARS, FormTable

INPUTS = ("words", "cases", "chars", "n_chars", "lengths")  # every input name, in the graph's order


def input_names(cfg):
    """The inputs a tagger with ``cfg`` takes: a model without casing or characters takes fewer."""
    used = {"cases": cfg.case_dim > 0, "chars": cfg.char_dim > 0, "n_chars": cfg.char_dim > 0}
    return tuple(name for name in INPUTS if used.get(name, True))


def model_inputs(cfg, batch, tables):
    """The exported model's inputs for a bptt ``Batch`` and its form ``Tables``.

    Shapes: batch.forms (T, B).
    Returns: dict name -> int64 array, the names of ``input_names(cfg)``.
    """
    forms = batch.forms
    out = {"words": tables.word[forms].astype(np.int64)}  # (T, B)
    if cfg.case_dim:
        out["cases"] = tables.case[forms].astype(np.int64)  # (T, B)
    if cfg.char_dim:
        n_chars = tables.n_chars[forms].astype(np.int64)  # (T, B)
        C = max(int(n_chars.max()), 1)  # the batch's longest word: fewer steps than MAX_CHARS
        out["chars"] = np.ascontiguousarray(tables.chars[forms, :C], dtype=np.int64)  # (T, B, C)
        out["n_chars"] = n_chars
    out["lengths"] = np.asarray(batch.lengths, dtype=np.int64)  # (B,)
    return out


def sentence_batch(vocab, sentences):
    """bptt's ``Batch`` of a list of sentences (lists of words), in their order, and its form ``Tables``."""
    table = FormTable(vocab)
    batch = make_batch([table.encode(words) for words in sentences], None, np.arange(len(sentences)))
    return batch, tables_for(vocab, table)


def encode(vocab, cfg, sentences):
    """The inputs of a list of sentences (lists of words), padded to the longest, in their order.

    Returns: dict name -> int64 array (see the module docstring).
    """
    return model_inputs(cfg, *sentence_batch(vocab, sentences))


def encoding_doc():
    """How words become ids, for the exported files' metadata: enough to encode without bptt."""
    return {
        "words": "the word lower-cased, every digit replaced by 0, looked up in vocab.words;"
        " 1 (<unk>) when absent; 0 is padding",
        "cases": "the casing class, an index into casings, by the first rule that holds (Python's str"
        " methods): isdigit() 5, has a digit 6, has no letter 7, islower() 1, isupper() 2, first letter"
        " upper and the rest lower 3, has an upper-case letter 4, else 8; 0 is padding",
        "chars": f"each character looked up in vocab.chars, 1 (<unk>) when absent; a word longer than"
        f" {MAX_CHARS} characters keeps its first {MAX_CHARS // 2} and last {MAX_CHARS // 2}; 0-padded",
        "n_chars": "the number of characters in chars (0 on padding)",
        "lengths": "the number of words of each sentence",
        "layout": "time-major: words (T, B), chars (T, B, C); sentences right-padded to the longest",
        "casings": list(CASINGS),
        "max_chars": MAX_CHARS,
    }


def probe_sentences(vocab):
    """Sentences to check an export on: known and unknown words and characters, lengths 1 to 40.

    Returns: list of lists of words.
    """
    known = [w for w in vocab.words[2:42] if w] or ["the"]
    long = [known[i % len(known)].title() if i % 3 == 0 else known[i % len(known)] for i in range(40)]
    odd = ["Zqxjvw", "ǂʘ", "1996-08-28", "Ünïcödé", "X" * 30, "U.S.", ",", "McDonald's"]
    return [[known[0]], long, odd, known[:7] + odd[:2]]
