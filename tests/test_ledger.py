"""The per-step gradient ledger: contributions add up to BPTT's gradients, the reach is exact."""

import numpy as np
import pytest

import bptt
from bptt.ledger import jacobian_reach, reach_by_distance
from bptt.rnn import ACTIVATIONS
from tests.conftest import N_A, N_X, N_Y, B, T, make_params, ragged_mask


def _batch(rng, output, T=T, B=B, n_y=N_Y):
    X = rng.standard_normal((T, B, N_X))
    if output == "softmax":
        Y = rng.integers(0, n_y, size=(T, B))
    else:
        Y = rng.integers(0, 2, size=(T, B, n_y)).astype(np.float64)
    return X, Y


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_contributions_sum_to_sequence_loss_gradients(rng, output, activation, masked, reduction):
    p = make_params()
    X, Y = _batch(rng, output)
    a0 = 0.3 * rng.standard_normal((B, N_A))
    mask = ragged_mask([T, 2, 4], T) if masked else None
    L, grads, M = bptt.sequence_loss(
        p, X, Y, a0, mask, output, activation, reduction=reduction, return_messages=True
    )
    led = bptt.ledger(p, X, Y, a0, mask, output, activation, reduction=reduction)
    assert led.L == pytest.approx(L, rel=1e-12)
    np.testing.assert_allclose(led.messages, M, rtol=0, atol=1e-12)
    assert list(led.contributions) == list(p)
    for k in p:
        assert led.contributions[k].shape == (T, *p[k].shape)
        np.testing.assert_allclose(led.contributions[k].sum(axis=0), grads[k], rtol=0, atol=1e-12)
        np.testing.assert_allclose(led.grads[k], grads[k], rtol=0, atol=1e-12)
    assert led.L_t.shape == (T, B) and led.Y_hat.shape == (T, B, N_Y) and led.reach.shape == (T, B)
    if masked:  # a padded step adds nothing and has no loss
        assert np.all(led.L_t[2:, 1] == 0) and np.all(led.dZ[4:, 1:] == 0)


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


def test_contribution_of_one_step_is_that_steps_share(rng):
    """dW⁽ᵗ⁾ is the gradient when only the t-th copy of the shared weight may change."""
    p = make_params()
    X, Y = _batch(rng, "softmax")
    led = bptt.ledger(p, X, Y, output="softmax")
    t, eps = 2, 1e-6
    E = rng.standard_normal(p["W_aa"].shape)  # a random direction for the t-th copy only

    def loss_with_copy(delta):
        A = np.empty((T, B, N_A))
        a = np.zeros((B, N_A))
        for s in range(T):
            W = p["W_aa"] + delta * E if s == t else p["W_aa"]
            a = np.tanh(X[s] @ p["W_ax"].T + a @ W.T + p["b_a"])
            A[s] = a
        L_t, _ = bptt.step_losses(bptt.output_logits(A, p), Y, "softmax")
        return L_t.sum()

    numeric = (loss_with_copy(eps) - loss_with_copy(-eps)) / (2 * eps)
    assert np.sum(led.contributions["W_aa"][t] * E) == pytest.approx(numeric, rel=1e-6)


def _reach_fd(p, X, a0, mask, t, eps=1e-6, ord=2):
    """‖∂a⟨T⟩/∂a⟨t⟩‖ by central differences, running steps t+1 … T again from a perturbed a⟨t⟩."""
    A, _ = bptt.rnn_forward(X, a0, p, mask)
    T, B, n_a = A.shape
    out = np.empty(B)
    for b in range(B):
        J = np.empty((n_a, n_a))
        m = None if mask is None else mask[t:, b : b + 1]
        for i in range(n_a):
            e = np.zeros((1, n_a))
            e[0, i] = eps
            plus, _ = bptt.rnn_forward(X[t:, b : b + 1], A[t - 1, b : b + 1] + e, p, m)
            minus, _ = bptt.rnn_forward(X[t:, b : b + 1], A[t - 1, b : b + 1] - e, p, m)
            J[:, i] = (plus[-1, 0] - minus[-1, 0]) / (2 * eps)
        out[b] = np.linalg.norm(J, ord=ord)
    return out


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("norm", ["spectral", "fro"])
def test_reach_against_finite_differences(rng, masked, norm):
    p = make_params(scale=0.8)
    X, Y = _batch(rng, "sigmoid")
    a0 = 0.3 * rng.standard_normal((B, N_A))
    mask = ragged_mask([T, 2, 4], T) if masked else None
    led = bptt.ledger(p, X, Y, a0, mask, norm=norm)
    assert led.norm == norm
    np.testing.assert_allclose(led.reach[-1], 1.0 if norm == "spectral" else np.sqrt(N_A), rtol=1e-12)
    for t in range(1, T):  # a⟨1⟩ … a⟨T−1⟩
        fd = _reach_fd(p, X, a0, mask, t, ord=2 if norm == "spectral" else "fro")
        np.testing.assert_allclose(led.reach[t - 1], fd, rtol=1e-6)


def test_reach_against_torch_jacobian(rng):
    torch = pytest.importorskip("torch")
    p = make_params(scale=0.8)
    X, Y = _batch(rng, "sigmoid", B=1)
    led = bptt.ledger(p, X, Y)
    W_ax, W_aa, b_a = (torch.from_numpy(p[k]) for k in ("W_ax", "W_aa", "b_a"))
    Xt = torch.from_numpy(X[:, 0])
    A, _ = bptt.rnn_forward(X, None, p)
    for t in range(1, T):

        def last_state(a_t, t=t):  # a⟨T⟩ as a function of a⟨t⟩
            a = a_t
            for s in range(t, T):
                a = torch.tanh(W_ax @ Xt[s] + W_aa @ a + b_a)
            return a

        J = torch.autograd.functional.jacobian(last_state, torch.from_numpy(A[t - 1, 0]))
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
    small = jacobian_reach(A, 0.5 * Q, g_prime)
    big = jacobian_reach(A, 1.5 * Q, g_prime)
    np.testing.assert_allclose(small[0], 0.5 ** (T_long - 1), rtol=1e-8)  # orthogonal Q: exact powers
    np.testing.assert_allclose(big[0], 1.5 ** (T_long - 1), rtol=1e-8)


def test_reach_by_distance_aligns_ragged_sequences():
    reach = np.array([[0.1, 0.5], [0.2, 1.0], [1.0, 1.0]])  # (T=3, B=2); entry 1 has length 2
    mask = ragged_mask([3, 2], 3)
    np.testing.assert_allclose(reach_by_distance(reach, mask), [1.0, (0.2 + 0.5) / 2, 0.1])
    np.testing.assert_allclose(reach_by_distance(reach), [1.0, 0.6, 0.3])


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
