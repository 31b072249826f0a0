"""The character language model: a cell (or a stack of them) reads a stream of characters and predicts
the next one.

    x⟨t⟩ = onehot(ch⟨t⟩)               the character read at step t           (n_x = V)
    a⟨t⟩ = cell(a⟨t−1⟩, x⟨t⟩)           any cell of ``bptt.cells``: "rnn", "gru", "lstm"
    a_l⟨t⟩ = cell(a_l⟨t−1⟩, a_{l−1}⟨t⟩) layers l = 2 … L of a stack, each reading the one below
    ŷ⟨t⟩ = softmax(W_ya a_L⟨t⟩ + b_y)  the distribution of the next character ch⟨t+1⟩
    L⟨t⟩ = −log ŷ⟨t⟩[ch⟨t+1⟩],  L = Σ_t L⟨t⟩;   bits per character = L / (N ln 2) over N predictions

This is the lecture's many-to-many network with y⟨t⟩ = x⟨t+1⟩ (min-char-rnn's). A text is too
long to backpropagate through whole, so it is trained with truncated BPTT, k1 = k2 = k: B streams
(B contiguous pieces of the text) advance k characters per update; the state a⟨t⟩ (and c⟨t⟩) is
carried from one chunk to the next unchanged, its gradient is cut at the chunk boundary (PyTorch:
``state.detach()``). ``chunk_loss`` is one such chunk: forward, loss, BPTT, and the state to carry.

A stack (``Stack``, ``layers`` > 1) keeps layer 1's parameters under the one-layer names (W_ax,
W_aa, b_a, …) and prefixes layer l's with "layer{l}." (``layer2.W_aa``); its state is the tuple of
the layers' states. While training, dropout is applied to every layer's a⟨t⟩ before what reads it
(the next layer, or the head), never on the recurrence; ``input_dropout`` drops whole characters read.

Zoneout (LSTM only, ``Stack(..., zoneout=(z_a, z_c))``; Krueger et al. 2016): while training, each
unit of every layer's a⟨t⟩ and c⟨t⟩ keeps its previous value with probability z_a, z_c (masks drawn
from the same generator as dropout, layer by layer before it); when scoring or sampling, the
expectation: a share z of the previous value (`bptt.cells.lstm`).

Sampling is the one-to-many use of the same network: ŷ⟨t⟩ is sampled and fed back as x⟨t+1⟩.
PyTorch: ``torch.nn.RNN/GRU/LSTM(V, n_a, num_layers=L)`` on one-hot inputs, then ``torch.nn.Linear(n_a, V)``.
"""

from __future__ import annotations

import numpy as np

from ..cells import get_cell
from ..errors import BpttError
from ..heads.classification import _output_backward, _step_losses, output_logits
from ..models.layers import dropout_backward, dropout_forward
from ..models.lecture import init_params

LN2 = float(np.log(2.0))


def one_hot(ids, V, dtype):
    """Shapes: ids (T, B) ints in [0, V). Returns: X (T, B, V), 1 at each id."""
    T, B = ids.shape
    X = np.zeros((T * B, V), dtype=dtype)  # (T*B, V)
    X[np.arange(T * B), ids.reshape(-1)] = 1
    return X.reshape(T, B, V)  # (T, B, V)


def layer_prefix(layer):
    """The prefix of layer ``layer``'s parameter names (1-based): "" for the first, "layer{l}." above."""
    return "" if layer == 1 else f"layer{layer}."


def check_zoneout_cell(cell, zoneout):
    """Zoneout is the LSTM's: refuse non-zero rates (z_a, z_c) for another cell, naming the options."""
    if any(zoneout) and cell != "lstm":
        raise BpttError(f"--zoneout-hidden, --zoneout-cell: zoneout is for the LSTM, not the {cell} cell")


