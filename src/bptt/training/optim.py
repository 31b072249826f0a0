"""Gradient descent on the BPTT gradients: SGD, momentum, Adam, and clipping.

Each optimizer updates a dict of arrays in place, key by key, so it works for any
model whose ``grads`` has the keys of its ``params``:

An embedding table's gradient may come as ``RowGrad(rows, values)``: then only those rows
are updated, and for Adam only their moments ("lazy" Adam: a row's moments decay only on
the steps that use it, as in TensorFlow's LazyAdam). On dense gradients the updates are
exactly PyTorch's.

    SGD:       θ ← θ − η g
    Momentum:  v ← μ v + g;            θ ← θ − η v            (PyTorch's SGD(momentum=μ))
    Adam:      m ← β₁ m + (1 − β₁) g;  v ← β₂ v + (1 − β₂) g²
               θ ← θ − η m̂ / (√v̂ + ε), m̂ = m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ)
    Adagrad:   G ← G + g²;             θ ← θ − η g / (√G + ε)   (min-char-rnn's; PyTorch's Adagrad)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..backend import array_namespace
from ..cells.base import step_kernels
from ..errors import BpttError, is_real
from ..models.layers import RowGrad


def _fused(*arrays):
    """``bptt._kernels`` when its one-pass update applies to these arrays (NumPy, one float dtype, 1-D or
    2-D with contiguous rows), else None."""
    kernels = step_kernels(arrays[0])
    if kernels is None or any(type(a) is not np.ndarray or a.dtype != arrays[0].dtype for a in arrays):
        return None
    if any(not 1 <= a.ndim <= 2 or (a.shape[-1] > 1 and a.strides[-1] != a.itemsize) for a in arrays):
        return None
    return kernels


def _values(g):
    return g.values if isinstance(g, RowGrad) else g


def _check_number(name, value, high=None):
    """Check a hyperparameter: a finite real number ≥ 0, and < ``high`` when given."""
    if not (is_real(value) and math.isfinite(value) and value >= 0 and (high is None or value < high)):
        where = "≥ 0" if high is None else f"in [0, {high})"
        raise BpttError(f"{name}: expected a finite number {where}, got {value!r}")


def _check_floating(name, a):
    """Refuse ``a`` (a parameter or gradient called ``name``) unless it is a floating-point array."""
    if getattr(getattr(a, "dtype", None), "kind", None) != "f":
        got = f"dtype {a.dtype}" if hasattr(a, "dtype") else type(a).__name__
        raise BpttError(f"{name}: expected a floating-point array, got {got}")


def _check_grads(grads):
    """Check that ``grads`` is a dict of floating-point arrays (or ``RowGrad``)."""
    if not isinstance(grads, dict):
        raise BpttError(f"grads: expected a dict of arrays, got {type(grads).__name__}")
    for k, g in grads.items():
        _check_floating(f"grads[{k!r}]", _values(g))


def _check_step(params, grads):
    """Check, once per step and before any update, that every gradient fits its parameter.

    (A gradient of another shape would broadcast into the update, or fail halfway through it.)
    """
    if not isinstance(params, dict):
        raise BpttError(f"params: expected a dict of arrays, got {type(params).__name__}")
    _check_grads(grads)
    for k, g in grads.items():
        p = params.get(k)
        if p is None:
            raise BpttError(f"grads[{k!r}]: params has no array of that name")
        _check_floating(f"params[{k!r}]", p)
        rows = isinstance(g, RowGrad)  # the gradient of some rows: (k, d) against the table's (n_rows, d)
        v = _values(g)
        if v.ndim != p.ndim or v.shape[rows:] != p.shape[rows:]:
            raise BpttError(
                f"grads[{k!r}]: shape {tuple(v.shape)} does not fit its parameter's {tuple(p.shape)}"
            )


def global_norm(grads):
    """‖g‖₂ over all the arrays of ``grads`` together: inf or nan only when a gradient is not finite.

    The sum is a Python float (float64): float32 gradients past ~1.8·10¹⁹, which an exploding LSTM reaches,
    still have a finite norm to clip by, where their sum of squares in float32 would overflow.
    """
    _check_grads(grads)
    total = 0.0
    for g in grads.values():
        v = _values(g)
        s = float(np.vdot(v, v))  # Σ g², without a temporary
        if math.isinf(s) and v.dtype.itemsize < 8:  # overflowed in float32: sum again in float64
            w = v.astype(np.float64)
            s = float(np.vdot(w, w))
        total += s
    return math.sqrt(total)


def clip_grad_norm(grads, max_norm):
    """Scale all gradients in place so their global norm is at most ``max_norm`` (None or 0: no clipping).

    Returns: the norm before clipping (a float; inf or nan when a gradient is not finite).
    """
    if max_norm is not None:
        _check_number("max_norm", max_norm)
    norm = global_norm(grads)
    if max_norm is not None and max_norm > 0 and math.isfinite(norm) and norm > max_norm:
        scale = max_norm / (norm + 1e-6)  # the same ε as torch.nn.utils.clip_grad_norm_
        for g in grads.values():
            _values(g)[...] *= scale
    return norm


@dataclass
class SGD:
    """Plain SGD, or SGD with (heavy-ball) momentum when ``momentum > 0``."""

    lr: float = 0.1  # learning rate η
    momentum: float = 0.0  # μ; 0 is plain SGD
    state: dict = field(default_factory=dict)  # velocity per parameter

    def __post_init__(self):
        _check_number("lr", self.lr)
        _check_number("momentum", self.momentum)

    def step(self, params, grads):
        _check_step(params, grads)
        for k, g in grads.items():
            if isinstance(g, RowGrad):
                if self.momentum:
                    g = g.dense()  # momentum keeps every row moving: no sparse shortcut
                else:
                    params[k][g.rows] -= self.lr * g.values
                    continue
            if self.momentum:
                v = self.state.get(k)
                if v is None:
                    v = self.state[k] = array_namespace(g).zeros_like(g)
                v *= self.momentum
                v += g
                g = v
            params[k] -= self.lr * g

    def state_dict(self):
        return {f"v.{k}": v for k, v in self.state.items()}

    def check_state_dict(self, arrays, params):
        """Refuse a saved ``state_dict`` that does not fit ``params`` (`BpttError` naming the array)."""
        _check_moments(arrays, params, ("v",) if self.momentum else ())

    def load_state_dict(self, arrays):
        self.state = {k[2:]: v for k, v in arrays.items() if k.startswith("v.")}


@dataclass
class Adam:
    """Adam (Kingma & Ba, 2015), as ``torch.optim.Adam`` with default options."""

    lr: float = 1e-3  # learning rate η
    beta1: float = 0.9  # β₁, decay of the first moment
    beta2: float = 0.999  # β₂, decay of the second moment
    eps: float = 1e-8  # ε added to √v̂
    t: int = 0  # steps taken
    m: dict = field(default_factory=dict)  # first moments per parameter
    v: dict = field(default_factory=dict)  # second moments per parameter

    def __post_init__(self):
        _check_number("lr", self.lr)
        _check_number("beta1", self.beta1, high=1)
        _check_number("beta2", self.beta2, high=1)
        _check_number("eps", self.eps)

    def step(self, params, grads):
        _check_step(params, grads)
        self.t += 1
        c1 = 1 - self.beta1**self.t
        c2 = 1 - self.beta2**self.t
        for k, g in grads.items():
            if k not in self.m:
                xp = array_namespace(params[k])
                self.m[k] = xp.zeros_like(params[k])
                self.v[k] = xp.zeros_like(params[k])
            if isinstance(g, RowGrad):
                self._rows_step(params[k], g, self.m[k], self.v[k], c1, c2)
                continue
            m, v = self.m[k], self.v[k]
            kernels = _fused(params[k], g, m, v)
            if kernels is not None:  # the same update in one pass (bit-identical)
                kernels.adam_step(params[k], g, m, v, self.beta1, self.beta2, c2, self.eps, self.lr / c1)
                continue
            xp = array_namespace(g)
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * (g * g)
            denom = xp.sqrt(v / c2)
            denom += self.eps
            params[k] -= (self.lr / c1) * m / denom

    def _rows_step(self, param, g, m_all, v_all, c1, c2):
        """The same update on the rows a batch used; other rows keep their moments."""
        r = g.rows
        m = self.beta1 * m_all[r] + (1 - self.beta1) * g.values
        v = self.beta2 * v_all[r] + (1 - self.beta2) * (g.values * g.values)
        m_all[r] = m
        v_all[r] = v
        param[r] -= (self.lr / c1) * m / (np.sqrt(v / c2) + self.eps)

    def state_dict(self):
        arrays = {f"m.{k}": a for k, a in self.m.items()}
        arrays.update({f"v.{k}": a for k, a in self.v.items()})
        arrays["t"] = np.array(self.t, dtype=np.int64)
        return arrays

    def check_state_dict(self, arrays, params):
        """Refuse a saved ``state_dict`` that does not fit ``params`` (`BpttError` naming the array)."""
        t = arrays.get("t")
        if t is None or t.shape != () or t.dtype.kind not in "iu" or int(t) < 0:
            found = "missing" if t is None else f"{t.dtype}{list(t.shape)}"
            raise BpttError(f"t: is {found}, expected a non-negative integer scalar (the steps taken)")
        _check_moments({k: v for k, v in arrays.items() if k != "t"}, params, ("m", "v"))

    def load_state_dict(self, arrays):
        self.t = int(arrays["t"])
        self.m = {k[2:]: a for k, a in arrays.items() if k.startswith("m.")}
        self.v = {k[2:]: a for k, a in arrays.items() if k.startswith("v.")}


@dataclass
class Adagrad:
    """Adagrad (Duchi, Hazan & Singer, 2011), as min-char-rnn runs it: G ← G + g², θ ← θ − η g/(√G + ε)."""

    lr: float = 0.1  # learning rate η
    eps: float = 1e-8  # ε added to √G (min-char-rnn's; torch.optim.Adagrad's default is 1e-10)
    G: dict = field(default_factory=dict)  # the summed squared gradients per parameter

    def __post_init__(self):
        _check_number("lr", self.lr)
        _check_number("eps", self.eps)

    def step(self, params, grads):
        _check_step(params, grads)
        for k, g in grads.items():
            g = g.dense() if isinstance(g, RowGrad) else g
            if k not in self.G:
                self.G[k] = array_namespace(g).zeros_like(params[k])
            G = self.G[k]
            G += g * g
            params[k] -= self.lr * g / (array_namespace(g).sqrt(G) + self.eps)

    def state_dict(self):
        return {f"G.{k}": a for k, a in self.G.items()}

    def check_state_dict(self, arrays, params):
        """Refuse a saved ``state_dict`` that does not fit ``params`` (`BpttError` naming the array)."""
        _check_moments(arrays, params, ("G",))

    def load_state_dict(self, arrays):
        self.G = {k[2:]: a for k, a in arrays.items() if k.startswith("G.")}


def _check_moments(arrays, params, kinds):
    """``arrays`` hold, for some parameters, one array of each of ``kinds`` ("m.W_aa", "v.W_aa"), each
    shaped and typed as its parameter; nothing else."""
    for name, a in arrays.items():
        kind, _, k = name.partition(".")
        if kind not in kinds or k not in params:
            raise BpttError(f"{name}: not a state of this optimizer for this network")
        want = params[k]
        if a.shape != want.shape or a.dtype != want.dtype:
            raise BpttError(
                f"{name}: is {a.dtype}{list(a.shape)}, its parameter is {want.dtype}{list(want.shape)}"
            )
        missing = [f"{other}.{k}" for other in kinds if f"{other}.{k}" not in arrays]
        if missing:
            raise BpttError(f"{missing[0]}: missing, while the {kind} of {k} is there")


def make_optimizer(name, lr, momentum=0.9):
    """``"adam"``, ``"adagrad"``, ``"sgd"`` or ``"momentum"`` by name (for the command line)."""
    if name == "adam":
        return Adam(lr=lr)
    if name == "adagrad":
        return Adagrad(lr=lr)
    if name == "momentum":
        return SGD(lr=lr, momentum=momentum)
    return SGD(lr=lr)
