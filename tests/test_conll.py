"""CoNLL reading and tag schemes: errors name file and line; conversions are exact round trips."""

import io
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt.errors import BpttError
from bptt.io.conll import (
    SchemeWarning,
    Sentence,
    detect_scheme,
    from_iob2,
    iter_conll,
    read_conll,
    spans,
    to_iob2,
    write_conll,
)
from tests.conftest import data_file

TYPES = ["PER", "LOC", "ORG"]


def write(tmp_path, text, name="f.txt", mode="w"):
    path = tmp_path / name
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- reading


def test_read_sentences_docstart_and_line_numbers(tmp_path):
    path = write(
        tmp_path,
        "-DOCSTART- -X- O O\n\nJohn NNP I-NP I-PER\nruns VBZ I-VP O\n\n \t \n"
        "Paris NNP I-NP I-LOC\n-DOCSTART- -X- O O\nRome NNP I-NP I-LOC\n",
    )
    got = read_conll(path)
    assert got == [
        Sentence(["John", "runs"], ["I-PER", "O"], 3),
        Sentence(["Paris"], ["I-LOC"], 7),
        Sentence(["Rome"], ["I-LOC"], 9),
    ]


def test_tabs_crlf_bom_and_tag_column(tmp_path):
    path = write(tmp_path, "\ufeffJohn\tB-PER\tx\r\nSmith\tI-PER\ty\r\n")
    assert read_conll(path, tag_column=1) == [Sentence(["John", "Smith"], ["B-PER", "I-PER"], 1)]
    with pytest.raises(BpttError, match=r"f\.txt:1: invalid tag 'x'"):
        read_conll(path)
    with pytest.raises(BpttError, match="column 0, the word"):
        read_conll(path, tag_column=-3)
    with pytest.raises(BpttError, match="out of range"):
        read_conll(path, tag_column=3)
    with pytest.raises(BpttError, match="tag_column"):
        read_conll(path, tag_column="1")


def test_strip_prefix_explicit_and_auto(tmp_path):
    path = write(tmp_path, "en:-DOCSTART-\tO\nen:New\tB-LOC\nen:York\tI-LOC\n\nen:en:x\tO\n")
    want = [Sentence(["New", "York"], ["B-LOC", "I-LOC"], 2), Sentence(["en:x"], ["O"], 5)]
    assert read_conll(path, strip_prefix="en:") == want
    assert read_conll(path, strip_prefix="auto") == want
    # without a prefix to strip, "en:-DOCSTART-" is an ordinary word
    assert read_conll(path)[0].words == ["en:-DOCSTART-", "en:New", "en:York"]
    bad = write(tmp_path, "en:New\tB-LOC\n\nYork\tI-LOC\n", "bad.txt")
    with pytest.raises(BpttError, match=r"bad\.txt:3: word 'York' does not start with prefix 'en:'"):
        read_conll(bad, strip_prefix="auto")
    mixed = write(tmp_path, "en:New\tB-LOC\nYork\tI-LOC\n", "mixed.txt")
    assert read_conll(mixed, strip_prefix="auto")[0].words == ["en:New", "York"]  # nothing shared


def test_words_only_when_tags_not_required(tmp_path):
    path = write(tmp_path, "Hello\nworld\n\nBye\n")
    assert read_conll(path, require_tags=False) == [
        Sentence(["Hello", "world"], [], 1),
        Sentence(["Bye"], [], 4),
    ]
    with pytest.raises(BpttError, match=r"f\.txt:1: expected at least 2 columns"):
        read_conll(path)


@pytest.mark.parametrize(
    "content, message",
    [
        ("", r"f\.txt: no sentences"),
        ("\n\n-DOCSTART- -X- O O\n\n", r"f\.txt: no sentences"),
        ("a B-PER\nb I-PER extra\n", r"f\.txt:2: expected 2 columns as on line 1, got 3"),
        ("a O\n\nb\n", r"f\.txt:3: expected 2 columns as on line 1, got 1"),
        ("a O\nb PER\n", r"f\.txt:2: invalid tag 'PER'"),
        ("a O\nb B_PER\n", r"f\.txt:2: invalid tag 'B_PER'"),
        ("a O\nb X-PER\n", r"f\.txt:2: invalid tag 'X-PER'"),
        ("a O\nb B-\n", r"f\.txt:2: invalid tag 'B-'"),
        (b"a O\nb\x00 O\n", r"f\.txt:2: NUL byte"),
        (b"a O\n\nb\xff O\n", r"f\.txt:3: invalid UTF-8 \(byte 0xff"),
        ("a O\n" + "b" * (1 << 20) + " O\n", r"f\.txt:2: line over 1048576 bytes"),
    ],
)
def test_content_errors_name_file_and_line(tmp_path, content, message):
    path = write(tmp_path, content, mode="wb" if isinstance(content, bytes) else "w")
    with pytest.raises(BpttError, match=message):
        read_conll(path)


