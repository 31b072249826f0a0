"""An encoder–decoder with optional additive attention, trained with teacher forcing; backward by hand.

Encoder–decoder of Cho et al. (2014) and Sutskever et al. (2014), with the attention of Bahdanau,
Cho & Bengio (2015). Any cell (``cfg.cell``: "rnn" (tanh), "gru", "lstm"; ``bptt.cells``) runs
both the encoder and the decoder. Sizes: source symbols n_x, output symbols n_y (the output
vocabulary, with the start symbol), n_e encoder and n_d decoder hidden units, n_att attention units.

Encoder, over the one-hot source x⟨j⟩ = onehot(X[j]) (n_x), j = 1 … T_x⁽ᵇ⁾ (each sequence's own length):

    h⟨j⟩ = [a→⟨j⟩; a←⟨j⟩]                               (2n_e)   bidirectional (``birnn_forward``)

Context c⟨t⟩ of decoder step t = 1 … T_y. With attention (``cfg.attention``):

    e⟨t,j⟩ = vᵀ tanh(W_h h⟨j⟩ + W_s s⟨t−1⟩ + b)         score; W_h h⟨j⟩ for every j in one GEMM
    α⟨t⟩   = softmax_j e⟨t,j⟩                            over the real positions: α⟨t,j⟩ = 0 at padding
    c⟨t⟩   = Σ_j α⟨t,j⟩ h⟨j⟩                             (2n_e)

without it, one summary read at every step (Cho et al. 2014 feed it to each step):

    c⟨t⟩ = c = [a→⟨T_x⁽ᵇ⁾⟩; a←⟨1⟩]                      a→ at the last real step, a← at the first

Decoder, with teacher forcing: y⟨0⟩ = <start>, then the target's own previous symbol (``Y_in``):

    s⟨0⟩ = 0                                  zero: the context carries the source into every step,
                                              so the state needs no summary of it to start from
    x⟨t⟩ = [onehot(y⟨t−1⟩); c⟨t⟩]            (n_y + 2n_e)
    s⟨t⟩ = cell(s⟨t−1⟩, x⟨t⟩)                 the decoder cell's step; s is its a (the LSTM carries the
                                              pair (a, c_mem); attention and the head read a alone)
    z⟨t⟩ = W_ya [s⟨t⟩; c⟨t⟩] + b_y            (n_y) logits
    L    = (1/B) Σ_b Σ_t m⟨t,b⟩ (−log softmax(z⟨t⟩)[y⟨t⟩])      m the target mask, y⟨t⟩ = Y_out[t]

Backward. Through the head, for every step at once (one GEMM each):

    d[s⟨t⟩; c⟨t⟩] = dz⟨t⟩ W_ya      ∂L/∂W_ya = Σ_t dz⟨t⟩ᵀ [s⟨t⟩; c⟨t⟩]      ∂L/∂b_y = Σ_t dz⟨t⟩

then right to left, t = T_y … 1 (with attention; u⟨t,j⟩ = tanh(W_h h⟨j⟩ + W_s s⟨t−1⟩ + b)):

    dx⟨t⟩, ds⟨t−1⟩ ← the cell's backward of step t, given ds⟨t⟩ (from the head and from step t+1)
    dc⟨t⟩    = d c⟨t⟩ (head) + dx⟨t⟩[n_y:]                 c⟨t⟩ reaches the head and the cell's input
    dα⟨t,j⟩  = dc⟨t⟩ · h⟨j⟩                                 through c = Σ_j α h
    de⟨t,j⟩  = α⟨t,j⟩ (dα⟨t,j⟩ − Σ_k α⟨t,k⟩ dα⟨t,k⟩)         through softmax (0 at padding: α = 0)
    du⟨t,j⟩  = de⟨t,j⟩ v ⊙ (1 − u⟨t,j⟩²)                     through vᵀ tanh
    dq⟨t⟩    = Σ_j du⟨t,j⟩                                   q⟨t⟩ = W_s s⟨t−1⟩ + b, shared by every j
    ds⟨t−1⟩ += dq⟨t⟩ W_s                                     attention read s⟨t−1⟩ too

and after the loop, one GEMM each:

    ∂L/∂v = Σ_{t,j} de⟨t,j⟩ u⟨t,j⟩     ∂L/∂W_s = Σ_t dq⟨t⟩ᵀ s⟨t−1⟩     ∂L/∂b = Σ_t dq⟨t⟩
    dp⟨j⟩ = Σ_t du⟨t,j⟩                ∂L/∂W_h = Σ_j dp⟨j⟩ᵀ h⟨j⟩
    dh⟨j⟩ = Σ_t α⟨t,j⟩ dc⟨t⟩ + dp⟨j⟩ W_h                      into the encoder's bidirectional backward

Without attention x⟨t⟩ does not depend on s, so the decoder runs as one sequence call each way;
dc = Σ_t (d c⟨t⟩ (head) + dx⟨t⟩[n_y:]) reaches a→⟨T_x⁽ᵇ⁾⟩ and a←⟨1⟩ alone.

Layout: time-major, X (T_x, B), H (T_x, B, 2n_e), Z (T_y, B, n_y). Attention works per sequence
over its positions j, so it reads a batch-major copy of H, (B, T_x, 2n_e), and keeps α as
(B, T_x) per step: ``cache.alphas`` is (T_y, B, T_x). The decoder step (``decoder_step``) is the
one the decoders (``bptt.seq2seq.decode``) run too. Parameters: one flat dict, the cells' keys
prefixed "enc_f.", "enc_b.", "dec." (``param_shapes``); PyTorch: the encoder is
``torch.nn.LSTM(bidirectional=True)`` (weights as ``bptt.params_to_torch``), the decoder an
``LSTMCell`` (GRUCell, RNNCell) on x⟨t⟩, the head a ``Linear(n_d + 2n_e, n_y)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..cells import CELLS, get_cell
from ..drivers.bidirectional import birnn_backward, birnn_forward
from ..drivers.rnn import _tanh
from ..errors import BpttError, check_array, check_choice
from ..heads.classification import _step_losses


@dataclass
class Seq2SeqConfig:
    """The sizes and the choices of one encoder–decoder."""

    cell: str  # "rnn" (tanh), "gru" or "lstm": encoder and decoder
    n_x: int  # source symbols (one-hot inputs of the encoder)
    n_y: int  # output symbols, the start symbol included (one-hot decoder inputs, logits)
    n_e: int  # hidden units of each encoder direction: h⟨j⟩ has 2n_e
    n_d: int  # hidden units of the decoder
    n_att: int  # hidden units of the attention's scoring layer (unused without attention)
    attention: bool = True  # additive attention; False: the fixed summary c at every step

    def __post_init__(self):
        check_choice("cfg.cell", self.cell, tuple(CELLS))
        for name in ("n_x", "n_y", "n_e", "n_d", "n_att"):
            n = getattr(self, name)
            least = 0 if name == "n_att" and not self.attention else 1
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < least:
                raise BpttError(f"cfg.{name}: expected an int >= {least}, got {n!r}")
        if not isinstance(self.attention, (bool, np.bool_)):
            raise BpttError(f"cfg.attention: expected True or False, got {self.attention!r}")


def _cells(cfg):
    """(key prefix, inputs, hidden units) of the three cells: both encoder directions and the decoder."""
    return (
        ("enc_f.", cfg.n_x, cfg.n_e),
        ("enc_b.", cfg.n_x, cfg.n_e),
        ("dec.", cfg.n_y + 2 * cfg.n_e, cfg.n_d),
    )


def param_shapes(cfg):
    """{key: shape} of every parameter of ``cfg``'s network, in the order of ``init_seq2seq``."""
    cell = get_cell(cfg.cell)
    n_h = 2 * cfg.n_e
    shapes = {}
    for prefix, n_in, n_a in _cells(cfg):
        shapes.update({prefix + k: s for k, s in cell.param_shapes(n_in, n_a).items()})
    if cfg.attention:
        shapes.update({"att.W_h": (cfg.n_att, n_h), "att.W_s": (cfg.n_att, cfg.n_d)})
        shapes.update({"att.b": (cfg.n_att,), "att.v": (cfg.n_att,)})
    shapes.update({"W_ya": (cfg.n_y, cfg.n_d + n_h), "b_y": (cfg.n_y,)})
    return shapes


