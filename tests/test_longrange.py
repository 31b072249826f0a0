"""The long-range tasks and ``bptt longrange``: generators, baselines, the seam, runs, resume, errors.

Every run here is budgeted in sequences, never in minutes: nothing depends on the clock.
"""

import json
import math
import signal

import numpy as np
import pytest

import bptt
from bptt.cli import main
from bptt.io.modelfiles import load_checkpoint, save_checkpoint
from bptt.longrange import LongRangeConfig, LongRangeTrainer
from bptt.tasks import MAX_T, get_task, stream, task_rng
from bptt.tasks.longrange import BLANK, DELIMITER
from tests.helpers import error_line, png_ok, run_with_fault, start_with_fault

# ------------------------------------------------------------------------------------------ generators


@pytest.mark.parametrize(
    ("name", "T", "shape_X", "shape_Y"),
    [("adding", 30, (30, 7, 2), (7,)), ("copy", 30, (50, 7, 10), (50, 7)), ("order", 30, (30, 7, 8), (7,))],
)
def test_shapes_and_seeds(name, T, shape_X, shape_Y):
    task = get_task(name)
    a, b = next(stream(name, T, 7, seed=3)), next(stream(name, T, 7, seed=3))
    assert a.X.shape == shape_X and a.Y.shape == shape_Y and a.X.dtype == np.float32
    assert task.length(T) == shape_X[0] and task.n_x == shape_X[2]
    np.testing.assert_array_equal(a.X, b.X)  # the same seed, the same stream
    np.testing.assert_array_equal(a.Y, b.Y)
    other = next(stream(name, T, 7, seed=4))
    assert not np.array_equal(a.X, other.X)
    valid = task.draw(task_rng(3, "valid"), T, 7, np.float32)
    assert not np.array_equal(a.X, valid.X)  # the streams of one seed differ
    s = stream(name, T, 7, seed=3)
    first, second = next(s), next(s)
    assert not np.array_equal(first.X, second.X)  # a stream goes on


