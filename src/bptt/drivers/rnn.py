"""The vanilla recurrent cell and backpropagation through time, written by hand.

Forward, left to right, with the same parameters at every step:

    z⟨t⟩ = W_aa a⟨t−1⟩ + W_ax x⟨t⟩ + b_a
    a⟨t⟩ = g(z⟨t⟩)                                g = tanh (default) or relu

Backward, right to left. ``dA[t]`` is ∂L/∂a⟨t⟩ through the outputs only and
``da_next`` is ∂L/∂a⟨t⟩ through a⟨t+1⟩ (``da_T`` from a later segment at t = T):

    da⟨t⟩   = dA[t] + da_next                    the whole message reaching a⟨t⟩
    dz⟨t⟩   = da⟨t⟩ ⊙ g′(z⟨t⟩)                   g′ from the saved output: 1 − a², or [a > 0]
    da_next ← dz⟨t⟩ W_aa                         the message sent to step t−1
    ∂L/∂W_aa = Σ_t dz⟨t⟩ᵀ a⟨t−1⟩    ∂L/∂W_ax = Σ_t dz⟨t⟩ᵀ x⟨t⟩    ∂L/∂b_a = Σ_t dz⟨t⟩

Masks (T, B): where ``mask[t, b] == 0`` the step is skipped: a⟨t⟩ = a⟨t−1⟩ is
carried unchanged, so the step adds nothing to any gradient, ignores dA[t], and
passes the message from t+1 through unchanged. With right-padded batches this
makes A[-1] the last real state of every sequence.

Rows are batch entries, so the code computes ``a_prev @ W_aa.T`` (a free
transposed view). PyTorch: ``torch.nn.RNN(n_x, n_a, nonlinearity=g)`` with
``weight_ih_l0 = W_ax``, ``weight_hh_l0 = W_aa``, ``bias_ih_l0 + bias_hh_l0 = b_a``.

Speed: only the recurrence runs in the Python loop. All input projections are one
GEMM before it, all parameter gradients and dX one GEMM each after it, and every
per-step result is written with ``out=`` into preallocated (T, B, ·) buffers. Large
states take g′ inside the backward loop, while a⟨t⟩ is in cache.

tanh's per-step elementwise work — a⟨t⟩ = tanh(z⟨t⟩) with z's last addition, and
dz⟨t⟩ = (dA[t] + da_next) ⊙ (1 − a⟨t⟩²) — runs in one compiled pass each way when the
optional extension ``bptt._kernels`` (src/bptt/_kernels.c) is built; NumPy needs five or six
calls for it, and its float64 tanh is scalar on CPUs without AVX-512. For small steps (a
single short sequence, where a call costs more than its arithmetic) the product with W_aa
joins that call: one call per step each way. Without the extension, or with
``BPTT_NO_KERNELS=1``, the same loops run in NumPy: tanh through exp on large arrays
(``_tanh``), and for B = 1 one GEMM per step that also adds the step's other term. ``_loop``
says which loops run; the tests run every one of them and hold them to the same results.

The gated cells, GRU and LSTM, live in ``bptt.cells``; ``rnn_forward(..., cell="gru")`` runs
any of them and ``rnn_backward`` backpropagates through whichever made the cache.
"""

from __future__ import annotations

import itertools
import os
from typing import Callable, NamedTuple

import numpy as np

from ..backend import array_namespace
from ..errors import BpttError, check_array, check_choice

try:  # the optional compiled step kernels (src/bptt/_kernels.c); NumPy does the same without them
    from .. import _kernels
except ImportError:  # not built: no C compiler at install time
    _kernels = None
if os.environ.get("BPTT_NO_KERNELS", "") not in ("", "0"):
    _kernels = None

RNN_KEYS = ("W_ax", "W_aa", "b_a")


def _saturating():
    """Where the loops run: tanh's e^{2z} may overflow (to 1) or underflow (to −1) silently."""
    return np.errstate(over="ignore", under="ignore")


