"""The recurrence and its BPTT: gradient checks, step == sequence, masks, a worked example."""

import numpy as np
import pytest

import bptt
from bptt.drivers.rnn import _TANH_VIA_EXP, LOOPS, _backward, _forward, _loop
from tests.conftest import (
    N_A,
    N_X,
    B,
    T,
    compiled_kernels,
    make_params,
    ragged_mask,
    random_labels,
    rnn_inputs,
)

ACTS = ["tanh", "relu"]


def loops_for(activation):
    """The loops that can run ``activation`` here: "gemv" only for tanh with the compiled kernels."""
    has_gemv = activation == "tanh" and bptt.drivers.rnn._kernels is not None
    return [loop for loop in LOOPS if loop != "gemv" or has_gemv]


def random_weight_loss(R, activation, mask=None, with_da_T=None):
    """L = Σ A ⊙ R (+ a⟨T⟩ · da_T): a loss whose gradient dA = R is not all ones.

    Masked steps are padding: their outputs are not part of the loss.
    """
    if mask is not None:
        R = R * mask[:, :, None]

    def fun(arrs):
        p = {k: arrs[k] for k in ("W_ax", "W_aa", "b_a")}
        A, cache = bptt.rnn_forward(arrs["X"], arrs["a0"], p, mask=mask, activation=activation)
        L = float((A * R).sum())
        da_T = None
        if with_da_T is not None:
            L += float((A[-1] * with_da_T).sum())
            da_T = with_da_T
        dX, da0, grads = bptt.rnn_backward(R, cache, da_T=da_T)
        return L, {**grads, "X": dX, "a0": da0}

    return fun


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("use_da_T", [False, True])
@pytest.mark.parametrize("g_prime_per_step", [False, True])
def test_gradcheck_rnn_every_array(
    rng, monkeypatch, step_kernels, activation, masked, use_da_T, g_prime_per_step
):
    if g_prime_per_step:  # the large-state backward, forced at this small size
        monkeypatch.setattr(bptt.drivers.rnn, "_G_PRIME_PER_STEP", 1)
    p = make_params()
    arrays = {
        "X": rng.standard_normal((T, B, N_X)),
        "a0": rng.standard_normal((B, N_A)),
        **{k: p[k] for k in ("W_ax", "W_aa", "b_a")},
    }
    mask = ragged_mask([5, 2, 4], T) if masked else None
    R = rng.standard_normal((T, B, N_A))
    da_T = rng.standard_normal((B, N_A)) if use_da_T else None
    report = bptt.gradcheck(random_weight_loss(R, activation, mask, da_T), arrays)
    assert set(report.errors) == {"X", "a0", "W_ax", "W_aa", "b_a"}
    assert report.max_error < 1e-6, str(report)


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck_sequence_loss(rng, activation, output, masked):
    n_y = 3
    p = make_params(n_y=n_y)
    X = rng.standard_normal((T, B, N_X))
    a0 = rng.standard_normal((B, N_A))
    Y = random_labels(rng, output, n_y, T, B)
    mask = ragged_mask([3, 5, 1], T) if masked else None

    def fun(arrs):
        return bptt.sequence_loss(arrs, X, Y, a0=a0, mask=mask, output=output, activation=activation)

    report = bptt.gradcheck(fun, p)
    assert set(report.errors) == set(bptt.PARAM_KEYS)
    assert report.max_error < 1e-6, str(report)


@pytest.mark.parametrize("activation", ACTS)
def test_step_functions_equal_sequence_functions(rng, activation):
    p = make_params()
    X, a0, dA, da_T = rnn_inputs(rng)
    A, cache = bptt.rnn_forward(X, a0, p, activation=activation)
    dX, da0, grads = bptt.rnn_backward(dA, cache, da_T=da_T)

    a, caches = a0, []
    for t in range(T):
        a, c = bptt.rnn_step_forward(X[t], a, p, activation=activation)
        np.testing.assert_allclose(a, A[t], rtol=0, atol=1e-14)
        caches.append(c)
    da_next = da_T
    total = {k: np.zeros_like(p[k]) for k in ("W_ax", "W_aa", "b_a")}
    for t in reversed(range(T)):
        dx_t, da_next, g_t = bptt.rnn_step_backward(dA[t] + da_next, caches[t])
        np.testing.assert_allclose(dx_t, dX[t], rtol=0, atol=1e-13)
        for k in total:
            total[k] += g_t[k]  # each shared parameter: the sum of its per-step contributions
    np.testing.assert_allclose(da_next, da0, rtol=0, atol=1e-13)
    for k in total:
        np.testing.assert_allclose(total[k], grads[k], rtol=0, atol=1e-12)


