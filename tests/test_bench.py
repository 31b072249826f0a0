"""The benchmark code on tiny shapes: report structure, the gradient-equality gate, errors;
and the fast paths the benchmark exercises."""

import json
import sys

import numpy as np
import pytest

from bptt.bench import memory, speed
from bptt.cli import main
from bptt.drivers.rnn import _TANH_VIA_EXP, _tanh
from bptt.errors import BpttError


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


TINY = speed.BenchConfig(
    shapes=((3, 2, 4, 5), (4, 1, 3, 2)),
    dtypes=("float64",),
    probe=False,
    rounds=2,
    min_time=0,
    pause=0,
    gemm_n=16,
)


@pytest.mark.slow
def test_report_structure_and_table(torch):
    lines = []
    report = speed.run_benchmark(TINY, log=lines.append)
    assert set(report) == {"machine", "config", "gemm_gflops", "results"}
    assert report["machine"]["threads"] >= 1 and report["machine"]["torch"] == torch.__version__
    assert set(report["gemm_gflops"]) == {"float64"} and report["gemm_gflops"]["float64"] > 0
    rows = report["results"]
    assert [(r["T"], r["B"], r["n_x"], r["n_a"]) for r in rows] == [(3, 2, 4, 5), (4, 1, 3, 2)]
    for r in rows:
        assert r["dtype"] == "float64" and not r["probe"]
        assert len(r["ratios"]) == 2 and r["ratio"] > 0
        assert r["bptt_ms"] > 0 and r["torch_ms"] > 0 and r["gemm_fraction"] > 0
        assert r["bptt_us_per_step"] == pytest.approx(r["bptt_ms"] * 1e3 / r["T"])
        assert r["grad_error"] < 1e-12  # checked against torch before timing
    assert lines[-3:-2] == [speed.HEADER] and len(lines) == 3 + len(rows)
    table = speed.format_report(report).splitlines()
    assert table[2] == speed.HEADER and table[3:] == lines[-2:]
    json.dumps(report)  # JSON-ready


@pytest.mark.slow
def test_probe_is_timed_against_small_numpy_calls(torch):
    config = speed.BenchConfig(shapes=(), dtypes=("float32",), rounds=2, min_time=0, pause=0)
    report = speed.run_benchmark(config)
    (r,) = report["results"]
    assert r["probe"] and (r["T"], r["B"], r["n_x"], r["n_a"]) == speed.PROBE
    assert r["call_us"] > 0 and r["gemm_fraction"] == 0 and report["gemm_gflops"] == {"float32": 0.0}
    # a ratio of two timings: its size depends on the machine and its load, so only its sign is checked
    # here; BENCHMARKS.md records measured values
    assert r["calls_per_step"] > 0 and np.isfinite(r["calls_per_step"])
    assert "calls per step" in speed.format_row(r)


def test_flops_count_forward_once_and_backward_twice():
    T, B, n_x, n_a = 2, 3, 4, 5
    forward = 2 * T * B * (n_x + n_a) * n_a
    assert speed.flops(T, B, n_x, n_a) == 3 * forward
    assert speed.flops(T, B, n_x, n_a, gates=4) == 4 * 3 * forward  # an LSTM's GEMMs are 4n_a wide


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_both_sides_compute_the_same_gradients(torch, dtype):
    case = speed.Case(torch, (5, 3, 4, 6), dtype, seed=1)
    assert speed.check_gradients(case) <= speed.GRAD_TOL[dtype]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gated_cells_compute_the_same_gradients_as_their_twins(torch, cell, dtype):
    case = speed.Case(torch, (5, 3, 4, 6), dtype, seed=1, cell=cell)
    assert type(case.module).__name__ == speed.TWINS[cell]
    dX, grads = case.run_bptt()
    assert set(grads) == set(case.params)  # every parameter is compared, b_hn included
    assert dX.shape == case.X.shape and all(g.dtype == np.dtype(dtype) for g in grads.values())
    assert speed.check_gradients(case) <= speed.GRAD_TOL[dtype]


def test_gated_gradient_mismatch_names_the_cell(torch):
    case = speed.Case(torch, (5, 3, 4, 6), "float64", seed=1, cell="gru")
    right = case.run_bptt

    def wrong():
        dX, grads = right()
        return dX, {**grads, "b_hn": grads["b_hn"] * (1 + 1e-6)}

    case.run_bptt = wrong
    with pytest.raises(BpttError, match="gru gradients differ from torch at T=5, B=3"):
        speed.check_gradients(case)


def test_unknown_cell_is_refused():
    with pytest.raises(BpttError, match="cell: expected one of rnn, gru, lstm, got 'rnn2'"):
        speed.check_config(speed.BenchConfig(cells=("rnn2",)))


@pytest.mark.slow
def test_report_has_a_row_per_cell_shape_and_dtype(torch):
    config = speed.BenchConfig(
        **{**TINY.__dict__, "cells": ("gru", "lstm"), "dtypes": ("float32", "float64")}
    )
    lines = []
    report = speed.run_benchmark(config, log=lines.append)
    rows = report["results"]
    assert [(r["cell"], r["dtype"]) for r in rows] == [
        (cell, dtype) for cell in ("gru", "lstm") for dtype in ("float32", "float64") for _ in TINY.shapes
    ]
    for r in rows:  # checked against torch before timing
        assert r["grad_error"] <= speed.GRAD_TOL[r["dtype"]] and r["ratio"] > 0
        gates = 3 if r["cell"] == "gru" else 4
        gflop = speed.flops(r["T"], r["B"], r["n_x"], r["n_a"], gates) / 1e9
        assert r["gflops"] == pytest.approx(gflop / (r["bptt_ms"] / 1e3))
    assert "torch.nn.GRU/torch.nn.LSTM" in lines[0]
    assert lines[3:] == [speed.format_row(r) for r in rows] and lines[3].startswith("gru  float32")


