"""ONNX and PyTorch exports of the tagger: the same logits as bptt (float32), the same tags, the same output.

Each cell (rnn, gru, lstm), task (person, ner), one or both directions, one or two layers, with and
without casing and the character RNN, on sentences of one word and of many, batches mixing lengths,
unknown words and characters, a word of no characters. The export's errors, and its files.
"""

import importlib.util
import json
import os
import sys

import numpy as np
import pytest

from bptt.cli import main
from bptt.errors import BpttError
from bptt.export import encode, export_onnx, export_torch, input_names, torch_state_dict
from bptt.export import onnx as onnx_export
from bptt.export.inputs import sentence_batch
from bptt.io.modelfiles import save_model_dir
from bptt.models.tagger import Tagger, load_tagger
from bptt.models.tagger_network import TaggerConfig, init_tagger_params, output_proba, tagger_forward
from bptt.models.vocab import Vocab
from tests.conftest import data_file
from tests.helpers import error_line

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

TRAIN = [
    ["Harry", "Potter", "met", "Ron", "Weasley", "in", "London", "."],
    ["He", "went", "to", "New", "York", "in", "1999", "with", "McDonald's", "staff", "."],
]
NER_TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
LONG = [w for _ in range(8) for w in TRAIN[1]]  # 88 words
SENTENCES = [
    ["Harry"],  # one word
    LONG,
    ["Zqxjvw", "Ünïcödé", "ǂʘ", "X" * 30, "Ron"],  # unknown words, unknown characters, clipped to 20
    ["Harry", "", "Potter"],  # a word of no characters: what padding is
    TRAIN[0],
]
SMALL = {"word_dim": 5, "case_dim": 3, "char_dim": 4, "char_hidden": 3, "hidden": 4}
TOL = 1e-5  # float32


def tiny_tagger(cell="lstm", task="ner", bidirectional=True, layers=2, chars=True, seed=0, **kw):
    """A tagger with random weights, every bias non-zero (zeros would hide a bias in the wrong place)."""
    kw = {**SMALL, "char_dim": SMALL["char_dim"] if chars else 0, **kw}
    tags = {"tags": NER_TAGS} if task == "ner" else {}
    cfg = TaggerConfig(task=task, cell=cell, bidirectional=bidirectional, layers=layers, **tags, **kw)
    vocab = Vocab.build(TRAIN)
    params = init_tagger_params(cfg, len(vocab.words), len(vocab.chars), seed=seed)
    rng = np.random.default_rng(seed)
    params = {k: (v + 0.3 * rng.standard_normal(v.shape)).astype(v.dtype) for k, v in params.items()}
    return Tagger(params, cfg, vocab, "IOB1" if task == "ner" else "IOB2")


def bptt_logits(tagger, sentences):
    batch, tables = sentence_batch(tagger.vocab, sentences)
    return tagger_forward(tagger.params, tagger.cfg, batch, tables)[0], batch.mask


def onnx_session(tagger):
    model = onnx_export.build_onnx(tagger.params, tagger.cfg, tagger.vocab, tagger.scheme)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def torch_module(tagger):
    from bptt.export.pytorch import module_sizes
    from bptt.export.torch_tagger import TaggerModule

    module = TaggerModule(**module_sizes(tagger.cfg, tagger.vocab))
    state = torch_state_dict(tagger.params, tagger.cfg)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    return module.eval()


def torch_logits(module, inputs):
    with torch.no_grad():
        return module(**{k: torch.from_numpy(v) for k, v in inputs.items()}).numpy()


def assert_close(Z, Z_x, mask, tol=TOL):
    assert Z_x.shape == Z.shape and Z_x.dtype == np.float32
    diff = np.abs(Z - Z_x)[mask].max()
    assert diff <= tol, diff


CONFIGS = [
    (cell, task, bidirectional, layers, chars)
    for cell in ("rnn", "gru", "lstm")
    for task in ("person", "ner")
    for bidirectional, layers, chars in (
        (True, 2, True),
        (False, 1, False),
        (True, 1, False),
        (False, 2, True),
    )
]


