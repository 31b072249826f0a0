"""Checkpointed BPTT equals full BPTT, for every segment length, with masks, in float64."""

import numpy as np
import pytest

import bptt
from bptt.checkpointed import (
    checkpoint_interval,
    checkpointed_sequence_loss,
    rnn_backward_checkpointed,
    rnn_forward_checkpointed,
)
from tests.conftest import N_A, N_X, B, make_params, ragged_mask, rnn_inputs

T = 11  # prime, so most k leave a short last segment


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 10, 11, 50])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_layer_gradients_equal_full_bptt(rng, k, masked, activation):
    p = make_params()
    X, a0, dA, da_T = rnn_inputs(rng, T)
    mask = ragged_mask([11, 3, 8], T) if masked else None
    A, cache = bptt.rnn_forward(X, a0, p, mask=mask, activation=activation)
    dX, da0, grads = bptt.rnn_backward(dA, cache, da_T=da_T)

    a_T, ck = rnn_forward_checkpointed(X, a0, p, mask=mask, activation=activation, k=k)
    np.testing.assert_allclose(a_T, A[-1], rtol=0, atol=1e-14)
    dX_c, da0_c, grads_c = rnn_backward_checkpointed(dA, ck, da_T=da_T)
    np.testing.assert_allclose(dX_c, dX, rtol=0, atol=1e-12)
    np.testing.assert_allclose(da0_c, da0, rtol=0, atol=1e-12)
    for key in grads:
        np.testing.assert_allclose(grads_c[key], grads[key], rtol=0, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("k", [None, 1, 2, 3, 6, 11])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_sequence_loss_equals_full_bptt(rng, k, masked, output):
    n_y = 3
    p = make_params(n_y=n_y)
    X = rng.standard_normal((T, B, N_X))
    a0 = rng.standard_normal((B, N_A))
    if output == "softmax":
        Y = rng.integers(0, n_y, size=(T, B))
    else:
        Y = rng.integers(0, 2, size=(T, B, n_y)).astype(np.float64)
    mask = ragged_mask([4, 11, 9], T) if masked else None
    kw = dict(a0=a0, mask=mask, output=output, reduction="mean")
    L, grads = bptt.sequence_loss(p, X, Y, **kw)
    L_c, grads_c = checkpointed_sequence_loss(p, X, Y, k=k, **kw)
    assert L_c == pytest.approx(L, rel=1e-13)
    assert list(grads_c) == list(p)
    for key in p:
        np.testing.assert_allclose(grads_c[key], grads[key], rtol=0, atol=1e-12, err_msg=key)


def test_without_dX(rng):
    p = make_params()
    X = rng.standard_normal((T, B, N_X))
    dA = rng.standard_normal((T, B, N_A))
    _, ck = rnn_forward_checkpointed(X, None, p, k=4)
    dX, _, grads = rnn_backward_checkpointed(dA, ck, need_dX=False)
    assert dX is None
    _, cache = bptt.rnn_forward(X, None, p)
    _, _, full = bptt.rnn_backward(dA, cache)
    np.testing.assert_allclose(grads["W_aa"], full["W_aa"], rtol=0, atol=1e-12)


def test_stores_only_checkpoints_and_the_last_segment(rng):
    T_long, n_a = 100, N_A
    p = make_params()
    X = rng.standard_normal((T_long, B, N_X))
    _, ck = rnn_forward_checkpointed(X, None, p)
    assert ck.k == 10
    state = B * n_a * 8
    assert ck.checkpoints.shape == (10, B, n_a)
    assert ck.stored_bytes == (10 + 10) * state  # instead of 100 states


def test_interval_follows_the_memory_budget():
    T, state = 100, 4 * 8 * 8  # B = 4, n_a = 8, float64
    assert checkpoint_interval(T, 4, 8, 8) == 10
    assert checkpoint_interval(T, 4, 8, 8, memory_budget=(T + 1) * state) == T  # everything fits
    k = checkpoint_interval(T, 4, 8, 8, memory_budget=30 * state)
    assert (-(-T // k) + k) <= 30 and (-(-T // (k + 1)) + k + 1) > 30  # the largest k that fits
    assert checkpoint_interval(1, 4, 8, 8) == 1
    with pytest.raises(bptt.BpttError, match="memory_budget"):
        checkpoint_interval(T, 4, 8, 8, memory_budget=19 * state)  # 2√T = 20 states is the least
    with pytest.raises(bptt.BpttError, match="memory_budget"):
        checkpoint_interval(T, 4, 8, 8, memory_budget="1GB")


def test_budget_gives_the_same_gradients(rng):
    p = make_params(n_y=1)
    X = rng.standard_normal((T, B, N_X))
    Y = rng.integers(0, 2, size=(T, B)).astype(np.float64)
    L, grads = bptt.sequence_loss(p, X, Y)
    L_c, grads_c = checkpointed_sequence_loss(p, X, Y, memory_budget=9 * B * N_A * 8)
    assert L_c == pytest.approx(L, rel=1e-13)
    for key in p:
        np.testing.assert_allclose(grads_c[key], grads[key], rtol=0, atol=1e-12, err_msg=key)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, "k:"),
        ({"k": 1.5}, "k:"),
        ({"k": 2, "memory_budget": 10**6}, "k:"),
        ({"activation": "x"}, "activation"),
    ],
)
def test_bad_arguments_name_themselves(rng, kwargs, match):
    p = make_params()
    X = rng.standard_normal((T, B, N_X))
    with pytest.raises(bptt.BpttError, match=match):
        rnn_forward_checkpointed(X, None, p, **kwargs)
