"""The tagger as one ONNX graph, built from bptt's parameters with the standard recurrent operators.

    x_word  = Gather(E_word, words)                              (T, B, word_dim)
    x_case  = Gather(E_case, cases)                              (T, B, case_dim)
    c(w)    = Y_h of RNN(bidirectional) over Gather(E_char, chars) with sequence_lens = n_chars,
              every word of the batch one sequence (T·B of them): [c→⟨last⟩; c←⟨first⟩], zeros for
              a word of 0 characters (padding), as in bptt                  (T, B, 2 char_hidden)
    x       = Concat(x_word, x_case, c(w))                       (T, B, n_x)
    a       = RNN | GRU | LSTM per layer, sequence_lens = lengths, forward or bidirectional
                                                                  (T, B, D·hidden)
    logits  = a W_yaᵀ + b_y                                      (T, B, n_y): bptt's Z_y
    proba   = σ(logits[:, :, 0]) (person, (T, B)) or softmax(logits) (ner, (T, B, n_tags))

The inputs are int64 ids (`bptt.export.inputs`: words, cases, chars, n_chars, lengths; a model
without casing or characters takes fewer). Positions past a sentence's length hold zeros in the
recurrent outputs and carry no meaning. Everything is float32, opset 17.

Gate orders. bptt keeps PyTorch's: LSTM i|f|g|o, GRU r|z|n with n = tanh(W_in x + b_in + r ⊙ (W_hn
a + b_hn)). ONNX's LSTM is i|o|f|c and its GRU z|r|h; ``linear_before_reset=1`` is PyTorch's GRU. ONNX's
B is [Wb; Rb]: bptt's b_a goes into Wb (Rb = 0), except the GRU's b_hn, which is Rb's h block (it
sits inside r ⊙ (·)) — the same split as PyTorch's bias_ih / bias_hh (`bptt.cells.params_to_torch`).

The file alone suffices to tag: its ``metadata_props`` holds one key, ``bptt``, a JSON document with
the format and version, the tagger's settings (task, tags, aux_tags, sizes, cell), the vocabularies
(``vocab.words``, ``vocab.chars``), the training file's tag scheme, how words become ids
(``encoding``) and how probabilities become tags (``decoding``). ``bptt tag --model FILE.onnx``
reads it (`bptt.export.onnx_runtime`).
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..cells import get_cell, params_to_torch
from ..errors import BpttError
from ..io.output import open_output
from .common import bptt_version, check_against_bptt, check_new_file, decoding_doc, description, need_params
from .inputs import encoding_doc, input_names

OPSET = 17  # ≥ 14: GRU's linear_before_reset with sequence_lens; run by onnxruntime ≥ 1.17
IR_VERSION = 8  # opset 17's, so that older runtimes read the file too
FORMAT = "bptt-tagger-onnx"
OPERATOR = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}  # bptt's word cells -> ONNX's operators
ACTIVATION = {"tanh": "Tanh", "relu": "Relu"}  # the vanilla cell's g -> ONNX's name
GATE_ORDER = {"rnn": [0], "gru": [1, 0, 2], "lstm": [0, 3, 1, 2]}  # ONNX z|r|h, i|o|f|c as bptt blocks
MAX_BYTES = 2**31 - 2**24  # protobuf's 2 GiB limit for one file, less room for the graph and metadata
OUTPUTS = ("logits", "proba")
NEEDS = "bptt export --format onnx needs: pip install 'bptt[onnx]'"


def import_onnx():
    try:
        import onnx
        import onnx.numpy_helper  # noqa: F401  (a submodule: imported for numpy_helper.from_array)
    except ImportError:
        raise BpttError(NEEDS) from None
    return onnx


def check_exportable(cfg, params):
    """Refuse, with one line naming it, what the standard operators cannot compute."""
    if cfg.cell not in OPERATOR:
        raise BpttError(f"cell {cfg.cell!r}: ONNX has no operator for it (exported: {', '.join(OPERATOR)})")
    if cfg.activation not in ACTIVATION:
        raise BpttError(
            f"activation {cfg.activation!r}: ONNX's RNN operator has no such g (exported: tanh, relu)"
        )
    size = sum(np.asarray(a).size for a in params.values()) * 4  # float32
    if size > MAX_BYTES:
        raise BpttError(
            f"the model's weights take {size / 2**30:.1f} GiB as float32: one ONNX file holds at most 2 GiB"
        )


def onnx_weights(params, prefix, cell, directions):
    """ONNX's W, R, B of one recurrent layer from bptt's parameters ``{prefix}.{d}.W_ax`` ….

    Shapes: W (D, k·n_a, n_x), R (D, k·n_a, n_a), B (D, 2·k·n_a) with k gates, ONNX's order.
    """
    Ws, Rs, Bs = [], [], []
    for d in directions:
        sub = {k: params[f"{prefix}.{d}.{k}"] for k in get_cell(cell).keys}
        t = params_to_torch(sub, cell, "")  # PyTorch's split of the biases: bias_ih, bias_hh
        n_a = t["weight_hh"].shape[1]
        rows = np.concatenate([np.arange(g * n_a, (g + 1) * n_a) for g in GATE_ORDER[cell]])
        Ws.append(t["weight_ih"][rows])
        Rs.append(t["weight_hh"][rows])
        Bs.append(np.concatenate([t["bias_ih"][rows], t["bias_hh"][rows]]))  # [Wb; Rb]
    return np.stack(Ws), np.stack(Rs), np.stack(Bs)


class _Graph:
    """The nodes and initializers of a graph being built; every value is named."""

    def __init__(self, onnx):
        self.onnx, self.nodes, self.inits = onnx, [], []

    def const(self, name, array):
        self.inits.append(
            self.onnx.numpy_helper.from_array(np.asarray(array, order="C"), name)
        )  # 0-d stays 0-d
        return name

    def op(self, op_type, inputs, outputs, **attrs):
        """Add a node; returns its output name (or names, when given a list)."""
        names = [outputs] if isinstance(outputs, str) else outputs
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, names, name=names[-1], **attrs))
        return outputs

    def recurrent(self, X, lens, params, prefix, cell, directions, n_a, activation, Y="", Y_h=""):
        """One recurrent layer (both directions in one operator); returns its outputs (Y, Y_h)."""
        W, R, B = onnx_weights(params, prefix, cell, directions)
        inputs = [X, self.const(f"{prefix}.W", W), self.const(f"{prefix}.R", R), self.const(f"{prefix}.B", B)]
        attrs = {"direction": "bidirectional" if len(directions) == 2 else "forward", "hidden_size": n_a}
        if cell == "rnn":
            attrs["activations"] = [ACTIVATION[activation]] * len(directions)
        if cell == "gru":
            attrs["linear_before_reset"] = 1  # PyTorch's GRU: r applied after W_hn a + b_hn
        return self.op(OPERATOR[cell], [*inputs, lens], [Y, Y_h], **attrs)


def build_onnx(params, cfg, vocab, scheme):
    """The tagger as an ONNX ModelProto (see the module docstring), checked by ``onnx.checker``.

    Returns: the model.
    """
    onnx = import_onnx()
    check_exportable(cfg, params)
    TP, helper = onnx.TensorProto, onnx.helper
    p = {k: np.asarray(v, dtype=np.float32) for k, v in params.items()}
    g = _Graph(onnx)
    parts = [g.op("Gather", [g.const("E_word", p["E_word"]), "words"], "x_word")]  # (T, B, word_dim)
    if cfg.case_dim:
        parts.append(g.op("Gather", [g.const("E_case", p["E_case"]), "cases"], "x_case"))  # (T, B, case_dim)
    if cfg.char_dim:
        flat = g.op("Flatten", ["chars"], "chars_flat", axis=2)  # (T·B, C): every word one sequence
        chars = g.op("Transpose", [flat], "chars_tm", perm=[1, 0])  # (C, T·B) time-major
        Xc = g.op("Gather", [g.const("E_char", p["E_char"]), chars], "x_chars")  # (C, T·B, char_dim)
        n_flat = g.op("Reshape", ["n_chars", g.const("flat", np.array([-1]))], "n_chars_flat")  # (T·B,)
        n_chars = g.op("Cast", [n_flat], "n_chars_i32", to=TP.INT32)
        n = cfg.char_hidden
        _, H = g.recurrent(Xc, n_chars, p, "char", "rnn", ("f", "b"), n, cfg.activation, Y_h="char_h")
        # Y_h (2, T·B, n): c→ at each word's last character, c← at its first; zeros for 0 characters
        H = g.op("Transpose", [H], "char_h_words", perm=[1, 0, 2])  # (T·B, 2, n)
        shape = g.op(
            "Concat", [g.op("Shape", ["words"], "T_B"), g.const("2n", np.array([2 * n]))], "TB2n", axis=0
        )
        parts.append(g.op("Reshape", [H, shape], "x_char"))  # (T, B, 2n)
    X = g.op("Concat", parts, "x", axis=2) if len(parts) > 1 else parts[0]  # (T, B, n_x)
    lens = g.op("Cast", ["lengths"], "lengths_i32", to=TP.INT32)  # the operators' sequence_lens
    keep_T_B = g.const("T_B_rest", np.array([0, 0, -1]))  # Reshape: 0 keeps T and B
    for layer in range(1, cfg.layers + 1):
        prefix = f"rnn{layer}"
        Y, _ = g.recurrent(
            X, lens, p, prefix, cfg.cell, cfg.directions, cfg.hidden, cfg.activation, Y=f"{prefix}.Y"
        )
        Y = g.op("Transpose", [Y], f"{prefix}.Y_tb", perm=[0, 2, 1, 3])  # (T, D, B, n_a) -> (T, B, D, n_a)
        X = g.op("Reshape", [Y, keep_T_B], f"a{layer}")  # (T, B, D·n_a) = [a→; a←]
    Z = g.op("MatMul", [X, g.const("W_ya_T", p["W_ya"].T)], "z_ya")  # (T, B, n_y)
    g.op("Add", [Z, g.const("b_y", p["b_y"])], "logits")
    if cfg.task == "person":  # column 0 is the person logit; the auxiliary columns only trained
        z = g.op("Gather", ["logits", g.const("person", np.array(0))], "person_logit", axis=2)  # (T, B)
        g.op("Sigmoid", [z], "proba")
        proba_shape = ["T", "B"]
    else:
        g.op("Softmax", ["logits"], "proba", axis=2)
        proba_shape = ["T", "B", len(cfg.tags)]
    doc = encoding_doc()
    shapes = {"words": ["T", "B"], "cases": ["T", "B"], "chars": ["T", "B", "C"], "n_chars": ["T", "B"]}
    inputs = [
        helper.make_tensor_value_info(name, TP.INT64, shapes.get(name, ["B"]), doc_string=doc[name])
        for name in input_names(cfg)
    ]
    outputs = [
        helper.make_tensor_value_info(
            "logits", TP.FLOAT, ["T", "B", cfg.n_y], doc_string="Z_y = W_ya a + b_y, bptt's logits"
        ),
        helper.make_tensor_value_info("proba", TP.FLOAT, proba_shape, doc_string=decoding_doc(cfg)["proba"]),
    ]
    graph = helper.make_graph(g.nodes, f"bptt_{cfg.task}_tagger", inputs, outputs, initializer=g.inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="bptt",
        producer_version=bptt_version(),
    )
    model.ir_version = IR_VERSION
    model.doc_string = __doc__
    helper.set_model_props(model, {"bptt": json.dumps(metadata(cfg, vocab, scheme), ensure_ascii=False)})
    onnx.checker.check_model(model)
    return model


def metadata(cfg, vocab, scheme):
    """The file's ``bptt`` metadata: everything needed to tag besides the graph."""
    return {
        "format": FORMAT,
        **description(cfg, vocab, scheme),
        "inputs": list(input_names(cfg)),
        "outputs": list(OUTPUTS),
    }


