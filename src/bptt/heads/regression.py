"""The regression head: a linear output and the squared error, computed from the logits.

    ŷ⟨t⟩ = z_y⟨t⟩ = W_ya a⟨t⟩ + b_y          "linear": n_y real numbers
    L⟨t⟩ = ½ ‖ŷ⟨t⟩ − y⟨t⟩‖²                  ∂L⟨t⟩/∂z_y⟨t⟩ = ŷ⟨t⟩ − y⟨t⟩

The ½ gives the gradient the form of the sigmoid and softmax heads' (ŷ − y), so the three share
one backward. The mean squared error a task reports, ‖ŷ − y‖² / n_y, is 2 L⟨t⟩ / n_y.
Targets: Y (T, B, n_y) real numbers, or (T, B) when n_y = 1. Masked steps have L⟨t⟩ = 0 and no gradient.
PyTorch: ``torch.nn.Linear(n_a, n_y)`` and ``0.5 * torch.nn.functional.mse_loss(ŷ, y, reduction="sum")``.
"""

from __future__ import annotations

from ..errors import check_array


def check_targets(Y, n_y, sizes):
    """Check real-valued targets; return them as (T, B, n_y)."""
    if getattr(Y, "ndim", None) == 2 and n_y == 1:
        Y = Y[:, :, None]  # (T, B, 1)
    return check_array("Y", Y, ("T", "B", "n_y"), sizes=sizes)


def squared_error(Z_y, Y):
    """½ ‖z_y⟨t⟩ − y⟨t⟩‖² at every step and its gradient with respect to the logits.

    Shapes: Z_y (T, B, n_y); Y (T, B, n_y).
    Returns: L_t (T, B), dZ_y (T, B, n_y) = ∂(Σ L_t)/∂Z_y.
    """
    dZ_y = Z_y - Y.astype(Z_y.dtype, copy=False)  # backprop through ½‖ŷ − y‖²: ŷ − y
    L_t = 0.5 * (dZ_y * dZ_y).sum(axis=-1)
    return L_t, dZ_y
