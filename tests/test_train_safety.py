"""``bptt train`` loses nothing of the user's and is never silently wrong (issue #18).

1. --out: a directory of the user's files is refused (even with --overwrite); a run or a model is only
   replaced with --overwrite, which leaves none of the old run's files; the same command may start
   again over its own run.json.
2. Nothing is written before every input is read and checked: a failed train leaves --out as it was.
3. --resume refuses data files that changed since the run started, naming the file.
4. run.json records absolute paths: --resume from another directory reads the same files.
5. run.json checks itself (self_sha256) and every field of it: an edit is one line naming the field.
6. --resume refuses the options it would ignore.
7. Absurd sizes, and networks that cannot fit in memory, are refused before anything is allocated.
8. A diverging run ends with one line (exit 2), without raw NumPy warnings and without saving.

Every refusal is checked the same way: exit status 2, one line naming the file, field or option,
and the directory unchanged byte for byte.
"""

import io
import json
import math
import os
import shutil

import pytest

import bptt.resources
import bptt.training.trainer
from bptt.cli import main
from bptt.io.modelfiles import load_checkpoint, load_document, save_document
from bptt.models.tagger_network import TaggerConfig, init_tagger_params
from bptt.training import RUN_FORMAT, RUN_FORMAT_VERSION, TrainConfig, memory_needed
from tests.conftest import data_file
from tests.helpers import MINI, assert_same_weights, error_line, snapshot, write_slice

N_TRAIN, BATCH = 200, 32


# ------------------------------------------------------------------------------------------ helpers


def write_data(d):
    """A small training and dev file in directory ``d``; returns ``d``."""
    d.mkdir(parents=True, exist_ok=True)
    write_slice(data_file("conll2003", "eng.train"), d / "train.txt", N_TRAIN)
    write_slice(data_file("conll2003", "eng.testa"), d / "dev.txt", 40)
    return d


def train_args(d, out, *extra, epochs=2):
    return ["train", "--train", d / "train.txt", "--dev", d / "dev.txt", "--out", out,
            "--epochs", epochs, *MINI, *extra]  # fmt: skip


def run(argv):
    return main([str(a) for a in argv])


def refused(capsys, argv, *expected):
    """Run ``bptt ARGV``: exit status 2 and one line ``bptt: error: ...`` holding each of ``expected``."""
    line = "bptt: error: " + error_line(capsys, *argv)
    for text in expected:
        assert str(text) in line, (text, line)
    return line


def stop_after(epoch):
    """Trainer.save_checkpoint, then a Ctrl-C once the checkpoint of ``epoch`` is saved."""
    real = bptt.training.Trainer.save_checkpoint

    def save_then_stop(self, inside_epoch=None):
        real(self, inside_epoch)
        if self.epoch == epoch:
            raise KeyboardInterrupt

    return save_then_stop