def serialize(model):
    try:
        return model.SerializeToString()
    except ValueError as e:  # protobuf's own limit, should the estimate have missed it
        raise BpttError(f"the model cannot be written as one ONNX file: {e}") from None


def export_onnx(tagger, path, inputs=(), overwrite=False):
    """Write ``tagger`` (with its parameters: loaded from a model directory) to ``path`` as one ONNX file.

    Every check comes first: the name (``.onnx``), what is there (an input, a directory, an existing
    file without ``overwrite``), what the graph can express; then the graph is built, run by
    onnxruntime on test sentences and compared with bptt's logits (`check_against_bptt`); only then
    is the file written, atomically (`bptt.io.output.open_output`).
    Returns: dict with the file written, its bytes, the max |logit difference| on the test sentences,
    and the graph's inputs.
    """
    from .onnx_runtime import session_from

    need_params(tagger)
    check_new_file(path, inputs, overwrite, ".onnx")
    model = build_onnx(tagger.params, tagger.cfg, tagger.vocab, tagger.scheme)
    data = serialize(model)
    sess = session_from(data, "the exported graph", needs=NEEDS)
    diff = check_against_bptt(tagger, lambda x: sess.run(["logits"], x)[0], "the exported ONNX graph")
    with open_output(path, inputs, binary=True) as f:
        f.write(data)
    return {
        "files": [os.fspath(path)],
        "bytes": len(data),
        "max_diff": diff,
        "inputs": input_names(tagger.cfg),
    }
