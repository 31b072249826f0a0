"""Truncated BPTT: k = T is full BPTT; every truncation equals a graph cut by torch's detach()."""

import numpy as np
import pytest

import bptt
from bptt.truncated import rnn_backward_truncated, truncated_sequence_loss
from tests.conftest import N_A, N_X, B, make_params, ragged_mask, rnn_inputs
from tests.helpers import torch_rnn, torch_rnn_grads

torch = pytest.importorskip("torch")

RNN = ("W_ax", "W_aa", "b_a")


@pytest.mark.parametrize("masked", [False, True])
def test_k1_equal_k2_equal_T_is_full_bptt_exactly(rng, masked):
    T, n_y = 9, 3
    p = make_params(n_y=n_y)
    X = rng.standard_normal((T, B, N_X))
    Y = rng.integers(0, n_y, size=(T, B))
    a0 = rng.standard_normal((B, N_A))
    mask = ragged_mask([9, 4, 7], T) if masked else None
    L, grads = bptt.sequence_loss(p, X, Y, a0=a0, mask=mask, output="softmax")
    L_tr, g_tr, a_T = truncated_sequence_loss(p, X, Y, T, T, a0=a0, mask=mask, output="softmax")
    assert L_tr == L
    for k in p:
        np.testing.assert_array_equal(g_tr[k], grads[k], err_msg=k)
    A, _ = bptt.rnn_forward(X, a0, {k: p[k] for k in RNN}, mask=mask)
    np.testing.assert_array_equal(a_T, A[-1])


def test_layer_truncation_with_k_at_least_T_is_full_bptt(rng):
    T = 7
    p = make_params()
    X, a0, dA, da_T = rnn_inputs(rng, T)
    _, cache = bptt.rnn_forward(X, a0, p)
    full = bptt.rnn_backward(dA, cache, da_T=da_T)
    for k in (T, T + 3):
        dX, da0, grads = rnn_backward_truncated(dA, cache, k, da_T=da_T)
        np.testing.assert_array_equal(dX, full[0])
        np.testing.assert_array_equal(da0, full[1])
        for key in grads:
            np.testing.assert_array_equal(grads[key], full[2][key])


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("masked", [False, True])
def test_layer_truncation_matches_torch_detached_chunks(rng, k, masked):
    """Every k steps the state is detached in torch: that is exactly the cut message."""
    T = 11
    p = make_params()
    X = rng.standard_normal((T, B, N_X))
    a0 = rng.standard_normal((B, N_A))
    R = rng.standard_normal((T, B, N_A))
    lengths = [11, 6, 9] if masked else [T] * B
    mask = ragged_mask(lengths, T) if masked else None
    A, cache = bptt.rnn_forward(X, a0, p, mask=mask)
    dX, da0, grads = rnn_backward_truncated(R * (mask[:, :, None] if masked else 1), cache, k)

    rnn = torch_rnn(p)
    Xt = torch.tensor(X, requires_grad=True)
    a0t = torch.tensor(a0, requires_grad=True)
    for b, n in enumerate(lengths):  # one sequence at a time: torch has no per-step mask
        h = a0t[b : b + 1][None]  # (1, 1, n_a)
        for s in range(0, n, k):
            out, h = rnn(Xt[s : min(s + k, n), b : b + 1], h)
            (out * torch.from_numpy(R[s : min(s + k, n), b : b + 1])).sum().backward(retain_graph=True)
            h = h.detach()  # the cut at the chunk boundary
    g_ref = torch_rnn_grads(rnn)
    for key in RNN:
        np.testing.assert_allclose(grads[key], g_ref[key], rtol=1e-10, atol=1e-12, err_msg=key)
    np.testing.assert_allclose(dX, Xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(da0, a0t.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("k1", "k2"), [(1, 1), (2, 2), (3, 3), (2, 5), (3, 4), (4, 13), (13, 13)])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_bptt_k1_k2_matches_torch_windows(rng, k1, k2, reduction):
    """Reference: every k1 steps, rerun the last k2 steps from a detached state and backward."""
    T, n_y = 13, 3
    p = make_params(n_y=n_y)
    X = rng.standard_normal((T, B, N_X))
    Y = rng.integers(0, n_y, size=(T, B))
    a0 = rng.standard_normal((B, N_A))
    L, grads, a_T = truncated_sequence_loss(p, X, Y, k1, k2, a0=a0, output="softmax", reduction=reduction)

    rnn = torch_rnn(p)
    W_ya = torch.tensor(p["W_ya"], requires_grad=True)
    b_y = torch.tensor(p["b_y"], requires_grad=True)
    Xt = torch.from_numpy(X)
    with torch.no_grad():
        states, _ = rnn(Xt, torch.from_numpy(a0)[None])  # a⟨1⟩ … a⟨T⟩, no graph
    L_ref = 0.0
    for s in range(0, T, k1):
        e = min(s + k1, T)
        w = max(0, e - k2)
        h = (torch.from_numpy(a0) if w == 0 else states[w - 1]).detach()[None]
        out, _ = rnn(Xt[w:e], h)
        Z = out[s - w :] @ W_ya.T + b_y  # only this update's own steps have losses
        loss = torch.nn.functional.cross_entropy(
            Z.reshape(-1, n_y), torch.from_numpy(Y[s:e].reshape(-1)), reduction="sum"
        )
        if reduction == "mean":
            loss = loss / B
        loss.backward()
        L_ref += loss.item()
    g_ref = {**torch_rnn_grads(rnn), "W_ya": W_ya.grad.numpy(), "b_y": b_y.grad.numpy()}
    assert L == pytest.approx(L_ref, rel=1e-12)
    for key in p:
        np.testing.assert_allclose(grads[key], g_ref[key], rtol=1e-10, atol=1e-12, err_msg=key)
    np.testing.assert_allclose(a_T, states[-1, :].numpy(), atol=1e-13)


def test_stream_in_pieces_carries_the_state(rng):
    """Feeding a stream in two calls, passing a_T on, equals one call when pieces align with k1."""
    T, k1, k2 = 12, 3, 3
    p = make_params(n_y=1)
    X = rng.standard_normal((T, B, N_X))
    Y = rng.integers(0, 2, size=(T, B)).astype(np.float64)
    L, grads, a_T = truncated_sequence_loss(p, X, Y, k1, k2)
    L1, g1, a_mid = truncated_sequence_loss(p, X[:6], Y[:6], k1, k2)
    L2, g2, a_end = truncated_sequence_loss(p, X[6:], Y[6:], k1, k2, a0=a_mid)
    assert L == pytest.approx(L1 + L2, rel=1e-13)
    np.testing.assert_allclose(a_end, a_T, atol=1e-14)
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


def test_layer_truncation_rejects_bad_k(rng):
    p = make_params()
    X = rng.standard_normal((4, B, N_X))
    _, cache = bptt.rnn_forward(X, None, p)
    with pytest.raises(bptt.BpttError, match="k:"):
        rnn_backward_truncated(np.zeros((4, B, N_A)), cache, 0)
    with pytest.raises(bptt.BpttError, match="dA"):
        rnn_backward_truncated(np.zeros((3, B, N_A)), cache, 2)