def interrupted_run(d, out, monkeypatch):
    """A run of 2 epochs into ``out``, interrupted right after the checkpoint of epoch 1."""
    with monkeypatch.context() as m:
        m.setattr(bptt.training.Trainer, "save_checkpoint", stop_after(1))
        assert run(train_args(d, out)) == 130
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):
    """A finished run (one epoch, with dev): run.json, the model, log, plots, sample and checkpoint."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert run(train_args(data, out, epochs=1)) == 0
    return out


@pytest.fixture(scope="module")
def run_json_only(data, tmp_path_factory):
    """The directory a run leaves when it is killed before its first epoch ends: run.json alone."""
    out = tmp_path_factory.mktemp("started") / "run"

    def killed(self, budget):
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as m:
        m.setattr(bptt.training.Trainer, "run_epoch", killed)
        assert run(train_args(data, out)) == 130
    assert os.listdir(out) == ["run.json"]
    return out


def copy(directory, tmp_path):
    return shutil.copytree(directory, tmp_path / directory.name)


# --------------------------------------------------------------------------------------- 1. --out


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]], ids=["plain", "--overwrite"])
def test_a_directory_of_the_users_files_is_never_written(data, tmp_path, capsys, overwrite):
    out = tmp_path / "mine"
    (out / "checkpoint").mkdir(parents=True)
    (out / "config.json").write_text('{"editor": "vim"}\n')  # names a run writes, but not a run's files
    (out / "log.jsonl").write_text('{"day": 1}\n')
    (out / "loss.png").write_bytes(b"\x89PNG my own plot")
    (out / "checkpoint" / "notes.txt").write_text("keep me\n")
    before = snapshot(out)
    refused(capsys, train_args(data, out, *overwrite), out, "not a bptt run's", "choose a new or empty --out")
    assert snapshot(out) == before


@pytest.mark.slow
def test_a_users_file_in_a_run_directory_is_never_deleted(finished, data, tmp_path, capsys):
    out = copy(finished, tmp_path)
    (out / "notes.txt").write_text("my notes on this run\n")
    before = snapshot(out)
    refused(capsys, train_args(data, out, "--overwrite"), out, "notes.txt", "not a bptt run's")
    assert snapshot(out) == before


def _remove_model(out):
    for name in ("config.json", "vocab.json", "weights.safetensors"):
        os.remove(out / name)


def _keep_run_json_only(out):
    for name in os.listdir(out):
        if name != "run.json":
            shutil.rmtree(out / name) if (out / name).is_dir() else os.remove(out / name)


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda out: None, ["holds a trained model", "--overwrite replaces it"]),
        (_remove_model, ["holds an interrupted run", "--resume", "--overwrite starts again"]),
        (_keep_run_json_only, ["holds the run.json of another run", "--overwrite replaces it"]),
    ],
    ids=["model", "interrupted run", "another run's run.json"],
)
def test_a_run_is_replaced_only_with_overwrite(finished, data, tmp_path, capsys, damage, expected):
    out = copy(finished, tmp_path)
    damage(out)
    before = snapshot(out)
    refused(capsys, train_args(data, out, "--seed", "1"), out, *expected)  # another run
    assert snapshot(out) == before


@pytest.mark.slow
def test_overwrite_leaves_none_of_the_old_runs_files(finished, data, tmp_path):
    out = copy(finished, tmp_path)
    assert {"f1.png", "sample.json"} <= set(os.listdir(out))  # written because of --dev
    no_dev = ["train", "--train", data / "train.txt", "--out", out, "--epochs", 1, "--seed", 1, *MINI]
    assert run([*no_dev, "--overwrite"]) == 0
    model = ["config.json", "vocab.json", "weights.safetensors"]
    assert sorted(os.listdir(out)) == sorted(["run.json", *model, "log.jsonl", "loss.png", "checkpoint"])
    doc = load_document(out / "run.json", RUN_FORMAT, RUN_FORMAT_VERSION)
    assert doc["train"]["dev"] is None and doc["train"]["seed"] == 1
    assert len((out / "log.jsonl").read_text().splitlines()) == 1


@pytest.mark.slow
def test_the_same_command_starts_again_over_its_own_run_json(run_json_only, data, tmp_path, capsys):
    out = copy(run_json_only, tmp_path)
    before = snapshot(out)
    refused(capsys, train_args(data, out, "--seed", "1"), out, "holds the run.json of another run")
    assert snapshot(out) == before
    refused(capsys, train_args(data, out, epochs=1), out, "holds the run.json of another run")  # not 2 epochs
    assert snapshot(out) == before
    assert run(train_args(data, out)) == 0  # the very command that wrote it
    assert (out / "run.json").read_bytes() == before["run.json"]
    assert load_checkpoint(out)[1]["epoch"] == 2


# ---------------------------------------------------------------------- 2. nothing written on failure


BAD_INPUTS = {
    "typo in --train": (["--train", "{d}/eng.trian"], ["eng.trian"]),
    "typo in --dev": (["--dev", "{d}/dev.tset"], ["dev.tset"]),
    "dev with a NUL byte": (["--dev", "{d}/nul.txt"], ["nul.txt:2:", "NUL"]),
    "embeddings of another size": (["--embeddings", "{d}/emb.txt"], ["emb.txt:1:", "--word-dim"]),
    "bad option": (["--dropout", "1.5"], ["--dropout", "1.5"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_a_failed_train_writes_nothing(case, finished, data, tmp_path, capsys):
    (data / "nul.txt").write_bytes(b"John X X I-PER\n\x00 X X O\n")
    (data / "emb.txt").write_text("the 0.1 0.2 0.3\n")
    options, expected = BAD_INPUTS[case]
    options = [o.format(d=data) for o in options]
    out = copy(finished, tmp_path)  # --overwrite would replace this run, had the inputs been good
    before = snapshot(out)
    refused(capsys, [*train_args(data, out, "--overwrite"), *options], *expected)
    assert snapshot(out) == before
    new = tmp_path / "new" / "run"
    refused(capsys, [*train_args(data, new), *options], *expected)
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_a_failed_resume_writes_nothing_either(data, tmp_path, monkeypatch, capsys):
    out = interrupted_run(data, tmp_path / "run", monkeypatch)
    before = snapshot(out)
    monkeypatch.setattr(bptt.resources, "available_memory", lambda: 2**20)  # 1 MiB: nothing fits
    refused(capsys, ["train", "--resume", out, "--quiet"], "more than the 1.0 MiB available")
    assert snapshot(out) == before


# --------------------------------------------------------------------------- 3. changed data files


def _swap_two_bytes(path):
    data = bytearray(path.read_bytes())
    data[0], data[1] = data[1], data[0]  # "EU" -> "UE": same size, other content
    path.write_bytes(bytes(data))


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"\n\n", len(data) // 2) + 2])  # whole sentences, half of them


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, change, expected",
    [
        ("train.txt", _swap_two_bytes, "changed since the run started (sha256 differs)"),
        ("train.txt", _truncate, "changed since the run started (size differs)"),
        ("dev.txt", _swap_two_bytes, "changed since the run started (sha256 differs)"),
        ("dev.txt", os.remove, "cannot read (No such file or directory); the run was started on it"),
    ],
    ids=["train edited", "train truncated", "dev edited", "dev removed"],
)
def test_resume_refuses_data_that_changed(name, change, expected, tmp_path, monkeypatch, capsys):
    d = write_data(tmp_path / "data")
    out = interrupted_run(d, tmp_path / "run", monkeypatch)
    before, original = snapshot(out), (d / name).read_bytes()
    change(d / name)
    refused(capsys, ["train", "--resume", out, "--quiet"], f"{d / name}: {expected}")
    assert snapshot(out) == before
    (d / name).write_bytes(original)  # the run's own data again: it goes on
    assert run(["train", "--resume", out, "--quiet", "--threads", "1"]) == 0
    assert load_checkpoint(out)[1]["epoch"] == 2


# ----------------------------------------------------------------------------- 4. absolute paths


@pytest.mark.slow
def test_resume_from_another_directory_reads_the_run_s_own_files(tmp_path, monkeypatch):
    d = write_data(tmp_path / "data")
    monkeypatch.chdir(d)
    relative = ["train", "--train", "train.txt", "--dev", "dev.txt", "--epochs", 2, *MINI]
    assert run([*relative, "--out", "reference"]) == 0
    with monkeypatch.context() as m:
        m.setattr(bptt.training.Trainer, "save_checkpoint", stop_after(1))
        assert run([*relative, "--out", "run"]) == 130
    doc = load_document(d / "run" / "run.json", RUN_FORMAT, RUN_FORMAT_VERSION)
    for key, name in (("train", "train.txt"), ("dev", "dev.txt")):
        assert os.path.isabs(doc["train"][key]) and os.path.samefile(doc["train"][key], d / name)
    elsewhere = tmp_path / "elsewhere"  # files of the same names, other content
    elsewhere.mkdir()
    write_slice(d / "train.txt", elsewhere / "train.txt", 50)
    write_slice(d / "dev.txt", elsewhere / "dev.txt", 10)
    monkeypatch.chdir(elsewhere)
    assert run(["train", "--resume", d / "run", "--quiet"]) == 0
    assert_same_weights(d / "reference", d / "run")  # bit for bit the uninterrupted run


# ------------------------------------------------------------------------------------ 5. run.json


def _resign(**changes):
    """Edit run.json's content and write it with a valid self_sha256, as a determined editor would."""

    def edit(path):
        doc = load_document(path, RUN_FORMAT, RUN_FORMAT_VERSION)
        for key, value in changes.items():
            section, _, field = key.partition(".")
            if value is _DELETE:
                del doc[section][field]
            elif field:
                doc[section][field] = value
            else:
                doc[section] = value
        save_document(path, RUN_FORMAT, RUN_FORMAT_VERSION, doc)

    return edit


