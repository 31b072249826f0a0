"""The demo corpus: valid IOB2, deterministic, and test names never seen in training."""

import pytest

from bptt.errors import BpttError
from bptt.io.conll import spans, to_iob2
from bptt.io.synthetic import DEMO_SENTENCES, FIRST_NAMES, SURNAMES, TEMPLATES, make_corpus


@pytest.fixture(scope="module")
def train():
    return make_corpus(3000, seed=0)


@pytest.fixture(scope="module")
def test_split():
    return make_corpus(1000, seed=0, split="test")


def person_words(sentences):
    return {w for s in sentences for w, t in zip(s.words, s.tags) if t.endswith("-PER") and len(w) > 2}


def test_tags_are_valid_iob2(train, test_split):
    for s in train + test_split:
        assert len(s.words) == len(s.tags) > 0
        assert to_iob2(s.tags, "IOB2") == s.tags  # already canonical: nothing to repair
        assert set(s.tags) <= {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}
        assert all(w and " " not in w for w in s.words)
        assert s.words[0][0].isupper()  # sentences start with a capital, names or not


def test_name_lists_are_disjoint():
    for names in (FIRST_NAMES, SURNAMES):
        assert not set(names["train"]) & set(names["test"])
    all_names = {n for names in (FIRST_NAMES, SURNAMES) for split in names.values() for n in split}
    for demo_name in ("Harry", "Potter", "Hermione", "Granger"):
        assert demo_name not in all_names


def test_test_names_never_occur_in_train(train, test_split):
    train_words = {w for s in train for w in s.words}
    test_names = person_words(test_split)
    assert test_names and not test_names & train_words
    assert not person_words(train) & test_names
    demo_words = {w for sentence in DEMO_SENTENCES for w in sentence.split()}
    assert not {"Harry", "Potter", "Hermione", "Granger"} & train_words
    assert {"Harry", "Potter", "Hermione", "Granger"} <= demo_words


def test_corpus_is_varied(train):
    assert len(TEMPLATES) >= 40
    lengths = {e - s for sent in train for t, s, e in spans(sent.tags) if t == "PER"}
    assert lengths == {1, 2, 3}
    positions = {"start" if s == 0 else "end" if e >= len(sent.words) - 1 else "middle"
                 for sent in train for t, s, e in spans(sent.tags) if t == "PER"}  # fmt: skip
    assert positions == {"start", "middle", "end"}
    types = {t for sent in train for t, _, _ in spans(sent.tags)}
    assert types == {"PER", "LOC", "ORG"}
    # capitalised words that are not names, beyond the first word of a sentence
    assert any(w[0].isupper() and t == "O" for s in train for w, t in zip(s.words[1:], s.tags[1:]))
    assert DEMO_SENTENCES[0] == "Harry Potter and Hermione Granger invented a new spell ."


def test_deterministic_and_seed_dependent():
    assert make_corpus(50, seed=7) == make_corpus(50, seed=7)
    assert make_corpus(50, seed=7) != make_corpus(50, seed=8)
    assert make_corpus(50, seed=7, split="test") != make_corpus(50, seed=7)
    assert make_corpus(20, seed=7) == make_corpus(50, seed=7)[:20]
    assert [s.line for s in make_corpus(3, seed=1)] == [1, 2, 3]
    assert make_corpus(0, seed=1) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_sentences": -1, "seed": 0}, "n_sentences"),
        ({"n_sentences": 2.0, "seed": 0}, "n_sentences"),
        ({"n_sentences": 2, "seed": "0"}, "seed"),
        ({"n_sentences": 2, "seed": 0, "split": "dev"}, "split"),
    ],
)
def test_argument_errors(kwargs, message):
    with pytest.raises(BpttError, match=message):
        make_corpus(**kwargs)
