"""The training data: CoNLL files read, their tags turned into the task's classes, words into ids."""

from __future__ import annotations

import numpy as np

from ..errors import BpttError
from ..io.conll import detect_scheme, read_conll, text_lines, to_iob2


class Corpus:
    """Sentences of one file, encoded: form ids, class labels and gold IOB2 tags."""

    def __init__(self, path, sentences, gold, forms, labels):
        self.path, self.sentences, self.gold, self.forms, self.labels = path, sentences, gold, forms, labels

    @property
    def n_tokens(self):
        return sum(len(f) for f in self.forms)


def read_tagged(path, tcfg):
    """Read a CoNLL file; return (sentences, its scheme, IOB2 tags)."""
    sentences = read_conll(path, tag_column=tcfg.tag_column, strip_prefix=tcfg.strip_prefix)
    scheme = detect_scheme(sentences, path)
    return sentences, scheme, [to_iob2(s.tags, scheme) for s in sentences]


def task_tags(task, gold_train, path):
    """Output classes: person → O/PER; ner → O, and B-X and I-X for every entity type X of the training file.

    Both IOB2 tags of a type are classes even where the file has only one-word X entities (all B-X):
    another file may write a longer X.
    """
    if task == "person":
        if not any(t.endswith("-PER") for tags in gold_train for t in tags):
            raise BpttError(f"{path}: no PER tags: the person task needs words tagged B-PER/I-PER")
        return ["O", "PER"]
    types = sorted({t[2:] for tags in gold_train for t in tags if t != "O"})
    return ["O"] + [f"{prefix}-{type_}" for type_ in types for prefix in "BI"]


def person_only(tags):
    """Keep the PER entities of IOB2 tags, everything else O."""
    return [t if t.endswith("-PER") else "O" for t in tags]


def encode(path, sentences, gold, cfg, table):
    """Form ids and labels per sentence; checks every tag is one the model can output.

    Labels: person 0/1, or with auxiliary tags the id among them (a type the training file lacks,
    in a dev file, reads as O there: it is not a person either); ner the tag's id.
    """
    forms, labels = [], []
    index = {t: i for i, t in enumerate(cfg.aux_tags or cfg.tags)}
    for s, tags in zip(sentences, gold):
        forms.append(table.encode(s.words))
        if cfg.task == "person" and not cfg.aux_tags:
            labels.append(np.array([t.endswith("-PER") for t in tags], dtype=np.int64))
            continue
        for i, t in enumerate(tags):
            if t not in index and cfg.task == "ner":  # an entity type the training file does not have
                raise BpttError(
                    f"{path}:{s.line + i}: tag {s.tags[i]!r}: entity type {t[2:]!r} never occurs"
                    " in the training file"
                )
        labels.append(np.array([index.get(t, index["O"]) for t in tags], dtype=np.int64))
    if cfg.task == "person":
        gold = [person_only(t) for t in gold]
    return Corpus(path, sentences, gold, forms, labels)


def read_embeddings(path, dim):
    """Pretrained vectors from a GloVe-format text file: ``word v1 … v_dim`` a line.

    A word2vec-style "count dim" first line is skipped; a word given again keeps its first vector (the
    table had taken the last one, by the accident of NumPy's repeated-index assignment).
    Returns: (the distinct words found in the file, their vectors (n, dim) float32).
    """
    words, vectors, seen = [], [], set()
    try:
        f = open(path, "rb")
    except OSError as e:
        raise BpttError(f"{path}: cannot read embeddings ({e.strerror})") from None
    with f:
        for lineno, line in text_lines(f, path, "word vectors"):
            parts = line.rstrip("\n").rstrip().split(" ")
            if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # a word2vec-style "count dim" header
            if len(parts) != dim + 1:
                raise BpttError(
                    f"{path}:{lineno}: expected a word and {dim} numbers (--word-dim), got {len(parts) - 1}"
                )
            try:
                v = np.array(parts[1:], dtype=np.float32)
            except ValueError:
                raise BpttError(f"{path}:{lineno}: not a number in the vector of {parts[0]!r}") from None
            if not np.isfinite(v).all():
                raise BpttError(f"{path}:{lineno}: NaN or Inf in the vector of {parts[0]!r}")
            if parts[0] in seen:
                continue
            seen.add(parts[0])
            words.append(parts[0])
            vectors.append(v)
    if not words:
        raise BpttError(f"{path}: no vectors in the embeddings file")
    return words, np.stack(vectors)