@pytest.mark.parametrize("cell, task, bidirectional, layers, chars", CONFIGS)
def test_onnx_and_torch_logits_equal_bptts(cell, task, bidirectional, layers, chars):
    tagger = tiny_tagger(cell, task, bidirectional, layers, chars)
    Z, mask = bptt_logits(tagger, SENTENCES)
    inputs = encode(tagger.vocab, tagger.cfg, SENTENCES)
    assert tuple(inputs) == input_names(tagger.cfg)
    session, module = onnx_session(tagger), torch_module(tagger)
    logits, proba = session.run(["logits", "proba"], inputs)
    assert_close(Z, logits, mask)
    np.testing.assert_allclose(proba[mask], output_proba(Z, tagger.cfg)[mask], atol=1e-6)
    assert_close(Z, torch_logits(module, inputs), mask)
    for s in SENTENCES[::2]:  # alone: no padding at all
        Z1, mask1 = bptt_logits(tagger, [s])
        inputs = encode(tagger.vocab, tagger.cfg, [s])
        assert_close(Z1, session.run(["logits"], inputs)[0], mask1)
        assert_close(Z1, torch_logits(module, inputs), mask1)


@pytest.mark.parametrize(
    "kw",
    [
        {"cell": "rnn", "activation": "relu"},
        {"task": "person", "aux_tags": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]},  # extra logit columns
        {"case_dim": 0},
        {"case_dim": 0, "chars": False, "layers": 3},
        {"cell": "gru", "bidirectional": False},
    ],
)
def test_more_shapes_of_tagger(kw):
    tagger = tiny_tagger(**kw)
    Z, mask = bptt_logits(tagger, SENTENCES)
    inputs = encode(tagger.vocab, tagger.cfg, SENTENCES)
    assert_close(Z, onnx_session(tagger).run(["logits"], inputs)[0], mask)
    assert_close(Z, torch_logits(torch_module(tagger), inputs), mask)


def test_a_float64_model_is_exported_in_float32():
    tagger = tiny_tagger("gru")
    tagger.params = {k: v.astype(np.float64) for k, v in tagger.params.items()}
    Z, mask = bptt_logits(tagger, SENTENCES)
    assert Z.dtype == np.float64
    assert_close(
        Z, onnx_session(tagger).run(["logits"], encode(tagger.vocab, tagger.cfg, SENTENCES))[0], mask
    )


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("task", ["person", "ner"])
def test_the_onnx_tagger_tags_as_bptt(tmp_path, cell, task):
    tagger = tiny_tagger(cell, task, seed=3)
    path = tmp_path / "t.onnx"
    done = export_onnx(tagger, path)
    assert done["max_diff"] <= TOL and path.stat().st_size == done["bytes"]
    exported = load_tagger(path)
    assert exported.params is None and exported.scheme == tagger.scheme
    assert exported.predict(SENTENCES) == tagger.predict(SENTENCES)
    assert exported.predict(SENTENCES, batch_size=2) == tagger.predict(SENTENCES)  # batches mixing lengths
    text = "Mr. Harry Potter met Ron in London.\nHe went to New York in 1999."
    assert exported.tag(text) == tagger.tag(text)
    module = torch_module(tagger)
    Z = torch_logits(module, encode(tagger.vocab, tagger.cfg, SENTENCES))
    batch, _ = sentence_batch(tagger.vocab, SENTENCES)
    from bptt.models.tagger_network import decode

    assert decode(tagger.cfg, output_proba(Z, tagger.cfg), batch.lengths) == tagger.predict(SENTENCES)


