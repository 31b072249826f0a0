"""Crafted inputs: model directories re-signed as an attacker would, training logs of valid JSON
with wrong types or a torn record, and benchmarks that cannot fit in memory.

config.json's self_sha256 catches accidents, not intent: anyone can recompute it. So every size
and type a model directory claims is checked against what its files hold, in one place, before
anything is allocated; each refusal is one line naming the file (and line) and the field, exit 2.
"""

import hashlib
import json
import math
import re
import reprlib
import shutil
import tracemalloc

import numpy as np
import pytest

import bptt.resources
from bptt.bench import memory, speed
from bptt.cli import main
from bptt.errors import BpttError
from bptt.io.modelfiles import save_model_dir
from bptt.io.safetensors_io import load_safetensors, save_safetensors
from bptt.models.tagger import load_tagger
from bptt.models.tagger_network import TaggerConfig, init_tagger_params, param_shapes
from bptt.models.vocab import Vocab
from bptt.pictures.report import read_log
from tests.conftest import data_file
from tests.helpers import MINI, error_line, write_slice

# n_x = 6 + 2 + 2·4 = 16 inputs to layer 1; width = 2·5 = 10; 7 words (<pad> <unk> . harry met potter ron)
SMALL = {"cell": "rnn", "word_dim": 6, "case_dim": 2, "char_dim": 3, "char_hidden": 4, "hidden": 5}
SMALL["layers"] = 2
SENTENCE = ["Harry", "Potter", "met", "Ron", "."]


# ------------------------------------------------------------------------------------------ crafting


def resign(model, edit):
    """Apply ``edit(doc)`` to model/config.json and recompute its self_sha256 the documented way
    (`modelfiles._manifest`: SHA-256 of the rest in canonical JSON, sorted keys, no spaces, UTF-8)."""
    path = model / "config.json"
    doc = json.loads(path.read_text())
    doc.pop("self_sha256")
    edit(doc)
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    doc["self_sha256"] = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    path.write_text(json.dumps(doc, indent=2))


def set_tagger(**changes):
    """An edit for `resign`: change fields of the tagger's config (None as a key's value deletes it)."""

    def edit(doc):
        for k, v in changes.items():
            if v is _DELETE:
                del doc["tagger"][k]
            else:
                doc["tagger"][k] = v

    return edit


_DELETE = object()


def replace_member(model, name, data):
    """Put ``data`` in place of model/NAME and record its checksum in a re-signed config.json."""
    (model / name).write_bytes(data)
    checksum = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    resign(model, lambda doc: doc["checksums"].update({name: checksum}))


def replace_weights(model, change):
    """Rewrite the weights as ``change(arrays)`` returns them, checksum recorded, config re-signed."""
    arrays, _ = load_safetensors(model / "weights.safetensors")
    save_safetensors(model / "new.safetensors", change(arrays))
    replace_member(model, "weights.safetensors", (model / "new.safetensors").read_bytes())
    (model / "new.safetensors").unlink()


