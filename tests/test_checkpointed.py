"""Checkpointed BPTT equals full BPTT, for every cell and segment length, with masks, in float64."""

import numpy as np
import pytest

import bptt
from bptt.drivers.checkpointed import (
    checkpoint_interval,
    checkpointed_sequence_loss,
    rnn_backward_checkpointed,
    rnn_forward_checkpointed,
)
from tests.conftest import (
    N_A,
    N_X,
    B,
    initial_state,
    make_params,
    model_params,
    ragged_mask,
    random_labels,
    state_parts,
)

T = 11  # prime, so most k leave a short last segment


# (cell, activation): the vanilla cell with both of its g, and the gated cells
CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("gru", "tanh"), ("lstm", "tanh")]


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 10, 11, 50])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize(("cell", "activation"), CELLS)
def test_layer_gradients_equal_full_bptt(rng, k, masked, cell, activation):
    p = model_params(cell, rng)
    X = rng.standard_normal((T, B, N_X))
    state0, d_T = initial_state(cell, rng), initial_state(cell, rng)
    dA = rng.standard_normal((T, B, N_A))
    mask = ragged_mask([11, 3, 8], T) if masked else None
    kw = dict(mask=mask, activation=activation, cell=cell)
    A, cache = bptt.rnn_forward(X, state0, p, **kw)
    dX, d0, grads = bptt.rnn_backward(dA, cache, d_T)

    state_T, ck = rnn_forward_checkpointed(X, state0, p, k=k, **kw)
    last = (A[-1], cache.C[-1]) if cell == "lstm" else (A[-1],)
    for ours, theirs in zip(state_parts(cell, state_T), last, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-14)
    dX_c, d0_c, grads_c = rnn_backward_checkpointed(dA, ck, d_T)
    np.testing.assert_allclose(dX_c, dX, rtol=0, atol=1e-12)
    for ours, theirs in zip(state_parts(cell, d0_c), state_parts(cell, d0), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    assert list(grads_c) == list(grads)
    for key in grads:
        np.testing.assert_allclose(grads_c[key], grads[key], rtol=0, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("k", [None, 1, 2, 3, 6, 11])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_sequence_loss_equals_full_bptt(rng, k, masked, output, cell):
    n_y = 3
    p = model_params(cell, rng, n_y=n_y)
    X = rng.standard_normal((T, B, N_X))
    state0 = initial_state(cell, rng)
    Y = random_labels(rng, output, n_y, T, B)
    mask = ragged_mask([4, 11, 9], T) if masked else None
    kw = dict(a0=state0, mask=mask, output=output, reduction="mean", cell=cell)
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
    assert len(ck.checkpoints) == 1 and ck.checkpoints[0].shape == (10, B, n_a)
    assert ck.stored_bytes == (10 + 10) * state  # instead of 100 states


def test_a_pair_state_is_checkpointed_whole_and_counted_in_the_budget(rng):
    """An LSTM's checkpoints store a⟨t⟩ and c⟨t⟩; its states take twice the budget of a one-array state."""
    T_long, state = 100, B * 2 * N_A * 8  # bytes of one (a, c) state, float64
    p = model_params("lstm", rng)
    X = rng.standard_normal((T_long, B, N_X))
    A, cache = bptt.rnn_forward(X, None, p, cell="lstm")
    _, ck = rnn_forward_checkpointed(X, None, p, cell="lstm")
    assert ck.k == 10 and len(ck.checkpoints) == 2
    for i in range(1, 10):  # each segment starts from the state after step i·k − 1: both fields
        np.testing.assert_array_equal(ck.checkpoints[0][i], A[i * 10 - 1])
        np.testing.assert_array_equal(ck.checkpoints[1][i], cache.C[i * 10 - 1])
    assert ck.stored_bytes == (10 + 10) * state
    budget = 30 * state
    _, ck = rnn_forward_checkpointed(X, None, p, cell="lstm", memory_budget=budget)
    assert ck.stored_bytes <= budget and ck.k == checkpoint_interval(T_long, B, 2 * N_A, 8, budget)
    _, vanilla = rnn_forward_checkpointed(X, None, make_params(), memory_budget=budget)
    assert vanilla.k > ck.k  # half the state, more fits
    with pytest.raises(bptt.BpttError, match="memory_budget: .* too small"):
        rnn_forward_checkpointed(X, None, p, cell="lstm", memory_budget=19 * state)


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


def test_bad_cells_and_states_name_the_argument(rng):
    p = model_params("lstm", rng)
    X = rng.standard_normal((T, B, N_X))
    a0 = np.zeros((B, N_A))
    with pytest.raises(bptt.BpttError, match="^cell: .*'lstm2'"):
        rnn_forward_checkpointed(X, None, p, cell="lstm2")
    with pytest.raises(bptt.BpttError, match="^state0: an LSTM's state is a pair"):
        rnn_forward_checkpointed(X, a0, p, cell="lstm")
    with pytest.raises(bptt.BpttError, match=r"^params\['W_aa'\]: .*cell='lstm'"):
        rnn_forward_checkpointed(X, None, p)
    _, ck = rnn_forward_checkpointed(X, None, p, cell="lstm", k=3)
    with pytest.raises(bptt.BpttError, match="^d_state_T: an LSTM's state is a pair"):
        rnn_backward_checkpointed(np.zeros((T, B, N_A)), ck, a0)
