"""The character language model: one cell reads a stream of characters and predicts the next one.

    x⟨t⟩ = onehot(ch⟨t⟩)               the character read at step t           (n_x = V)
    a⟨t⟩ = cell(a⟨t−1⟩, x⟨t⟩)           any cell of ``bptt.cells``: "rnn", "gru", "lstm"
    ŷ⟨t⟩ = softmax(W_ya a⟨t⟩ + b_y)    the distribution of the next character ch⟨t+1⟩
    L⟨t⟩ = −log ŷ⟨t⟩[ch⟨t+1⟩],  L = Σ_t L⟨t⟩;   bits per character = L / (N ln 2) over N predictions

This is the lecture's many-to-many network with y⟨t⟩ = x⟨t+1⟩ (min-char-rnn's). A text is too
long to backpropagate through whole, so it is trained with truncated BPTT, k1 = k2 = k: B streams
(B contiguous pieces of the text) advance k characters per update; the state a⟨t⟩ (and c⟨t⟩) is
carried from one chunk to the next unchanged, its gradient is cut at the chunk boundary (PyTorch:
``state.detach()``). ``chunk_loss`` is one such chunk: forward, loss, BPTT, and the state to carry.

Sampling is the one-to-many use of the same network: ŷ⟨t⟩ is sampled and fed back as x⟨t+1⟩.
PyTorch: ``torch.nn.RNN/GRU/LSTM(V, n_a)`` on one-hot inputs, then ``torch.nn.Linear(n_a, V)``.
"""

from __future__ import annotations

import numpy as np

from ..cells import get_cell
from ..heads.classification import _output_backward, _step_losses, output_logits
from ..models.layers import dropout_backward, dropout_forward
from ..models.lecture import init_params

LN2 = float(np.log(2.0))


def one_hot(ids, V, dtype):
    """Shapes: ids (T, B) ints in [0, V). Returns: X (T, B, V), 1 at each id."""
    T, B = ids.shape
    X = np.zeros((T * B, V), dtype=dtype)  # (T*B, V)
    X[np.arange(T * B), ids.reshape(-1)] = 1
    return X.reshape(T, B, V)  # (T, B, V)


def init_lm(cell, V, n_a, seed=0, dtype=np.float32, init="default"):
    """The cell's parameters for V one-hot inputs and the head's W_ya (V, n_a), b_y (V,)."""
    return init_params(V, n_a, V, seed=seed, dtype=dtype, cell=cell, init=init)


def carry(cell, cache):
    """The state after a chunk, copied out of the cache so that the cache can be freed."""
    c = get_cell(cell) if isinstance(cell, str) else cell
    return c.join(np.array(s) for s in c.fields(c.state_before(cache, cache.A.shape[0])))


def chunk_loss(params, cell, ids_in, ids_out, state0, mask=None, dropout=0.0, rng=None):
    """Forward, summed loss and truncated BPTT over one chunk of k steps of B streams.

    cell: a ``Cell`` (``bptt.cells.get_cell``). state0: the state carried in (its gradient is cut).
    mask: (k, B) bool, the real steps of padded lines (``--unit line``), or None.
    dropout: the rate of inverted dropout on a⟨t⟩ before the head (never on the recurrence), drawn
    from ``rng``.
    Shapes: ids_in, ids_out (k, B) ints: the characters read and the ones to predict.
    Returns: L (float, summed over the predictions), grads (keys of params, for that sum),
    and the state at the chunk's end (to carry into the next chunk).
    """
    V = params["W_ya"].shape[0]
    X = one_hot(ids_in, V, params["W_ya"].dtype)  # (k, B, V)
    A, cache = cell.fast_forward(X, state0, params, mask)  # (k, B, n_a)
    A_out, keep = dropout_forward(A, dropout, rng)
    L_t, dZ_y = _step_losses(output_logits(A_out, params), ids_out, "softmax", mask)  # (k, B), (k, B, V)
    dA, grads = _output_backward(dZ_y, A_out, params)  # backprop through the head
    dA = dropout_backward(dA, keep)  # backprop through dropout
    _, _, cell_grads, _ = cell.fast_backward(dA, cache, need_dX=False)  # backprop through time, k steps
    grads.update(cell_grads)
    return float(L_t.sum()), {k: grads[k] for k in params}, carry(cell, cache)


def chunk_log_probs(params, cell, ids_in, ids_out, state0, mask=None):
    """The natural-log probability of every character to predict in one chunk; no backward.

    Shapes: ids_in, ids_out (k, B), mask (k, B) or None. Returns: log p (k, B) (0 where masked), the
    state at the chunk's end.
    """
    V = params["W_ya"].shape[0]
    A, cache = cell.fast_forward(one_hot(ids_in, V, params["W_ya"].dtype), state0, params, mask)
    L_t, _ = _step_losses(output_logits(A, params), ids_out, "softmax", mask)  # (k, B)
    return -L_t, carry(cell, cache)


def step_log_softmax(params, cell, state, ids):
    """One step for sampling: read ``ids`` (B,), return log ŷ (B, V) and the new state."""
    V = params["W_ya"].shape[0]
    A, cache = cell.fast_forward(one_hot(ids[None], V, params["W_ya"].dtype), state, params, None)
    Z = output_logits(A, params)[0]  # (B, V)
    Z = Z - Z.max(axis=1, keepdims=True)
    return Z - np.log(np.exp(Z).sum(axis=1, keepdims=True)), carry(cell, cache)