def init_seq2seq(cfg, seed=0, dtype=np.float32):
    """Random parameters: each cell by its own ``init`` (PyTorch's defaults), the rest U(±1/√fan_in).

    Attention: W_h U(±1/√(2n_e)), W_s and b U(±1/√n_d) (a ``Linear(n_d, n_att)``), v U(±1/√n_att).
    Head as ``init_params``': W_ya U(±1/√(n_d + 2n_e)), b_y = 0.
    Returns: the flat parameter dict (keys of ``param_shapes``).
    """
    check_config(cfg)
    cell = get_cell(cfg.cell)
    rng = np.random.default_rng(seed)
    n_h = 2 * cfg.n_e
    params = {}
    for prefix, n_in, n_a in _cells(cfg):
        params.update({prefix + k: v for k, v in cell.init(n_in, n_a, rng, dtype).items()})

    def uniform(fan_in, shape):
        k = 1 / np.sqrt(fan_in)
        return rng.uniform(-k, k, size=shape).astype(dtype)

    if cfg.attention:
        params["att.W_h"] = uniform(n_h, (cfg.n_att, n_h))
        params["att.W_s"] = uniform(cfg.n_d, (cfg.n_att, cfg.n_d))
        params["att.b"] = uniform(cfg.n_d, cfg.n_att)
        params["att.v"] = uniform(cfg.n_att, cfg.n_att)
    params["W_ya"] = uniform(cfg.n_d + n_h, (cfg.n_y, cfg.n_d + n_h))
    params["b_y"] = np.zeros(cfg.n_y, dtype=dtype)
    return params


