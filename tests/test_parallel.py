"""Data-parallel training (`bptt.training.parallel`): the same model on any number of processes.

The first tests need no MPI: they split batches among simulated processes in this one and hold the
summed shares equal to the whole batch (float64, 1e-12), the random draws and the generator's state
too. The others (slow) run ``mpiexec -n 2`` and ``-n 3`` (oversubscribed on a two-core machine) on a
slice of CoNLL-2003: 1, 2 and 3 processes train float64 models equal to 1e-12; a SIGTERM to one
process stops them all and ``--resume`` on another number of processes ends with the same model; a
process killed outright ends the job; an error in one process aborts the others; and the processes
other than 0 never write a file (each is armed to SIGKILL itself at its first write: `bptt.faults`).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bptt import faults
from bptt.cli import main
from bptt.errors import BpttError
from bptt.io.modelfiles import load_checkpoint
from bptt.io.safetensors_io import load_safetensors
from bptt.models.layers import RowGrad
from bptt.models.tagger import Tagger, tables_for
from bptt.models.tagger_network import (
    TaggerConfig,
    batch_part,
    init_tagger_params,
    make_batch,
    tagger_loss,
)
from bptt.models.vocab import FormTable, Vocab
from bptt.training import TrainConfig, parallel
from bptt.training.parallel import Comm, ShareDraws, agreed_signal, pack, share_of, unpack
from tests.conftest import data_file
from tests.helpers import TINY, error_line, write_slice

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")

# ------------------------------------------------------------------------- one process, simulated shares

SENTENCES = [
    "Harry Potter and Hermione Granger invented a new spell .".split(),
    "Dumbledore smiled .".split(),
    "The Ministry of Magic sent an owl to Hogwarts on Monday .".split(),
    "Ron Weasley 's rat was Peter Pettigrew all along".split(),
    "Snape".split(),
    "It cost 1,000 Galleons in 1991 , said Mr. Ollivander .".split(),
    "Hagrid lives near the Forbidden Forest .".split(),
]
TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]


def tiny_tagger(cell="rnn", task="ner"):
    """A small float64 tagger with every part (words, casing, characters, two layers), its vocabulary
    and form table, and a padded batch of SENTENCES (lengths 1 to 12)."""
    vocab = Vocab.build(SENTENCES[:5])  # the others hold unknown words and characters
    table = FormTable(vocab)
    forms = [table.encode(s) for s in SENTENCES]
    rng = np.random.default_rng(3)
    labels = [rng.integers(0, len(TAGS), size=len(s)) for s in SENTENCES]
    cfg = TaggerConfig(
        task=task, tags=TAGS if task == "ner" else ["O", "PER"], aux=False, word_dim=6, case_dim=3,
        char_dim=4, char_hidden=3, hidden=5, layers=2, cell=cell, dropout=0.3, word_dropout=0.2,
        unk_replace=0.5,
    )  # fmt: skip
    if task == "person":
        labels = [(y > 0).astype(np.int64) for y in labels]
    params = init_tagger_params(cfg, len(vocab.words), len(vocab.chars), seed=1, dtype=np.float64)
    batch = make_batch(forms, labels, np.arange(len(forms)))
    return cfg, params, vocab, table, batch


def dense(g):
    return g.dense() if isinstance(g, RowGrad) else g


@pytest.mark.parametrize("n", range(0, 12))
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_shares_cover_the_batch_once(n, size):
    parts = [share_of(r, size, n) for r in range(size)]
    real = [p for p in parts if p.mean_over == n]
    assert [i for p in real for i in range(p.lo, p.hi)] == list(range(n))  # contiguous, in rank order
    assert len(real) == min(n, size) and len({p.hi - p.lo for p in real}) <= 2  # sizes differ by <= 1
    # a process without sentences computes sentence 0 for nothing (it draws the batch's random numbers)
    assert all(p == (0, 1, np.inf) for p in parts if p.mean_over != n)


def test_share_draws_are_the_whole_batchs_columns():
    T, B = 7, 5
    whole = np.random.default_rng(9)
    r = whole.random((T, B))
    m = whole.random((T, B, 4), dtype=np.float32)
    for lo, hi, T_part in [(0, 2, 7), (2, 4, 3), (4, 5, 1)]:
        rng = np.random.default_rng(9)
        draws = ShareDraws(rng, T, B, lo, hi)
        np.testing.assert_array_equal(draws.random((T_part, hi - lo)), r[:T_part, lo:hi])
        np.testing.assert_array_equal(draws.random((T_part, hi - lo, 4), np.float32), m[:T_part, lo:hi])
        assert rng.bit_generator.state == whole.bit_generator.state  # the generator moves on alike
    with pytest.raises(ValueError):
        ShareDraws(np.random.default_rng(), T, B, 0, 2).random((T, 3))


def simulated_processes(cfg, params, vocab, table, batch, size, seed=11, truncate=None):
    """The step of ``size`` processes, simulated here: each one's share (with its own copy of the
    generator), packed as `MPIComm.sum` packs it, the buffers summed. Returns: (L, grads, rng states)."""
    tables = tables_for(vocab, table)
    B = len(batch.index)
    results, states = [], []
    for rank in range(size):
        rng = np.random.default_rng(seed)
        lo, hi, mean_over = share_of(rank, size, B)
        draws = ShareDraws(rng, *batch.forms.shape, lo, hi)
        part = batch_part(batch, lo, hi)
        L, grads, _ = tagger_loss(params, cfg, part, tables, draws, truncate=truncate, mean_over=mean_over)
        results.append((L, grads))
        states.append(rng.bit_generator.state)
    sparse = [k for k, g in results[0][1].items() if isinstance(g, RowGrad)]
    unions = {k: np.unique(np.concatenate([g[k].rows for _, g in results])) for k in sparse}
    total = sum(pack(L, g, (rank, 1.0), unions) for rank, (L, g) in enumerate(results))
    L, grads, control = unpack(total, results[0][1], unions, 2)
    assert control == (sum(range(size)), size)
    return L, grads, states


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize("task", ["ner", "person"])
@pytest.mark.parametrize("size", [2, 3, 8])  # 8: more processes than sentences
def test_summed_shares_are_the_whole_batch(cell, task, size):
    cfg, params, vocab, table, batch = tiny_tagger(cell, task)
    rng = np.random.default_rng(11)
    L, grads, _ = tagger_loss(params, cfg, batch, tables_for(vocab, table), rng)
    L_sum, summed, states = simulated_processes(cfg, params, vocab, table, batch, size)
    assert L_sum == pytest.approx(L, rel=1e-13)
    assert list(summed) == list(grads)
    for k, g in grads.items():
        np.testing.assert_allclose(dense(summed[k]), dense(g), rtol=1e-12, atol=1e-15, err_msg=k)
        if isinstance(g, RowGrad):  # the same rows, but for the padding row (its gradient is always 0)
            assert set(g.rows) - set(summed[k].rows) <= {0} and set(summed[k].rows) <= set(g.rows)
            assert not dense(g)[0].any()
    assert all(s == rng.bit_generator.state for s in states)  # every process's generator, as one's


def test_summed_shares_with_truncated_bptt():
    cfg, params, vocab, table, batch = tiny_tagger("gru")
    _, grads, _ = tagger_loss(
        params, cfg, batch, tables_for(vocab, table), np.random.default_rng(11), truncate=3
    )
    _, summed, _ = simulated_processes(cfg, params, vocab, table, batch, 3, truncate=3)
    for k, g in grads.items():
        np.testing.assert_allclose(dense(summed[k]), dense(g), rtol=1e-12, atol=1e-15, err_msg=k)


@pytest.mark.parametrize("n", [2, 3])
def test_tagging_in_parts_is_tagging_whole(n):
    cfg, params, vocab, _, _ = tiny_tagger()
    tagger = Tagger(params, cfg, vocab)
    sentences = SENTENCES * 5
    whole = tagger.predict(sentences, batch_size=4)
    parts = [tagger.predict(sentences, batch_size=4, part=(k, n)) for k in range(n)]
    assert all(sum(p[i] is not None for p in parts) == 1 for i in range(len(sentences)))
    assert [next(p[i] for p in parts if p[i] is not None) for i in range(len(sentences))] == whole


def test_one_process_is_the_identity(monkeypatch):
    for name in parallel.SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(parallel, "_world", None)
    comm = parallel.world()
    assert type(comm) is Comm and (comm.rank, comm.size, comm.root) == (0, 1, True)
    grads = {"W": np.ones((2, 3))}
    L, out, control = comm.sum(1.5, grads, (0, 2.0))
    assert L == 1.5 and out is grads and control == (0, 2.0)
    assert comm.share(7) == (0, 7, 7) and comm.agree((1, 2)) == (1, 2)
    assert comm.broadcast("x") == "x" and comm.allgather("x") == ["x"]
    assert comm.on_root(lambda: 3) == 3 and comm.every(lambda: 4) == 4
    comm.check_same(grads, "now")

    def fails():
        raise BpttError("boom")

    with pytest.raises(BpttError, match="boom"), comm.collective():  # raised as it is, nothing aborted
        comm.every(fails)


def test_several_processes_without_mpi4py_is_one_line(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "4")
    monkeypatch.setattr(parallel, "_world", None)
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # `import mpi4py` fails
    with pytest.raises(BpttError, match=r"one of 4 processes, but mpi4py is not installed: pip install"):
        parallel.world()


def test_agreed_signal():
    assert agreed_signal(0, 0) is None
    assert agreed_signal(1, signal.SIGTERM) == signal.SIGTERM
    assert agreed_signal(3, 3 * signal.SIGINT) == signal.SIGINT  # Ctrl-C, passed to every process
    assert agreed_signal(2, signal.SIGINT + signal.SIGTERM) == signal.SIGTERM


def test_a_fault_point_prefix(monkeypatch):
    monkeypatch.setenv(faults.ENV, "SIGKILL@write:*")
    faults.reset()
    try:
        assert faults.armed("write:log.jsonl") and faults.armed("write:arrays.safetensors")
        assert not faults.armed("batch:1:0") and not faults.armed("rename:log.jsonl")
    finally:
        monkeypatch.delenv(faults.ENV)
        faults.reset()


def test_dtype_is_a_training_setting(capsys):
    doc = {k: v for k, v in vars(TrainConfig(train="t")).items() if k != "dtype"}
    assert TrainConfig.from_json(doc).dtype == "float32"  # a run.json from before the choice
    with pytest.raises(BpttError, match="dtype: expected 'float32' or 'float64'"):
        TrainConfig(train="t", dtype="float16")
    assert "--dtype" in error_line(capsys, "train", "--train", "t", "--out", "o", "--dtype", "float16")


# ------------------------------------------------------------------------------- several processes (MPI)


def find_mpiexec():
    """The mpiexec beside this Python (the mpich wheel's, in the virtual environment, activated or not),
    else the first on PATH; skip without it or without mpi4py."""
    pytest.importorskip("mpi4py", reason="mpi4py is not installed: pip install 'bptt[mpi]'")
    for path in (os.path.join(os.path.dirname(sys.executable), "mpiexec"), shutil.which("mpiexec")):
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    pytest.skip("no mpiexec beside this Python or on PATH: pip install 'bptt[mpi]' (the mpich wheel)")


@pytest.fixture(scope="module")
def mpiexec():
    """(the mpiexec command with its options, its environment): Open MPI's needs to be told that it may
    run as root and put more processes than cores on a machine; MPICH's does neither."""
    path = find_mpiexec()
    version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60).stdout
    env = {**os.environ, "PYTHONPATH": SRC}
    env.pop(faults.ENV, None)
    if "Open MPI" in version or "OpenRTE" in version:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        return [path, "--oversubscribe"], env
    return [path], env


