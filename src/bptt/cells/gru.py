"""The gated recurrent unit (GRU), PyTorch's form, and its BPTT, written by hand.

This is PyTorch's GRU (``torch.nn.GRU``), not Cho et al.'s original (2014) nor the lecture's:
the reset gate r multiplies the hidden projection *after* the matmul, r ⊙ (W_hn a⟨t−1⟩ + b_hn),
where Cho's multiplies the state before it, W (r ⊙ a⟨t−1⟩); and the update gate z keeps the
old state (the lecture's Γ_u takes the candidate). Forward, gates packed r | z | n:

    r⟨t⟩   = σ(W_ir x⟨t⟩ + W_hr a⟨t−1⟩ + b_r)            reset gate
    z⟨t⟩   = σ(W_iz x⟨t⟩ + W_hz a⟨t−1⟩ + b_z)            update gate
    h_n⟨t⟩ = W_hn a⟨t−1⟩ + b_hn                           the candidate's hidden projection
    n⟨t⟩   = tanh(W_in x⟨t⟩ + b_in + r⟨t⟩ ⊙ h_n⟨t⟩)      candidate
    a⟨t⟩   = (1 − z⟨t⟩) ⊙ n⟨t⟩ + z⟨t⟩ ⊙ a⟨t−1⟩           computed as n + z ⊙ (a⟨t−1⟩ − n), as PyTorch does

Parameters, as blocks of n_a rows (PyTorch's names on the right):

    W_ax = [W_ir; W_iz; W_in]        (3n_a, n_x)    weight_ih_l0
    W_aa = [W_hr; W_hz; W_hn]        (3n_a, n_a)    weight_hh_l0
    b_a  = [b_r; b_z; b_in]          (3n_a,)        bias_ih_l0 + [bias_hr; bias_hz; 0]: b_in = bias_in alone
    b_hn                             (n_a,)         bias_hn: the hidden bias of n, kept apart because it
                                                    sits inside r ⊙ (·) and so cannot join b_in
To PyTorch: weight_ih = W_ax, weight_hh = W_aa, bias_ih = b_a, bias_hh = [0; 0; b_hn].

Backward, right to left. da⟨t⟩ = dA[t] + da_next is the whole message reaching a⟨t⟩ (dA[t]
through the outputs, da_next through a⟨t+1⟩; ``da_T`` from a later segment at t = T). Hats are
pre-activations (n̂⟨t⟩ = W_in x⟨t⟩ + b_in + r ⊙ h_n):

    dn̂⟨t⟩   = da⟨t⟩ ⊙ (1 − z) ⊙ (1 − n²)                through (1 − z) ⊙ n, then tanh
    dh_n⟨t⟩ = dn̂⟨t⟩ ⊙ r                                 through r ⊙ h_n
    dr̂⟨t⟩   = dn̂⟨t⟩ ⊙ h_n ⊙ r(1 − r)                    through r ⊙ h_n, then σ
    dẑ⟨t⟩   = da⟨t⟩ ⊙ (a⟨t−1⟩ − n) ⊙ z(1 − z)           through z ⊙ (a⟨t−1⟩ − n), then σ
    da_next ← da⟨t⟩ ⊙ z + [dr̂ | dẑ | dh_n] W_aa          the message sent to step t−1
    ∂L/∂W_ax = Σ_t [dr̂ | dẑ | dn̂]ᵀ x⟨t⟩      ∂L/∂b_a  = Σ_t [dr̂ | dẑ | dn̂]
    ∂L/∂W_aa = Σ_t [dr̂ | dẑ | dh_n]ᵀ a⟨t−1⟩   ∂L/∂b_hn = Σ_t dh_n

Each line is da⟨t⟩ times a factor that does not depend on the message, all from the saved
gates: [dr̂ | dẑ | dh_n | dn̂] = da⟨t⟩ ⊙ [F_r | F_z | F_h | F_n] with

    F_n = (1 − z)(1 − n²)     F_h = F_n ⊙ r     F_r = F_h ⊙ h_n ⊙ (1 − r)     F_z = (a⟨t−1⟩ − n) ⊙ z(1 − z)

and the step's state Jacobian is the same sum: ∂a⟨t⟩/∂a⟨t−1⟩ = diag(z) + diag(F_r) W_hr +
diag(F_z) W_hz + diag(F_h) W_hn (so da_next = da⟨t⟩ ∂a⟨t⟩/∂a⟨t−1⟩).

Masks (T, B), as in ``bptt.drivers.rnn``: a skipped step carries a⟨t−1⟩ unchanged, adds nothing to any
gradient, ignores dA[t] and passes the message through — in the backward its factors are 0 and
its z is 1, so the loop has no mask work at all.

Speed: every input projection is one GEMM before the loop; all gradients and dX are one GEMM
each after it; per step, each way, the loop holds the recurrent GEMM and the step's elementwise
work, written into preallocated (T, B, ·) buffers. That elementwise work runs

- in one compiled pass each way when the optional extension ``bptt._kernels`` is built
  (``gru_step``: r, z, h_n, n and a⟨t⟩ from the pre-activations; ``gru_step_backward``: da⟨t⟩,
  [dr̂ | dẑ | dh_n | dn̂] and the direct term da⟨t⟩ ⊙ z from the messages and the saved gates). For
  small steps (a single short sequence) the recurrent product joins the same call. A skipped
  entry's backward runs with z = 1, which passes the message through and gives no gradient;
- in NumPy otherwise (no compiler, ``BPTT_NO_KERNELS=1``, other array types): the backward takes
  the factors F for all steps at once before its loop, so a step is one GEMM and four
  elementwise calls.

``gated_loop`` (cells.base) says which loops run; the tests run each of them and hold them
to the same results.
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


class GRUStepCache(NamedTuple):
    """What one step's backward needs: its inputs, the gates and h_n."""

    x_t: object  # (B, n_x)
    a_prev: object  # (B, n_a)
    r: object  # (B, n_a) reset gate
    z: object  # (B, n_a) update gate
    n: object  # (B, n_a) candidate
    h_n: object  # (B, n_a) W_hn a⟨t−1⟩ + b_hn
    params: dict


