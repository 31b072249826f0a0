"""The long short-term memory cell (LSTM), PyTorch's form, and its BPTT, written by hand.

The state is the pair (a⟨t⟩, c⟨t⟩), PyTorch's (h_t, c_t). Forward, gates packed i | f | g | o
(PyTorch's order; the lecture's names on the right):

    i⟨t⟩ = σ(W_ii x⟨t⟩ + W_hi a⟨t−1⟩ + b_i)          input gate          Γ_u
    f⟨t⟩ = σ(W_if x⟨t⟩ + W_hf a⟨t−1⟩ + b_f)          forget gate         Γ_f
    g⟨t⟩ = tanh(W_ig x⟨t⟩ + W_hg a⟨t−1⟩ + b_g)       candidate           c̃⟨t⟩
    o⟨t⟩ = σ(W_io x⟨t⟩ + W_ho a⟨t−1⟩ + b_o)          output gate         Γ_o
    c⟨t⟩ = f⟨t⟩ ⊙ c⟨t−1⟩ + i⟨t⟩ ⊙ g⟨t⟩
    a⟨t⟩ = o⟨t⟩ ⊙ tanh(c⟨t⟩)

Parameters, as blocks of n_a rows: W_ax = [W_ii; W_if; W_ig; W_io] (4n_a, n_x) = weight_ih_l0,
W_aa = [W_hi; W_hf; W_hg; W_ho] (4n_a, n_a) = weight_hh_l0, b_a (4n_a,) = bias_ih_l0 + bias_hh_l0.
To PyTorch: weight_ih = W_ax, weight_hh = W_aa, bias_ih = b_a, bias_hh = 0.

Backward, right to left. da⟨t⟩ = dA[t] + da_next is the whole message reaching a⟨t⟩, dc_next
the message reaching c⟨t⟩ through c⟨t+1⟩ (``(da_T, dc_T)`` from a later segment at t = T).
Hats are pre-activations:

    dc⟨t⟩ = dc_next + da⟨t⟩ ⊙ o ⊙ (1 − tanh²c⟨t⟩)      the whole message reaching c⟨t⟩
    dô⟨t⟩ = da⟨t⟩ ⊙ tanh c⟨t⟩ ⊙ o(1 − o)             through o ⊙ tanh c, then σ
    dî⟨t⟩ = dc⟨t⟩ ⊙ g ⊙ i(1 − i)                      through i ⊙ g, then σ
    df̂⟨t⟩ = dc⟨t⟩ ⊙ c⟨t−1⟩ ⊙ f(1 − f)                 through f ⊙ c⟨t−1⟩, then σ
    dĝ⟨t⟩ = dc⟨t⟩ ⊙ i ⊙ (1 − g²)                      through i ⊙ g, then tanh
    dc_next ← dc⟨t⟩ ⊙ f                               the messages sent to step t−1
    da_next ← dĜ⟨t⟩ W_aa,     dĜ⟨t⟩ = [dî | df̂ | dĝ | dô]   (B, 4n_a)
    ∂L/∂W_ax = Σ_t dĜ⟨t⟩ᵀ x⟨t⟩    ∂L/∂W_aa = Σ_t dĜ⟨t⟩ᵀ a⟨t−1⟩    ∂L/∂b_a = Σ_t dĜ⟨t⟩

Each line is a message times a factor that does not depend on it, all from the saved gates:
dc⟨t⟩ = dc_next + da⟨t⟩ ⊙ K_o and dĜ = [dc ⊙ F_i | dc ⊙ F_f | dc ⊙ F_g | da ⊙ F_o] with

    K_o = o(1 − tanh²c)      F_i = g ⊙ i(1 − i)      F_f = c⟨t−1⟩ ⊙ f(1 − f)
    F_g = i(1 − g²)          F_o = tanh c ⊙ o(1 − o)

and the same factors give the step's state Jacobian, for the state vector [a; c] (2n_a):

    ∂c⟨t⟩/∂a⟨t−1⟩ = Σ_{k=i,f,g} diag(F_k) W_hk =: J_ca      ∂c⟨t⟩/∂c⟨t−1⟩ = diag(f)
    ∂a⟨t⟩/∂a⟨t−1⟩ = diag(F_o) W_ho + diag(K_o) J_ca         ∂a⟨t⟩/∂c⟨t−1⟩ = diag(K_o ⊙ f)

Masks (T, B), as in ``bptt.drivers.rnn``: a skipped step carries both a⟨t−1⟩ and c⟨t−1⟩ unchanged, adds
nothing to any gradient, ignores dA[t] and passes both messages through (in the backward its
factors are 0 and its f is 1).

Speed: every input projection is one GEMM before the loop; all gradients and dX are one GEMM
each after it; per step, each way, the loop holds the recurrent GEMM and the step's elementwise
work, written into preallocated (T, B, ·) buffers. That elementwise work runs

- in one compiled pass each way when the optional extension ``bptt._kernels`` is built
  (``lstm_step``: the four gates, c⟨t⟩, tanh c⟨t⟩ and a⟨t⟩ from the pre-activations;
  ``lstm_step_backward``: da⟨t⟩, dc⟨t⟩, dĜ⟨t⟩ and dc_next from the messages and the saved gates).
  For small steps (a single short sequence) the recurrent product joins the same call. A skipped
  entry's backward runs with the gates i = 0, f = 1, o = 0, which pass both messages through
  unchanged and give no gradient, so a masked batch needs no other work in the loop;
- in NumPy otherwise (no compiler, ``BPTT_NO_KERNELS=1``, other array types): the forward takes
  one σ over all four gates at once (g = tanh ĝ = 2σ(2ĝ) − 1, the ĝ rows of the weights doubled
  once before the loop) and the cell update; the backward takes the factors for all steps at once
  before its loop, so a step is one GEMM and six elementwise calls.

``gated_loop`` (cells.base) says which loops run; the tests run each of them and hold them
to the same results.

Zoneout (Krueger et al., 2016; ``zoneout=(Z_a, Z_c)``): each unit of a⟨t⟩ and of c⟨t⟩ may keep its
previous value instead of taking the step's. With c̃⟨t⟩, ã⟨t⟩ = o ⊙ tanh c̃⟨t⟩ the step's values above,

    c⟨t⟩ = c̃⟨t⟩ + Z_c⟨t⟩ ⊙ (c⟨t−1⟩ − c̃⟨t⟩)        a⟨t⟩ = ã⟨t⟩ + Z_a⟨t⟩ ⊙ (a⟨t−1⟩ − ã⟨t⟩)

Z are 0/1 masks while training (1 with probability z: the unit is kept), the numbers z themselves at
evaluation (the masks' expectation); a skipped step is Z = 1. ``cache.C`` holds c⟨t⟩ and
``cache.tanh_C`` tanh c̃⟨t⟩. Backward, with da, dc the whole messages reaching a⟨t⟩ and c⟨t⟩:

    dã = (1 − Z_a) ⊙ da        dc̃ = (1 − Z_c) ⊙ dc + dã ⊙ K_o        dĜ from dc̃ and dã as above
    dc_next ← f ⊙ dc̃ + Z_c ⊙ dc        da_next ← dĜ W_aa + Z_a ⊙ da

The forward mixes in NumPy after each step (compiled or not); the backward runs ``_backward_zoneout``.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from ..backend import array_namespace
from ..drivers.rnn import _saturating, _skipped, _step_g, _tanh
from ..errors import BpttError, check_array
from ..heads.classification import sigmoid
from .base import (
    Cell,
    check_pair,
    check_params,
    check_sequence,
    check_state,
    check_upstream,
    chrono_bias,
    gated_loop,
    input_projections,
    orthogonal,
    previous,
    sigmoid_,
    step_kernels,
    uniform,
)


class LSTMStepCache(NamedTuple):
    """What one step's backward needs: its inputs, the gates and tanh c⟨t⟩."""

    x_t: object  # (B, n_x)
    a_prev: object  # (B, n_a)
    c_prev: object  # (B, n_a)
    i: object  # (B, n_a) input gate
    f: object  # (B, n_a) forget gate
    g: object  # (B, n_a) candidate
    o: object  # (B, n_a) output gate
    tanh_c: object  # (B, n_a) tanh c⟨t⟩
    params: dict


