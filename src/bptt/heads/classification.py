"""Per-step outputs and the per-step losses, computed from the logits.

    z_y⟨t⟩ = W_ya a⟨t⟩ + b_y
    ŷ⟨t⟩   = σ(z_y⟨t⟩)             "sigmoid": one independent yes/no per output unit
    ŷ⟨t⟩   = softmax(z_y⟨t⟩)       "softmax": one class out of n_y
    ŷ⟨t⟩   = z_y⟨t⟩                "linear": n_y real numbers, squared error (``bptt.heads.regression``)

    sigmoid: L⟨t⟩ = −y log ŷ − (1 − y) log(1 − ŷ)  = max(z, 0) − z y + log(1 + e^−|z|)
    softmax: L⟨t⟩ = −log ŷ_y                        = logsumexp(z) − z_y

Both right-hand forms are exact and finite for logits of any size (±1e4 included),
and both have the same gradient form: ∂L⟨t⟩/∂z_y⟨t⟩ = ŷ⟨t⟩ − y⟨t⟩ (y one-hot for softmax).

Labels: sigmoid takes Y (T, B, n_y) of 0/1, or (T, B) when n_y = 1; softmax takes
integer class ids Y (T, B); linear takes real numbers, shaped as sigmoid's labels. Masked steps
have L⟨t⟩ = 0 and no gradient. Where the loss is taken (every step, the last, chosen steps) is
``bptt.heads.placement``'s.
PyTorch: ``torch.nn.Linear(n_a, n_y)`` with ``weight = W_ya``, ``bias = b_y``.
"""

from __future__ import annotations

import numpy as np

from ..backend import array_namespace
from ..drivers.rnn import check_mask
from ..errors import BpttError, check_array, check_choice
from .regression import check_targets, squared_error

OUTPUTS = ("sigmoid", "softmax", "linear")
HEAD_KEYS = ("W_ya", "b_y")


def output_logits(A, params):
    """z_y⟨t⟩ = W_ya a⟨t⟩ + b_y for every step, in one GEMM.

    Shapes: A (T, B, n_a).
    Returns: Z_y (T, B, n_y).
    """
    T, B, n_a = A.shape
    Z_y = A.reshape(T * B, n_a) @ params["W_ya"].T + params["b_y"]  # (T*B, n_y)
    return Z_y.reshape(T, B, -1)  # (T, B, n_y)


def sigmoid(z):
    """σ(z) without overflow for large |z|."""
    z = z if hasattr(z, "dtype") else np.asarray(z, dtype=float)  # a list or a number, as NumPy takes it
    xp = array_namespace(z)
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))


def softmax(z):
    """Softmax over the last axis, shifted by the max for stability."""
    z = z if hasattr(z, "dtype") else np.asarray(z, dtype=float)
    xp = array_namespace(z)
    e = xp.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def output_forward(A, params, output="sigmoid"):
    """ŷ⟨t⟩ for every step.

    Shapes: A (T, B, n_a).
    Returns: Y_hat (T, B, n_y): probabilities, or the linear head's values.
    """
    check_choice("output", output, OUTPUTS)
    check_array("A", A, ("T", "B", "n_a"))
    check_head_params(params, {"n_a": A.shape[2]})
    return output_values(output_logits(A, params), output)


def output_values(Z_y, output):
    """ŷ from the logits: σ, softmax, or the logits themselves for the linear head."""
    return sigmoid(Z_y) if output == "sigmoid" else softmax(Z_y) if output == "softmax" else Z_y


def check_head_params(params, sizes):
    """Check W_ya (n_y, n_a) and b_y (n_y,) against the sizes already known; fill in n_y."""
    if not isinstance(params, dict):
        raise BpttError(f"params: expected a dict of arrays, got {type(params).__name__}")
    missing = [k for k in HEAD_KEYS if params.get(k) is None]
    if missing:
        raise BpttError(f"params: missing key(s) {', '.join(missing)}")
    check_array("params['W_ya']", params["W_ya"], ("n_y", "n_a"), sizes=sizes)
    check_array("params['b_y']", params["b_y"], ("n_y",), sizes=sizes)


