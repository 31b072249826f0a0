"""Fuzzing the readers and ``bptt tag``: the only outcomes are the right result or the documented error.

Generated CoNLL files (random separators, blank lines, DOCSTART lines, CRLF, a byte-order mark) must
read back exactly as generated; mutated files and random bytes must read into well-formed sentences or
raise `BpttError`; ``bptt tag`` on random input must tag every line or exit 2 with one line.
"""

import contextlib
import io
import json
import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bptt.cli import main
from bptt.errors import BpttError
from bptt.io.conll import DOCSTART, read_conll, split_tag
from bptt.io.synthetic import make_corpus
from bptt.io.text import segment
from bptt.models.tagger import load_tagger
from bptt.training import read_embeddings
from tests.helpers import MINI, write_conll

pytestmark = pytest.mark.slow  # fuzzing: hundreds of generated inputs

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# characters of a word: anything but the column and line separators, NUL and a byte-order mark
WORD_CHAR = st.characters(blacklist_categories=("Cs",), blacklist_characters=" \t\r\n\x00\ufeff")
WORD = st.text(WORD_CHAR, min_size=1, max_size=6).filter(lambda w: w != DOCSTART)
TAG = st.one_of(
    st.just("O"),
    st.builds(lambda p, t: f"{p}-{t}", st.sampled_from("BIES"), st.text(WORD_CHAR, min_size=1, max_size=4)),
)
SENTENCE = st.lists(st.tuples(WORD, TAG), min_size=1, max_size=6)


@st.composite
def conll_files(draw):
    """(bytes of a valid CoNLL file, the sentences as (words, tags, first line)) in random layouts."""
    sentences = draw(st.lists(SENTENCE, min_size=1, max_size=5))
    n_cols = draw(st.integers(2, 4))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    sep = st.sampled_from([" ", "\t", "  ", " \t "])
    lines = ["\ufeff"] if draw(st.booleans()) else [""]  # a byte-order mark glued to line 1
    expected = []
    for k, sentence in enumerate(sentences):
        if k or draw(st.booleans()):  # before every sentence but the first: blank or DOCSTART lines
            gap = draw(
                st.lists(st.sampled_from(["", " ", "\t", DOCSTART + " -X- O"]), min_size=1, max_size=3)
            )
            lines[-1:] = [lines[-1] + gap[0], *gap[1:], ""]  # lines[-1] is the line being written
        first = len(lines)
        for word, tag in sentence:
            cols = [word, *draw(st.lists(WORD, min_size=n_cols - 2, max_size=n_cols - 2)), tag]
            lines[-1] += (
                draw(st.sampled_from(["", " ", "\t"])) + draw(sep).join(cols) + draw(sep | st.just(""))
            )
            lines.append("")
        expected.append(([w for w, _ in sentence], [t for _, t in sentence], first))
    text = end.join(lines[:-1]) + (end if draw(st.booleans()) else "")
    return text.encode("utf-8"), expected


@contextlib.contextmanager
def file_with(data, suffix=".txt"):
    fd, path = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield path
    finally:
        os.remove(path)


def read_or_error(data, **kw):
    """read_conll on the bytes: the sentences, or the BpttError it raised."""
    with file_with(data) as path:
        try:
            return read_conll(path, **kw)
        except BpttError as e:
            assert "\n" not in str(e) and str(e).startswith(path), str(e)
            return e


def assert_well_formed(sentences, require_tags=True):
    lines = [s.line for s in sentences]
    assert lines == sorted(lines) and len(set(lines)) == len(lines) and lines[0] >= 1
    for s in sentences:
        assert s.words and len(s.tags) == len(s.words) or not (require_tags or s.tags)
        assert all(w and not any(c in w for c in " \t\n") for w in s.words)
        for t in s.tags:
            split_tag(t)


@FUZZ
@given(conll_files())
def test_generated_conll_reads_back_exactly(file):
    data, expected = file
    got = read_or_error(data)
    assert not isinstance(got, BpttError), got
    assert [(s.words, s.tags, s.line) for s in got] == expected


@st.composite
def mutated(draw):
    data = bytearray(draw(conll_files())[0])
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = draw(st.sampled_from([0, 9, 10, 13, 32, 0x2D, 0x80, 0xC3, 0xE2, 0xFF]) | st.integers(0, 255))
        if op == "insert":
            data[at:at] = bytes([byte])
        elif at < len(data):
            data[at : at + 1] = b"" if op == "delete" else bytes([byte])
    return bytes(data)