class LSTMCache(NamedTuple):
    """What the sequence backward needs; returned by ``lstm_forward``, never stored on an object.

    ``cache.C`` holds every cell state c⟨1⟩ … c⟨T⟩ (as ``A`` holds every a⟨t⟩).
    """

    X: object  # (T, B, n_x)
    a0: object  # (B, n_a)
    c0: object  # (B, n_a)
    A: object  # (T, B, n_a)  a⟨1⟩ … a⟨T⟩
    C: object  # (T, B, n_a)  c⟨1⟩ … c⟨T⟩
    mask: object  # (T, B) bool or None
    params: dict
    G: object  # (T, B, 4n_a) the gates [i | f | g | o] at every step
    tanh_C: object  # (T, B, n_a) tanh c⟨t⟩ at every step (tanh c̃⟨t⟩ with zoneout)
    zoneout: object = None  # (Z_a, Z_c), each (T, B, n_a) or a number, the mask folded in; or None


def lstm_step_forward(x_t, state_prev, params):
    """One step of the LSTM (see the module docstring).

    Shapes: x_t (B, n_x), state_prev = (a_prev, c_prev), each (B, n_a).
    Returns: (a_next, c_next), cache.
    """
    a_prev, c_prev = check_pair("state_prev", state_prev, LSTM.title)
    sizes = {}
    dtype = check_params(LSTM, params, sizes)
    for name, x, dims in (
        ("x_t", x_t, ("B", "n_x")),
        ("a_prev", a_prev, ("B", "n_a")),
        ("c_prev", c_prev, ("B", "n_a")),
    ):
        check_array(name, x, dims, sizes=sizes)
        if x.dtype != dtype:
            raise BpttError(f"{name}: dtype {x.dtype} differs from the parameters' {dtype}; cast one of them")
    n_a = sizes["n_a"]
    z = x_t @ params["W_ax"].T + a_prev @ params["W_aa"].T + params["b_a"]  # (B, 4n_a) every gate
    i, f, o = sigmoid(z[:, :n_a]), sigmoid(z[:, n_a : 2 * n_a]), sigmoid(z[:, 3 * n_a :])
    g = _tanh(z[:, 2 * n_a : 3 * n_a])
    c_next = f * c_prev + i * g
    tanh_c = _tanh(c_next)
    a_next = o * tanh_c
    return (a_next, c_next), LSTMStepCache(x_t, a_prev, c_prev, i, f, g, o, tanh_c, params)