class GRUCache(NamedTuple):
    """What the sequence backward needs; returned by ``gru_forward``, never stored on an object."""

    X: object  # (T, B, n_x)
    a0: object  # (B, n_a)
    A: object  # (T, B, n_a)  a⟨1⟩ … a⟨T⟩
    mask: object  # (T, B) bool or None
    params: dict
    G: object  # (T, B, 3n_a) the gates [r | z | n] at every step
    H_n: object  # (T, B, n_a) h_n⟨t⟩ = W_hn a⟨t−1⟩ + b_hn at every step


def gru_step_forward(x_t, a_prev, params):
    """One step of PyTorch's GRU (see the module docstring).

    Shapes: x_t (B, n_x), a_prev (B, n_a).
    Returns: a_next (B, n_a), cache.
    """
    sizes = {}
    dtype = check_params(GRU, params, sizes)
    for name, x, dims in (("x_t", x_t, ("B", "n_x")), ("a_prev", a_prev, ("B", "n_a"))):
        check_array(name, x, dims, sizes=sizes)
        if x.dtype != dtype:
            raise BpttError(f"{name}: dtype {x.dtype} differs from the parameters' {dtype}; cast one of them")
    n_a = sizes["n_a"]
    g_x = x_t @ params["W_ax"].T + params["b_a"]  # (B, 3n_a) every gate's input side
    g_a = a_prev @ params["W_aa"].T  # (B, 3n_a) every gate's hidden side
    r = sigmoid(g_x[:, :n_a] + g_a[:, :n_a])
    z = sigmoid(g_x[:, n_a : 2 * n_a] + g_a[:, n_a : 2 * n_a])
    h_n = g_a[:, 2 * n_a :] + params["b_hn"]
    n = _tanh(g_x[:, 2 * n_a :] + r * h_n)
    a_next = n + z * (a_prev - n)  # (1 − z) ⊙ n + z ⊙ a⟨t−1⟩
    return a_next, GRUStepCache(x_t, a_prev, r, z, n, h_n, params)