def test_the_onnx_file_alone_suffices(tmp_path):
    tagger = tiny_tagger("lstm", "ner")
    export_onnx(tagger, tmp_path / "t.onnx")
    model = onnx.load(tmp_path / "t.onnx")
    onnx.checker.check_model(model)
    assert model.opset_import[0].version >= 14
    ops = {n.op_type for n in model.graph.node}
    assert {"LSTM", "RNN", "Gather"} <= ops
    for n in model.graph.node:
        if n.op_type in ("LSTM", "RNN"):
            assert n.input[4]  # sequence_lens given: variable lengths inside the operator
    meta = json.loads({p.key: p.value for p in model.metadata_props}["bptt"])
    assert meta["format"] == "bptt-tagger-onnx" and meta["task"] == "ner" and meta["tags"] == NER_TAGS
    assert meta["scheme"] == "IOB1" and meta["vocab"]["words"] == tagger.vocab.words
    assert meta["vocab"]["chars"] == tagger.vocab.chars and meta["inputs"] == list(input_names(tagger.cfg))
    assert meta["encoding"]["max_chars"] == 20 and "Viterbi" in meta["decoding"]["tags"]
    assert [i.name for i in model.graph.input] == ["words", "cases", "chars", "n_chars", "lengths"]
    assert [o.name for o in model.graph.output] == ["logits", "proba"]


def test_gru_gates_are_in_onnx_order():
    """One GRU direction by hand: ONNX's z|r|h blocks are bptt's z, r, n; b_hn sits in Rb's h block."""
    tagger = tiny_tagger("gru")
    p, n_a = tagger.params, SMALL["hidden"]
    W, R, B = onnx_export.onnx_weights(p, "rnn1", "gru", ("f",))
    r, z, n = (slice(k * n_a, (k + 1) * n_a) for k in range(3))
    np.testing.assert_array_equal(W[0, :n_a], p["rnn1.f.W_ax"][z])
    np.testing.assert_array_equal(R[0, n_a : 2 * n_a], p["rnn1.f.W_aa"][r])
    np.testing.assert_array_equal(B[0, 2 * n_a : 3 * n_a], p["rnn1.f.b_a"][n])  # Wb_h = b_in
    np.testing.assert_array_equal(B[0, 5 * n_a :], p["rnn1.f.b_hn"])  # Rb_h = b_hn
    assert not B[0, 3 * n_a : 5 * n_a].any()  # Rb_z, Rb_r: bptt keeps their sums in b_a


# ------------------------------------------------------------------------------------------ command line


@pytest.fixture
def model_dir(tmp_path):
    tagger = tiny_tagger("lstm", "ner", seed=1)
    config = {"task": "ner", "tagger": tagger.cfg.to_json(), "scheme": "IOB1"}
    save_model_dir(tmp_path / "model", tagger.params, config, tagger.vocab.to_json())
    return tmp_path / "model"


def run_cli(capsys, *argv):
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 0
    return capsys.readouterr().out


def test_bptt_tag_on_the_onnx_file_writes_what_the_directory_does(tmp_path, capsys, model_dir):
    out = tmp_path / "t.onnx"
    assert "wrote" in run_cli(capsys, "export", "--model", model_dir, "--format", "onnx", "--out", out)
    text = tmp_path / "in.txt"
    text.write_text(
        "Harry Potter met Ron in London.\n\nMr. Zqxjvw went to New York. He met McDonald's staff.\n"
    )
    conll = tmp_path / "in.conll"
    conll.write_text("Harry\nPotter\n\nǂʘ\nLondon\n")
    for fmt in ("inline", "conll", "json"):
        args = ["tag", "--input", text, "--format", fmt]
        assert run_cli(capsys, *args, "--model", out) == run_cli(capsys, *args, "--model", model_dir)
    args = ["tag", "--input", conll, "--input-format", "conll", "--format", "conll"]
    assert run_cli(capsys, *args, "--model", out) == run_cli(capsys, *args, "--model", model_dir)
    args = ["tag", "Harry Potter met Ron.", "Ron went to London."]
    assert run_cli(capsys, *args, "--model", out) == run_cli(capsys, *args, "--model", model_dir)