HANG_GUARD = 600  # seconds: only against a hang; nothing here depends on time


def launch(mpiexec, n, program, fault=None):
    """``program`` (an argv) on n processes, process r with BPTT_FAULT=fault[r] where given.

    Returns: (exit status, stdout and stderr together).
    """
    command, env = mpiexec
    command = list(command)
    for rank in range(n):
        armed = (fault or {}).get(rank)
        command += [":"] * (rank > 0) + ["-n", "1", *(["env", f"{faults.ENV}={armed}"] if armed else [])]
        command += program
    p = subprocess.run(command, env=env, capture_output=True, text=True, timeout=HANG_GUARD)
    return p.returncode, p.stdout + p.stderr


def bptt(*argv):
    return [sys.executable, "-m", "bptt", *map(str, argv)]


# the processes other than 0 kill themselves at their first write: they must never write
NO_WRITES = "SIGKILL@write:*"


def followers(n, fault=NO_WRITES):
    return {r: fault for r in range(1, n)}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("parallel")
    write_slice(data_file("conll2003", "eng.train"), d / "train.txt", 160)
    write_slice(data_file("conll2003", "eng.testa"), d / "dev.txt", 30)
    return d


def train_args(d, out, dtype="float64", quiet=True):
    """Dropout, word dropout and <unk> replacement on (the defaults): every kind of random draw."""
    return ["train", "--train", d / "train.txt", "--dev", d / "dev.txt", "--out", out, "--epochs", "3",
            "--batch-size", "7", "--seed", "5", "--lr", "0.01", "--dtype", dtype,
            *[a for a in TINY if quiet or a != "--quiet"]]  # fmt: skip


