"""The compiled tanh step kernels (bptt._kernels): accuracy, edge values, errors, and the loops
that use them against the NumPy loops."""

import numpy as np
import pytest

import bptt
import bptt.drivers.rnn
from bptt.cells import get_cell
from bptt.cells.base import LOOPS, gated_loop
from bptt.drivers.rnn import _backward, _forward, _relu, _tanh, _tanh_kernels, _tanh_prime
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
    p = {k: v.astype(dtype) for k, v in make_params().items() if k in bptt.drivers.rnn.RNN_KEYS}
    X, a0, dA, da_T = rnn_inputs(rng, T, batch, dtype)
    mask = ragged_mask([5, 2, 4], T) if masked else None
    out = {}
    for name in ("compiled", "numpy"):
        if name == "numpy":
            monkeypatch.setattr(bptt.drivers.rnn, "_kernels", None)
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
    p = {k: v for k, v in make_params().items() if k in bptt.drivers.rnn.RNN_KEYS}
    X, a0, dA, _ = rnn_inputs(rng, T, batch)
    A, cache = _forward(X, a0, p, None, "tanh")
    expected = _backward(dA, cache)
    A_f, cache_f = _forward(np.asfortranarray(X), np.ascontiguousarray(a0.T).T, p, None, "tanh")
    got = _backward(np.asfortranarray(dA), cache_f)
    np.testing.assert_allclose(A_f, A, rtol=0, atol=1e-15)
    np.testing.assert_allclose(got[0], expected[0], rtol=0, atol=1e-13)
    for key in expected[2]:
        np.testing.assert_allclose(got[2][key], expected[2][key], rtol=0, atol=1e-13, err_msg=key)


# ------------------------------------------------------------------------------ the gated cells' kernels

GATED = ["gru", "lstm"]


def sigmoid_exact(x):
    """σ in long double (80-bit on x86: 11 more bits than float64), as float64."""
    x = np.asarray(x, dtype=np.longdouble)
    return (1 / (1 + np.exp(-x))).astype(np.float64)


def lstm_gates(K, x, dtype):
    """[σ(x) | σ(x) | tanh(x) | σ(x)]: the gates lstm_step computes from pre-activations x (+ −0)."""
    x = np.asarray(x, dtype=dtype)[None]  # (1, n)
    n = x.shape[1]
    z = np.tile(x, 4)  # (1, 4n)
    c_prev, c, tc, a = (np.zeros((1, n), dtype) for _ in range(4))
    K.lstm_step(None, None, np.full_like(z, -0.0), z, c_prev, c, tc, a)  # z + (−0) is z, −0 included
    return z[0, :n], z[0, 2 * n : 3 * n]


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_is_within_a_few_ulp(K, rng, dtype):
    x = np.concatenate(
        [
            4 * rng.standard_normal(100_000),
            1e-3 * rng.standard_normal(20_000),
            np.linspace(-80, 80, 20_001),  # far out on both sides: σ ≈ e^x, σ ≈ 1 − e^−x
            [1e-30, -1e-30, 5e-324],
        ]
    ).astype(dtype)
    sig, tanh = lstm_gates(K, x, dtype)
    exact = sigmoid_exact(x)
    assert ulps(sig, exact, dtype).max() <= 4
    assert ulps(tanh, np.tanh(x.astype(np.float64)), dtype).max() <= 4  # the vanilla kernel's tanh


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_edge_values(K, dtype):
    x = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, -1e30, 1000.0, -1000.0, 50.0]
    sig, tanh = lstm_gates(K, x, dtype)
    expected = [0.5, 0.5, 1.0, 0.0, np.nan, 1.0, 0.0, 1.0, 0.0, 1.0]
    np.testing.assert_array_equal(sig, np.array(expected, dtype=dtype))
    # below the smallest normal number, e^x is taken as 0: σ is 0 where the exact value is subnormal
    tiny = -100.0 if dtype == np.float32 else -720.0
    assert lstm_gates(K, [tiny], dtype)[0][0] == 0
    assert lstm_gates(K, [-80.0 if dtype == np.float32 else -700.0], dtype)[0][0] > 0
    np.testing.assert_array_equal(tanh[:5], np.array([0.0, -0.0, 1.0, -1.0, np.nan], dtype=dtype))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


PRODUCT_CASES = [(1, 8, True), (3, 5, False), (3, 5, True), (2, 1, True)]  # B, n, x and W given