def test_bptt_export_torch_writes_a_standalone_module(tmp_path, capsys, model_dir):
    out = tmp_path / "pt"
    run_cli(capsys, "export", "--model", model_dir, "--format", "torch", "--out", out)
    assert sorted(os.listdir(out)) == ["tagger.json", "tagger.safetensors", "tagger_module.py"]
    source = (out / "tagger_module.py").read_text()
    assert "bptt" not in "".join(line for line in source.splitlines() if line.startswith(("import", "from")))
    spec = importlib.util.spec_from_file_location("tagger_module_under_test", out / "tagger_module.py")
    standalone = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(standalone)
    module = standalone.TaggerModule.from_files(out)
    tagger = load_tagger(model_dir)
    Z, mask = bptt_logits(tagger, SENTENCES)
    inputs = encode(tagger.vocab, tagger.cfg, SENTENCES)
    assert_close(Z, torch_logits(module, inputs), mask)
    assert module.config["vocab"]["words"] == tagger.vocab.words and module.config["scheme"] == "IOB1"
    from safetensors.numpy import load_file  # the reference reader reads the state dict

    state = load_file(out / "tagger.safetensors")
    assert {k: v.shape for k, v in state.items()} == {
        k: tuple(v.shape) for k, v in module.state_dict().items()
    }


def test_export_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--format torch" in out and "lengths (B,)" in out


# ----------------------------------------------------------------------------------------------- errors


def no_files_but(directory, *names):
    assert sorted(os.listdir(directory)) == sorted(names)  # no temporary file left either


def test_an_existing_output_is_replaced_only_with_overwrite(tmp_path, capsys, model_dir):
    out = tmp_path / "t.onnx"
    out.write_bytes(b"mine")
    assert "exists; give --overwrite" in error_line(capsys, "export", "--model", model_dir, "--out", out)
    assert out.read_bytes() == b"mine"
    run_cli(capsys, "export", "--model", model_dir, "--out", out, "--overwrite")
    assert load_tagger(out).predict(SENTENCES) == load_tagger(model_dir).predict(SENTENCES)
    pt = tmp_path / "pt"
    run_cli(capsys, "export", "--model", model_dir, "--format", "torch", "--out", pt)
    msg = error_line(capsys, "export", "--model", model_dir, "--format", "torch", "--out", pt)
    assert "exists; give --overwrite" in msg
    run_cli(capsys, "export", "--model", model_dir, "--format", "torch", "--out", pt, "--overwrite")


@pytest.mark.parametrize(
    "out, expected",
    [
        ("t.txt", "expected a file name ending in .onnx"),
        ("sub.onnx", "is a directory"),
        ("missing/t.onnx", "does not exist"),
    ],
)
def test_bad_onnx_outputs_are_refused(tmp_path, capsys, model_dir, out, expected):
    (tmp_path / "sub.onnx").mkdir()
    assert expected in error_line(capsys, "export", "--model", model_dir, "--out", tmp_path / out)
    no_files_but(tmp_path, "model", "sub.onnx")


def test_bad_torch_outputs_are_refused(tmp_path, capsys, model_dir):
    (tmp_path / "file").write_text("x")
    argv = ["export", "--model", model_dir, "--format", "torch", "--out"]
    assert "is not a directory" in error_line(capsys, *argv, tmp_path / "file")
    assert "is the model directory" in error_line(capsys, *argv, model_dir)
    assert "does not exist" in error_line(capsys, *argv, tmp_path / "no" / "pt")
    no_files_but(model_dir, "config.json", "vocab.json", "weights.safetensors")


def test_a_cell_the_export_cannot_express_is_named_and_nothing_written(tmp_path):
    tagger = tiny_tagger("gru")
    object.__setattr__(tagger.cfg, "cell", "mgu")  # a cell bptt might have one day
    with pytest.raises(
        BpttError, match=r"^cell 'mgu': ONNX has no operator for it \(exported: rnn, gru, lstm\)$"
    ):
        export_onnx(tagger, tmp_path / "t.onnx")
    with pytest.raises(
        BpttError, match=r"^cell 'mgu': torch.nn has no module for it \(exported: rnn, gru, lstm"
    ):
        export_torch(tagger, tmp_path / "pt")
    no_files_but(tmp_path)