# from this many elements on, tanh goes through exp (float32 entry, float64 entry): see _tanh
_TANH_VIA_EXP = {4: 8192, 8: 1024}


def _tanh_via_exp(size, dtype):
    """Whether tanh of ``size`` values of ``dtype`` takes the exp form (other dtypes: never)."""
    return size >= _TANH_VIA_EXP.get(np.dtype(dtype).itemsize, size + 1)


def _tanh(z, out=None):
    """tanh(z); on large arrays as 1 − 2/(e^{2z} + 1), within ~1 ulp of 1 of np.tanh.

    np.tanh's loop is scalar on CPUs without AVX-512 (15–20 ns per float64, 3 ns per float32
    here); the exp form takes four cheap passes plus exp and, measured interleaved with np.tanh,
    takes 0.87× its time at 1,024 float64 and 0.55× from 4,096 on (0.93× at 8,192 float32).
    """
    if not _tanh_via_exp(z.size, z.dtype):
        return np.tanh(z, out=out)
    with _saturating():  # e^{2z} = inf gives 1, e^{2z} = 0 gives −1
        return _tanh_exp(z, out)


def _tanh_exp(z, out=None):
    """1 − 2/(e^{2z} + 1), in place when ``out`` is z; e^{2z} may overflow: callers silence it."""
    t = z.dtype.type  # scalars of z's dtype: a Python number costs ~1 µs more per call
    two, one = t(2), t(1)
    out = np.multiply(z, two, out=out)
    np.exp(out, out=out)
    out += one
    np.divide(two, out, out=out)
    return np.subtract(one, out, out=out)


def _tanh_prime(a, out=None):
    out = np.multiply(a, a, out=out)
    return np.subtract(a.dtype.type(1), out, out=out)  # tanh′(z) = 1 − tanh(z)², from the saved output


def _relu(z, out=None):
    return np.maximum(z, 0, out=out)


def _relu_prime(a, out=None):
    if out is None:
        return (a > 0).astype(a.dtype)  # relu′(z) = [z > 0] = [a > 0]
    return np.greater(a, 0, out=out)


# name -> (g, g′ as a function of the output a = g(z), into ``out`` when given)
ACTIVATIONS = {"tanh": (_tanh, _tanh_prime), "relu": (_relu, _relu_prime)}


def _step_g(g, size, dtype):
    """g for one step's ``size`` values, in place, picked once per sequence.

    For tanh: the bare np.tanh where _tanh would pick it anyway (per step, the Python call
    around np.tanh costs as much as np.tanh itself at B = 1), else the exp form without its
    errstate (2.6 µs a call): the loops run under ``_saturating()`` instead.
    """
    if g is _tanh:
        return _tanh_exp if _tanh_via_exp(size, dtype) else np.tanh
    return g


def _tanh_kernels(g, A):
    """``bptt._kernels`` where they apply (g or g′ of tanh, NumPy float32/float64 arrays), else None."""
    if _kernels is None or g not in (_tanh, _tanh_prime) or type(A) is not np.ndarray:
        return None
    return _kernels if A.dtype.char in "fd" else None


class StepCache(NamedTuple):
    """What one step's backward needs: its inputs, output and g′."""

    x_t: object  # (B, n_x)
    a_prev: object  # (B, n_a)
    a_t: object  # (B, n_a)
    params: dict
    g_prime: Callable


class RNNCache(NamedTuple):
    """What the sequence backward needs; returned by ``rnn_forward``, never stored on an object."""

    X: object  # (T, B, n_x)
    a0: object  # (B, n_a)
    A: object  # (T, B, n_a)  a⟨1⟩ … a⟨T⟩
    mask: object  # (T, B) or None
    params: dict
    g_prime: Callable