def drawer(rng, dtype):
    return lambda *shape: rng.standard_normal(shape).astype(dtype)


def close(got, expected, dtype, n_in, name):
    tol = 16 * np.finfo(dtype).eps * n_in
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B, n, product", PRODUCT_CASES)
def test_lstm_kernels_compute_their_formulas(K, rng, dtype, B, n, product):
    """lstm_step and lstm_step_backward against the equations of bptt.cells.lstm, in float64."""
    draw = drawer(rng, dtype)
    z, r, c_prev = draw(B, 4 * n), draw(B, 4 * n), draw(B, n)
    x, W = (draw(B, n), draw(n, 4 * n)) if product else (None, None)
    q = z.astype(np.float64) + (x.astype(np.float64) @ W if product else r)  # the pre-activations
    i, f, o = sigmoid(q[:, :n]), sigmoid(q[:, n : 2 * n]), sigmoid(q[:, 3 * n :])
    g = np.tanh(q[:, 2 * n : 3 * n])
    c = f * c_prev + i * g
    gates, c_t, tc_t, a_t = z.copy(), *(np.empty((B, n), dtype) for _ in range(3))
    r_out = r.copy()
    K.lstm_step(x, W, r_out, gates, c_prev, c_t, tc_t, a_t)
    if product:
        close(r_out, x.astype(np.float64) @ W, dtype, n, "r")  # r = x W, in the same call
    for name, got, expected in [
        ("gates", gates, np.concatenate([i, f, g, o], axis=1)),
        ("c", c_t, c),
        ("tanh_c", tc_t, np.tanh(c)),
        ("a", a_t, o * np.tanh(c)),
    ]:
        close(got, expected, dtype, 4 * n, name)

    G = sigmoid(draw(B, 4 * n))  # saved gates
    tc = np.tanh(draw(B, n))
    dA, r_b, dc_next = draw(B, n), draw(B, n), draw(B, n)
    x_b, W_b = (draw(B, 4 * n), draw(4 * n, n)) if product else (None, None)
    i, f, g, o = (G[:, k * n : (k + 1) * n].astype(np.float64) for k in range(4))
    da = dA + (x_b.astype(np.float64) @ W_b if product else r_b)
    dc = dc_next + da * o * (1 - tc * tc)
    dG = [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g * g), da * tc * o * (1 - o)]
    got = {"dG": np.empty((B, 4 * n), dtype), "da": np.empty((B, n), dtype), "dc": np.empty((B, n), dtype)}
    dc_in = dc_next.copy()
    K.lstm_step_backward(x_b, W_b, r_b.copy(), dA, dc_in, G, c_prev, tc, got["dG"], got["da"], got["dc"])
    for name, expected in [("dG", np.concatenate(dG, axis=1)), ("da", da), ("dc", dc)]:
        close(got[name], expected, dtype, 4 * n, name)
    close(dc_in, dc * f, dtype, 4 * n, "dc_next")  # in place: the message to c⟨t−1⟩


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B, n, product", PRODUCT_CASES)
def test_gru_kernels_compute_their_formulas(K, rng, dtype, B, n, product):
    """gru_step and gru_step_backward against the equations of bptt.cells.gru, in float64."""
    draw = drawer(rng, dtype)
    z, r, a_prev, b_hn = draw(B, 3 * n), draw(B, 3 * n), draw(B, n), draw(n)
    x, W = (draw(B, n), draw(n, 3 * n)) if product else (None, None)
    rec = x.astype(np.float64) @ W if product else r.astype(np.float64)  # W_aa a⟨t−1⟩
    q = z + rec
    rr, zz = sigmoid(q[:, :n]), sigmoid(q[:, n : 2 * n])
    h_n = rec[:, 2 * n :] + b_hn
    nn = np.tanh(z[:, 2 * n :] + rr * h_n)
    gates, h_t, a_t = z.copy(), np.empty((B, n), dtype), np.empty((B, n), dtype)
    K.gru_step(x, W, r.copy(), b_hn, gates, a_prev, h_t, a_t)
    for name, got, expected in [
        ("gates", gates, np.concatenate([rr, zz, nn], axis=1)),
        ("h_n", h_t, h_n),
        ("a", a_t, nn + zz * (a_prev - nn)),
    ]:
        close(got, expected, dtype, 3 * n, name)

    G = sigmoid(draw(B, 3 * n))  # saved gates
    h_n = draw(B, n)
    dA, r_b, carry = draw(B, n), draw(B, n), draw(B, n)
    x_b, W_b = (draw(B, 4 * n)[:, : 3 * n], draw(3 * n, n)) if product else (None, None)  # strided rows
    rr, zz, nn = (G[:, k * n : (k + 1) * n].astype(np.float64) for k in range(3))
    da = dA + carry + (x_b.astype(np.float64) @ W_b if product else r_b)
    dn = da * (1 - zz) * (1 - nn * nn)
    D = [dn * rr * h_n * (1 - rr), da * (a_prev - nn) * zz * (1 - zz), dn * rr, dn]
    got_D, got_da, carry_in = np.empty((B, 4 * n), dtype), np.empty((B, n), dtype), carry.copy()
    K.gru_step_backward(x_b, W_b, r_b.copy(), dA, carry_in, G, h_n, a_prev, got_D, got_da)
    close(got_D, np.concatenate(D, axis=1), dtype, 3 * n, "D")
    close(got_da, da, dtype, 3 * n, "da")
    close(carry_in, da * zz, dtype, 3 * n, "carry")  # in place: the direct term to a⟨t−1⟩