def test_padded_batch_equals_sequences_one_by_one(rng):
    lengths = [5, 2, 4]
    p = make_params()
    X = rng.standard_normal((T, B, N_X))
    a0 = rng.standard_normal((B, N_A))
    dA = rng.standard_normal((T, B, N_A))
    A, cache = bptt.rnn_forward(X, a0, p, mask=ragged_mask(lengths, T))
    dX, da0, grads = bptt.rnn_backward(dA, cache)
    total = {k: np.zeros_like(v) for k, v in grads.items()}
    for b, n in enumerate(lengths):
        A_b, c_b = bptt.rnn_forward(X[:n, b : b + 1], a0[b : b + 1], p)
        np.testing.assert_allclose(A[:n, b : b + 1], A_b, atol=1e-14)
        # padding carries the last real state
        np.testing.assert_allclose(A[n:, b], np.broadcast_to(A_b[-1, 0], (T - n, N_A)), atol=1e-14)
        dX_b, da0_b, g_b = bptt.rnn_backward(dA[:n, b : b + 1], c_b)
        np.testing.assert_allclose(dX[:n, b : b + 1], dX_b, atol=1e-13)
        np.testing.assert_array_equal(dX[n:, b], 0.0)  # padded steps get no gradient
        np.testing.assert_allclose(da0[b : b + 1], da0_b, atol=1e-13)
        for k in total:
            total[k] += g_b[k]
    for k in total:
        np.testing.assert_allclose(grads[k], total[k], atol=1e-12)


def test_messages_are_the_total_gradient_reaching_each_state(rng):
    """∂L/∂a⟨t⟩ from sequence_loss equals dA[t] + W_aaᵀ dz⟨t+1⟩ computed independently."""
    p = make_params(n_y=1)
    X = rng.standard_normal((T, B, N_X))
    Y = rng.integers(0, 2, size=(T, B)).astype(np.float64)
    L, grads, M = bptt.sequence_loss(p, X, Y, return_messages=True)
    assert M.shape == (T, B, N_A)
    # finite-difference check of one message entry: perturb a⟨t⟩ by adding to b_a only at step t
    A, cache = bptt.rnn_forward(X, None, p)
    # message at the last step comes from the output only: (ŷ − y) W_ya
    Y_hat = bptt.output_forward(A, p, "sigmoid")
    np.testing.assert_allclose(M[-1], (Y_hat[-1] - Y[-1][:, None]) @ p["W_ya"], atol=1e-13)
    # and the message at t−1 is dA[t−1] + (M[t] ⊙ (1 − a⟨t⟩²)) W_aa
    dA = (Y_hat - Y[:, :, None]) @ p["W_ya"]
    for t in range(T - 1, 0, -1):
        np.testing.assert_allclose(M[t - 1], dA[t - 1] + (M[t] * (1 - A[t] ** 2)) @ p["W_aa"], atol=1e-13)


