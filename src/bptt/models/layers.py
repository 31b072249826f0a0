"""The tagger's building blocks around the recurrence, each a forward/backward pair.

Embedding lookup:   x⟨t⟩ = E[id⟨t⟩]                 ∂L/∂E[r] = Σ_{t: id⟨t⟩ = r} ∂L/∂x⟨t⟩
Dropout (inverted): y = x ⊙ m / (1 − p), m ~ Bernoulli(1 − p)      ∂L/∂x = ∂L/∂y ⊙ m / (1 − p)

The lookup's forward is plain indexing, ``E[ids]``. Its gradient is returned as
``RowGrad(rows, values)``: only the rows a batch used, so the optimizer updates a 20,000-word
table at the cost of the batch's words. The recurrent layers between these, one way or both,
are the drivers' (``bptt.drivers``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


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


def dropout_forward(X, rate, rng, shape=None):
    """Inverted dropout; rate 0 (or rng None, at inference) is the identity.

    shape: the mask's, broadcast over X (e.g. (T, B, 1) drops whole vectors); X's own by default.
    Returns: Y like X, and the scaled keep-mask (None when nothing was dropped).
    """
    if not rate or rng is None:
        return X, None
    keep = (rng.random(X.shape if shape is None else shape, dtype=np.float32) >= rate).astype(X.dtype)
    keep *= 1.0 / (1.0 - rate)
    return X * keep, keep


def dropout_backward(dY, keep):
    """Backprop through dropout: the same mask, the same scale."""
    return dY if keep is None else dY * keep