def rnn_step_forward(x_t, a_prev, params, activation="tanh"):
    """One step: a⟨t⟩ = g(W_aa a⟨t−1⟩ + W_ax x⟨t⟩ + b_a).

    Shapes: x_t (B, n_x), a_prev (B, n_a).
    Returns: a_t (B, n_a), cache_t.
    """
    g, g_prime = ACTIVATIONS[check_choice("activation", activation, tuple(ACTIVATIONS))]
    sizes = {}
    dtype = check_rnn_params(params, sizes)
    for name, x, dims in (("x_t", x_t, ("B", "n_x")), ("a_prev", a_prev, ("B", "n_a"))):
        check_array(name, x, dims, sizes=sizes)
        if x.dtype != dtype:
            raise BpttError(f"{name}: dtype {x.dtype} differs from the parameters' {dtype}; cast one of them")
    z_t = x_t @ params["W_ax"].T + a_prev @ params["W_aa"].T + params["b_a"]  # (B, n_a)
    a_t = g(z_t)
    return a_t, StepCache(x_t, a_prev, a_t, params, g_prime)


def rnn_step_backward(da_t, cache_t):
    """Backward of one step, given the whole gradient da_t reaching a⟨t⟩.

    Shapes: da_t (B, n_a).
    Returns: dx_t (B, n_x), da_prev (B, n_a), grads_t (this step's share of each gradient).
    """
    if not isinstance(cache_t, StepCache):
        raise BpttError(
            f"cache_t: expected the cache returned by rnn_step_forward, got {type(cache_t).__name__}"
        )
    x_t, a_prev, a_t, p, g_prime = cache_t
    check_array("da_t", da_t, ("B", "n_a"), sizes={"B": a_t.shape[0], "n_a": a_t.shape[1]})
    dz_t = da_t * g_prime(a_t)  # backprop through g
    dx_t = dz_t @ p["W_ax"]  # backprop through W_ax x⟨t⟩
    da_prev = dz_t @ p["W_aa"]  # backprop through W_aa a⟨t−1⟩
    grads_t = {"W_ax": dz_t.T @ x_t, "W_aa": dz_t.T @ a_prev, "b_a": dz_t.sum(axis=0)}
    return dx_t, da_prev, grads_t


def check_rnn_params(params, sizes=None, name="params"):
    """Check the recurrent parameters' shapes, dtype and values; return the dtype."""
    if not isinstance(params, dict):
        raise BpttError(f"{name}: expected a dict of arrays, got {type(params).__name__}")
    missing = [k for k in RNN_KEYS if k not in params]
    if missing:
        raise BpttError(f"{name}: missing key(s) {', '.join(missing)}")
    sizes = {} if sizes is None else sizes
    W_aa = params["W_aa"]
    if getattr(W_aa, "ndim", 0) == 2 and W_aa.shape[0] != W_aa.shape[1]:  # a gated cell's, or no cell's
        from ..cells import get_cell
        from ..cells.base import check_params

        check_params(get_cell("rnn"), params, {}, name)  # says which cell they look like
    check_array(f"{name}['W_aa']", W_aa, ("n_a", "n_a"), sizes=sizes)
    check_array(f"{name}['W_ax']", params["W_ax"], ("n_a", "n_x"), sizes=sizes)
    check_array(f"{name}['b_a']", params["b_a"], ("n_a",), sizes=sizes)
    dtype = params["W_aa"].dtype
    for k in RNN_KEYS:
        if params[k].dtype != dtype:
            raise BpttError(f"{name}['{k}']: dtype {params[k].dtype} differs from W_aa's {dtype}")
    return dtype


def check_mask(mask, sizes):
    """Check a (T, B) mask of 0/1 (or bool) and return it as a bool array."""
    check_array("mask", mask, ("T", "B"), sizes=sizes, floating=False, finite=False)
    if mask.dtype != bool:
        if mask.dtype.kind not in "biuf" or not bool(((mask == 0) | (mask == 1)).all()):
            raise BpttError("mask: expected only 0/1 or True/False values")
        mask = mask != 0
    return mask


