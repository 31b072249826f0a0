"""The whole lecture model in one call: recurrence, per-step outputs, loss and BPTT.

    a⟨t⟩ = g(W_aa a⟨t−1⟩ + W_ax x⟨t⟩ + b_a),   ŷ⟨t⟩ = σ(W_ya a⟨t⟩ + b_y) (or softmax, or linear),
    L = Σ_t L⟨t⟩ over the unmasked steps.

``cell="gru"`` or ``"lstm"`` replaces the first line by that cell's step (``bptt.cells``); the
head on a⟨t⟩ and the loss are the same for every cell. ``loss_at="last"`` takes the head and
the loss at the last real step of each sequence only (many-to-one), ``loss_at=S`` (a (T, B)
0/1 array) at the chosen steps only (``bptt.heads.placement``).

Batch reduction, stated once: ``reduction="sum"`` (default) adds the sequence losses
of the batch, so one sequence gives exactly the lecture's L; ``reduction="mean"``
divides that sum by the batch size B (the mean sequence loss). Gradients follow
the same reduction.
"""

from __future__ import annotations

import numpy as np

from ..cells import get_cell
from ..errors import BpttError, check_array, check_choice
from ..heads.classification import (
    HEAD_KEYS,
    OUTPUTS,
    check_labels,
    output_backward,
    output_logits,
    step_losses,
)
from ..heads.placement import placed_head, placed_targets, scored_steps

PARAM_KEYS = ("W_ax", "W_aa", "b_a", "W_ya", "b_y")


