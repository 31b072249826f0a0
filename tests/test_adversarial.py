"""What an adversarial pass found, each fixed where every command goes through it, each tested here.

Inputs: tag reads CoNLL on standard input too, refuses text arguments with --input, reads a pipe or a
device given as --input and names a directory; training refuses pipes (it reads its files more than
once); closed standard streams are one line. Sizes: gradflow's --K, demo's --sentences and graph's
words are bounded before any work. Outputs (one place, `bptt.io.output`): a write-protected file is
refused, pictures and pages are written through links and never over an input. Run directories:
--overwrite deletes only what a run wrote (never a file put in checkpoint/) and keeps report.html.
--resume checks every field of a re-signed checkpoint, and that its arrays are exactly the network's.
Every refusal is exit status 2 and one line naming the option, file or field.

Deterministic: no sleeps, no clocks; pipes are written in full and closed before they are read.
Permissions are tested with ``os.access`` monkeypatched, so the tests mean the same as root.
"""

import io
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from bptt.bench import memory
from bptt.cli import main
from bptt.cli.graph import gold_iob2
from bptt.errors import BpttError
from bptt.io.modelfiles import load_checkpoint, load_model_dir, save_checkpoint, save_document
from bptt.io.output import open_output
from bptt.io.synthetic import make_corpus
from bptt.models.tagger_network import TaggerConfig
from bptt.training import RUN_FORMAT, RUN_FORMAT_VERSION, read_run_file
from bptt.training.checkpoint import check_state
from bptt.training.rundir import check_out_dir, check_regular_files
from tests.helpers import MINI, error_line, snapshot, write_conll

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
TIMEOUT = 120  # seconds: a bound for a process that hangs, never a wait for something to happen


# ------------------------------------------------------------------------------------------ helpers


def run(capsys, *argv):
    """``bptt ARGV`` in this process: (exit status, stdout, stderr); argparse's own exit counts too."""
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def refused(capsys, *argv, expect=()):
    """``bptt ARGV`` exits 2 with one line ``bptt: error: ...`` holding each of ``expect``; returns it."""
    err = "bptt: error: " + error_line(capsys, *argv) + "\n"
    for text in expect:
        assert str(text) in err, (text, err)
    return err


def deny_access(monkeypatch, path, mode):
    """``os.access(path, m)`` says no for the bits of ``mode``, as for a user without the permission."""
    real, target = os.access, os.path.realpath(path)

    def access(p, m, *args, **kw):
        if os.path.realpath(p) == target and m & mode:
            return False
        return real(p, m, *args, **kw)

    monkeypatch.setattr(os, "access", access)


def bptt_process(*argv, **kw):
    """``python -m bptt ARGV`` as a process of its own: (exit status, stdout, stderr)."""
    env = {**os.environ, "PYTHONPATH": SRC}
    cmd = [sys.executable, "-m", "bptt", *map(str, argv)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=TIMEOUT, **kw)


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    """Synthetic training and dev files, and a tiny person tagger trained for one epoch (``model/``)."""
    d = tmp_path_factory.mktemp("adversarial")
    write_conll(d / "train.txt", make_corpus(60, seed=1), columns=2)
    write_conll(d / "dev.txt", make_corpus(20, seed=2, split="test"), columns=2)
    argv = ["train", "--train", d / "train.txt", "--dev", d / "dev.txt", "--out", d / "model"]
    assert main([str(a) for a in [*argv, "--epochs", "1", *MINI]]) == 0
    return d


@pytest.fixture
def run_dir(d, tmp_path):
    """A copy of the finished run (model, log, checkpoint, run.json)."""
    return shutil.copytree(d / "model", tmp_path / "run")


# ----------------------------------------------------------------------------- 1, 2, 16, 20: tag's inputs


def conll_bytes(sentences):
    return "".join("".join(f"{w} O\n" for w in s) + "\n" for s in sentences).encode()


SENTENCES = [["Harry", "Potter", "said", "hello", "."], ["Ada", "Lovelace", "wrote", "."]]


def test_tag_reads_conll_on_standard_input(d, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(conll_bytes(SENTENCES)), encoding="utf-8"))
    rc, out, _ = run(capsys, "tag", "--model", d / "model", "--input-format", "conll", "--format", "json")
    records = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and [r["words"] for r in records] == SENTENCES  # one record per sentence, not per line
    assert [r["line"] for r in records] == [1, 7]


