"""Truncated BPTT for every cell: k = T is full BPTT; every truncation is a graph cut by torch's detach()."""

import numpy as np
import pytest

import bptt
from bptt.drivers.truncated import rnn_backward_truncated, truncated_sequence_loss
from tests.conftest import N_A, N_X, B, initial_state, make_params, model_params, ragged_mask, state_parts
from tests.helpers import torch_twin, torch_twin_grads

torch = pytest.importorskip("torch")

CELLS = ["rnn", "gru", "lstm"]


def torch_state(cell, parts):
    """The state as a torch module takes it: h, or (h, c)."""
    return tuple(parts) if cell == "lstm" else parts[0]


def detached(cell, hx):
    """The state cut from the graph: the truncation."""
    return tuple(h.detach() for h in hx) if cell == "lstm" else hx.detach()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("masked", [False, True])
def test_k1_equal_k2_equal_T_is_full_bptt_exactly(rng, cell, masked):
    T, n_y = 9, 3
    p = model_params(cell, rng, n_y=n_y)
    X = rng.standard_normal((T, B, N_X))
    Y = rng.integers(0, n_y, size=(T, B))
    state0 = initial_state(cell, rng)
    mask = ragged_mask([9, 4, 7], T) if masked else None
    kw = dict(a0=state0, mask=mask, output="softmax", cell=cell)
    L, grads = bptt.sequence_loss(p, X, Y, **kw)
    L_tr, g_tr, state_T = truncated_sequence_loss(p, X, Y, T, T, **kw)
    assert L_tr == L
    for k in p:
        np.testing.assert_array_equal(g_tr[k], grads[k], err_msg=k)
    A, cache = bptt.rnn_forward(X, state0, {k: p[k] for k in bptt.get_cell(cell).keys}, mask=mask, cell=cell)
    last = (A[-1], cache.C[-1]) if cell == "lstm" else (A[-1],)
    for ours, theirs in zip(state_parts(cell, state_T), last, strict=True):  # the last real states
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("masked", [False, True])
def test_layer_truncation_with_k_at_least_T_is_full_bptt(rng, cell, masked):
    T = 7
    p = model_params(cell, rng)
    X = rng.standard_normal((T, B, N_X))
    state0, d_T = initial_state(cell, rng), initial_state(cell, rng)
    dA = rng.standard_normal((T, B, N_A))
    mask = ragged_mask([7, 2, 5], T) if masked else None
    _, cache = bptt.rnn_forward(X, state0, p, mask=mask, cell=cell)
    dX, d0, grads = bptt.rnn_backward(dA, cache, d_T)
    for k in (T, T + 3):
        dX_k, d0_k, grads_k = rnn_backward_truncated(dA, cache, k, d_T)
        np.testing.assert_array_equal(dX_k, dX)
        for ours, theirs in zip(state_parts(cell, d0_k), state_parts(cell, d0), strict=True):
            np.testing.assert_array_equal(ours, theirs)
        assert list(grads_k) == list(grads)
        for key in grads:
            np.testing.assert_array_equal(grads_k[key], grads[key])


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("masked", [False, True])
def test_layer_truncation_matches_torch_detached_chunks(rng, cell, k, masked):
    """Every k steps the state (a, and c) is detached in torch: that is exactly the cut message."""
    T = 11
    p = model_params(cell, rng)
    X = rng.standard_normal((T, B, N_X))
    state0 = initial_state(cell, rng)
    R = rng.standard_normal((T, B, N_A))
    lengths = [11, 6, 9] if masked else [T] * B
    mask = ragged_mask(lengths, T) if masked else None
    A, cache = bptt.rnn_forward(X, state0, p, mask=mask, cell=cell)
    dX, d0, grads = rnn_backward_truncated(R * (mask[:, :, None] if masked else 1), cache, k)

    module = torch_twin(cell, p)
    Xt = torch.tensor(X, requires_grad=True)
    s0 = [torch.tensor(x, requires_grad=True) for x in state_parts(cell, state0)]
    for b, n in enumerate(lengths):  # one sequence at a time: torch has no per-step mask
        hx = torch_state(cell, [x[b : b + 1][None] for x in s0])  # (1, 1, n_a) each
        for s in range(0, n, k):
            out, hx = module(Xt[s : min(s + k, n), b : b + 1], hx)
            (out * torch.from_numpy(R[s : min(s + k, n), b : b + 1])).sum().backward(retain_graph=True)
            hx = detached(cell, hx)  # the cut at the chunk boundary
    for key, ref in torch_twin_grads(module, cell).items():
        np.testing.assert_allclose(grads[key], ref, rtol=1e-10, atol=1e-12, err_msg=key)
    np.testing.assert_allclose(dX, Xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for ours, ref in zip(state_parts(cell, d0), s0, strict=True):
        np.testing.assert_allclose(ours, ref.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("k1", "k2"), [(1, 1), (2, 2), (3, 3), (2, 5), (3, 4), (4, 13), (13, 13)])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_bptt_k1_k2_matches_torch_windows(rng, cell, k1, k2, reduction):
    """Reference: every k1 steps, rerun the last k2 steps from a detached state and backward."""
    T, n_y = 13, 3
    p = model_params(cell, rng, n_y=n_y)
    X = rng.standard_normal((T, B, N_X))
    Y = rng.integers(0, n_y, size=(T, B))
    state0 = initial_state(cell, rng)
    L, grads, state_T = truncated_sequence_loss(
        p, X, Y, k1, k2, a0=state0, output="softmax", reduction=reduction, cell=cell
    )

    module = torch_twin(cell, p)
    W_ya = torch.tensor(p["W_ya"], requires_grad=True)
    b_y = torch.tensor(p["b_y"], requires_grad=True)
    Xt = torch.from_numpy(X)
    hx0 = torch_state(cell, [torch.from_numpy(x)[None] for x in state_parts(cell, state0)])
    L_ref = 0.0
    for s in range(0, T, k1):
        e = min(s + k1, T)
        w = max(0, e - k2)
        with torch.no_grad():  # the state before step w, with no graph
            hx = hx0 if w == 0 else module(Xt[:w], hx0)[1]
        out, _ = module(Xt[w:e], detached(cell, hx))
        Z = out[s - w :] @ W_ya.T + b_y  # only this update's own steps have losses
        loss = torch.nn.functional.cross_entropy(
            Z.reshape(-1, n_y), torch.from_numpy(Y[s:e].reshape(-1)), reduction="sum"
        )
        if reduction == "mean":
            loss = loss / B
        loss.backward()
        L_ref += loss.item()
    g_ref = {**torch_twin_grads(module, cell), "W_ya": W_ya.grad.numpy(), "b_y": b_y.grad.numpy()}
    assert L == pytest.approx(L_ref, rel=1e-12)
    for key in p:
        np.testing.assert_allclose(grads[key], g_ref[key], rtol=1e-10, atol=1e-12, err_msg=key)
    with torch.no_grad():
        last = module(Xt, hx0)[1]
    for ours, ref in zip(state_parts(cell, state_T), state_parts(cell, last), strict=True):
        np.testing.assert_allclose(ours, ref[0].numpy(), atol=1e-13)


@pytest.mark.parametrize("cell", CELLS)
def test_stream_in_pieces_carries_the_state(rng, cell):
    """A stream fed in two calls, the final state passed on, equals one call when pieces align with k1."""
    T, k1, k2 = 12, 3, 3
    p = model_params(cell, rng, n_y=1)
    X = rng.standard_normal((T, B, N_X))
    Y = rng.integers(0, 2, size=(T, B)).astype(np.float64)
    L, grads, state_T = truncated_sequence_loss(p, X, Y, k1, k2, cell=cell)
    L1, g1, state_mid = truncated_sequence_loss(p, X[:6], Y[:6], k1, k2, cell=cell)
    L2, g2, state_end = truncated_sequence_loss(p, X[6:], Y[6:], k1, k2, a0=state_mid, cell=cell)
    assert L == pytest.approx(L1 + L2, rel=1e-13)
    for ours, theirs in zip(state_parts(cell, state_end), state_parts(cell, state_T), strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-14)
    for key in p:
        np.testing.assert_allclose(grads[key], g1[key] + g2[key], atol=1e-13, err_msg=key)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k1": 0}, "k1"),
        ({"k1": 2.5}, "k1"),
        ({"k1": 3, "k2": 2}, "k2"),
        ({"k1": 2, "output": "nope"}, "output"),
    ],
)
def test_bad_arguments_name_themselves(rng, kwargs, match):
    p = make_params(n_y=1)
    X = rng.standard_normal((4, B, N_X))
    Y = rng.integers(0, 2, size=(4, B)).astype(np.float64)
    with pytest.raises(bptt.BpttError, match=match):
        truncated_sequence_loss(p, X, Y, **kwargs)