def gru_step_backward(da_next, cache):
    """Backward of one step, given the whole gradient da_next reaching a⟨t⟩.

    Shapes: da_next (B, n_a).
    Returns: dx_t (B, n_x), da_prev (B, n_a), grads (this step's share of each gradient).
    """
    if not isinstance(cache, GRUStepCache):
        raise BpttError(f"cache: expected the cache returned by gru_step_forward, got {type(cache).__name__}")
    x_t, a_prev, r, z, n, h_n, p = cache
    xp = array_namespace(a_prev)
    check_array("da_next", da_next, ("B", "n_a"), sizes={"B": n.shape[0], "n_a": n.shape[1]})
    dn_hat = da_next * (1 - z) * (1 - n * n)  # backprop through (1 − z) ⊙ n, then tanh
    dh_n = dn_hat * r  # backprop through r ⊙ h_n, to h_n
    dr_hat = dn_hat * h_n * r * (1 - r)  # backprop through r ⊙ h_n, to r, then σ
    dz_hat = da_next * (a_prev - n) * z * (1 - z)  # backprop through z ⊙ (a⟨t−1⟩ − n), then σ
    dg_x = xp.concatenate([dr_hat, dz_hat, dn_hat], axis=1)  # (B, 3n_a) at W_ax x⟨t⟩ + b_a
    dg_a = xp.concatenate([dr_hat, dz_hat, dh_n], axis=1)  # (B, 3n_a) at W_aa a⟨t−1⟩
    dx_t = dg_x @ p["W_ax"]  # backprop through W_ax x⟨t⟩
    da_prev = da_next * z + dg_a @ p["W_aa"]  # backprop through z ⊙ a⟨t−1⟩ and W_aa a⟨t−1⟩
    grads = {"W_ax": dg_x.T @ x_t, "W_aa": dg_a.T @ a_prev, "b_a": dg_x.sum(axis=0), "b_hn": dh_n.sum(axis=0)}
    return dx_t, da_prev, grads


def check_gru_inputs(X, a0, params, mask):
    """Validate the arguments of ``gru_forward``; return (a0, mask) with defaults filled in."""
    sizes, dtype, mask = check_sequence(GRU, X, params, mask)
    return check_state("a0", a0, sizes, dtype, array_namespace(X)), mask


def gru_forward(X, a0, params, mask=None):
    """Run the GRU over a batch of sequences, left to right.

    Shapes: X (T, B, n_x), a0 (B, n_a) or None for zeros, mask (T, B) or None.
    Returns: A (T, B, n_a) holding a⟨1⟩ … a⟨T⟩, and the cache for ``gru_backward``.
    """
    a0, mask = check_gru_inputs(X, a0, params, mask)
    return _gru_forward(X, a0, params, mask)


def _gru_forward(X, a0, p, mask=None, loop=None):
    """``gru_forward`` without the checks: the fast path used inside training."""
    xp = array_namespace(X)
    T, B, n_x = X.shape
    n_a = p["W_aa"].shape[1]
    skips = _skipped(mask, T)
    a0 = a0.astype(X.dtype, copy=False)
    kernels = step_kernels(X)
    # (T, B, 3n_a): the gates [r | z | n], pre-activations first
    G = input_projections(X, p["W_ax"], p["b_a"], kernels)
    H_n = xp.empty((T, B, n_a), dtype=X.dtype)
    A = xp.empty((T, B, n_a), dtype=X.dtype)
    loop = gated_loop(B, n_a, 3, skips, kernels, loop)
    if loop == "numpy":
        _forward_numpy(G, H_n, A, a0, p["W_aa"], p["b_hn"], skips)
    else:
        _forward_compiled(G, H_n, A, a0, p["W_aa"], p["b_hn"], skips, kernels.gru_step, loop == "gemv")
    return A, GRUCache(X, a0, A, mask, p, G, H_n)


