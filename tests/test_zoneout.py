"""Zoneout in the LSTM (``lstm_forward(..., zoneout=(Z_a, Z_c))``) and in the language model: central
differences, a PyTorch twin, its limits (z = 0 is the LSTM, Z = 1 keeps the state), bad input.

Tests taking ``step_kernels`` run twice: with the compiled step kernels and with the NumPy loops only."""

import numpy as np
import pytest

import bptt
from bptt.cells.lstm import lstm_backward, lstm_forward
from bptt.errors import BpttError
from bptt.lm.corpus import Alphabet
from bptt.lm.model import load_lm
from bptt.lm.network import Stack, chunk_log_probs, chunk_loss, init_lm, one_hot
from tests.conftest import N_A, N_X, B, T, cell_params, initial_state, ragged_mask

EPS = 1e-5  # as the other gated-cell checks (tests/test_cells.py)


def masks(rng, z_a=0.3, z_c=0.5, shape=(T, B, N_A)):
    """0/1 zoneout masks (Z_a, Z_c): 1 where a unit keeps its previous value."""
    return tuple((rng.random(shape) < z).astype(np.float64) for z in (z_a, z_c))


def zoneout_loss(R, zoneout, mask=None, carry=(None, None)):
    """L = Σ A ⊙ R + a⟨T⟩ · R_a + c⟨T⟩ · R_c through ``lstm_forward`` with zoneout; masked steps: padding."""
    R = R if mask is None else R * mask[:, :, None]
    R_a, R_c = carry

    def fun(arrs):
        p = {k: arrs[k] for k in ("W_ax", "W_aa", "b_a")}
        A, cache = lstm_forward(arrs["X"], (arrs["a0"], arrs["c0"]), p, mask, zoneout=zoneout)
        L = float((A * R).sum())
        L += 0.0 if R_a is None else float((A[-1] * R_a).sum())
        L += 0.0 if R_c is None else float((cache.C[-1] * R_c).sum())
        dX, (da0, dc0), grads = lstm_backward(R, cache, carry)
        return L, {**grads, "X": dX, "a0": da0, "c0": dc0}

    return fun


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("carry", ["none", "a and c"])
@pytest.mark.parametrize("kind", ["masks", "expectation"])
def test_gradcheck_zoneout_every_array(rng, step_kernels, masked, carry, kind):
    """Every parameter, X, a0 and c0, with drawn masks or the probabilities (as scoring uses them), ragged
    masks and carry-in gradients for a⟨T⟩ and c⟨T⟩."""
    p = cell_params("lstm", rng)
    a0, c0 = initial_state("lstm", rng)
    arrays = {"X": rng.standard_normal((T, B, N_X)), **p, "a0": a0, "c0": c0}
    zoneout = masks(rng) if kind == "masks" else (0.3, 0.6)
    mask = ragged_mask([5, 2, 4], T) if masked else None
    R = rng.standard_normal((T, B, N_A))
    R_ac = (rng.standard_normal((B, N_A)), rng.standard_normal((B, N_A))) if carry != "none" else (None, None)
    report = bptt.gradcheck(zoneout_loss(R, zoneout, mask, R_ac), arrays, eps=EPS)
    assert set(report.errors) == set(arrays)
    assert report.max_error < 1e-6, str(report)


def test_gradcheck_catches_a_wrong_zoneout_gradient(rng, monkeypatch):
    """The check above can fail: a backward that forgets the kept share of c⟨t⟩ is caught."""
    import bptt.cells.lstm as lstm

    p = cell_params("lstm", rng)
    a0, c0 = initial_state("lstm", rng)
    arrays = {"X": rng.standard_normal((T, B, N_X)), **p, "a0": a0, "c0": c0}
    zoneout = masks(rng, 0.3, 0.5)
    real = lstm._backward_zoneout

    def wrong(dA, cache, *rest):  # the backward reads Z_c as 0: no message through the kept share of c
        return real(dA, cache._replace(zoneout=(cache.zoneout[0], 0.0)), *rest)

    fun = zoneout_loss(rng.standard_normal((T, B, N_A)), zoneout)
    assert bptt.gradcheck(fun, arrays, eps=EPS).max_error < 1e-6
    monkeypatch.setattr(lstm, "_backward_zoneout", wrong)
    assert bptt.gradcheck(fun, arrays, eps=EPS).max_error > 1e-3