def check_sequence_inputs(X, a0, params, mask):
    """Validate the arguments of ``rnn_forward``; return (a0, mask) with defaults filled in."""
    sizes = {}
    dtype = check_rnn_params(params, sizes)
    check_array("X", X, ("T", "B", "n_x"), sizes=sizes)
    if X.dtype != dtype:
        raise BpttError(f"X: dtype {X.dtype} differs from the parameters' {dtype}; cast one of them")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise BpttError(f"X: empty input (shape {tuple(X.shape)}): need T >= 1 and B >= 1")
    xp = array_namespace(X)
    if a0 is None:
        a0 = xp.zeros((X.shape[1], sizes["n_a"]), dtype=dtype)
    check_array("a0", a0, ("B", "n_a"), sizes=sizes)
    if a0.dtype != dtype:
        raise BpttError(f"a0: dtype {a0.dtype} differs from the parameters' {dtype}")
    if mask is not None:
        mask = check_mask(mask, sizes)
    return a0, mask


def rnn_forward(X, state0, params, mask=None, activation="tanh", cell="rnn"):
    """Run a recurrent cell over a batch of sequences, left to right.

    cell: "rnn" (the vanilla cell of this module, with g = ``activation``), "gru" or "lstm"
    (see ``bptt.cells``; their parameters come from ``init_params(..., cell=...)``).
    Shapes: X (T, B, n_x); state0 the initial state or None for zeros: a0 (B, n_a), or for
    "lstm" the pair (a0, c0); mask (T, B) or None.
    Returns: A (T, B, n_a) holding a⟨1⟩ … a⟨T⟩, and the cache for ``rnn_backward``. For "lstm"
    the cell states c⟨1⟩ … c⟨T⟩ are ``cache.C`` (T, B, n_a).
    """
    if cell != "rnn":
        from ..cells import get_cell  # bptt.cells builds on this module: imported when asked for

        return get_cell(cell, activation).forward(X, state0, params, mask)
    check_choice("activation", activation, tuple(ACTIVATIONS))
    a0, mask = check_sequence_inputs(X, state0, params, mask)
    return _forward(X, a0, params, mask, activation)


def _skipped(mask, T):
    """Per step, the (B, 1) bool entries to skip, or None where no entry is skipped.

    Batches are grouped by length, so most steps skip nothing and pay nothing for the mask.
    """
    if mask is None:
        return [None] * T
    skip = ~mask[:, :, None]  # (T, B, 1)
    return [s if any_t else None for s, any_t in zip(skip, skip.any(axis=(1, 2)))]


# One GEMM per step pays for a single sequence with a small state (per step, measured
# interleaved with the three-call loops: 0.82× at n_a = 8, 0.9× at 32, 1.0× at 64, 1.2× at 100);
# with B ≥ 2 the per-step views into the stacked buffer are strided and it is slower (1.2–1.6×).
_FUSED_MAX_N_A = 48

# The compiled GEMV step (tanh only) beats a BLAS call plus the elementwise kernel up to about
# this many multiply-adds a step, for up to _GEMV_MAX_B rows (forward step, float64, interleaved:
# 0.55× at B = 1, n_a = 32; 0.88× at n_a = 100; 0.63× at B = 2, n_a = 90; but 1.06× at B = 1,
# n_a = 128 and 1.13× at B = 8, n_a = 32, where BLAS reuses W across rows)
_GEMV_MAX_MACS = 1 << 14
_GEMV_MAX_B = 4

LOOPS = ("general", "fused", "gemv")


