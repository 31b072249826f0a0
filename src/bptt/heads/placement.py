"""Where the loss is taken: at every step, at the last real step of each sequence, or at chosen steps.

    loss_at=None, "all"    L = Σ_b Σ_t L⟨t⟩ over the unmasked steps               many-to-many (the lecture's)
    loss_at="last"         L = Σ_b L⟨T_b⟩, T_b the last unmasked step of sequence b  many-to-one
    loss_at=S (T, B) 0/1   L = Σ over the steps where S and the mask are both 1       chosen steps

The head ŷ = out(W_ya a + b_y) and its loss are computed at the N scored steps only, gathered
into one (N, n_a) batch (one GEMM each way). The backward puts the message from the outputs,
∂L/∂a⟨t⟩ = W_yaᵀ (ŷ⟨t⟩ − y⟨t⟩), at the scored steps and zero at every other: BPTT then carries
it back through the recurrence alone, so with one loss at the end every gradient must travel the
whole sequence (the message ∂L/∂a⟨t⟩ is then exactly how much of it is left at step t).

Targets: with ``loss_at="last"`` one per sequence, Y (B,) or (B, n_y) (class ids (B,) for
softmax); otherwise per step as for every step, Y (T, B) or (T, B, n_y), of which only the scored
steps are read (and checked). PyTorch: ``output[lengths − 1, arange(B)]`` (or ``output[S]``) into
the head, then the loss summed over the scored steps.
"""

from __future__ import annotations

from typing import NamedTuple

from ..backend import array_namespace
from ..errors import BpttError, check_array
from .classification import _output_backward, _step_losses, check_labels, output_logits

LOSS_AT = ("all", "last")


class Steps(NamedTuple):
    """The scored steps: step t[i] of sequence b[i], for i = 0 … N − 1 (time-major order)."""

    t: object  # (N,) int
    b: object  # (N,) int
    last: bool  # loss_at="last": the targets are one per sequence, Y[b]


def scored_steps(loss_at, mask, T, B, xp):
    """The steps ``loss_at`` scores, mask respected; None for every (unmasked) step.

    Shapes: mask (T, B) bool or None.
    Returns: ``Steps`` or None.
    """
    if loss_at is None or (isinstance(loss_at, str) and loss_at == "all"):
        return None
    if isinstance(loss_at, str):
        if loss_at != "last":
            raise BpttError(
                "loss_at: expected 'all', 'last' or a (T, B) array of 0/1 (the steps to score),"
                f" got {loss_at!r}"
            )
        if mask is None:
            return Steps(xp.full(B, T - 1), xp.arange(B), True)
        real = mask.any(axis=0)  # an empty sequence has no last step: no loss
        last = T - 1 - xp.argmax(mask[::-1], axis=0)  # (B,): the last unmasked step of each sequence
        b = xp.nonzero(real)[0]
        return Steps(last[b], b, True)
    S = check_array("loss_at", loss_at, ("T", "B"), sizes={"T": T, "B": B}, floating=False, finite=False)
    if S.dtype != bool:
        if S.dtype.kind not in "biuf" or not bool(((S == 0) | (S == 1)).all()):
            raise BpttError("loss_at: expected only 0/1 or True/False values (the steps to score)")
        S = S != 0
    if mask is not None:
        S = S & mask  # a padded step is never scored
    t, b = xp.nonzero(S)
    return Steps(t, b, False)


def placed_targets(Y, output, n_y, steps, T, B):
    """Check the targets of the scored steps; return them in the loss's layout, as N steps of one sequence.

    Shapes: Y (B,) or (B, n_y) with ``steps.last``, else (T, B) or (T, B, n_y).
    Returns: (N, 1) class ids for softmax, else (N, 1, n_y).
    """
    if not hasattr(Y, "shape") or not hasattr(Y, "dtype"):
        raise BpttError(f"Y: expected an array, got {type(Y).__name__}")
    lead = ("B",) if steps.last else ("T", "B")
    per_class = output != "softmax" and not (Y.ndim == len(lead) and n_y == 1)
    dims = lead + (("n_y",) if per_class else ())
    sizes = {"T": T, "B": B, "n_y": n_y}
    what = "one target per sequence (loss_at='last')" if steps.last else "targets per step"
    if Y.ndim != len(dims):
        raise BpttError(f"Y: expected {what}, shape ({', '.join(dims)}), got shape {tuple(Y.shape)}")
    check_array("Y", Y, dims, sizes=sizes, floating=False, finite=False)
    Y_s = Y[steps.b] if steps.last else Y[steps.t, steps.b]  # (N,) or (N, n_y)
    return check_labels(Y_s[:, None], output, n_y, {"T": len(steps.b), "B": 1, "n_y": n_y})


def placed_head(A, params, Y_s, output, steps, scale=1.0):
    """The head and its loss at the scored steps only, forward and backward.

    Shapes: A (T, B, n_a); Y_s from ``placed_targets``.
    Returns: L_s (N,) the unscaled losses, dZ_s (N, n_y) = ∂(scale·Σ L_s)/∂z_y, dA (T, B, n_a)
    the gradient reaching each a⟨t⟩ through the outputs (zero at unscored steps), and the grads of
    W_ya, b_y.
    """
    xp = array_namespace(A)
    A_s = A[steps.t, steps.b][:, None]  # (N, 1, n_a): the scored states, as N steps of one sequence
    L_s, dZ_s = _step_losses(output_logits(A_s, params), Y_s, output, None)  # (N, 1), (N, 1, n_y)
    if scale != 1.0:
        dZ_s *= scale  # the reduction scales every gradient alike
    dA_s, grads = _output_backward(dZ_s, A_s, params)  # backprop through W_ya a⟨t⟩ at the scored steps
    dA = xp.zeros_like(A)
    dA[steps.t, steps.b] = dA_s[:, 0]  # the message from the outputs enters at the scored steps only
    return L_s[:, 0], dZ_s[:, 0], dA, grads


def scatter(values, steps, T, B):
    """Values of the scored steps, (N, ·), spread over (T, B, ·) with zeros elsewhere."""
    xp = array_namespace(values)
    out = xp.zeros((T, B, *values.shape[1:]), dtype=values.dtype)
    out[steps.t, steps.b] = values
    return out
