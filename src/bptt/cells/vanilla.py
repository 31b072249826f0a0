"""The vanilla cell as a registry entry: a thin adapter to ``bptt.drivers.rnn``, used unchanged.

The equations, the loops and their fast paths (compiled kernels, one GEMM per step for short
states) live in ``bptt.drivers.rnn``; this module only describes them as a ``Cell``, one per activation
g (tanh or relu), and adds the state Jacobian:

    ∂a⟨t⟩/∂a⟨t−1⟩ = diag(g′(z⟨t⟩)) W_aa          g′ from the saved output a⟨t⟩
"""

from __future__ import annotations

from functools import partial

import numpy as np

from ..backend import array_namespace
from ..drivers.rnn import (
    ACTIVATIONS,
    RNNCache,
    _backward,
    _forward,
    check_sequence_inputs,
    rnn_backward,
    rnn_forward,
)
from .base import Cell, orthogonal, uniform


def vanilla_state_jacobian(cache, t):
    """∂a⟨t⟩/∂a⟨t−1⟩ of the step that wrote A[t], per batch entry (the identity where it was skipped).

    Shapes: from an RNNCache over (T, B, n_a); 0 ≤ t < T.
    Returns: J (B, n_a, n_a), J[b, i, j] = ∂a_i/∂a_prev_j.
    """
    X, a0, A, mask, p, g_prime = cache
    xp = array_namespace(A)
    J = g_prime(A[t])[:, :, None] * p["W_aa"]  # diag(g′(z⟨t⟩)) W_aa: (B, n_a, n_a)
    if mask is not None:
        J[~mask[t]] = xp.eye(A.shape[2], dtype=J.dtype)  # a skipped step carries a⟨t−1⟩
    return J


def vanilla_init(n_x, n_a, rng, dtype, init="default", T_max=None):
    """Weights ~ U(±1/√n_a) like ``torch.nn.RNN``, zero bias (what ``init_params`` has always drawn).

    - ``init="orthogonal"``: W_aa a random orthogonal matrix;
    - ``init="identity"``: W_aa = I and W_ax ~ N(0, 0.001²), the IRNN of Le, Jaitly & Hinton (2015)
      with g = relu: a⟨t⟩ = a⟨t−1⟩ + small input, so nothing fades at first.
    """
    if init == "identity":
        W_ax, W_aa = rng.normal(0.0, 1e-3, size=(n_a, n_x)), np.eye(n_a)
    else:
        W_ax = uniform(rng, n_a, (n_a, n_x))
        W_aa = orthogonal(rng, n_a) if init == "orthogonal" else uniform(rng, n_a, (n_a, n_a))
    return {"W_ax": W_ax.astype(dtype), "W_aa": W_aa.astype(dtype), "b_a": np.zeros(n_a, dtype=dtype)}


def vanilla_cell(activation="tanh"):
    """The vanilla cell with g = ``activation`` bound into its forward functions."""
    return Cell(
        name="rnn",
        gates=1,
        paired=False,
        cache_type=RNNCache,
        init=vanilla_init,
        forward=partial(rnn_forward, activation=activation),
        backward=rnn_backward,  # g′ travels in the cache
        fast_forward=partial(_forward, activation=activation),
        fast_backward=_backward,
        check_inputs=check_sequence_inputs,
        state_jacobian=vanilla_state_jacobian,
        inits=("default", "orthogonal", "identity"),
        title="the vanilla cell",
        options={"activation": activation},
    )


VANILLA = {activation: vanilla_cell(activation) for activation in ACTIVATIONS}  # activation -> Cell