def _loop(B, n_a, skips, kernels, loop=None):
    """Which loops run the recurrence: "general", "fused" or "gemv"; ``loop`` forces one (tests).

    - "general": a GEMM, then the elementwise step (one compiled pass for tanh when the kernels
      are built, else NumPy's calls), each way; any B, skipped steps allowed.
    - "fused" (NumPy only): B = 1 and a small state; the addition of each step's other term rides
      in the recurrent GEMM, so a step is two NumPy calls each way instead of three:

          z⟨t⟩ = [a⟨t−1⟩ | W_ax x⟨t⟩ + b_a] @ [W_aaᵀ; I]        da⟨t⟩ = [dz⟨t+1⟩ | dA[t]] @ [W_aa; I]

    - "gemv" (compiled, tanh): small steps, where a BLAS call costs more than the arithmetic;
      each step is one compiled call each way, a⟨t⟩ = tanh(a⟨t−1⟩ W_aaᵀ + z) and
      da⟨t⟩ = dz⟨t+1⟩ W_aa + dA[t], dz⟨t⟩ = da⟨t⟩ ⊙ (1 − a⟨t⟩²).
    The last two pass a step's message on inside the next step's GEMM, so they take no skipped
    steps: a batch that skips any entry runs the general loops.
    """
    if any(s is not None for s in skips):
        return "general"
    if loop is not None:
        if loop == "gemv" and not kernels:
            raise BpttError("loop: the gemv loops need the compiled kernels (bptt._kernels) and tanh")
        return loop
    if kernels and B <= _GEMV_MAX_B and B * n_a * n_a <= _GEMV_MAX_MACS:
        return "gemv"
    if not kernels and B == 1 and n_a <= _FUSED_MAX_N_A:
        return "fused"
    return "general"


def _forward(X, a0, p, mask, activation, loop=None):
    """``rnn_forward`` without the checks: the fast path used inside training."""
    xp = array_namespace(X)
    g, g_prime = ACTIVATIONS[activation]
    T, B, n_x = X.shape
    n_a = p["W_aa"].shape[0]
    skips = _skipped(mask, T)
    a0 = a0.astype(X.dtype, copy=False)
    A = xp.empty((T, B, n_a), dtype=X.dtype)
    # every input projection W_ax x⟨t⟩ + b_a at once: one GEMM, written into A
    xp.dot(X.reshape(T * B, n_x), p["W_ax"].T, out=A.reshape(T * B, n_a))  # (T*B, n_a)
    A += p["b_a"]
    kernels = _tanh_kernels(g, A)
    g = _step_g(g, B * n_a, X.dtype)  # looked up once, outside the loop
    with _saturating():
        loop = _loop(B, n_a, skips, kernels, loop)
        if loop == "gemv":
            _forward_gemv(A, a0, p["W_aa"], kernels.tanh_gemv)
        elif loop == "fused":
            _forward_fused(A, a0, p["W_aa"], g)
        else:
            _forward_loop(A, a0, p["W_aa"], g, skips, kernels.tanh_add if kernels else None)
    return A, RNNCache(X, a0, A, mask, p, g_prime)


def _forward_loop(A, a0, W_aa, g, skips, tanh_add=None):
    """The recurrence, in place: A[t] holds W_ax x⟨t⟩ + b_a on entry and a⟨t⟩ on return.

    ``tanh_add``: the compiled kernel that does the step's addition and g = tanh in one pass, or None.
    """
    xp = array_namespace(A)
    rec = xp.empty(A.shape[1:], dtype=A.dtype)  # (B, n_a)
    W_aa_T = W_aa.T  # (n_a, n_a) view: rows are batch entries
    a_prev = a0
    for a_t, skip_t in zip(A, skips):  # a_t is the view A[t], holding W_ax x⟨t⟩ + b_a
        a_prev.dot(W_aa_T, rec)  # W_aa a⟨t−1⟩ (the method: np.dot's dispatch costs more at B = 1)
        if tanh_add is not None:
            tanh_add(a_t, rec, a_t)  # a⟨t⟩ = tanh(z⟨t⟩), z⟨t⟩ = a_t + rec: one compiled pass
        else:
            a_t += rec  # z⟨t⟩
            g(a_t, a_t)  # a⟨t⟩ = g(z⟨t⟩)
        if skip_t is not None:
            xp.copyto(a_t, a_prev, where=skip_t)  # skipped steps carry a⟨t−1⟩
        a_prev = a_t


