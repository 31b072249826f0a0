"""Recurrent layers to and from PyTorch: ``torch.nn.RNN``, ``GRU`` and ``LSTM``, stacked and bidirectional.

A stack of layers in bptt is a list with one entry per layer: the cell's parameter dict
(``W_ax``, ``W_aa``, ``b_a``; a GRU also ``b_hn``) for a left-to-right layer, or the pair
(forward, backward) of such dicts for a bidirectional one. PyTorch keeps the same matrices under
``weight_ih_l{k}``, ``weight_hh_l{k}`` (and ``…_reverse`` for the right-to-left direction), with
the same gate order (LSTM i, f, g, o; GRU r, z, n), so the weights are copied as they are. Only the
biases differ: PyTorch has two per layer, bias_ih and bias_hh, that always add up except in the
GRU's n gate (there bias_hn sits inside r ⊙ (·)); bptt keeps their sum, b_a, and the GRU's
b_hn apart. Both directions compute the same function exactly; a PyTorch model brought in and
sent back has bias_hh = 0 except b_hn (the sum moved into bias_ih).

torch is imported only by ``to_torch`` (``from_torch`` reads any object with ``state_dict``, or
a dict of arrays).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..cells import CELLS, get_cell, params_from_torch, params_to_torch
from ..cells.base import check_params
from ..errors import BpttError

TORCH_CLASS = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}


def _directions(layer, k):
    if isinstance(layer, dict):
        return [layer]
    if isinstance(layer, (tuple, list)) and len(layer) == 2 and all(isinstance(d, dict) for d in layer):
        return list(layer)
    raise BpttError(f"layers[{k}]: expected a parameter dict or a (forward, backward) pair of them")


def to_torch(layers, cell="rnn", activation="tanh"):
    """A ``torch.nn.RNN/GRU/LSTM`` computing exactly what ``layers`` compute in bptt.

    layers: one parameter dict (one layer, left to right) or a list of layers, each a dict or a
        (forward, backward) pair; every layer bidirectional or none. The module takes the
        parameters' dtype and is time-major (``batch_first=False``), as bptt is.
    Returns: the module, weights loaded.
    """
    try:
        import torch
    except ImportError:
        raise BpttError("to_torch: needs PyTorch (pip install torch)") from None
    c = get_cell(cell, activation)
    if not isinstance(layers, (dict, list, tuple)):
        raise BpttError(f"layers: expected a parameter dict or a list of layers, got {type(layers).__name__}")
    layers = [layers] if isinstance(layers, dict) else list(layers)
    if not layers:
        raise BpttError("layers: expected at least one layer")
    dirs = [_directions(layer, k) for k, layer in enumerate(layers)]
    if len({len(d) for d in dirs}) != 1:
        raise BpttError("layers: every layer must be bidirectional, or none")
    bidirectional = len(dirs[0]) == 2
    state = {}
    sizes = {}  # n_a of every layer and direction alike; each layer's input is the one below's output
    for k, ds in enumerate(dirs):
        if k:
            sizes["n_x"] = len(ds) * sizes["n_a"]
        for d, params in enumerate(ds):
            check_params(c, params, sizes, f"layers[{k}]" + (f"[{d}]" if bidirectional else ""))
            suffix = f"_l{k}" + ("_reverse" if d else "")
            state.update(params_to_torch(params, cell, suffix))
        sizes.pop("n_x")
    first = dirs[0][0]
    n_x, n_a = first["W_ax"].shape[1], c.hidden_size(first)
    kwargs = {"nonlinearity": activation} if cell == "rnn" else {}
    module = getattr(torch.nn, TORCH_CLASS[cell])(
        n_x, n_a, num_layers=len(layers), bidirectional=bidirectional, dtype=torch.float64, **kwargs
    )
    module.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float64)) for k, v in state.items()})
    return module.to(torch.from_numpy(np.zeros(0, dtype=first["W_ax"].dtype)).dtype)


def from_torch(module, cell=None):
    """bptt's layers from a ``torch.nn.RNN/GRU/LSTM`` (or its state dict, with ``cell``).

    Returns: a list with one entry per layer: the parameter dict of ``cell``, or a
    (forward, backward) pair for a bidirectional module. Arrays are NumPy, in the module's dtype.
    """
    if hasattr(module, "state_dict"):
        kind = type(module).__name__
        found = {v: k for k, v in TORCH_CLASS.items()}.get(kind)
        if found is None:
            raise BpttError(f"module: expected torch.nn.RNN, GRU or LSTM, got {kind}")
        if cell is not None and cell != found:
            raise BpttError(f"cell: {cell!r} given for a torch.nn.{kind}")
        if getattr(module, "proj_size", 0):
            raise BpttError("module: an LSTM with proj_size has no bptt equivalent")
        if getattr(module, "bias", True) is False:
            raise BpttError("module: bias=False: bptt's cells always have biases (export with zeros)")
        cell = found
        try:
            state = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
        except TypeError as e:  # bfloat16: NumPy has no such dtype
            raise BpttError(f"module: {e}: convert it first, e.g. module.float()") from None
    else:
        if cell not in CELLS:
            raise BpttError(f"cell: expected one of {', '.join(CELLS)} with a state dict, got {cell!r}")
        if not isinstance(module, Mapping):
            raise BpttError(
                f"module: expected torch.nn.RNN, GRU or LSTM, or a state dict, got {type(module).__name__}"
            )
        state = {k: np.asarray(v) for k, v in module.items()}
    layers = []
    while f"weight_ih_l{len(layers)}" in state:
        k = len(layers)
        forward = params_from_torch(state, cell, f"_l{k}")
        if f"weight_ih_l{k}_reverse" in state:
            layers.append((forward, params_from_torch(state, cell, f"_l{k}_reverse")))
        else:
            layers.append(forward)
    if not layers:
        raise BpttError("module: no weight_ih_l0: not a PyTorch recurrent layer's state")
    return layers
