"""The compiled tanh step kernels (bptt._kernels): accuracy, edge values, errors, and the loops
that use them against the NumPy loops."""

import numpy as np
import pytest

import bptt.rnn
from bptt.rnn import _backward, _forward, _relu, _tanh, _tanh_kernels, _tanh_prime
from tests.conftest import N_A, N_X, B, T, compiled_kernels, make_params, ragged_mask, rnn_inputs

DTYPES = [np.float32, np.float64]


@pytest.fixture
def K():
    return compiled_kernels()


def ulps(ours, exact, dtype):
    """|ours − exact| in units of the last place of ``dtype`` at ``exact`` (exact in float64)."""
    spacing = np.spacing(np.abs(exact).astype(dtype)).astype(np.float64)
    return np.abs(ours.astype(np.float64) - exact) / spacing


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_is_within_a_few_ulp(K, rng, dtype):
    z = np.concatenate(
        [
            3 * rng.standard_normal(200_000),
            1e-3 * rng.standard_normal(50_000),  # near 0, where 1 − 2/(e^{2z} + 1) would lose digits
            np.linspace(-25, 25, 20_001),  # through the clamp, where tanh rounds to ±1
            [1e-30, -1e-30, 1e-300, 5e-324],
        ]
    ).astype(dtype)
    out = np.empty_like(z)
    K.tanh_add(z, np.full_like(z, -0.0), out)  # z + (−0) is z, −0 included
    exact = np.tanh(z.astype(np.float64))
    assert ulps(out, exact, dtype).max() <= 4
    assert ulps(np.tanh(z), exact, dtype).max() <= 2  # NumPy's, for scale


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_edge_values(K, dtype):
    big = 19.1 if dtype == np.float64 else 9.1  # where tanh rounds to 1
    z = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, -1e30, big, -big], dtype=dtype)
    out = np.empty_like(z)
    K.tanh_add(z, np.full_like(z, -0.0), out)  # z + (−0) is z, −0 included
    np.testing.assert_array_equal(out, [0.0, -0.0, 1.0, -1.0, np.nan, 1.0, -1.0, 1.0, -1.0])
    assert np.signbit(out[1]) and not np.signbit(out[0])  # tanh(−0) = −0, as np.tanh


@pytest.mark.parametrize("dtype", DTYPES)
def test_each_kernel_computes_its_formula(K, rng, dtype):
    dA, da_next, z, r = (rng.standard_normal((4, 37)).astype(dtype) for _ in range(4))
    a = np.tanh(z)
    eps = np.finfo(dtype).eps
    out = np.empty_like(z)
    K.tanh_add(z, r, out)
    np.testing.assert_allclose(out, np.tanh(z + r), rtol=4 * eps, atol=eps)
    K.tanh_add(z, r, z)  # in place, as the forward loop calls it
    np.testing.assert_array_equal(z, out)
    dz, da = np.empty_like(z), np.empty_like(z)
    K.tanh_backward(dA, da_next, a, dz, da)
    np.testing.assert_array_equal(da, dA + da_next)
    np.testing.assert_allclose(dz, (dA + da_next) * (1 - a * a), rtol=2 * eps, atol=eps)
    dz2 = np.empty_like(z)
    K.tanh_backward(dA, da_next, a, dz2, None)  # without keeping da
    np.testing.assert_array_equal(dz2, dz)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B, n_in, n", [(1, 8, 8), (3, 5, 7), (2, 33, 1)])
def test_gemv_kernels_compute_their_formulas(K, rng, dtype, B, n_in, n):
    x, r, dA = (rng.standard_normal(shape).astype(dtype) for shape in [(B, n_in), (B, n), (B, n)])
    W = rng.standard_normal((n_in, n)).astype(dtype)
    a = np.tanh(rng.standard_normal((B, n))).astype(dtype)
    tol = 8 * np.finfo(dtype).eps * n_in
    out = np.empty_like(r)
    K.tanh_gemv(x, W, r, out)
    np.testing.assert_allclose(out, np.tanh(x @ W + r), rtol=tol, atol=tol)
    K.tanh_gemv(x, W, r, r)  # in place, as the forward loop calls it
    np.testing.assert_array_equal(r, out)
    dz, da = np.empty_like(a), np.empty_like(a)
    K.tanh_gemv_backward(x, W, dA, a, dz, da)
    np.testing.assert_allclose(da, x @ W + dA, rtol=tol, atol=tol)
    np.testing.assert_allclose(dz, da * (1 - a * a), rtol=tol, atol=tol)


def test_gemv_kernels_check_shapes(K):
    x, W, r = np.zeros((2, 3)), np.zeros((3, 4)), np.zeros((2, 4))
    for bad in [(np.zeros((2, 5)), W, r, r), (x, np.zeros((4, 3)), r, r), (np.zeros((3, 3)), W, r, r)]:
        with pytest.raises(ValueError, match=r"tanh_gemv: expected x \(B, n_in\), W \(n_in, n\)"):
            K.tanh_gemv(*bad)
    with pytest.raises(ValueError, match="dense rows"):
        K.tanh_gemv(x, np.zeros((3, 8))[:, :4], r, r)  # W's rows must be adjacent
    with pytest.raises(ValueError, match="argument 4: shape differs"):
        K.tanh_gemv(x, W, r, np.zeros((2, 5)))