def test_tag_reads_conll_from_a_pipe_on_standard_input(d, capsys, monkeypatch):
    r, w = os.pipe()
    os.write(w, conll_bytes(SENTENCES))  # all of it, then the end: nothing to wait for
    os.close(w)
    monkeypatch.setattr(sys, "stdin", os.fdopen(r, "r"))
    rc, out, _ = run(capsys, "tag", "--model", d / "model", "--input-format", "conll", "--format", "conll")
    assert rc == 0
    assert [[line.split()[0] for line in block.splitlines()] for block in out.split("\n\n")[:-1]] == SENTENCES


def test_text_arguments_and_input_are_not_combined(d, capsys):
    (d / "lines.txt").write_text("One line .\n")
    refused(capsys, "tag", "--model", d / "model", "--input", d / "lines.txt", "Hello there",
            expect=["--input", "Hello there"])  # fmt: skip
    refused(capsys, "tag", "--model", d / "model", "--input-format", "conll", "Hello there",
            expect=["--input-format conll"])  # fmt: skip


def test_tag_input_a_directory_a_device_and_a_pipe(d, capsys, tmp_path):
    refused(capsys, "tag", "--model", d / "model", "--input", tmp_path, expect=[tmp_path, "is a directory"])
    err = refused(capsys, "tag", "--model", d / "model", "--input", os.devnull, expect=["empty input"])
    assert "no such file" not in err  # a device is read: /dev/null holds no line
    r, w = os.pipe()
    os.write(w, b"Harry Potter came .\n\nBye .\n")
    os.close(w)
    try:
        rc, out, _ = run(capsys, "tag", "--model", d / "model", "--input", f"/dev/fd/{r}")
    finally:
        os.close(r)
    lines = out.splitlines()  # one record per line (what the tiny model tags does not matter here)
    assert rc == 0 and len(lines) == 3 and "Potter" in lines[0] and lines[1] == "" and "Bye" in lines[2]


def test_a_file_of_blank_lines_gives_blank_records(d, capsys, tmp_path):
    (tmp_path / "blanks.txt").write_text("\n\n\n")
    rc, out, _ = run(capsys, "tag", "--model", d / "model", "--input", tmp_path / "blanks.txt")
    assert (rc, out) == (0, "\n\n\n")
    rc, out, _ = run(
        capsys, "tag", "--model", d / "model", "--input", tmp_path / "blanks.txt", "--format", "json"
    )
    assert rc == 0 and [json.loads(line)["words"] for line in out.splitlines()] == [[], [], []]


def test_binary_input_says_not_a_text_file(d, capsys, tmp_path):
    (tmp_path / "bin.txt").write_bytes(b"fine .\n\x00\x01\n")
    err = refused(
        capsys, "tag", "--model", d / "model", "--input", tmp_path / "bin.txt", expect=["bin.txt:2:"]
    )
    assert "not a text file" in err and "text text" not in err


# --------------------------------------------------------------------------- 12: closed standard streams


@pytest.mark.parametrize("command", ["tag", "evaluate", "evaluate -"])
def test_closed_standard_output_is_one_line(command, d, capsys, monkeypatch):
    evaluate = ["evaluate", "--model", d / "model", "--data", d / "dev.txt"]
    argv = {"tag": ["tag", "--model", d / "model", "Harry"], "evaluate": evaluate,
            "evaluate -": [*evaluate, "--output", "-"]}[command]  # fmt: skip
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdout", None)  # what Python sets when started with descriptor 1 closed
    refused(capsys, *argv, expect=["standard output is closed"])


def test_closed_standard_input_is_one_line(d, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)
    refused(capsys, "tag", "--model", d / "model", expect=["standard input is closed"])


@pytest.mark.slow
def test_closed_descriptors_in_a_real_process(d):
    for argv, fd, message in [
        (["tag", "--model", d / "model", "Harry"], 1, "standard output is closed"),
        (["tag", "--model", d / "model"], 0, "standard input is closed"),
    ]:
        out = bptt_process(*argv, preexec_fn=lambda fd=fd: os.close(fd))
        assert out.returncode == 2 and out.stderr.startswith(f"bptt: error: {message}")
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


