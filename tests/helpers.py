"""Helpers shared by several test modules (fixtures live in conftest.py)."""

import json
import os
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np

from bptt.io.conll import read_conll

# ------------------------------------------------------------------------------- command line on CoNLL slices

# the smallest tagger that still learns something on a slice of CoNLL-2003
TINY = ["--cell", "rnn", "--hidden", "24", "--word-dim", "24", "--char-dim", "8", "--char-hidden", "8"]
TINY += ["--quiet"]
# smaller still, for tests about input handling rather than learning
MINI = ["--cell", "rnn", "--hidden", "8", "--word-dim", "8", "--char-dim", "4", "--char-hidden", "4"]
MINI += ["--quiet"]


def write_slice(src, dst, n):
    """The first n sentences of a CoNLL file, written as four columns; returns them."""
    sentences = read_conll(src)[:n]
    write_conll(dst, sentences, columns=3)
    return sentences


def write_conll(path, sentences, columns=1):
    """Sentences as CoNLL: the word, ``columns - 1`` filler columns, the tag."""
    filler = " X" * (columns - 1)
    with open(path, "w", encoding="utf-8") as f:
        for s in sentences:
            f.write("".join(f"{w}{filler} {t}\n" for w, t in zip(s.words, s.tags)) + "\n")


def error_line(capsys, *argv):
    """Run ``bptt ARGV`` here: it exits 2 with one line ``bptt: error: MESSAGE``; returns MESSAGE."""
    from bptt.cli import main

    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:  # a usage error, reported by argparse the same way
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("bptt: error: ") and err.count("\n") == 1, (rc, err)
    return err[len("bptt: error: ") :].rstrip("\n")


def start_with_fault(argv, fault):
    """``bptt ARGV`` in a new process that signals itself at the fault point ``fault`` (`bptt.faults`)."""
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    env = {**os.environ, "PYTHONPATH": src, "BPTT_FAULT": fault}
    return subprocess.Popen([sys.executable, "-m", "bptt", *argv], env=env, stderr=subprocess.PIPE, text=True)


def snapshot(directory):
    """Every file under ``directory``: relative path -> bytes."""
    files = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, directory)] = f.read()
    return files


def assert_same_weights(a, b):
    """The model directories ``a`` and ``b`` hold the same weights, bit for bit."""
    from bptt.io.safetensors_io import load_safetensors

    wa, _ = load_safetensors(a / "weights.safetensors")
    wb, _ = load_safetensors(b / "weights.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


# --------------------------------------------------------------------------------------------- pictures


def png_ok(path, min_w=300, min_h=200):
    """The PNG decodes, is big enough and is not blank; returns (width, height)."""
    import matplotlib.image

    img = matplotlib.image.imread(path if hasattr(path, "read") else str(path))
    h, w = img.shape[:2]
    assert w >= min_w and h >= min_h, (w, h)
    assert img[..., :3].std() > 0.05  # drawn on, not an empty white canvas
    return w, h


def svg_texts(path):
    """All text of an SVG file (which must parse as XML)."""
    root = ET.parse(path).getroot()
    return [t for e in root.iter() for t in e.itertext() if e.tag.endswith("text") and t.strip()]


def fake_log(n=6, K=12, reach=True):
    """A training log.jsonl's records: n epochs with ragged message norms, a NaN and a zero."""
    records = []
    for e in range(1, n + 1):
        r = {
            "epoch": e,
            "train_loss": 5 / e,
            "seconds": 1.0,
            "tokens_per_s": 1e4,
            "dev": {"f1": 0.5 + e / 20, "precision": 0.6, "recall": 0.5, "token_accuracy": 0.9},
            "grad_norm": 3 / e,
            "clip_fraction": 0.5 if e <= 2 else 0.0,
            "message_norms": np.geomspace(1e-3, 1, K - (e % 2)).tolist(),  # ragged K
        }
        if reach:
            r["reach"] = np.exp(-0.3 * np.arange(K) * (1 - e / n)).tolist()
        records.append(r)
    records[1]["message_norms"][0] = float("nan")  # gaps and zeros are shown as "no value"
    records[2]["message_norms"][1] = 0.0
    return records


# ------------------------------------------------------------------------- safetensors files, checkpoints


def sample_arrays():
    """Every dtype family the tagger stores, a scalar, empty tensors, a NaN with a payload."""
    rng = np.random.default_rng(0)
    nan_payload = np.array([0x7FC00123], dtype=np.uint32).view(np.float32)
    return {
        "W_aa": rng.standard_normal((6, 6)).astype(np.float32),
        "W_ax": rng.standard_normal((6, 4)),
        "b_a": np.concatenate([rng.standard_normal(3).astype(np.float32), nan_payload]),
        "counts": rng.integers(-(2**62), 2**62, size=(2, 3, 4), dtype=np.int64),
        "ids": rng.integers(0, 2**31 - 1, size=5, dtype=np.int32),
        "bytes": rng.integers(0, 256, size=7, dtype=np.uint8),
        "mask": rng.random((3, 5)) < 0.5,
        "half": rng.standard_normal(3).astype(np.float16),
        "step": np.array(12345, dtype=np.int64),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "empty_bool": np.zeros((2, 0), dtype=bool),
    }


def assert_same(got, want):
    """Same names, dtypes, shapes and bits."""
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k].dtype == want[k].dtype, k
        assert got[k].shape == want[k].shape, k
        assert got[k].tobytes() == np.ascontiguousarray(want[k]).tobytes(), k