def _forward_numpy(G, H_n, A, a0, W_aa, b_hn, skips):
    """The recurrence in NumPy, in place: G[t] holds W_ax x⟨t⟩ + b_a on entry and the gates on return."""
    xp = array_namespace(G)
    T, B, n3 = G.shape
    n_a = n3 // 3
    n2 = 2 * n_a
    g_a = xp.empty((B, n3), dtype=G.dtype)  # one step's W_aa a⟨t−1⟩
    g_a_rz, g_a_n = g_a[:, :n2], g_a[:, n2:]  # (B, 2n_a), (B, n_a) views
    rh = xp.empty((B, n_a), dtype=G.dtype)  # one step's r ⊙ h_n
    W_aa_T = W_aa.T  # (n_a, 3n_a) view: rows are batch entries
    tanh = _step_g(_tanh, B * n_a, G.dtype)  # looked up once, outside the loop
    RZ, R, Z, N = G[:, :, :n2], G[:, :, :n_a], G[:, :, n_a:n2], G[:, :, n2:]  # views into G
    a_prev = a0
    with _saturating():
        for rz, r, z, n, h_n, a_t, skip_t in zip(RZ, R, Z, N, H_n, A, skips):
            a_prev.dot(W_aa_T, g_a)  # W_aa a⟨t−1⟩ for all three gates
            rz += g_a_rz  # r̂⟨t⟩, ẑ⟨t⟩
            sigmoid_(rz, rz)  # r⟨t⟩, z⟨t⟩
            xp.add(g_a_n, b_hn, out=h_n)  # h_n⟨t⟩ = W_hn a⟨t−1⟩ + b_hn
            xp.multiply(r, h_n, out=rh)
            n += rh  # n̂⟨t⟩
            tanh(n, n)  # n⟨t⟩
            xp.subtract(a_prev, n, out=a_t)
            a_t *= z
            a_t += n  # a⟨t⟩ = n + z ⊙ (a⟨t−1⟩ − n)
            if skip_t is not None:
                xp.copyto(a_t, a_prev, where=skip_t)  # skipped steps carry a⟨t−1⟩
            a_prev = a_t


def _forward_compiled(G, H_n, A, a0, W_aa, b_hn, skips, gru_step, gemv):
    """``_forward_numpy`` with a step's gate work in one compiled call (``gru_step``).

    ``gemv``: the product a⟨t−1⟩ W_aaᵀ is taken in the same call (small steps; no skipped steps).
    """
    B, n3 = G.shape[1:]
    r = np.empty((B, n3), dtype=G.dtype)  # one step's recurrent part a⟨t−1⟩ W_aaᵀ
    b_hn = np.ascontiguousarray(b_hn, dtype=G.dtype)
    a_prev = np.ascontiguousarray(a0)  # the kernel reads whole rows
    # (n_a, 3n_a): rows are batch entries; a dense copy, not the transposed view: the kernel reads
    # whole rows, and BLAS takes 2-3x as long on the view at B = 16, n_a = 64
    W_aa_T = np.ascontiguousarray(W_aa.T)
    if gemv:
        for z, h_n, a_t in zip(G, H_n, A):  # z holds W_ax x⟨t⟩ + b_a on entry
            gru_step(a_prev, W_aa_T, r, b_hn, z, a_prev, h_n, a_t)  # gates, h_n⟨t⟩, a⟨t⟩
            a_prev = a_t
        return
    for z, h_n, a_t, skip_t in zip(G, H_n, A, skips):
        a_prev.dot(W_aa_T, r)  # W_aa a⟨t−1⟩ for all three gates
        gru_step(None, None, r, b_hn, z, a_prev, h_n, a_t)  # gates, h_n⟨t⟩, a⟨t⟩: one pass
        if skip_t is not None:
            np.copyto(a_t, a_prev, where=skip_t)  # skipped steps carry a⟨t−1⟩
        a_prev = a_t


def _factors(G, h_n, a_prev):
    """[F_r | F_z | F_h | F_n] (…, 4, n_a) of the module docstring, from the saved gates.

    Shapes: G (…, 3n_a) the gates [r | z | n], h_n and a_prev (…, n_a), for any leading shape.
    Every pass writes into F (no temporaries: at (T, B, ·) they cost more than the arithmetic).
    """
    xp = array_namespace(G)
    n_a = h_n.shape[-1]
    r, z, n = G[..., :n_a], G[..., n_a : 2 * n_a], G[..., 2 * n_a :]
    F = xp.empty(h_n.shape[:-1] + (4, n_a), dtype=G.dtype)  # (…, 4, n_a)
    F_r, F_z, F_h, F_n = (F[..., k, :] for k in range(4))
    one = G.dtype.type(1)
    xp.subtract(one, z, out=F_z)  # 1 − z (F_z's slot as scratch)
    xp.multiply(n, n, out=F_n)
    xp.subtract(one, F_n, out=F_n)
    F_n *= F_z  # F_n = (1 − z)(1 − n²): through (1 − z) ⊙ n, then tanh
    xp.multiply(F_n, r, out=F_h)  # F_h = F_n r: then through r ⊙ h_n, to h_n
    F_z *= z
    xp.subtract(a_prev, n, out=F_r)  # a⟨t−1⟩ − n (F_r's slot as scratch)
    F_z *= F_r  # F_z = (a⟨t−1⟩ − n) z(1 − z): through z ⊙ (a⟨t−1⟩ − n), then σ
    xp.subtract(one, r, out=F_r)
    F_r *= h_n
    F_r *= F_h  # F_r = F_h h_n (1 − r): through r ⊙ h_n, to r, then σ
    return F


