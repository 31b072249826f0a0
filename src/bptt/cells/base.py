"""What every cell shares: its description (``Cell``), the input checks, σ, and PyTorch's initialisation.

A cell is described once, by a ``Cell``: its parameter shapes for (n_x, n_a), its gate count,
its state (one array a, or the pair (a, c)), how to initialise it, its sequence forward and
backward (fast unchecked versions for the training loops, checked public ones), and its
per-step state Jacobian. The drivers (``bptt.rnn_forward``, ``bptt.rnn_backward``,
``bptt.sequence_loss``) only ever call these; they never look inside a cell's weights.

Every gated cell packs its gates as PyTorch does, as blocks of n_a rows:

    W_ax (k·n_a, n_x)    W_aa (k·n_a, n_a)    b_a (k·n_a,)       k = 1 (vanilla), 3 (GRU), 4 (LSTM)

so n_a is always W_aa's number of columns, and the rows say which cell the parameters belong to.

The drivers (truncated and checkpointed BPTT, the ledger, the bidirectional layers) carry the
state without knowing which cell made it, through the ``Cell``'s state methods: ``fields``
and ``join`` turn a state (or its gradient) into a tuple of (B, n_a) arrays and back, so a
driver slices, stores and checkpoints it field by field. They rely on one convention for
caches: a cache is a NamedTuple whose fields are the initial state (``a0``, and ``c0`` for
a paired cell), what every step shares (``params``, and the vanilla cell's ``g_prime``),
the mask (T, B) or None, and (T, B, ·) stacks, one row per step (``X``, ``A``, ``C``, the
gates, …). ``Cell.window`` cuts a cache in time on that convention alone (any other field, one
that is not an array of T rows, is kept as it is).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..backend import array_namespace
from ..drivers import rnn as _rnn
from ..drivers.rnn import check_mask
from ..errors import BpttError, check_array, check_choice

CORE_KEYS = ("W_ax", "W_aa", "b_a")
_SHARED = ("params", "g_prime")  # the fields of a cache that every step shares: not cut by ``Cell.window``

# gate count -> (cell name, how messages call it): to name the cell other parameters belong to
_GATES = {1: ("rnn", "the vanilla cell"), 3: ("gru", "a GRU"), 4: ("lstm", "an LSTM")}


@dataclass(frozen=True)
class Cell:
    """Everything a driver needs to know about one cell; see ``bptt.cells.CELLS``."""

    name: str  # "rnn", "gru" or "lstm": the ``cell=`` argument
    gates: int  # blocks of n_a rows in W_ax, W_aa, b_a: 1, 3 (r|z|n) or 4 (i|f|g|o)
    paired: bool  # the state is the pair (a, c) (LSTM); else the one array a
    cache_type: type  # the NamedTuple its forward returns: rnn_backward dispatches on it
    # init(n_x, n_a, rng, dtype, init, T_max) -> the cell's parameters (see init_params)
    init: Callable
    # checked, public: forward(X, state0, params, mask=None) -> A, cache;
    # backward(dA, cache, d_state_T=None) -> dX, d_state0, grads
    forward: Callable
    backward: Callable
    # unchecked, for training loops: fast_forward(X, state0, params, mask) with state0 filled in;
    # fast_backward(dA, cache, d_state_T=None, messages=False, need_dX=True) -> dX, d_state0, grads, M
    fast_forward: Callable
    fast_backward: Callable
    # check_inputs(X, state0, params, mask) -> (state0, mask), defaults filled in
    check_inputs: Callable
    # state_jacobian(cache, t) -> (B, n_s, n_s): ∂state/∂state_prev of the step that wrote A[t]
    state_jacobian: Callable
    extra: tuple = ()  # parameters beyond W_ax, W_aa, b_a, each of shape (n_a,): GRU's b_hn
    inits: tuple = ("default",)  # the schemes ``init_params(init=...)`` accepts
    title: str = ""  # how messages name it: "a GRU"
    options: dict = field(default_factory=dict)  # bound options: the vanilla cell's activation

    @property
    def keys(self):
        """The names of the cell's parameters, in order."""
        return CORE_KEYS + self.extra

    def param_shapes(self, n_x, n_a):
        """{name: shape} of the cell's parameters for n_x inputs and n_a hidden units."""
        k = self.gates * n_a
        shapes = {"W_ax": (k, n_x), "W_aa": (k, n_a), "b_a": (k,)}
        shapes.update({name: (n_a,) for name in self.extra})
        return shapes

    def state_size(self, n_a):
        """n_s, the length of the state vector per batch entry: n_a, or 2 n_a for (a, c)."""
        return 2 * n_a if self.paired else n_a

    def hidden_size(self, params):
        """n_a of the cell's parameters: W_aa's columns (its rows are the gates' blocks)."""
        return params["W_aa"].shape[1]

    # ------------------------------------------------------------------ the state, field by field

    def fields(self, state):
        """A state, its gradient or its messages as a tuple of arrays: (a,), or (a, c) when paired."""
        return tuple(state) if self.paired else (state,)

    def join(self, fields):
        """The state as the cell takes it, from its fields: a, or the pair (a, c)."""
        fields = tuple(fields)
        return fields if self.paired else fields[0]

    def zero_state(self, B, n_a, dtype, xp=np):
        """The zero state: (B, n_a) zeros, or a pair of them."""
        return self.join(xp.zeros((B, n_a), dtype=dtype) for _ in range(2 if self.paired else 1))

    def on_a(self, da):
        """A gradient of the state that reaches a alone: da, or (da, None) (nothing on c)."""
        return (da, None) if self.paired else da

    def states(self, cache):
        """Every step's state, field by field: (A,), or (A, C); each (T, B, n_a)."""
        return (cache.A, cache.C) if self.paired else (cache.A,)

    def state_before(self, cache, s):
        """The state step s starts from (views), 0 ≤ s ≤ T: the initial state at s = 0, the last at s = T."""
        if s == 0:
            return self.join((cache.a0, cache.c0) if self.paired else (cache.a0,))
        return self.join(S[s - 1] for S in self.states(cache))

    def window(self, cache, s, e):
        """The cache of steps s … e − 1 alone, as if the forward had started at step s (views, no copy).

        Its backward is the sequence backward of those steps: given the message reaching
        state_before(cache, e), it returns the one leaving state_before(cache, s).
        """
        T = cache.A.shape[0]
        start = dict(zip(("a0", "c0"), self.fields(self.state_before(cache, s))))

        def cut(name, v):  # a (T, B, ·) stack or the mask: its rows s … e − 1; anything else as it is
            if isinstance(v, tuple):  # the LSTM's zoneout (Z_a, Z_c): stacks or numbers
                return tuple(cut(name, x) for x in v)
            stacked = name not in _SHARED and getattr(v, "shape", ())[:1] == (T,)
            return start[name] if name in start else v[s:e] if stacked else v

        return type(cache)(**{name: cut(name, v) for name, v in cache._asdict().items()})


