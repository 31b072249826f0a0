"""Outputs and losses: exact and finite for huge logits, gradient ŷ − y."""

import numpy as np
import pytest

import bptt
from bptt.heads.classification import step_losses

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("z", [1e4, -1e4, 0.0, 30.0, -745.0])
@pytest.mark.parametrize("y", [0.0, 1.0])
def test_logistic_loss_is_exact_for_extreme_logits(z, y):
    Z = np.full((1, 1, 1), z)
    L_t, dZ = step_losses(Z, np.full((1, 1, 1), y), "sigmoid")
    ref = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(z, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    )
    assert np.isfinite(L_t).all() and np.isfinite(dZ).all()
    assert L_t[0, 0] == pytest.approx(ref.item(), rel=1e-12, abs=1e-300)
    assert dZ[0, 0, 0] == pytest.approx(1 / (1 + np.exp(-z)) - y if abs(z) < 700 else float(z > 0) - y)


def test_logistic_loss_wrong_side_grows_linearly():
    L_t, _ = step_losses(np.array([[[1e4]]]), np.array([[[0.0]]]), "sigmoid")
    assert L_t[0, 0] == 1e4  # −log(1 − σ(1e4)) = 1e4 + log(1 + e^−1e4), exactly 1e4 in float64


def test_softmax_loss_matches_torch_for_extreme_logits(rng):
    Z = rng.standard_normal((3, 2, 5)) * 1e4
    Y = rng.integers(0, 5, size=(3, 2))
    L_t, dZ = step_losses(Z, Y, "softmax")
    Zt = torch.tensor(Z, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(Zt.reshape(6, 5), torch.tensor(Y).reshape(6), reduction="none")
    ref.sum().backward()
    np.testing.assert_allclose(L_t.reshape(6), ref.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(dZ, Zt.grad.numpy(), atol=1e-12)


def test_masked_steps_have_no_loss_and_no_gradient(rng):
    Z = rng.standard_normal((4, 2, 1))
    Y = rng.integers(0, 2, size=(4, 2, 1))
    mask = np.array([[1, 1], [1, 0], [0, 0], [0, 0]], dtype=bool)
    L_t, dZ = step_losses(Z, Y, "sigmoid", mask)
    assert (L_t[~mask] == 0).all() and (dZ[~mask] == 0).all()
    assert (L_t[mask] > 0).all()


def test_output_forward_probabilities(rng):
    A = rng.standard_normal((3, 2, 4))
    p = {"W_ya": rng.standard_normal((5, 4)), "b_y": rng.standard_normal(5)}
    P = bptt.output_forward(A, p, "softmax")
    np.testing.assert_allclose(P.sum(-1), 1.0, atol=1e-12)
    S = bptt.output_forward(A, p, "sigmoid")
    np.testing.assert_allclose(S, 1 / (1 + np.exp(-(A @ p["W_ya"].T + p["b_y"]))), atol=1e-12)
