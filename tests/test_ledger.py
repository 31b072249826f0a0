"""The per-step gradient ledger, every cell: contributions add up to BPTT's gradients, the reach is exact."""

import numpy as np
import pytest

import bptt
from bptt.diagnostics.ledger import jacobian_reach, reach_by_distance
from bptt.drivers.rnn import ACTIVATIONS, RNNCache
from tests.conftest import (
    N_A,
    N_X,
    N_Y,
    B,
    T,
    initial_state,
    make_params,
    model_params,
    ragged_mask,
    random_labels,
    state_parts,
)

# (cell, activation): the vanilla cell with both of its g, and the gated cells
CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("gru", "tanh"), ("lstm", "tanh")]


def _batch(rng, output, T=T, B=B, n_y=N_Y):
    X = rng.standard_normal((T, B, N_X))
    Y = random_labels(rng, output, n_y, T, B)
    return X, Y


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize(("cell", "activation"), CELLS)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_contributions_sum_to_sequence_loss_gradients(rng, output, cell, activation, masked, reduction):
    p = model_params(cell, rng)
    X, Y = _batch(rng, output)
    state0 = tuple(0.3 * s for s in state_parts(cell, initial_state(cell, rng)))
    state0 = state0 if cell == "lstm" else state0[0]
    mask = ragged_mask([T, 2, 4], T) if masked else None
    kw = dict(reduction=reduction, cell=cell)
    L, grads, M = bptt.sequence_loss(p, X, Y, state0, mask, output, activation, return_messages=True, **kw)
    led = bptt.ledger(p, X, Y, state0, mask, output, activation, **kw)
    assert led.L == pytest.approx(L, rel=1e-12)
    messages = (led.messages, led.messages_c) if cell == "lstm" else (led.messages,)
    assert led.messages_c is None or cell == "lstm"
    for ours, theirs in zip(messages, state_parts(cell, M), strict=True):  # ∂L/∂a⟨t⟩, and ∂L/∂c⟨t⟩
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    assert list(led.contributions) == list(p)  # every parameter, the GRU's b_hn too
    for k in p:
        assert led.contributions[k].shape == (T, *p[k].shape)
        np.testing.assert_allclose(led.contributions[k].sum(axis=0), grads[k], rtol=0, atol=1e-12)
        np.testing.assert_allclose(led.grads[k], grads[k], rtol=0, atol=1e-12)
    assert led.L_t.shape == (T, B) and led.Y_hat.shape == (T, B, N_Y) and led.reach.shape == (T, B)
    if masked:  # a padded step has no loss
        assert np.all(led.L_t[2:, 1] == 0)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_a_step_every_sequence_skips_adds_nothing(rng, cell):
    p = model_params(cell, rng)
    X, Y = _batch(rng, "sigmoid")
    mask = ragged_mask([T - 1, 2, 4], T)  # no sequence reaches the last step
    led = bptt.ledger(p, X, Y, mask=mask, cell=cell)
    for k, share in led.contributions.items():
        assert np.all(share[-1] == 0), k
        assert np.any(share[1] != 0), k


