"""The per-step gradient ledger: what backpropagation through time adds up, step by step.

The lecture model (see ``model.py``) shares its parameters over time, so each gradient
is a sum of one contribution per step, all read off the dz⟨t⟩ that BPTT computes anyway:

    dz⟨t⟩ = ∂L/∂a⟨t⟩ ⊙ g′(z⟨t⟩)                  ∂L/∂a⟨t⟩ the whole message reaching a⟨t⟩
    dW_ax⁽ᵗ⁾ = dz⟨t⟩ᵀ x⟨t⟩     dW_aa⁽ᵗ⁾ = dz⟨t⟩ᵀ a⟨t−1⟩     db_a⁽ᵗ⁾ = Σ_b dz⟨t⟩
    dW_ya⁽ᵗ⁾ = dz_y⟨t⟩ᵀ a⟨t⟩   db_y⁽ᵗ⁾ = Σ_b dz_y⟨t⟩          dz_y⟨t⟩ = ŷ⟨t⟩ − y⟨t⟩
    ∂L/∂W = Σ_t dW⁽ᵗ⁾

The reach says how much of a⟨t⟩ still shows in the last state: the spectral norm (largest
singular value) of the Jacobian

    ∂a⟨T⟩/∂a⟨t⟩ = J_T J_{T−1} … J_{t+1},      J_s = ∂a⟨s⟩/∂a⟨s−1⟩ = diag(g′(z⟨s⟩)) W_aa

for every t and batch entry, built exactly from right to left: P_T = I, P_{t−1} = P_t J_t.
A masked (skipped) step carries a⟨s−1⟩ unchanged, so its J_s = I, and a⟨T⟩ is then the
last real state of a right-padded sequence. Reach that dies away over a few steps is the
vanishing gradient; reach that grows with the distance is the exploding one. The
Frobenius norm (``norm="fro"``) bounds the spectral one from above by at most √n_a.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .errors import BpttError, check_array, check_choice
from .heads import (
    HEAD_KEYS,
    OUTPUTS,
    check_labels,
    output_backward,
    output_logits,
    sigmoid,
    softmax,
    step_losses,
)
from .rnn import ACTIVATIONS, _backward, _forward, check_sequence_inputs

NORMS = ("spectral", "fro")


class Ledger(NamedTuple):
    """Everything BPTT computed for one batch, kept per step (time-major)."""

    L: float  # the total loss, Σ_t Σ_b L⟨t⟩ (scaled by 1/B with reduction="mean")
    L_t: np.ndarray  # (T, B) per-step losses L⟨t⟩, 0 at masked steps, unscaled
    Y_hat: np.ndarray  # (T, B, n_y) outputs ŷ⟨t⟩
    A: np.ndarray  # (T, B, n_a) hidden states a⟨1⟩ … a⟨T⟩
    messages: np.ndarray  # (T, B, n_a) the whole ∂L/∂a⟨t⟩ at every step
    dZ: np.ndarray  # (T, B, n_a) dz⟨t⟩ = ∂L/∂z⟨t⟩, 0 at masked steps
    contributions: dict  # name -> (T, *param.shape): dW⁽ᵗ⁾, each step's share of ∂L/∂W
    grads: dict  # name -> Σ_t dW⁽ᵗ⁾, equal to sequence_loss's gradients
    reach: np.ndarray  # (T, B) ‖∂a⟨T⟩/∂a⟨t⟩‖ for t = 1 … T (1 at t = T)
    norm: str  # which matrix norm ``reach`` uses: "spectral" or "fro"


def ledger(
    params,
    X,
    Y,
    a0=None,
    mask=None,
    output="sigmoid",
    activation="tanh",
    reduction="sum",
    norm="spectral",
):
    """Forward, loss and BPTT of the lecture model, with every per-step quantity kept.

    Shapes: X (T, B, n_x); Y (T, B) or (T, B, n_y) for sigmoid, (T, B) int for softmax;
    a0 (B, n_a) or None for zeros; mask (T, B) or None. Arguments as for ``sequence_loss``.
    Returns: a ``Ledger``.
    """
    check_choice("output", output, OUTPUTS)
    check_choice("activation", activation, tuple(ACTIVATIONS))
    check_choice("reduction", reduction, ("sum", "mean"))
    check_choice("norm", norm, NORMS)
    if not isinstance(params, dict) or any(k not in params for k in HEAD_KEYS):
        raise BpttError(f"params: expected a dict with the keys {', '.join(HEAD_KEYS)} and W_ax, W_aa, b_a")
    a0, mask = check_sequence_inputs(X, a0, params, mask)
    T, B, _ = X.shape
    sizes = {"T": T, "B": B, "n_a": params["W_aa"].shape[0]}
    check_array("params['W_ya']", params["W_ya"], ("n_y", "n_a"), sizes=sizes)
    check_array("params['b_y']", params["b_y"], ("n_y",), sizes=sizes)
    Y = check_labels(Y, output, sizes["n_y"], sizes)

    A, cache = _forward(X, a0, params, mask, activation)
    Z_y = output_logits(A, params)  # (T, B, n_y)
    L_t, dZ_y = step_losses(Z_y, Y, output, mask)
    scale = 1.0 if reduction == "sum" else 1.0 / B
    dZ_y *= scale  # the reduction scales every gradient alike
    dA, _ = output_backward(dZ_y, A, params)
    _, _, grads, M = _backward(dA, cache, messages=True, need_dX=False)

    g_prime = ACTIVATIONS[activation][1]
    dZ = M * g_prime(A)  # (T, B, n_a) backprop through g, from the saved messages
    if mask is not None:
        dZ *= mask[:, :, None]  # skipped steps have no dz
    A_prev = np.concatenate([a0[None], A[:-1]])  # (T, B, n_a) a⟨0⟩ … a⟨T−1⟩
    contributions = {
        "W_ax": np.einsum("tbi,tbj->tij", dZ, X),  # (T, n_a, n_x) dz⟨t⟩ᵀ x⟨t⟩
        "W_aa": np.einsum("tbi,tbj->tij", dZ, A_prev),  # (T, n_a, n_a) dz⟨t⟩ᵀ a⟨t−1⟩
        "b_a": dZ.sum(axis=1),  # (T, n_a)
        "W_ya": np.einsum("tbk,tbj->tkj", dZ_y, A),  # (T, n_y, n_a) dz_y⟨t⟩ᵀ a⟨t⟩
        "b_y": dZ_y.sum(axis=1),  # (T, n_y)
    }
    contributions = {k: contributions[k] for k in params if k in contributions}
    grads = {k: c.sum(axis=0) for k, c in contributions.items()}
    Y_hat = sigmoid(Z_y) if output == "sigmoid" else softmax(Z_y)
    reach = jacobian_reach(A, params["W_aa"], g_prime, mask, norm)
    return Ledger(float(L_t.sum()) * scale, L_t, Y_hat, A, M, dZ, contributions, grads, reach, norm)


def jacobian_reach(A, W_aa, g_prime, mask=None, norm="spectral"):
    """‖∂a⟨T⟩/∂a⟨t⟩‖ for t = 1 … T, by chaining the step Jacobians from right to left.

    Shapes: A (T, B, n_a) saved states, W_aa (n_a, n_a), mask (T, B) bool or None.
    Returns: reach (T, B).
    """
    T, B, n_a = A.shape
    G = g_prime(A)  # (T, B, n_a) g′(z⟨s⟩) from the saved outputs
    P = np.broadcast_to(np.eye(n_a, dtype=A.dtype), (B, n_a, n_a)).copy()  # ∂a⟨T⟩/∂a⟨T⟩ = I
    reach = np.empty((T, B), dtype=A.dtype)
    for t in range(T - 1, -1, -1):  # reach[t] belongs to a⟨t+1⟩
        reach[t] = _matrix_norm(P, norm)
        if t == 0:
            break
        J_P = (P * G[t][:, None, :]) @ W_aa  # (B, n_a, n_a) P diag(g′(z⟨t+1⟩)) W_aa
        if mask is not None:
            J_P = np.where(mask[t][:, None, None], J_P, P)  # a skipped step is the identity
        P = J_P
    return reach


def _matrix_norm(P, norm):
    """Spectral or Frobenius norm of each matrix in a (B, n, n) stack."""
    if norm == "fro":
        return np.sqrt((P * P).sum(axis=(1, 2)))
    return np.linalg.norm(P, ord=2, axis=(1, 2))


def reach_by_distance(reach, mask=None):
    """Mean reach over the batch by distance d = T − t from each sequence's last real step.

    Shapes: reach (T, B) from ``Ledger.reach``; mask (T, B) or None.
    Returns: (T,) mean ‖∂a⟨last⟩/∂a⟨last−d⟩‖ for d = 0 … T−1 (NaN where no sequence is that long).
    """
    T, B = reach.shape
    lengths = np.full(B, T) if mask is None else np.asarray(mask).astype(bool).sum(axis=0)
    out = np.full(T, np.nan)
    for d in range(T):
        rows = lengths - 1 - d  # the step at distance d from each sequence's end
        ok = rows >= 0
        if ok.any():
            out[d] = reach[rows[ok], np.nonzero(ok)[0]].mean()
    return out