def test_gated_kernels_check_their_arguments(K):
    B, n = 2, 3
    z, r, s = np.zeros((B, 4 * n)), np.zeros((B, 4 * n)), [np.zeros((B, n)) for _ in range(4)]
    with pytest.raises(ValueError, match=r"lstm_step: argument 4: expected shape \(2, 12\)"):
        K.lstm_step(None, None, r, np.zeros((B, 3 * n)), *s)
    with pytest.raises(ValueError, match="x and W both None"):
        K.lstm_step(np.zeros((B, n)), None, r, z, *s)  # x without W
    with pytest.raises(ValueError, match="x and W both None"):
        K.lstm_step(np.zeros((B, n)), np.zeros((n, 3 * n)), r, z, *s)  # W of the wrong width
    with pytest.raises(ValueError, match="argument 3 overlaps argument 4"):
        K.lstm_step(None, None, z, z, *s)  # written in place of another argument
    with pytest.raises(ValueError, match="argument 6 overlaps argument 8"):
        K.lstm_step(None, None, r, z, s[0], s[1], s[2], s[1])
    wide = np.zeros((B, 8 * n))
    with pytest.raises(ValueError, match="overlaps"):
        K.lstm_step(None, None, wide[:, : 4 * n], wide[:, 4 * n :], *s)  # interleaved rows count too
    with pytest.raises(ValueError, match="expected a vector of n = 3"):
        K.gru_step(None, None, np.zeros((B, 3 * n)), np.zeros((1, n)), np.zeros((B, 3 * n)), *s[:3])
    with pytest.raises(ValueError, match="argument 6: dtype differs"):
        K.gru_step(
            None,
            None,
            np.zeros((B, 3 * n)),
            np.zeros(n),
            np.zeros((B, 3 * n)),
            s[0].astype(np.float32),
            *s[1:3],
        )
    with pytest.raises(TypeError, match="expected 10 arguments, got 9"):
        K.gru_step_backward(None, None, *s[:3], np.zeros((B, 3 * n)), s[3], s[0], np.zeros((B, 4 * n)))