@pytest.mark.parametrize("kind", ["masks", "expectation"])
def test_zoneout_equals_a_pytorch_twin(rng, step_kernels, kind):
    """``torch.nn.LSTMCell`` step by step, the same zoneout written in torch, autograd (float64, 1e-10):
    A, every c⟨t⟩, and the gradients of the weights, X and the initial state."""
    import torch

    p = cell_params("lstm", rng)
    a0, c0 = initial_state("lstm", rng)
    X = rng.standard_normal((T, B, N_X))
    zoneout = masks(rng) if kind == "masks" else (0.2, 0.7)
    R = rng.standard_normal((T, B, N_A))
    A, cache = lstm_forward(X, (a0, c0), p, zoneout=zoneout)
    dX, (da0, dc0), grads = lstm_backward(R, cache)

    cell = torch.nn.LSTMCell(N_X, N_A, dtype=torch.float64)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(p["W_ax"]))
        cell.weight_hh.copy_(torch.from_numpy(p["W_aa"]))
        cell.bias_ih.copy_(torch.from_numpy(p["b_a"]))
        cell.bias_hh.zero_()
    Xt, h, c = (torch.tensor(v, requires_grad=True) for v in (X, a0, c0))
    Z_a, Z_c = (torch.as_tensor(z, dtype=torch.float64) for z in zoneout)
    Z_a, Z_c = (z.expand(T, B, N_A) if z.dim() == 0 else z for z in (Z_a, Z_c))
    hs, cs, h_t, c_t = [], [], h, c
    for t in range(T):
        h_new, c_new = cell(Xt[t], (h_t, c_t))
        c_t = c_new + Z_c[t] * (c_t - c_new)
        h_t = h_new + Z_a[t] * (h_t - h_new)
        hs.append(h_t)
        cs.append(c_t)
    H = torch.stack(hs)
    (H * torch.from_numpy(R)).sum().backward()
    np.testing.assert_allclose(A, H.detach().numpy(), atol=1e-12, rtol=0)
    np.testing.assert_allclose(cache.C, torch.stack(cs).detach().numpy(), atol=1e-12, rtol=0)
    want = {"W_ax": cell.weight_ih.grad, "W_aa": cell.weight_hh.grad, "b_a": cell.bias_ih.grad}
    want.update(X=Xt.grad, a0=h.grad, c0=c.grad)
    got = {**grads, "X": dX, "a0": da0, "c0": dc0}
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v.numpy(), atol=1e-10, rtol=0, err_msg=k)


def test_zoneout_limits(rng, step_kernels):
    """z = 0 is the LSTM; Z = 1 everywhere keeps (a0, c0) and gives no parameter gradient; the
    probabilities z give what masks filled with z give (the expectation of one step's mix)."""
    p = cell_params("lstm", rng)
    a0, c0 = initial_state("lstm", rng)
    X, R = rng.standard_normal((T, B, N_X)), rng.standard_normal((T, B, N_A))
    mask = ragged_mask([5, 2, 4], T)
    A, cache = lstm_forward(X, (a0, c0), p, mask)
    A0, cache0 = lstm_forward(X, (a0, c0), p, mask, zoneout=(0.0, 0.0))
    np.testing.assert_allclose(A0, A, atol=1e-15)
    for got, want in zip(lstm_backward(R, cache0)[2].values(), lstm_backward(R, cache)[2].values()):
        np.testing.assert_allclose(got, want, atol=1e-14)
    ones = np.ones((T, B, N_A))
    A1, cache1 = lstm_forward(X, (a0, c0), p, zoneout=(ones, ones))
    np.testing.assert_allclose(A1, np.broadcast_to(a0, A1.shape), atol=1e-15, rtol=0)
    np.testing.assert_allclose(cache1.C, np.broadcast_to(c0, A1.shape), atol=1e-15, rtol=0)
    _, (da0, dc0), g1 = lstm_backward(R, cache1)
    assert all(not g.any() for g in g1.values())
    np.testing.assert_allclose(da0, R.sum(axis=0), atol=1e-12)  # every a⟨t⟩ is a0
    Az, cz = lstm_forward(X, (a0, c0), p, zoneout=(0.25, 0.5))
    Af, cf = lstm_forward(X, (a0, c0), p, zoneout=(0.25 * ones, 0.5 * ones))
    np.testing.assert_allclose(Az, Af, atol=1e-15)
    for got, want in zip(lstm_backward(R, cz)[2].values(), lstm_backward(R, cf)[2].values()):
        np.testing.assert_allclose(got, want, atol=1e-13)


