"""The tagger for PyTorch: its weights under `torch_tagger.TaggerModule`'s names, safetensors + JSON.

``bptt export --format torch --out DIR`` writes three files into DIR (new, or holding other files;
an earlier export's are replaced only with ``--overwrite``):

    tagger.safetensors   the state dict of ``TaggerModule`` (float32; no pickle)
    tagger_module.py     the module's source (`bptt.export.torch_tagger`, torch only): the constructor
    tagger.json          written last: the module's sizes ("module"), the weights' SHA-256, the
                         settings, vocabularies, tag scheme, "encoding" and "decoding" (as the ONNX
                         file's metadata)

    model = TaggerModule.from_files(DIR)     # bptt.export.torch_tagger, or tagger_module beside it

Exporting needs no torch: the names are PyTorch's (`bptt.cells.params_to_torch` per layer and
direction), the file bptt's own safetensors writer. When torch is installed the module is built and
checked against bptt's logits before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from ..cells import get_cell, params_to_torch
from ..errors import BpttError
from ..io.atomic import atomic_write
from ..io.safetensors_io import save_safetensors
from ..io.torch_params import TORCH_CLASS
from ..models.vocab import CASINGS
from .common import check_against_bptt, check_new_file, description, need_params

WEIGHTS, CONFIG, MODULE = "tagger.safetensors", "tagger.json", "tagger_module.py"
FORMAT = "bptt-tagger-torch"  # torch_tagger.FORMAT (that file imports nothing of bptt)


def _directions(params, prefix, cell, directions, layer):
    """PyTorch's names of one layer's parameters: ``weight_ih_l{layer}`` and ``…_reverse``."""
    state = {}
    for d in directions:
        sub = {k: params[f"{prefix}.{d}.{k}"] for k in get_cell(cell).keys}
        state.update(params_to_torch(sub, cell, f"_l{layer}" + ("_reverse" if d == "b" else "")))
    return state


def torch_state_dict(params, cfg):
    """bptt's parameters as `TaggerModule`'s state dict (NumPy float32: ``torch.from_numpy`` each).

    Returns: dict name -> array.
    """
    state = {"word.weight": params["E_word"]}
    if cfg.case_dim:
        state["case.weight"] = params["E_case"]
    if cfg.char_dim:
        state["char.weight"] = params["E_char"]
        for k, v in _directions(params, "char", "rnn", ("f", "b"), 0).items():
            state[f"char_rnn.{k}"] = v
    for layer in range(1, cfg.layers + 1):
        for k, v in _directions(params, f"rnn{layer}", cfg.cell, cfg.directions, layer - 1).items():
            state[f"rnn.{k}"] = v
    state["head.weight"], state["head.bias"] = params["W_ya"], params["b_y"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}


def module_sizes(cfg, vocab):
    """`TaggerModule`'s constructor arguments."""
    keep = ("word_dim", "case_dim", "char_dim", "char_hidden", "hidden", "layers", "bidirectional", "cell")
    sizes = {k: getattr(cfg, k) for k in keep}
    n = {"n_words": len(vocab.words), "n_chars": len(vocab.chars), "n_casings": len(CASINGS), "n_y": cfg.n_y}
    return {**n, **sizes, "activation": cfg.activation}


def check_torch_out(directory, inputs, overwrite):
    """Refuse ``--out DIR`` before any work: a file, a missing parent, the model's own directory, or
    (without ``overwrite``) an earlier export's files."""
    directory = os.fspath(directory)
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise BpttError(f"{directory}: is not a directory (--format torch writes a directory)")
    if not os.path.isdir(directory):
        parent = os.path.dirname(os.path.abspath(directory))
        if not os.path.isdir(parent):
            raise BpttError(f"{directory}: cannot write: folder {parent} does not exist")
        return
    if any(os.path.exists(p) and os.path.samefile(os.path.dirname(p) or ".", directory) for p in inputs):
        raise BpttError(f"{directory}: is the model directory; export into another one")
    for name in (WEIGHTS, MODULE, CONFIG):
        check_new_file(os.path.join(directory, name), inputs, overwrite)


def _module_source():
    with open(os.path.join(os.path.dirname(__file__), "torch_tagger.py"), "rb") as f:
        return f.read()


def _check_with_torch(tagger, state, sizes):
    """max |logit difference| of the module against bptt, or None when torch is not installed."""
    try:
        import torch

        from .torch_tagger import TaggerModule
    except ImportError:
        return None
    module = TaggerModule(**sizes)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    module.eval()

    def run(inputs):
        with torch.no_grad():
            return module(**{k: torch.from_numpy(v) for k, v in inputs.items()}).numpy()

    return check_against_bptt(tagger, run, "the exported PyTorch module")


def export_torch(tagger, directory, inputs=(), overwrite=False):
    """Write ``tagger`` (with its parameters) into ``directory`` for PyTorch (see the module docstring).

    Checks come first (`check_torch_out`), then the module is checked against bptt when torch is
    installed; each file is written atomically, tagger.json last.
    Returns: dict with the files written and the max |logit difference| (None: torch absent, not checked).
    """
    need_params(tagger)
    if tagger.cfg.cell not in TORCH_CLASS:
        raise BpttError(
            f"cell {tagger.cfg.cell!r}: torch.nn has no module for it (exported: {', '.join(TORCH_CLASS)})"
        )
    directory = os.fspath(directory)
    check_torch_out(directory, inputs, overwrite)
    state = torch_state_dict(tagger.params, tagger.cfg)
    sizes = module_sizes(tagger.cfg, tagger.vocab)
    diff = _check_with_torch(tagger, state, sizes)
    if not os.path.isdir(directory):
        try:
            os.mkdir(directory)
        except OSError as e:
            raise BpttError(f"{directory}: cannot create: {e.strerror or e}") from None
    weights = os.path.join(directory, WEIGHTS)
    save_safetensors(weights, state)
    with open(weights, "rb") as f:
        sha256 = hashlib.sha256(f.read()).hexdigest()
    atomic_write(os.path.join(directory, MODULE), _module_source())
    doc = {"format": FORMAT, **description(tagger.cfg, tagger.vocab, tagger.scheme), "module": sizes}
    doc["weights_sha256"] = sha256
    text = json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8")
    atomic_write(os.path.join(directory, CONFIG), text)
    return {
        "files": [weights, os.path.join(directory, MODULE), os.path.join(directory, CONFIG)],
        "max_diff": diff,
    }