def test_a_model_too_big_for_one_onnx_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "MAX_BYTES", 1000)
    with pytest.raises(BpttError, match="one ONNX file holds at most 2 GiB"):
        export_onnx(tiny_tagger(), tmp_path / "t.onnx")
    no_files_but(tmp_path)


def test_a_wrong_graph_is_caught_before_it_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "GATE_ORDER", {**onnx_export.GATE_ORDER, "lstm": [0, 1, 2, 3]})  # bptt's
    with pytest.raises(BpttError, match="logits differ from bptt's by .* nothing written"):
        export_onnx(tiny_tagger("lstm"), tmp_path / "t.onnx")
    no_files_but(tmp_path)


def test_missing_onnx_packages_are_one_line(tmp_path, capsys, model_dir, monkeypatch):
    export_onnx(load_tagger(model_dir), tmp_path / "t.onnx")
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    msg = error_line(capsys, "export", "--model", model_dir, "--out", tmp_path / "u.onnx")
    assert msg == "bptt export --format onnx needs: pip install 'bptt[onnx]'"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    msg = error_line(capsys, "tag", "--model", tmp_path / "t.onnx", "Harry")
    assert msg == "bptt tag --model FILE.onnx needs: pip install 'bptt[onnx]'"
    no_files_but(tmp_path, "model", "t.onnx")


def test_onnx_files_not_from_bptt_export_are_refused(tmp_path, capsys):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not a model")
    assert "not an ONNX model onnxruntime can run" in error_line(capsys, "tag", "--model", garbage, "Harry")
    h = onnx.helper
    graph = h.make_graph(
        [h.make_node("Identity", ["x"], ["y"])],
        "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    other = tmp_path / "other.onnx"
    other.write_bytes(model.SerializeToString())
    assert "no 'bptt' metadata" in error_line(capsys, "tag", "--model", other, "Harry")
    h.set_model_props(model, {"bptt": json.dumps({"format": "bptt-tagger-onnx", "format_version": 1})})
    other.write_bytes(model.SerializeToString())
    assert "metadata 'bptt': tagger: missing" in error_line(capsys, "tag", "--model", other, "Harry")
    assert "no such file" in error_line(capsys, "tag", "--model", tmp_path / "none.onnx", "Harry")


def test_an_exported_file_tags_but_cannot_be_looked_inside(tmp_path, capsys, model_dir):
    export_onnx(load_tagger(model_dir), tmp_path / "t.onnx")
    msg = error_line(capsys, "graph", "--model", tmp_path / "t.onnx", "Harry", "--out", tmp_path / "g.svg")
    assert msg.startswith("the unrolled graph: needs a model directory")
    msg = error_line(capsys, "export", "--model", tmp_path / "t.onnx", "--out", tmp_path / "u.onnx")
    assert "is an exported file; export from the model directory" in msg


# --------------------------------------------------------------------------------------- the dev file


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_every_dev_sentence_gets_the_same_logits_and_tags(tmp_path, cell):
    from bptt.io.conll import read_conll

    dev = [s.words for s in read_conll(data_file("conll2003", "eng.testa"))]
    vocab = Vocab.build(dev[::2])  # half the words and characters of the other half unknown
    cfg = TaggerConfig(task="ner", tags=NER_TAGS, cell=cell, **SMALL)
    params = init_tagger_params(cfg, len(vocab.words), len(vocab.chars), seed=5)
    tagger = Tagger(params, cfg, vocab, "IOB1")
    export_onnx(tagger, tmp_path / "t.onnx")
    assert load_tagger(tmp_path / "t.onnx").predict(dev) == tagger.predict(dev)
    module, session = torch_module(tagger), onnx_session(tagger)
    for i in range(0, len(dev), 256):
        Z, mask = bptt_logits(tagger, dev[i : i + 256])
        inputs = encode(vocab, cfg, dev[i : i + 256])
        assert_close(Z, session.run(["logits"], inputs)[0], mask)
        assert_close(Z, torch_logits(module, inputs), mask)