# ------------------------------------------------------------------------------------------ checks


def check_config(cfg):
    """Check that ``cfg`` is a ``Seq2SeqConfig`` (its own checks ran when it was made); return it."""
    if not isinstance(cfg, Seq2SeqConfig):
        raise BpttError(f"cfg: expected a Seq2SeqConfig, got {type(cfg).__name__}")
    return cfg


def check_params(params, cfg):
    """Check the keys, shapes and dtype of ``params`` against ``cfg``; return the dtype."""
    if not isinstance(params, dict):
        raise BpttError(f"params: expected a dict of arrays, got {type(params).__name__}")
    shapes = param_shapes(cfg)
    missing = [k for k in shapes if k not in params]
    if missing:
        raise BpttError(
            f"params: missing key(s) {', '.join(missing)} (cell={cfg.cell!r}, attention={cfg.attention})"
        )
    extra = [k for k in params if k not in shapes]
    if extra:
        raise BpttError(
            f"params: unexpected key(s) {', '.join(extra)} (cell={cfg.cell!r}, attention={cfg.attention})"
        )
    dtype = None
    for k, shape in shapes.items():
        x = check_array(f"params[{k!r}]", params[k], tuple(f"d{i}" for i in range(len(shape))))
        if tuple(x.shape) != shape:
            raise BpttError(f"params[{k!r}]: shape {tuple(x.shape)} differs from {shape}, what cfg gives")
        dtype = x.dtype if dtype is None else dtype
        if x.dtype != dtype:
            raise BpttError(f"params[{k!r}]: dtype {x.dtype} differs from the other parameters' {dtype}")
    return dtype


def _check_ids(name, ids, dims, sizes, n, where=None, at=""):
    """Check an integer array of symbol ids with the named dimensions, in [0, n) where ``where`` is true."""
    check_array(name, ids, dims, sizes=sizes, floating=False, finite=False)
    if ids.dtype.kind not in "iu":
        raise BpttError(f"{name}: expected integer symbol ids, got dtype {ids.dtype}")
    real = ids if where is None else ids[where]
    if real.size and (int(real.min()) < 0 or int(real.max()) >= n):
        raise BpttError(f"{name}: ids{at} must lie in [0, {n}), got {int(real.min())}..{int(real.max())}")
    return ids


def check_source(params, cfg, X, lengths):
    """Check the parameters, source ids X and lengths. Returns: dtype, lengths (B,) as intp, sizes."""
    check_config(cfg)
    dtype = check_params(params, cfg)
    sizes = {}
    check_array("X", X, ("T_x", "B"), sizes=sizes, floating=False, finite=False)
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise BpttError(f"X: empty input (shape {tuple(X.shape)}): need T_x >= 1 and B >= 1")
    lengths = np.asarray(lengths)
    check_array("lengths", lengths, ("B",), sizes=sizes, floating=False, finite=False)
    if lengths.dtype.kind not in "iu":
        raise BpttError(f"lengths: expected integers, got dtype {lengths.dtype}")
    if int(lengths.min()) < 1 or int(lengths.max()) > X.shape[0]:
        raise BpttError(
            f"lengths: must lie in 1..T_x = 1..{X.shape[0]}, got {int(lengths.min())}..{int(lengths.max())}"
        )
    mask = np.arange(X.shape[0])[:, None] < lengths[None, :]  # (T_x, B)
    _check_ids("X", X, ("T_x", "B"), sizes, cfg.n_x, mask, " at real positions")
    return dtype, lengths.astype(np.intp), sizes