def craft(header, data=b"", pad=True, length=None):
    """A safetensors file from a header (dict, or raw bytes) and data bytes."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    if pad:
        raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def entry(dtype, shape, begin, end):
    """A header entry of a safetensors file."""
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


class Evil:
    """Would leave a marker file if it were ever unpickled."""

    marker = None

    def __reduce__(self):
        return (open, (self.marker, "w"))


def training_state(step):
    """A checkpoint's state whose values say which step wrote it."""
    rng = np.random.default_rng(step)
    return {
        "epoch": step // 3,
        "step": step,
        "best_f1": 0.25 + step / 1000,
        "rng": rng.bit_generator.state,  # 128-bit integers: JSON keeps them exact
        "history": [{"loss": 1.0 / (i + 1)} for i in range(step % 4)],
    }


def training_arrays(step):
    """Parameters and Adam moments whose values say which step wrote them."""
    arrays = sample_arrays()
    arrays["W_aa"] = np.full((6, 6), step, dtype=np.float32)
    arrays["adam.m/W_aa"] = np.full((6, 6), -step, dtype=np.float64)
    arrays["adam.t"] = np.array(step, dtype=np.int64)
    return arrays


# ------------------------------------------------------------------------------------- PyTorch twins


def torch_rnn(*directions, activation="tanh"):
    """torch.nn.RNN in float64 holding the recurrent parameters (W_ax, W_aa, b_a) of each direction.

    One parameter dict: a one-way RNN; two: forward and reverse of a bidirectional one. bptt has one
    bias b_a where PyTorch has two: b_ih = b_a, b_hh = 0.
    """
    import torch

    n_a, n_x = directions[0]["W_ax"].shape
    rnn = torch.nn.RNN(
        n_x, n_a, nonlinearity=activation, bidirectional=len(directions) == 2, dtype=torch.float64
    )
    with torch.no_grad():
        for suffix, p in zip(("", "_reverse"), directions):
            getattr(rnn, f"weight_ih_l0{suffix}").copy_(torch.from_numpy(p["W_ax"]))
            getattr(rnn, f"weight_hh_l0{suffix}").copy_(torch.from_numpy(p["W_aa"]))
            getattr(rnn, f"bias_ih_l0{suffix}").copy_(torch.from_numpy(p["b_a"]))
            getattr(rnn, f"bias_hh_l0{suffix}").zero_()
    return rnn


def torch_rnn_grads(rnn, suffix=""):
    """The gradients of a `torch_rnn`'s parameters of one direction, under bptt's names."""
    return {
        "W_ax": getattr(rnn, f"weight_ih_l0{suffix}").grad.numpy(),
        "W_aa": getattr(rnn, f"weight_hh_l0{suffix}").grad.numpy(),
        "b_a": getattr(rnn, f"bias_ih_l0{suffix}").grad.numpy(),
    }


def torch_twin(cell, *directions, activation="tanh"):
    """torch.nn.RNN, GRU or LSTM in float64 holding bptt's cell parameters of each direction.

    One parameter dict: a one-way module; two: forward and reverse of a bidirectional one. The weights
    go over by ``bptt.params_to_torch``: bias_ih = b_a, bias_hh = 0 (for the GRU, [0; 0; b_hn]).
    """
    import torch

    import bptt

    n_x = directions[0]["W_ax"].shape[1]
    n_a = directions[0]["W_aa"].shape[1]
    kind = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
    extra = {"nonlinearity": activation} if cell == "rnn" else {}
    module = kind(n_x, n_a, bidirectional=len(directions) == 2, dtype=torch.float64, **extra)
    state = {}
    for suffix, p in zip(("_l0", "_l0_reverse"), directions):
        state.update(bptt.params_to_torch(p, cell, suffix))
    module.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    return module


def torch_twin_grads(module, cell, suffix="_l0"):
    """The gradients of a `torch_twin`'s parameters of one direction, under bptt's names.

    b_a enters where bias_ih does (bias_hh adds to it, except in the GRU's n block), so
    ∂L/∂b_a = bias_ih.grad; the GRU's ∂L/∂b_hn is bias_hh.grad's n block.
    """
    grads = {
        "W_ax": getattr(module, f"weight_ih{suffix}").grad.numpy(),
        "W_aa": getattr(module, f"weight_hh{suffix}").grad.numpy(),
        "b_a": getattr(module, f"bias_ih{suffix}").grad.numpy(),
    }
    if cell == "gru":
        n_a = module.hidden_size
        grads["b_hn"] = getattr(module, f"bias_hh{suffix}").grad.numpy()[2 * n_a :]
    return grads


def run_with_fault(monkeypatch, argv, fault):
    """``bptt ARGV`` in this process, which signals itself at the fault point (SIGTERM or SIGINT: handled)."""
    from bptt import faults
    from bptt.cli import main

    monkeypatch.setenv(faults.ENV, fault)
    faults.reset()
    try:
        return main(argv)
    finally:
        monkeypatch.delenv(faults.ENV)
        faults.reset()