def _forward_fused(A, a0, W_aa, g):
    """``_forward_loop`` with one GEMM per step and no skipped steps (see ``_loop``)."""
    xp = array_namespace(A)
    T, B, n_a = A.shape
    H = xp.empty((T + 1, B, 2 * n_a), dtype=A.dtype)  # H[t] = [a⟨t−1⟩ | W_ax x⟨t⟩ + b_a]
    H[0, :, :n_a] = a0
    H[:-1, :, n_a:] = A
    W = xp.concatenate([W_aa.T, xp.eye(n_a, dtype=A.dtype)])  # (2 n_a, n_a) = [W_aaᵀ; I]
    z = xp.empty((B, n_a), dtype=A.dtype)
    for h_t, a_t in zip(H[:-1], H[1:, :, :n_a]):  # a_t is the view where a⟨t⟩ goes
        h_t.dot(W, z)  # z⟨t⟩ = W_aa a⟨t−1⟩ + (W_ax x⟨t⟩ + b_a)
        g(z, a_t)  # a⟨t⟩ = g(z⟨t⟩)
    A[...] = H[1:, :, :n_a]


def _forward_gemv(A, a0, W_aa, tanh_gemv):
    """``_forward_loop`` for small steps, one compiled call each (see ``_loop``); no skipped steps."""
    W_aa_T = np.ascontiguousarray(W_aa.T)  # (n_a, n_a): the kernel reads whole rows (NumPy arrays only)
    a_prev = np.ascontiguousarray(a0)
    for a_t in A:  # a_t holds W_ax x⟨t⟩ + b_a on entry
        tanh_gemv(a_prev, W_aa_T, a_t, a_t)  # a⟨t⟩ = tanh(W_aa a⟨t−1⟩ + W_ax x⟨t⟩ + b_a)
        a_prev = a_t


def rnn_backward(dA, cache, d_state_T=None, *, da_T=None):
    """Backpropagation through time, right to left, for the cell that made ``cache``.

    Shapes: dA (T, B, n_a) gradient reaching each a⟨t⟩ from the outputs only;
    d_state_T the gradient reaching the final state from a later segment, or None: da_T (B, n_a),
    or for "lstm" the pair (da_T, dc_T). ``da_T=`` is the same argument under its vanilla name.
    Returns: dX (T, B, n_x), d_state0 (da0 (B, n_a), or for "lstm" the pair (da0, dc0)), and grads
    with the keys of the cell's parameters (W_ax, W_aa, b_a; and b_hn for "gru").
    """
    d_state_T = carry_in(d_state_T, da_T)
    if not isinstance(cache, RNNCache):
        from ..cells import cell_of  # the gated cells' caches: their cell's backward

        return cell_of(cache).backward(dA, cache, d_state_T)
    da_T = d_state_T
    sizes = {"T": cache.A.shape[0], "B": cache.A.shape[1], "n_a": cache.A.shape[2]}
    check_array("dA", dA, ("T", "B", "n_a"), sizes=sizes)
    if da_T is not None:
        check_array("da_T", da_T, ("B", "n_a"), sizes=sizes)
    dX, da0, grads, _ = _backward(dA, cache, da_T)
    return dX, da0, grads


def carry_in(d_state_T, da_T):
    """The gradient reaching the final state, given once: as ``d_state_T`` or by its vanilla name ``da_T``."""
    if da_T is None:
        return d_state_T
    if d_state_T is not None:
        raise BpttError("da_T: give the final state's gradient once, as d_state_T or as da_T")
    return da_T


# NumPy loops: from this many numbers in a state (B·n_a) on, _backward computes g′ inside the loop,
# per step, while a⟨t⟩ is in cache (measured: 0.967× at B·n_a = 65,536 float32; 1.01–1.1× at
# 1,024–4,096). The compiled pass always takes g′ per step.
_G_PRIME_PER_STEP = 1 << 14