def check_targets(cfg, sizes, Y_in, Y_out=None, mask=None):
    """Check the decoder inputs Y_in, the targets Y_out and the target mask. Returns: the mask (bool)."""
    _check_ids("Y_in", Y_in, ("T_y", "B"), sizes, cfg.n_y)
    if Y_in.shape[0] == 0:
        raise BpttError(f"Y_in: no decoder steps (shape {tuple(Y_in.shape)}): need T_y >= 1")
    if Y_out is None:
        return None
    if mask is None:
        mask = np.ones(Y_in.shape, dtype=bool)
    else:
        check_array("mask", mask, ("T_y", "B"), sizes=sizes, floating=False, finite=False)
        if mask.dtype != bool:
            if mask.dtype.kind not in "biuf" or not bool(((mask == 0) | (mask == 1)).all()):
                raise BpttError("mask: expected only 0/1 or True/False values")
            mask = mask != 0
    _check_ids("Y_out", Y_out, ("T_y", "B"), sizes, cfg.n_y, mask, " where mask is set")
    return mask


# ------------------------------------------------------------------------------------------ forward


class Encoded(NamedTuple):
    """The encoder's output, and what every decoder step reads from it (batch-major for attention)."""

    H: object  # (T_x, B, 2n_e) h⟨j⟩ = [a→⟨j⟩; a←⟨j⟩]
    mask: object  # (T_x, B) bool, the real source positions
    lengths: object  # (B,) intp
    Hb: object  # (B, T_x, 2n_e) H batch-major (attention), or None
    mask_b: object  # (B, T_x) the mask batch-major (attention), or None
    P: object  # (B, T_x, n_att) W_h h⟨j⟩ for every j (attention), or None
    c: object  # (B, 2n_e) the fixed context [a→⟨T_x⁽ᵇ⁾⟩; a←⟨1⟩] (no attention), or None
    cache: object  # the encoder's BiRNNCache


class DecoderStep(NamedTuple):
    """What one decoder step computed, and the cell's cache of it."""

    s_prev: object  # (B, n_d) the a of s⟨t−1⟩ (attention read it)
    U: object  # (B, T_x, n_att) u⟨t,j⟩ = tanh(W_h h⟨j⟩ + W_s s⟨t−1⟩ + b), or None
    alpha: object  # (B, T_x) α⟨t⟩, or None
    sc: object  # (B, n_d + 2n_e) [s⟨t⟩; c⟨t⟩], what the head read
    cell: object  # the cell's cache of the step (a T = 1 sequence)


class Seq2SeqCache(NamedTuple):
    """What ``seq2seq_backward`` needs; returned by ``seq2seq_forward``, never stored on an object."""

    cfg: Seq2SeqConfig
    params: dict
    enc: Encoded
    steps: object  # per decoder step, the cell's cache (attention), or None
    dec: object  # the decoder cell's cache over all T_y steps (no attention), or None
    SC: object  # (T_y, B, n_d + 2n_e) [s⟨t⟩; c⟨t⟩] at every step: what the head read
    S_prev: object  # (T_y, B, n_d) the a of s⟨t−1⟩ at every step (attention), or None
    U: object  # (T_y, B, T_x, n_att) u⟨t,j⟩ (attention), or None
    alphas: object  # (T_y, B, T_x) α⟨t,j⟩ (attention), or None


def _part(params, prefix):
    """The parameters under ``prefix`` ("enc_f.", "enc_b.", "dec."), with the prefix dropped."""
    return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}


def one_hot(ids, n, dtype, mask=None):
    """onehot(ids) over n symbols; all-zero rows where ``mask`` is false (any id there).

    Shapes: ids (…), mask like ids or None. Returns: (…, n).
    """
    hot = ids[..., None] == np.arange(n)  # (…, n)
    if mask is not None:
        hot &= mask[..., None]
    return hot.astype(dtype)