def test_scheme_restricts_prefixes(tmp_path):
    path = write(tmp_path, "a B-PER\nb E-PER\n")
    assert read_conll(path, scheme="IOBES")[0].tags == ["B-PER", "E-PER"]
    with pytest.raises(BpttError, match=r"f\.txt:2: tag 'E-PER' is not valid in IOB2"):
        read_conll(path, scheme="IOB2")


def test_path_errors(tmp_path):
    with pytest.raises(BpttError, match="no such file"):
        iter_conll(tmp_path / "missing.txt")  # raised at the call, not at the first next()
    with pytest.raises(BpttError, match="is a directory"):
        iter_conll(tmp_path)
    with pytest.raises(BpttError, match="path: expected a file path"):
        iter_conll(3)
    with pytest.raises(BpttError, match="strip_prefix"):
        iter_conll(write(tmp_path, "a O\n"), strip_prefix="")


def test_iter_conll_streams(tmp_path):
    """Sentences arrive before the rest of the file is read: an error late in the file comes later."""
    path = write(tmp_path, "a O\n\nb O\n\nc O d\n")
    it = iter_conll(path)
    assert next(it).words == ["a"]
    assert next(it).words == ["b"]
    with pytest.raises(BpttError, match=r":5:"):
        next(it)


def test_memory_does_not_grow_with_file_size(tmp_path):
    peaks = []
    for n in (500, 5000):
        path = write(tmp_path, "word B-PER\nnext I-PER\n\n" * n, f"{n}.txt")
        tracemalloc.start()
        count = sum(1 for _ in iter_conll(path))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert count == n
    assert peaks[1] < peaks[0] + 4096 and peaks[1] < 64 * 1024


def test_write_conll_is_read_back(tmp_path):
    buf = io.StringIO()
    write_conll(buf, ["John", "left"], ["B-PER", "O"], ["B-PER", "B-LOC"])
    assert buf.getvalue() == "John B-PER B-PER\nleft O B-LOC\n\n"
    path = write(tmp_path, buf.getvalue() * 2)
    assert [s.tags for s in read_conll(path, tag_column=1)] == [["B-PER", "O"]] * 2
    with pytest.raises(BpttError, match="words\\[1\\]"):
        write_conll(buf, ["a", "b c"], ["O", "O"], ["O", "O"])
    with pytest.raises(BpttError, match="2 words, 1 gold"):
        write_conll(buf, ["a", "b"], ["O"], ["O", "O"])


# --------------------------------------------------------------------------- schemes


def test_conversions_worked_example():
    iob2 = ["B-PER", "B-PER", "I-PER", "O", "B-LOC", "B-ORG", "I-ORG", "I-ORG", "B-ORG"]
    iob1 = ["I-PER", "B-PER", "I-PER", "O", "I-LOC", "I-ORG", "I-ORG", "I-ORG", "B-ORG"]
    iobes = ["S-PER", "B-PER", "E-PER", "O", "S-LOC", "B-ORG", "I-ORG", "E-ORG", "S-ORG"]
    want = [("PER", 0, 1), ("PER", 1, 3), ("LOC", 4, 5), ("ORG", 5, 8), ("ORG", 8, 9)]
    for scheme, tags in (("IOB1", iob1), ("IOB2", iob2), ("IOBES", iobes)):
        assert spans(tags) == want
        assert from_iob2(iob2, scheme) == tags
        assert to_iob2(tags, scheme) == iob2
        assert detect_scheme([["O"], tags]) == scheme


def test_invalid_sequences_read_as_conlleval():
    # I-X after O or after another type starts an entity; E-/B- not closed still end at the next O
    assert spans(["O", "I-PER", "I-PER", "I-LOC", "O"]) == [("PER", 1, 3), ("LOC", 3, 4)]
    assert spans(["B-PER", "O", "E-PER", "I-PER"]) == [("PER", 0, 1), ("PER", 2, 3), ("PER", 3, 4)]
    assert spans(["B-PER", "I-LOC", "E-LOC"]) == [("PER", 0, 1), ("LOC", 1, 3)]
    assert to_iob2(["O", "I-PER", "I-PER"], "IOB2") == ["O", "B-PER", "I-PER"]
    assert detect_scheme([["B-PER", "I-PER", "O"]]) == "IOB2"
    assert detect_scheme([["I-PER", "I-LOC"]]) == "IOB1"
    with pytest.warns(SchemeWarning, match=r"tag_sequences\[0\]\[1\]: I-LOC starts an entity where IOB2"):
        assert detect_scheme([["B-PER", "I-LOC"]]) == "IOB2"  # one vote each: IOB2, the I-LOC named
    assert detect_scheme([]) == "IOB2"