def test_rows_may_be_strided(K, rng):
    """A block of columns of a wider array (bidirectional layers' halves) works row by row."""
    wide = rng.standard_normal((5, 16))
    r = rng.standard_normal((5, 6))
    out = np.zeros((5, 16))
    K.tanh_add(wide[:, 3:9], r, out[:, 10:])
    contiguous = np.empty((5, 6))
    K.tanh_add(wide[:, 3:9].copy(), r, contiguous)
    np.testing.assert_array_equal(out[:, 10:], contiguous)
    assert not out[:, :10].any()  # nothing written outside the block


@pytest.mark.parametrize(
    "args, error, message",
    [
        (
            (np.zeros(3, np.int64), np.zeros(3), np.zeros(3)),
            ValueError,
            "argument 1: expected float32 or float64",
        ),
        ((np.zeros(3), np.zeros(3), np.zeros(3, np.float32)), ValueError, "argument 3: dtype differs"),
        ((np.zeros(3), np.zeros(4), np.zeros(3)), ValueError, "argument 2: shape differs"),
        ((np.zeros((3, 4)).T, np.zeros((4, 3)), np.zeros((4, 3))), ValueError, "contiguous rows"),
        ((np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), np.zeros((2, 2, 2))), ValueError, "1-D or 2-D"),
        ((np.zeros(3), np.zeros(3)), TypeError, "expected 3 arguments, got 2"),
        (([0.0, 1.0], np.zeros(2), np.zeros(2)), TypeError, "bytes-like object is required"),
        ((np.zeros(3), None, np.zeros(3)), TypeError, "bytes-like object is required"),
    ],
)
def test_bad_arguments_raise_clear_errors(K, args, error, message):
    with pytest.raises(error, match=message):
        K.tanh_add(*args)


def test_read_only_output_is_refused(K):
    out = np.zeros(3)
    out.flags.writeable = False
    with pytest.raises((ValueError, BufferError), match="read-only|not writable"):
        K.tanh_add(np.zeros(3), np.zeros(3), out)
    assert not out.any()


def test_kernels_apply_to_tanh_on_numpy_floats_only(K):
    x64, x32 = np.zeros(3), np.zeros(3, np.float32)
    assert _tanh_kernels(_tanh, x64) is K and _tanh_kernels(_tanh_prime, x32) is K
    assert _tanh_kernels(_relu, x64) is None  # relu stays in NumPy
    assert _tanh_kernels(_tanh, np.zeros(3, np.float16)) is None
    assert _tanh_kernels(_tanh, np.zeros(3, np.int64)) is None


@pytest.mark.parametrize("batch, masked", [(1, False), (B, False), (B, True), (8, False)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_loops_equal_numpy_loops(K, rng, monkeypatch, batch, masked, dtype):
    """Every number the loops return — states, messages, gradients — with and without the kernels."""
    p = {k: v.astype(dtype) for k, v in make_params().items() if k in bptt.rnn.RNN_KEYS}
    X, a0, dA, da_T = rnn_inputs(rng, T, batch, dtype)
    mask = ragged_mask([5, 2, 4], T) if masked else None
    out = {}
    for name in ("compiled", "numpy"):
        if name == "numpy":
            monkeypatch.setattr(bptt.rnn, "_kernels", None)
        A, cache = _forward(X, a0, p, mask, "tanh")
        dX, da0, grads, M = _backward(dA, cache, da_T, messages=True)
        out[name] = {"A": A, "dX": dX, "da0": da0, "M": M, **grads}
    tol = 1e-13 if dtype == np.float64 else 2e-5
    for key, value in out["numpy"].items():
        assert out["compiled"][key].dtype == dtype
        np.testing.assert_allclose(out["compiled"][key], value, rtol=0, atol=tol, err_msg=key)


def test_compiled_loops_propagate_nan(K):
    """A NaN in the input reaches the states and gradients: never silently dropped."""
    p = make_params()
    X = np.zeros((T, 1, N_X))
    X[2, 0, 1] = np.nan
    A, cache = _forward(X, np.zeros((1, N_A)), p, None, "tanh")
    assert not np.isnan(A[:2]).any() and np.isnan(A[2:]).all()
    _, _, grads, _ = _backward(np.ones((T, 1, N_A)), cache)
    assert np.isnan(grads["W_aa"]).any()


@pytest.mark.parametrize("batch", [1, B])
def test_any_memory_layout_of_the_inputs(K, rng, batch):
    """Fortran-ordered or transposed inputs give the numbers C-ordered ones give, in every loop."""
    p = {k: v for k, v in make_params().items() if k in bptt.rnn.RNN_KEYS}
    X, a0, dA, _ = rnn_inputs(rng, T, batch)
    A, cache = _forward(X, a0, p, None, "tanh")
    expected = _backward(dA, cache)
    A_f, cache_f = _forward(np.asfortranarray(X), np.ascontiguousarray(a0.T).T, p, None, "tanh")
    got = _backward(np.asfortranarray(dA), cache_f)
    np.testing.assert_allclose(A_f, A, rtol=0, atol=1e-15)
    np.testing.assert_allclose(got[0], expected[0], rtol=0, atol=1e-13)
    for key in expected[2]:
        np.testing.assert_allclose(got[2][key], expected[2][key], rtol=0, atol=1e-13, err_msg=key)