def lstm_step_backward(d_next, cache):
    """Backward of one step, given the gradients (da_next, dc_next) reaching a⟨t⟩ and c⟨t⟩.

    da_next is the whole gradient reaching a⟨t⟩; dc_next the one reaching c⟨t⟩ through c⟨t+1⟩ only.
    Shapes: da_next, dc_next (B, n_a).
    Returns: dx_t (B, n_x), (da_prev, dc_prev) (B, n_a) each, grads (this step's share of each gradient).
    """
    if not isinstance(cache, LSTMStepCache):
        raise BpttError(
            f"cache: expected the cache returned by lstm_step_forward, got {type(cache).__name__}"
        )
    da_next, dc_next = check_pair("d_next", d_next, LSTM.title)
    x_t, a_prev, c_prev, i, f, g, o, tanh_c, p = cache
    xp = array_namespace(a_prev)
    sizes = {"B": i.shape[0], "n_a": i.shape[1]}
    check_array("da_next", da_next, ("B", "n_a"), sizes=sizes)
    check_array("dc_next", dc_next, ("B", "n_a"), sizes=sizes)
    dc = dc_next + da_next * o * (1 - tanh_c * tanh_c)  # backprop through o ⊙ tanh c: the whole dc⟨t⟩
    do_hat = da_next * tanh_c * o * (1 - o)  # backprop through o ⊙ tanh c, to o, then σ
    di_hat = dc * g * i * (1 - i)  # backprop through i ⊙ g, to i, then σ
    df_hat = dc * c_prev * f * (1 - f)  # backprop through f ⊙ c⟨t−1⟩, to f, then σ
    dg_hat = dc * i * (1 - g * g)  # backprop through i ⊙ g, to g, then tanh
    dG = xp.concatenate([di_hat, df_hat, dg_hat, do_hat], axis=1)  # (B, 4n_a)
    dx_t = dG @ p["W_ax"]  # backprop through W_ax x⟨t⟩
    da_prev = dG @ p["W_aa"]  # backprop through W_aa a⟨t−1⟩
    dc_prev = dc * f  # backprop through f ⊙ c⟨t−1⟩
    grads = {"W_ax": dG.T @ x_t, "W_aa": dG.T @ a_prev, "b_a": dG.sum(axis=0)}
    return dx_t, (da_prev, dc_prev), grads


def check_zoneout(zoneout, shape, dtype):
    """``zoneout`` checked: None, or a pair (Z_a, Z_c), each a number in [0, 1] or a (T, B, n_a) array of
    them. Returns: the pair, arrays cast to ``dtype``, or None."""
    if zoneout is None:
        return None
    if not isinstance(zoneout, (tuple, list)) or len(zoneout) != 2:
        raise BpttError("zoneout: expected a pair (Z_a, Z_c) of probabilities or (T, B, n_a) arrays")
    out = []
    for name, z in zip(("Z_a", "Z_c"), zoneout):
        if isinstance(z, (int, float, np.floating, np.integer)) and not isinstance(z, bool):
            z = float(z)
            if not 0 <= z <= 1:
                raise BpttError(f"zoneout: {name}: expected a probability in [0, 1], got {z}")
        else:
            check_array(f"zoneout: {name}", z, ("T", "B", "n_a"), sizes=dict(zip(("T", "B", "n_a"), shape)))
            z = np.asarray(z, dtype=dtype)
            if not ((z >= 0) & (z <= 1)).all():
                raise BpttError(f"zoneout: {name}: expected values in [0, 1]")
        out.append(z)
    return tuple(out)


def check_lstm_inputs(X, state0, params, mask):
    """Validate the arguments of ``lstm_forward``; return ((a0, c0), mask) with defaults filled in."""
    a0, c0 = check_pair("state0", state0, LSTM.title)
    sizes, dtype, mask = check_sequence(LSTM, X, params, mask)
    xp = array_namespace(X)
    return (check_state("a0", a0, sizes, dtype, xp), check_state("c0", c0, sizes, dtype, xp)), mask


def lstm_forward(X, state0, params, mask=None, zoneout=None):
    """Run the LSTM over a batch of sequences, left to right.

    Shapes: X (T, B, n_x), state0 = (a0, c0) each (B, n_a), or None (or a None in the pair) for
    zeros, mask (T, B) or None; zoneout None or (Z_a, Z_c), each a probability or a (T, B, n_a) array
    of 0/1 (see the module docstring).
    Returns: A (T, B, n_a) holding a⟨1⟩ … a⟨T⟩, and the cache for ``lstm_backward`` (``cache.C``
    holds c⟨1⟩ … c⟨T⟩).
    """
    state0, mask = check_lstm_inputs(X, state0, params, mask)
    zoneout = check_zoneout(zoneout, (X.shape[0], X.shape[1], params["W_aa"].shape[1]), X.dtype)
    return _lstm_forward(X, state0, params, mask, zoneout=zoneout)


def _per_step(z, T):
    """A zoneout factor step by step: the (B, n_a) rows of an array, or the number T times."""
    return z if getattr(z, "ndim", 0) == 3 else [z] * T


def _zone(new, prev, z, buf):
    """new ← new + z ⊙ (prev − new), in place: zoneout keeps a share z of each unit's previous value."""
    np.subtract(prev, new, out=buf)
    buf *= z
    new += buf