@pytest.fixture(scope="module")
def reference(data):
    """One process, float64, in this process."""
    out = data / "one"
    assert main([str(a) for a in train_args(data, out)]) == 0
    return out


@pytest.fixture(scope="module")
def reference32(data):
    out = data / "one32"
    assert main([str(a) for a in train_args(data, out, "float32")]) == 0
    return out


def log(d):
    return [json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()]


def assert_same_model(a, b):
    """float64: the same weights, average, optimizer state and epoch losses to 1e-12; the same dev
    scores, best epoch and tagged sample."""
    wa, _ = load_safetensors(a / "weights.safetensors")
    wb, _ = load_safetensors(b / "weights.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_allclose(wb[k], wa[k], rtol=0, atol=1e-12, err_msg=k)
    (ca, sa), (cb, sb) = load_checkpoint(a), load_checkpoint(b)
    assert ca.keys() == cb.keys() and sa["epoch"] == sb["epoch"] == 3
    for k in ca:  # param.*, ema.*, opt.m.*, opt.v.*, opt.t
        np.testing.assert_allclose(cb[k], ca[k], rtol=0, atol=1e-12, err_msg=k)
    assert sa["rng"] == sb["rng"] and sa["best_f1"] == sb["best_f1"]
    la, lb = log(a), log(b)
    assert [r["train_loss"] for r in lb] == pytest.approx([r["train_loss"] for r in la], rel=1e-12)
    assert [r["dev"] for r in lb] == [r["dev"] for r in la]
    assert (a / "sample.json").read_text() == (b / "sample.json").read_text()


def assert_close_model(a, b):
    """float32, the tolerance README states: epoch losses within 1e-5 (relative), every weight within
    5e-3 and most (a rarely used embedding row aside, where Adam magnifies rounding) within 1e-4."""
    la, lb = log(a), log(b)
    assert [r["train_loss"] for r in lb] == pytest.approx([r["train_loss"] for r in la], rel=1e-5)
    (ca, _), (cb, _) = load_checkpoint(a), load_checkpoint(b)
    for k in ca:
        if k.startswith(("param.", "ema.")):
            diff = np.abs(cb[k].astype(np.float64) - ca[k])
            assert diff.max() <= 5e-3 and np.mean(diff > 1e-4) <= 0.01, (k, diff.max())


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 3])
def test_the_same_model_on_1_2_and_3_processes(mpiexec, data, reference, n):
    out = data / f"n{n}"
    rc, output = launch(mpiexec, n, bptt(*train_args(data, out)), fault=followers(n))
    assert rc == 0, output
    assert_same_model(reference, out)
    assert (out / "run.json").read_bytes() == (reference / "run.json").read_bytes()