def check_labels(Y, output, n_y, sizes):
    """Check labels against the output kind; return them in the loss's layout."""
    if not hasattr(Y, "shape") or not hasattr(Y, "dtype"):
        raise BpttError(f"Y: expected an array, got {type(Y).__name__}")
    if output == "softmax":
        check_array("Y", Y, ("T", "B"), sizes=sizes, floating=False, finite=False)
        if Y.dtype.kind not in "iu":
            raise BpttError(f"Y: softmax output needs integer class ids, got dtype {Y.dtype}")
        if Y.size and (int(Y.min()) < 0 or int(Y.max()) >= n_y):
            raise BpttError(f"Y: class ids must lie in [0, {n_y}), got {int(Y.min())}..{int(Y.max())}")
        return Y
    if output == "linear":
        return check_targets(Y, n_y, sizes)
    if Y.ndim == 2 and n_y == 1:
        Y = Y[:, :, None]  # (T, B, 1)
    check_array("Y", Y, ("T", "B", "n_y"), sizes=sizes, floating=False)
    if Y.dtype.kind not in "biuf" or not bool(((Y == 0) | (Y == 1)).all()):
        raise BpttError("Y: sigmoid output needs labels of 0 or 1")
    return Y


def step_losses(Z_y, Y, output="sigmoid", mask=None):
    """The loss at every step and its gradient with respect to the logits.

    Shapes: Z_y (T, B, n_y); Y (T, B, n_y) 0/1 for sigmoid, real for linear, (T, B) ints for softmax;
    mask (T, B) bool or None.
    Returns: L_t (T, B) with zeros at masked steps, dZ_y (T, B, n_y) = ∂(Σ L_t)/∂Z_y.
    Non-finite logits are not an error: they give a non-finite loss, which training skips.
    """
    check_choice("output", output, OUTPUTS)
    sizes = {}
    check_array("Z_y", Z_y, ("T", "B", "n_y"), sizes=sizes, finite=False)
    Y = check_labels(Y, output, sizes["n_y"], sizes)
    if mask is not None:
        mask = check_mask(mask, sizes)
    return _step_losses(Z_y, Y, output, mask)


def _step_losses(Z_y, Y, output, mask):
    """``step_losses`` without the checks: Y in the loss's layout, mask bool or None."""
    xp = array_namespace(Z_y)
    if output == "sigmoid":
        Y = Y.astype(Z_y.dtype, copy=False)
        # −y log σ(z) − (1 − y) log(1 − σ(z)), rewritten to stay finite for any z
        L_t = (xp.maximum(Z_y, 0) - Z_y * Y + xp.log1p(xp.exp(-xp.abs(Z_y)))).sum(axis=-1)
        dZ_y = sigmoid(Z_y) - Y  # backprop through the logistic loss and σ
    elif output == "linear":
        L_t, dZ_y = squared_error(Z_y, Y)
    else:
        shifted = Z_y - Z_y.max(axis=-1, keepdims=True)  # (T, B, n_y)
        log_norm = xp.log(xp.exp(shifted).sum(axis=-1))  # (T, B)
        picked = xp.take_along_axis(shifted, Y[:, :, None], axis=-1)[:, :, 0]  # (T, B)
        L_t = log_norm - picked
        dZ_y = xp.exp(shifted - log_norm[:, :, None])  # softmax ŷ⟨t⟩
        T, B, n_y = Z_y.shape
        # backprop through softmax + cross-entropy: ŷ − onehot(y)
        dZ_y.reshape(T * B, n_y)[xp.arange(T * B), Y.reshape(T * B)] -= 1
    if mask is not None:
        L_t = L_t * mask
        dZ_y = dZ_y * mask[:, :, None]  # masked steps: no loss, no gradient
    return L_t, dZ_y


def output_backward(dZ_y, A, params):
    """Backprop through z_y⟨t⟩ = W_ya a⟨t⟩ + b_y at every step at once.

    Shapes: dZ_y (T, B, n_y), A (T, B, n_a).
    Returns: dA (T, B, n_a) from the outputs only, and grads for W_ya, b_y.
    """
    sizes = {}
    # values unchecked: a non-finite loss must reach the trainer, which skips the step
    check_array("A", A, ("T", "B", "n_a"), sizes=sizes, finite=False)
    check_head_params(params, sizes)
    check_array("dZ_y", dZ_y, ("T", "B", "n_y"), sizes=sizes, finite=False)
    return _output_backward(dZ_y, A, params)


def _output_backward(dZ_y, A, params):
    """``output_backward`` without the checks."""
    T, B, n_a = A.shape
    dZ2 = dZ_y.reshape(T * B, -1)  # (T*B, n_y)
    grads = {
        "W_ya": dZ2.T @ A.reshape(T * B, n_a),  # Σ_t dz_y⟨t⟩ᵀ a⟨t⟩
        "b_y": dZ2.sum(axis=0),  # Σ_t dz_y⟨t⟩
    }
    dA = (dZ2 @ params["W_ya"]).reshape(T, B, n_a)  # backprop through W_ya a⟨t⟩
    return dA, grads
