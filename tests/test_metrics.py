"""conlleval scores: a worked example, and agreement with seqeval on generated and real data."""

import json
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score
from seqeval.metrics.sequence_labeling import get_entities
from sklearn.metrics import precision_recall_fscore_support

from bptt.errors import BpttError
from bptt.io.conll import from_iob2, read_conll, spans, to_iob2
from bptt.models.metrics import Scores, TypeScores, chunks, evaluate, token_f1, unseen_span
from bptt.models.vocab import Vocab
from tests.conftest import data_file

TYPES = ["PER", "LOC", "ORG"]
PREFIXES = {"IOB1": "BI", "IOB2": "BI", "IOBES": "BIES"}

# Two sentences, counted by hand with conlleval's rules.
GOLD = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-PER"]]
PRED = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "I-ORG", "I-PER"]]
# gold chunks: PER 0-2, LOC 3-4 | ORG 0-1, PER 2-3                                       (4)
# predicted:   PER 0-2, ORG 3-4 | ORG 0-2, PER 2-3 (I-PER after I-ORG starts a new chunk) (4)
# correct:     PER 0-2          |          PER 2-3                                       (2)
# precision = recall = 2/4 = 50 %, F1 = 50 %; tags equal on 3 + 1 of 7 tokens.


def test_worked_example():
    s = evaluate(GOLD, PRED)
    assert (s.correct, s.gold, s.predicted, s.tokens) == (2, 4, 4, 7)
    assert (s.precision, s.recall, s.f1) == (50.0, 50.0, 50.0)
    assert s.token_accuracy == pytest.approx(100 * 4 / 7, abs=1e-12)
    assert s.per_type == {
        "LOC": TypeScores(0.0, 0.0, 0.0, support=1, predicted=0),
        "ORG": TypeScores(0.0, 0.0, 0.0, support=1, predicted=2),
        "PER": TypeScores(100.0, 100.0, 100.0, support=2, predicted=2),
    }
    assert s.format() == (
        "processed 7 tokens with 4 phrases; found: 4 phrases; correct: 2.\n"
        "accuracy:  57.14%; precision:  50.00%; recall:  50.00%; FB1:  50.00\n"
        "              LOC: precision:   0.00%; recall:   0.00%; FB1:   0.00  0\n"
        "              ORG: precision:   0.00%; recall:   0.00%; FB1:   0.00  2\n"
        "              PER: precision: 100.00%; recall: 100.00%; FB1: 100.00  2\n"
    )
    d = json.loads(json.dumps(s.to_dict()))
    assert d["f1"] == 50.0 and d["per_type"]["PER"]["support"] == 2 and d["tokens"] == 7
    assert chunks(PRED[1]) == {("ORG", 0, 2), ("PER", 2, 3)}


def test_token_f1_worked_example():
    # positive tokens: gold 3 + 2 = 5, predicted 3 + 3 = 6, both 3 + 2 = 5
    p, r, f = token_f1(GOLD, PRED)
    assert (p, r) == (pytest.approx(500 / 6, abs=1e-12), 100.0)
    assert f == pytest.approx(2 * (500 / 6) * 100 / (500 / 6 + 100), abs=1e-12)
    p, r, f = token_f1(GOLD, PRED, positive=lambda t: t.endswith("PER"))
    assert (p, r, f) == (100.0, 100.0, 100.0)  # PER tokens: gold 0,1 | 2; predicted the same


def test_unseen_names_only():
    words = [["Harry", "Potter", "met", "Oslo"], ["Acme", "and", "Ron"]]
    vocab = Vocab.build([["harry", "met", "and", "acme"]])  # "Potter", "Oslo", "Ron" never seen
    keep = unseen_span(words, vocab)
    assert [keep(0, 0, 2), keep(0, 3, 4), keep(1, 0, 1), keep(1, 2, 3)] == [False, True, False, True]
    # kept: gold LOC 3-4 | PER 2-3; predicted ORG 3-4 | PER 2-3: one of two right
    s = evaluate(GOLD, PRED, keep=keep)
    assert (s.correct, s.gold, s.predicted, s.tokens) == (1, 2, 2, 7)
    assert (s.precision, s.recall, s.f1) == (50.0, 50.0, 50.0)
    assert s.per_type["PER"] == TypeScores(100.0, 100.0, 100.0, support=1, predicted=1)


def test_empty_and_no_entities():
    s = evaluate([["O", "O"]], [["O", "O"]])
    assert (s.precision, s.recall, s.f1, s.token_accuracy, s.per_type) == (0.0, 0.0, 0.0, 100.0, {})
    assert evaluate([], []).tokens == 0
    assert token_f1([["O"]], [["O"]]) == (0.0, 0.0, 0.0)


def test_errors_name_the_sentence():
    with pytest.raises(BpttError, match="sentence 1: gold has 3 tags but prediction has 2"):
        evaluate(GOLD, [PRED[0], ["O", "O"]])
    with pytest.raises(BpttError, match="gold_seqs has 2 sentences but pred_seqs has 1"):
        evaluate(GOLD, PRED[:1])
    with pytest.raises(BpttError, match=r"pred_seqs\[1\]\[2\]: invalid tag 'PER'"):
        evaluate(GOLD, [PRED[0], ["O", "O", "PER"]])
    with pytest.raises(BpttError, match=r"gold_seqs\[0\]: expected a sequence of tags"):
        evaluate(["B-PER"], [["B-PER"]])
    with pytest.raises(BpttError, match="sentence 0"):
        token_f1([["O"]], [[]])


# --------------------------------------------------------------------------- against seqeval