class Stack:
    """``layers`` layers of one cell, the state and the passes the language model needs of them.

    With one layer it is the cell itself: the same parameters, state, arithmetic and random draws.
    """

    def __init__(self, cell, layers=1, zoneout=(0.0, 0.0)):
        self.cell = get_cell(cell) if isinstance(cell, str) else cell
        self.layers, self.name = layers, self.cell.name
        self.zoneout = tuple(float(z) for z in zoneout)  # (z_a, z_c): the share of a⟨t⟩, c⟨t⟩ kept
        check_zoneout_cell(self.name, self.zoneout)

    def zones(self, k, B, n_a, dtype, rng):
        """One layer's zoneout for a chunk of k steps: (Z_a, Z_c) 0/1 masks (k, B, n_a) drawn from ``rng``
        while training, the probabilities themselves without it; None when off."""
        if not any(self.zoneout):
            return None
        if rng is None:
            return self.zoneout
        return tuple((rng.random((k, B, n_a), dtype=np.float32) < z).astype(dtype) for z in self.zoneout)

    def layer_params(self, params, layer):
        pre = layer_prefix(layer)
        return {k: params[pre + k] for k in self.cell.keys}

    def param_shapes(self, V, n_a):
        """Every recurrent parameter's shape (without the head), by name."""
        shapes = dict(self.cell.param_shapes(V, n_a))
        for layer in range(2, self.layers + 1):
            shapes.update({layer_prefix(layer) + k: v for k, v in self.cell.param_shapes(n_a, n_a).items()})
        return shapes

    def hidden_size(self, params):
        return self.cell.hidden_size(params)

    # the state: the cell's own with one layer, else the tuple of the layers' states
    def per_layer(self, state):
        return (state,) if self.layers == 1 else tuple(state)

    def whole(self, states):
        states = tuple(states)
        return states[0] if self.layers == 1 else states

    def zero_state(self, B, n_a, dtype):
        return self.whole(self.cell.zero_state(B, n_a, dtype) for _ in range(self.layers))

    def fields(self, state):
        """Every layer's fields in order, as one tuple of (B, n_a) arrays (checkpoints, MPI)."""
        return tuple(f for s in self.per_layer(state) for f in self.cell.fields(s))

    def join(self, fields):
        fields, n = tuple(fields), (2 if self.cell.paired else 1)
        return self.whole(self.cell.join(fields[i : i + n]) for i in range(0, len(fields), n))

    def forward(self, X, state0, params, mask=None, dropout=0.0, rng=None):
        """Every layer over one chunk; dropout (from ``rng``) between layers, not after the top one.

        Shapes: X (k, B, n_x). Returns: A (k, B, n_a) of the top layer, and (the layers' caches, the
        dropout masks between them) for ``backward``.
        """
        caches, keeps, A = [], [], X
        k, B = X.shape[:2]
        for layer, s0 in enumerate(self.per_layer(state0), 1):
            if layer > 1:
                A, keep = dropout_forward(A, dropout, rng)  # the a⟨t⟩ below, as this layer reads it
                keeps.append(keep)
            p = self.layer_params(params, layer)
            zones = self.zones(k, B, self.cell.hidden_size(p), X.dtype, rng)
            extra = {} if zones is None else {"zoneout": zones}
            A, cache = self.cell.fast_forward(A, s0, p, mask, **extra)  # (k, B, n_a)
            caches.append(cache)
        return A, (caches, keeps)

    def backward(self, dA, saved):
        """BPTT through every layer, top down, from dA (k, B, n_a) on the top layer's a⟨t⟩.

        Returns: the recurrent parameters' gradients (keys of ``param_shapes``).
        """
        caches, keeps = saved
        grads = {}
        for layer in range(self.layers, 0, -1):
            dX, _, g, _ = self.cell.fast_backward(dA, caches[layer - 1], need_dX=layer > 1)  # k steps back
            grads.update({layer_prefix(layer) + k: v for k, v in g.items()})
            if layer > 1:
                dA = dropout_backward(dX, keeps[layer - 2])  # into the layer below, through its dropout
        return grads

    def carry(self, saved):
        """The state after the chunk, copied out of the caches so that they can be freed."""
        c = self.cell
        ends = (c.state_before(cache, cache.A.shape[0]) for cache in saved[0])
        return self.whole(c.join(np.array(f) for f in c.fields(s)) for s in ends)


def as_stack(cell):
    """A ``Stack`` from a Stack, a Cell or a cell's name (one layer)."""
    return cell if isinstance(cell, Stack) else Stack(cell)


