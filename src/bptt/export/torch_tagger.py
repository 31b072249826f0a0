"""A bptt tagger as a ``torch.nn.Module``, weights from ``bptt export --format torch``.

    import tagger_module                                        # this file: the export writes it beside
    model = tagger_module.TaggerModule.from_files("tagger_pt")   # tagger.json + tagger.safetensors
    logits = model(**inputs)                                    # (T, B, n_y), bptt's Z_y

(or ``from bptt.export.torch_tagger import TaggerModule``). The network is bptt's tagger, in PyTorch's
layers: ``nn.Embedding`` for words, casing and characters, a bidirectional ``nn.RNN`` over each word's
characters (its two final states [c→⟨last⟩; c←⟨first⟩]), ``nn.RNN``/``GRU``/``LSTM`` over the words
(packed: each sentence read within its own length, both ways), ``nn.Linear`` for the head. Weights
are bptt's as they are; PyTorch's bias_ih holds bptt's b_a and bias_hh is zero except the GRU's
b_hn (`bptt.cells.params_to_torch`).

Inputs: int64 tensors, time-major, exactly the ONNX export's (`bptt.export.inputs`): ``words`` (T, B),
``lengths`` (B,), and ``cases`` (T, B), ``chars`` (T, B, C), ``n_chars`` (T, B) when the model has
casing and characters. ``model.config`` (tagger.json) holds the vocabularies, how words become
those ids ("encoding") and how logits become tags ("decoding").

This file needs only torch: no bptt, and no pickle — the weights are read from safetensors by the
few lines of `read_safetensors` (a little-endian machine, as the format is).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

WEIGHTS, CONFIG = "tagger.safetensors", "tagger.json"
FORMAT = "bptt-tagger-torch"
RECURRENT = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class TaggerModule(nn.Module):
    """bptt's tagger network (inference: no dropout). Sizes as in tagger.json's "module"."""

    def __init__(
        self,
        n_words,
        n_chars,
        n_casings,
        n_y,
        word_dim,
        case_dim,
        char_dim,
        char_hidden,
        hidden,
        layers,
        bidirectional,
        cell,
        activation,
    ):
        super().__init__()
        self.word = nn.Embedding(n_words, word_dim)
        self.case = nn.Embedding(n_casings, case_dim) if case_dim else None
        self.char = nn.Embedding(n_chars, char_dim) if char_dim else None
        self.char_rnn = None
        if char_dim:  # the character RNN is always the vanilla cell, both ways
            self.char_rnn = nn.RNN(char_dim, char_hidden, nonlinearity=activation, bidirectional=True)
        n_x = word_dim + case_dim + 2 * char_hidden * bool(char_dim)
        kwargs = {"nonlinearity": activation} if cell == "rnn" else {}
        self.rnn = RECURRENT[cell](n_x, hidden, num_layers=layers, bidirectional=bidirectional, **kwargs)
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), n_y)

    def forward(self, words, lengths, cases=None, chars=None, n_chars=None):
        """Shapes: words (T, B), lengths (B,), cases (T, B), chars (T, B, C), n_chars (T, B).

        Returns: logits (T, B, n_y); rows past a sentence's length are the head's bias.
        """
        T, B = words.shape
        parts = [self.word(words)]  # (T, B, word_dim)
        if self.case is not None:
            parts.append(self.case(cases))  # (T, B, case_dim)
        if self.char_rnn is not None:
            n = n_chars.reshape(T * B)
            X_c = self.char(chars.reshape(T * B, -1).T)  # (C, T·B, char_dim): every word one sequence
            packed = pack_padded_sequence(X_c, n.clamp(min=1).cpu(), enforce_sorted=False)
            _, H = self.char_rnn(packed)  # (2, T·B, n_c): c→ at the last character, c← at the first
            H = torch.cat([H[0], H[1]], dim=1)  # (T·B, 2 n_c)
            H = torch.where(
                (n > 0)[:, None], H, torch.zeros_like(H)
            )  # 0 characters (padding): zeros, as bptt
            parts.append(H.reshape(T, B, -1))  # (T, B, 2 n_c)
        X = torch.cat(parts, dim=2)  # (T, B, n_x)
        out, _ = self.rnn(pack_padded_sequence(X, lengths.cpu(), enforce_sorted=False))
        A, _ = pad_packed_sequence(out, total_length=T)  # (T, B, D·hidden), zeros past each length
        return self.head(A)  # (T, B, n_y)

    @classmethod
    def from_files(cls, directory):
        """The module of an export directory (tagger.json, tagger.safetensors), in eval mode.

        Returns: TaggerModule with its weights, and ``.config``, tagger.json's contents.
        """
        with open(os.path.join(directory, CONFIG), encoding="utf-8") as f:
            config = json.load(f)
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise ValueError(f"{os.path.join(directory, CONFIG)}: not a {FORMAT} description")
        path = os.path.join(directory, WEIGHTS)
        with open(path, "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != config["weights_sha256"]:  # a half-replaced export
            raise ValueError(f"{path}: is not the file {CONFIG} describes (SHA-256 differs)")
        module = cls(**config["module"])
        module.load_state_dict(read_safetensors(data), strict=True)
        module.config = config
        return module.eval()


def read_safetensors(data):
    """The float32 tensors of a safetensors file's bytes: an 8-byte little-endian header length, a JSON
    header {name: {dtype, shape, data_offsets}}, the raw data.

    Returns: dict name -> torch.Tensor.
    """
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = memoryview(data)[8 + n :]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] != "F32":
            raise ValueError(f"tensor {name!r}: dtype {entry['dtype']}, expected F32")
        start, end = entry["data_offsets"]
        flat = torch.frombuffer(bytearray(body[start:end]), dtype=torch.float32)  # a copy: writable
        out[name] = flat.reshape(entry["shape"])
    return out