def check_params(cell, params, sizes, name="params"):
    """Check a gated cell's parameters (keys, shapes, dtype, values); fill in sizes; return the dtype.

    Parameters of another cell are named as such: an LSTM given W_aa (n_a, n_a) says it got the
    vanilla cell's.
    """
    if not isinstance(params, dict):
        raise BpttError(f"{name}: expected a dict of arrays, got {type(params).__name__}")
    missing = [k for k in cell.keys if k not in params]
    W_aa = params.get("W_aa")
    if "W_aa" not in missing:
        check_array(f"{name}['W_aa']", W_aa, (f"{cell.gates}·n_a", "n_a"))
        rows, n_a = W_aa.shape
        if n_a == 0 or rows != cell.gates * n_a:
            other = _GATES.get(rows // n_a) if n_a and rows % n_a == 0 else None
            hint = f"; these look like {other[1]}'s: pass cell={other[0]!r}" if other else ""
            raise BpttError(
                f"{name}['W_aa']: shape {tuple(W_aa.shape)} is not {cell.title}'s"
                f" ({cell.gates}·n_a, n_a) = ({cell.gates * n_a}, {n_a}){hint}"
            )
    if missing:
        raise BpttError(f"{name}: missing key(s) {', '.join(missing)} of {cell.title}")
    sizes.setdefault("n_a", W_aa.shape[1])
    sizes.setdefault(f"{cell.gates}·n_a", W_aa.shape[0])
    check_array(f"{name}['W_aa']", W_aa, (f"{cell.gates}·n_a", "n_a"), sizes=sizes)
    check_array(f"{name}['W_ax']", params["W_ax"], (f"{cell.gates}·n_a", "n_x"), sizes=sizes)
    check_array(f"{name}['b_a']", params["b_a"], (f"{cell.gates}·n_a",), sizes=sizes)
    for k in cell.extra:
        check_array(f"{name}['{k}']", params[k], ("n_a",), sizes=sizes)
    dtype = W_aa.dtype
    for k in cell.keys:
        if params[k].dtype != dtype:
            raise BpttError(f"{name}['{k}']: dtype {params[k].dtype} differs from W_aa's {dtype}")
    return dtype


def check_carry(cell, d_state_T, sizes):
    """Check a gradient reaching the final state: da_T (B, n_a), or the pair (da_T, dc_T) (None: zeros)."""
    if cell.paired:
        named = zip(("da_T", "dc_T"), check_pair("d_state_T", d_state_T, cell.title))
    else:
        named = [("da_T", d_state_T)]
    for name, d in named:
        if d is not None:
            check_array(name, d, ("B", "n_a"), sizes=sizes)
    return d_state_T


def check_state(name, s, sizes, dtype, xp):
    """Check one state array (B, n_a), or make zeros for None."""
    if s is None:
        return xp.zeros((sizes["B"], sizes["n_a"]), dtype=dtype)
    check_array(name, s, ("B", "n_a"), sizes=sizes)
    if s.dtype != dtype:
        raise BpttError(f"{name}: dtype {s.dtype} differs from the parameters' {dtype}")
    return s


def check_pair(name, pair, cell_title):
    """Check that an LSTM state (or its gradient) is a pair; return it as a 2-tuple (None: two Nones)."""
    if pair is None:
        return None, None
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        got = f"a sequence of {len(pair)}" if isinstance(pair, (tuple, list)) else type(pair).__name__
        raise BpttError(f"{name}: {cell_title}'s state is a pair (a, c) of (B, n_a) arrays, got {got}")
    return tuple(pair)


def check_sequence(cell, X, params, mask):
    """Check X, the parameters and the mask of a sequence; return (sizes, dtype, mask)."""
    sizes = {}
    dtype = check_params(cell, params, sizes)
    check_array("X", X, ("T", "B", "n_x"), sizes=sizes)
    if X.dtype != dtype:
        raise BpttError(f"X: dtype {X.dtype} differs from the parameters' {dtype}; cast one of them")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise BpttError(f"X: empty input (shape {tuple(X.shape)}): need T >= 1 and B >= 1")
    if mask is not None:
        mask = check_mask(mask, sizes)
    return sizes, dtype, mask


def check_upstream(dA, cache_A, d_states):
    """Check dA against the cache's states, and each carry-in gradient (name, array or None)."""
    T, B, n_a = cache_A.shape
    sizes = {"T": T, "B": B, "n_a": n_a}
    check_array("dA", dA, ("T", "B", "n_a"), sizes=sizes)
    for name, d in d_states:
        if d is not None:
            check_array(name, d, ("B", "n_a"), sizes=sizes)


def sigmoid_(x, out):
    """σ(x) = 1 / (1 + e^{−x}) into ``out`` (may be x); e^{−x} may overflow (σ = 0): callers silence it."""
    out = np.negative(x, out=out)
    np.exp(out, out=out)
    out += out.dtype.type(1)
    return np.reciprocal(out, out=out)


def previous(first, S):
    """(T, B, n) stack of the states each step read: first, S[0], …, S[T−2]."""
    xp = array_namespace(S)
    return xp.concatenate([first[None], S[:-1]])  # (T, B, n)


def uniform(rng, n_a, shape):
    """PyTorch's default for every weight and bias of RNN, GRU and LSTM: U(−1/√n_a, 1/√n_a), float64."""
    k = 1 / np.sqrt(n_a)
    return rng.uniform(-k, k, size=shape)


def orthogonal(rng, n_a, blocks=1):
    """``blocks`` random orthogonal (n_a, n_a) matrices stacked into (blocks·n_a, n_a), float64.

    The Q of a Gaussian matrix's QR with the signs of R's diagonal folded in, so that Q is uniform
    over the orthogonal group (``torch.nn.init.orthogonal_``, one gate block at a time).
    """
    Q, R = np.linalg.qr(rng.standard_normal((blocks, n_a, n_a)))
    Q *= np.sign(np.diagonal(R, axis1=1, axis2=2))[:, None, :]  # (blocks, n_a, n_a)
    return Q.reshape(blocks * n_a, n_a)


def chrono_bias(rng, n_a, T_max):
    """log U(1, T_max − 1): the bias of a gate that keeps the old state (Tallec & Ollivier, 2018), float64.

    A keep gate σ(b) holds a state for about 1 / (1 − σ(b)) = 1 + e^b steps: 2 … T_max here.
    """
    if isinstance(T_max, bool) or not isinstance(T_max, (int, np.integer, float)) or not T_max > 2:
        raise BpttError(f"T_max: init='chrono' needs the longest dependency (> 2 steps), got {T_max!r}")
    return np.log(rng.uniform(1, T_max - 1, size=n_a))


# ------------------------------------------------------------- the gated cells' loops (GRU, LSTM)

# The compiled step with the recurrent product inside (no BLAS call) pays for up to this many rows
# and multiply-adds B·G·n_a² a step (G gates; see gated_loop). Forward + backward, gemv loops / BLAS
# loops, one thread, interleaved (GRU and LSTM, float32 and float64, T = 200, 2026-11-30, machine loaded):
# 0.76–0.88 at B ≤ 2 with up to 4,096 multiply-adds; 0.75–1.0 at B = 1 up to n_a = 90; 1.05–1.6
# at B = 2, n_a ≥ 48 and at B = 4 (the kernel reads W once per row, BLAS once per step)
_GEMV_MAX_B = 2
_GEMV_MAX_MACS = 1 << 12

LOOPS = ("numpy", "compiled", "gemv")


def step_kernels(X):
    """``bptt._kernels`` where they apply (NumPy float32/float64 arrays), else None."""
    kernels = _rnn._kernels  # looked up per call: tests and BPTT_NO_KERNELS switch it off
    if kernels is None or type(X) is not np.ndarray or X.dtype.char not in "fd":
        return None
    return kernels


def gated_loop(B, n_a, gates, skips, kernels, loop=None):
    """Which loops run the recurrence: "numpy", "compiled" or "gemv"; ``loop`` forces one (tests).

    - "numpy": a GEMM and NumPy's elementwise calls a step, each way; any B, skipped steps allowed.
    - "compiled": a GEMM and one compiled call a step, each way; skipped steps allowed.
    - "gemv": small steps, one compiled call a step each way that also takes the product with W_aa
      (a BLAS call costs more than its arithmetic there). It passes the message on inside the next
      step's call, so it takes no skipped steps: a batch that skips any entry runs "compiled".
    """
    if loop is not None:
        check_choice("loop", loop, LOOPS)
        if loop != "numpy" and kernels is None:
            raise BpttError("loop: the compiled loops need the compiled kernels (bptt._kernels)")
        if loop == "gemv" and any(s is not None for s in skips):
            return "compiled"
        return loop
    if kernels is None:
        return "numpy"
    small = B <= _GEMV_MAX_B and B * gates * n_a * n_a <= _GEMV_MAX_MACS
    return "gemv" if small and all(s is None for s in skips) else "compiled"


def input_projections(X, W_ax, b_a, kernels):
    """Every step's input side W_ax x⟨t⟩ + b_a at once, one GEMM: the gates' pre-activations to start from.

    Shapes: X (T, B, n_x), W_ax (G·n_a, n_x), b_a (G·n_a,). Returns: (T, B, G·n_a).
    """
    xp = array_namespace(X)
    T, B, n_x = X.shape
    out = xp.empty((T, B, W_ax.shape[0]), dtype=X.dtype)
    # (n_x, G·n_a); with the kernels a dense copy: BLAS takes up to 1.9x as long on the view for few rows
    W_ax_T = W_ax.T if kernels is None else np.ascontiguousarray(W_ax.T)
    xp.dot(X.reshape(T * B, n_x), W_ax_T, out=out.reshape(T * B, W_ax.shape[0]))  # (T*B, G·n_a)
    out += b_a
    return out