# ------------------------------------------------------------------------------ 3: training reads files


def test_training_refuses_a_pipe_before_opening_it(d, tmp_path):
    fifo = tmp_path / "train.fifo"
    os.mkfifo(fifo)
    from bptt.training import TrainConfig

    with pytest.raises(BpttError, match=r"train\.fifo: not a regular file .*--train must be a regular file"):
        check_regular_files(TrainConfig(train=str(fifo), dev=str(d / "dev.txt")))  # os.stat: never blocks
    with pytest.raises(BpttError, match="--dev must be a regular file"):
        check_regular_files(TrainConfig(train=str(d / "train.txt"), dev=str(fifo)))
    check_regular_files(TrainConfig(train=str(d / "train.txt"), dev=str(d / "dev.txt")))


@pytest.mark.slow
def test_train_on_a_pipe_is_refused_not_hung(d, tmp_path):
    fifo = tmp_path / "train.fifo"
    os.mkfifo(fifo)
    out = bptt_process("train", "--train", fifo, "--out", tmp_path / "run", *MINI)  # timeout: TIMEOUT
    assert out.returncode == 2 and "must be a regular file" in out.stderr and out.stderr.count("\n") == 1
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- 4, 5, 6: sizes, bounded


def test_gradflow_K_is_bounded_and_capped_at_the_longest_sentence(d, capsys, tmp_path):
    refused(capsys, "gradflow", "--model", d / "model", "--data", d / "dev.txt", "--K", 10**9,
            "--out", tmp_path / "g.png", expect=["--K", "at most 10,000"])  # fmt: skip
    from bptt.cli.gradflow import reach_probe
    from bptt.io.conll import read_conll

    probe = reach_probe(d / "model", d / "dev.txt", 3, 10_000)  # (3, longest), not (3, 10,000)
    assert probe.shape == (3, max(len(s.words) for s in read_conll(d / "dev.txt")[:3]))


def test_gradflow_demo_refuses_data(d, capsys, tmp_path):
    refused(capsys, "gradflow", "--demo", "--data", d / "dev.txt", "--out", tmp_path / "g.png",
            expect=["--data", "--demo"])  # fmt: skip


def test_demo_training_of_the_pictures_is_bounded_and_epochs_need_the_demo(d, capsys, tmp_path):
    out = ["--out", tmp_path / "g.png"]
    refused(capsys, "graph", "--demo", "Harry", "--steps", 10**9, *out, expect=["--steps", "1 to 100,000"])
    refused(capsys, "graph", "--demo", "Harry", "--steps", 0, *out, expect=["--steps"])
    refused(capsys, "gradflow", "--demo", "--epochs", 0, *out, expect=["--epochs", "1 to 10,000"])
    refused(
        capsys,
        "gradflow",
        "--model",
        d / "model",
        "--epochs",
        3,
        *out,
        expect=["--epochs", "only with --demo"],
    )
    assert not (tmp_path / "g.png").exists()


@pytest.mark.parametrize(
    "options, expected",
    [
        (["--sentences", 10**12], ["--sentences", "1 to 100,000", "in memory"]),
        (["--sentences", 0], ["--sentences"]),
        (["--sentences", -10], ["--sentences"]),
        (["--seconds", -5], ["--seconds", "-5"]),
        (["--seconds", "nan"], ["--seconds"]),
        (["--seed", -1], ["--seed"]),
    ],
)
def test_demo_options_are_checked_first_by_their_names(options, expected, capsys, tmp_path):
    err = refused(capsys, "demo", "--out", tmp_path / "demo", *options, expect=expected)
    assert "time_budget" not in err and "n_sentences" not in err and "/tmp" not in err.split(":")[2]
    assert not (tmp_path / "demo").exists()


def test_demo_out_empty(capsys):
    refused(capsys, "demo", "--out", "", expect=["--out: empty"])


def test_demo_refuses_a_run_of_bptt_train_without_advising_options_it_lacks(run_dir, capsys):
    """The demo replaces only its own run: it has no --overwrite nor --resume to suggest."""
    before = snapshot(run_dir)
    err = refused(capsys, "demo", "--out", run_dir, expect=["bptt train", "choose another --out"])
    assert "--overwrite" not in err and "--resume" not in err
    for name in os.listdir(run_dir):
        if name != "run.json":
            shutil.rmtree(run_dir / name) if (run_dir / name).is_dir() else os.remove(run_dir / name)
    refused(capsys, "demo", "--out", run_dir, expect=["bptt train", "choose another --out"])
    assert snapshot(run_dir) == {"run.json": before["run.json"]}