@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize("batch, masked", [(1, False), (B, False), (B, True), (8, False), (8, True)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gated_compiled_loops_equal_numpy_loops(K, rng, cell, batch, masked, dtype):
    """Every number the GRU and LSTM loops return — states, caches, messages, gradients — in every loop."""
    c = get_cell(cell)
    p = {k: (0.5 * rng.standard_normal(s)).astype(dtype) for k, s in c.param_shapes(N_X, N_A).items()}
    X, a0, dA, da_T = rnn_inputs(rng, T, batch, dtype)
    c0, dc_T = (rng.standard_normal((batch, N_A)).astype(dtype) for _ in range(2))
    state0, d_state_T = ((a0, c0), (da_T, dc_T)) if cell == "lstm" else (a0, da_T)
    mask = ragged_mask([5, 2, 4, 1, 5, 3, 5, 4][:batch], T) if masked else None
    forward, backward = c.fast_forward, c.fast_backward
    out = {}
    for loop in LOOPS:
        A, cache = forward(X, state0, p, mask, loop=loop)
        dX, d0, grads, M = backward(dA, cache, d_state_T, messages=True, loop=loop)
        out[loop] = {"A": A, "dX": dX, "d0": d0, "M": M, **grads}
        out[loop].update(
            {f"cache.{k}": v for k, v in cache._asdict().items() if k in ("C", "G", "H_n", "tanh_C")}
        )
    tol = 1e-13 if dtype == np.float64 else 4e-6
    for loop in ("compiled", "gemv"):
        for key, value in out["numpy"].items():
            for ours, theirs in zip(parts(out[loop][key]), parts(value)):
                assert ours.dtype == dtype
                np.testing.assert_allclose(ours, theirs, rtol=0, atol=tol, err_msg=f"{loop}: {key}")


def parts(x):
    """An array, or the arrays of a pair (LSTM states and messages), as a tuple."""
    return tuple(x) if isinstance(x, tuple) else (x,)


def test_gated_loop_choice(K):
    """Small unmasked steps take the product inside the kernel; masks and large steps a BLAS GEMM."""
    no_skips, skips = [None] * 3, [None, np.ones((1, 1), bool), None]
    for gates in (3, 4):  # GRU, LSTM
        assert gated_loop(1, 8, gates, no_skips, K) == "gemv"
        assert gated_loop(1, 8, gates, skips, K) == "compiled"  # the message passes on in the next call
        assert gated_loop(1, 8, gates, skips, K, loop="gemv") == "compiled"
        assert gated_loop(64, 256, gates, no_skips, K) == "compiled"
        assert gated_loop(1, 8, gates, no_skips, None) == "numpy"
        with pytest.raises(bptt.BpttError, match="loop: the compiled loops need"):
            gated_loop(1, 8, gates, no_skips, None, loop="compiled")


@pytest.mark.parametrize("cell", GATED)
def test_gated_compiled_loops_propagate_nan(K, cell):
    """A NaN in the input reaches the states and gradients: never silently dropped."""
    c = get_cell(cell)
    p = {k: 0.5 * np.ones(s) for k, s in c.param_shapes(N_X, N_A).items()}
    X = np.zeros((T, 1, N_X))
    X[2, 0, 1] = np.nan
    zeros = np.zeros((1, N_A))
    A, cache = c.fast_forward(X, (zeros, zeros) if c.paired else zeros, p, None)
    assert not np.isnan(A[:2]).any() and np.isnan(A[2:]).all()
    _, _, grads, _ = c.fast_backward(np.ones((T, 1, N_A)), cache)
    assert np.isnan(grads["W_aa"]).any()


@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize("batch", [1, B])
def test_gated_loops_take_any_memory_layout(K, rng, cell, batch):
    """Fortran-ordered or transposed inputs give the numbers C-ordered ones give."""
    c = get_cell(cell)
    p = {k: 0.5 * rng.standard_normal(s) for k, s in c.param_shapes(N_X, N_A).items()}
    X, a0, dA, da_T = rnn_inputs(rng, T, batch)
    c0 = rng.standard_normal((batch, N_A))

    def state(a, c_):
        return (a, c_) if c.paired else a

    def run(X, s0, dA, d_T):
        A, cache = c.fast_forward(X, s0, p, None)
        return A, c.fast_backward(dA, cache, d_T)

    A, (dX, d0, grads, _) = run(X, state(a0, c0), dA, state(da_T, da_T))
    F = np.asfortranarray
    A_f, (dX_f, d0_f, grads_f, _) = run(
        F(X), state(F(a0), np.ascontiguousarray(c0.T).T), F(dA), state(F(da_T), F(da_T))
    )
    np.testing.assert_allclose(A_f, A, rtol=0, atol=1e-15)
    np.testing.assert_allclose(dX_f, dX, rtol=0, atol=1e-13)
    for ours, theirs in zip(parts(d0_f), parts(d0)):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-13)
    for key in grads:
        np.testing.assert_allclose(grads_f[key], grads[key], rtol=0, atol=1e-13, err_msg=key)


def _adam_numpy(p, g, m, v, beta1, beta2, c2, eps, step):
    """Adam's dense update as `Adam.step` writes it in NumPy: the reference for ``adam_step``."""
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * (g * g)
    denom = np.sqrt(v / c2)
    denom += eps
    p -= step * m / denom


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (1000,), (13, 37), (512, 158)])
def test_adam_step_is_bit_identical_to_numpy(K, rng, dtype, shape):
    p0 = rng.standard_normal(shape).astype(dtype)
    state = [p0.copy(), np.zeros(shape, dtype), np.zeros(shape, dtype)]
    ours = [p0.copy(), np.zeros(shape, dtype), np.zeros(shape, dtype)]
    for t in range(1, 6):  # gradients over eight orders of magnitude, zeros included
        g = (rng.standard_normal(shape) * 10.0 ** rng.uniform(-6, 2, shape)).astype(dtype)
        g.flat[0] = 0
        c1, c2 = 1 - 0.9**t, 1 - 0.999**t
        _adam_numpy(state[0], g, state[1], state[2], 0.9, 0.999, c2, 1e-8, 3e-3 / c1)
        K.adam_step(ours[0], g, ours[1], ours[2], 0.9, 0.999, c2, 1e-8, 3e-3 / c1)
        for a, b in zip(ours, state):
            assert a.tobytes() == b.tobytes()  # the same bits, not merely close