def gru_backward(dA, cache, da_T=None):
    """Backpropagation through time for the GRU, right to left.

    Shapes: dA (T, B, n_a) gradient reaching each a⟨t⟩ from the outputs only;
    da_T (B, n_a) gradient reaching a⟨T⟩ from a later segment, or None.
    Returns: dX (T, B, n_x), da0 (B, n_a), grads with the keys W_ax, W_aa, b_a, b_hn.
    """
    if not isinstance(cache, GRUCache):
        raise BpttError(f"cache: expected the GRUCache returned by gru_forward, got {type(cache).__name__}")
    check_upstream(dA, cache.A, [("da_T", da_T)])
    dX, da0, grads, _ = _gru_backward(dA, cache, da_T)
    return dX, da0, grads


def _gru_backward(dA, cache, da_T=None, messages=False, need_dX=True, loop=None):
    """``gru_backward`` without the checks.

    Returns: dX (or None), da0, grads, and the messages (T, B, n_a) — the whole ∂L/∂a⟨t⟩
    at every step — when ``messages`` is true, else None.
    """
    X, a0, A, mask, p, G, H_n = cache
    xp = array_namespace(A)
    T, B, n_a = A.shape
    n_x = X.shape[2]
    skips = _skipped(mask, T)
    A_prev = previous(a0, A)  # (T, B, n_a) a⟨0⟩ … a⟨T−1⟩
    M = xp.empty((T, B, n_a), dtype=A.dtype) if messages else None
    if mask is not None:
        dA = dA * mask[:, :, None]  # skipped steps ignore their output gradient
    kernels = step_kernels(A)
    loop = gated_loop(B, n_a, 3, skips, kernels, loop)
    if loop == "numpy":
        D, da0 = _backward_numpy(dA, cache, A_prev, da_T, M)
    else:
        D, da0 = _backward_compiled(dA, cache, A_prev, skips, da_T, M, kernels, loop == "gemv")
    D2 = D.reshape(T * B, 4 * n_a)  # (T*B, 4n_a)
    D_rz, D_n = D2[:, : 2 * n_a], D2[:, 3 * n_a :]  # (T*B, 2n_a) [dr̂ | dẑ], (T*B, n_a) dn̂: at W_ax x⟨t⟩ + b_a
    X2 = X.reshape(T * B, n_x)  # (T*B, n_x)
    W_ax = p["W_ax"]
    grads = {
        "W_ax": xp.concatenate([D_rz.T @ X2, D_n.T @ X2]),  # Σ_t [dr̂ | dẑ | dn̂]ᵀ x⟨t⟩: (3n_a, n_x)
        "W_aa": D2[:, : 3 * n_a].T @ A_prev.reshape(T * B, n_a),  # Σ_t [dr̂ | dẑ | dh_n]ᵀ a⟨t−1⟩
        "b_a": xp.concatenate([D_rz.sum(axis=0), D_n.sum(axis=0)]),  # Σ_t [dr̂ | dẑ | dn̂]
        "b_hn": D2[:, 2 * n_a : 3 * n_a].sum(axis=0),  # Σ_t dh_n
    }
    dX = None
    if need_dX:  # backprop through W_ax x⟨t⟩
        dX = (D_rz @ W_ax[: 2 * n_a]).reshape(T, B, n_x)  # (T, B, n_x)
        dX += (D_n @ W_ax[2 * n_a :]).reshape(T, B, n_x)
    return dX, da0, grads, M