def test_bad_cells_and_states_name_the_argument(rng):
    lstm = model_params("lstm", rng, n_y=1)
    X = rng.standard_normal((4, B, N_X))
    Y = rng.integers(0, 2, size=(4, B)).astype(np.float64)
    a0 = np.zeros((B, N_A))
    with pytest.raises(bptt.BpttError, match="^cell: .*'transformer'"):
        truncated_sequence_loss(lstm, X, Y, 2, cell="transformer")
    with pytest.raises(bptt.BpttError, match="^state0: an LSTM's state is a pair"):
        truncated_sequence_loss(lstm, X, Y, 2, a0=a0, cell="lstm")
    with pytest.raises(bptt.BpttError, match=r"^params\['W_aa'\]: .*cell='lstm'"):
        truncated_sequence_loss(lstm, X, Y, 2, cell="gru")
    _, cache = bptt.rnn_forward(X, None, {k: lstm[k] for k in ("W_ax", "W_aa", "b_a")}, cell="lstm")
    with pytest.raises(bptt.BpttError, match="^d_state_T: an LSTM's state is a pair"):
        rnn_backward_truncated(np.zeros((4, B, N_A)), cache, 2, a0)
    with pytest.raises(bptt.BpttError, match="^dc_T: "):
        rnn_backward_truncated(np.zeros((4, B, N_A)), cache, 2, (a0, np.zeros((B + 1, N_A))))


def test_layer_truncation_rejects_bad_k(rng):
    p = make_params()
    X = rng.standard_normal((4, B, N_X))
    _, cache = bptt.rnn_forward(X, None, p)
    with pytest.raises(bptt.BpttError, match="k:"):
        rnn_backward_truncated(np.zeros((4, B, N_A)), cache, 0)
    with pytest.raises(bptt.BpttError, match="dA"):
        rnn_backward_truncated(np.zeros((3, B, N_A)), cache, 2)
