"""Model directories and checkpoints: bit-exact round trips, every corruption caught, crashes survived."""

import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bptt import BpttError
from bptt.io.atomic import atomic_open, atomic_write
from bptt.io.modelfiles import load_checkpoint, load_model_dir, save_checkpoint, save_model_dir
from tests.helpers import Evil, assert_same, craft, entry, sample_arrays, training_arrays, training_state

CONFIG = {"n_x": 4, "n_a": 6, "scheme": "IOB2", "lr": 0.05, "layers": [1, 2], "char": {"dim": 8}}
VOCAB = {"words": ["<pad>", "<unk>", "Zürich", "naïve"], "tags": ["O", "B-PER", "I-PER"]}


def umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------------------------- atomic files


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write(path, b"old")
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["f.bin"]
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask()


def test_atomic_open_text_mode(tmp_path):
    with atomic_open(tmp_path / "t.txt", "w") as f:
        f.write("Zürich\n")
    assert (tmp_path / "t.txt").read_bytes() == "Zürich\n".encode()
    with pytest.raises(BpttError, match="mode: expected one of"):
        with atomic_open(tmp_path / "t.txt", "a"):
            pass


def test_atomic_open_failure_leaves_the_old_file(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write(path, b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_open(path) as f:
            f.write(b"half of the new")
            raise RuntimeError("boom")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_atomic_write_errors_name_the_file(tmp_path, monkeypatch):
    missing = tmp_path / "no" / "f.bin"
    with pytest.raises(BpttError, match=f"^{missing}: cannot write"):
        atomic_write(missing, b"x")

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(BpttError, match="f.bin: cannot write: No space left on device"):
        atomic_write(tmp_path / "f.bin", b"x")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------- model directories


@pytest.fixture
def model(tmp_path, monkeypatch):
    """A saved model directory, addressed as the relative path "model" (as a user would)."""
    monkeypatch.chdir(tmp_path)
    arrays = sample_arrays()
    save_model_dir("model", arrays, CONFIG, VOCAB)
    return arrays


def test_model_round_trip_bit_exact(model):
    arrays, config, vocab = load_model_dir("model")
    assert_same(arrays, model)
    assert config == CONFIG and vocab == VOCAB
    doc = json.loads(open("model/config.json").read())
    assert doc["format"] == "bptt-model" and doc["format_version"] == 1
    assert doc["bptt_version"] and doc["n_a"] == 6  # hyper-parameters readable at the top level
    assert set(doc["checksums"]) == {"weights.safetensors", "vocab.json"}
    assert sorted(os.listdir("model")) == ["config.json", "vocab.json", "weights.safetensors"]


def test_config_json_is_written_last(tmp_path, monkeypatch):
    order = []
    replace = os.replace

    def spy(src, dst):
        order.append(os.path.basename(dst))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    save_model_dir(tmp_path / "m", sample_arrays(), CONFIG, VOCAB)
    assert order[-1] == "config.json" and sorted(order) == [
        "config.json",
        "vocab.json",
        "weights.safetensors",
    ]


def test_numpy_scalars_and_tuples_in_config(tmp_path):
    config = {"n_a": np.int64(6), "lr": np.float32(0.5), "shape": (2, 3), "flag": np.bool_(True)}
    save_model_dir(tmp_path, {"W": np.zeros(2)}, config, {})
    assert load_model_dir(tmp_path)[1] == {"n_a": 6, "lr": 0.5, "shape": [2, 3], "flag": True}


@pytest.mark.parametrize(
    "config, vocab, match",
    [
        ({"format": "x"}, {}, "config: the key 'format' is reserved"),
        ({"checksums": {}}, {}, "config: the key 'checksums' is reserved"),
        ([1], {}, "config: expected a dict"),
        ({"lr": float("nan")}, {}, r"config\['lr'\]: nan is not valid JSON"),
        ({"a": {"b": [1, float("inf")]}}, {}, r"config\['a'\]\['b'\]\[1\]: inf is not valid JSON"),
        ({"f": open}, {}, r"config\['f'\]: builtin_function_or_method is not JSON-serialisable"),
        ({"W": np.zeros(2)}, {}, r"config\['W'\]: ndarray is not JSON-serialisable"),
        ({}, {0: "O"}, "vocab: key 0 is not a string"),
        ({}, {"w": "\ud800"}, "vocab\\['w'\\]: holds a lone surrogate"),
    ],
)
def test_bad_config_or_vocab_writes_nothing(tmp_path, config, vocab, match):
    with pytest.raises(BpttError, match=match):
        save_model_dir(tmp_path / "m", {"W": np.zeros(2)}, config, vocab)
    assert not (tmp_path / "m").exists()


def read_json(path):
    with open(path) as f:
        return json.load(f)


def checksum(data):
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def edit_config(fix_self_sha=True, **changes):
    """Change config.json's fields as a crafter would: recomputing its self_sha256 (unless told not to)
    from the documented rule, SHA-256 of the rest in sorted, spaceless UTF-8 JSON."""
    doc = read_json("model/config.json")
    doc.pop("self_sha256")
    doc.update(changes)
    if fix_self_sha:
        canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        doc["self_sha256"] = hashlib.sha256(canonical.encode()).hexdigest()
    with open("model/config.json", "w") as f:
        json.dump(doc, f, indent=2)


def recorded_checksums(**changes):
    return {**read_json("model/config.json")["checksums"], **changes}


def replace_file(name, data, fix_checksum):
    """Put ``data`` in place of the file ``name``, recording its checksum in config.json when told to."""
    with open(f"model/{name}", "wb") as f:
        f.write(data)
    if fix_checksum:
        edit_config(checksums=recorded_checksums(**{name: checksum(data)}))


def rewrite(path, old, new):
    with open(path) as f:
        text = f.read()
    assert old in text
    with open(path, "w") as f:
        f.write(text.replace(old, new))


def write(path, text):
    with open(path, "wb" if isinstance(text, bytes) else "w") as f:
        f.write(text)


def flip(path, where):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[where] ^= 0x01
    write(path, bytes(data))


def symlink_weights_outside():
    os.makedirs("elsewhere")
    shutil.move("model/weights.safetensors", "elsewhere/weights.safetensors")
    os.symlink(os.path.abspath("elsewhere/weights.safetensors"), "model/weights.safetensors")


CORRUPTIONS = {
    "missing config": (lambda: os.remove("model/config.json"), "model/config.json: missing"),
    "missing vocab": (lambda: os.remove("model/vocab.json"), "model/vocab.json: missing"),
    "missing weights": (lambda: os.remove("model/weights.safetensors"), "model/weights.safetensors: missing"),
    "truncated weights": (
        lambda: os.truncate("model/weights.safetensors", 100),
        "model/weights.safetensors: 100 bytes but config.json records",
    ),
    "flipped byte in the weights' data": (
        lambda: flip("model/weights.safetensors", -3),
        "model/weights.safetensors: SHA-256 does not match config.json",
    ),
    "flipped byte in the weights' header": (
        lambda: flip("model/weights.safetensors", 20),
        "model/weights.safetensors: SHA-256 does not match",
    ),
    "flipped byte in vocab": (
        lambda: flip("model/vocab.json", 5),
        "model/vocab.json: SHA-256 does not match",
    ),
    "flipped digit in config": (
        lambda: rewrite("model/config.json", '"n_a": 6', '"n_a": 7'),
        "model/config.json: does not match its self_sha256",
    ),
    "config not JSON": (
        lambda: write("model/config.json", '{\n  "format": "bptt-model",\n  oops\n}'),
        "model/config.json: not valid JSON: Expecting property name .* at line 3 column 3",
    ),
    "config not UTF-8": (lambda: write("model/config.json", b'{"\xff": 1}'), "config.json: not UTF-8"),
    "config a list": (lambda: write("model/config.json", "[]"), "config.json: expected a JSON object"),
    "config repeats a key": (
        lambda: write("model/config.json", '{"format": "bptt-model", "format": "x"}'),
        "model/config.json: repeats the key 'format'",
    ),
    "config of another program": (
        lambda: write("model/config.json", '{"model_type": "bert"}'),
        "model/config.json: not a bptt-model file \\(its format is None",
    ),
    "newer format_version": (
        lambda: edit_config(format_version=3),
        r"^model/config.json: format_version 3 is newer than this bptt supports \(1\); upgrade bptt$",
    ),
    "format_version a string": (lambda: edit_config(format_version="1"), "format_version must be a positive"),
    "format_version true": (lambda: edit_config(format_version=True), "format_version must be a positive"),
    "self_sha256 missing": (lambda: edit_config(fix_self_sha=False), "does not match its self_sha256"),
    "checksums name another file": (
        lambda: edit_config(checksums={"../../etc/passwd": {"sha256": "0" * 64, "bytes": 1}}),
        "model/config.json: checksums name an unexpected file '../../etc/passwd'",
    ),
    "checksums lack vocab": (
        lambda: edit_config(checksums={"weights.safetensors": recorded_checksums()["weights.safetensors"]}),
        "checksums lack an entry for 'vocab.json'",
    ),
    "checksum malformed": (
        lambda: edit_config(
            checksums={"weights.safetensors": {"sha256": "xyz", "bytes": 1}, "vocab.json": {}}
        ),
        "checksums of 'weights.safetensors' must be",
    ),
    "pickle named weights.safetensors": (
        lambda: replace_file("weights.safetensors", pickle.dumps({"W": np.zeros(2)}), fix_checksum=False),
        "model/weights.safetensors: .* bytes but config.json records",
    ),
    "pickle named weights.safetensors, checksum crafted to match": (
        lambda: replace_file("weights.safetensors", pickle.dumps(Evil()), fix_checksum=True),
        "model/weights.safetensors: not a safetensors file",
    ),
    "huge declared shape, checksum crafted to match": (
        lambda: replace_file(
            "weights.safetensors", craft({"W_aa": entry("F32", [2**40, 2**40], 0, 8)}, b"\0" * 8), True
        ),
        r"model/weights.safetensors: tensor 'W_aa' declares shape \[1099511627776, 1099511627776\]",
    ),
    "vocab not JSON, checksum crafted to match": (
        lambda: replace_file("vocab.json", b"{words", fix_checksum=True),
        "model/vocab.json: not valid JSON",
    ),
    "weights symlinked out of the directory": (
        symlink_weights_outside,
        "model/weights.safetensors: is a symbolic link to .*elsewhere/weights.safetensors, outside model",
    ),
    "weights a directory": (
        lambda: (os.remove("model/weights.safetensors"), os.mkdir("model/weights.safetensors")),
        "model/weights.safetensors: is a directory",
    ),
    "weights a FIFO": (
        lambda: (os.remove("model/weights.safetensors"), os.mkfifo("model/weights.safetensors")),
        "model/weights.safetensors: is not a regular file",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupt_model_directory_gives_one_line_naming_the_file(model, case):
    if "FIFO" in case and not hasattr(os, "mkfifo") or "symlink" in case and not hasattr(os, "symlink"):
        pytest.skip("not on this platform")
    corrupt, match = CORRUPTIONS[case]
    Evil.marker = os.path.abspath("pwned")
    corrupt()
    with pytest.raises(BpttError, match=match) as info:
        load_model_dir("model")
    assert str(info.value).startswith("model/") and "\n" not in str(info.value)
    assert not os.path.exists(Evil.marker)


def test_not_a_model_directory(tmp_path):
    with pytest.raises(BpttError, match="no such model directory"):
        load_model_dir(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(BpttError, match="is not a directory"):
        load_model_dir(tmp_path / "file")


def test_symlinks_inside_the_directory_are_followed(model):
    os.rename("model/weights.safetensors", "model/weights-v1.safetensors")
    os.symlink("weights-v1.safetensors", "model/weights.safetensors")
    assert_same(load_model_dir("model")[0], model)
    os.symlink(os.path.abspath("model"), "alias")  # the directory itself may be a link
    assert_same(load_model_dir("alias")[0], model)


@pytest.mark.usefixtures("no_unpickling")
def test_loading_never_unpickles(model):
    assert_same(load_model_dir("model")[0], model)
    save_checkpoint("model", model, {"epoch": 1})
    assert_same(load_checkpoint("model")[0], model)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(["weights.safetensors", "config.json", "vocab.json"]),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=3),
)
def test_fuzz_model_directory_loads_exactly_or_raises(fuzz_model, name, edits):
    directory, arrays = fuzz_model
    path = os.path.join(directory, name)
    with open(path, "rb") as f:
        original = f.read()
    data = bytearray(original)
    for where, value in edits:
        data[int(where * len(data))] = value
    write(path, bytes(data))
    try:
        got, config, vocab = load_model_dir(directory)
    except BpttError as e:
        assert str(e).startswith(directory) and "\n" not in str(e)
    else:  # only a change that means nothing (say, JSON whitespace) may load, and then loads the original
        assert_same(got, arrays)
        assert config == CONFIG and vocab == VOCAB
    finally:
        write(path, original)


@pytest.fixture(scope="module")
def fuzz_model(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("fuzz") / "model")
    arrays = {"W": np.arange(6, dtype=np.float32).reshape(2, 3), "m": np.array([True, False])}
    save_model_dir(directory, arrays, CONFIG, VOCAB)
    return directory, arrays


# ---------------------------------------------------------------------------------------------- checkpoints


def assert_consistent(loaded, steps):
    """The checkpoint is one of ``steps``, arrays and state from the same save."""
    assert loaded is not None
    arrays, state = loaded
    assert state["step"] in steps
    assert state == json.loads(json.dumps(training_state(state["step"])))
    assert_same(arrays, training_arrays(state["step"]))


def test_no_checkpoint_is_none(tmp_path):
    assert load_checkpoint(tmp_path / "nowhere") is None
    assert load_checkpoint(tmp_path) is None
    (tmp_path / "file").write_text("x")
    with pytest.raises(BpttError, match="is not a directory"):
        load_checkpoint(tmp_path / "file")


def test_checkpoint_round_trip_bit_exact_and_rng_resumes(tmp_path):
    save_checkpoint(tmp_path, training_arrays(7), training_state(7))
    arrays, state = load_checkpoint(tmp_path)
    assert_consistent((arrays, state), {7})
    rng = np.random.default_rng()
    rng.bit_generator.state = state["rng"]
    np.testing.assert_array_equal(rng.random(5), np.random.default_rng(7).random(5))


def test_checkpoint_overwrite_leaves_only_the_newest(tmp_path):
    for step in range(3):
        save_checkpoint(tmp_path, training_arrays(step), training_state(step))
        assert_consistent(load_checkpoint(tmp_path), {step})
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"]
    assert sorted(os.listdir(tmp_path / "checkpoint")) == ["arrays.safetensors", "state.json"]


def test_checkpoint_beside_a_model(model):
    save_checkpoint("model", training_arrays(1), training_state(1))
    assert_same(load_model_dir("model")[0], model)
    assert_consistent(load_checkpoint("model"), {1})


def test_bad_state_leaves_the_old_checkpoint(tmp_path):
    save_checkpoint(tmp_path, training_arrays(1), training_state(1))
    with pytest.raises(BpttError, match=r"state\['best'\]: inf is not valid JSON"):
        save_checkpoint(tmp_path, training_arrays(2), {"best": float("inf")})
    with pytest.raises(BpttError, match=r"arrays\['x'\]: expected a NumPy array"):
        save_checkpoint(tmp_path, {"x": 1}, training_state(2))
    assert_consistent(load_checkpoint(tmp_path), {1})
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"]


def test_stale_leftovers_are_cleaned(tmp_path):
    save_checkpoint(tmp_path, training_arrays(1), training_state(1))
    os.makedirs(tmp_path / "checkpoint.tmp-dead" / "x")
    shutil.copytree(tmp_path / "checkpoint", tmp_path / "checkpoint.old")
    save_checkpoint(tmp_path, training_arrays(2), training_state(2))
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"]


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (
            lambda d: flip(d / "checkpoint/arrays.safetensors", -1),
            "arrays.safetensors: SHA-256 does not match",
        ),
        (lambda d: os.remove(d / "checkpoint/state.json"), "checkpoint/state.json: missing"),
        (
            lambda d: (d / "checkpoint/state.json").write_text(
                (d / "checkpoint/state.json").read_text().replace('"step": 2', '"step": 3')
            ),
            "checkpoint/state.json: does not match its self_sha256",
        ),
        (lambda d: (d / "checkpoint/state.json").write_text("{"), "checkpoint/state.json: not valid JSON"),
    ],
)
def test_corrupt_checkpoint(tmp_path, corrupt, match):
    save_checkpoint(tmp_path, training_arrays(2), training_state(2))
    corrupt(tmp_path)
    with pytest.raises(BpttError, match=match) as info:
        load_checkpoint(tmp_path)
    assert str(info.value).startswith(f"{tmp_path}/checkpoint/")
    # with the previous checkpoint still there (a crash before step 4), it is used, with a warning
    shutil.copytree(tmp_path / "checkpoint", tmp_path / "broken")
    save_checkpoint(tmp_path, training_arrays(1), training_state(1))
    os.rename(tmp_path / "checkpoint", tmp_path / "checkpoint.old")
    os.rename(tmp_path / "broken", tmp_path / "checkpoint")
    with pytest.warns(UserWarning, match="resuming from the previous checkpoint"):
        assert_consistent(load_checkpoint(tmp_path), {1})


def test_checkpoint_symlinked_out_of_the_directory_is_refused(tmp_path):
    save_checkpoint(tmp_path / "elsewhere", training_arrays(1), training_state(1))
    os.makedirs(tmp_path / "run")
    os.symlink(tmp_path / "elsewhere" / "checkpoint", tmp_path / "run" / "checkpoint")
    with pytest.raises(BpttError, match="run/checkpoint: is a symbolic link"):
        load_checkpoint(tmp_path / "run")


class Crash(BaseException):
    """A simulated SIGKILL: it passes every `except Exception`."""


def test_crash_at_every_file_system_call_leaves_a_good_checkpoint(tmp_path, monkeypatch):
    """Kill the save at its k-th file-system call, for every k; after a kill nothing more reaches the disk."""
    calls = ["replace", "rename", "fsync", "open", "mkdir", "rmdir", "unlink", "chmod"]
    real = {name: getattr(os, name) for name in calls}
    budget = {"left": None}

    def make(name):
        def call(*args, **kwargs):
            if budget["left"] is not None:
                if budget["left"] <= 0:
                    raise Crash(name)  # dead: this call and every later one do nothing
                budget["left"] -= 1
            return real[name](*args, **kwargs)

        return call

    for name in calls:
        monkeypatch.setattr(os, name, make(name))
    save_checkpoint(tmp_path, training_arrays(0), training_state(0))
    step, crashed = 0, True
    for k in range(1000):
        budget["left"] = k
        try:
            save_checkpoint(tmp_path, training_arrays(step + 1), training_state(step + 1))
            crashed = False
        except Crash:
            pass
        budget["left"] = None
        assert_consistent(load_checkpoint(tmp_path), {step, step + 1})
        step = load_checkpoint(tmp_path)[1]["step"]
        if not crashed:
            break
    assert not crashed and k > 20  # every call of a whole save was a crash point once


SAVER = textwrap.dedent(
    """
    import sys
    from bptt.io.modelfiles import save_checkpoint
    from tests.helpers import training_arrays, training_state
    directory, step = sys.argv[1], int(sys.argv[2])
    while True:
        step += 1
        save_checkpoint(directory, training_arrays(step), training_state(step))
    """
)
# the fault points one save passes (`bptt.faults`), in order, when a checkpoint/ exists already
SAVE_POINTS = [f"{stage}:{name}" for name in ("arrays.safetensors", "state.json")
               for stage in ("write", "mid-write", "rename")] + ["checkpoint:swap"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_while_saving_in_a_loop(tmp_path):
    """A process saving checkpoints in a loop is killed at a seeded point of a save; the last one loads."""
    directory = tmp_path / "run"
    save_checkpoint(directory, training_arrays(0), training_state(0))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.path.join(root, "src")])}
    rng = np.random.default_rng(0)
    step = 0
    for k in [*rng.integers(len(SAVE_POINTS) + 1, 6 * len(SAVE_POINTS), size=5), 2 * len(SAVE_POINTS)]:
        saves, at = divmod(int(k) - 1, len(SAVE_POINTS))  # saves completed, and the point of the next
        fault = {**env, "BPTT_FAULT": f"SIGKILL@any#{k}"}
        argv = [sys.executable, "-c", SAVER, str(directory), str(step)]
        assert subprocess.run(argv, env=fault, timeout=600).returncode == -signal.SIGKILL
        # killed between moving checkpoint/ aside and renaming the new one in: only checkpoint.old/ is left
        swapped = SAVE_POINTS[at] == "checkpoint:swap"
        assert (directory / "checkpoint").exists() != swapped
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the newest complete checkpoint, never a fallback
            loaded = load_checkpoint(directory)
        assert_consistent(loaded, {step + saves})
        step += saves
