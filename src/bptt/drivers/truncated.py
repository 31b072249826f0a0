"""Truncated backpropagation through time, BPTT(k1, k2), for long streams.

A text read as one sequence is too long to backpropagate through whole.
BPTT(k1, k2) (Williams & Peng, 1990; Sutskever, 2013, sec. 2.8.6) runs the cell
forward over the stream and, every k1 steps, backpropagates the losses of those
k1 steps through the last k2 steps only (k2 ≥ k1). With t_j = min(j·k1, T):

    g_j   = ∂/∂θ  Σ_{t_{j−1} < τ ≤ t_j} L⟨τ⟩,   with a⟨t_j − k2⟩ held constant
    grads = Σ_j g_j

The state a⟨t⟩ itself is carried across every boundary unchanged; only its
gradient is cut. Every cell works alike (``cell="rnn"``, ``"gru"``, ``"lstm"``): the
state carried, and cut, is the cell's whole state — a⟨t⟩, or the pair (a⟨t⟩, c⟨t⟩).
k1 = k2 = T is full BPTT. k1 = k2 = k cuts the message ∂L/∂a at
every k-step chunk boundary counted from t = 0, which is what
``rnn_backward_truncated`` does for a layer inside a bigger model.

Cost, for ``truncated_sequence_loss``: the forward and the backward each run
⌈T/k1⌉ windows of at most k2 steps, about T·k2/k1 steps each (the k2 − k1 steps
a window shares with the one before are recomputed, never stored). Memory: one
window's states, O(k2·B·n_a), whatever the stream's length.
PyTorch: the same gradients come from running the window from ``a.detach()`` (and ``c.detach()``).
"""

from __future__ import annotations

import numbers

from ..backend import array_namespace
from ..cells import cell_of, get_cell
from ..cells.base import check_carry
from ..errors import BpttError, check_array
from ..heads.classification import _output_backward, _step_losses, output_logits
from ..models.lecture import check_model_inputs
from .rnn import carry_in