def test_adam_step_takes_strided_rows_and_refuses_bad_arguments(K, rng):
    big = rng.standard_normal((6, 10))
    p, g = big[:, :4], np.ones((6, 4))  # p's rows 10 apart
    m, v = np.zeros((6, 4)), np.zeros((6, 4))
    before, beside = p.copy(), big[:, 4:].copy()
    K.adam_step(p, g, m, v, 0.9, 0.999, 0.001, 1e-8, 0.01)
    # first step: m = 0.1 g, v = 0.001 g², so p moves by step·0.1 / (√(0.001 / c2) + ε), c2 = 0.001
    assert np.allclose(p, before - 0.01 * 0.1 / (1 + 1e-8))
    assert np.array_equal(big[:, 4:], beside)  # the numbers between the rows are left alone
    with pytest.raises(ValueError, match="argument 2: shape differs"):
        K.adam_step(p, np.ones((6, 5)), m, v, 0.9, 0.999, 0.5, 1e-8, 0.01)
    with pytest.raises(ValueError, match="argument 3: dtype differs"):
        K.adam_step(p, g, m.astype(np.float32), v, 0.9, 0.999, 0.5, 1e-8, 0.01)
    with pytest.raises(ValueError, match="overlaps"):
        K.adam_step(p, g, m, m, 0.9, 0.999, 0.5, 1e-8, 0.01)
    with pytest.raises(TypeError, match="expected 9 arguments"):
        K.adam_step(p, g, m, v)
    with pytest.raises(TypeError):
        K.adam_step(p, g, m, v, "0.9", 0.999, 0.5, 1e-8, 0.01)


def test_adam_uses_the_kernel_with_the_same_result(K, rng, monkeypatch):
    from bptt.training.optim import Adam

    params = {"W": rng.standard_normal((5, 3)).astype(np.float32), "b": np.zeros(5, np.float32)}
    grads = [{k: rng.standard_normal(v.shape).astype(np.float32) for k, v in params.items()} for _ in "abcd"]
    calls = []
    monkeypatch.setattr(bptt.drivers.rnn, "_kernels", _Counting(K, calls))
    fused, opt = {k: v.copy() for k, v in params.items()}, Adam(lr=0.01)
    for g in grads:
        opt.step(fused, g)
    assert len(calls) == 8  # every dense parameter, every step
    monkeypatch.setattr(bptt.drivers.rnn, "_kernels", None)
    plain, opt = {k: v.copy() for k, v in params.items()}, Adam(lr=0.01)
    for g in grads:
        opt.step(plain, g)
    for k in params:
        assert fused[k].tobytes() == plain[k].tobytes()


class _Counting:
    """``bptt._kernels`` with its ``adam_step`` calls counted."""

    def __init__(self, kernels, calls):
        self._k, self._calls = kernels, calls

    def __getattr__(self, name):
        return getattr(self._k, name)

    def adam_step(self, *args):
        self._calls.append(args[0].shape)
        return self._k.adam_step(*args)


def test_adam_falls_back_to_numpy_where_the_kernel_does_not_apply(K, rng):
    """A 0-d array, a 3-D array, a column-strided view and mixed dtypes take the NumPy update."""
    from bptt.training.optim import _fused

    for a in (np.ones(()), np.ones((2, 3, 4)), np.ones((4, 6))[:, ::2]):
        assert _fused(a, a.copy(), a.copy(), a.copy()) is None
    plain = np.ones(5)
    assert _fused(plain, plain.copy(), plain.copy(), plain.astype(np.float32)) is None  # dtypes differ
    assert _fused(plain, plain.copy(), plain.copy(), plain.copy()) is K