def _lstm_forward(X, state0, p, mask=None, loop=None, zoneout=None):
    """``lstm_forward`` without the checks: the fast path used inside training."""
    xp = array_namespace(X)
    T, B, n_x = X.shape
    n_a = p["W_aa"].shape[1]
    skips = _skipped(mask, T)
    zones = None
    if zoneout is not None:
        if mask is not None:  # a skipped step keeps every unit: Z = 1
            keep = mask[:, :, None]
            zoneout = tuple(xp.where(keep, z, X.dtype.type(1)).astype(X.dtype) for z in zoneout)
        skips = [None] * T
        zones = list(zip(*(_per_step(z, T) for z in zoneout)))
    a0, c0 = (s.astype(X.dtype, copy=False) for s in state0)
    kernels = step_kernels(X)
    # (T, B, 4n_a): the gates [i | f | g | o], pre-activations first
    G = input_projections(X, p["W_ax"], p["b_a"], kernels)
    A = xp.empty((T, B, n_a), dtype=X.dtype)
    C = xp.empty((T, B, n_a), dtype=X.dtype)
    tanh_C = xp.empty((T, B, n_a), dtype=X.dtype)
    loop = gated_loop(B, n_a, 4, skips, kernels, loop)
    if loop == "numpy":
        _forward_numpy(G, A, C, tanh_C, a0, c0, p["W_aa"], skips, zones)
    else:
        gemv = loop == "gemv" and zones is None  # the gemv loop reads a⟨t−1⟩ inside the next call
        _forward_compiled(G, A, C, tanh_C, a0, c0, p["W_aa"], skips, kernels.lstm_step, gemv, zones)
    return A, LSTMCache(X, a0, c0, A, C, mask, p, G, tanh_C, zoneout)


def _forward_numpy(G, A, C, tanh_C, a0, c0, W_aa, skips, zones=None):
    """The recurrence in NumPy, in place: G[t] holds W_ax x⟨t⟩ + b_a on entry and the gates on return;
    ``zones``: per step (Z_a, Z_c) for zoneout, or None.

    One σ over all four gates a step: g = tanh(ĝ) = 2σ(2ĝ) − 1, with ĝ doubled (exactly) before the
    loop, so a step's gate work is one pass over a contiguous (B, 4n_a) row instead of three strided.
    """
    xp = array_namespace(G)
    T, B, n4 = G.shape
    n_a = n4 // 4
    n2, n3 = 2 * n_a, 3 * n_a
    two, one = G.dtype.type(2), G.dtype.type(1)
    G[:, :, n2:n3] *= two  # 2ĝ's input part
    W_aa_T = W_aa.T.copy()  # (n_a, 4n_a): rows are batch entries ...
    W_aa_T[:, n2:n3] *= two  # ... and the ĝ columns doubled: a⟨t−1⟩ W_aaᵀ gives 2ĝ's recurrent part
    g_a = xp.empty((B, n4), dtype=G.dtype)  # one step's W_aa a⟨t−1⟩
    ig = xp.empty((B, n_a), dtype=G.dtype)  # one step's i ⊙ g
    tanh = _step_g(_tanh, B * n_a, G.dtype)  # looked up once, outside the loop
    I, Fg, Gc, O = G[:, :, :n_a], G[:, :, n_a:n2], G[:, :, n2:n3], G[:, :, n3:]  # (T, B, n_a) views
    a_prev, c_prev = a0, c0
    zones = zones or itertools.repeat(None)
    with _saturating():
        for z, i, f, g, o, a_t, c_t, tc_t, skip_t, zone in zip(G, I, Fg, Gc, O, A, C, tanh_C, skips, zones):
            a_prev.dot(W_aa_T, g_a)  # W_aa a⟨t−1⟩ for all four gates
            z += g_a  # î, f̂, 2ĝ, ô
            sigmoid_(z, z)  # i⟨t⟩, f⟨t⟩, σ(2ĝ), o⟨t⟩
            g *= two
            g -= one  # g⟨t⟩ = 2σ(2ĝ) − 1 = tanh ĝ
            xp.multiply(f, c_prev, out=c_t)
            xp.multiply(i, g, out=ig)
            c_t += ig  # c⟨t⟩ = f ⊙ c⟨t−1⟩ + i ⊙ g
            tanh(c_t, tc_t)
            xp.multiply(o, tc_t, out=a_t)  # a⟨t⟩ = o ⊙ tanh c⟨t⟩
            if zone is not None:  # zoneout: some units keep their previous values
                _zone(a_t, a_prev, zone[0], ig)
                _zone(c_t, c_prev, zone[1], ig)
            if skip_t is not None:  # skipped steps carry a⟨t−1⟩ and c⟨t−1⟩
                xp.copyto(a_t, a_prev, where=skip_t)
                xp.copyto(c_t, c_prev, where=skip_t)
            a_prev, c_prev = a_t, c_t


def _forward_compiled(G, A, C, tanh_C, a0, c0, W_aa, skips, lstm_step, gemv, zones=None):
    """``_forward_numpy`` with a step's gate work in one compiled call (``lstm_step``).

    ``gemv``: the product a⟨t−1⟩ W_aaᵀ is taken in the same call (small steps; no skipped steps).
    """
    B, n4 = G.shape[1:]
    r = np.empty((B, n4), dtype=G.dtype)  # one step's recurrent part a⟨t−1⟩ W_aaᵀ
    a_prev, c_prev = np.ascontiguousarray(a0), np.ascontiguousarray(c0)  # the kernel reads whole rows
    # (n_a, 4n_a): rows are batch entries; a dense copy, not the transposed view: the kernel reads
    # whole rows, and BLAS takes 2-3x as long on the view at B = 16, n_a = 64
    W_aa_T = np.ascontiguousarray(W_aa.T)
    if gemv:
        for z, a_t, c_t, tc_t in zip(G, A, C, tanh_C):  # z holds W_ax x⟨t⟩ + b_a on entry
            lstm_step(a_prev, W_aa_T, r, z, c_prev, c_t, tc_t, a_t)  # gates, c⟨t⟩, tanh c⟨t⟩, a⟨t⟩
            a_prev, c_prev = a_t, c_t
        return
    buf = np.empty_like(a_prev) if zones else None
    for z, a_t, c_t, tc_t, skip_t, zone in zip(G, A, C, tanh_C, skips, zones or itertools.repeat(None)):
        a_prev.dot(W_aa_T, r)  # W_aa a⟨t−1⟩ for all four gates
        lstm_step(None, None, r, z, c_prev, c_t, tc_t, a_t)  # gates, c⟨t⟩, tanh c⟨t⟩, a⟨t⟩: one pass
        if zone is not None:  # zoneout: some units keep their previous values
            _zone(a_t, a_prev, zone[0], buf)
            _zone(c_t, c_prev, zone[1], buf)
        if skip_t is not None:  # skipped steps carry a⟨t−1⟩ and c⟨t−1⟩
            np.copyto(a_t, a_prev, where=skip_t)
            np.copyto(c_t, c_prev, where=skip_t)
        a_prev, c_prev = a_t, c_t


