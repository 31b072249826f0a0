"""Checkpointed BPTT: the gradients of full BPTT with about 2√T stored states instead of T.

Full BPTT keeps every a⟨1⟩ … a⟨T⟩ from the forward pass until the backward pass
reads them: stored activations grow as T·B·n_a. Checkpointed BPTT keeps only
some of them and recomputes the rest (Griewank, 1992; Chen et al., 2016, the √n
schedule; Gruslys et al., 2016, for RNNs under a memory budget):

    forward:   cut the T steps into segments of k steps; run the cell over all of
               them, keeping only a⟨0⟩, a⟨k⟩, a⟨2k⟩, … (the state each segment
               starts from: the checkpoints) and the states of the last segment
    backward:  for each segment, last to first: recompute its states from its
               checkpoint (the cell's ``fast_forward``), then backpropagate through it
               with its ``fast_backward(dA_seg, cache_seg, message from the next segment)``

Every cell works alike (``cell="rnn"``, ``"gru"``, ``"lstm"``): a checkpoint is the cell's
whole state, so an LSTM's stores both a⟨t⟩ and c⟨t⟩, and the message carried between
segments is the pair (∂L/∂a⟨t⟩, ∂L/∂c⟨t⟩).

The segments are exactly full BPTT's recursion split at the checkpoints: the
message da_T carried between them is ∂L/∂a⟨t⟩ at the boundary, so the gradients
are those of full BPTT (up to rounding: the parameter gradients are summed per
segment instead of in one GEMM).

Memory contract, in states (B, n_s) held from the forward to the backward pass (n_s = n_a,
or 2 n_a for the LSTM's (a, c)):
⌈T/k⌉ checkpoints + k states of the last segment, about 2√T at the default
k = ⌈√T⌉, instead of T. While one segment is backpropagated, its buffers
(states, dz and, for ``checkpointed_sequence_loss``, dA and the logits) are
O(k) too. ``memory_budget`` (bytes for the stored states) picks the largest k
that fits, down to the √T minimum; a budget of (T + 1) states means no
recomputation at all.

Compute contract: T forward steps, T − k_last recomputed forward steps and T
backward steps, whatever k: at most one extra forward pass, about +33% when the
backward costs twice the forward. Gruslys et al. (2016) report 95% less memory
for 33% more time at sequence length 1000; ``bptt bench --memory`` measured 96%
less stored memory for 16% more time at T = 1000, B = 16, n_a = 128 on a 2-core
CPU with the compiled step kernels, 24–39% with NumPy's loops alone (whose forward,
with its tanh, is more than a third of the work there).

References: A. Griewank, "Achieving logarithmic growth of temporal and spatial
complexity in reverse automatic differentiation", Optim. Methods Softw. 1992;
T. Chen, B. Xu, C. Zhang, C. Guestrin, "Training deep nets with sublinear memory
cost", arXiv:1604.06174, 2016; A. Gruslys, R. Munos, I. Danihelka, M. Lanctot,
A. Graves, "Memory-efficient backpropagation through time", NeurIPS 2016.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

from ..backend import array_namespace
from ..cells import Cell, get_cell
from ..cells.base import check_carry
from ..errors import BpttError, check_array
from ..models.lecture import check_model_inputs
from .rnn import carry_in
from .truncated import check_length, loss_and_bptt


class CheckpointedCache(NamedTuple):
    """What ``rnn_backward_checkpointed`` needs: checkpoints, not every state."""

    X: object  # (T, B, n_x) the inputs (the caller's array, not a copy)
    mask: object  # (T, B) or None
    params: dict
    cell: Cell  # the cell that ran, and runs each segment again
    k: int  # segment length: segment i is steps [i·k, min((i+1)·k, T))
    checkpoints: tuple  # per field of the state, (n_seg, B, n_a): the state each segment starts from
    last: object  # the last segment's cache, kept from the forward pass

    @property
    def stored_bytes(self):
        """Bytes of activations held for the backward pass: checkpoints + the last segment's states."""
        held = (*self.checkpoints, *self.cell.states(self.last))
        return sum(x.nbytes for x in held)