def test_per_step_losses_and_outputs(rng):
    p = make_params(n_y=1)
    X, _ = _batch(rng, "sigmoid", n_y=1)
    Y = rng.integers(0, 2, size=(T, B)).astype(np.float64)
    led = bptt.ledger(p, X, Y)
    A, _ = bptt.rnn_forward(X, None, p)
    y_hat = bptt.output_forward(A, p)[:, :, 0]
    np.testing.assert_allclose(led.Y_hat[:, :, 0], y_hat, atol=1e-14)
    L_t = -(Y * np.log(y_hat) + (1 - Y) * np.log(1 - y_hat))  # the lecture's cross-entropy, per step
    np.testing.assert_allclose(led.L_t, L_t, atol=1e-12)
    assert led.L == pytest.approx(L_t.sum(), rel=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_contribution_of_one_step_is_that_steps_share(rng, cell):
    """dW⁽ᵗ⁾ is the gradient when only the t-th copy of the shared weight may change, for every parameter."""
    p = model_params(cell, rng)
    X, Y = _batch(rng, "softmax")
    state0 = initial_state(cell, rng)
    led = bptt.ledger(p, X, Y, state0, output="softmax", cell=cell)
    t, eps = 2, 1e-6
    keys = bptt.get_cell(cell).keys

    def loss_with_copy(key, E, delta):  # the T steps one at a time; step t with its copy of ``key`` moved
        A, state = np.empty((T, B, N_A)), state0
        for s in range(T):
            q = {k: p[k] + delta * E if (s == t and k == key) else p[k] for k in keys}
            A_s, cache = bptt.rnn_forward(X[s : s + 1], state, q, cell=cell)
            A[s], state = A_s[0], (A_s[-1], cache.C[-1]) if cell == "lstm" else A_s[-1]
        L_t, _ = bptt.step_losses(bptt.output_logits(A, p), Y, "softmax")
        return L_t.sum()

    for key in keys:
        E = rng.standard_normal(p[key].shape)  # a random direction for the t-th copy only
        numeric = (loss_with_copy(key, E, eps) - loss_with_copy(key, E, -eps)) / (2 * eps)
        assert np.sum(led.contributions[key][t] * E) == pytest.approx(numeric, rel=1e-6), key


def _flat(cell, state):
    """The state as one (B, n_s) array: a, or [a | c]."""
    return np.concatenate(state_parts(cell, state), axis=1)


def _state(cell, flat):
    """The state from one (B, n_s) array."""
    return (flat[:, :N_A], flat[:, N_A:]) if cell == "lstm" else flat


def _reach_fd(cell, p, X, state0, mask, t, eps=1e-6, ord=2):
    """‖∂s⟨T⟩/∂s⟨t⟩‖ by central differences, running steps t+1 … T again from a perturbed s⟨t⟩."""
    c = bptt.get_cell(cell)
    _, cache = bptt.rnn_forward(X, state0, p, mask, cell=cell)
    s_t = _flat(cell, c.state_before(cache, t))  # (B, n_s): the state after step t
    n_s = s_t.shape[1]

    def last(flat):
        _, rest = bptt.rnn_forward(
            X[t:], _state(cell, flat), p, None if mask is None else mask[t:], cell=cell
        )
        return _flat(cell, c.state_before(rest, T - t))

    J = np.empty((B, n_s, n_s))
    for i in range(n_s):
        e = np.zeros_like(s_t)
        e[:, i] = eps
        J[:, :, i] = (last(s_t + e) - last(s_t - e)) / (2 * eps)
    return np.linalg.norm(J, ord=ord, axis=(1, 2))


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("norm", ["spectral", "fro"])
def test_reach_against_finite_differences(rng, cell, masked, norm):
    p = model_params(cell, rng, scale=0.8)
    X, Y = _batch(rng, "sigmoid")
    state0 = initial_state(cell, rng)
    mask = ragged_mask([T, 2, 4], T) if masked else None
    led = bptt.ledger(p, X, Y, state0, mask, norm=norm, cell=cell)
    assert led.norm == norm and led.reach.dtype == np.float64
    n_s = bptt.get_cell(cell).state_size(N_A)
    np.testing.assert_allclose(led.reach[-1], 1.0 if norm == "spectral" else np.sqrt(n_s), rtol=1e-12)
    for t in range(1, T):  # s⟨1⟩ … s⟨T−1⟩
        fd = _reach_fd(cell, p, X, state0, mask, t, ord=2 if norm == "spectral" else "fro")
        np.testing.assert_allclose(led.reach[t - 1], fd, rtol=1e-6)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_reach_against_torch_jacobian(rng, cell):
    """‖∂s⟨T⟩/∂s⟨t⟩‖ against autograd's Jacobian through the torch twin (the whole (a, c) for the LSTM)."""
    torch = pytest.importorskip("torch")
    from tests.helpers import torch_twin

    p = model_params(cell, rng, scale=0.8)
    X, Y = _batch(rng, "sigmoid", B=1)
    led = bptt.ledger(p, X, Y, cell=cell)
    module = torch_twin(cell, p)
    Xt = torch.from_numpy(X)
    c = bptt.get_cell(cell)
    _, cache = bptt.rnn_forward(X, None, p, cell=cell)
    for t in range(1, T):

        def last_state(s, t=t):  # s⟨T⟩ as a function of s⟨t⟩, both flat
            hx = (s[None, None, :N_A], s[None, None, N_A:]) if cell == "lstm" else s[None, None]
            _, hx = module(Xt[t:], hx)
            return torch.cat([h[0, 0] for h in hx]) if cell == "lstm" else hx[0, 0]

        s_t = torch.from_numpy(_flat(cell, c.state_before(cache, t))[0])
        J = torch.autograd.functional.jacobian(last_state, s_t)
        assert led.reach[t - 1, 0] == pytest.approx(torch.linalg.matrix_norm(J, ord=2).item(), rel=1e-10)


def test_reach_worked_example_one_unit():
    """n_a = 1: ∂a⟨T⟩/∂a⟨t⟩ = Π_{s=t+1..T} w (1 − a⟨s⟩²), by hand."""
    p = {"W_ax": np.array([[1.0]]), "W_aa": np.array([[0.9]]), "b_a": np.array([0.1])}
    p.update(W_ya=np.array([[1.0]]), b_y=np.array([0.0]))
    X = np.array([0.5, -1.0, 2.0, 0.0])[:, None, None]  # (T=4, B=1, 1)
    led = bptt.ledger(p, X, np.zeros((4, 1)))
    a = led.A[:, 0, 0]
    factors = 0.9 * (1 - a**2)  # J_s for s = 1 … 4
    expected = [factors[1] * factors[2] * factors[3], factors[2] * factors[3], factors[3], 1.0]
    np.testing.assert_allclose(led.reach[:, 0], expected, rtol=1e-14)


def test_reach_vanishes_and_explodes():
    rng = np.random.default_rng(0)
    n_a, T_long = 8, 30
    Q, _ = np.linalg.qr(rng.standard_normal((n_a, n_a)))
    g_prime = ACTIVATIONS["relu"][1]
    A = np.abs(rng.standard_normal((T_long, 2, n_a))) + 0.1  # relu′ = 1 everywhere: J = W_aa
    cell = bptt.get_cell("rnn", "relu")
    small = jacobian_reach(cell, RNNCache(None, None, A, None, {"W_aa": 0.5 * Q}, g_prime))
    big = jacobian_reach(cell, RNNCache(None, None, A, None, {"W_aa": 1.5 * Q}, g_prime))
    np.testing.assert_allclose(small[0], 0.5 ** (T_long - 1), rtol=1e-8)  # orthogonal Q: exact powers
    np.testing.assert_allclose(big[0], 1.5 ** (T_long - 1), rtol=1e-8)


def test_reach_by_distance_aligns_ragged_sequences():
    reach = np.array([[0.1, 0.5], [0.2, 1.0], [1.0, 1.0]])  # (T=3, B=2); entry 1 has length 2
    mask = ragged_mask([3, 2], 3)
    np.testing.assert_allclose(reach_by_distance(reach, mask), [1.0, (0.2 + 0.5) / 2, 0.1])
    np.testing.assert_allclose(reach_by_distance(reach), [1.0, 0.6, 0.3])


def test_ledger_errors_name_the_argument_for_every_cell(rng):
    gru = model_params("gru", rng)
    X, Y = _batch(rng, "sigmoid")
    with pytest.raises(bptt.BpttError, match="^cell: .*'elman'"):
        bptt.ledger(gru, X, Y, cell="elman")
    with pytest.raises(bptt.BpttError, match="^state0: an LSTM's state is a pair"):
        bptt.ledger(model_params("lstm", rng), X, Y, np.zeros((B, N_A)), cell="lstm")
    with pytest.raises(bptt.BpttError, match=r"^params\['W_aa'\]: .*a GRU's: pass cell='gru'"):
        bptt.ledger(gru, X, Y, cell="lstm")
    with pytest.raises(bptt.BpttError, match=r"^params: missing key\(s\) b_hn"):
        bptt.ledger({k: v for k, v in gru.items() if k != "b_hn"}, X, Y, cell="gru")


def test_ledger_errors_name_the_argument(rng):
    p = make_params()
    X, Y = _batch(rng, "sigmoid")
    with pytest.raises(bptt.BpttError, match="norm"):
        bptt.ledger(p, X, Y, norm="nuclear")
    with pytest.raises(bptt.BpttError, match="params"):
        bptt.ledger({k: p[k] for k in ("W_ax", "W_aa", "b_a")}, X, Y)
    with pytest.raises(bptt.BpttError, match="X"):
        bptt.ledger(p, X[0], Y)
    with pytest.raises(bptt.BpttError, match="Y"):
        bptt.ledger(p, X, Y[:, :2])