_DELETE = object()


def _hand_edit(path):
    path.write_text(path.read_text().replace('"hidden": 8', '"hidden": 80000'))


def _old_version(path):
    doc = load_document(path, RUN_FORMAT, RUN_FORMAT_VERSION)
    path.write_text(json.dumps({"train": doc["train"], "model": doc["model"]}, indent=1))


RUN_JSON_EDITS = {
    "edited by hand": (_hand_edit, "does not match its self_sha256"),
    "written by the previous version": (_old_version, "not a bptt-run file"),
    "hidden a string": (_resign(**{"model.hidden": "8"}), "model.hidden: expected an integer >= 1"),
    "hidden negative": (_resign(**{"model.hidden": -8}), "model.hidden: expected an integer >= 1"),
    "a million layers": (_resign(**{"model.layers": 10**6}), "model.layers: at most 100, got 1000000"),
    "hidden missing": (_resign(**{"model.hidden": _DELETE}), "model: missing the field 'hidden'"),
    "epochs 0": (_resign(**{"train.epochs": 0}), "train.epochs: expected an integer >= 1, got 0"),
    "lr a string": (_resign(**{"train.lr": "fast"}), "train.lr: expected a number > 0"),
    "batch size a float": (_resign(**{"train.batch_size": 32.5}), "train.batch_size: expected an integer"),
    "unknown field": (_resign(**{"train.learning_rate": 1}), "train: unknown field 'learning_rate'"),
    "relative path": (_resign(**{"train.train": "train.txt"}), "train.train: expected an absolute path"),
    "no data checksums": (
        _resign(**{"data": {}}),
        "data: expected the size and SHA-256 of each of train, dev",
    ),
    "a section a list": (_resign(**{"model": []}), "model: expected an object"),
}