@pytest.mark.slow
def test_float32_on_2_processes_is_within_rounding(mpiexec, data, reference32):
    out = data / "n2-32"
    rc, output = launch(mpiexec, 2, bptt(*train_args(data, out, "float32")))
    assert rc == 0, output
    assert_close_model(reference32, out)


@pytest.mark.slow
def test_sigterm_to_one_process_stops_all_and_resume_on_3_is_the_same(mpiexec, data, reference):
    out = data / "sigterm"
    argv = bptt(*train_args(data, out, quiet=False))
    rc, output = launch(mpiexec, 2, argv, fault={1: "SIGTERM@batch:2:3"})
    assert rc == 128 + signal.SIGTERM, output
    assert "SIGTERM to another process: saving the training state, then stopping" in output
    assert output.count("bptt: interrupted") == 1  # process 0 says it
    _, state = load_checkpoint(out)
    # process 1 sent word with batch 3's sum: all stopped before batch 4, process 0 saved
    assert state["epoch"] == 1 and state["inside_epoch"]["batch"] == 4
    rc, output = launch(mpiexec, 3, bptt("train", "--resume", out, "--quiet"), fault=followers(3))
    assert rc == 0, output
    assert_same_model(reference, out)


@pytest.mark.slow
def test_a_killed_process_ends_the_job_and_one_process_resumes(mpiexec, data, reference):
    out = data / "killed"
    rc, output = launch(mpiexec, 3, bptt(*train_args(data, out)), fault={2: "SIGKILL@batch:2:3"})
    assert rc != 0 and ("Killed" in output or "signal 9" in output), output  # mpiexec says which
    _, state = load_checkpoint(out)
    assert state["epoch"] == 1 and "inside_epoch" not in state  # the last checkpoint is whole
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_model(reference, out)


@pytest.mark.slow
def test_an_error_every_process_meets_is_one_line(mpiexec, data, reference):
    rc, output = launch(mpiexec, 3, bptt(*train_args(data, reference)))
    assert rc == 2, output
    assert output.count("bptt: error:") == 1 and "holds a trained model" in output, output


