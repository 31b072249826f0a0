"""Entity-level scores exactly as conlleval (the CoNLL shared-task scorer) computes them.

Entities ("chunks") are read from each tag sequence by conlleval's start/end rules (see
``bptt.io.conll``), which handle IOB1, IOB2, IOBES and invalid sequences alike. A predicted chunk is
correct when a gold chunk has the same type, start and end. With C correct, G gold and P predicted
chunks (all sentences pooled, "micro" averaging):

    precision = 100 C / P        recall = 100 C / G        F1 = 2 precision recall / (precision + recall)

each 0 when its denominator is 0; per type the same with the counts of that type. Token accuracy
is 100 × (tokens whose predicted tag equals the gold tag) / tokens.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

from ..errors import BpttError
from ..io.conll import spans


def chunks(tags):
    """The chunks of one tag sequence by conlleval's rules.

    Returns: set of (type, start, end_exclusive).
    """
    return set(spans(tags))


def _percent(num, den):
    return 100.0 * num / den if den else 0.0


def _f1(precision, recall):
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


class TypeScores(NamedTuple):
    """Scores of one entity type."""

    precision: float  # percent
    recall: float  # percent
    f1: float  # percent
    support: int  # gold chunks of this type
    predicted: int  # predicted chunks of this type


@dataclass(frozen=True)
class Scores:
    """conlleval's scores: overall, per entity type, and token accuracy."""

    precision: float  # percent of predicted chunks that are correct
    recall: float  # percent of gold chunks that are found
    f1: float  # harmonic mean of precision and recall, percent
    per_type: dict[str, TypeScores]  # one entry per type of a gold or predicted chunk, sorted
    token_accuracy: float  # percent of tokens whose predicted tag is the gold tag
    correct: int  # correct chunks
    gold: int  # gold chunks
    predicted: int  # predicted chunks
    tokens: int  # tokens

    def to_dict(self):
        """A JSON-serialisable dict of every field."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "per_type"}
        d["per_type"] = {t: s._asdict() for t, s in self.per_type.items()}
        return d

    def format(self):
        """A text report laid out as conlleval's."""
        lines = [
            f"processed {self.tokens} tokens with {self.gold} phrases; "
            f"found: {self.predicted} phrases; correct: {self.correct}.",
            f"accuracy: {self.token_accuracy:6.2f}%; precision: {self.precision:6.2f}%; "
            f"recall: {self.recall:6.2f}%; FB1: {self.f1:6.2f}",
        ]
        for t, s in self.per_type.items():
            lines.append(
                f"{t:>17}: precision: {s.precision:6.2f}%; recall: {s.recall:6.2f}%; "
                f"FB1: {s.f1:6.2f}  {s.predicted}"
            )
        return "\n".join(lines) + "\n"


def _pairs(gold_seqs, pred_seqs):
    """Check that gold and predicted sequences pair up; yield (index, gold, pred) as lists."""
    for name, seqs in (("gold_seqs", gold_seqs), ("pred_seqs", pred_seqs)):
        if isinstance(seqs, (str, bytes)) or not hasattr(seqs, "__iter__"):
            raise BpttError(f"{name}: expected a list of tag sequences, got {type(seqs).__name__}")
    gold_seqs, pred_seqs = list(gold_seqs), list(pred_seqs)
    if len(gold_seqs) != len(pred_seqs):
        raise BpttError(f"gold_seqs has {len(gold_seqs)} sentences but pred_seqs has {len(pred_seqs)}")
    for i, (g, p) in enumerate(zip(gold_seqs, pred_seqs)):
        for name, seq in (("gold_seqs", g), ("pred_seqs", p)):
            if isinstance(seq, str):
                raise BpttError(f"{name}[{i}]: expected a sequence of tags, got the string {seq!r}")
        g, p = list(g), list(p)
        if len(g) != len(p):
            raise BpttError(f"sentence {i}: gold has {len(g)} tags but prediction has {len(p)}")
        yield i, g, p


def evaluate(gold_seqs, pred_seqs, keep=None):
    """Score predicted tag sequences against gold ones, as conlleval does.

    Shapes: gold_seqs, pred_seqs: lists of sentences, each a list of tags (same lengths).
    keep: optional ``keep(i, start, end) -> bool``: score only the gold and predicted chunks it
        keeps (e.g. names none of whose words were seen in training). It must depend on the span,
        not on the tags, so that a correct prediction is kept exactly when its gold chunk is.
    Returns: Scores.
    """
    n_correct, n_gold, n_pred = Counter(), Counter(), Counter()
    tokens = right_tags = 0
    for i, g, p in _pairs(gold_seqs, pred_seqs):
        gold_chunks = set(spans(g, f"gold_seqs[{i}]"))
        pred_chunks = set(spans(p, f"pred_seqs[{i}]"))
        if keep is not None:
            gold_chunks = {c for c in gold_chunks if keep(i, c[1], c[2])}
            pred_chunks = {c for c in pred_chunks if keep(i, c[1], c[2])}
        n_gold.update(t for t, _, _ in gold_chunks)
        n_pred.update(t for t, _, _ in pred_chunks)
        n_correct.update(t for t, _, _ in gold_chunks & pred_chunks)
        tokens += len(g)
        right_tags += sum(a == b for a, b in zip(g, p))
    per_type = {}
    for t in sorted(n_gold.keys() | n_pred.keys()):
        precision, recall = _percent(n_correct[t], n_pred[t]), _percent(n_correct[t], n_gold[t])
        per_type[t] = TypeScores(precision, recall, _f1(precision, recall), n_gold[t], n_pred[t])
    correct, gold, predicted = sum(n_correct.values()), sum(n_gold.values()), sum(n_pred.values())
    precision, recall = _percent(correct, predicted), _percent(correct, gold)
    return Scores(
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
        per_type=per_type,
        token_accuracy=_percent(right_tags, tokens),
        correct=correct,
        gold=gold,
        predicted=predicted,
        tokens=tokens,
    )


def token_f1(gold_seqs, pred_seqs, positive=lambda tag: tag != "O"):
    """Token-level precision, recall and F1 of a yes/no decision per token (the person task).

    A token is a true positive when ``positive`` holds for both its gold and its predicted tag;
    the tags themselves need not be equal (B-PER predicted for I-PER counts).
    Returns: (precision, recall, f1) in percent, each 0 when its denominator is 0.
    """
    tp = n_gold = n_pred = 0
    for _, g, p in _pairs(gold_seqs, pred_seqs):
        for a, b in zip(g, p):
            in_gold, in_pred = bool(positive(a)), bool(positive(b))
            tp += in_gold and in_pred
            n_gold += in_gold
            n_pred += in_pred
    precision, recall = _percent(tp, n_pred), _percent(tp, n_gold)
    return precision, recall, _f1(precision, recall)


def unseen_span(sentences, vocab):
    """A ``keep`` for `evaluate`: spans none of whose words is in ``vocab`` (a ``bptt.models.vocab.Vocab``).

    Shapes: sentences: list of word lists, the ones scored. With no pretrained vectors the
    vocabulary is the training file's words, so this keeps the names the model never saw.
    """
    from .vocab import normalize

    known = [[normalize(w) in vocab.word_id for w in s] for s in sentences]
    return lambda i, start, end: not any(known[i][start:end])