def _backward_numpy(dA, cache, A_prev, da_T, M):
    """The recursion in NumPy, right to left; dA is already masked. Writes the messages into M when
    given. Returns: [dr̂ | dẑ | dh_n | dn̂] (T, B, 4, n_a), da0."""
    X, a0, A, mask, p, G, H_n = cache
    xp = array_namespace(A)
    T, B, n_a = A.shape
    # D holds the factors [F_r | F_z | F_h | F_n] on entry and [dr̂ | dẑ | dh_n | dn̂] on return
    D = _factors(G, H_n, A_prev)  # (T, B, 4, n_a)
    Z = G[:, :, n_a : 2 * n_a]  # (T, B, n_a) view: z⟨t⟩, the share of da⟨t⟩ that goes straight to a⟨t−1⟩
    if mask is not None:
        keep = mask[:, :, None]  # (T, B, 1)
        D *= keep[..., None]  # skipped steps add nothing to any gradient ...
        Z = xp.where(keep, Z, Z.dtype.type(1))  # ... and pass the message through: z = 1
    D_a = D.reshape(T, B, 4 * n_a)[:, :, : 3 * n_a]  # (T, B, 3n_a) view [dr̂ | dẑ | dh_n]: at W_aa a⟨t−1⟩
    da_bufs = M[::-1] if M is not None else itertools.repeat(xp.empty((B, n_a), dtype=A.dtype), T)
    da_next = xp.zeros((B, n_a), dtype=A.dtype) if da_T is None else da_T.astype(A.dtype, copy=True)
    rec = xp.empty((B, n_a), dtype=A.dtype)
    W_aa = p["W_aa"]
    for dA_t, z_t, D_t, d_a, da in zip(dA[::-1], Z[::-1], D[::-1], D_a[::-1], da_bufs):
        xp.add(dA_t, da_next, out=da)  # the whole message reaching a⟨t⟩ (t = T−1 … 0)
        D_t *= da[:, None, :]  # backprop through a⟨t⟩'s update, tanh and σ: (B, 4, n_a)
        xp.multiply(da, z_t, out=da_next)  # backprop through z ⊙ a⟨t−1⟩
        d_a.dot(W_aa, rec)  # backprop through W_aa a⟨t−1⟩
        da_next += rec
    return D, da_next


def _update_gates(G, skips):
    """Per step, the gates the compiled backward reads: G[t], or for a step with skipped entries a
    copy with z = 1 there — with it, the gate gradients are 0 exactly and da⟨t⟩ ⊙ z passes the whole
    message on: the step adds nothing to any gradient."""
    n_a = G.shape[2] // 3
    gates = list(G)  # (B, 3n_a) views
    for t, skip_t in enumerate(skips):
        if skip_t is not None:
            gates[t] = G[t].copy()
            gates[t][skip_t[:, 0], n_a : 2 * n_a] = 1  # z = 1 for the skipped entries
    return gates


def _backward_compiled(dA, cache, A_prev, skips, da_T, M, kernels, gemv):
    """``_backward_numpy`` with a step's elementwise work in one compiled call (``gru_step_backward``).

    ``gemv``: the product [dr̂ | dẑ | dh_n]⟨t+1⟩ W_aa is taken in the same call (small steps; no
    skipped steps). Returns: [dr̂ | dẑ | dh_n | dn̂] (T, B, 4, n_a), da0.
    """
    X, a0, A, mask, p, G, H_n = cache
    T, B, n_a = A.shape
    dtype = A.dtype
    dA = dA.astype(dtype, copy=False)
    if dA.strides[-1] != dA.itemsize:  # the kernel reads rows of adjacent numbers
        dA = np.ascontiguousarray(dA)
    D = np.empty((T, B, 4 * n_a), dtype=dtype)  # [dr̂ | dẑ | dh_n | dn̂] as rows
    D_a = D[:, :, : 3 * n_a]  # (T, B, 3n_a) view [dr̂ | dẑ | dh_n]: at W_aa a⟨t−1⟩
    W_aa = np.ascontiguousarray(p["W_aa"])  # (3n_a, n_a)
    # the message reaching a⟨t⟩ from step t+1 is carry + r: carry = da⟨t+1⟩ ⊙ z⟨t+1⟩ (at t = T−1:
    # da_T) and r = [dr̂ | dẑ | dh_n]⟨t+1⟩ W_aa (at t = T−1: 0)
    carry = np.zeros((B, n_a), dtype) if da_T is None else np.array(da_T, dtype=dtype, order="C")
    r = np.zeros((B, n_a), dtype)
    da_bufs = M[::-1] if M is not None else itertools.repeat(np.empty((B, n_a), dtype), T)
    gates = _update_gates(G, skips)[::-1]
    step_backward = kernels.gru_step_backward
    per_step = zip(dA[::-1], gates, H_n[::-1], A_prev[::-1], D[::-1], D_a[::-1], da_bufs)
    x = W = None  # gemv: step T−1 reads r = 0 as it is; the others compute r = D_a⟨t+1⟩ W_aa in the call
    for dA_t, g_t, h_t, a_prev, d_t, d_a, da in per_step:
        # backprop through a⟨t⟩'s update, tanh and σ: da⟨t⟩, [dr̂ | dẑ | dh_n | dn̂], carry ← da⟨t⟩ ⊙ z
        step_backward(x, W, r, dA_t, carry, g_t, h_t, a_prev, d_t, da)
        if gemv:
            x, W = d_a, W_aa
        else:
            d_a.dot(W_aa, r)  # backprop through W_aa a⟨t−1⟩
    if gemv:
        r = D_a[0] @ W_aa  # backprop through W_aa a⟨0⟩
    return D.reshape(T, B, 4, n_a), carry + r  # backprop through z ⊙ a⟨0⟩ and W_aa a⟨0⟩


