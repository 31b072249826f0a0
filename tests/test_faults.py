"""Faults lose nothing: SIGKILL at any moment, SIGINT/SIGTERM inside an epoch, non-finite steps.

Each interrupted run is resumed with ``--resume`` until it finishes, and its final weights must be
bit for bit those of an uninterrupted run with the same seed.
"""

import json
import os
import random
import signal
import warnings

import numpy as np
import pytest

import bptt.training.trainer
from bptt.cli import main
from bptt.io.modelfiles import load_checkpoint
from bptt.io.safetensors_io import load_safetensors
from tests.conftest import data_file
from tests.helpers import TINY, assert_same_weights, start_with_fault, write_slice

pytestmark = pytest.mark.slow  # end to end: trains, kills and resumes real processes

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
    """The same weights, bit for bit, and the same training losses epoch by epoch."""
    assert_same_weights(a, b)
    losses = [
        [json.loads(r)["train_loss"] for r in (d / "log.jsonl").read_text().splitlines()] for d in (a, b)
    ]
    assert losses[0] == losses[1]


# where a process can be killed; each is reached in every epoch (the model's files only when dev F1
# improves, which the first epoch of a run always does)
STAGES = ("write", "mid-write", "rename")
EVERY_EPOCH = ("arrays.safetensors", "state.json", "log.jsonl", "loss.png")
FIRST_EPOCH = (*EVERY_EPOCH, "weights.safetensors", "vocab.json", "config.json", "sample.json")


def kill_plan(rng):
    """Five SIGKILL points drawn from ``rng``, each sure to be reached by the process it kills."""
    per_epoch = 400 // 8
    return [
        f"batch:1:{rng.randrange(per_epoch)}",  # a fresh run, before any checkpoint: it starts again
        f"{rng.choice(STAGES)}:{rng.choice(FIRST_EPOCH)}",  # while epoch 1 saves: start again
        f"batch:2:{rng.randrange(per_epoch)}",  # inside epoch 2: resume after epoch 1
        "checkpoint:swap",  # checkpoint/ moved aside, the new one not yet in place: checkpoint.old/
        f"{rng.choice(STAGES)}:{rng.choice(EVERY_EPOCH)}",  # while epoch 2 saves again
    ]


@pytest.mark.parametrize("seed", [7, 8])
def test_sigkill_at_any_moment_then_resume_is_bit_identical(data, reference, seed):
    out = data / f"killed{seed}"
    for point in kill_plan(random.Random(seed)):
        resume = os.path.exists(out / "run.json")  # killed before writing it: start again
        argv = ["train", "--resume", str(out), "--quiet"] if resume else [*train_args(data, out), "--quiet"]
        p = start_with_fault(argv, f"SIGKILL@{point}")
        err = p.communicate(timeout=600)[1]
        assert p.returncode == -signal.SIGKILL, (point, err)
        if os.path.exists(out / "checkpoint") or os.path.exists(out / "checkpoint.old"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # after the swap, checkpoint.old/ is used, with a warning
                assert load_checkpoint(out) is not None  # whatever the moment, a checkpoint is whole
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_model(reference, out)


def stop_inside_epoch(data, out, signum, epoch, batch):
    """Deliver ``signum`` before batch ``batch`` of epoch ``epoch``; return the saved state."""
    p = start_with_fault(train_args(data, out), f"{signal.Signals(signum).name}@batch:{epoch}:{batch}")
    rest = p.communicate(timeout=600)[1]
    assert p.returncode == 128 + signum, rest
    assert rest.splitlines()[-1] == "bptt: interrupted", rest
    _, state = load_checkpoint(out)
    return state


@pytest.mark.parametrize(
    "signum, epoch, batch",
    [(signal.SIGTERM, 2, 17), (signal.SIGINT, 1, 1), (signal.SIGINT, 3, 49)],
    ids=["SIGTERM in epoch 2", "SIGINT in epoch 1", "SIGINT before the last batch"],
)
def test_signal_saves_inside_the_epoch_and_resume_is_bit_identical(
    data, reference, signum, epoch, batch, capfd
):
    out = data / f"signal{signum}-{epoch}"
    state = stop_inside_epoch(data, out, signum, epoch, batch)
    assert state["epoch"] == epoch - 1  # the finished epochs
    at = state["inside_epoch"]
    assert at["batch"] == batch and at["totals"]["n_steps"] == batch == len(at["grad_norms"])
    capfd.readouterr()
    assert main(["train", "--resume", str(out)]) == 0
    assert f"resumed after epoch {epoch - 1} and {batch} batches of epoch {epoch}" in capfd.readouterr().err
    assert_same_model(reference, out)


def test_signal_during_evaluation_saves_the_finished_epoch(data, reference):
    """SIGTERM after the batches of epoch 2: its evaluation and checkpoint complete, then the run stops."""
    out = data / "signal-eval"
    p = start_with_fault(train_args(data, out), "SIGTERM@eval:2")
    rest = p.communicate(timeout=600)[1]
    assert p.returncode == 128 + signal.SIGTERM, rest
    _, state = load_checkpoint(out)
    assert state["epoch"] == 2 and "inside_epoch" not in state
    assert len((out / "log.jsonl").read_text().splitlines()) == 2
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_model(reference, out)


# ------------------------------------------------------------------------------------- non-finite steps


def poisoned_loss(bad_calls):
    """tagger_loss, but with a NaN or Inf in the loss or a gradient on the calls numbered in ``bad_calls``."""
    real = bptt.training.trainer.tagger_loss
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
    monkeypatch.setattr(bptt.training.trainer, "tagger_loss", poisoned_loss(lambda n: n % 7 == 3))
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
    monkeypatch.setattr(bptt.training.trainer, "tagger_loss", poisoned_loss(lambda n: n >= per_epoch + 10))
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