def encode(params, cfg, X, lengths, dtype):
    """The encoder, and W_h h⟨j⟩ (attention) or the fixed context c; no checks (see ``check_source``).

    Shapes: X (T_x, B) ids, lengths (B,) intp. Returns: ``Encoded``.
    """
    T_x, B = X.shape
    n_e = cfg.n_e
    mask = np.arange(T_x)[:, None] < lengths[None, :]  # (T_x, B)
    Xo = one_hot(X, cfg.n_x, dtype, mask)  # (T_x, B, n_x), zero at padding
    H, enc_cache = birnn_forward(Xo, mask, _part(params, "enc_f."), _part(params, "enc_b."), cell=cfg.cell)
    if cfg.attention:
        Hb = np.ascontiguousarray(H.transpose(1, 0, 2))  # (B, T_x, 2n_e)
        P = Hb.reshape(B * T_x, 2 * n_e) @ params["att.W_h"].T  # (B*T_x, n_att) W_h h⟨j⟩, one GEMM
        P = P.reshape(B, T_x, cfg.n_att)  # (B, T_x, n_att)
        return Encoded(H, mask, lengths, Hb, np.ascontiguousarray(mask.T), P, None, enc_cache)
    # a→ at each sequence's last real step, a← at step 1 (where the right-to-left pass ends)
    c = np.concatenate([H[lengths - 1, np.arange(B), :n_e], H[0, :, n_e:]], axis=1)  # (B, 2n_e)
    return Encoded(H, mask, lengths, None, None, None, c, enc_cache)


def rows(enc, idx):
    """The decoder's view of ``enc`` for the batch entries ``idx`` (a slice or an index array).

    Returns: an ``Encoded`` with what a decoder step reads (no encoder cache: it cannot be backpropagated).
    """

    def pick(a, axis=0):
        return None if a is None else a[idx] if axis == 0 else a[:, idx]

    return Encoded(
        pick(enc.H, 1),
        pick(enc.mask, 1),
        pick(enc.lengths),
        pick(enc.Hb),
        pick(enc.mask_b),
        pick(enc.P),
        pick(enc.c),
        None,
    )


def attend(params, enc, s_prev, U=None):
    """Additive attention of one step: scores, α⟨t⟩ and c⟨t⟩ from s⟨t−1⟩.

    Shapes: s_prev (B, n_d); U an optional (B, T_x, n_att) buffer for u⟨t,j⟩.
    Returns: c (B, 2n_e), alpha (B, T_x), U (B, T_x, n_att).
    """
    q = s_prev @ params["att.W_s"].T + params["att.b"]  # (B, n_att) W_s s⟨t−1⟩ + b
    U = np.add(enc.P, q[:, None, :], out=U)  # (B, T_x, n_att) every position j at once
    _tanh(U, out=U)  # u⟨t,j⟩
    e = U @ params["att.v"]  # (B, T_x) e⟨t,j⟩ = vᵀ u⟨t,j⟩
    e = np.where(enc.mask_b, e, -np.inf)  # padding takes no weight
    e -= e.max(axis=1, keepdims=True)  # every row has a real position: finite max
    alpha = np.exp(e)
    alpha /= alpha.sum(axis=1, keepdims=True)  # α⟨t⟩ = softmax_j e⟨t,j⟩
    c = (alpha[:, None, :] @ enc.Hb)[:, 0, :]  # (B, 2n_e) c⟨t⟩ = Σ_j α⟨t,j⟩ h⟨j⟩
    return c, alpha, U


def decoder_inputs(Y, C, n_y):
    """x⟨t⟩ = [onehot(y⟨t−1⟩); c⟨t⟩] for T steps.

    Shapes: Y (T, B) ids, C (T, B, 2n_e) or (1, B, 2n_e) for the same context at every step.
    Returns: (T, B, n_y + 2n_e).
    """
    T, B = Y.shape
    X = np.empty((T, B, n_y + C.shape[2]), dtype=C.dtype)  # (T, B, n_y + 2n_e)
    X[:, :, :n_y] = one_hot(Y, n_y, C.dtype)
    X[:, :, n_y:] = C
    return X


def decoder_step(params, cfg, enc, y_prev, state, U=None):
    """One decoder step, t: attention (if any), the cell, the head. Training and decoding both run it.

    Shapes: enc from ``encode`` (or ``rows`` of it) for B sequences; y_prev (B,) ids of y⟨t−1⟩;
    state s⟨t−1⟩, the cell's (B, n_d) or, for the LSTM, the pair; U an optional (B, T_x, n_att) buffer.
    Returns: z⟨t⟩ (B, n_y) logits, the state s⟨t⟩, and a ``DecoderStep``.
    """
    cell = get_cell(cfg.cell)
    s_prev = cell.fields(state)[0]  # (B, n_d) the a of s⟨t−1⟩
    if cfg.attention:
        c, alpha, U = attend(params, enc, s_prev, U)
    else:
        c, alpha, U = enc.c, None, None
    x = decoder_inputs(y_prev[None], c[None], cfg.n_y)  # (1, B, n_y + 2n_e)
    S, cell_cache = cell.fast_forward(x, state, _part(params, "dec."), None)  # (1, B, n_d)
    sc = np.concatenate([S[0], c], axis=1)  # (B, n_d + 2n_e)
    z = sc @ params["W_ya"].T + params["b_y"]  # (B, n_y)
    return z, cell.state_before(cell_cache, 1), DecoderStep(s_prev, U, alpha, sc, cell_cache)


