"""Shared fixtures: small odd sizes so transposition bugs show, float64 for checks."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

T, B, N_X, N_A, N_Y = 5, 3, 4, 6, 2
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def make_params(n_x=N_X, n_a=N_A, n_y=N_Y, seed=0, scale=0.5, dtype=np.float64):
    """Random parameters with non-zero biases (zero biases would hide bias-gradient bugs)."""
    rng = np.random.default_rng(seed)
    shapes = {"W_ax": (n_a, n_x), "W_aa": (n_a, n_a), "b_a": (n_a,), "W_ya": (n_y, n_a), "b_y": (n_y,)}
    return {k: (scale * rng.standard_normal(s)).astype(dtype) for k, s in shapes.items()}


def cell_params(cell, rng, n_x=N_X, n_a=N_A, scale=0.5):
    """Random float64 parameters of ``cell`` with non-zero biases (zero biases would hide bias bugs)."""
    from bptt.cells import get_cell

    shapes = get_cell(cell).param_shapes(n_x, n_a)
    return {k: scale * rng.standard_normal(s) for k, s in shapes.items()}


def model_params(cell, rng, n_x=N_X, n_a=N_A, n_y=N_Y, scale=0.5):
    """``cell_params`` and the head's W_ya (n_y, n_a), b_y (n_y,)."""
    head = {"W_ya": scale * rng.standard_normal((n_y, n_a)), "b_y": scale * rng.standard_normal(n_y)}
    return {**cell_params(cell, rng, n_x, n_a, scale), **head}


def initial_state(cell, rng, batch=B, n_a=N_A):
    """a0, or the pair (a0, c0) for the LSTM."""
    if cell == "lstm":
        return rng.standard_normal((batch, n_a)), rng.standard_normal((batch, n_a))
    return rng.standard_normal((batch, n_a))


def cell_inputs(cell, rng):
    """``cell_params``, X (T, B, n_x), the initial state, dA (T, B, n_a) and a carry-in state gradient."""
    p = cell_params(cell, rng)
    X = rng.standard_normal((T, B, N_X))
    state0 = initial_state(cell, rng)
    dA = rng.standard_normal((T, B, N_A))
    return p, X, state0, dA, initial_state(cell, rng)


def random_labels(rng, output, n_y, length=T, batch=B):
    """Labels for ``output``: class ids (T, B) for softmax, 0/1 floats (T, B, n_y) for sigmoid."""
    if output == "softmax":
        return rng.integers(0, n_y, size=(length, batch))
    return rng.integers(0, 2, size=(length, batch, n_y)).astype(np.float64)


def state_parts(cell, s):
    """A state (or its gradient) as a tuple of arrays: (a, c) for the LSTM, (a,) otherwise."""
    return tuple(s) if cell == "lstm" else (s,)


def rnn_inputs(rng, length=T, batch=B, dtype=np.float64):
    """Standard-normal X (T, B, n_x), a0 (B, n_a), dA (T, B, n_a) and da_T (B, n_a), drawn in that order."""
    shapes = [(length, batch, N_X), (batch, N_A), (length, batch, N_A), (batch, N_A)]
    return [rng.standard_normal(shape).astype(dtype) for shape in shapes]


def ragged_mask(lengths, T):
    """(T, B) bool mask for right-padded sequences of the given lengths."""
    return np.arange(T)[:, None] < np.asarray(lengths)[None, :]


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def data_file(*parts):
    """Path to a file of ../shared/data; skip when absent unless BPTT_REQUIRE_DATA is set."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("BPTT_REQUIRE_DATA"):
            pytest.fail(f"required data file missing: {path}")
        pytest.skip(f"data file not present: {path}")
    return path


def compiled_kernels():
    """bptt._kernels; skip when not built, unless BPTT_REQUIRE_KERNELS is set (CI builds them)."""
    import bptt.drivers.rnn

    if bptt.drivers.rnn._kernels is None:
        if os.environ.get("BPTT_REQUIRE_KERNELS"):
            pytest.fail("bptt._kernels is not built (or BPTT_NO_KERNELS is set)")
        pytest.skip("bptt._kernels is not built")
    return bptt.drivers.rnn._kernels


@pytest.fixture(params=["compiled", "numpy"])
def step_kernels(request, monkeypatch):
    """Run a test with the compiled tanh step kernels, then again with the NumPy loops only."""
    import bptt.drivers.rnn

    if request.param == "compiled":
        compiled_kernels()
    else:
        monkeypatch.setattr(bptt.drivers.rnn, "_kernels", None)
    return request.param


@pytest.fixture
def no_unpickling(monkeypatch):
    """Make every way of unpickling fail the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(np, "load", refuse)