def test_graph_is_bounded_to_a_readable_sentence(d, capsys, tmp_path):
    words = " ".join(["word"] * 201)
    refused(capsys, "graph", "--model", d / "model", words, "--out", tmp_path / "g.svg",
            expect=["201 words", "at most 200"])  # fmt: skip
    from bptt.pictures.plots import draw_unrolled_graph

    trace = {
        "words": ["w"] * 201,
        "y_hat": [0.5] * 201,
        "predicted": ["O"] * 201,
        "message_norms": [1.0] * 201,
    }
    with pytest.raises(BpttError, match="at most 200"):
        draw_unrolled_graph(trace, tmp_path / "g.svg")
    assert not (tmp_path / "g.svg").exists()


# ------------------------------------------------------------------------------------- 10: seeds


@pytest.mark.parametrize(
    "command", [["graph", "--demo", "Harry"], ["gradflow", "--demo"], ["demo"], ["train"]]
)
@pytest.mark.parametrize("seed", ["-1", "2**70", "x"])
def test_every_seed_option_is_checked_alike(command, seed, capsys, tmp_path):
    out = ["--out", tmp_path / ("o.png" if command[0] in ("graph", "gradflow") else "o")]
    refused(capsys, *command, *out, "--seed", seed, expect=["--seed"])


# ---------------------------------------------------------------------------------- 19: graph --gold


def test_gold_tags_are_the_models(d, capsys, tmp_path):
    out = tmp_path / "g.svg"
    for gold, expected in [("PER PER", "invalid tag 'PER'"), ("X Y", "invalid tag 'X'"),
                           ("B-LOC O", "'B-LOC': not a tag of this model")]:  # fmt: skip
        refused(capsys, "graph", "--model", d / "model", "Harry Potter", "--gold", gold, "--out", out,
                expect=["--gold", expected])  # fmt: skip
    assert not out.exists()
    known = ("O", "B-PER", "I-PER")
    assert gold_iob2(["B-PER", "E-PER", "O"], known) == [
        "B-PER",
        "I-PER",
        "O",
    ]  # any scheme, read as conlleval
    assert gold_iob2(["I-PER", "I-PER"], known) == ["B-PER", "I-PER"]
    with pytest.raises(BpttError, match="I-LOC"):
        gold_iob2(["B-LOC", "I-LOC"], ("O", "B-LOC"))


# ---------------------------------------------------------------------- 8, 20: outputs, in one place


def test_a_write_protected_output_is_refused_everywhere(d, capsys, monkeypatch, tmp_path):
    ro = tmp_path / "ro.pred"
    ro.write_text("protected\n")
    deny_access(monkeypatch, ro, os.W_OK)
    refused(capsys, "evaluate", "--model", d / "model", "--data", d / "dev.txt", "--output", ro,
            expect=[ro, "write-protected"])  # fmt: skip
    for name, argv in [
        ("ro.png", ["graph", "--model", d / "model", "Harry"]),
        ("ro.png", ["gradflow", "--model", d / "model"]),
        ("ro.html", ["report", d / "model"]),
    ]:
        pic = tmp_path / name
        pic.write_text("protected\n")
        deny_access(monkeypatch, pic, os.W_OK)
        refused(capsys, *argv, "--out", pic, expect=[pic, "write-protected"])
        assert pic.read_text() == "protected\n"
    assert ro.read_text() == "protected\n"


def test_open_output_refuses_a_write_protected_file_in_binary_too(tmp_path, monkeypatch):
    path = tmp_path / "x.png"
    path.write_bytes(b"old")
    deny_access(monkeypatch, path, os.W_OK)
    with pytest.raises(BpttError, match="write-protected"), open_output(path, binary=True) as f:
        f.write(b"new")
    assert path.read_bytes() == b"old"