def test_worked_example_by_hand():
    """T = 2, n_a = n_x = n_y = 1, sigmoid output; every number derived by hand.

    W_ax = 1, W_aa = 0.5, b_a = 0, W_ya = 2, b_y = 0, x = (1, 0), y = (1, 0), a⟨0⟩ = 0.
    Forward:  a1 = tanh(1)              = 0.7615942
              a2 = tanh(0.5 a1)         = tanh(0.3807971) = 0.3633995
              ŷ1 = σ(2 a1) = σ(1.5231883) = 0.8210075
              ŷ2 = σ(2 a2) = σ(0.7267990) = 0.6741024
              L  = −log ŷ1 − log(1 − ŷ2) = 0.1972230 + 1.1211722 = 1.3183952
    Backward (right to left):
              dzy2 = ŷ2 − y2 = 0.6741024          da2 = W_ya dzy2 = 1.3482049
              dz2  = da2 (1 − a2²) = 1.1701620
              dzy1 = ŷ1 − y1 = −0.1789925         da1 = W_ya dzy1 + W_aa dz2 = −0.3579850 + 0.5850810
              dz1  = da1 (1 − a1²) = 0.0953745
    Shared parameters, each the sum of its two per-step contributions:
              dW_aa = dz1 a0 + dz2 a1 = 0 + 0.8911886      dW_ax = dz1 x1 + dz2 x2 = 0.0953745 + 0
              db_a  = dz1 + dz2 = 1.2655365               dW_ya = dzy1 a1 + dzy2 a2 = 0.1086488
              db_y  = dzy1 + dzy2 = 0.4951099
    """
    p = {
        k: np.array(v, dtype=np.float64)
        for k, v in {"W_ax": [[1.0]], "W_aa": [[0.5]], "b_a": [0.0], "W_ya": [[2.0]], "b_y": [0.0]}.items()
    }
    X = np.array([1.0, 0.0]).reshape(2, 1, 1)
    Y = np.array([1.0, 0.0]).reshape(2, 1)
    L, g = bptt.sequence_loss(p, X, Y)
    assert L == pytest.approx(1.3183952, abs=1e-7)
    assert g["W_aa"][0, 0] == pytest.approx(0.8911886, abs=1e-7)
    assert g["W_ax"][0, 0] == pytest.approx(0.0953745, abs=1e-7)
    assert g["b_a"][0] == pytest.approx(1.2655365, abs=1e-7)
    assert g["W_ya"][0, 0] == pytest.approx(0.1086488, abs=1e-7)
    assert g["b_y"][0] == pytest.approx(0.4951099, abs=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_end_to_end(rng, dtype):
    p = make_params(dtype=dtype)
    X = rng.standard_normal((T, B, N_X)).astype(dtype)
    Y = rng.integers(0, 2, size=(T, B, 2))
    L, grads = bptt.sequence_loss(p, X, Y)
    assert all(g.dtype == dtype for g in grads.values())
    p64 = {k: v.astype(np.float64) for k, v in p.items()}
    L64, g64 = bptt.sequence_loss(p64, X.astype(np.float64), Y)
    assert L == pytest.approx(L64, rel=1e-5)


@pytest.mark.parametrize("loop", LOOPS)
def test_fast_path_leaves_inputs_untouched(rng, loop):
    if loop == "gemv":
        compiled_kernels()
    p = make_params()
    X = rng.standard_normal((T, B, N_X))
    a0 = rng.standard_normal((B, N_A))
    dA = rng.standard_normal((T, B, N_A))
    copies = [X.copy(), a0.copy(), dA.copy()] + [v.copy() for v in p.values()]
    A, cache = _forward(X, a0, p, None, "tanh", loop=loop)
    _backward(dA, cache, messages=True, loop=loop)
    for before, after in zip(copies, [X, a0, dA, *p.values()]):
        np.testing.assert_array_equal(before, after)


def test_gradcheck_catches_a_wrong_gradient(rng):
    """The check can fail: a gradient off by 1% in one entry is reported."""
    p = make_params()
    X = rng.standard_normal((T, B, N_X))
    Y = rng.integers(0, 2, size=(T, B, 2)).astype(np.float64)

    def wrong(arrs):
        L, grads = bptt.sequence_loss(arrs, X, Y)
        grads["W_aa"][1, 2] *= 1.01
        return L, grads

    report = bptt.gradcheck(wrong, p)
    assert report.errors["W_aa"] > 1e-3
    assert report.errors["W_ax"] < 1e-6
    assert not report.ok()


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("batch", [1, B])
@pytest.mark.parametrize("length", [1, T])
def test_every_loop_equals_the_general_loops(rng, step_kernels, activation, batch, length):
    """The fused and gemv loops (small B by default, forced here at any B) give the general loops' numbers."""
    p = make_params()
    X, a0, dA, da_T = rnn_inputs(rng, length, batch)
    out = {}
    for loop in loops_for(activation):
        A, cache = _forward(X, a0, p, None, activation, loop=loop)
        dX, da0, grads, M = _backward(dA, cache, da_T, messages=True, loop=loop)
        out[loop] = {"A": A, "dX": dX, "da0": da0, "M": M, **grads}
    for loop in out:
        for key, value in out["general"].items():
            np.testing.assert_allclose(out[loop][key], value, rtol=0, atol=1e-13, err_msg=f"{loop}: {key}")


@pytest.mark.parametrize("activation, loop", [("tanh", "fused"), ("relu", "fused"), ("tanh", "gemv")])
def test_gradcheck_small_step_loops(rng, activation, loop):
    if loop == "gemv":
        compiled_kernels()
    p = {k: v for k, v in make_params().items() if k in bptt.drivers.rnn.RNN_KEYS}
    arrays = {"X": rng.standard_normal((T, 1, N_X)), "a0": rng.standard_normal((1, N_A)), **p}
    R = rng.standard_normal((T, 1, N_A))
    da_T = rng.standard_normal((1, N_A))

    def fun(arrs):
        q = {k: arrs[k] for k in bptt.drivers.rnn.RNN_KEYS}
        A, cache = _forward(arrs["X"], arrs["a0"], q, None, activation, loop=loop)
        dX, da0, grads, _ = _backward(R, cache, da_T, loop=loop)
        return float((A * R).sum() + (A[-1] * da_T).sum()), {**grads, "X": dX, "a0": da0}

    report = bptt.gradcheck(fun, arrays)
    assert report.max_error < 1e-6, str(report)


def test_which_loops_run():
    """Small steps: gemv with the compiled kernels, fused without; the general loops otherwise."""
    none, skipped = [None] * 4, [None, np.array([[True]]), None, None]
    K = object()  # stands for the kernels module
    assert _loop(1, 8, none, None) == "fused" and _loop(1, 48, none, None) == "fused"
    assert _loop(1, 49, none, None) == "general"  # wide states: the doubled GEMM costs more than a call
    assert _loop(2, 8, none, None) == "general"  # strided per-step views
    assert _loop(1, 8, none, K) == "gemv" and _loop(1, 128, none, K) == "gemv"
    assert _loop(4, 64, none, K) == "gemv" and _loop(5, 8, none, K) == "general"  # BLAS reuses W across rows
    assert _loop(1, 129, none, K) == "general"
    for kernels in (None, K):
        assert _loop(1, 8, skipped, kernels) == "general"  # a skipped step
        assert _loop(1, 8, skipped, kernels, loop="fused") == "general"
    assert _loop(2, 8, none, None, loop="fused") == "fused"
    assert _loop(1, 8, none, K, loop="general") == "general"
    with pytest.raises(bptt.BpttError, match="gemv loops need the compiled kernels"):
        _loop(1, 8, none, None, loop="gemv")


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("masked", [False, True])
def test_g_prime_step_by_step_equals_g_prime_at_once(rng, monkeypatch, step_kernels, activation, masked):
    """Large states take g′ inside the backward loop; forced here, it gives the same numbers."""
    p = make_params()
    X, a0, dA, da_T = rnn_inputs(rng)
    mask = ragged_mask([5, 2, 4], T) if masked else None
    A, cache = _forward(X, a0, p, mask, activation)
    at_once = _backward(dA, cache, da_T, messages=True)
    monkeypatch.setattr(bptt.drivers.rnn, "_G_PRIME_PER_STEP", 1)
    step_by_step = _backward(dA, cache, da_T, messages=True)
    for ours, theirs in zip(step_by_step, at_once):
        for key in ours if isinstance(ours, dict) else [None]:
            x, y = (ours[key], theirs[key]) if key else (ours, theirs)
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-13, err_msg=str(key))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_states_match_a_plain_loop(rng, step_kernels, dtype):
    """From _TANH_VIA_EXP numbers a step on, the loop computes tanh from 2z through exp."""
    B_, n_a = 16, _TANH_VIA_EXP[np.dtype(dtype).itemsize] // 16
    assert B_ * n_a >= _TANH_VIA_EXP[np.dtype(dtype).itemsize]
    p = {
        "W_ax": rng.standard_normal((n_a, N_X)),
        "W_aa": rng.standard_normal((n_a, n_a)) / np.sqrt(n_a),
        "b_a": rng.standard_normal(n_a),
    }
    p = {k: v.astype(dtype) for k, v in p.items()}
    X = (3 * rng.standard_normal((T, B_, N_X))).astype(dtype)  # some steps saturate
    A, _ = _forward(X, np.zeros((B_, n_a), dtype), p, None, "tanh")
    a = np.zeros((B_, n_a))
    for t, x in enumerate(X.astype(np.float64)):  # the plain loop, in float64
        a = np.tanh(x @ p["W_ax"].T + a @ p["W_aa"].T + p["b_a"])
        tol = 1e-12 if dtype == np.float64 else 1e-4
        np.testing.assert_allclose(A[t], a, rtol=0, atol=tol, err_msg=f"step {t}")