def test_adding_targets_are_the_marked_sums():
    T, B = 41, 500
    batch = get_task("adding").draw(np.random.default_rng(0), T, B, np.float64)
    X, Y = batch.X, batch.Y
    assert batch.loss_at == "last"
    assert np.all((X[:, :, 0] >= 0) & (X[:, :, 0] < 1))
    marks = X[:, :, 1]
    assert set(np.unique(marks)) == {0.0, 1.0}
    assert np.all(marks[: T // 2].sum(axis=0) == 1) and np.all(marks[T // 2 :].sum(axis=0) == 1)  # one a half
    np.testing.assert_allclose(Y, (X[:, :, 0] * marks).sum(axis=0), rtol=1e-15)


def test_copy_sequences():
    T, B = 15, 200
    batch = get_task("copy").draw(np.random.default_rng(0), T, B, np.float32)
    ids = batch.X.argmax(axis=2)  # (T + 20, B)
    assert np.all(batch.X.sum(axis=2) == 1)  # one-hot
    assert np.all((ids[:10] >= 1) & (ids[:10] <= 8))  # 10 data symbols
    assert (
        np.all(ids[10 : T + 9] == BLANK)
        and np.all(ids[T + 9] == DELIMITER)
        and np.all(ids[T + 10 :] == BLANK)
    )
    assert np.all(batch.Y[: T + 10] == BLANK)
    np.testing.assert_array_equal(batch.Y[T + 10 :], ids[:10])  # the last 10 outputs repeat them
    assert batch.loss_at.shape == (T + 20, B) and np.all(batch.loss_at.sum(axis=0) == 10)
    assert np.all(batch.loss_at[T + 10 :])


def test_temporal_order_sequences():
    T, B = 100, 400
    batch = get_task("order").draw(np.random.default_rng(0), T, B, np.float32)
    ids = batch.X.argmax(axis=2)
    assert np.all(ids[0] == 4) and np.all(ids[-1] == 5)  # B ... E
    relevant = ids >= 6  # X or Y
    assert np.all(relevant.sum(axis=0) == 2)
    t1, t2 = np.array([np.nonzero(relevant[:, b])[0] for b in range(B)]).T  # (B,) each
    assert (
        t1.min() >= 10 and t1.max() <= 20 and t2.min() >= 50 and t2.max() <= 60
    )  # as in the paper at T = 100
    first, second = ids[t1, np.arange(B)] - 6, ids[t2, np.arange(B)] - 6
    np.testing.assert_array_equal(batch.Y, 2 * first + second)  # XX, XY, YX, YY
    assert set(np.unique(batch.Y)) == {0, 1, 2, 3}
    others = ids[1:-1][~relevant[1:-1]]
    assert others.max() <= 3  # distractors a ... d


def test_adding_baseline_by_monte_carlo():
    """Always answering 1: MSE = Var(u₁ + u₂) = 1/6 ≈ 0.167, here estimated on 200,000 sequences."""
    task = get_task("adding")
    batch = task.draw(np.random.default_rng(2016), 20, 200_000, np.float64)
    mse = task.score(np.ones((200_000, 1)), batch.Y, 20, 200_000)["mse"]
    assert mse == pytest.approx(task.baseline(20), abs=0.002)  # the standard error is 0.0004
    assert round(task.baseline(20), 3) == 0.167


@pytest.mark.parametrize("T", [1, 100, 200])
def test_copy_baseline_is_a_memoryless_guess(T):
    """Guessing among the 8 symbols at the last 10 steps: cross-entropy 10 ln 8 / (T + 20) per step."""
    task = get_task("copy")
    batch = task.draw(np.random.default_rng(0), T, 50, np.float64)
    Z = np.zeros((500, 9))
    Z[:, BLANK] = -1e9  # never the blank there, uniform over the 8 symbols
    scores = task.score(Z, batch.Y[batch.loss_at], T, 50)
    assert scores["cross_entropy"] == pytest.approx(10 * math.log(8) / (T + 20), rel=1e-12)
    assert task.baseline(T) == pytest.approx(10 * math.log(8) / (T + 20), rel=1e-15)


def test_order_baseline_is_chance():
    task = get_task("order")
    batch = task.draw(np.random.default_rng(1), 100, 20_000, np.float32)
    scores = task.score(np.tile([1.0, 0, 0, 0], (20_000, 1)), batch.Y, 100, 20_000)
    assert scores["accuracy"] == pytest.approx(0.25, abs=0.01) and task.baseline(100) == 0.25


@pytest.mark.parametrize(("name", "low"), [("adding", 2), ("copy", 1), ("order", 10)])
def test_lengths_out_of_range(name, low):
    task = get_task(name)
    for bad in (low - 1, MAX_T + 1, 2.5, True):
        with pytest.raises(bptt.BpttError, match=f"from {low} to"):
            task.check_T(bad)
    assert task.check_T(low) == low


def test_every_task_is_learnable_end_to_end(rng):
    """A batch of each task goes through sequence_loss with its own head and placement, for every cell."""
    for name in ("adding", "copy", "order"):
        task = get_task(name)
        batch = task.draw(rng, 12, 3, np.float64)
        for cell in ("rnn", "gru", "lstm"):
            p = bptt.init_params(task.n_x, 5, task.n_y, cell=cell, dtype=np.float64)
            kw = dict(output=task.output, cell=cell, loss_at=batch.loss_at)
            report = bptt.gradcheck(
                lambda q, X=batch.X, Y=batch.Y, kw=kw: bptt.sequence_loss(q, X, Y, **kw), p, eps=1e-5
            )
            assert report.max_error < 1e-6


# ---------------------------------------------------------------------------------- the trainer's seam


def small_config(**kw):
    settings = dict(
        tasks=["adding"], lengths=[10], cells=["lstm"], sequences=60, hidden=8, batch_size=10,
        eval_every=20, valid_size=30, test_size=30, probes=2, seed=3,
    )  # fmt: skip
    return LongRangeConfig(**{**settings, **kw})


@pytest.mark.parametrize("task", ["adding", "copy", "order"])
def test_train_step_is_the_seam_for_summed_gradients(tmp_path, task):
    """train_step(params, batch) -> (L, grads): two halves' mean gradients average to the whole batch's."""
    cfg = small_config(tasks=[task])
    trainer = LongRangeTrainer(cfg, cfg.configurations()[0], tmp_path / "run")
    trainer.params = {k: v.astype(np.float64) for k, v in trainer.params.items()}
    batch = get_task(task).draw(np.random.default_rng(0), 10, 8, np.float64)
    L, grads = trainer.train_step(trainer.params, batch)
    assert set(grads) == set(trainer.params)

    def half(s):
        at = batch.loss_at if isinstance(batch.loss_at, str) else batch.loss_at[:, s]
        Y = batch.Y[s] if batch.Y.ndim == 1 else batch.Y[:, s]
        return trainer.train_step(trainer.params, batch._replace(X=batch.X[:, s], Y=Y, loss_at=at))

    (L1, g1), (L2, g2) = half(slice(0, 4)), half(slice(4, 8))
    assert (L1 + L2) / 2 == pytest.approx(L, rel=1e-12)
    for k in grads:
        np.testing.assert_allclose((g1[k] + g2[k]) / 2, grads[k], rtol=1e-10, atol=1e-13)


def test_configurations_and_inits():
    cfg = small_config(cells=["rnn", "irnn", "gru", "lstm"], inits=["auto", "chrono"])
    names = [c.name for c in cfg.configurations()]
    assert names == [
        "adding-T10-rnn-default",
        "adding-T10-irnn-identity",
        "adding-T10-gru-default",
        "adding-T10-gru-chrono",
        "adding-T10-lstm-forget1",
        "adding-T10-lstm-chrono",
    ]
    with pytest.raises(bptt.BpttError, match="irnn takes 'identity'"):
        small_config(cells=["irnn"], inits=["chrono"])


def test_solved_stops_only_after_two_evaluations_in_a_row(tmp_path):
    """One validation score under the threshold is not enough (a GRU stopped on its first, 0.0094, scored
    0.01003 on the test set): the configuration stops once two evaluations in a row meet the criterion."""
    cfg = small_config(tasks=["adding"])
    trainer = LongRangeTrainer(cfg, cfg.configurations()[0], tmp_path / "run")
    for mse, stop in [(0.05, None), (0.0094, None), (0.02, None), (0.009, None), (0.008, "solved")]:
        trainer.log.append({"valid": {"mse": mse}})
        assert trainer.stop_reason(0.0) == stop, mse
    keep = small_config(tasks=["adding"], keep_going=True)
    trainer = LongRangeTrainer(keep, keep.configurations()[0], tmp_path / "keep")
    trainer.log = [{"valid": {"mse": 0.001}}] * 3
    assert trainer.stop_reason(0.0) is None  # --keep-going trains the whole budget


def test_probes_show_the_vanishing_gradient(tmp_path):
    """With one loss at the end, a tanh RNN's messages and reach fall with the distance."""
    cfg = small_config(cells=["rnn"], lengths=[30], hidden=16)
    trainer = LongRangeTrainer(cfg, cfg.configurations()[0], tmp_path / "run")
    probe = trainer.probe()
    m, reach = np.array(probe["message_norms"]), np.array(probe["reach"])
    assert m.shape == (30,) and reach.shape == (30,) and reach[0] == pytest.approx(1.0)
    assert m[0] < 1e-3 * m[-1] and reach[-1] < 1e-3  # vanished 30 steps back


# --------------------------------------------------------------------------------------- the command


def run_args(out, *extra):
    return ["longrange", "--task", "adding", "--T", "10", "--cell", "lstm", "--sequences", "60",
            "--hidden", "8", "--batch-size", "10", "--eval-every", "20", "--valid-size", "30",
            "--test-size", "30", "--seed", "3", "--out", str(out), "--quiet", *extra]  # fmt: skip


FIELDS = {"task", "T", "cell", "init", "metric", "value", "baseline", "solved", "sequences", "seconds"}


def test_a_tiny_run_end_to_end(tmp_path):
    out = tmp_path / "run"
    assert main(run_args(out)) == 0
    records = json.loads((out / "results.json").read_text())
    assert len(records) == 1
    r = records[0]
    assert FIELDS <= set(r)
    assert (r["task"], r["T"], r["cell"], r["init"], r["metric"]) == ("adding", 10, "lstm", "forget1", "mse")
    assert r["sequences"] == 60 and r["baseline"] == pytest.approx(1 / 6) and r["solved"] is False
    assert r["stopped"] == "sequences" and math.isfinite(r["value"]) and r["seconds"] >= 0
    run = out / "runs" / "adding-T10-lstm-forget1"
    result = json.loads((run / "result.json").read_text())
    assert [p["sequences"] for p in result["curve"]] == [0, 20, 40, 60]
    assert len(result["probe_end"]["message_norms"]) == 10 and len(result["probe_start"]["reach"]) == 10
    weights, meta = bptt.load_safetensors(run / "weights.safetensors")
    assert meta["task"] == "adding" and set(weights) == {"W_ax", "W_aa", "b_a", "W_ya", "b_y"}
    table = (out / "table.md").read_text()
    assert table.startswith("| task | T |") and "| adding | 10 | lstm | forget1 | mse |" in table
    png_ok(out / "curves-adding.png")
    png_ok(out / "gradients-adding.png")
    page = (out / "report.html").read_text()
    assert "<table>" in page and page.count("data:image/png;base64,") == 2
    again = tmp_path / "again"  # the same seed and budget, the same model: nothing depends on the clock
    assert main(run_args(again)) == 0
    assert (again / "runs" / "adding-T10-lstm-forget1" / "weights.safetensors").read_bytes() == (
        run / "weights.safetensors"
    ).read_bytes()


def test_the_curves_show_the_gradient_norm_and_its_bursts(tmp_path):
    from bptt.pictures.longrange import _series, plot_learning_curves

    # an LSTM leaving the baseline through an exploding-gradient burst (as seed 1 at T = 400 did)
    norms = [None, 0.1, 0.2, 9e18, 0.3]
    curve = [
        {"sequences": 5000 * i, "grad_norm": g, "valid": {"mse": m}}
        for i, (g, m) in enumerate(zip(norms, [1.0, 0.17, 0.17, None, 0.005]))
    ]
    x, g = _series(curve, lambda p: p["grad_norm"])
    np.testing.assert_array_equal(x, [0, 5000, 10000, 15000, 20000])
    np.testing.assert_array_equal(g, [np.nan, 0.1, 0.2, 9e18, 0.3])
    _, mse = _series(curve, lambda p: p["valid"]["mse"])
    assert np.isnan(mse[3]) and mse[4] == 0.005
    result = {
        "record": {"task": "adding", "T": 400, "cell": "lstm", "init": "forget1", "clip": 1.0},
        "curve": curve,
    }
    path = plot_learning_curves(
        get_task("adding"), {400: [result]}, {"lstm (forget1)": "C0"}, tmp_path / "c.png"
    )
    w, h = png_ok(path)
    assert h > w  # the score above, the gradient norm below


def test_sigterm_inside_a_configuration_then_resume_is_bit_identical(tmp_path, monkeypatch, capsys):
    """A fault point signals the process itself (no timing): the state is saved, --resume ends the same."""
    reference = tmp_path / "reference"
    assert main(run_args(reference)) == 0
    out = tmp_path / "run"
    assert run_with_fault(monkeypatch, run_args(out), "SIGTERM@step:adding-T10-lstm-forget1:3") == 143
    run = out / "runs" / "adding-T10-lstm-forget1"
    assert not (run / "result.json").exists()
    _, state = load_checkpoint(run)
    assert state["steps"] == 3 and state["sequences"] == 30  # saved before the fourth batch
    assert main(["longrange", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(reference, out)


def assert_same_run(a, b):
    """The same weights bit for bit, and the same records but for the wall time."""
    name = "runs/adding-T10-lstm-forget1/weights.safetensors"
    assert (a / name).read_bytes() == (b / name).read_bytes()
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    for r in ra + rb:
        r.pop("seconds")
    assert ra == rb


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault", ["step:adding-T10-lstm-forget1:4", "rename:state.json#3", "checkpoint:swap#2"]
)
def test_sigkill_then_resume_is_bit_identical(tmp_path, fault):
    """SIGKILL (a real process) inside a configuration, while its checkpoint is written, or between swaps."""
    reference = tmp_path / "reference"
    assert main(run_args(reference)) == 0
    out = tmp_path / "run"
    proc = start_with_fault(run_args(out), f"SIGKILL@{fault}")
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert main(["longrange", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(reference, out)


@pytest.mark.slow
def test_every_task_and_cell_end_to_end(tmp_path):
    out = tmp_path / "all"
    args = ["longrange", "--task", "adding", "copy", "order", "--T", "10", "--cell", "rnn", "irnn",
            "gru", "lstm", "--init", "auto", "chrono", "--sequences", "40", "--hidden", "6",
            "--batch-size", "10", "--eval-every", "20", "--valid-size", "20", "--test-size", "20",
            "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    records = json.loads((out / "results.json").read_text())
    assert len(records) == 3 * 6
    metrics = {r["task"]: r["metric"] for r in records}
    assert metrics == {"adding": "mse", "copy": "cross_entropy", "order": "accuracy"}
    for r in records:
        assert FIELDS <= set(r) and r["sequences"] == 40
    for task in ("adding", "copy", "order"):
        png_ok(out / f"curves-{task}.png")
        png_ok(out / f"gradients-{task}.png")
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 6
    before = (out / "results.json").read_bytes()
    assert main(["longrange", "--resume", str(out), "--quiet"]) == 0  # all finished: nothing trains again
    assert (out / "results.json").read_bytes() == before


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--task", "adding", "--T", "1"], ["--T", "the adding problem", "from 2 to"]),
        (["--task", "order", "--T", "100", "9"], ["--T", "temporal-order", "from 10", "got 9"]),
        (["--T", str(MAX_T + 1)], ["--T", "10,000"]),
        (["--task", "parity"], ["--task", "invalid choice", "parity"]),
        (["--cell", "transformer"], ["--cell", "invalid choice", "transformer"]),
        (["--minutes", "0"], ["--minutes", "more than 0", "got 0"]),
        (["--sequences", "0"], ["--sequences", "more than 0"]),
        (["--sequences", "-5"], ["--sequences", "more than 0"]),
        (["--cell", "lstm", "--init", "identity"], ["--init", "lstm takes", "'identity'"]),
        (["--hidden", "0"], ["--hidden", "expected an integer"]),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, extra, words):
    argv = ["longrange", "--sequences", "20", "--out", str(tmp_path / "out"), "--quiet", *extra]
    message = error_line(capsys, *argv)
    for w in words:
        assert w in message, message
    assert not (tmp_path / "out").exists()  # nothing written


def test_no_budget_no_out_and_resume_errors(tmp_path, capsys):
    assert "a budget is needed" in error_line(capsys, "longrange", "--out", tmp_path / "x")
    assert "--out: required" in error_line(capsys, "longrange", "--sequences", "10")
    assert "no such directory" in error_line(capsys, "longrange", "--resume", tmp_path / "nothing")
    (tmp_path / "other").mkdir()
    assert "longrange.json: no such file" in error_line(capsys, "longrange", "--resume", tmp_path / "other")
    message = error_line(capsys, "longrange", "--resume", tmp_path / "other", "--T", "20")
    assert "--resume: cannot be given with --T" in message


def test_a_users_files_are_never_written_over(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert "holds files (notes.txt)" in error_line(capsys, *run_args(out))
    (out / "notes.txt").unlink()
    assert main(run_args(out)) == 0
    assert "holds a long-range run; continue it with --resume" in error_line(capsys, *run_args(out))
    (out / "notes.txt").write_text("mine")
    assert "notes.txt" in error_line(capsys, "longrange", "--resume", out, "--quiet")
    (out / "notes.txt").unlink()
    (out / "runs" / "adding-T10-lstm-forget1" / "checkpoint" / "mine.txt").write_text("mine")
    assert "mine.txt" in error_line(capsys, "longrange", "--resume", out, "--quiet")
    assert (out / "runs" / "adding-T10-lstm-forget1" / "checkpoint" / "mine.txt").read_text() == "mine"


def test_a_resigned_checkpoint_is_checked_field_by_field(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert run_with_fault(monkeypatch, run_args(out), "SIGINT@step:adding-T10-lstm-forget1:2") == 130
    run = out / "runs" / "adding-T10-lstm-forget1"
    arrays, state = load_checkpoint(run)
    for field, value, words in [
        ("sequences", -1, "sequences: expected an integer >= 0"),
        ("rng", {"state": 1}, "rng: expected the state of NumPy's PCG64"),
        ("probe_start", {"message_norms": [1.0], "reach": None}, "probe_start: expected"),
    ]:
        save_checkpoint(run, arrays, {**state, field: value})
        message = error_line(capsys, "longrange", "--resume", out, "--quiet")
        assert "state.json" in message and words in message, message
    save_checkpoint(run, {**arrays, "param.W_aa": arrays["param.W_aa"][:2]}, state)
    assert "param.W_aa" in error_line(capsys, "longrange", "--resume", out, "--quiet")
    save_checkpoint(run, arrays, state)
    assert main(["longrange", "--resume", str(out), "--quiet"]) == 0


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as e:
        main(["longrange", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert (
        "examples:" in text and "bptt longrange --task adding --T 100 200 400" in text and "--resume" in text
    )