def seq2seq_forward(params, cfg, X, lengths, Y_in):
    """The network's logits with teacher forcing.

    Shapes: X (T_x, B) source ids (padding: any id), lengths (B,) in 1 … T_x, Y_in (T_y, B) ids of
    y⟨t−1⟩ (<start>, y⟨1⟩, …).
    Returns: Z (T_y, B, n_y) logits, and the cache for ``seq2seq_backward`` (``cache.alphas``
    (T_y, B, T_x) holds α with attention, else None).
    """
    dtype, lengths, sizes = check_source(params, cfg, X, lengths)
    check_targets(cfg, sizes, Y_in)
    return _forward(params, cfg, X, lengths, Y_in, dtype)


def _forward(params, cfg, X, lengths, Y_in, dtype):
    """``seq2seq_forward`` without the checks."""
    cell = get_cell(cfg.cell)
    T_y, B = Y_in.shape
    T_x = X.shape[0]
    n_h = 2 * cfg.n_e
    enc = encode(params, cfg, X, lengths, dtype)
    if not cfg.attention:  # x⟨t⟩ does not depend on s: the decoder is one sequence call
        X_dec = decoder_inputs(Y_in, enc.c[None], cfg.n_y)  # (T_y, B, n_y + 2n_e)
        S, dec_cache = cell.fast_forward(
            X_dec, cell.zero_state(B, cfg.n_d, dtype), _part(params, "dec."), None
        )
        SC = np.empty((T_y, B, cfg.n_d + n_h), dtype=dtype)  # (T_y, B, n_d + 2n_e) [s⟨t⟩; c]
        SC[:, :, : cfg.n_d] = S
        SC[:, :, cfg.n_d :] = enc.c
        Z = SC.reshape(T_y * B, -1) @ params["W_ya"].T + params["b_y"]  # (T_y*B, n_y) the head, one GEMM
        cache = Seq2SeqCache(cfg, params, enc, None, dec_cache, SC, None, None, None)
        return Z.reshape(T_y, B, cfg.n_y), cache
    Z = np.empty((T_y, B, cfg.n_y), dtype=dtype)
    SC = np.empty((T_y, B, cfg.n_d + n_h), dtype=dtype)
    S_prev = np.empty((T_y, B, cfg.n_d), dtype=dtype)
    U = np.empty((T_y, B, T_x, cfg.n_att), dtype=dtype)
    alphas = np.empty((T_y, B, T_x), dtype=dtype)
    state = cell.zero_state(B, cfg.n_d, dtype)
    steps = []
    for t in range(T_y):  # the recurrence: α⟨t⟩ reads s⟨t−1⟩
        Z[t], state, step = decoder_step(params, cfg, enc, Y_in[t], state, U[t])
        S_prev[t], SC[t], alphas[t] = step.s_prev, step.sc, step.alpha
        steps.append(step.cell)
    return Z, Seq2SeqCache(cfg, params, enc, steps, None, SC, S_prev, U, alphas)


# ------------------------------------------------------------------------------------------ backward


def seq2seq_backward(dZ, cache):
    """Backpropagation through the decoder, the attention and the encoder.

    Shapes: dZ (T_y, B, n_y) = ∂L/∂Z.
    Returns: grads, with exactly the keys of the parameters (in their order).
    """
    if not isinstance(cache, Seq2SeqCache):
        raise BpttError(
            f"cache: expected the Seq2SeqCache returned by seq2seq_forward, got {type(cache).__name__}"
        )
    T_y, B = cache.SC.shape[:2]
    check_array("dZ", dZ, ("T_y", "B", "n_y"), sizes={"T_y": T_y, "B": B, "n_y": cache.cfg.n_y}, finite=False)
    return _backward(dZ.astype(cache.SC.dtype, copy=False), cache)