@FUZZ
@given(mutated() | st.binary(max_size=200))
def test_damaged_conll_reads_or_raises(data):
    for kw in ({}, {"strip_prefix": "auto"}, {"scheme": "IOB2"}, {"require_tags": False, "tag_column": 1}):
        got = read_or_error(data, **kw)
        if not isinstance(got, BpttError):
            assert_well_formed(got, kw.get("require_tags", True))


@FUZZ
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.lists(st.floats(allow_nan=True, width=32) | st.text(max_size=3), max_size=4).map(
                lambda v: ("w " + " ".join(map(str, v))).encode("utf-8", "surrogatepass")
            ),
        ),
        max_size=5,
    )
)
def test_embeddings_read_or_raise(lines):
    with file_with(b"\n".join(lines)) as path:
        try:
            words, vectors = read_embeddings(path, 3)
        except BpttError as e:
            assert "\n" not in str(e) and str(e).startswith(path), str(e)
            return
    assert len(words) == len(vectors) >= 1 and vectors.shape[1] == 3
    assert np.isfinite(vectors).all()


# ------------------------------------------------------------------------------------------ bptt tag


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    write_conll(d / "train.txt", make_corpus(40, seed=3))
    assert (
        main(["train", "--train", str(d / "train.txt"), "--out", str(d / "m"), "--epochs", "1", *MINI]) == 0
    )
    return str(d / "m")


def bptt_tag(*argv):
    """Run ``bptt tag`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["tag", *argv])
    return rc, out.getvalue(), err.getvalue()


def expected_lines(data, abbreviations):
    """The words ``bptt tag`` must find in each line of the bytes (blank lines too), or None when
    they are not text; ``abbreviations`` are the model's."""
    if b"\0" in data:
        return None
    try:
        lines = [line.decode("utf-8") for line in data.split(b"\n")]
    except UnicodeDecodeError:
        return None
    if lines[-1] == "":  # no line after the last newline
        lines.pop()
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    return [[t.text for t in segment(line, abbreviations).tokens] for line in lines]


def assert_json_output(out, sentences):
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["words"] for r in rows] == sentences
    assert all(len(r["tags"]) == len(r["words"]) for r in rows)


@FUZZ
@given(st.binary(max_size=150) | st.text(max_size=150).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_tag_lines_tags_every_line_or_fails_cleanly(model, data):
    with file_with(data) as path:
        rc, out, err = bptt_tag("--model", model, "--input", path, "--format", "json")
    expected = expected_lines(data, load_tagger(model).abbreviations)
    if expected:  # any line, blank ones too, gets its record (a file of blank lines is valid input)
        assert rc == 0, err
        assert_json_output(out, expected)
        assert [json.loads(line)["line"] for line in out.splitlines()] == list(range(1, len(expected) + 1))
    else:
        assert rc == 2 and len(err.splitlines()) == 1 and err.startswith(f"bptt: error: {path}"), err


@FUZZ
@given(conll_files() | mutated())
def test_tag_conll_input_tags_every_sentence_or_fails_cleanly(model, file):
    data, expected = file if isinstance(file, tuple) else (file, None)
    with file_with(data) as path:
        rc, out, err = bptt_tag(
            "--model", model, "--input", path, "--input-format", "conll", "--strip-prefix", "none",
            "--format", "json",
        )  # fmt: skip
    if expected is not None:
        assert rc == 0, err
        assert_json_output(out, [words for words, _, _ in expected])
    elif rc != 0:
        assert rc == 2 and len(err.splitlines()) == 1 and err.startswith(f"bptt: error: {path}"), err


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=9), min_size=1, max_size=6))
def test_predict_any_words_batched_as_alone(model, sentences):
    tagger = load_tagger(model)
    together = tagger.predict(sentences)
    assert together == [tagger.predict([s])[0] for s in sentences]
    for s, tags in zip(sentences, together):
        assert len(tags) == len(s) and set(tags) <= {"O", "B-PER", "I-PER"}


def test_a_word_given_twice_in_the_embeddings_keeps_its_first_vector(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("2 3\nthe 1 2 3\ncat 4 5 6\nthe 7 8 9\n")
    words, vectors = read_embeddings(path, 3)
    assert words == ["the", "cat"]
    np.testing.assert_array_equal(vectors, [[1, 2, 3], [4, 5, 6]])