def _factors(G, tanh_c, c_prev):
    """The factors of the module docstring, from the saved gates: F = [F_i | F_f | F_g | F_o] and K_o.

    Shapes: G (…, 4n_a) the gates [i | f | g | o], tanh_c and c_prev (…, n_a), for any leading shape.
    Returns: F (…, 4, n_a), K_o (…, n_a). Every pass writes into them (no temporaries: at (T, B, ·)
    they cost more than the arithmetic).
    """
    xp = array_namespace(G)
    n_a = tanh_c.shape[-1]
    i, f, g, o = (G[..., k * n_a : (k + 1) * n_a] for k in range(4))
    F = xp.empty(tanh_c.shape[:-1] + (4, n_a), dtype=G.dtype)  # (…, 4, n_a)
    F_i, F_f, F_g, F_o = (F[..., k, :] for k in range(4))
    one = G.dtype.type(1)
    xp.subtract(one, i, out=F_i)
    F_i *= i
    F_i *= g  # F_i = g i(1 − i): through i ⊙ g, to i, then σ
    xp.subtract(one, f, out=F_f)
    F_f *= f
    F_f *= c_prev  # F_f = c⟨t−1⟩ f(1 − f): through f ⊙ c⟨t−1⟩, then σ
    xp.multiply(g, g, out=F_g)
    xp.subtract(one, F_g, out=F_g)
    F_g *= i  # F_g = i(1 − g²): through i ⊙ g, to g, then tanh
    xp.subtract(one, o, out=F_o)
    F_o *= o
    F_o *= tanh_c  # F_o = tanh c o(1 − o): through o ⊙ tanh c, to o, then σ
    K_o = xp.multiply(tanh_c, tanh_c)
    xp.subtract(one, K_o, out=K_o)
    K_o *= o  # K_o = o(1 − tanh²c): through o ⊙ tanh c, to c
    return F, K_o


def lstm_backward(dA, cache, d_state_T=None):
    """Backpropagation through time for the LSTM, right to left.

    Shapes: dA (T, B, n_a) gradient reaching each a⟨t⟩ from the outputs only;
    d_state_T = (da_T, dc_T), each (B, n_a) or None, the gradients reaching a⟨T⟩ and c⟨T⟩
    from later (a later segment, or a loss on the final cell state), or None.
    Returns: dX (T, B, n_x), (da0, dc0) each (B, n_a), grads with the keys W_ax, W_aa, b_a.
    """
    if not isinstance(cache, LSTMCache):
        raise BpttError(f"cache: expected the LSTMCache returned by lstm_forward, got {type(cache).__name__}")
    da_T, dc_T = check_pair("d_state_T", d_state_T, LSTM.title)
    check_upstream(dA, cache.A, [("da_T", da_T), ("dc_T", dc_T)])
    dX, d_state0, grads, _ = _lstm_backward(dA, cache, d_state_T)
    return dX, d_state0, grads


def _lstm_backward(dA, cache, d_state_T=None, messages=False, need_dX=True, loop=None):
    """``lstm_backward`` without the checks.

    Returns: dX (or None), (da0, dc0), grads, and the messages (M_a, M_c), each (T, B, n_a) —
    the whole ∂L/∂a⟨t⟩ and ∂L/∂c⟨t⟩ at every step — when ``messages`` is true, else None.
    """
    X, a0, c0, A, C, mask, p, G, tanh_C, Z = cache
    xp = array_namespace(A)
    T, B, n_a = A.shape
    n_x = X.shape[2]
    skips = _skipped(mask, T)
    M_a = xp.empty((T, B, n_a), dtype=A.dtype) if messages else None
    M_c = xp.empty((T, B, n_a), dtype=A.dtype) if messages else None
    da_T, dc_T = (None, None) if d_state_T is None else d_state_T
    if mask is not None:
        dA = dA * mask[:, :, None]  # skipped steps ignore their output gradient
    kernels = step_kernels(A)
    loop = gated_loop(B, n_a, 4, skips, kernels, loop)
    if Z is not None:
        D, da0, dc0 = _backward_zoneout(dA, cache, da_T, dc_T, M_a, M_c, kernels)
    elif loop == "numpy":
        D, da0, dc0 = _backward_numpy(dA, cache, skips, da_T, dc_T, M_a, M_c)
    else:
        D, da0, dc0 = _backward_compiled(dA, cache, skips, da_T, dc_T, M_a, M_c, kernels, loop == "gemv")
    D2 = D.reshape(T * B, 4 * n_a)  # (T*B, 4n_a) dĜ⟨t⟩ as rows
    # Σ_t dĜ⟨t⟩ᵀ [x⟨t⟩ | a⟨t−1⟩]: both weight gradients in one GEMM, against what each step read
    # (0.80–0.96 of the time of two GEMMs at T·B ≥ 1,600)
    H = xp.empty((T, B, n_x + n_a), dtype=A.dtype)  # [x⟨t⟩ | a⟨t−1⟩]
    H[:, :, :n_x] = X
    H[0, :, n_x:] = a0
    H[1:, :, n_x:] = A[:-1]
    dW = D2.T @ H.reshape(T * B, n_x + n_a)  # (4n_a, n_x + n_a)
    grads = {
        "W_ax": dW[:, :n_x].copy(),  # Σ_t dĜ⟨t⟩ᵀ x⟨t⟩
        "W_aa": dW[:, n_x:].copy(),  # Σ_t dĜ⟨t⟩ᵀ a⟨t−1⟩
        "b_a": D2.sum(axis=0),  # Σ_t dĜ⟨t⟩
    }
    dX = (D2 @ p["W_ax"]).reshape(T, B, n_x) if need_dX else None  # backprop through W_ax x⟨t⟩
    return dX, (da0, dc0), grads, (M_a, M_c) if messages else None