def checkpoint_interval(T, B, n_s, itemsize, memory_budget=None):
    """Segment length k: ⌈√T⌉, or the largest k whose stored states fit ``memory_budget`` bytes.

    n_s: numbers in one batch entry's state (``Cell.state_size``: n_a, or 2 n_a for (a, c)).
    Stored states for a given k: ⌈T/k⌉ checkpoints + k states of the last segment.
    """
    state_bytes = B * n_s * itemsize
    if memory_budget is None:
        return math.isqrt(T - 1) + 1  # ⌈√T⌉
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, numbers.Real) or memory_budget <= 0:
        raise BpttError(f"memory_budget: expected a positive number of bytes, got {memory_budget!r}")
    fits = [k for k in range(T, 0, -1) if (-(-T // k) + min(k, T)) * state_bytes <= memory_budget]
    if not fits:
        least = min(-(-T // k) + k for k in range(1, T + 1)) * state_bytes
        raise BpttError(f"memory_budget: {memory_budget} bytes is too small; T = {T} needs at least {least}")
    return fits[0]


def rnn_forward_checkpointed(
    X, state0, params, mask=None, activation="tanh", k=None, memory_budget=None, cell="rnn"
):
    """Run the cell over the sequence keeping only the checkpoints (and the last segment).

    k: segment length (default from ``checkpoint_interval``, for the cell's state size).
    Shapes: X (T, B, n_x); state0 the initial state or None: a0 (B, n_a), or for "lstm" the pair
    (a0, c0); mask (T, B) or None.
    Returns: the last state (a_T, or the pair (a_T, c_T)), and the cache for ``rnn_backward_checkpointed``.
    """
    c = get_cell(cell, activation)
    state0, mask = c.check_inputs(X, state0, params, mask)
    T, B, _ = X.shape
    n_a = c.hidden_size(params)
    k = _segment_length(k, memory_budget, T, B, c.state_size(n_a), X.dtype.itemsize)
    xp = array_namespace(X)
    starts = range(0, T, k)
    # one stack per field of the state: (n_seg, B, n_a) each
    checkpoints = tuple(xp.empty((len(starts), B, n_a), dtype=X.dtype) for _ in c.fields(state0))
    state = state0
    for i, s in enumerate(starts):
        for stack, f in zip(checkpoints, c.fields(state)):
            stack[i] = f  # a copy: the segment before can be freed
        m = None if mask is None else mask[s : s + k]
        A, cache = c.fast_forward(X[s : s + k], c.join(x[i] for x in checkpoints), params, m)  # (k, B, n_a)
        state = c.state_before(cache, A.shape[0])  # only the segment's last state goes on
    last_state = c.join(f.copy() for f in c.fields(state))
    return last_state, CheckpointedCache(X, mask, params, c, k, checkpoints, cache)


def _segment_length(k, memory_budget, T, B, n_s, itemsize):
    if k is None:
        return checkpoint_interval(T, B, n_s, itemsize, memory_budget)
    if memory_budget is not None:
        raise BpttError("k: give either k or memory_budget, not both")
    return min(check_length("k", k), T)


def _segments(cache):
    """(s, e, cell cache) per segment, last to first, recomputing all but the last from its checkpoint."""
    X, mask, p, cell, k, checkpoints, last = cache
    T = X.shape[0]
    for i in reversed(range(len(checkpoints[0]))):
        s, e = i * k, min((i + 1) * k, T)
        if e == T:
            yield s, e, last
            continue
        m = None if mask is None else mask[s:e]
        _, seg = cell.fast_forward(X[s:e], cell.join(x[i] for x in checkpoints), p, m)  # recompute its states
        yield s, e, seg


def rnn_backward_checkpointed(dA, cache, d_state_T=None, need_dX=True, *, da_T=None):
    """Full BPTT from the checkpoints: recompute each segment, then backpropagate through it.

    Shapes: dA (T, B, n_a) from the outputs only; d_state_T (or ``da_T=``) the gradient reaching
    the final state, or None: (B, n_a), or for "lstm" the pair (da_T, dc_T).
    Returns: dX (T, B, n_x) (None unless ``need_dX``), d_state0 (like the state), grads (the cell's keys).
    """
    X = cache.X
    T, B = X.shape[:2]
    sizes = {"T": T, "B": B, "n_a": cache.checkpoints[0].shape[2]}
    check_array("dA", dA, ("T", "B", "n_a"), sizes=sizes)
    d_next = check_carry(cache.cell, carry_in(d_state_T, da_T), sizes)
    xp = array_namespace(X)
    dX = xp.empty(X.shape, dtype=X.dtype) if need_dX else None  # (T, B, n_x)
    grads = None
    for s, e, seg in _segments(cache):
        # backprop through the segment, with the message arriving from the segment after it
        dX_seg, d_next, g_seg, _ = cache.cell.fast_backward(dA[s:e], seg, d_next, need_dX=need_dX)
        if need_dX:
            dX[s:e] = dX_seg
        grads = g_seg if grads is None else {key: grads[key] + g_seg[key] for key in grads}
    return dX, d_next, grads


def checkpointed_sequence_loss(
    params,
    X,
    Y,
    a0=None,
    mask=None,
    output="sigmoid",
    activation="tanh",
    reduction="sum",
    k=None,
    memory_budget=None,
    cell="rnn",
):
    """``sequence_loss`` with checkpointed BPTT: the same L and grads, O(√T) stored states.

    The output head runs segment by segment during the backward pass, so neither all
    states nor all output gradients ever exist at once.
    Shapes: as in ``sequence_loss``.
    Returns: L (float), grads (same keys as params).
    """
    state0, mask, Y, scale = check_model_inputs(params, X, Y, a0, mask, output, activation, reduction, cell)
    _, cache = rnn_forward_checkpointed(X, state0, params, mask, activation, k, memory_budget, cell)
    L, grads, d_next = 0.0, {key: array_namespace(X).zeros_like(v) for key, v in params.items()}, None
    for s, e, seg in _segments(cache):
        L_seg, d_next = loss_and_bptt(
            cache.cell, params, seg.A, seg, Y[s:e], output, scale, grads, d_state_T=d_next
        )
        L += L_seg
    return L, grads