def _backward(dA, cache, da_T=None, messages=False, need_dX=True, loop=None):
    """``rnn_backward`` without the checks.

    Returns: dX (or None), da0, grads, and the messages (T, B, n_a) — the whole
    ∂L/∂a⟨t⟩ at every step — when ``messages`` is true, else None.
    """
    X, a0, A, mask, p, g_prime = cache
    xp = array_namespace(A)
    T, B, n_a = A.shape
    n_x = X.shape[2]
    skips = _skipped(mask, T)
    M = xp.empty((T, B, n_a), dtype=A.dtype) if messages else None
    da_T = xp.zeros((B, n_a), dtype=A.dtype) if da_T is None else da_T.astype(A.dtype, copy=False)
    if mask is not None:
        dA = dA * mask[:, :, None]  # skipped steps ignore their output gradient
    kernels = _tanh_kernels(g_prime, A)
    loop = _loop(B, n_a, skips, kernels, loop)
    if kernels:  # the compiled calls take one dtype, and rows of adjacent numbers
        dA = dA.astype(A.dtype, copy=False)
        if dA.strides[-1] != dA.itemsize:
            dA = np.ascontiguousarray(dA)
    if loop == "gemv":  # one compiled call a step, through W_aa and tanh
        dZ = xp.empty_like(A)
        da0 = _backward_gemv(dA, dZ, da_T, p["W_aa"], M, A, kernels.tanh_gemv_backward)
    elif kernels:  # g′ inside each step's compiled pass (a forced "fused" runs here too)
        dZ = xp.empty_like(A)
        da0 = _backward_loop(dA, dZ, da_T, p["W_aa"], M, skips, A, tanh_backward=kernels.tanh_backward)
    elif loop == "fused":
        dZ = g_prime(A)  # (T, B, n_a) g′ at every step, in one pass; becomes dz⟨t⟩ in place
        da0 = _backward_fused(dA, dZ, da_T, p["W_aa"], M)
    elif B * n_a < _G_PRIME_PER_STEP:
        dZ = g_prime(A)
        if mask is not None:
            dZ *= mask[:, :, None]  # skipped steps have no dz
        da0 = _backward_loop(dA, dZ, da_T, p["W_aa"], M, skips)
    else:  # large steps: g′ step by step, while a⟨t⟩ is in cache (two passes less over A and dZ)
        dZ = xp.empty_like(A)
        da0 = _backward_loop(dA, dZ, da_T, p["W_aa"], M, skips, A, g_prime)
    dZ2 = dZ.reshape(T * B, n_a)  # (T*B, n_a)
    dW_aa = dZ[0].T @ a0  # step 1 reads a⟨0⟩ ...
    if T > 1:  # ... the others read a⟨1⟩ … a⟨T−1⟩: one GEMM
        dW_aa += dZ[1:].reshape((T - 1) * B, n_a).T @ A[:-1].reshape((T - 1) * B, n_a)
    grads = {
        "W_ax": dZ2.T @ X.reshape(T * B, n_x),  # Σ_t dz⟨t⟩ᵀ x⟨t⟩
        "W_aa": dW_aa,  # Σ_t dz⟨t⟩ᵀ a⟨t−1⟩
        "b_a": dZ2.sum(axis=0),  # Σ_t dz⟨t⟩
    }
    dX = (dZ2 @ p["W_ax"]).reshape(T, B, n_x) if need_dX else None  # backprop through W_ax x⟨t⟩
    return dX, da0, grads, M


def _backward_loop(dA, dZ, da_T, W_aa, M, skips, A=None, g_prime=None, tanh_backward=None):
    """The recursion, right to left, in place: dZ[t] holds g′ on entry and dz⟨t⟩ on return.

    Given the states A and ``g_prime`` (or the compiled ``tanh_backward``), dZ's contents on
    entry do not matter: each step computes its g′ there. Writes the whole message da⟨t⟩
    into M[t] when M is given. Returns: da0 (B, n_a).
    """
    xp = array_namespace(dZ)
    T, B, n_a = dZ.shape
    # where each step's whole message da⟨t⟩ goes: M[t], one reused (B, n_a) buffer, or nowhere
    # (the compiled pass needs it only for M and for skipped steps)
    da_buf = None if tanh_backward and not any(s is not None for s in skips) else xp.empty((B, n_a), dZ.dtype)
    da_bufs = M[::-1] if M is not None else itertools.repeat(da_buf, T)
    states = A[::-1] if A is not None else itertools.repeat(None, T)
    da_next = da_T.copy()
    add = xp.add  # looked up once
    for dA_t, dz_t, a_t, da_t, skip_t in zip(dA[::-1], dZ[::-1], states, da_bufs, skips[::-1]):
        if tanh_backward is not None:  # the three lines below, for tanh, in one compiled pass
            tanh_backward(dA_t, da_next, a_t, dz_t, da_t)
        else:
            add(dA_t, da_next, da_t)  # the whole message reaching a⟨t⟩ (t = T−1 … 0)
            if a_t is not None:
                g_prime(a_t, dz_t)  # g′ from the saved output
            dz_t *= da_t  # backprop through g
        if skip_t is not None and a_t is not None:
            xp.copyto(dz_t, 0, where=skip_t)  # skipped steps have no dz
        dz_t.dot(W_aa, da_next)  # backprop through W_aa a⟨t−1⟩
        if skip_t is not None:
            xp.copyto(da_next, da_t, where=skip_t)  # skipped steps pass the message on
    return da_next


