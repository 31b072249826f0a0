"""The per-step gradient ledger: what backpropagation through time adds up, step by step.

The lecture model (see ``bptt.models.lecture``) shares its parameters over time, so each gradient is a
sum of one contribution per step. For the vanilla cell, all are read off the dz⟨t⟩ BPTT computes:

    dz⟨t⟩ = ∂L/∂a⟨t⟩ ⊙ g′(z⟨t⟩)                  ∂L/∂a⟨t⟩ the whole message reaching a⟨t⟩
    dW_ax⁽ᵗ⁾ = dz⟨t⟩ᵀ x⟨t⟩     dW_aa⁽ᵗ⁾ = dz⟨t⟩ᵀ a⟨t−1⟩     db_a⁽ᵗ⁾ = Σ_b dz⟨t⟩
    dW_ya⁽ᵗ⁾ = dz_y⟨t⟩ᵀ a⟨t⟩   db_y⁽ᵗ⁾ = Σ_b dz_y⟨t⟩          dz_y⟨t⟩ = ŷ⟨t⟩ − y⟨t⟩
    ∂L/∂W = Σ_t dW⁽ᵗ⁾

Every cell (``cell="rnn"``, ``"gru"``, ``"lstm"``) is asked rather than read: step t's share
of the cell's parameters (W_ax, W_aa, b_a, and the GRU's b_hn) is what the cell's own backward
gives for step t alone (``Cell.window``), given the message from its output and the one
arriving from step t + 1 — which step t + 1's backward returned. That is BPTT run one step
at a time, right to left.

With the loss at chosen steps only (``loss_at="last"``, or a (T, B) 0/1 array: many-to-one,
``bptt.heads.placement``), the head's shares dW_ya⁽ᵗ⁾, db_y⁽ᵗ⁾ are zero at every other step, and
the message ∂L/∂a⟨t⟩ there is what reaches a⟨t⟩ from later losses through the recurrence alone:
with one loss at the end, the messages are the vanishing gradient itself, step by step.

The reach says how much of the state s⟨t⟩ still shows in the last state: the spectral norm
(largest singular value) of the Jacobian

    ∂s⟨T⟩/∂s⟨t⟩ = J_T J_{T−1} … J_{t+1},      J_s = ∂s⟨s⟩/∂s⟨s−1⟩ (``Cell.state_jacobian``)

for every t and batch entry, built exactly from right to left: P_T = I, P_{t−1} = P_t J_t.
The state is the cell's whole state: a⟨t⟩, or [a⟨t⟩; c⟨t⟩] for the LSTM, whose J_s has all
four blocks (for the vanilla cell J_s = diag(g′(z⟨s⟩)) W_aa). A masked (skipped) step carries
the state unchanged, so its J_s = I, and s⟨T⟩ is then the last real state of a right-padded
sequence. Reach that dies away over a few steps is the vanishing gradient; reach that grows
with the distance is the exploding one. The Frobenius norm (``norm="fro"``) bounds the
spectral one from above by at most √n_s. ``jacobian_reach`` is the one reach computation:
the tagger's probes (``Tagger.reach_profile``, ``bptt.models.tagger``) use it too.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..cells import get_cell
from ..errors import check_choice
from ..heads.classification import output_backward, output_logits, output_values, step_losses
from ..heads.placement import placed_head, scatter
from ..models.lecture import check_placed_inputs

NORMS = ("spectral", "fro")


class Ledger(NamedTuple):
    """Everything BPTT computed for one batch, kept per step (time-major)."""

    L: float  # the total loss, Σ_t Σ_b L⟨t⟩ (scaled by 1/B with reduction="mean")
    L_t: np.ndarray  # (T, B) per-step losses L⟨t⟩, 0 at masked and unscored steps, unscaled
    Y_hat: np.ndarray  # (T, B, n_y) outputs ŷ⟨t⟩ (at every step, scored or not)
    A: np.ndarray  # (T, B, n_a) hidden states a⟨1⟩ … a⟨T⟩
    messages: np.ndarray  # (T, B, n_a) the whole ∂L/∂a⟨t⟩ at every step
    messages_c: object  # (T, B, n_a) the whole ∂L/∂c⟨t⟩ for a paired cell (LSTM), else None
    contributions: dict  # name -> (T, *param.shape): dW⁽ᵗ⁾, each step's share of ∂L/∂W
    grads: dict  # name -> Σ_t dW⁽ᵗ⁾, equal to sequence_loss's gradients
    reach: np.ndarray  # (T, B) ‖∂s⟨T⟩/∂s⟨t⟩‖ for t = 1 … T (1 at t = T), float64
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
    cell="rnn",
    loss_at=None,
):
    """Forward, loss and BPTT of the lecture model, with every per-step quantity kept.

    Shapes: X (T, B, n_x); Y (T, B) or (T, B, n_y) for sigmoid and linear, (T, B) int for softmax
    ((B,) or (B, n_y) with loss_at="last"); a0 the initial state or None for zeros: (B, n_a), or
    for "lstm" the pair (a0, c0); mask (T, B) or None. Arguments as for ``sequence_loss``.
    Returns: a ``Ledger``.
    """
    check_choice("norm", norm, NORMS)
    c = get_cell(cell, activation)
    state0, mask, Y, scale, steps = check_placed_inputs(
        params, X, Y, a0, mask, output, activation, reduction, cell, loss_at
    )
    A, cache = c.fast_forward(X, state0, params, mask)
    Z_y = output_logits(A, params)  # (T, B, n_y)
    T, B, _ = A.shape
    if steps is None:
        L_t, dZ_y = step_losses(Z_y, Y, output, mask)
        dZ_y *= scale  # the reduction scales every gradient alike
        dA, _ = output_backward(dZ_y, A, params)
    else:
        L_s, dZ_s, dA, _ = placed_head(A, params, Y, output, steps, scale)
        L_t, dZ_y = scatter(L_s, steps, T, B), scatter(dZ_s, steps, T, B)  # (T, B), (T, B, n_y)
    _, _, _, M = c.fast_backward(dA, cache, messages=True, need_dX=False)
    contributions = {
        **step_contributions(c, cache, dA),  # (T, *shape) for each of the cell's parameters
        "W_ya": np.einsum("tbk,tbj->tkj", dZ_y, A),  # (T, n_y, n_a) dz_y⟨t⟩ᵀ a⟨t⟩
        "b_y": dZ_y.sum(axis=1),  # (T, n_y)
    }
    contributions = {k: contributions[k] for k in params if k in contributions}
    grads = {k: share.sum(axis=0) for k, share in contributions.items()}
    Y_hat = output_values(Z_y, output)
    M_a, M_c = (*c.fields(M), None)[:2]
    reach = jacobian_reach(c, cache, norm)
    return Ledger(float(L_t.sum()) * scale, L_t, Y_hat, A, M_a, M_c, contributions, grads, reach, norm)


def step_contributions(cell, cache, dA):
    """Each step's share of the gradient of every parameter of ``cell``: BPTT one step at a time.

    Step t's share is the gradient the cell's backward gives for step t alone, from the message
    through its output (dA[t]) and the one arriving from step t + 1 (what step t + 1 returned).
    Shapes: dA (T, B, n_a) the gradient reaching each a⟨t⟩ through the outputs only.
    Returns: {name: (T, *shape)} for each of the cell's parameters.
    """
    T = dA.shape[0]
    shares, d_next = [None] * T, None
    for t in reversed(range(T)):
        # backprop through step t alone, with the message from step t + 1
        _, d_next, shares[t], _ = cell.fast_backward(
            dA[t : t + 1], cell.window(cache, t, t + 1), d_next, need_dX=False
        )
    return {k: np.stack([g[k] for g in shares]) for k in shares[0]}  # (T, *shape) each


def jacobian_reach(cell, cache, norm="spectral"):
    """‖∂s⟨T⟩/∂s⟨t⟩‖ for t = 1 … T, by chaining the cell's step Jacobians from right to left.

    s⟨t⟩ is the cell's whole state (a⟨t⟩, or [a⟨t⟩; c⟨t⟩]); the product is taken in float64.
    Shapes: cache of ``cell``'s forward over (T, B, ·).
    Returns: reach (T, B) float64.
    """
    T, B, n_a = cache.A.shape
    n_s = cell.state_size(n_a)
    P = np.broadcast_to(np.eye(n_s), (B, n_s, n_s)).copy()  # ∂s⟨T⟩/∂s⟨T⟩ = I
    reach = np.empty((T, B))
    for t in range(T - 1, -1, -1):  # reach[t] belongs to s⟨t+1⟩
        reach[t] = _matrix_norm(P, norm)
        if t:  # ∂s⟨T⟩/∂s⟨t⟩ = ∂s⟨T⟩/∂s⟨t+1⟩ · ∂s⟨t+1⟩/∂s⟨t⟩: (B, n_s, n_s)
            P = P @ cell.state_jacobian(cache, t).astype(np.float64)
    return reach


def _matrix_norm(P, norm):
    """Spectral or Frobenius norm of each matrix in a (B, n, n) stack."""
    if norm == "fro":
        return np.sqrt((P * P).sum(axis=(1, 2)))
    # ‖P‖₂² is the largest eigenvalue of P Pᵀ: 3–4× faster than the SVD, as exact (relative to ‖P‖₂)
    G = P @ P.swapaxes(1, 2)  # (B, n, n)
    return np.sqrt(np.maximum(np.linalg.eigvalsh(G)[:, -1], 0))


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