@pytest.mark.parametrize("case", list(RUN_JSON_EDITS))
def test_an_edited_run_json_is_refused(case, run_json_only, tmp_path, capsys):
    edit, expected = RUN_JSON_EDITS[case]
    out = copy(run_json_only, tmp_path)
    edit(out / "run.json")
    before = snapshot(out)
    line = refused(capsys, ["train", "--resume", out, "--quiet"], out / "run.json", expected)
    assert "Traceback" not in line
    assert snapshot(out) == before


def test_a_newer_run_json_is_refused(run_json_only, tmp_path, capsys):
    out = copy(run_json_only, tmp_path)
    path = out / "run.json"
    content = load_document(path, RUN_FORMAT, RUN_FORMAT_VERSION)
    save_document(path, RUN_FORMAT, RUN_FORMAT_VERSION + 1, content)
    refused(capsys, ["train", "--resume", out], path, "format_version 2 is newer")


def test_run_json_checks_itself_like_config_json(run_json_only):
    doc = json.loads((run_json_only / "run.json").read_text())
    assert doc["format"] == "bptt-run" and len(doc["self_sha256"]) == 64
    assert set(doc["data"]) == {"train", "dev"}
    assert all(len(v["sha256"]) == 64 and v["bytes"] > 0 for v in doc["data"].values())


# ---------------------------------------------------------------------------- 6. options with --resume


@pytest.mark.parametrize(
    "options",
    [
        ["--hidden", "64"],
        ["--train", "other.txt"],
        ["--out", "elsewhere"],
        ["--epochs", "5"],
        ["--time-budget", "1"],
        ["--seed", "0"],  # the default value, typed: still not what the run will use
        ["--overwrite"],
        ["--unidirectional"],
        ["--tag-column", "-1", "--lr", "0.1"],
    ],
    ids=lambda o: " ".join(o),
)
def test_resume_refuses_the_options_it_would_ignore(options, run_json_only, capsys):
    before = snapshot(run_json_only)
    names = ", ".join(o for o in options if o.startswith("--"))
    refused(
        capsys,
        ["train", "--resume", run_json_only, *options, "--quiet", "--threads", "1"],
        f"--resume: cannot be given with {names}:",
        "only --quiet and --threads",
    )
    assert snapshot(run_json_only) == before


# ---------------------------------------------------------------------------------------- 7. memory


@pytest.mark.parametrize(
    "options, expected",
    [
        (["--layers", "1000000"], "--layers: at most 100, got 1000000"),
        (["--hidden", "100000"], "--hidden: at most 65536, got 100000"),
        (["--word-dim", "1000000"], "--word-dim: at most 65536"),
        (["--hidden", "0"], "--hidden: expected an integer >= 1, got 0"),
        (["--lr", "1e400"], "--lr: expected a number > 0, finite, got inf"),
    ],
)
def test_absurd_options_are_refused_before_anything_is_read(options, expected, tmp_path, capsys):
    out = tmp_path / "run"
    refused(capsys, ["train", "--train", tmp_path / "nothing.txt", "--out", out, *options], expected)
    assert not out.exists()


def test_a_network_too_large_for_memory_is_refused_before_allocating(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bptt.resources, "available_memory", lambda: 2**30)

    def never(*args, **kw):
        raise AssertionError("weights allocated")

    monkeypatch.setattr(bptt.training.trainer, "init_tagger_params", never)
    out = tmp_path / "run"
    line = refused(
        capsys,
        train_args(data, out, "--hidden", "8192"),
        "this network: needs about",
        "more than the 1.0 GiB available",
        "--hidden",
    )
    need = float(line.split("needs about ")[1].split(" GiB")[0])
    assert need > 1
    assert not out.exists()


