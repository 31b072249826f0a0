"""Recurrent cells, each described once by a ``Cell``, and the registry the drivers look them up in.

    cell=    gates              state     equations in       PyTorch twin
    "rnn"    1                  a         bptt.drivers.rnn   torch.nn.RNN   (adapter: cells/vanilla.py)
    "gru"    3: r | z | n       a         bptt.cells.gru     torch.nn.GRU   (PyTorch's GRU, not Cho's)
    "lstm"   4: i | f | g | o   (a, c)    bptt.cells.lstm    torch.nn.LSTM

``bptt.rnn_forward(..., cell=name)`` looks the cell up by name (``get_cell``); ``bptt.rnn_backward``
finds it from the type of the cache the forward returned (``cell_of``), so no backward asks for a
name. So do the drivers that own time — ``truncated_sequence_loss``, ``checkpointed_sequence_loss``,
``ledger``, the bidirectional layers and the tagger (``--cell``): they take ``cell=``, and carry,
cut and checkpoint the cell's state field by field through the ``Cell`` (``cells/base.py``), so
a new cell needs no driver edit.

Parameters move both ways between bptt and PyTorch with ``params_to_torch`` and
``params_from_torch``: the equations are PyTorch's exactly, only the biases are stored differently
(bptt adds bias_ih and bias_hh into one b_a, except the GRU's b_hn, which sits inside r ⊙ (·)).
"""

from __future__ import annotations

import numpy as np

from ..drivers.rnn import ACTIVATIONS, RNNCache
from ..errors import BpttError, check_array, check_choice
from .base import Cell, check_params
from .gru import GRU, GRUCache, gru_backward, gru_forward, gru_step_backward, gru_step_forward
from .lstm import LSTM, LSTMCache, lstm_backward, lstm_forward, lstm_step_backward, lstm_step_forward
from .vanilla import VANILLA

CELLS = {"rnn": VANILLA["tanh"], "gru": GRU, "lstm": LSTM}  # name -> Cell (the vanilla one with tanh)
_BY_CACHE = {RNNCache: VANILLA["tanh"], GRUCache: GRU, LSTMCache: LSTM}  # the backward needs no activation


def get_cell(name, activation="tanh"):
    """The ``Cell`` called ``name``; for the vanilla cell, the one with g = ``activation``."""
    check_choice("cell", name, tuple(CELLS))
    check_choice("activation", activation, tuple(ACTIVATIONS))
    if name == "rnn":
        return VANILLA[activation]
    if activation != "tanh":
        raise BpttError(f"activation: only the vanilla cell ('rnn') takes one; {name!r} has its own gates")
    return CELLS[name]


def cell_of(cache):
    """The ``Cell`` whose forward returned ``cache``."""
    cell = _BY_CACHE.get(type(cache))
    if cell is None:
        raise BpttError(
            "cache: expected the cache returned by rnn_forward (RNNCache, GRUCache or LSTMCache),"
            f" got {type(cache).__name__}"
        )
    return cell


def params_to_torch(params, cell="rnn", suffix="_l0"):
    """bptt's cell parameters under PyTorch's names, as NumPy arrays: load them with ``load_state_dict``.

    Returns: {weight_ih{suffix}, weight_hh{suffix}, bias_ih{suffix}, bias_hh{suffix}}.
    """
    check_params(get_cell(cell), params, {})
    b_hh = np.zeros_like(params["b_a"])
    if cell == "gru":
        n_a = params["W_aa"].shape[1]
        b_hh[2 * n_a :] = params["b_hn"]  # the only hidden bias bptt keeps apart
    return {
        f"weight_ih{suffix}": params["W_ax"],
        f"weight_hh{suffix}": params["W_aa"],
        f"bias_ih{suffix}": params["b_a"],
        f"bias_hh{suffix}": b_hh,
    }


def params_from_torch(state, cell="rnn", suffix="_l0"):
    """bptt's cell parameters from a PyTorch RNN/GRU/LSTM state (arrays under PyTorch's names).

    b_a = bias_ih + bias_hh, except the GRU's n block: b_a = bias_in there and b_hn = bias_hn.
    Returns: the parameter dict of ``cell``.
    """
    c = get_cell(cell)
    names = [f"{k}{suffix}" for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    missing = [k for k in names if k not in state]
    if missing:
        raise BpttError(f"state: missing key(s) {', '.join(missing)}")
    W_ax, W_aa, b_ih, b_hh = (np.asarray(state[k]) for k in names)
    sizes = {}
    shapes = (("G·n_a", "n_x"), ("G·n_a", "n_a"), ("G·n_a",), ("G·n_a",))
    for k, x, dims in zip(names, (W_ax, W_aa, b_ih, b_hh), shapes):
        check_array(f"state[{k!r}]", x, dims, sizes=sizes)
    n_a = W_aa.shape[1]
    if n_a == 0 or W_aa.shape[0] != c.gates * n_a:  # another cell's weights
        raise BpttError(
            f"state[{names[1]!r}]: shape {W_aa.shape} is not {c.title}'s"
            f" ({c.gates}·n_a, n_a) = ({c.gates * n_a}, {n_a}): is cell={cell!r} the module's?"
        )
    if cell == "gru":
        b_a = b_ih.copy()
        b_a[: 2 * n_a] += b_hh[: 2 * n_a]  # r and z: the two biases add up
        return {"W_ax": W_ax.copy(), "W_aa": W_aa.copy(), "b_a": b_a, "b_hn": b_hh[2 * n_a :].copy()}
    return {"W_ax": W_ax.copy(), "W_aa": W_aa.copy(), "b_a": b_ih + b_hh}


__all__ = [
    "CELLS",
    "Cell",
    "GRUCache",
    "LSTMCache",
    "cell_of",
    "get_cell",
    "gru_backward",
    "gru_forward",
    "gru_step_backward",
    "gru_step_forward",
    "lstm_backward",
    "lstm_forward",
    "lstm_step_backward",
    "lstm_step_forward",
    "params_from_torch",
    "params_to_torch",
]