ONE_FAILS = """
from bptt.errors import BpttError
from bptt.training.parallel import world

comm = world()
with comm.collective():
    if comm.rank == 1:
        raise BpttError("boom")  # (a disk full on one process, a bug: nothing the others know of)
    comm.agree((0,))  # where process 0 would wait for ever
"""


@pytest.mark.slow
def test_an_error_in_one_process_aborts_the_job(mpiexec):
    rc, output = launch(mpiexec, 2, [sys.executable, "-c", textwrap.dedent(ONE_FAILS)])
    assert rc != 0
    assert "bptt: error: process 1 of 2: boom; stopping all 2 processes" in output, output


@pytest.mark.slow
def test_longrange_is_the_same_on_1_and_3_processes(mpiexec, tmp_path):
    args = ["longrange", "--task", "adding", "copy", "--T", "12", "--cell", "lstm", "--sequences", "500",
            "--eval-every", "200", "--valid-size", "40", "--test-size", "50", "--batch-size", "7",
            "--hidden", "8", "--dtype", "float64", "--quiet"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    rc, output = launch(mpiexec, 3, bptt(*args, "--out", tmp_path / "three"), fault=followers(3))
    assert rc == 0, output
    one, three = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("one", "three"))
    for a, b in zip(one, three):
        assert b["value"] == pytest.approx(a["value"], rel=1e-12, abs=1e-15)
        assert (a["updates"], a["sequences"]) == (b["updates"], b["sequences"])
        name = f"{a['task']}-T12-lstm-forget1"
        wa, _ = load_safetensors(tmp_path / "one" / "runs" / name / "weights.safetensors")
        wb, _ = load_safetensors(tmp_path / "three" / "runs" / name / "weights.safetensors")
        for k in wa:
            np.testing.assert_allclose(wb[k], wa[k], rtol=0, atol=1e-12, err_msg=k)


LM = ["--hidden", "8", "--batch-size", "5", "--bptt-steps", "7", "--eval-every", "6", "--updates", "20",
      "--dtype", "float64", "--dropout", "0.3", "--weight-drop", "0.2", "--lr", "0.02",
      "--quiet"]  # fmt: skip


def assert_same_weights_within(a, b, tol=1e-12):
    wa, _ = load_safetensors(a / "weights.safetensors")
    wb, _ = load_safetensors(b / "weights.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_allclose(wb[k], wa[k], rtol=0, atol=tol, err_msg=k)


@pytest.mark.slow
@pytest.mark.parametrize(("unit", "layers"), [("stream", 1), ("line", 1), ("stream", 2)])
def test_language_model_is_the_same_on_1_2_and_3_processes(mpiexec, tmp_path, unit, layers):
    """Streams (or lines) shared out, dropout drawn for the whole batch (between layers too), the carried
    state of every layer gathered."""
    text = tmp_path / "text.txt"
    text.write_text("".join(f"the cat {i % 7} sat on the mat {i}\n" for i in range(80)))
    args = ["lm", "train", "--text", text, "--unit", unit, "--layers", str(layers), *LM]
    assert main([*map(str, args), "--out", str(tmp_path / "one")]) == 0
    for n in (2, 3):
        rc, output = launch(mpiexec, n, bptt(*args, "--out", tmp_path / f"n{n}"), fault=followers(n))
        assert rc == 0, output
        assert_same_weights_within(tmp_path / "one", tmp_path / f"n{n}")


@pytest.mark.slow
def test_language_model_interrupted_on_2_resumes_on_3(mpiexec, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("".join(f"the cat {i % 7} sat on the mat {i}\n" for i in range(80)))
    args = ["lm", "train", "--text", text, *LM]
    assert main([*map(str, args), "--out", str(tmp_path / "one")]) == 0
    out = tmp_path / "run"
    rc, output = launch(mpiexec, 2, bptt(*args, "--out", out), fault={1: "SIGTERM@lm:step:9"})
    assert rc != 0 and not (out / "weights.safetensors").exists(), output
    rc, output = launch(mpiexec, 3, bptt("lm", "train", "--resume", out, "--quiet"), fault=followers(3))
    assert rc == 0, output
    assert_same_weights_within(tmp_path / "one", out)


@pytest.mark.slow
def test_dates_train_refuses_several_processes(mpiexec, tmp_path):
    rc, output = launch(
        mpiexec, 2, bptt("dates", "train", "--updates", "2", "--out", tmp_path / "d", "--quiet")
    )
    assert rc == 2 and output.count("bptt: error: bptt dates train runs on one process") == 1, output
