"""Faults lose nothing: SIGKILL at any moment, SIGINT/SIGTERM inside an epoch, non-finite steps.

Each interrupted run is resumed with ``--resume`` until it finishes, and its final weights must be
bit for bit those of an uninterrupted run with the same seed.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import bptt.train
from bptt.cli import main
from bptt.modelfiles import load_checkpoint
from bptt.safetensors_io import load_safetensors
from tests.conftest import data_file
from tests.test_cli import TINY, write_slice

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
EPOCHS = 3


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults")
    write_slice(data_file("conll2003", "eng.train"), d / "train.txt", 400)
    write_slice(data_file("conll2003", "eng.testa"), d / "dev.txt", 40)
    return d


def train_args(d, out, epochs=EPOCHS):
    """Small batches, so an epoch has many steps to be interrupted between."""
    return ["train", "--train", str(d / "train.txt"), "--dev", str(d / "dev.txt"), "--out", str(out),
            "--epochs", str(epochs), "--batch-size", "8", "--patience", "10", "--seed", "5",
            *[a for a in TINY if a != "--quiet"]]  # fmt: skip


@pytest.fixture(scope="module")
def reference(data):
    """The uninterrupted run."""
    out = data / "reference"
    assert main([*train_args(data, out), "--quiet"]) == 0
    return out


def assert_same_model(a, b):
    wa, _ = load_safetensors(a / "weights.safetensors")
    wb, _ = load_safetensors(b / "weights.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    losses = [
        [json.loads(r)["train_loss"] for r in (d / "log.jsonl").read_text().splitlines()] for d in (a, b)
    ]
    assert losses[0] == losses[1]


def start(argv):
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen([sys.executable, "-m", "bptt", *argv], env=env, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout=60.0):
    """Poll every millisecond until ``predicate()`` is true."""
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.001)


def writing_checkpoint(out):
    return lambda: any(name.startswith("checkpoint.tmp-") for name in os.listdir(out))


def writing_model(out):
    return lambda: any(name.startswith(".weights.safetensors.") for name in os.listdir(out))


def test_sigkill_at_any_moment_then_resume_is_bit_identical(data, reference):
    out = data / "killed"
    rng = random.Random(7)
    # when to kill each process: after a random delay, or the moment it starts writing a file
    kills = [rng.uniform(0.5, 3.0), writing_checkpoint(out), rng.uniform(0.5, 3.0), writing_model(out)]
    for when in kills:
        resume = os.path.exists(out / "run.json")  # killed before writing it: start again
        p = start(
            ["train", "--resume", str(out), "--quiet"] if resume else [*train_args(data, out), "--quiet"]
        )
        if callable(when):
            os.makedirs(out, exist_ok=True)
            wait_for(lambda when=when, p=p: when() or p.poll() is not None)
        else:
            time.sleep(when)
        p.send_signal(signal.SIGKILL)
        assert p.wait(timeout=60) in (-signal.SIGKILL, 0), p.stderr.read()
        p.stderr.close()
        if os.path.exists(out / "checkpoint") or os.path.exists(out / "checkpoint.old"):
            assert load_checkpoint(out) is not None  # whatever the moment, a checkpoint is whole
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_model(reference, out)


def stop_inside_epoch(data, out, signum, after_line):
    """Send ``signum`` 0.1 s after the progress line starting ``after_line``; return the saved state."""
    p = start(train_args(data, out))
    for line in p.stderr:
        if line.startswith(after_line):
            break
    time.sleep(0.1)
    p.send_signal(signum)
    rest = p.stderr.read()
    p.stderr.close()
    assert p.wait(timeout=60) == 128 + signum, rest
    assert rest.splitlines()[-1] == "bptt: interrupted", rest
    _, state = load_checkpoint(out)
    return state


@pytest.mark.parametrize(
    "signum, after_line",
    [(signal.SIGTERM, "epoch   1"), (signal.SIGINT, "person tagger")],
    ids=["SIGTERM in epoch 2", "SIGINT in epoch 1"],
)
def test_signal_saves_inside_the_epoch_and_resume_is_bit_identical(
    data, reference, signum, after_line, capfd
):
    out = data / f"signal{signum}"
    state = stop_inside_epoch(data, out, signum, after_line)
    epoch = 1 if signum == signal.SIGTERM else 0
    assert state["epoch"] == epoch
    at = state["inside_epoch"]
    assert 0 < at["batch"] < 50 and at["totals"]["n_steps"] == at["batch"] == len(at["grad_norms"])
    capfd.readouterr()
    assert main(["train", "--resume", str(out)]) == 0
    assert (
        f"resumed after epoch {epoch} and {at['batch']} batches of epoch {epoch + 1}"
        in capfd.readouterr().err
    )
    assert_same_model(reference, out)


# ------------------------------------------------------------------------------------- non-finite steps


def poisoned_loss(bad_calls):
    """tagger_loss, but with a NaN or Inf in the loss or a gradient on the calls numbered in ``bad_calls``."""
    real = bptt.train.tagger_loss
    calls = []

    def loss(params, *args, **kw):
        L, grads, M = real(params, *args, **kw)
        calls.append(len(calls))
        n = calls[-1]
        if bad_calls(n):
            kind = n % 3
            if kind == 0:
                L = float("nan")  # the loss alone
            elif kind == 1:
                grads["W_ya"][0, 0] = np.inf  # a dense gradient
            else:
                grads["E_word"].values[0, 0] = np.nan  # a sparse embedding gradient
        return L, grads, M

    return loss


def test_non_finite_steps_are_skipped_and_counted(data, tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(bptt.train, "tagger_loss", poisoned_loss(lambda n: n % 7 == 3))
    args = [*train_args(data, tmp_path / "m", epochs=2), "--max-sentences", "200", "--quiet"]
    assert main(args) == 0
    err = capfd.readouterr().err
    log = [json.loads(r) for r in (tmp_path / "m" / "log.jsonl").read_text().splitlines()]
    per_epoch = 200 // 8
    expected = [sum(n % 7 == 3 for n in range(e * per_epoch, (e + 1) * per_epoch)) for e in range(2)]
    assert [r["skipped_steps"] for r in log] == expected
    assert err.count("warning: skipped an update with a non-finite loss or gradient") == sum(expected)
    weights, _ = load_safetensors(tmp_path / "m" / "weights.safetensors")
    arrays, _ = load_checkpoint(tmp_path / "m")
    assert all(np.isfinite(v).all() for v in [*weights.values(), *arrays.values()])


def test_divergence_stops_with_the_last_good_checkpoint(data, reference, tmp_path, monkeypatch, capfd):
    per_epoch = 400 // 8
    monkeypatch.setattr(bptt.train, "tagger_loss", poisoned_loss(lambda n: n >= per_epoch + 10))
    out = tmp_path / "m"
    assert main([*train_args(data, out), "--quiet"]) == 2
    err = capfd.readouterr().err.splitlines()
    assert err[-1].startswith("bptt: error: training diverged: 20 updates in a row") and str(out) in err[-1]
    assert len(err) == 21  # a warning for each skipped update, then the error
    _, state = load_checkpoint(out)
    assert state["epoch"] == 1 and "inside_epoch" not in state
    # the checkpoint of epoch 1 is intact: resuming without the fault gives the uninterrupted run
    monkeypatch.undo()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_model(reference, out)