def seqeval_scores(gold, pred):
    """seqeval's default (conlleval-mimicking) mode, in percent."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns where a denominator is 0 (and returns 0)
        overall = [100 * f(gold, pred) for f in (precision_score, recall_score, f1_score)]
        report = classification_report(gold, pred, output_dict=True) if chunk_count(gold, pred) else {}
    per_type = {
        t: (100 * r["precision"], 100 * r["recall"], 100 * r["f1-score"], r["support"])
        for t, r in report.items()
        if not t.endswith(" avg")
    }
    return overall, per_type, 100 * accuracy_score(gold, pred)


def chunk_count(gold, pred):
    return len(get_entities(gold)) + len(get_entities(pred))


def assert_agrees_with_seqeval(gold, pred):
    s = evaluate(gold, pred)
    overall, per_type, accuracy = seqeval_scores(gold, pred)
    assert [s.precision, s.recall, s.f1] == pytest.approx(overall, abs=1e-9)
    assert s.token_accuracy == pytest.approx(accuracy, abs=1e-9)
    assert set(s.per_type) == set(per_type)
    for t, (p, r, f, support) in per_type.items():
        mine = s.per_type[t]
        assert [mine.precision, mine.recall, mine.f1] == pytest.approx([p, r, f], abs=1e-9)
        assert mine.support == support
    return s


@st.composite
def gold_and_pred(draw):
    """Sentences of valid gold tags in one scheme, and predictions that are often invalid."""
    scheme = draw(st.sampled_from(["IOB1", "IOB2", "IOBES"]))
    any_tag = st.sampled_from(["O"] + [f"{p}-{t}" for p in PREFIXES[scheme] for t in TYPES])
    gold, pred = [], []
    for _ in range(draw(st.integers(1, 4))):
        raw = draw(st.lists(any_tag, min_size=1, max_size=15))
        g = from_iob2(to_iob2(raw, scheme), scheme)  # any sequence, made valid for the scheme
        if draw(st.booleans()):  # corrupt some gold tags
            p = [draw(any_tag) if draw(st.integers(0, 3)) == 0 else t for t in g]
        else:
            p = draw(st.lists(any_tag, min_size=len(g), max_size=len(g)))
        gold.append(g)
        pred.append(p)
    return gold, pred


@settings(max_examples=250, deadline=None)
@given(gold_and_pred())
def test_agrees_with_seqeval_on_generated_data(pair):
    gold, pred = pair
    assert_agrees_with_seqeval(gold, pred)
    for g in gold + pred:
        assert chunks(g) == {(t, s, e + 1) for t, s, e in get_entities(g)}  # seqeval's end is inclusive


def corrupt(tags, k):
    """A deterministic prediction from IOB1 gold tags: entities dropped, retyped, cut and grown,
    and stray tokens with wrong tags, some of which make invalid sequences."""
    n = len(tags)
    out = ["O"] * n
    for j, (type_, s, e) in enumerate(spans(tags)):
        action = (k + 3 * j) % 8
        if action == 0:
            continue  # dropped
        if action == 1:
            type_ = TYPES[(TYPES.index(type_) + 1) % 3] if type_ in TYPES else "PER"
        elif action == 2 and e - s > 1:
            s += 1  # start too late
        elif action == 3:
            e = min(n, e + 1)  # end too late
        elif action == 4 and s > 0:
            s -= 1  # start too early
        out[s:e] = ["I-" + type_] * (e - s)
        if action == 5:
            out[s] = "B-" + type_  # B- after O: not canonical IOB1, still one chunk
    for t in range(k % 5, n, 23):
        out[t] = ["O", "I-LOC", "B-MISC", "I-PER", "B-ORG"][(k + t) % 5]
    return out


@pytest.fixture(scope="module")
def testa():
    return [s.tags for s in read_conll(data_file("conll2003", "eng.testa"))]


def test_agrees_with_seqeval_on_conll2003_testa(testa):
    pred = [corrupt(tags, k) for k, tags in enumerate(testa)]
    s = assert_agrees_with_seqeval(testa, pred)
    assert (s.gold, s.tokens) == (5942, 51362)
    assert 30 < s.f1 < 90 and 0 < s.correct < s.gold  # a real mixture of right and wrong
    assert set(s.per_type) == {"LOC", "MISC", "ORG", "PER"}
    # the same chunks in IOB2 and IOBES give the same scores
    for scheme in ("IOB2", "IOBES"):
        gold_x = [from_iob2(to_iob2(g, "IOB1"), scheme) for g in testa]
        pred_x = [from_iob2(to_iob2(p, "IOB1"), scheme) for p in pred]
        sx = evaluate(gold_x, pred_x)
        assert (sx.precision, sx.recall, sx.f1, sx.per_type) == (s.precision, s.recall, s.f1, s.per_type)
    perfect = evaluate(testa, testa)
    assert (perfect.f1, perfect.token_accuracy, perfect.correct) == (100.0, 100.0, 5942)


def test_token_f1_agrees_with_sklearn(testa):
    pred = [corrupt(tags, k) for k, tags in enumerate(testa)]
    is_per = lambda t: t.endswith("-PER")  # noqa: E731
    y_true = [is_per(t) for g in testa for t in g]
    y_pred = [is_per(t) for p in pred for t in p]
    want = precision_recall_fscore_support(y_true, y_pred, average="binary")[:3]
    got = token_f1(testa, pred, positive=is_per)
    assert got == pytest.approx([100 * w for w in want], abs=1e-9)


def test_scores_is_a_value():
    s = evaluate(GOLD, PRED)
    assert isinstance(s, Scores) and s == evaluate(GOLD, PRED)
    with pytest.raises(AttributeError):
        s.f1 = 1.0