def gru_state_jacobian(cache, t):
    """∂a⟨t⟩/∂a⟨t−1⟩ of the step that wrote A[t], per batch entry (the identity where it was skipped).

    Shapes: from a GRUCache over (T, B, n_a); 0 ≤ t < T.
    Returns: J (B, n_a, n_a), J[b, i, j] = ∂a_i/∂a_prev_j.
    """
    X, a0, A, mask, p, G, H_n = cache
    xp = array_namespace(A)
    B, n_a = A.shape[1:]
    F = _factors(G[t], H_n[t], a0 if t == 0 else A[t - 1])  # (B, 4, n_a)
    W = p["W_aa"].reshape(3, n_a, n_a)  # (3, n_a, n_a) W_hr, W_hz, W_hn
    J = xp.einsum("bki,kij->bij", F[:, :3], W)  # Σ_k diag(F_k) W_hk: (B, n_a, n_a)
    J[:, xp.arange(n_a), xp.arange(n_a)] += G[t, :, n_a : 2 * n_a]  # + diag(z)
    if mask is not None:
        J[~mask[t]] = xp.eye(n_a, dtype=J.dtype)  # a skipped step carries a⟨t−1⟩
    return J


def gru_init(n_x, n_a, rng, dtype, init="default", T_max=None):
    """PyTorch's default: every weight and both biases ~ U(±1/√n_a); b_a = bias_ih + [bias_hr; bias_hz; 0].

    - ``init="orthogonal"``: each gate's block of W_aa a random orthogonal matrix;
    - ``init="chrono"``: the update gate's bias b_z ~ log U(1, T_max − 1) (Tallec & Ollivier, 2018):
      z keeps a⟨t−1⟩, so it plays the LSTM's forget gate.
    """
    W_ax = uniform(rng, n_a, (3 * n_a, n_x))
    W_aa = uniform(rng, n_a, (3 * n_a, n_a))
    b_ih, b_hh = uniform(rng, n_a, 3 * n_a), uniform(rng, n_a, 3 * n_a)
    b_a = b_ih.copy()
    b_a[: 2 * n_a] += b_hh[: 2 * n_a]  # r and z: the two biases add up
    if init == "orthogonal":
        W_aa = orthogonal(rng, n_a, 3)
    elif init == "chrono":
        b_a[n_a : 2 * n_a] = chrono_bias(rng, n_a, T_max)
    params = {"W_ax": W_ax, "W_aa": W_aa, "b_a": b_a, "b_hn": b_hh[2 * n_a :]}
    return {k: v.astype(dtype) for k, v in params.items()}


GRU = Cell(
    name="gru",
    gates=3,
    paired=False,
    cache_type=GRUCache,
    init=gru_init,
    forward=gru_forward,
    backward=gru_backward,
    fast_forward=_gru_forward,
    fast_backward=_gru_backward,
    check_inputs=check_gru_inputs,
    state_jacobian=gru_state_jacobian,
    extra=("b_hn",),
    inits=("default", "orthogonal", "chrono"),
    title="a GRU",
)