@pytest.mark.slow
def test_pictures_and_pages_are_written_through_links(d, capsys, tmp_path):
    for name, argv in [("graph.svg", ["graph", "--model", d / "model", "Harry Potter"]),
                       ("page.html", ["report", d / "model"])]:  # fmt: skip
        target, link = tmp_path / f"target-{name}", tmp_path / name
        link.symlink_to(target)
        rc, _, err = run(capsys, *argv, "--out", link)
        assert rc == 0, err
        assert link.is_symlink() and target.stat().st_size > 0


def test_a_picture_never_goes_over_an_input(d, capsys, run_dir, tmp_path):
    link = tmp_path / "g.png"
    link.symlink_to(run_dir / "weights.safetensors")
    before = (run_dir / "weights.safetensors").read_bytes()
    refused(capsys, "gradflow", "--model", run_dir, "--out", link, expect=["refusing to write over it"])
    assert (run_dir / "weights.safetensors").read_bytes() == before


@pytest.mark.slow
def test_overwrite_keeps_report_html(d, capsys, run_dir):
    rc, _, err = run(capsys, "report", run_dir)
    assert rc == 0, err
    page = (run_dir / "report.html").read_bytes()
    argv = ["train", "--train", d / "train.txt", "--out", run_dir, "--epochs", "1", "--overwrite", *MINI]
    rc, _, err = run(capsys, *argv)
    assert rc == 0, err
    assert (run_dir / "report.html").read_bytes() == page  # the user's page: neither refused nor deleted
    assert check_out_dir(str(run_dir), overwrite=True) is False


# ------------------------------------------------------------------ 7: overwrite deletes only a run's


@pytest.mark.parametrize("sub", ["checkpoint", "checkpoint.old"])
def test_a_file_put_in_a_checkpoint_is_never_deleted(d, capsys, run_dir, sub):
    (run_dir / sub).mkdir(exist_ok=True)
    (run_dir / sub / "NOTES.txt").write_text("mine\n")
    before = snapshot(run_dir)
    argv = ["train", "--train", d / "train.txt", "--out", run_dir, "--epochs", "1", "--overwrite", *MINI]
    refused(capsys, *argv, expect=[f"{sub}/NOTES.txt", "not a bptt run's"])
    refused(capsys, "train", "--resume", run_dir, "--quiet", expect=[f"{sub}/NOTES.txt"])  # a save deletes it
    assert snapshot(run_dir) == before


def test_a_checkpoint_that_is_not_a_directory_is_not_deleted(run_dir):
    shutil.rmtree(run_dir / "checkpoint")
    (run_dir / "checkpoint").write_text("a file of mine\n")
    with pytest.raises(BpttError, match="a checkpoint is a directory"):
        check_out_dir(str(run_dir), overwrite=True)


# ------------------------------------------------------------------- 9: the tagger's settings, together


def test_a_character_rnn_needs_units(d, capsys, tmp_path):
    with pytest.raises(BpttError, match="char_hidden: expected an integer >= 1 when char_dim is 4"):
        TaggerConfig(char_dim=4, char_hidden=0)
    TaggerConfig(char_dim=0, char_hidden=0)  # no character RNN at all
    TaggerConfig(char_dim=0, char_hidden=25)  # char_dim 0 turns it off, units and all
    refused(capsys, "train", "--train", d / "train.txt", "--out", tmp_path / "o", "--char-dim", 4,
            "--char-hidden", 0, expect=["--char-hidden"])  # fmt: skip
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------- 11, 13, 14: a re-signed checkpoint


def _state(run_dir):
    return load_checkpoint(run_dir)[1]


def _set(state, path, value):
    """state with the field at ``path`` ("a.b") set to ``value`` (or deleted for DELETE)."""
    state = json.loads(json.dumps(state))
    *parents, last = path.split(".")
    node = state
    for p in parents:
        node = node[int(p) if isinstance(node, list) else p]
    last = int(last) if isinstance(node, list) else last
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return state