def init_params(n_x, n_a, n_y, *, seed=0, dtype=np.float32, cell="rnn", init="default", T_max=None):
    """Random parameters for ``cell`` and the head: W_ya ~ uniform(±1/√n_a), b_y = 0.

    cell "rnn": weights uniform(±1/√n_a) like ``torch.nn.RNN``, zero b_a. "gru", "lstm": PyTorch's
    default, uniform(±1/√n_a) for every weight and bias (b_a drawn as bias_ih + bias_hh).
    init: "default" (the above); "orthogonal", each n_a-row block of W_aa a random orthogonal
    matrix; "identity" (rnn), W_aa = I and small input weights, the IRNN with activation="relu";
    "forget1" (lstm), forget-gate bias 1; "chrono" (gru, lstm), chrono initialisation for
    dependencies of up to T_max steps (see ``bptt.cells``' modules).
    Returns: dict with W_ax (k·n_a, n_x), W_aa (k·n_a, n_a), b_a (k·n_a,) (k = 1, 3, 4 for rnn, gru,
    lstm), b_hn (n_a,) for gru, W_ya (n_y, n_a), b_y (n_y,).
    """
    for name, n in (("n_x", n_x), ("n_a", n_a), ("n_y", n_y)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise BpttError(f"{name}: expected a positive int, got {n!r}")
    c = get_cell(cell)
    check_choice("init", init, c.inits)
    if T_max is not None and init != "chrono":
        raise BpttError(f"T_max: only init='chrono' takes T_max, got init={init!r}")
    rng = np.random.default_rng(seed)
    params = c.init(n_x, n_a, rng, dtype, init, T_max)
    k = 1 / np.sqrt(n_a)
    params["W_ya"] = rng.uniform(-k, k, size=(n_y, n_a)).astype(dtype)
    params["b_y"] = np.zeros(n_y, dtype=dtype)
    return params


def check_model_inputs(params, X, Y, a0, mask, output, activation, reduction, cell="rnn"):
    """The checks of a loss at every step. Returns: a0, mask (defaults filled in), Y, the loss scale."""
    a0, mask, Y, scale, _ = check_placed_inputs(params, X, Y, a0, mask, output, activation, reduction, cell)
    return a0, mask, Y, scale


def check_placed_inputs(params, X, Y, a0, mask, output, activation, reduction, cell="rnn", loss_at=None):
    """The checks of ``sequence_loss``.

    Returns: a0, mask (defaults filled in), Y, the loss scale, and the scored steps (``Steps``, or
    None for every step); with scored steps, Y holds their targets (``placed_targets``).
    """
    check_choice("output", output, OUTPUTS)
    c = get_cell(cell, activation)
    check_choice("reduction", reduction, ("sum", "mean"))
    if not isinstance(params, dict):
        raise BpttError(f"params: expected a dict of arrays, got {type(params).__name__}")
    missing = [key for key in HEAD_KEYS if key not in params]
    if missing:
        raise BpttError(f"params: missing key(s) {', '.join(missing)}")
    a0, mask = c.check_inputs(X, a0, params, mask)
    unknown = [key for key in params if key not in c.keys + HEAD_KEYS]
    if unknown:  # grads has exactly params' keys: one that no gradient has is a mistake
        raise BpttError(
            f"params: unknown key(s) {', '.join(map(repr, unknown))}: {c.title} and the head have"
            f" {', '.join(c.keys + HEAD_KEYS)}"
        )
    T, B, _ = X.shape
    sizes = {"n_a": c.hidden_size(params), "T": T, "B": B}
    check_array("params['W_ya']", params["W_ya"], ("n_y", "n_a"), sizes=sizes)
    check_array("params['b_y']", params["b_y"], ("n_y",), sizes=sizes)
    for key in HEAD_KEYS:
        if params[key].dtype != params["W_aa"].dtype:
            raise BpttError(
                f"params['{key}']: dtype {params[key].dtype} differs from W_aa's {params['W_aa'].dtype}"
            )
    scale = 1.0 if reduction == "sum" else 1.0 / B
    steps = scored_steps(loss_at, mask, T, B, np)
    if steps is None:
        return a0, mask, check_labels(Y, output, sizes["n_y"], sizes), scale, None
    return a0, mask, placed_targets(Y, output, sizes["n_y"], steps, T, B), scale, steps


def sequence_loss(
    params,
    X,
    Y,
    a0=None,
    mask=None,
    output="sigmoid",
    activation="tanh",
    reduction="sum",
    return_messages=False,
    cell="rnn",
    loss_at=None,
):
    """Forward, loss and backpropagation through time for the whole model.

    cell: "rnn", "gru" or "lstm" (``activation`` is the vanilla cell's g).
    output: "sigmoid", "softmax" or "linear" (squared error). loss_at: None or "all" (every step),
    "last" (the last unmasked step of each sequence), or a (T, B) 0/1 array of the steps to score.
    Shapes: X (T, B, n_x); Y (T, B) or (T, B, n_y) for sigmoid and linear, (T, B) int for softmax
    (with loss_at="last": (B,) or (B, n_y), one target per sequence);
    a0 the initial state or None for zeros: (B, n_a), or for "lstm" the pair (a0, c0); mask (T, B) or None.
    Returns: L (float), grads (same keys as params) and, with ``return_messages``,
    the right-to-left messages ∂L/∂a⟨t⟩ (T, B, n_a) (for "lstm" the pair with ∂L/∂c⟨t⟩).
    """
    c = get_cell(cell, activation)
    a0, mask, Y, scale, steps = check_placed_inputs(
        params, X, Y, a0, mask, output, activation, reduction, cell, loss_at
    )
    A, cache = c.fast_forward(X, a0, params, mask)
    if steps is None:
        L_t, dZ_y = step_losses(output_logits(A, params), Y, output, mask)
        L = float(L_t.sum()) * scale
        if scale != 1.0:
            dZ_y *= scale  # the reduction scales every gradient alike
        dA, head_grads = output_backward(dZ_y, A, params)
    else:
        L_s, _, dA, head_grads = placed_head(A, params, Y, output, steps, scale)
        L = float(L_s.sum()) * scale
    _, _, grads, M = c.fast_backward(dA, cache, messages=return_messages, need_dX=False)
    grads.update(head_grads)
    grads = {k: grads[k] for k in params}  # exactly the keys of params, in their order
    return (L, grads, M) if return_messages else (L, grads)