def _backward_fused(dA, dZ, da_T, W_aa, M):
    """``_backward_loop`` with one GEMM per step and no skipped steps (see ``_loop``)."""
    xp = array_namespace(dZ)
    T, B, n_a = dZ.shape
    D = xp.empty((T, B, 2 * n_a), dtype=dZ.dtype)  # D[t] = [dz⟨t⟩ | dA[t−1]]
    D[1:, :, n_a:] = dA[:-1]
    W = xp.concatenate([W_aa, xp.eye(n_a, dtype=dZ.dtype)])  # (2 n_a, n_a) = [W_aa; I]
    da_bufs = iter(M[::-1] if M is not None else itertools.repeat(xp.empty((B, n_a), dtype=dZ.dtype), T))
    da = next(da_bufs)
    xp.add(dA[-1], da_T, da)  # the last step's message: its output's gradient + da_T
    multiply = xp.multiply  # looked up once
    multiply(da, dZ[-1], D[-1, :, :n_a])  # dz⟨T−1⟩
    for d_next, g_t, dz_t, da in zip(D[:0:-1], dZ[-2::-1], D[-2::-1, :, :n_a], da_bufs):  # t = T−2 … 0
        d_next.dot(W, da)  # da⟨t⟩ = dz⟨t+1⟩ W_aa + dA[t]: backprop through W_aa a⟨t⟩, plus the output's
        multiply(da, g_t, dz_t)  # dz⟨t⟩ = da⟨t⟩ ⊙ g′: backprop through g
    dZ[...] = D[:, :, :n_a]
    return dZ[0] @ W_aa  # backprop through W_aa a⟨0⟩


def _backward_gemv(dA, dZ, da_T, W_aa, M, A, tanh_gemv_backward):
    """``_backward_loop`` for small steps, one compiled call each (see ``_loop``); no skipped steps.

    Each call takes the message from step t+1 through W_aa and through tanh at step t:
    da⟨t⟩ = dz⟨t+1⟩ W_aa + dA[t], dz⟨t⟩ = da⟨t⟩ ⊙ (1 − a⟨t⟩²). Writes da⟨t⟩ into M[t] when given.
    """
    T, B, n_a = dZ.shape
    W_aa = np.ascontiguousarray(W_aa)  # (n_a, n_a): the kernel reads whole rows
    da_bufs = M[::-1] if M is not None else itertools.repeat(np.empty((B, n_a), dtype=dZ.dtype), T)
    dz_next = np.zeros((B, n_a), dtype=dZ.dtype)  # step T's dz: none, so da⟨T−1⟩ = dA[T−1] + da_T
    dA_last = dA[-1] + da_T
    for dA_t, a_t, dz_t, da_t in zip(itertools.chain([dA_last], dA[-2::-1]), A[::-1], dZ[::-1], da_bufs):
        tanh_gemv_backward(dz_next, W_aa, dA_t, a_t, dz_t, da_t)  # t = T−1 … 0
        dz_next = dz_t
    return dZ[0] @ W_aa  # backprop through W_aa a⟨0⟩
