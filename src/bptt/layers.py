"""The tagger's building blocks around the recurrence, each a forward/backward pair.

Embedding lookup:   x⟨t⟩ = E[id⟨t⟩]                 ∂L/∂E[r] = Σ_{t: id⟨t⟩ = r} ∂L/∂x⟨t⟩
Dropout (inverted): y = x ⊙ m / (1 − p), m ~ Bernoulli(1 − p)      ∂L/∂x = ∂L/∂y ⊙ m / (1 − p)
Bidirectional RNN:  a→⟨t⟩ runs left to right, a←⟨t⟩ right to left over each sequence
                    *within its own length* (padding stays at the end), output [a→⟨t⟩; a←⟨t⟩].
                    Right to left is the same cell over reversed time with the reversed mask.
                    Any cell (``cell="rnn"``, ``"gru"``, ``"lstm"``): each direction carries
                    the cell's state from zero, and only a⟨t⟩ is output.
                    PyTorch: ``torch.nn.RNN/GRU/LSTM(bidirectional=True)`` on a packed sequence.

Embedding gradients are returned as ``RowGrad(rows, values)``: only the rows a batch
used, so the optimizer updates a 20,000-word table at the cost of the batch's words.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .backend import array_namespace
from .cells import cell_of, get_cell
from .truncated import backward_truncated


class RowGrad(NamedTuple):
    """Gradient of an embedding table that is zero outside ``rows``."""

    rows: np.ndarray  # (k,) unique row ids
    values: np.ndarray  # (k, d) gradient of those rows
    n_rows: int  # rows of the full table

    def dense(self):
        """The full (n_rows, d) gradient."""
        out = np.zeros((self.n_rows, self.values.shape[1]), dtype=self.values.dtype)
        out[self.rows] = self.values
        return out


def embedding_forward(E, ids):
    """Look up rows of E.

    Shapes: E (V, d), ids (...) ints.
    Returns: X (..., d).
    """
    return E[ids]


def embedding_backward(dX, ids, n_rows):
    """Backprop through the lookup: add each position's gradient into its row.

    Shapes: dX (..., d), ids (...).
    Returns: RowGrad over the unique ids.
    """
    d = dX.shape[-1]
    flat = ids.reshape(-1)
    order = np.argsort(flat, kind="stable")  # positions grouped by row
    sorted_ids = flat[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])  # first position of each row
    rows = sorted_ids[starts]
    values = np.add.reduceat(dX.reshape(-1, d)[order], starts, axis=0)  # Σ over positions sharing a row
    return RowGrad(rows, values, n_rows)


def dropout_forward(X, rate, rng):
    """Inverted dropout; rate 0 (or rng None, at inference) is the identity.

    Returns: Y like X, and the scaled keep-mask (None when nothing was dropped).
    """
    if not rate or rng is None:
        return X, None
    keep = (rng.random(X.shape, dtype=np.float32) >= rate).astype(X.dtype)
    keep *= 1.0 / (1.0 - rate)
    return X * keep, keep


def dropout_backward(dY, keep):
    """Backprop through dropout: the same mask, the same scale."""
    return dY if keep is None else dY * keep


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