def _backward_numpy(dA, cache, skips, da_T, dc_T, M_a, M_c):
    """The recursion in NumPy, right to left; dA is already masked. Writes the messages into M_a, M_c
    when given. Returns: dĜ (T, B, 4, n_a), da0, dc0."""
    X, a0, c0, A, C, mask, p, G, tanh_C, Z = cache
    xp = array_namespace(A)
    T, B, n_a = A.shape
    # D holds the factors [F_i | F_f | F_g | F_o] on entry and dĜ = [dî | df̂ | dĝ | dô] on return
    D, K_o = _factors(G, tanh_C, previous(c0, C))  # (T, B, 4, n_a), (T, B, n_a)
    F_forget = G[:, :, n_a : 2 * n_a]  # (T, B, n_a) view: f⟨t⟩, the share of dc⟨t⟩ that reaches c⟨t−1⟩
    if mask is not None:
        keep = mask[:, :, None]  # (T, B, 1)
        D *= keep[..., None]  # skipped steps add nothing to any gradient ...
        K_o *= keep
        F_forget = xp.where(keep, F_forget, F_forget.dtype.type(1))  # ... and pass the cell message on: f = 1
    D_c, D_o = D[:, :, :3], D[:, :, 3]  # (T, B, 3, n_a), (T, B, n_a) views: the gates dc⟨t⟩ and da⟨t⟩ reach
    D_rows = D.reshape(T, B, 4 * n_a)  # (T, B, 4n_a) view: dĜ⟨t⟩ as rows
    da_bufs = M_a[::-1] if M_a is not None else itertools.repeat(xp.empty((B, n_a), dtype=A.dtype), T)
    dc_bufs = M_c[::-1] if M_c is not None else itertools.repeat(xp.empty((B, n_a), dtype=A.dtype), T)
    da_next = xp.zeros((B, n_a), dtype=A.dtype) if da_T is None else da_T.astype(A.dtype, copy=True)
    dc_next = xp.zeros((B, n_a), dtype=A.dtype) if dc_T is None else dc_T.astype(A.dtype, copy=True)
    W_aa = p["W_aa"]
    stacks = (dA, K_o, F_forget, D_c, D_o, D_rows)  # each (T, B, ·): one view per step
    per_step = zip(*(x[::-1] for x in stacks), da_bufs, dc_bufs, skips[::-1])  # right to left
    for dA_t, k_o, f_t, dc_d, do_d, d_t, da, dc, skip_t in per_step:
        xp.add(dA_t, da_next, out=da)  # the whole message reaching a⟨t⟩ (t = T−1 … 0)
        xp.multiply(da, k_o, out=dc)  # backprop through o ⊙ tanh c⟨t⟩ ...
        dc += dc_next  # ... plus the message from c⟨t+1⟩: the whole message reaching c⟨t⟩
        dc_d *= dc[:, None, :]  # backprop through i ⊙ g and f ⊙ c⟨t−1⟩, then σ and tanh: [dî | df̂ | dĝ]
        do_d *= da  # backprop through o ⊙ tanh c, then σ: dô
        xp.multiply(dc, f_t, out=dc_next)  # backprop through f ⊙ c⟨t−1⟩
        d_t.dot(W_aa, da_next)  # backprop through W_aa a⟨t−1⟩
        if skip_t is not None:
            xp.copyto(da_next, da, where=skip_t)  # skipped steps pass the message on
    return D, da_next, dc_next