def init_lm(cell, V, n_a, seed=0, dtype=np.float32, init="default", layers=1):
    """The cell's parameters for V one-hot inputs, the head's W_ya (V, n_a), b_y (V,), and with
    ``layers`` > 1 each upper layer's (drawn from its own generator: layer 1 and the head are the
    one-layer model's)."""
    params = init_params(V, n_a, V, seed=seed, dtype=dtype, cell=cell, init=init)
    c = get_cell(cell)
    for layer in range(2, layers + 1):
        drawn = c.init(n_a, n_a, np.random.default_rng([seed, 3, layer]), dtype, init, None)
        params.update({layer_prefix(layer) + k: v for k, v in drawn.items()})
    return params


def chunk_loss(
    params, cell, ids_in, ids_out, state0, mask=None, dropout=0.0, rng=None, summed=True, input_dropout=0.0
):
    """Forward, summed loss and truncated BPTT over one chunk of k steps of B streams.

    cell: a ``Stack``, or a ``Cell`` (one layer). state0: the state carried in (its gradient is cut).
    mask: (k, B) bool, the real steps of padded lines (``--unit line``), or None.
    dropout: the rate of inverted dropout on a⟨t⟩ before the head and between layers (never on the
    recurrence), drawn from ``rng``.
    input_dropout: the rate at which whole characters read are dropped (their x⟨t⟩ zeroed, the others
    scaled by 1/(1 − rate): AWD-LSTM's embedding dropout), drawn from ``rng`` before any other mask.
    Shapes: ids_in, ids_out (k, B) ints: the characters read and the ones to predict.
    Returns: L (float, summed over the predictions; with ``summed`` false the (k, B) array of the step
    losses −log ŷ⟨t⟩, 0 where masked), grads (keys of params, for the sum), and the state at the
    chunk's end (to carry into the next chunk).
    """
    stack = as_stack(cell)
    V = params["W_ya"].shape[0]
    X = one_hot(ids_in, V, params["W_ya"].dtype)  # (k, B, V)
    # layer 1 passes no gradient to X, so dropping characters needs no backward of its own: the cell's
    # ∂L/∂W_ax = Σ_t dĜ⟨t⟩ᵀ x⟨t⟩ reads the dropped x⟨t⟩
    X, _ = dropout_forward(X, input_dropout, rng, shape=(*ids_in.shape, 1))
    A, saved = stack.forward(X, state0, params, mask, dropout, rng)  # (k, B, n_a)
    A_out, keep = dropout_forward(A, dropout, rng)
    L_t, dZ_y = _step_losses(output_logits(A_out, params), ids_out, "softmax", mask)  # (k, B), (k, B, V)
    dA, grads = _output_backward(dZ_y, A_out, params)  # backprop through the head
    dA = dropout_backward(dA, keep)  # backprop through dropout
    grads.update(stack.backward(dA, saved))  # backprop through time, k steps, every layer
    return float(L_t.sum()) if summed else L_t, {k: grads[k] for k in params}, stack.carry(saved)


def chunk_log_probs(params, cell, ids_in, ids_out, state0, mask=None):
    """The natural-log probability of every character to predict in one chunk; no backward.

    Shapes: ids_in, ids_out (k, B), mask (k, B) or None. Returns: log p (k, B) (0 where masked), the
    state at the chunk's end.
    """
    stack = as_stack(cell)
    V = params["W_ya"].shape[0]
    A, saved = stack.forward(one_hot(ids_in, V, params["W_ya"].dtype), state0, params, mask)
    L_t, _ = _step_losses(output_logits(A, params), ids_out, "softmax", mask)  # (k, B)
    return -L_t, stack.carry(saved)


def step_log_softmax(params, cell, state, ids):
    """One step for sampling: read ``ids`` (B,), return log ŷ (B, V) and the new state."""
    stack = as_stack(cell)
    V = params["W_ya"].shape[0]
    A, saved = stack.forward(one_hot(ids[None], V, params["W_ya"].dtype), state, params, None)
    Z = output_logits(A, params)[0]  # (B, V)
    Z = Z - Z.max(axis=1, keepdims=True)
    return Z - np.log(np.exp(Z).sum(axis=1, keepdims=True)), stack.carry(saved)
