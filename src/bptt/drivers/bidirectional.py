"""The bidirectional driver: one cell run over time in both directions, outputs side by side.

    a→⟨t⟩ runs left to right, a←⟨t⟩ right to left over each sequence *within its own length*
    (padding stays at the end), output [a→⟨t⟩; a←⟨t⟩].

Right to left is the same cell over reversed time with the reversed mask. Any cell (``cell="rnn"``,
``"gru"``, ``"lstm"``): each direction carries the cell's state from zero, and only a⟨t⟩ is output.
PyTorch: ``torch.nn.RNN/GRU/LSTM(bidirectional=True)`` on a packed sequence.
"""

from __future__ import annotations

from typing import NamedTuple

from ..backend import array_namespace
from ..cells import cell_of, get_cell
from .truncated import backward_truncated


class BiRNNCache(NamedTuple):
    forward: object  # the cell's cache of the left-to-right pass
    backward: object  # the cell's cache of the right-to-left pass, in reversed time


def birnn_forward(X, mask, pf, pb, activation="tanh", cell="rnn"):
    """Both directions over right-padded sequences, from zero initial states.

    The right-to-left pass is the same cell run over reversed time, X[::-1] with mask[::-1]:
    the padding (at the end) now comes first and is skipped, so every sequence starts from
    the zero state at its own last word — each sequence is reversed within its own length.
    cell: "rnn" (with g = ``activation``), "gru" or "lstm"; pf, pb: its parameters per direction.
    Shapes: X (T, B, n_x), mask (T, B) bool.
    Returns: A (T, B, 2 n_a) = [a→; a←], cache.
    """
    xp = array_namespace(X)
    c = get_cell(cell, activation)
    state0 = c.zero_state(X.shape[1], c.hidden_size(pf), X.dtype, xp)
    A_f, cache_f = c.fast_forward(X, state0, pf, mask)
    A_r, cache_b = c.fast_forward(X[::-1], state0, pb, mask[::-1])  # (T, B, n_a) in reversed time
    A = xp.concatenate([A_f, A_r[::-1]], axis=2)  # (T, B, 2 n_a)
    return A, BiRNNCache(cache_f, cache_b)


def rnn_backward_any(dA, cache, d_state_T=None, messages=False, need_dX=True, truncate=None):
    """Full BPTT through any cell's cache, or BPTT cut every ``truncate`` steps (no messages then).

    Returns: dX (or None), d_state0, grads, and the messages (or None), as the cell's ``fast_backward``.
    """
    cell = cell_of(cache)
    if truncate:
        dX, d_state0, grads = backward_truncated(cell, dA, cache, truncate, d_state_T, need_dX)
        return dX, d_state0, grads, None
    return cell.fast_backward(dA, cache, d_state_T, messages, need_dX)


def birnn_backward(dA, cache, da_T=None, need_dX=True, messages=False, truncate=None):
    """Backprop through both directions (each truncated to ``truncate``-step chunks if given).

    Shapes: dA (T, B, 2 n_a); da_T (B, 2 n_a) gradient reaching each direction's final a, or None.
    Returns: dX (T, B, n_x) or None, grads_f, grads_b, and the forward direction's messages (or None):
    (T, B, n_a), or for "lstm" the pair (∂L/∂a⟨t⟩, ∂L/∂c⟨t⟩).
    """
    n_a = dA.shape[2] // 2
    cell = cell_of(cache.forward)
    dT_f = dT_b = None
    if da_T is not None:  # a gradient on each direction's final a, none on its c
        dT_f, dT_b = cell.on_a(da_T[:, :n_a]), cell.on_a(da_T[:, n_a:])
    dX_f, _, grads_f, M = rnn_backward_any(dA[:, :, :n_a], cache.forward, dT_f, messages, need_dX, truncate)
    dA_r = dA[::-1, :, n_a:]  # the right-to-left pass ran in reversed time
    dX_r, _, grads_b, _ = rnn_backward_any(dA_r, cache.backward, dT_b, False, need_dX, truncate)
    dX = None
    if need_dX:
        dX = dX_f + dX_r[::-1]  # both directions read the same x⟨t⟩
    return dX, grads_f, grads_b, M