def _backward_zoneout(dA, cache, da_T, dc_T, M_a, M_c, kernels):
    """The recursion with zoneout (the module docstring), right to left; dA is already masked and the
    mask is folded into Z. A step's gate work is the compiled ``lstm_step_backward`` (or its NumPy twin,
    ``_step_backward``) given dã and (1 − Z_c) ⊙ dc; the zoneout around it is NumPy's. Writes the
    messages into M_a, M_c when given. Returns: dĜ (T, B, 4, n_a), da0, dc0."""
    X, a0, c0, A, C, mask, p, G, tanh_C, (Z_a, Z_c) = cache
    T, B, n_a = A.shape
    dtype = A.dtype
    one = dtype.type(1)
    D = np.empty((T, B, 4 * n_a), dtype=dtype)  # dĜ⟨t⟩ as rows
    da = np.zeros((B, n_a), dtype) if da_T is None else np.array(da_T, dtype=dtype, order="C")
    dc = np.zeros((B, n_a), dtype) if dc_T is None else np.array(dc_T, dtype=dtype, order="C")
    da_hat, dc_in, r, zero, spare = (np.zeros((B, n_a), dtype) for _ in range(5))
    W_aa = np.ascontiguousarray(p["W_aa"])  # (4n_a, n_a)
    step_backward = kernels.lstm_step_backward if kernels is not None else _step_backward
    c_prevs = [np.ascontiguousarray(c0), *C[:-1]]  # c⟨t−1⟩ of each step
    # per step, Z and the shares 1 − Z that take the step's values (numbers, or (B, n_a) rows)
    zones = zip(*(_per_step(z, T) for z in (Z_a, Z_c, one - Z_a, one - Z_c)))
    per_step = list(zip(range(T), dA, G, c_prevs, tanh_C, D, zones))
    for t, dA_t, g_t, c_prev, tc_t, d_t, (z_a, z_c, keep_a, keep_c) in per_step[::-1]:
        da += dA_t  # the whole message reaching a⟨t⟩
        if M_a is not None:
            M_a[t], M_c[t] = da, dc
        np.multiply(da, keep_a, out=da_hat)  # backprop through the zoneout of a: dã
        np.multiply(dc, keep_c, out=dc_in)  # ... and of c: the share of dc that reaches c̃
        # backprop through o ⊙ tanh c̃, the cell update, σ and tanh: dĜ⟨t⟩, and dc_in ← f ⊙ dc̃
        step_backward(None, None, zero, da_hat, dc_in, g_t, c_prev, tc_t, d_t, spare, r)
        dc *= z_c  # the kept share of c⟨t⟩ is c⟨t−1⟩ ...
        dc += dc_in  # ... and the rest reaches it through f ⊙ c⟨t−1⟩
        d_t.dot(W_aa, r)  # backprop through W_aa a⟨t−1⟩ ...
        da *= z_a
        da += r  # ... plus the kept share of a⟨t⟩
    return D.reshape(T, B, 4, n_a), da, dc


def _step_backward(x, W, r, dA_t, dc_next, g_t, c_prev, tc_t, d_t, da, dc):
    """``lstm_step_backward`` of the compiled kernels in NumPy (without its optional product x W)."""
    n_a = c_prev.shape[-1]
    np.add(dA_t, r, out=da)
    F, K_o = _factors(g_t, tc_t, c_prev)  # (B, 4, n_a), (B, n_a)
    np.multiply(da, K_o, out=dc)
    dc += dc_next  # the whole message reaching c⟨t⟩
    F[:, :3] *= dc[:, None, :]
    F[:, 3] *= da
    d_t[...] = F.reshape(d_t.shape)
    np.multiply(dc, g_t[:, n_a : 2 * n_a], out=dc_next)


def _identity_gates(G, skips):
    """Per step, the gates the compiled backward reads: G[t], or for a step with skipped entries a
    copy with i = 0, f = 1, o = 0 there — with those, dc⟨t⟩ = dc_next, dc_next ← dc⟨t⟩ and dĜ = 0
    exactly: the step passes the cell message on and adds nothing to any gradient."""
    n_a = G.shape[2] // 4
    gates = list(G)  # (B, 4n_a) views
    for t, skip_t in enumerate(skips):
        if skip_t is not None:
            rows = skip_t[:, 0]  # (B,) bool: the skipped entries
            gates[t] = G[t].copy()
            gates[t][rows, : 2 * n_a] = np.repeat(np.array([0, 1], dtype=G.dtype), n_a)  # i = 0, f = 1
            gates[t][rows, 3 * n_a :] = 0  # o = 0
    return gates


def _backward_compiled(dA, cache, skips, da_T, dc_T, M_a, M_c, kernels, gemv):
    """``_backward_numpy`` with a step's elementwise work in one compiled call (``lstm_step_backward``).

    ``gemv``: the product dĜ⟨t+1⟩ W_aa is taken in the same call (small steps; no skipped steps).
    Returns: dĜ (T, B, 4, n_a), da0, dc0.
    """
    X, a0, c0, A, C, mask, p, G, tanh_C, Z = cache
    T, B, n_a = A.shape
    dtype = A.dtype
    dA = dA.astype(dtype, copy=False)
    if dA.strides[-1] != dA.itemsize:  # the kernel reads rows of adjacent numbers
        dA = np.ascontiguousarray(dA)
    D = np.empty((T, B, 4 * n_a), dtype=dtype)  # dĜ⟨t⟩ = [dî | df̂ | dĝ | dô] as rows
    W_aa = np.ascontiguousarray(p["W_aa"])  # (4n_a, n_a)
    # r: the message reaching a⟨t⟩ through the gates of step t+1, dĜ⟨t+1⟩ W_aa (at t = T−1: da_T)
    r = np.zeros((B, n_a), dtype) if da_T is None else np.array(da_T, dtype=dtype, order="C")
    dc_next = np.zeros((B, n_a), dtype) if dc_T is None else np.array(dc_T, dtype=dtype, order="C")
    da_bufs = M_a[::-1] if M_a is not None else itertools.repeat(np.empty((B, n_a), dtype), T)
    dc_bufs = M_c[::-1] if M_c is not None else itertools.repeat(np.empty((B, n_a), dtype), T)
    gates = _identity_gates(G, skips)[::-1]
    c_prevs = itertools.chain(C[-2::-1], [np.ascontiguousarray(c0)])  # c⟨T−1⟩ … c⟨0⟩
    step_backward = kernels.lstm_step_backward
    per_step = zip(dA[::-1], gates, c_prevs, tanh_C[::-1], D[::-1], da_bufs, dc_bufs, skips[::-1])
    if gemv:
        x = W = None  # step T−1 reads r = da_T as it is; the others compute r = dĜ⟨t+1⟩ W_aa in the call
        for dA_t, g_t, c_prev, tc_t, d_t, da, dc, _ in per_step:
            # backprop through o ⊙ tanh c⟨t⟩, the cell update, σ and tanh: da⟨t⟩, dc⟨t⟩, dĜ⟨t⟩, dc_next
            step_backward(x, W, r, dA_t, dc_next, g_t, c_prev, tc_t, d_t, da, dc)
            x, W = d_t, W_aa
        return D.reshape(T, B, 4, n_a), D[0] @ W_aa, dc_next  # backprop through W_aa a⟨0⟩
    for dA_t, g_t, c_prev, tc_t, d_t, da, dc, skip_t in per_step:
        # backprop through o ⊙ tanh c⟨t⟩, the cell update, σ and tanh: da⟨t⟩, dc⟨t⟩, dĜ⟨t⟩, dc_next
        step_backward(None, None, r, dA_t, dc_next, g_t, c_prev, tc_t, d_t, da, dc)
        d_t.dot(W_aa, r)  # backprop through W_aa a⟨t−1⟩
        if skip_t is not None:
            np.copyto(r, da, where=skip_t)  # skipped steps pass the message on
    return D.reshape(T, B, 4, n_a), r, dc_next