def check_length(name, k):
    """Check a truncation length: a positive integer."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise BpttError(f"{name}: expected a positive integer number of steps, got {k!r}")
    return int(k)


def rnn_backward_truncated(dA, cache, k, d_state_T=None, *, da_T=None):
    """BPTT with the message ∂L/∂state⟨t⟩ cut at every k-step boundary (t = k, 2k, … from the start).

    Equal to running each chunk of k steps from a detached start state. Any cell's cache.
    Shapes: dA (T, B, n_a) from the outputs only; d_state_T (or ``da_T=``) the gradient reaching
    the final state, or None: (B, n_a), or for "lstm" the pair (da_T, dc_T).
    Returns: dX (T, B, n_x), d_state0 (from the first chunk only), grads (the cell's keys).
    """
    cell = cell_of(cache)
    k = check_length("k", k)
    T, B, n_a = cache.A.shape
    sizes = {"T": T, "B": B, "n_a": n_a}
    check_array("dA", dA, ("T", "B", "n_a"), sizes=sizes)
    d_state_T = check_carry(cell, carry_in(d_state_T, da_T), sizes)
    return backward_truncated(cell, dA, cache, k, d_state_T)


def backward_truncated(cell, dA, cache, k, d_state_T=None, need_dX=True):
    """``rnn_backward_truncated`` without the checks. Returns: dX (or None), d_state0, grads."""
    xp = array_namespace(dA)
    T = dA.shape[0]
    dX = xp.empty(cache.X.shape, dtype=cache.A.dtype) if need_dX else None  # (T, B, n_x)
    grads = None
    for s in reversed(range(0, T, k)):  # chunk [s, e): last to first
        e = min(s + k, T)
        # the message leaving this chunk (into its start state) is dropped: the cut
        dX_chunk, d_start, g_chunk, _ = cell.fast_backward(
            dA[s:e], cell.window(cache, s, e), d_state_T if e == T else None, need_dX=need_dX
        )
        if need_dX:
            dX[s:e] = dX_chunk
        grads = g_chunk if grads is None else {key: grads[key] + g_chunk[key] for key in grads}
    return dX, d_start, grads


def truncated_sequence_loss(
    params,
    X,
    Y,
    k1,
    k2=None,
    a0=None,
    mask=None,
    output="sigmoid",
    activation="tanh",
    reduction="sum",
    cell="rnn",
):
    """Loss and BPTT(k1, k2) gradients of the whole model over one long stream.

    k2 (default k1) must be at least k1. ``reduction`` and ``cell`` are as in ``sequence_loss``.
    Shapes: X (T, B, n_x); Y as in ``sequence_loss``; a0 the initial state or None: (B, n_a),
    or for "lstm" the pair (a0, c0); mask (T, B) or None.
    Returns: L (float, every step's loss once), grads (same keys as params, summed over the
    updates), and the final state (a_T, or the pair (a_T, c_T)), to pass as a0 for the stream's
    next piece.
    """
    k1 = check_length("k1", k1)
    k2 = k1 if k2 is None else check_length("k2", k2)
    if k2 < k1:
        raise BpttError(
            f"k2: must be at least k1 = {k1} (each update backpropagates its own steps), got {k2}"
        )
    c = get_cell(cell, activation)
    state0, mask, Y, scale = check_model_inputs(params, X, Y, a0, mask, output, activation, reduction, cell)
    T = X.shape[0]
    L, grads = 0.0, {key: array_namespace(X).zeros_like(v) for key, v in params.items()}
    # the previous window: its first step w_prev and its cache (None before the first)
    w_prev, previous = 0, None
    for s in range(0, T, k1):  # update j: losses of steps [s, e), backpropagated through [w, e)
        e = min(s + k1, T)
        w = max(0, e - k2)
        start = state0 if previous is None else c.state_before(previous, w - w_prev)  # never its gradient
        m = None if mask is None else mask[w:e]
        A, cache = c.fast_forward(X[w:e], start, params, m)  # (e − w, B, n_a)
        # backprop stops at the state before step w: the truncation
        L_j, _ = loss_and_bptt(c, params, A, cache, Y[s:e], output, scale, grads, first=s - w)
        L += L_j
        w_prev, previous = w, cache
    return L, grads, c.join(f.copy() for f in c.fields(c.state_before(previous, T - w_prev)))


def loss_and_bptt(cell, params, A, cache, Y, output, scale, grads, first=0, d_state_T=None):
    """Loss of steps ``first`` … of a stretch of states, and BPTT through the whole stretch.

    Adds the gradients into ``grads`` (keys of params).
    Shapes: A (T, B, n_a) with ``cell``'s cache; Y the labels of steps first … T − 1;
    d_state_T the message reaching the stretch's last state from the one after it, or None.
    Returns: the loss (float), and d_state0, the message leaving the stretch.
    """
    mask = cache.mask
    new = slice(first, None)  # the steps with losses
    # inputs checked once by the caller (check_model_inputs): no checks per stretch
    L_t, dZ_y = _step_losses(output_logits(A[new], params), Y, output, None if mask is None else mask[new])
    if scale != 1.0:
        dZ_y *= scale  # the reduction scales every gradient alike
    dA, head_grads = _output_backward(dZ_y, A[new], params)  # backprop through the head
    if first:  # steps before ``first`` have no loss here
        xp = array_namespace(A)
        dA = xp.concatenate([xp.zeros_like(A[:first]), dA])  # (T, B, n_a)
    # backprop through the stretch, with the message arriving from the one after it
    _, d_state0, cell_grads, _ = cell.fast_backward(dA, cache, d_state_T, need_dX=False)
    for key, g in (*cell_grads.items(), *head_grads.items()):
        grads[key] += g
    return float(L_t.sum()) * scale, d_state0