def _backward(dZ, cache, messages=False):
    """``seq2seq_backward`` without the checks; with ``messages`` also the messages (``seq2seq_messages``)."""
    cfg, p, enc = cache.cfg, cache.params, cache.enc
    cell = get_cell(cfg.cell)
    T_y, B, n_y = dZ.shape
    n_d, n_e = cfg.n_d, cfg.n_e
    grads = {}
    dZ2 = dZ.reshape(T_y * B, n_y)  # (T_y*B, n_y)
    grads["W_ya"] = dZ2.T @ cache.SC.reshape(T_y * B, n_d + 2 * n_e)  # Σ_t dz⟨t⟩ᵀ [s⟨t⟩; c⟨t⟩]
    grads["b_y"] = dZ2.sum(axis=0)  # Σ_t dz⟨t⟩
    dSC = (dZ2 @ p["W_ya"]).reshape(T_y, B, n_d + 2 * n_e)  # backprop through the head: d[s⟨t⟩; c⟨t⟩]
    dS, dC_head = dSC[:, :, :n_d], dSC[:, :, n_d:]  # (T_y, B, n_d), (T_y, B, 2n_e) views
    if cfg.attention:
        dH, dec_grads, M_s = _backward_attention(dS, dC_head, cache, grads)
    else:
        # backprop through the decoder, all steps
        dX_dec, _, dec_grads, M = cell.fast_backward(dS, cache.dec, messages=messages)
        M_s = None if M is None else cell.fields(M)[0]
        dc = dC_head.sum(axis=0) + dX_dec[:, :, n_y:].sum(axis=0)  # (B, 2n_e) c reaches every step twice
        dH = np.zeros(enc.H.shape, dtype=dZ.dtype)  # (T_x, B, 2n_e)
        dH[enc.lengths - 1, np.arange(B), :n_e] = dc[:, :n_e]  # backprop through c = [a→⟨T_x⁽ᵇ⁾⟩; …]
        dH[0, :, n_e:] = dc[:, n_e:]  # … and a←⟨1⟩
    _, grads_f, grads_b, _ = birnn_backward(dH, enc.cache, need_dX=False)  # backprop through the encoder
    for prefix, g in (("enc_f.", grads_f), ("enc_b.", grads_b), ("dec.", dec_grads)):
        grads.update({prefix + k: v for k, v in g.items()})
    grads = {k: grads[k] for k in p}
    return (grads, dH, M_s) if messages else grads


def seq2seq_messages(Z, Y_out, cache, mask=None):
    """The BPTT messages of the loss L = (1/B) Σ cross-entropies (``seq2seq_loss``'s) for the pictures.

    Shapes: Z (T_y, B, n_y) and cache from ``seq2seq_forward``; Y_out (T_y, B) targets; mask or None.
    Returns: {"dH": ∂L/∂h⟨j⟩ (T_x, B, 2n_e), "dS": the whole ∂L/∂s⟨t⟩ (T_y, B, n_d), from the head and
    from step t+1 (the decoder's a; the LSTM's c lane is not shown)}.
    """
    T_y, B = Y_out.shape
    mask = np.ones((T_y, B), dtype=bool) if mask is None else mask
    _, dZ = _step_losses(Z, np.where(mask, Y_out, 0), "softmax", mask)
    dZ *= Z.dtype.type(1 / B)
    _, dH, M_s = _backward(dZ, cache, messages=True)
    return {"dH": dH, "dS": M_s}