refused = error_line


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A small person tagger saved as training saves it (config.json: task, tagger, scheme)."""
    model = tmp_path_factory.mktemp("crafted") / "model"
    cfg = TaggerConfig(**SMALL)
    vocab = Vocab.build([SENTENCE])
    params = init_tagger_params(cfg, len(vocab.words), len(vocab.chars), seed=1)
    save_model_dir(
        model, params, {"task": cfg.task, "tagger": cfg.to_json(), "scheme": "IOB1"}, vocab.to_json()
    )
    return model


@pytest.fixture
def model(pristine, tmp_path):
    return shutil.copytree(pristine, tmp_path / "model")


def test_the_uncrafted_model_loads_and_tags(model, capsys):
    tagger = load_tagger(model)
    assert tagger.cfg == TaggerConfig(**SMALL) and tagger.scheme == "IOB1"
    assert list(tagger.params) == [k for k, _ in param_shapes(tagger.cfg, 7, len(tagger.vocab.chars))]
    assert main(["tag", "--model", str(model), "Harry met Ron ."]) == 0
    assert "met" in capsys.readouterr().out


def test_resign_is_what_an_attacker_can_do(model):
    resign(model, set_tagger(dropout=0.25))  # a harmless change, re-signed: accepted
    assert load_tagger(model).cfg.dropout == 0.25


# ------------------------------------------------------------------- 1. sizes: checked before allocating


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"hidden": 8000}, "tensor 'rnn1.f.W_ax' has shape [5, 16], the configuration needs [8000, 16]"),
        ({"layers": 1_000_000}, "missing tensor 'rnn3.f.W_ax' (the configuration needs it)"),
        ({"word_dim": 10**9}, "tensor 'E_word' has shape [7, 6], the configuration needs [7, 1000000000]"),
        (
            {"char_hidden": 10**6},
            "tensor 'char.f.W_ax' has shape [4, 3], the configuration needs [1000000, 3]",
        ),
        ({"case_dim": 0}, "tensor 'rnn1.f.W_ax' has shape [5, 16], the configuration needs [5, 14]"),
        ({"bidirectional": False}, "tensor 'rnn2.f.W_ax' has shape [5, 10], the configuration needs [5, 5]"),
        ({"layers": 1}, "holds a tensor 'rnn2.b.W_aa' that the configuration does not use"),
        (
            {"task": "ner", "tags": ["O", "B-PER", "I-PER"]},
            "tensor 'W_ya' has shape [1, 10], the configuration needs [3, 10]",
        ),
        ({"cell": "lstm"}, "tensor 'rnn1.f.W_ax' has shape [5, 16], the configuration needs [20, 16]"),
        ({"cell": "gru"}, "tensor 'rnn1.f.W_ax' has shape [5, 16], the configuration needs [15, 16]"),
    ],
)
def test_sizes_are_checked_against_the_weights_header_before_any_allocation(model, changes, message, capsys):
    resign(model, set_tagger(**changes))
    tracemalloc.start()
    try:
        with pytest.raises(BpttError) as e:
            load_tagger(model)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(e.value) == f"{model}/weights.safetensors: {message}"
    assert peak < 2**21  # 2 MiB (files are hashed in 1 MiB reads); W_aa of hidden 8000 alone is 256 MB
    assert refused(capsys, "tag", "--model", model, "Harry met Ron") == str(e.value)


def test_param_shapes_allocates_nothing_and_is_what_init_builds():
    for cfg in [
        TaggerConfig(**SMALL),
        TaggerConfig(**{**SMALL, "bidirectional": False, "layers": 3, "char_dim": 0}),
        TaggerConfig(**{**SMALL, "task": "ner", "tags": ["O", "B-LOC", "I-LOC"], "case_dim": 0}),
        TaggerConfig(**{**SMALL, "cell": "gru"}),
        TaggerConfig(**{**SMALL, "cell": "lstm", "init": "forget1", "bidirectional": False}),
    ]:
        params = init_tagger_params(cfg, 11, 9)
        assert [(k, v.shape) for k, v in params.items()] == list(param_shapes(cfg, 11, 9))
    huge = param_shapes(TaggerConfig(layers=10**12, hidden=10**9), 10**9, 10**9)  # a generator
    assert next(huge) == ("E_word", (10**9, 100))


def test_vocab_sizes_come_from_vocab_json(model, capsys):
    vocab = json.loads((model / "vocab.json").read_text())
    vocab["words"].append("hermione")  # one word more than E_word has rows
    replace_member(model, "vocab.json", json.dumps(vocab).encode())
    assert refused(capsys, "tag", "--model", model, "Harry") == (
        f"{model}/weights.safetensors: tensor 'E_word' has shape [7, 6], the configuration needs [8, 6]"
    )


# ------------------------------------------------------------------------------ 2. the config's types


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("hidden", "128", "expected an integer >= 1, got '128'"),
        ("hidden", 128.0, "expected an integer >= 1, got 128.0"),
        ("hidden", None, "expected an integer >= 1, got None"),
        ("hidden", -5, "expected an integer >= 1, got -5"),
        ("hidden", True, "expected an integer >= 1, got True"),
        ("layers", 0, "expected an integer >= 1, got 0"),
        ("case_dim", -1, "expected an integer >= 0, got -1"),
        ("word_dim", [6], "expected an integer >= 1, got [6]"),
        ("activation", "sigmoid", "expected 'tanh' or 'relu', got 'sigmoid'"),
        ("cell", "transformer", "expected 'rnn', 'gru' or 'lstm', got 'transformer'"),
        ("cell", None, "expected 'rnn', 'gru' or 'lstm', got None"),
        ("init", "chrono", "expected 'default' or 'forget1', got 'chrono'"),
        ("init", "forget1", "the vanilla cell takes 'default', got 'forget1'"),
        ("bidirectional", 1, "expected true or false, got 1"),
        ("dropout", 1.5, "expected a number in [0, 1), got 1.5"),
        ("dropout", "0.5", "expected a number in [0, 1), got '0.5'"),
        ("unk_replace", False, "expected a number in [0, 1], got False"),
        ("task", "pos", "expected 'person' or 'ner', got 'pos'"),
        ("tags", [], "expected a non-empty list of distinct non-empty strings, got []"),
        ("tags", ["O", "O"], "expected a non-empty list of distinct non-empty strings, got ['O', 'O']"),
        ("tags", "O PER", "expected a non-empty list of distinct non-empty strings, got 'O PER'"),
    ],
)
def test_config_field_of_a_wrong_type_is_one_line_naming_file_and_field(
    model, capsys, field, value, expected
):
    resign(model, set_tagger(**{field: value}))
    assert (
        refused(capsys, "tag", "--model", model, "Harry")
        == f"{model}/config.json: tagger.{field}: {expected}"
    )


@pytest.mark.parametrize(
    "edit, expected",
    [
        (set_tagger(hidden=_DELETE), "tagger: missing the field 'hidden'"),
        (set_tagger(hiden=5), "tagger: unknown field 'hiden'"),
        (set_tagger(cell="gru", init="forget1"), "tagger.init: a GRU takes 'default', got 'forget1'"),
        (
            set_tagger(cell="gru", activation="relu"),
            "tagger.activation: only the vanilla cell ('rnn') takes one; 'gru' has its own gates",
        ),
        (lambda doc: doc.pop("tagger"), "tagger: missing (not a tagger's model directory?)"),
        (
            lambda doc: doc.update(tagger=[1, 2]),
            "tagger: expected an object of the tagger's settings, got list",
        ),
        (lambda doc: doc.update(scheme="BIO"), "scheme: expected one of IOB1, IOB2, IOBES, got 'BIO'"),
    ],
)
def test_missing_extra_and_misplaced_config_keys(model, capsys, edit, expected):
    resign(model, edit)
    assert refused(capsys, "tag", "--model", model, "Harry") == f"{model}/config.json: {expected}"


def test_a_model_saved_before_the_choice_of_cell_loads_as_the_vanilla_cell(model, capsys):
    """config.json without "cell" and "init" (as every model before them): `Checked.ADDED` fills them in."""
    resign(model, set_tagger(cell=_DELETE, init=_DELETE))
    assert "cell" not in json.loads((model / "config.json").read_text())["tagger"]
    tagger = load_tagger(model)
    assert tagger.cfg == TaggerConfig(**SMALL) and (tagger.cfg.cell, tagger.cfg.init) == ("rnn", "default")
    assert main(["tag", "--model", str(model), "Harry met Ron ."]) == 0
    assert "met" in capsys.readouterr().out
    old = {k: v for k, v in TaggerConfig(**SMALL).to_json().items() if k not in ("cell", "init")}
    assert TaggerConfig.from_json(old) == TaggerConfig(**SMALL)
    with pytest.raises(BpttError, match=r"^tagger: missing the field 'hidden'$"):  # other fields are required
        TaggerConfig.from_json({k: v for k, v in old.items() if k != "hidden"})


def test_tagger_config_checks_every_construction():
    cfg = TaggerConfig(**SMALL)
    assert TaggerConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(BpttError, match=r"^hidden: expected an integer >= 1, got '128'$"):
        TaggerConfig(hidden="128")
    with pytest.raises(
        BpttError, match=r"^run\.json: model\.dropout: expected a number in \[0, 1\), got nan$"
    ):
        TaggerConfig.from_json({**cfg.to_json(), "dropout": math.nan}, "run.json: model")


@pytest.mark.parametrize(
    "vocab, expected",
    [
        ([], "expected an object with 'words' and 'chars', got list"),
        ({"words": ["<pad>", "<unk>"]}, "'chars': expected a list of strings, <pad> and <unk> first"),
        (
            {"words": ["<pad>", "<unk>", 5], "chars": ["<pad>", "<unk>"]},
            "'words': expected a list of strings, <pad> and <unk> first",
        ),
        (
            {"words": ["harry"], "chars": ["<pad>", "<unk>"]},
            "'words': expected a list of strings, <pad> and <unk> first",
        ),
        (
            {"words": ["<pad>", "<unk>"], "chars": ["<pad>", "<unk>"], "singletons": [10**9]},
            "'singletons': expected a list of word ids (integers 0 to 1)",
        ),
        ({"words": ["<pad>", "<unk>"], "chars": ["<pad>", "<unk>"], "extra": 1}, "unknown key 'extra'"),
    ],
)
def test_crafted_vocab_is_one_line_naming_the_file(model, capsys, vocab, expected):
    replace_member(model, "vocab.json", json.dumps(vocab).encode())
    assert refused(capsys, "tag", "--model", model, "Harry") == f"{model}/vocab.json: {expected}"


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            lambda a: {**a, "evil": np.zeros(3, np.float32)},
            "holds a tensor 'evil' that the configuration does not use",
        ),
        (
            lambda a: {**a, "W_ya": a["W_ya"].astype(np.int32)},
            "tensor 'W_ya' is int32, expected float32 or float64",
        ),
        (lambda a: {**a, "b_y": np.array([np.inf], np.float32)}, "tensor 'b_y' contains NaN or Inf"),
    ],
)
def test_crafted_weights_are_one_line_naming_the_tensor(model, capsys, change, expected):
    replace_weights(model, change)
    assert refused(capsys, "tag", "--model", model, "Harry") == f"{model}/weights.safetensors: {expected}"


# ------------------------------------------------------------------------------ 3-4. the training log


def write_log(run, *lines, end="\n"):
    run.mkdir(exist_ok=True)
    (run / "log.jsonl").write_text("\n".join(lines) + end)
    return run / "log.jsonl"


GOOD = '{"epoch": 1, "train_loss": 2.5, "grad_norm": NaN, "dev": {"f1": 50, "per_type": {"PER": {"f1": 50}}}}'


@pytest.mark.parametrize(
    "record, expected",
    [
        ('{"epoch": 2, "train_loss": "x"}', "train_loss: expected a number, got 'x'"),
        ('{"epoch": 2, "dev": 5}', "dev: expected an object of scores, got 5"),
        ("[2, 1.5]", "expected a JSON object, got [2, 1.5]"),
        ('{"epoch": "2"}', "epoch: expected 2 (one record per epoch, in order), got '2'"),
        ('{"epoch": 1}', "epoch: expected 2 (one record per epoch, in order), got 1"),
        ('{"train_loss": 1.0}', "epoch: expected 2 (one record per epoch, in order), got None"),
        ('{"epoch": 2, "seconds": true}', "seconds: expected a number, got True"),
        (
            '{"epoch": 2, "train_loss": 1' + "0" * 400 + "}",
            f"train_loss: expected a number, got {reprlib.repr(10**400)}",
        ),
        ('{"epoch": 2, "dev": {"f1": "90"}}', "dev.f1: expected a number, got '90'"),
        (
            '{"epoch": 2, "dev": {"per_type": [1]}}',
            "dev.per_type: expected an object of TYPE: scores, got [1]",
        ),
        (
            '{"epoch": 2, "dev": {"per_type": {"PER": {"f1": null}}}}',
            "dev.per_type.PER.f1: expected a number, got None",
        ),
        ('{"epoch": 2, "message_norms": "abc"}', "message_norms: expected a list of numbers, got 'abc'"),
        ('{"epoch": 2, "reach": [[1]]}', "reach: expected a list of numbers, got [[1]]"),
    ],
)
def test_log_record_of_a_wrong_type_is_one_line_naming_file_line_and_field(
    tmp_path, capsys, record, expected
):
    log = write_log(tmp_path / "run", GOOD, record)
    assert refused(capsys, "report", tmp_path / "run") == f"{log}:2: {expected}"


def test_a_torn_last_record_is_an_error_not_a_report_without_the_best_epoch(tmp_path, capsys):
    records = [
        {"epoch": e, "train_loss": 1 / e, "dev": {"f1": f1}} for e, f1 in ((1, 60.0), (2, 70.0), (3, 90.0))
    ]
    lines = [json.dumps(r) for r in records]
    log = write_log(tmp_path / "run", *lines[:2], lines[2][:25], end="")  # epoch 3, the best, cut short
    message = refused(capsys, "report", tmp_path / "run")
    assert message.startswith(f"{log}:3: not valid JSON (") and message.endswith(
        "; the last record is cut short (bptt train writes whole records)"
    )
    assert not (tmp_path / "run" / "report.html").exists()
    write_log(tmp_path / "run", *lines)  # whole again: epoch 3 is the best
    assert [r["epoch"] for r in read_log(log)] == [1, 2, 3]


def test_sample_json_of_wrong_types_is_one_line(tmp_path, capsys):
    run = write_log(tmp_path / "run", GOOD).parent
    (run / "sample.json").write_text('[{"words": 5, "predicted": ["O"]}]')
    assert refused(capsys, "report", run) == (
        f"{run}/sample.json: item 0: expected a list of words and a list of tags"
    )


def test_a_log_too_large_to_plot_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("bptt.pictures.report.MAX_CELLS", 10)
    log = write_log(tmp_path / "run", '{"epoch": 1, "reach": [1, 1, 1, 1, 1, 1]}', '{"epoch": 2}')
    with pytest.raises(BpttError, match=re.escape(f"{log}: 2 epochs × 6 positions of gradient flow")):
        read_log(log)


def test_numbers_the_log_may_hold_are_accepted(tmp_path):
    log = write_log(
        tmp_path / "run", GOOD, '{"epoch": 2, "train_loss": Infinity, "reach": [1.0, null], "new": "x"}'
    )
    records = read_log(log)
    assert math.isnan(records[0]["grad_norm"]) and records[1]["train_loss"] == math.inf


# ------------------------------------------------------------------------------- 5. bench shapes


@pytest.fixture
def eight_gib(monkeypatch):
    """8 GiB available, and any attempt to start benchmarking fails the test."""
    monkeypatch.setattr(bptt.resources, "available_memory", lambda: 8 * 2**30)

    def refuse(*args, **kwargs):
        raise AssertionError("started benchmarking")

    monkeypatch.setattr(speed, "import_torch", refuse)
    monkeypatch.setattr(speed, "Case", refuse)
    monkeypatch.setattr(speed, "init_params", refuse)
    monkeypatch.setattr(memory, "init_params", refuse)


def test_bench_shapes_that_cannot_fit_are_refused_up_front(eight_gib, capsys):
    need = speed.case_bytes((100_000, 10_000, 1000, 1000), "float64") + 3 * 1024**2 * 8
    assert refused(capsys, "bench", "--shape", "100000,10000,1000,1000") == (
        f"shape 100000,10000,1000,1000 in float64: needs about {need / 2**30:,.1f} GiB of memory,"
        " more than the 8.0 GiB available"
    )
    need = speed.case_bytes((10**40, 1, 1, 1), "float32") + 3 * 1024**2 * 4
    assert refused(capsys, "bench", "--shape", f"{10**40},1,1,1", "--dtype", "float32").endswith(
        f"needs about 2^{need.bit_length() - 1} bytes of memory, more than the 8.0 GiB available"
    )
    assert refused(capsys, "bench", "--memory", "--lengths", "1000,100000000") == (
        "length 100000000 (B=16, n_x=32, n_a=128, n_y=10):"
        # 4 bytes × 5 × T·B·(32 + 128 + 10 + 2)
        " needs about 5,126.0 GiB of memory, more than the 8.0 GiB available"
    )


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--shape", "2,1,-3,2"], "--shape: expected 4 positive integers, got '2,1,-3,2'"),
        (["--memory", "--lengths", "-5"], "--lengths: expected positive integers, got '-5'"),
        (["--memory", "--rounds", "0"], "--rounds: expected at least 1, got 0"),
        (["--shape", "2,1,2,2", "--rounds", "0"], "--rounds: expected at least 1, got 0"),
    ],
)
def test_bench_zero_and_negative_sizes(eight_gib, capsys, argv, expected):
    assert refused(capsys, "bench", *argv) == expected


def test_bench_api_checks_its_arguments_and_lets_small_shapes_through(eight_gib):
    with pytest.raises(BpttError, match=r"^B: expected a positive integer, got 0$"):
        memory.memory_benchmark((10,), B=0)
    with pytest.raises(BpttError, match=r"^budgets: expected None or fractions in \(0, 1\], got \(0,\)$"):
        memory.memory_benchmark((10,), budgets=(0,))
    speed.check_config(speed.BenchConfig())  # the default shapes fit in 8 GiB


def test_available_memory_reads_the_system():
    free = bptt.resources.available_memory()
    assert free is None or free > 0


# ------------------------------------------------------------------------ end to end on a trained model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("trained")
    write_slice(data_file("conll2003", "eng.train"), d / "train.txt", 300)
    write_slice(data_file("conll2003", "eng.testa"), d / "dev.txt", 100)
    argv = ["train", "--train", d / "train.txt", "--dev", d / "dev.txt", "--out", d / "run", "--epochs", 2]
    assert main([str(a) for a in [*argv, "--seed", 3, *MINI]]) == 0
    return d


@pytest.mark.slow
def test_every_command_refuses_a_crafted_trained_model(trained, tmp_path, capsys):
    model = shutil.copytree(trained / "run", tmp_path / "run")
    assert main(["tag", "--model", str(model), "Harry Potter met Ron ."]) == 0
    resign(model, set_tagger(hidden=8000))
    expected = (
        f"{model}/weights.safetensors:"
        " tensor 'rnn1.f.W_ax' has shape [8, 24], the configuration needs [8000, 24]"
    )
    assert refused(capsys, "tag", "--model", model, "Harry") == expected
    assert refused(capsys, "evaluate", "--model", model, "--data", trained / "dev.txt") == expected
    assert (
        refused(capsys, "graph", "--model", model, "Harry met Ron", "--out", tmp_path / "g.svg") == expected
    )
    resign(model, set_tagger(hidden="8"))
    assert refused(capsys, "tag", "--model", model, "Harry") == (
        f"{model}/config.json: tagger.hidden: expected an integer >= 1, got '8'"
    )


@pytest.mark.slow
def test_report_of_a_trained_run_with_a_torn_log(trained, tmp_path, capsys):
    run = shutil.copytree(trained / "run", tmp_path / "run")
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    log = run / "log.jsonl"
    text = log.read_text()
    log.write_text(text[: len(text) - 40])  # the last epoch cut short
    message = refused(capsys, "report", run, "--out", tmp_path / "r.html")
    assert message.startswith(f"{log}:2: not valid JSON") and "cut short" in message