def lstm_state_jacobian(cache, t):
    """∂(a⟨t⟩, c⟨t⟩)/∂(a⟨t−1⟩, c⟨t−1⟩) of the step that wrote A[t], per batch entry.

    The state vector is [a; c]; a skipped step's Jacobian is the identity.
    Shapes: from an LSTMCache over (T, B, n_a); 0 ≤ t < T.
    Returns: J (B, 2n_a, 2n_a), J[b, i, j] = ∂s_i/∂s_prev_j.
    """
    X, a0, c0, A, C, mask, p, G, tanh_C, Z = cache
    xp = array_namespace(A)
    B, n_a = A.shape[1:]
    F, K_o = _factors(G[t], tanh_C[t], c0 if t == 0 else C[t - 1])  # (B, 4, n_a), (B, n_a)
    f = G[t, :, n_a : 2 * n_a]
    W = p["W_aa"].reshape(4, n_a, n_a)  # (4, n_a, n_a) W_hi, W_hf, W_hg, W_ho
    J_ca = xp.einsum("bki,kij->bij", F[:, :3], W[:3])  # ∂c⟨t⟩/∂a⟨t−1⟩ = Σ_k diag(F_k) W_hk
    diag = xp.arange(n_a)
    J = xp.zeros((B, 2 * n_a, 2 * n_a), dtype=A.dtype)
    J[:, :n_a, :n_a] = F[:, 3, :, None] * W[3] + K_o[:, :, None] * J_ca  # ∂a⟨t⟩/∂a⟨t−1⟩
    J[:, n_a:, :n_a] = J_ca  # ∂c⟨t⟩/∂a⟨t−1⟩
    J[:, diag, n_a + diag] = K_o * f  # ∂a⟨t⟩/∂c⟨t−1⟩ = diag(K_o ⊙ f)
    J[:, n_a + diag, n_a + diag] = f  # ∂c⟨t⟩/∂c⟨t−1⟩ = diag(f)
    if mask is not None:
        J[~mask[t]] = xp.eye(2 * n_a, dtype=J.dtype)  # a skipped step carries (a, c)
    return J


def lstm_init(n_x, n_a, rng, dtype, init="default", T_max=None):
    """PyTorch's default, U(±1/√n_a) for every weight and both biases (b_a = bias_ih + bias_hh), then:

    - ``init="forget1"``: forget-gate bias b_f = 1 (Jozefowicz, Zaremba & Sutskever, 2015);
    - ``init="chrono"``: b_f ~ log U(1, T_max − 1) and b_i = −b_f (Tallec & Ollivier, 2018),
      for dependencies of up to about T_max steps;
    - ``init="orthogonal"``: each gate's block of W_aa a random orthogonal matrix.
    """
    W_ax = uniform(rng, n_a, (4 * n_a, n_x))
    W_aa = uniform(rng, n_a, (4 * n_a, n_a))
    b_a = uniform(rng, n_a, 4 * n_a) + uniform(rng, n_a, 4 * n_a)  # bias_ih + bias_hh
    if init == "forget1":
        b_a[n_a : 2 * n_a] = 1.0
    elif init == "chrono":
        b_f = chrono_bias(rng, n_a, T_max)
        b_a[n_a : 2 * n_a] = b_f
        b_a[:n_a] = -b_f
    elif init == "orthogonal":
        W_aa = orthogonal(rng, n_a, 4)
    params = {"W_ax": W_ax, "W_aa": W_aa, "b_a": b_a}
    return {k: v.astype(dtype) for k, v in params.items()}


LSTM = Cell(
    name="lstm",
    gates=4,
    paired=True,
    cache_type=LSTMCache,
    init=lstm_init,
    forward=lstm_forward,
    backward=lstm_backward,
    fast_forward=_lstm_forward,
    fast_backward=_lstm_backward,
    check_inputs=check_lstm_inputs,
    state_jacobian=lstm_state_jacobian,
    inits=("default", "forget1", "chrono", "orthogonal"),
    title="an LSTM",
)