def _backward_attention(dS, dC_head, cache, grads):
    """The decoder's loop right to left with attention (module docstring); fills grads["att.*"].

    Returns: dH (T_x, B, 2n_e), the decoder cell's grads, and the whole ∂L/∂s⟨t⟩ (T_y, B, n_d).
    """
    cfg, p, enc = cache.cfg, cache.params, cache.enc
    cell = get_cell(cfg.cell)
    T_y, B, n_d = dS.shape
    n_y, n_att = cfg.n_y, cfg.n_att
    T_x, n_h = enc.Hb.shape[1:]
    U, alphas = cache.U, cache.alphas
    dtype = U.dtype
    G_u = np.subtract(dtype.type(1), U * U)  # (T_y, B, T_x, n_att) tanh′ from the saved u: 1 − u²
    dE = np.empty((T_y, B, T_x), dtype=dtype)  # de⟨t,j⟩
    dQ = np.empty((T_y, B, n_att), dtype=dtype)  # dq⟨t⟩
    dCtx = np.empty((T_y, B, n_h), dtype=dtype)  # dc⟨t⟩
    v, W_s = p["att.v"], p["att.W_s"]
    dec_grads = None
    d_next = None  # the gradient reaching s⟨t⟩ from step t+1 (none after the last step)
    M_s = np.empty((T_y, B, n_d), dtype=dtype)  # ∂L/∂s⟨t⟩ from the head and from step t+1
    for t in range(T_y - 1, -1, -1):
        M_s[t] = dS[t] if d_next is None else dS[t] + cell.fields(d_next)[0]
        # backprop through the cell's step t
        dX, d_prev, g, _ = cell.fast_backward(dS[t : t + 1], cache.steps[t], d_next)
        if dec_grads is None:
            dec_grads = g  # arrays of its own: the later steps add into them
        else:
            for k in g:
                dec_grads[k] += g[k]  # every step shares the decoder's weights
        dc = np.add(dC_head[t], dX[0, :, n_y:], out=dCtx[t])  # c⟨t⟩ reached the head and x⟨t⟩
        a = alphas[t]  # (B, T_x)
        d_alpha = (enc.Hb @ dc[:, :, None])[:, :, 0]  # (B, T_x) backprop through c = Σ_j α h, to α
        de = np.multiply(a, d_alpha - (a * d_alpha).sum(axis=1, keepdims=True), out=dE[t])  # through softmax
        dq = np.multiply((de[:, None, :] @ G_u[t])[:, 0, :], v, out=dQ[t])  # through vᵀ tanh, Σ_j (q shared)
        fields = list(cell.fields(d_prev))
        fields[0] = fields[0] + dq @ W_s  # backprop through W_s s⟨t−1⟩: s⟨t−1⟩ reached the cell and α
        d_next = cell.join(fields)
    dE2 = dE.reshape(T_y * B * T_x)  # (T_y*B*T_x,)
    grads["att.v"] = dE2 @ U.reshape(T_y * B * T_x, n_att)  # Σ_{t,j} de⟨t,j⟩ u⟨t,j⟩
    dQ2 = dQ.reshape(T_y * B, n_att)  # (T_y*B, n_att)
    grads["att.W_s"] = dQ2.T @ cache.S_prev.reshape(T_y * B, n_d)  # Σ_t dq⟨t⟩ᵀ s⟨t−1⟩
    grads["att.b"] = dQ2.sum(axis=0)  # Σ_t dq⟨t⟩
    G_u *= dE[:, :, :, None]  # (T_y, B, T_x, n_att) de⟨t,j⟩ (1 − u²)
    dP = G_u.sum(axis=0)  # (B, T_x, n_att)
    dP *= v  # dp⟨j⟩ = Σ_t du⟨t,j⟩: backprop through vᵀ tanh, every step
    dP2 = dP.reshape(B * T_x, n_att)  # (B*T_x, n_att)
    grads["att.W_h"] = dP2.T @ enc.Hb.reshape(B * T_x, n_h)  # Σ_j dp⟨j⟩ᵀ h⟨j⟩
    dHb = (dP2 @ p["att.W_h"]).reshape(B, T_x, n_h)  # backprop through W_h h⟨j⟩
    # backprop through c⟨t⟩ = Σ_j α⟨t,j⟩ h⟨j⟩, to h⟨j⟩: Σ_t α⟨t,j⟩ dc⟨t⟩, per sequence
    dHb += alphas.transpose(1, 2, 0) @ dCtx.transpose(1, 0, 2)  # (B, T_x, T_y) @ (B, T_y, 2n_e)
    return np.ascontiguousarray(dHb.transpose(1, 0, 2)), dec_grads, M_s  # (T_x, B, 2n_e)


# ------------------------------------------------------------------------------------------ loss


def seq2seq_loss(params, cfg, X, lengths, Y_in, Y_out, mask=None):
    """The mean over the batch of the sequences' cross-entropies, and its gradients.

    Shapes: X (T_x, B) ids, lengths (B,), Y_in, Y_out (T_y, B) ids, mask (T_y, B) bool or None (all).
    Returns: L (float), grads (the keys of params), per-sequence losses (B,) (L is their mean).
    """
    dtype, lengths, sizes = check_source(params, cfg, X, lengths)
    mask = check_targets(cfg, sizes, Y_in, Y_out, mask)
    Z, cache = _forward(params, cfg, X, lengths, Y_in, dtype)
    B = X.shape[1]
    L_t, dZ = _step_losses(Z, np.where(mask, Y_out, 0), "softmax", mask)  # (T_y, B), ŷ − onehot(y) masked
    per_sequence = L_t.sum(axis=0)  # (B,)
    dZ *= dtype.type(1 / B)  # the mean over the batch
    return float(per_sequence.sum()) / B, _backward(dZ, cache), per_sequence