def test_scheme_errors():
    with pytest.raises(BpttError, match=r"tags\[1\]: tag S-PER is not valid in IOB1"):
        to_iob2(["O", "S-PER"], "IOB1")
    with pytest.raises(BpttError, match="not valid in IOB2"):
        from_iob2(["E-PER"], "IOBES")
    with pytest.raises(BpttError, match="scheme"):
        to_iob2(["O"], "BIO")
    with pytest.raises(BpttError, match=r"tags\[0\]: invalid tag 'per'"):
        spans(["per"])
    with pytest.raises(BpttError, match="got the string"):
        spans("B-PER")
    with pytest.raises(BpttError, match=r"tag_sequences\[1\]\[0\]"):
        detect_scheme([["O"], ["Q-PER"]])


@st.composite
def iob2_sequences(draw):
    """Valid IOB2: each token O, B-X, or I-X continuing the entity before it."""
    n = draw(st.integers(0, 25))
    tags, prev_type = [], None
    for _ in range(n):
        choice = draw(st.sampled_from(["O", "B", "I"] if prev_type else ["O", "B"]))
        if choice == "O":
            tags.append("O")
            prev_type = None
        elif choice == "B":
            prev_type = draw(st.sampled_from(TYPES))
            tags.append("B-" + prev_type)
        else:
            tags.append("I-" + prev_type)
    return tags


@settings(max_examples=300, deadline=None)
@given(iob2_sequences(), st.sampled_from(["IOB1", "IOB2", "IOBES"]))
def test_round_trip_from_iob2(tags, scheme):
    other = from_iob2(tags, scheme)
    assert to_iob2(other, scheme) == tags
    assert spans(other) == spans(tags)
    # writing again in the same scheme is a fixed point
    assert from_iob2(to_iob2(other, scheme), scheme) == other


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["O"] + [f"{p}-{t}" for p in "BIES" for t in TYPES[:2]]), max_size=20))
def test_any_sequence_converts_to_valid_iob2(tags):
    iob2 = to_iob2(tags, "IOBES")
    assert spans(iob2) == spans(tags)
    for prev, cur in zip(["O"] + iob2, iob2):
        assert not cur.startswith("I-") or prev[2:] == cur[2:]


@pytest.fixture(scope="module")
def eng_train():
    return read_conll(data_file("conll2003", "eng.train"))


def test_conll2003_iob1_round_trips(eng_train):
    assert len(eng_train) == 14041
    assert sum(len(s.words) for s in eng_train) == 203621
    # the two B-MISC after O below are named, the first by its line
    warning = r"eng.train:152428: B-MISC starts an entity where IOB1 writes I-MISC \(2 such tags\)"
    with pytest.warns(SchemeWarning, match=warning):
        assert detect_scheme(eng_train, "eng.train") == "IOB1"
    changed = []
    for s in eng_train:
        iob2 = to_iob2(s.tags, "IOB1")
        assert spans(iob2) == spans(s.tags)
        back = from_iob2(iob2, "IOB1")
        if back != s.tags:
            changed.append((s.line, [(a, b) for a, b in zip(s.tags, back) if a != b]))
    # two tokens of eng.train use B- where IOB1 wants I- (an entity after O); conlleval reads them
    # as starting an entity either way, and writing IOB1 again puts I- there. Every other sentence
    # comes back exactly.
    assert changed == [(152416, [("B-MISC", "I-MISC")]), (175432, [("B-MISC", "I-MISC")])]


def test_wikiann_prefix_and_scheme():
    sents = read_conll(data_file("wikiann-en", "dev"), strip_prefix="auto")
    assert len(sents) == 10000
    assert not any(w.startswith("en:") for s in sents for w in s.words)
    assert detect_scheme(s.tags for s in sents) == "IOB2"
    assert all(from_iob2(to_iob2(s.tags, "IOB2"), "IOBES") == from_iob2(s.tags, "IOBES") for s in sents)