@pytest.mark.parametrize(
    "tagger, optimizer, ema, copies",
    [
        ({}, "adam", 0.999, 5),  # weights, gradients, two moments, the average
        ({"char_dim": 0, "case_dim": 0, "layers": 3}, "momentum", 0.999, 4),
        ({"bidirectional": False, "task": "ner", "tags": ["O", "B-PER", "I-PER"]}, "sgd", 0.0, 2),
    ],
)
def test_the_memory_estimate_counts_every_weight(tagger, optimizer, ema, copies):
    mcfg = TaggerConfig(**{"hidden": 12, "word_dim": 10, **tagger})
    tcfg = TrainConfig(optimizer=optimizer, ema=ema, batch_size=4)
    params = init_tagger_params(mcfg, n_words=50, n_chars=30)
    n = sum(p.size for p in params.values())
    total, weights = memory_needed(mcfg, tcfg, 50, 30, longest=0)
    assert total == weights == 4 * copies * n
    total, _ = memory_needed(mcfg, tcfg, 50, 30, longest=7)
    assert total > weights  # and the activations of 4 sentences of 7 words


def test_available_memory_is_memavailable(monkeypatch):
    meminfo = "MemTotal:       16000000 kB\nMemFree:  1000 kB\nMemAvailable:    2048 kB\n"
    monkeypatch.setattr(bptt.resources, "open", lambda path: io.StringIO(meminfo), raising=False)
    assert bptt.resources.available_memory() == 2048 * 1024

    def missing(path):
        raise FileNotFoundError(path)

    monkeypatch.setattr(bptt.resources, "open", missing, raising=False)
    monkeypatch.setattr(bptt.resources.os, "sysconf", missing)
    assert bptt.resources.available_memory() is None  # neither /proc/meminfo nor sysconf: no check


# ------------------------------------------------------------------------------------- 8. divergence


@pytest.mark.slow
def test_a_learning_rate_of_1e30_ends_with_one_line_and_no_numpy_warning(data, tmp_path, capsys):
    from bptt.cli import main

    out = tmp_path / "run"
    capsys.readouterr()
    assert main([str(a) for a in train_args(data, out, "--lr", "1e30")]) == 2
    # before the error, only bptt's own warnings of skipped updates: whether the first updates' gradients
    # overflow to inf (skipped) or stay finite depends on the CPU's kernels (seen both ways on two EPYCs)
    *warnings, line = capsys.readouterr().err.splitlines()
    assert all(w.startswith("warning: skipped an update with a non-finite") for w in warnings), warnings
    assert line.startswith("bptt: error: training diverged: the loss of epoch 1 is") and str(out) in line
    assert "no epoch finished" in line and "try a smaller --lr" in line
    assert os.listdir(out) == ["run.json"]  # no model, no checkpoint of the diverged epoch


@pytest.mark.slow
def test_a_loss_far_above_a_uniform_guess_is_a_divergence(data, tmp_path, monkeypatch, capsys):
    per_epoch = math.ceil(N_TRAIN / BATCH)
    real, calls = bptt.training.trainer.tagger_loss, []

    def exploding(*args, **kw):  # finite, but 1000 times larger from epoch 2 on
        L, grads, M = real(*args, **kw)
        calls.append(1)
        return (L * 1000 if len(calls) > per_epoch else L), grads, M

    monkeypatch.setattr(bptt.training.trainer, "tagger_loss", exploding)
    out = tmp_path / "run"
    line = refused(
        capsys, train_args(data, out, epochs=3), "training diverged: the loss of epoch 2 is", "per word"
    )
    # a uniform guess: log 2 for name-or-not, plus log 9 for the auxiliary output's nine IOB2 tags
    assert f"over 10 times a uniform guess's ({math.log(2) + math.log(9):.3g})" in line
    assert f"the last good model is in {out}" in line
    _, state = load_checkpoint(out)
    assert state["epoch"] == 1  # epoch 2 was not saved
    assert len((out / "log.jsonl").read_text().splitlines()) == 1
    monkeypatch.undo()
    assert run(["train", "--resume", out, "--quiet"]) == 0  # the last good state goes on


def test_keep_freed_memory_applies_on_glibc_and_is_a_no_op_elsewhere(monkeypatch):
    """The command line asks glibc to keep freed arrays' pages (a step reuses the last step's); where
    there is no glibc nothing changes and nothing fails."""
    import ctypes
    import platform

    from bptt.resources import keep_freed_memory

    if platform.libc_ver()[0] == "glibc":
        assert keep_freed_memory() is True
        assert keep_freed_memory() is True  # again: the same settings

    def no_libc(*args, **kwargs):
        raise OSError("no C library here")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert keep_freed_memory() is False