@pytest.mark.slow
def test_cli_cell_all_runs_the_three_cells(torch, capsys):
    argv = ["bench", "--cell", "all", "--quick", "--rounds", "1", "--shape", "3,2,4,5", "--no-probe"]
    assert main([*argv, "--dtype", "float64", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["cell"] for r in report["results"]] == ["rnn", "gru", "lstm"]
    assert report["config"]["cells"] == ["rnn", "gru", "lstm"]


def test_cli_unknown_cell_is_refused(capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", "--cell", "transformer"])
    assert info.value.code == 2
    assert "invalid choice: 'transformer'" in capsys.readouterr().err


def test_gradient_mismatch_stops_the_benchmark(torch):
    case = speed.Case(torch, (5, 3, 4, 6), "float64", seed=1)
    right = case.run_bptt

    def wrong():
        dX, grads = right()
        return dX, {**grads, "W_aa": grads["W_aa"] * (1 + 1e-6)}

    case.run_bptt = wrong
    with pytest.raises(BpttError, match="gradients differ from torch at T=5, B=3"):
        speed.check_gradients(case)


@pytest.mark.slow
def test_cli_json_quick(torch, capsys):
    argv = ["bench", "--quick", "--rounds", "1", "--shape", "3,2,4,5", "--dtype", "float64", "--no-probe"]
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["T"] for r in report["results"]] == [3]
    assert report["config"]["rounds"] == 1


@pytest.mark.slow
def test_cli_table_streams_rows(torch, capsys):
    assert (
        main(["bench", "--quick", "--rounds", "1", "--shape", "2,1,2,2", "--dtype", "float32", "--no-probe"])
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert speed.HEADER in out and out[-1].startswith("rnn  float32      2    1    2    2")


@pytest.mark.parametrize("shape", ["1,2", "1,2,3,x", "0,1,1,1"])
def test_cli_bad_shape_is_one_line_error(capsys, shape):
    assert main(["bench", "--shape", shape]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bptt: error: --shape:") and "\n" not in err


@pytest.mark.parametrize(
    "argv", [["--rounds", "0"], ["--memory", "--rounds", "-1"], ["--threads", "-2"]], ids=str
)
def test_cli_bad_rounds_and_threads_name_the_option(capsys, argv):
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"bptt: error: {argv[-2]}:") and "\n" not in err


def test_missing_torch_is_one_line_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    assert main(["bench", "--quick", "--shape", "2,1,2,2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "PyTorch is not installed" in err and "\n" not in err


@pytest.mark.slow
def test_memory_benchmark_structure():
    lines = []
    report = memory.memory_benchmark(
        (30,), B=2, n_x=3, n_a=4, n_y=3, dtype="float64", rounds=1, budgets=(None, 0.5), log=lines.append
    )
    row, budgeted = report["results"]
    assert row["budget"] is None and row["k"] == 6
    assert row["stored_full"] == 30 * 2 * 4 * 8
    assert row["stored_checkpointed"] == (5 + 6) * 2 * 4 * 8  # 5 checkpoints + the last segment
    assert 0 < row["stored_saving"] < 1 and row["peak_full"] > 0 and row["peak_checkpointed"] > 0
    assert row["time_ratio"] > 0 and len(row["time_ratios"]) == 1
    # half of full's 30 states: the largest k with ⌈30/k⌉ + k ≤ 15 is 12; it stores 3 checkpoints
    # and the last segment's 6 states
    assert budgeted["budget"] == 0.5 and budgeted["k"] == 12
    assert budgeted["stored_checkpointed"] == (3 + 6) * 2 * 4 * 8
    for r in report["results"]:
        assert r["grad_error"] < 1e-12 and r["loss_error"] < 1e-12
    assert lines == memory.format_memory_report(report).splitlines()


def test_peak_bytes_sees_numpy_allocations():
    assert memory._peak_bytes(lambda: np.ones(10**6)) >= 8 * 10**6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_array_tanh_matches_np_tanh(dtype):
    """Large arrays take tanh through exp; it must agree with np.tanh to ~1 ulp of 1, extremes included."""
    rng = np.random.default_rng(0)
    extremes = [0.0, 1e-30, -1e-30, 1e-8, 20.0, -20.0, 400.0, -400.0, 1e4, -1e4, np.inf, -np.inf]
    z = np.concatenate([3 * rng.standard_normal(_TANH_VIA_EXP[np.dtype(dtype).itemsize]), extremes])
    z = z.astype(dtype)
    out = np.empty_like(z)
    with np.errstate(all="raise"):  # no overflow warning escapes
        assert _tanh(z, out) is out
    np.testing.assert_allclose(out, np.tanh(z), rtol=0, atol=2 * np.finfo(dtype).eps)
    assert out[-2] == 1 and out[-1] == -1
    assert np.isnan(_tanh(np.full(z.size, np.nan, dtype=dtype))).all()
