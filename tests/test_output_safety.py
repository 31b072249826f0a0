"""Nothing of the user's is lost, nothing is silently wrong: `bptt tag`, `bptt evaluate`, tag schemes.

Outputs: an input is never written over; links, FIFOs, devices and standard output are written,
not replaced; a full disk is one line. Tagging: every input line gets its output line, as soon as
it has arrived on a pipe, and long lines are tagged in batches bounded by words. Schemes: a stray
tag is named, never silently reinterpreted, and conlleval can read what --output writes.
"""

import json
import os
import stat
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest

from bptt.cli import main
from bptt.cli.common import PipeLines
from bptt.cli.tag import inline
from bptt.errors import BpttError
from bptt.io.conll import SchemeWarning, Sentence, detect_scheme, from_iob2, read_conll, to_iob2
from bptt.models.tagger import Tagger, load_tagger, word_batches
from tests.conftest import data_file
from tests.helpers import TINY, write_conll, write_slice

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
TIMEOUT = 120  # seconds: a bound for a process that hangs, never a wait for something to happen


def cli(capsys, *argv):
    """Run ``bptt ARGV`` in this process: (exit status, stdout, stderr)."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def bptt_process(*argv, **kw):
    """``python -m bptt ARGV`` as a process of its own (subprocess.Popen keywords in kw)."""
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen([sys.executable, "-m", "bptt", *map(str, argv)], env=env, **kw)


def run_bptt(*argv, **kw):
    """(exit status, stdout, stderr) of ``python -m bptt ARGV`` run to the end."""
    with bptt_process(*argv, stdout=kw.pop("stdout", subprocess.PIPE), stderr=subprocess.PIPE, **kw) as p:
        out, err = p.communicate(timeout=TIMEOUT)
    return p.returncode, out, err.decode()


def one_line_error(rc, err, message):
    assert (rc, err) == (2, f"bptt: error: {message}\n")


def conll_text(rows):
    """What --output writes: ``word gold predicted`` lines, a blank line after each sentence."""
    return "".join("".join(f"{w} {g} {p}\n" for w, g, p in zip(*row)) + "\n" for row in rows)


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    """A slice of CoNLL-2003 (IOB1), the same dev sentences in IOB2 and IOBES, and a tiny NER model."""
    d = tmp_path_factory.mktemp("safety")
    write_slice(data_file("conll2003", "eng.train"), d / "train.txt", 300)
    dev = write_slice(data_file("conll2003", "eng.testa"), d / "dev.txt", 60)
    for scheme in ("IOB2", "IOBES"):
        converted = [Sentence(s.words, from_iob2(to_iob2(s.tags, "IOB1"), scheme), s.line) for s in dev]
        write_conll(d / f"dev.{scheme.lower()}", converted)
    return d


@pytest.fixture(scope="module")
def model(d):
    args = ["--train", d / "train.txt", "--task", "ner", "--epochs", 2, "--seed", 3, "--out", d / "m"]
    assert main(["train", *map(str, args), *TINY]) == 0
    return d / "m"


def expected_output(model, path, gold_column):
    """The bytes --output must hold for the CoNLL file ``path``, its gold column given."""
    tagger = load_tagger(model)
    sentences = read_conll(path)
    pred = tagger.predict([s.words for s in sentences])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SchemeWarning)
        scheme = detect_scheme(sentences)  # the prediction is written in the file's scheme, IOBES as IOB2
    scheme = "IOB2" if scheme == "IOBES" else scheme
    rows = [(s.words, g, from_iob2(p, scheme)) for s, g, p in zip(sentences, gold_column, pred)]
    return conll_text(rows).encode()


# -------------------------------------------------------------------- evaluate --output: never lose a file


@pytest.mark.slow
def test_output_over_the_data_file_is_refused(d, model, tmp_path, capsys):
    gold = tmp_path / "gold.conll"
    gold.write_bytes((d / "dev.txt").read_bytes())
    link = tmp_path / "link.conll"
    link.symlink_to(gold)
    hard = tmp_path / "hard.conll"
    os.link(gold, hard)
    for output in (gold, link, hard):
        rc, out, err = cli(capsys, "evaluate", "--model", model, "--data", gold, "--output", output)
        one_line_error(rc, err, f"{output}: is the input file {gold}: refusing to write over it")
        assert out == ""
    assert gold.read_bytes() == (d / "dev.txt").read_bytes() and link.is_symlink()
    vocab = model / "vocab.json"  # the model's files are inputs too
    rc, _, err = cli(capsys, "evaluate", "--model", model, "--data", gold, "--output", vocab)
    one_line_error(rc, err, f"{vocab}: is the input file {vocab}: refusing to write over it")


@pytest.mark.slow
def test_output_writes_a_regular_file_atomically_keeping_its_mode(d, model, tmp_path, capsys):
    out = tmp_path / "dev.pred"
    out.write_text("old\n")
    out.chmod(0o640)
    rc, printed, err = cli(capsys, "evaluate", "--model", model, "--data", d / "dev.txt", "--output", out)
    assert rc == 0 and err == f"wrote {out}\n" and "processed" in printed
    gold = [s.tags for s in read_conll(d / "dev.txt")]  # the gold column as in the file (IOB1)
    assert out.read_bytes() == expected_output(model, d / "dev.txt", gold)
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["dev.pred"]  # no temporary file left


@pytest.mark.slow
def test_output_through_a_symlink_writes_its_target(d, model, tmp_path, capsys):
    target = tmp_path / "real.pred"
    target.write_text("old\n")
    link = tmp_path / "link.pred"
    link.symlink_to(target)
    rc, _, _ = cli(capsys, "evaluate", "--model", model, "--data", d / "dev.txt", "--output", link)
    assert rc == 0 and link.is_symlink() and os.readlink(link) == str(target)
    gold = [s.tags for s in read_conll(d / "dev.txt")]
    assert target.read_bytes() == expected_output(model, d / "dev.txt", gold)


@pytest.mark.slow
def test_output_to_a_fifo_writes_into_it(d, model, tmp_path, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    # blocks until bptt opens the FIFO; a daemon, so a failed command cannot leave it hanging the run
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    rc, _, _ = cli(capsys, "evaluate", "--model", model, "--data", d / "dev.txt", "--output", fifo)
    reader.join(TIMEOUT)
    assert rc == 0 and stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still a FIFO, not replaced by a file
    gold = [s.tags for s in read_conll(d / "dev.txt")]
    assert got == [expected_output(model, d / "dev.txt", gold)]


@pytest.mark.slow
def test_output_to_stdout_pipes_into_conlleval(d, model, capsys):
    """``--output /dev/stdout | conlleval``: standard output carries the file alone, scores go to stderr."""
    gold = [s.tags for s in read_conll(d / "dev.txt")]
    want = expected_output(model, d / "dev.txt", gold)
    rc, out, err = run_bptt("evaluate", "--model", model, "--data", d / "dev.txt", "--output", "/dev/stdout")
    assert rc == 0 and out == want
    assert err.startswith(f"{d / 'dev.txt'}: 60 sentences") and "processed" in err and "wrote" not in err
    rc, out, err = cli(capsys, "evaluate", "--model", model, "--data", d / "dev.txt", "--output", "-")
    assert rc == 0 and out.encode() == want and "processed" in err


@pytest.mark.slow
def test_a_full_disk_is_one_line(d, model):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    rc, _, err = run_bptt("evaluate", "--model", model, "--data", d / "dev.txt", "--output", "/dev/full")
    one_line_error(rc, err, "/dev/full: cannot write: No space left on device")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    with open("/dev/full", "w") as full:
        rc, _, err = run_bptt("evaluate", "--model", model, "--data", d / "dev.txt", stdout=full)
        one_line_error(rc, err, "<stdout>: cannot write: No space left on device")
        rc, _, err = run_bptt("tag", "--model", model, "John Smith lives in Paris .", stdout=full)
        one_line_error(rc, err, "<stdout>: cannot write: No space left on device")


@pytest.mark.slow
def test_standard_output_appending_to_an_input_is_refused(d, model, tmp_path):
    """``bptt tag --input X >> X`` would read its own output for ever; ``evaluate >> gold`` spoil it."""
    text = tmp_path / "in.txt"
    text.write_text("John Smith lives in Paris .\n")
    with open(text, "a") as same:
        rc, _, err = run_bptt("tag", "--model", model, "--input", text, stdout=same)
        one_line_error(rc, err, f"<stdout>: is the input file {text}: refusing to write over it")
        with open(text) as stdin:
            rc, _, err = run_bptt("tag", "--model", model, stdin=stdin, stdout=same)
        one_line_error(rc, err, "<stdout>: is <stdin>: refusing to write over it")
    assert text.read_text() == "John Smith lives in Paris .\n"
    gold = tmp_path / "gold.conll"
    gold.write_bytes((d / "dev.txt").read_bytes())
    with open(gold, "a") as same:
        rc, _, err = run_bptt("evaluate", "--model", model, "--data", gold, stdout=same)
    one_line_error(rc, err, f"<stdout>: is the input file {gold}: refusing to write over it")
    assert gold.read_bytes() == (d / "dev.txt").read_bytes()


# ------------------------------------------------------------------------------ bptt tag: line for line


@pytest.mark.slow
def test_every_input_line_gets_its_output_line(model, tmp_path, capsys):
    text = tmp_path / "in.txt"
    text.write_text("John Smith lives in Paris .\n\n   \nMary went home .\n")
    one, four = "John Smith lives in Paris .".split(), "Mary went home .".split()
    tagger = load_tagger(model)
    iob2_1, iob2_4 = tagger.predict([one, four])
    tags1, tags4 = tagger.output_tags(iob2_1), tagger.output_tags(iob2_4)
    rc, out, _ = cli(capsys, "tag", "--model", model, "--input", text, "--format", "json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and [(r["line"], r["words"], r["tags"]) for r in rows] == [
        (1, one, tags1), (2, [], []), (3, [], []), (4, four, tags4)
    ]  # fmt: skip
    assert rows[1] == {"line": 2, "words": [], "tags": [], "offsets": [], "sentences": [], "entities": []}
    rc, out, _ = cli(capsys, "tag", "--model", model, "--input", text)  # each line as it is, bracketed
    assert rc == 0 and out == f"{inline(one, iob2_1)}\n\n   \n{inline(four, iob2_4)}\n"
    rc, out, _ = cli(capsys, "tag", "--model", model, "--input", text, "--format", "conll")
    block1, block4 = ("".join(f"{w} {t}\n" for w, t in zip(*wt)) for wt in ((one, tags1), (four, tags4)))
    assert rc == 0 and out == block1 + "\n" + "\n" + "\n" + block4 + "\n"  # n-th blank line: n-th input line
    rc, out, _ = cli(capsys, "tag", "--model", model, "--format", "json", "Mary went home .", " ", "Paris")
    assert rc == 0 and [json.loads(line)["line"] for line in out.splitlines()] == [1, 2, 3]
    conll = tmp_path / "in.conll"  # CoNLL input: a record per sentence, "line" its first word's
    conll.write_text("-DOCSTART- O\n\nJohn O\nSmith O\n\n\nMary O\n")
    rc, out, _ = cli(
        capsys, "tag", "--model", model, "--input", conll, "--input-format", "conll", "--format", "json"
    )
    assert rc == 0 and [(r["line"], r["words"]) for r in map(json.loads, out.splitlines())] == [
        (3, ["John", "Smith"]), (7, ["Mary"])
    ]  # fmt: skip


@pytest.mark.slow
def test_a_pipe_is_answered_line_by_line(model):
    """A program writes a line and waits for its answer: the answer comes before stdin is closed."""
    with bptt_process("tag", "--model", model, "--format", "json", stdin=subprocess.PIPE,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:  # fmt: skip

        def answer(line):
            p.stdin.write(line)
            p.stdin.flush()
            got = []
            reader = threading.Thread(target=lambda: got.append(p.stdout.readline()), daemon=True)
            reader.start()
            reader.join(TIMEOUT)  # returns as soon as the line is read
            if not got:
                p.kill()
            assert got, f"no answer to {line!r} while standard input stays open"
            return json.loads(got[0])

        first = answer(b"John Smith lives in Paris .\n")
        assert first["line"] == 1 and first["words"] == ["John", "Smith", "lives", "in", "Paris", "."]
        blank = {"line": 2, "words": [], "tags": [], "offsets": [], "sentences": [], "entities": []}
        assert answer(b"\n") == blank
        assert answer(b"Mary went home .\n")["line"] == 3
        p.stdin.close()
        assert p.stdout.read() == b"" and p.wait(TIMEOUT) == 0
        assert p.stderr.read() == b""


def test_pipe_lines_know_what_has_arrived():
    r, w = os.pipe()
    try:
        lines = PipeLines(r)
        assert not lines.ready()  # nothing written yet: reading would wait
        os.write(w, b"first line\nsecond")
        assert lines.ready() and lines.readline(100) == b"first line\n"
        assert not lines.ready()  # half a line
        os.write(w, b" line\nthird")
        assert lines.ready() and lines.readline(100) == b"second line\n"
        assert lines.readline(3) == b"thi"  # the length limit of conll.text_lines
        os.close(w)
        w = None
        assert lines.ready() and lines.readline(100) == b"rd" and lines.readline(100) == b""
    finally:
        os.close(r)
        if w is not None:
            os.close(w)


def random_tagger(task="ner"):
    """A tagger with random weights (no training): tagging is deterministic all the same."""
    from bptt.models.tagger_network import TaggerConfig, init_tagger_params
    from bptt.models.vocab import Vocab

    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"] if task == "ner" else ["O", "PER"]
    cfg = TaggerConfig(task=task, tags=tags, word_dim=6, case_dim=2, char_dim=3, char_hidden=3, hidden=5)
    vocab = Vocab.build([["John", "Smith", "lives", "in", "Paris", "."]])
    params = init_tagger_params(cfg, len(vocab.words), len(vocab.chars), seed=1)
    return Tagger(params, cfg, vocab, scheme="IOB1")


def test_tag_blocks_answer_at_once_when_no_more_has_arrived():
    tagger = random_tagger()
    sentences = [["John", "Smith"], [], ["Paris", "is", "big"], ["in"], ["Smith", "."]]
    blocks = list(tagger.tag_blocks(sentences, chunk=2))  # a file: blocks of 2
    assert [len(b) for b in blocks] == [2, 2, 1]
    alone = [tagger.output_tags(tagger.predict([s])[0]) if s else [] for s in sentences]
    assert [pair for b in blocks for pair in b] == list(zip(sentences, alone))
    waiting = iter([True, False, False, True, True])  # after sentence 1: more has arrived; after 2, 3: not
    blocks = list(tagger.tag_blocks(sentences, chunk=2000, ready=lambda: next(waiting)))
    assert [[w for w, _ in b] for b in blocks] == [sentences[:2], sentences[2:3], sentences[3:]]


# ------------------------------------------------------------------------------ long lines: batches by words


def test_word_batches_bound_the_padded_words():
    lengths = [5000] * 10 + [1, 7, 3, 64, 64, 65, 2, 9000, 12] * 20
    for batch_size, max_words in ((128, 8192), (4, 100), (1, 10)):
        batches = word_batches(lengths, batch_size, max_words)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        for b in batches:
            padded = len(b) * max(lengths[i] for i in b)
            assert len(b) <= batch_size and (padded <= max_words or len(b) == 1), (b, padded)
    assert [len(b) for b in word_batches([5000] * 100, 128, 8192)] == [1] * 100
    assert [len(b) for b in word_batches([10] * 300, 128, 8192)] == [128, 128, 44]


def test_predict_in_word_bounded_batches_equals_one_by_one(monkeypatch):
    import bptt.models.tagger

    tagger = random_tagger()
    rng = np.random.default_rng(0)
    words = ["John", "Smith", "lives", "in", "Paris", ".", "Zork"]
    sentences = [list(rng.choice(words, size=n)) for n in (1, 30, 2, 17, 5, 60, 3, 3, 40)]
    shapes = []
    real = bptt.models.tagger.make_batch

    def make_batch(*args):
        batch = real(*args)
        shapes.append(batch.forms.shape)  # (T, B)
        return batch

    monkeypatch.setattr(bptt.models.tagger, "make_batch", make_batch)
    together = tagger.predict(sentences, batch_size=8, max_words=64)
    assert shapes and all(T * B <= 64 or B == 1 for T, B in shapes), shapes
    assert together == [tagger.predict([s])[0] for s in sentences]


# ----------------------------------------------------------------------------------------- tag schemes


def test_an_ner_model_has_both_iob2_tags_of_every_type():
    """A dev file may write a multi-word LOC the training slice only has as one-word LOCs."""
    from bptt.models.tagger_network import TaggerConfig
    from bptt.models.vocab import FormTable, Vocab
    from bptt.training import encode, task_tags

    train = [["I-LOC", "O", "I-PER", "I-PER"]]  # IOB1: LOC only one word long
    tags = task_tags("ner", [to_iob2(t, "IOB1") for t in train], "train.txt")
    assert tags == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    cfg = TaggerConfig(task="ner", tags=tags)
    table = FormTable(Vocab.build([["New", "York"]]))
    dev = [Sentence(["New", "York"], ["I-LOC", "I-LOC"], 3)]
    corpus = encode("dev.txt", dev, [to_iob2(s.tags, "IOB1") for s in dev], cfg, table)
    assert [list(labels) for labels in corpus.labels] == [[1, 2]]
    unknown = [Sentence(["Acme", "Corp"], ["O", "I-ORG"], 7)]
    with pytest.raises(BpttError) as e:
        encode("dev.txt", unknown, [to_iob2(s.tags, "IOB1") for s in unknown], cfg, table)
    assert str(e.value) == "dev.txt:8: tag 'I-ORG': entity type 'ORG' never occurs in the training file"


@pytest.mark.slow
def test_training_accepts_a_dev_file_with_a_longer_entity(tmp_path):
    train = tmp_path / "train.txt"
    train.write_text("John I-PER\nSmith I-PER\nvisited O\nParis I-LOC\n.\tO\n\n" * 20)
    dev = tmp_path / "dev.txt"
    dev.write_text("Mary I-PER\nvisited O\nNew I-LOC\nYork I-LOC\n. O\n")
    args = ["--train", train, "--dev", dev, "--task", "ner", "--epochs", 1, "--out", tmp_path / "m"]
    assert main(["train", *map(str, args), *TINY]) == 0


def test_a_stray_tag_is_named_not_silently_reinterpreted():
    iob2 = [
        Sentence(["a", "b"], ["B-PER", "I-PER"], 1),
        Sentence(["c", "d", "e"], ["O", "I-LOC", "B-LOC"], 4),
    ]
    with pytest.warns(SchemeWarning) as caught:
        assert detect_scheme(iob2, "dev.txt") == "IOB2"
    assert [str(w.message) for w in caught] == [
        "dev.txt:5: I-LOC starts an entity where IOB2 writes B-LOC;"
        " read as the start of an entity, as conlleval reads it"
    ]
    iob1 = [["I-PER", "O", "B-MISC"], ["I-LOC", "I-LOC", "B-LOC"], ["O", "B-ORG"], ["I-MISC"]]
    with pytest.warns(SchemeWarning) as caught:
        assert detect_scheme(iob1) == "IOB1"
    assert str(caught[0].message).startswith(
        "tag_sequences[0][2]: B-MISC starts an entity where IOB1 writes I-MISC (2 such tags);"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # consistent files: no warning
        assert detect_scheme([["I-PER", "B-PER", "O", "I-LOC"]]) == "IOB1"
        assert detect_scheme([["B-PER", "I-PER", "B-PER", "O"]]) == "IOB2"
        assert detect_scheme([["S-PER", "B-LOC", "E-LOC"]]) == "IOBES"


@pytest.mark.slow
def test_evaluate_keeps_the_gold_column_of_a_file_with_a_stray_tag(d, model, tmp_path, capsys):
    sentences = read_conll(d / "dev.iob2")
    k, i = next(  # a B- that starts an entity after O
        (k, i)
        for k, s in enumerate(sentences)
        for i, t in enumerate(s.tags)
        if t[0] == "B" and (["O"] + s.tags)[i] == "O"
    )
    tags = list(sentences[k].tags)
    tags[i] = "I-" + tags[i][2:]  # one stray I- where IOB2 writes B-
    sentences[k] = Sentence(sentences[k].words, tags, sentences[k].line)
    stray = tmp_path / "stray.iob2"
    write_conll(stray, sentences)
    out = tmp_path / "stray.pred"
    rc, _, err = cli(capsys, "evaluate", "--model", model, "--data", stray, "--output", out)
    line = read_conll(stray)[k].line + i
    assert rc == 0 and err.splitlines() == [
        f"bptt: warning: {stray}:{line}: {tags[i]} starts an entity where IOB2 writes B-{tags[i][2:]};"
        " read as the start of an entity, as conlleval reads it",
        f"wrote {out}",
    ]
    assert out.read_bytes() == expected_output(model, stray, [s.tags for s in sentences])  # gold as written


@pytest.mark.slow
def test_evaluate_writes_iobes_as_iob2_for_conlleval(d, model, tmp_path, capsys):
    out = tmp_path / "dev.pred"
    rc, printed, _ = cli(capsys, "evaluate", "--model", model, "--data", d / "dev.iobes", "--output", out)
    assert rc == 0
    gold = [to_iob2(s.tags, "IOBES") for s in read_conll(d / "dev.iobes")]
    assert gold == [to_iob2(s.tags, "IOB1") for s in read_conll(d / "dev.txt")]
    assert out.read_bytes() == expected_output(model, d / "dev.iobes", gold)
    assert not any(t[:2] in ("S-", "E-") for line in out.read_text().splitlines() for t in line.split()[1:])
    # and the scores are the file's, whatever its scheme
    rc, again, _ = cli(capsys, "evaluate", "--model", model, "--data", d / "dev.txt")
    assert printed.splitlines()[1:] == again.splitlines()[1:]