@pytest.mark.parametrize(
    ("zoneout", "words"),
    [
        (0.5, ["zoneout", "pair (Z_a, Z_c)"]),
        ((0.5,), ["zoneout", "pair (Z_a, Z_c)"]),
        ((0.5, 1.5), ["Z_c", "probability in [0, 1]"]),
        ((-0.1, 0.5), ["Z_a", "probability in [0, 1]"]),
        ((np.zeros((T, B, N_A + 1)), 0.5), ["Z_a"]),
        ((0.5, np.full((T, B, N_A), 2.0)), ["Z_c", "values in [0, 1]"]),
        ((np.full((T, B, N_A), np.nan), 0.5), ["Z_a"]),
    ],
)
def test_bad_zoneout_is_one_line_naming_it(rng, zoneout, words):
    p = cell_params("lstm", rng)
    with pytest.raises(BpttError) as e:
        lstm_forward(rng.standard_normal((T, B, N_X)), None, p, zoneout=zoneout)
    message = str(e.value)
    assert "\n" not in message
    for w in words:
        assert w in message, message


# ------------------------------------------------------------------------------------- the language model

V, K = 7, 6


def test_lm_chunk_with_zoneout_against_central_differences(rng):
    """Two layers with zoneout and dropout drawn from one generator (the same draws every call), a
    carried state, masked steps: every parameter's gradient, and the draws change the loss."""
    p = {
        k: v + 0.3 * rng.standard_normal(v.shape)
        for k, v in init_lm("lstm", V, N_A, 1, np.float64, layers=2).items()
    }
    stack = Stack("lstm", 2, (0.2, 0.5))
    ids_in, ids_out = rng.integers(0, V, (K, B)), rng.integers(0, V, (K, B))
    mask = np.ones((K, B), dtype=bool)
    mask[3:, 2] = False
    state0 = stack.join(0.5 * rng.standard_normal((B, N_A)) for _ in range(4))

    def run():
        return chunk_loss(p, stack, ids_in, ids_out, state0, mask, dropout=0.2, rng=np.random.default_rng(4))

    L, grads, _ = run()
    for k, w in p.items():
        num = np.zeros_like(w)
        for i in np.ndindex(w.shape):
            old = w[i]
            w[i] = old + 1e-6
            up = run()[0]
            w[i] = old - 1e-6
            num[i] = (up - run()[0]) / 2e-6
            w[i] = old
        assert np.abs(num - grads[k]).max() / max(1.0, np.abs(num).max()) < 1e-7, k
    plain = chunk_loss(p, Stack("lstm", 2), ids_in, ids_out, state0, mask, 0.2, np.random.default_rng(4))[0]
    assert L != plain


