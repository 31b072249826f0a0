"""Truncated backpropagation through time, BPTT(k1, k2), for long streams.

A text read as one sequence is too long to backpropagate through whole.
BPTT(k1, k2) (Williams & Peng, 1990; Sutskever, 2013, sec. 2.8.6) runs the cell
forward over the stream and, every k1 steps, backpropagates the losses of those
k1 steps through the last k2 steps only (k2 ≥ k1). With t_j = min(j·k1, T):

    g_j   = ∂/∂θ  Σ_{t_{j−1} < τ ≤ t_j} L⟨τ⟩,   with a⟨t_j − k2⟩ held constant
    grads = Σ_j g_j

The state a⟨t⟩ itself is carried across every boundary unchanged; only its
gradient is cut. k1 = k2 = T is full BPTT. k1 = k2 = k cuts the message ∂L/∂a at
every k-step chunk boundary counted from t = 0, which is what
``rnn_backward_truncated`` does for a layer inside a bigger model.

Cost, for ``truncated_sequence_loss``: the forward and the backward each run
⌈T/k1⌉ windows of at most k2 steps, about T·k2/k1 steps each (the k2 − k1 steps
a window shares with the one before are recomputed, never stored). Memory: one
window's states, O(k2·B·n_a), whatever the stream's length.
PyTorch: the same gradients come from running the window from ``a.detach()``.
"""

from __future__ import annotations

import numbers

from .backend import array_namespace
from .errors import BpttError, check_array
from .heads import _output_backward, _step_losses, output_logits
from .model import check_model_inputs
from .rnn import RNNCache, _backward, _forward


def check_length(name, k):
    """Check a truncation length: a positive integer."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise BpttError(f"{name}: expected a positive integer number of steps, got {k!r}")
    return int(k)


def rnn_backward_truncated(dA, cache, k, da_T=None):
    """BPTT with the message ∂L/∂a⟨t⟩ cut at every k-step boundary (t = k, 2k, … from the start).

    Equal to running each chunk of k steps from a detached start state.
    Shapes: dA (T, B, n_a) from the outputs only; da_T (B, n_a) or None, reaching a⟨T⟩.
    Returns: dX (T, B, n_x), da0 (B, n_a) (from the first chunk only), grads (W_ax, W_aa, b_a).
    """
    k = check_length("k", k)
    X, a0, A, mask, p, g_prime = cache
    sizes = {"T": A.shape[0], "B": A.shape[1], "n_a": A.shape[2]}
    check_array("dA", dA, ("T", "B", "n_a"), sizes=sizes)
    if da_T is not None:
        check_array("da_T", da_T, ("B", "n_a"), sizes=sizes)
    xp = array_namespace(A)
    T = A.shape[0]
    dX = xp.empty(X.shape, dtype=A.dtype)  # (T, B, n_x)
    grads = None
    for s in reversed(range(0, T, k)):  # chunk [s, e): last to first
        e = min(s + k, T)
        chunk = RNNCache(
            X[s:e], a0 if s == 0 else A[s - 1], A[s:e], None if mask is None else mask[s:e], p, g_prime
        )
        # the message leaving this chunk (into a⟨s⟩) is dropped: the cut
        dX[s:e], da_start, g_chunk, _ = _backward(dA[s:e], chunk, da_T=da_T if e == T else None)
        grads = g_chunk if grads is None else {key: grads[key] + g_chunk[key] for key in grads}
    return dX, da_start, grads


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
):
    """Loss and BPTT(k1, k2) gradients of the whole model over one long stream.

    k2 (default k1) must be at least k1. ``reduction`` is as in ``sequence_loss``.
    Shapes: X (T, B, n_x); Y as in ``sequence_loss``; a0 (B, n_a) or None; mask (T, B) or None.
    Returns: L (float, every step's loss once), grads (same keys as params, summed over
    the updates), a_T (B, n_a) the final state, to pass as a0 for the stream's next piece.
    """
    k1 = check_length("k1", k1)
    k2 = k1 if k2 is None else check_length("k2", k2)
    if k2 < k1:
        raise BpttError(
            f"k2: must be at least k1 = {k1} (each update backpropagates its own steps), got {k2}"
        )
    a0, mask, Y, scale = check_model_inputs(params, X, Y, a0, mask, output, activation, reduction)
    T = X.shape[0]
    L, grads = 0.0, {key: array_namespace(X).zeros_like(v) for key, v in params.items()}
    # the previous window: its first step w_prev, its states A_prev and the state before it
    w_prev, A_prev, a_before = 0, None, a0
    for s in range(0, T, k1):  # update j: losses of steps [s, e), backpropagated through [w, e)
        e = min(s + k1, T)
        w = max(0, e - k2)
        a_start = a_before if w == w_prev else A_prev[w - 1 - w_prev]  # a⟨w⟩, never its gradient
        m = None if mask is None else mask[w:e]
        A, cache = _forward(X[w:e], a_start, params, m, activation)  # (e − w, B, n_a)
        # backprop stops at a⟨w⟩: the truncation
        L_j, _ = loss_and_bptt(params, A, cache, Y[s:e], output, scale, grads, first=s - w)
        L += L_j
        w_prev, A_prev, a_before = w, A, a_start
    return L, grads, A_prev[-1].copy()


def loss_and_bptt(params, A, cache, Y, output, scale, grads, first=0, da_T=None):
    """Loss of steps ``first`` … of a stretch of states, and BPTT through the whole stretch.

    Adds the gradients into ``grads`` (keys of params).
    Shapes: A (T, B, n_a) with its RNNCache; Y the labels of steps first … T − 1.
    Returns: the loss (float), and da0 (B, n_a), the message leaving the stretch.
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
    _, da0, rnn_grads, _ = _backward(dA, cache, da_T=da_T, need_dX=False)
    for key, g in (*rnn_grads.items(), *head_grads.items()):
        grads[key] += g
    return float(L_t.sum()) * scale, da0
