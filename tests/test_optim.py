"""Optimizers against torch.optim on the same gradients; clipping; sparse rows."""

import math

import numpy as np
import pytest

from bptt.models.layers import RowGrad
from bptt.training.optim import SGD, Adagrad, Adam, clip_grad_norm, global_norm

torch = pytest.importorskip("torch")


def run_both(ours, make_theirs, steps=5, seed=0):
    rng = np.random.default_rng(seed)
    p = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
    theirs = make_theirs(list(tp.values()))
    for _ in range(steps):
        g = {k: rng.standard_normal(v.shape) for k, v in p.items()}
        ours.step(p, {k: v.copy() for k, v in g.items()})
        for k, t in tp.items():
            t.grad = torch.tensor(g[k])
        theirs.step()
    for k in p:
        np.testing.assert_allclose(p[k], tp[k].detach().numpy(), rtol=1e-12, atol=1e-12)


def test_sgd_matches_torch():
    run_both(SGD(lr=0.1), lambda ps: torch.optim.SGD(ps, lr=0.1))


def test_momentum_matches_torch():
    run_both(SGD(lr=0.05, momentum=0.9), lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9))


def test_adam_matches_torch():
    run_both(Adam(lr=0.01), lambda ps: torch.optim.Adam(ps, lr=0.01), steps=20)


def test_adagrad_matches_torch():
    """min-char-rnn's Adagrad: torch.optim.Adagrad with the same ε (its default is 1e-10)."""
    run_both(Adagrad(lr=0.1), lambda ps: torch.optim.Adagrad(ps, lr=0.1, eps=1e-8), steps=20)


def test_clip_grad_norm_matches_torch(rng):
    g = {"a": rng.standard_normal((3, 3)) * 10, "b": rng.standard_normal(5)}
    ts = [torch.tensor(v, requires_grad=True) for v in g.values()]
    for t, v in zip(ts, g.values()):
        t.grad = torch.tensor(v)
    ref = torch.nn.utils.clip_grad_norm_(ts, 1.0).item()
    norm = clip_grad_norm(g, 1.0)
    assert norm == pytest.approx(ref, rel=1e-12)
    assert global_norm(g) == pytest.approx(1.0, rel=1e-5)
    for t, v in zip(ts, g.values()):
        np.testing.assert_allclose(v, t.grad.numpy(), rtol=1e-9)


def test_clip_reports_non_finite_norm_and_leaves_grads():
    g = {"a": np.array([1.0, np.nan])}
    assert not np.isfinite(clip_grad_norm(g, 1.0))
    assert g["a"][0] == 1.0


def test_float32_gradients_past_the_squares_range_are_clipped_not_lost():
    # an exploding LSTM's gradients (seen at 10²⁰–10²⁴): finite, but their squares overflow float32
    g = {"W": np.full((4, 5), 3e20, np.float32), "b": np.array([4e20, -1.0], np.float32)}
    norm = clip_grad_norm(g, 1.0)
    assert norm == pytest.approx(math.sqrt(20 * 9e40 + 16e40 + 1), rel=1e-6)
    assert global_norm(g) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(g["W"], 3 / math.sqrt(196), rtol=1e-5)  # the direction is kept
    assert g["W"].dtype == np.float32
    for bad in (np.inf, np.nan):
        assert not math.isfinite(global_norm({"W": np.array([3e20, bad], np.float32)}))


def test_row_grads_update_only_their_rows(rng):
    E = rng.standard_normal((6, 3))
    E0 = E.copy()
    g = RowGrad(np.array([1, 4]), rng.standard_normal((2, 3)), 6)
    opt = Adam(lr=0.1)
    opt.step({"E": E}, {"E": g})
    untouched = [0, 2, 3, 5]
    np.testing.assert_array_equal(E[untouched], E0[untouched])
    # on the rows it used, the first lazy step is a dense Adam step on those rows
    dense = {"E": E0.copy()}
    Adam(lr=0.1).step(dense, {"E": g.dense()})
    np.testing.assert_allclose(E[[1, 4]], dense["E"][[1, 4]], atol=1e-12)
    SGD(lr=0.5).step({"E": E}, {"E": g})
    np.testing.assert_allclose(E[[1, 4]], dense["E"][[1, 4]] - 0.5 * g.values, atol=1e-12)