def test_lm_scores_with_the_expectation(rng):
    """Scoring (no generator) runs the cell with the probabilities themselves: the log-probabilities are
    those of ``lstm_forward(..., zoneout=(z_a, z_c))`` and the head, by hand."""
    p = init_lm("lstm", V, N_A, 2, np.float64)
    ids_in, ids_out = rng.integers(0, V, (K, B)), rng.integers(0, V, (K, B))
    stack = Stack("lstm", 1, (0.1, 0.6))
    state0 = stack.zero_state(B, N_A, np.float64)
    log_p, (a, c) = chunk_log_probs(p, stack, ids_in, ids_out, state0)
    A, cache = lstm_forward(one_hot(ids_in, V, np.float64), None, p, zoneout=(0.1, 0.6))
    Z = A @ p["W_ya"].T + p["b_y"]
    Z = Z - np.log(np.exp(Z).sum(axis=2, keepdims=True))
    np.testing.assert_allclose(log_p, np.take_along_axis(Z, ids_out[..., None], 2)[..., 0], atol=1e-12)
    np.testing.assert_allclose(c, cache.C[-1], atol=1e-15)
    assert np.abs(log_p - chunk_log_probs(p, Stack("lstm"), ids_in, ids_out, state0)[0]).max() > 1e-3


def test_a_zoneout_model_file_keeps_its_rates(tmp_path):
    """`bptt lm train --zoneout-*` writes the rates into the model file; loading it scores with them."""
    from bptt.cli import main

    f = tmp_path / "train.txt"
    f.write_text("".join(f"the cat {i % 5} sat on the mat number {i}\n" for i in range(60)))
    out = tmp_path / "lm"
    argv = ["lm", "train", "--text", str(f), "--out", str(out), "--updates", "6", "--hidden", "8",
            "--batch-size", "4", "--bptt-steps", "10", "--eval-every", "3", "--quiet",
            "--zoneout-hidden", "0.05", "--zoneout-cell", "0.5"]  # fmt: skip
    assert main(argv) == 0
    model = load_lm(str(out))
    assert model.cell.zoneout == (0.05, 0.5)
    text = f.read_text()
    scored = model.bits_per_char(text)
    model.cell.zoneout = (0.0, 0.0)
    assert abs(model.bits_per_char(text) - scored) > 1e-6  # the rates are used when scoring


@pytest.mark.parametrize("value", ["abc", "1.0", "-0.1", "nan"])
def test_a_model_file_with_a_bad_zoneout_rate_is_refused_in_one_line(tmp_path, value):
    from bptt.io.safetensors_io import load_safetensors, save_safetensors

    p = init_lm("lstm", 4, 4, 0, np.float32)
    path = tmp_path / "weights.safetensors"
    meta = {"format": "bptt-lm", "format_version": "1", "cell": "lstm", "hidden": "4", "layers": "1"}
    meta.update(unit="stream", alphabet=Alphabet.of("ab\n").to_json(), zoneout_cell=value)
    save_safetensors(str(path), p, meta)
    assert load_safetensors(str(path))[1]["zoneout_cell"] == value
    with pytest.raises(BpttError) as e:
        load_lm(str(path))
    assert "zoneout_cell" in str(e.value) and "\n" not in str(e.value)


def test_a_window_of_a_zoneout_cache_is_that_stretch_run_alone(rng):
    """``Cell.window`` cuts the zoneout masks with the other stacks: its backward is that stretch's."""
    from bptt.cells import get_cell

    c, p = get_cell("lstm"), cell_params("lstm", rng)
    X, R = rng.standard_normal((T, B, N_X)), rng.standard_normal((T, B, N_A))
    zoneout = masks(rng)
    A, cache = lstm_forward(X, initial_state("lstm", rng), p, zoneout=zoneout)
    s, e = 1, 4
    win = c.window(cache, s, e)
    A_se, again = lstm_forward(X[s:e], c.state_before(cache, s), p, zoneout=tuple(z[s:e] for z in zoneout))
    np.testing.assert_allclose(A_se, A[s:e], atol=1e-15)
    for ours, theirs in zip(win.zoneout, again.zoneout):
        np.testing.assert_array_equal(ours, theirs)
    for got, want in zip(lstm_backward(R[s:e], win)[2].values(), lstm_backward(R[s:e], again)[2].values()):
        np.testing.assert_allclose(got, want, atol=1e-13)