DELETE = object()
INSIDE = {
    "batch": 1,
    "rng_epoch": np.random.default_rng(3).bit_generator.state,
    "seconds": 0.5,
    "totals": {
        "total_loss": 3.5,
        "tokens": 40,
        "n_sentences": 8,
        "n_clipped": 0,
        "n_bad": 0,
        "n_skipped": 0,
        "n_steps": 1,
    },  # fmt: skip
    "grad_norms": [1.5],
}
STATE_EDITS = {
    "epoch a string": ("epoch", "1", "epoch: expected an integer from 0 to 1, got '1'"),
    "epoch -1": ("epoch", -1, "epoch: expected an integer from 0 to 1"),
    "epoch 10**6": ("epoch", 10**6, "epoch: expected an integer from 0 to 1, got 1000000"),
    "epoch true": ("epoch", True, "epoch: expected an integer"),
    "best_f1 null": ("best_f1", None, "best_f1: expected a finite number"),
    "best_f1 over 100": ("best_f1", 1000.0, "best_f1: expected a finite number >= -1 and <= 100"),
    "bad_epochs missing": ("bad_epochs", DELETE, "state: missing the field 'bad_epochs'"),
    "bad_epochs over epoch": ("bad_epochs", 5, "bad_epochs: expected an integer from 0 to 1"),
    "train_seconds a string": ("train_seconds", "x", "train_seconds: expected a finite number >= 0"),
    "ema_updates negative": ("ema_updates", -1, "ema_updates: expected an integer"),
    "rng a string": ("rng", "x", "rng: expected the state of NumPy's PCG64 generator"),
    "rng of MT19937": ("rng", {"bit_generator": "MT19937", "state": {}}, "rng: expected the state of NumPy"),
    "rng state negative": ("rng.state.state", -1, "rng: expected the state of NumPy's PCG64"),
    "rng state a float": ("rng.state.inc", 1.5, "rng: expected the state of NumPy's PCG64"),
    "rng has_uint32 5": ("rng.has_uint32", 5, "rng: expected the state of NumPy's PCG64"),
    "log of a wrong type": ("log", [{"epoch": "x"}], "log[0]: epoch: expected 1"),
    "log a string": ("log", "x", "log: expected a list of 1 records"),
    "log too short": ("log", [], "log: expected a list of 1 records"),
    "log with a bad number": ("log.0.train_loss", "x", "log[0]: train_loss: expected a number"),
    "unknown field": ("step", 3, "state: unknown field 'step'"),
}


@pytest.mark.parametrize("case", list(STATE_EDITS))
def test_every_field_of_a_checkpoint_state_is_checked(case, run_dir):
    field, value, expected = STATE_EDITS[case]
    tcfg = read_run_file(run_dir)[0]
    check_state(_state(run_dir), "state.json", tcfg, 60)  # the saved state itself is fine
    with pytest.raises(BpttError, match="^state.json: " + re.escape(expected)):
        check_state(_set(_state(run_dir), field, value), "state.json", tcfg, 60)


INSIDE_EDITS = {
    "epoch at the end": ("epoch", 3, "epoch: expected an integer from 0 to 2"),  # the epoch in progress is 4
    "not an object": ("inside_epoch", [], "inside_epoch: expected an object of batch"),
    "a field missing": ("inside_epoch.totals", DELETE, "inside_epoch: expected an object of batch"),
    "batch past the data": ("inside_epoch.batch", 61, "inside_epoch.batch: expected an integer from 0 to 60"),
    "rng_epoch bad": ("inside_epoch.rng_epoch", {}, "inside_epoch.rng_epoch: expected the state of NumPy"),
    "seconds negative": ("inside_epoch.seconds", -1, "inside_epoch.seconds: expected a finite number >= 0"),
    "totals lacking one": ("inside_epoch.totals.n_bad", DELETE, "inside_epoch.totals: expected an object"),
    "a total a string": (
        "inside_epoch.totals.tokens",
        "x",
        "inside_epoch.totals.tokens: expected an integer",
    ),
    "loss NaN-like": ("inside_epoch.totals.total_loss", -1.0, "inside_epoch.totals.total_loss: expected a"),
    "norms too many": ("inside_epoch.grad_norms", [1.0, 2.0], "inside_epoch.grad_norms: expected a list of"),
    "a norm a string": ("inside_epoch.grad_norms", ["x"], r"inside_epoch.grad_norms[0]: expected a finite"),
}


@pytest.mark.parametrize("case", list(INSIDE_EDITS))
def test_a_checkpoint_inside_an_epoch_is_checked_too(case, run_dir):
    field, value, expected = INSIDE_EDITS[case]
    tcfg = replace(read_run_file(run_dir)[0], epochs=3)
    state = {**_state(run_dir), "inside_epoch": INSIDE}
    check_state(state, "state.json", tcfg, 60)
    with pytest.raises(BpttError) as e:
        check_state(_set(state, field, value), "state.json", tcfg, 60)
    assert str(e.value).startswith("state.json: " + expected), str(e.value)


def test_resume_refuses_a_re_signed_state_and_writes_nothing(capsys, run_dir):
    arrays, state = load_checkpoint(run_dir)
    save_checkpoint(run_dir, arrays, {**state, "epoch": -1})  # a valid self_sha256: as a determined editor
    before = snapshot(run_dir)
    refused(capsys, "train", "--resume", run_dir, "--quiet", expect=["checkpoint/state.json: epoch:"])
    assert snapshot(run_dir) == before


def _resign_run_json(run_dir, section, field, value):
    from bptt.io.modelfiles import load_document

    doc = load_document(run_dir / "run.json", RUN_FORMAT, RUN_FORMAT_VERSION)
    doc[section][field] = value
    save_document(run_dir / "run.json", RUN_FORMAT, RUN_FORMAT_VERSION, doc)


def test_resume_refuses_tensors_the_network_does_not_have(capsys, run_dir):
    _resign_run_json(run_dir, "model", "layers", 1)  # the checkpoint holds layer 2 too
    before = snapshot(run_dir)
    refused(capsys, "train", "--resume", run_dir, "--quiet", expect=["rnn2", "does not have"])
    assert snapshot(run_dir) == before


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda a: a.pop("opt.t"), "opt.t: is missing"),
        (lambda a: a.pop(next(k for k in a if k.startswith("opt.v."))), "missing, while the m of"),
        (lambda a: a.update({"opt.m.nope": np.zeros(3, np.float32)}), "opt.m.nope: not a state"),
        (lambda a: a.update({"opt.t": np.array(-1, np.int64)}), "opt.t: is int64[]"),
        (lambda a: a.update({"param.extra": np.zeros(2, np.float32)}), "holds param.extra, which"),
    ],
)
def test_the_optimizer_state_must_match_the_network(edit, expected, capsys, run_dir):
    arrays, state = load_checkpoint(run_dir)
    edit(arrays)
    save_checkpoint(run_dir, arrays, state)
    refused(capsys, "train", "--resume", run_dir, "--quiet", expect=[expected])


# ------------------------------------------------------------------------------- 15: bench --memory


def test_memory_benchmark_skips_a_budget_below_what_any_segment_keeps():
    lines = []
    report = memory.memory_benchmark(
        (30,), B=1, n_x=2, n_a=2, n_y=2, dtype="float64", rounds=1, budgets=(None, 0.1), log=lines.append
    )
    assert [r["budget"] for r in report["results"]] == [None]  # 10% of 30 states < the 11 it keeps at least
    assert report["skipped"] == [{"T": 30, "budget": 0.1, "least_states": 11}]
    assert "skipped" in lines[-1] and "memory_budget" not in lines[-1]
    assert lines == memory.format_memory_report(report).splitlines()


def test_least_stored_states_is_the_minimum_over_every_segment_length():
    for T in [1, 2, 3, 30, 99, 100, 101, 1000, 4097]:
        assert memory.least_stored_states(T) == min(-(-T // k) + min(k, T) for k in range(1, T + 1))


@pytest.mark.slow
def test_bench_memory_at_a_short_length(capsys):
    rc, out, err = run(capsys, "bench", "--memory", "--lengths", "100", "--rounds", "1")
    assert rc == 0 and "skipped" in out and err == ""


# ------------------------------------------------------------------------- 18: permission, not missing


def test_an_unreadable_model_directory_says_permission_denied(d, capsys, monkeypatch, run_dir):
    deny_access(monkeypatch, run_dir, os.R_OK | os.X_OK)
    err = refused(capsys, "tag", "--model", run_dir, "Harry", expect=[run_dir, "permission denied"])
    assert "missing" not in err


def test_a_file_that_cannot_be_looked_at_is_not_called_missing(monkeypatch, run_dir):
    real = os.lstat

    def lstat(path, *args, **kw):
        if str(path).endswith("config.json"):
            raise PermissionError(13, "Permission denied")
        return real(path, *args, **kw)

    monkeypatch.setattr(os, "lstat", lstat)
    with pytest.raises(BpttError, match=r"config\.json: cannot read: Permission denied"):
        load_model_dir(run_dir)
