"""Bad input gets one clear line: through the command line (exit 2) and the API (BpttError).

Every command-line case checks: exit status 2, standard error is exactly one line starting
``bptt: error:``, naming the file (and line) or the option, and no traceback. The API cases check
that a `BpttError` names the argument. Sentences of one word and of 10,000 words are not errors:
they train and tag.
"""

import io
import json
import os
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest

import bptt
from bptt.cli import main
from bptt.errors import BpttError
from bptt.io.synthetic import make_corpus
from tests.helpers import MINI, error_line, write_conll

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def ok(*argv):
    """Run ``bptt ARGV`` in this process and check that it succeeds (paths may be Path objects)."""
    assert main([str(a) for a in argv]) == 0


def cli(capsys, argv):
    """Run ``bptt ARGV`` in this process: (exit status, stdout, stderr)."""
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse exits by itself
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, expected):
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bptt: error: "), err
    for text in expected:
        assert text in lines[0], (text, lines[0])
    assert rc == 2, err


# ------------------------------------------------------------------------------------------ the files


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    """A directory of good and bad files, and a trained tiny model ``model/``."""
    d = tmp_path_factory.mktemp("bad")
    train = make_corpus(60, seed=1)
    write_conll(d / "train.txt", train)
    write_conll(d / "dev.txt", make_corpus(20, seed=2, split="test"))
    (d / "empty.txt").write_bytes(b"")
    (d / "blank.txt").write_bytes(b"\n \n\t\n")
    (d / "binary.bin").write_bytes(b"John B-PER\n\x00\x01\x02\xff")
    (d / "latin1.txt").write_bytes("John B-PER\nSmith I-PER\ncaf\xe9 O\n".encode("latin-1"))
    (d / "columns.txt").write_text("John B-PER\nSmith X I-PER\n")
    (d / "onecolumn.txt").write_text("John\nSmith\n")
    (d / "badtag.txt").write_text("John B-PER\nSmith I_PER\n")
    (d / "noper.txt").write_text("The O\ncat O\n")
    (d / "prefix.txt").write_text("en:John B-PER\nen:Smith I-PER\nSmith I-PER\n")
    n = sum(len(s.words) + 1 for s in make_corpus(20, seed=2, split="test"))
    with open(d / "dev_unseen.txt", "w") as f:  # a tag the training file never has, on line n + 2
        f.write((d / "dev.txt").read_text() + "Acme O\nCorp B-FOO\n")
    (d / "unseen_line.txt").write_text(str(n + 2))
    (d / "emb_dim.txt").write_text("the 0.1 0.2 0.3\n")
    (d / "emb_nan.txt").write_text("the " + " ".join(["0.1"] * 7 + ["nan"]) + "\n")
    (d / "emb_word.txt").write_text("the " + " ".join(["0.1"] * 7 + ["x"]) + "\n")
    (d / "emb_latin1.txt").write_bytes(b"caf\xe9 " + b" ".join([b"0.1"] * 8) + b"\n")
    (d / "emb_empty.txt").write_bytes(b"")
    (d / "long_conll.txt").write_text("John B-PER\n\n" + "word O\n" * 10_001)
    (d / "long.txt").write_text("first line .\n" + " ".join(["word"] * 10_001) + "\n")
    (d / "a_file").write_text("not a directory\n")
    (d / "run_bad").mkdir()
    (d / "run_bad" / "run.json").write_text("{not json")
    ok("train", "--train", d / "train.txt", "--out", d / "model", "--epochs", "1", *MINI)
    models = {
        "no_weights": lambda m: os.remove(m / "weights.safetensors"),
        "no_vocab": lambda m: os.remove(m / "vocab.json"),
        "no_config": lambda m: os.remove(m / "config.json"),
        "truncated": lambda m: _truncate(m / "weights.safetensors"),
        "flipped": lambda m: _flip_last_byte(m / "weights.safetensors"),
        "future": lambda m: _edit_config(m, format_version=99),
        "other_format": lambda m: _edit_config(m, format="something-else"),
        "config_text": lambda m: (m / "config.json").write_text("{not json"),
    }
    for name, damage in models.items():
        shutil.copytree(d / "model", d / name)
        damage(d / name)
    (d / "empty_dir").mkdir()
    return d


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x40
    path.write_bytes(bytes(data))


def _edit_config(model, **changes):
    doc = json.loads((model / "config.json").read_text())
    doc.update(changes)
    (model / "config.json").write_text(json.dumps(doc))


# ------------------------------------------------------------------------------------------ the table

# (command line with {d} for the directory above, texts the one error line must contain)
CLI_CASES = {
    # files that cannot be read as CoNLL
    "missing file": ("train --train {d}/nope.txt --out {d}/o --epochs 1", ["nope.txt", "no such file"]),
    "empty file": ("train --train {d}/empty.txt --out {d}/o --epochs 1", ["empty.txt", "no sentences"]),
    "blank lines only": ("train --train {d}/blank.txt --out {d}/o --epochs 1", ["blank.txt", "no sentences"]),
    "binary file": ("train --train {d}/binary.bin --out {d}/o --epochs 1", ["binary.bin:2:", "NUL"]),
    "invalid UTF-8": ("train --train {d}/latin1.txt --out {d}/o --epochs 1", ["latin1.txt:3:", "UTF-8"]),
    "directory as file": ("train --train {d} --out {d}/o --epochs 1", ["is a directory"]),
    "wrong column count": (
        "train --train {d}/columns.txt --out {d}/o --epochs 1",
        ["columns.txt:2:", "columns"],
    ),
    "one column": (
        "train --train {d}/onecolumn.txt --out {d}/o --epochs 1",
        ["onecolumn.txt:1:", "2 columns"],
    ),
    "tag outside the scheme": (
        "train --train {d}/badtag.txt --out {d}/o --epochs 1",
        ["badtag.txt:2:", "I_PER"],
    ),
    "no PER tags": ("train --train {d}/noper.txt --out {d}/o --epochs 1", ["noper.txt", "PER"]),
    "prefix not on every word": (
        "train --train {d}/prefix.txt --strip-prefix en: --out {d}/o --epochs 1",
        ["prefix.txt:3:", "'en:'"],
    ),
    "dev tag never seen": (
        "train --task ner --train {d}/train.txt --dev {d}/dev_unseen.txt --out {d}/o --epochs 1",
        ["dev_unseen.txt:{unseen_line}:", "B-FOO"],
    ),
    "dev file missing": (
        "train --train {d}/train.txt --dev {d}/nope.txt --out {d}/o --epochs 1",
        ["nope.txt"],
    ),
    "tag column out of range": (
        "train --train {d}/train.txt --tag-column 5 --out {d}/o --epochs 1",
        ["train.txt:1:", "tag_column 5"],
    ),
    # embeddings
    "embeddings: wrong dimension": (
        "train --train {d}/train.txt --embeddings {d}/emb_dim.txt --out {d}/o --epochs 1",
        ["emb_dim.txt:1:", "--word-dim"],
    ),
    "embeddings: NaN": (
        "train --train {d}/train.txt --embeddings {d}/emb_nan.txt --word-dim 8 --out {d}/o --epochs 1",
        ["emb_nan.txt:1:", "NaN"],
    ),
    "embeddings: not a number": (
        "train --train {d}/train.txt --embeddings {d}/emb_word.txt --word-dim 8 --out {d}/o --epochs 1",
        ["emb_word.txt:1:", "not a number"],
    ),
    "embeddings: invalid UTF-8": (
        "train --train {d}/train.txt --embeddings {d}/emb_latin1.txt --word-dim 8 --out {d}/o --epochs 1",
        ["emb_latin1.txt:1:", "UTF-8"],
    ),
    "embeddings: empty": (
        "train --train {d}/train.txt --embeddings {d}/emb_empty.txt --out {d}/o --epochs 1",
        ["emb_empty.txt", "no vectors"],
    ),
    "embeddings: missing": (
        "train --train {d}/train.txt --embeddings {d}/nope.vec --out {d}/o --epochs 1",
        ["nope.vec"],
    ),
    # option values
    "negative --hidden": (
        "train --train {d}/train.txt --out {d}/o --epochs 1 --hidden -5",
        ["--hidden", "-5"],
    ),
    "--dropout 1.5": (
        "train --train {d}/train.txt --out {d}/o --epochs 1 --dropout 1.5",
        ["--dropout", "1.5"],
    ),
    "--lr nan": ("train --train {d}/train.txt --out {d}/o --epochs 1 --lr nan", ["--lr", "nan"]),
    "--lr inf": ("train --train {d}/train.txt --out {d}/o --epochs 1 --lr inf", ["--lr", "inf"]),
    "--epochs 0": ("train --train {d}/train.txt --out {d}/o --epochs 0", ["--epochs"]),
    "--batch-size 0": ("train --train {d}/train.txt --out {d}/o --epochs 1 --batch-size 0", ["--batch-size"]),
    "--max-sentences 0": (
        "train --train {d}/train.txt --out {d}/o --epochs 1 --max-sentences 0",
        ["--max-sentences"],
    ),
    "--max-sentences -1": (
        "train --train {d}/train.txt --out {d}/o --epochs 1 --max-sentences -1",
        ["--max-sentences"],
    ),
    "negative --seed": ("train --train {d}/train.txt --out {d}/o --epochs 1 --seed -1", ["--seed"]),
    "--hidden not a number": (
        "train --train {d}/train.txt --out {d}/o --epochs 1 --hidden abc",
        ["--hidden", "abc"],
    ),
    "misspelt option": ("train --train {d}/train.txt --out {d}/o --epochs 1 --hiden 5", ["--hiden"]),
    "bad choice": ("train --train {d}/train.txt --out {d}/o --epochs 1 --task people", ["--task", "people"]),
    "no --train": ("train --out {d}/o --epochs 1", ["--train"]),
    "no --out": ("train --train {d}/train.txt", ["--out"]),
    "--out is a file": ("train --train {d}/train.txt --out {d}/a_file", ["a_file"]),
    "--resume: not a run": ("train --resume {d}/empty_dir", ["run.json"]),
    "--resume: damaged run.json": ("train --resume {d}/run_bad", ["run.json"]),
    "unknown command": ("trian --train x", ["trian"]),
    # model directories
    "model: missing directory": ("tag --model {d}/nope Hello", ["nope"]),
    "model: empty directory": ("tag --model {d}/empty_dir Hello", ["empty_dir", "config.json"]),
    "model: not a directory": ("tag --model {d}/a_file Hello", ["a_file"]),
    "model: weights missing": ("tag --model {d}/no_weights Hello", ["weights.safetensors", "missing"]),
    "model: vocab missing": ("tag --model {d}/no_vocab Hello", ["vocab.json", "missing"]),
    "model: config missing": ("evaluate --model {d}/no_config --data {d}/dev.txt", ["config.json"]),
    "model: truncated weights": ("tag --model {d}/truncated Hello", ["weights.safetensors", "truncated"]),
    "model: corrupted weights": ("tag --model {d}/flipped Hello", ["weights.safetensors", "SHA-256"]),
    "model: newer format": ("tag --model {d}/future Hello", ["config.json", "format_version 99"]),
    "model: another format": ("tag --model {d}/other_format Hello", ["config.json", "something-else"]),
    "model: config not JSON": ("tag --model {d}/config_text Hello", ["config.json"]),
    # evaluate and tag
    "evaluate: data missing": ("evaluate --model {d}/model --data {d}/nope.txt", ["nope.txt"]),
    "evaluate: data binary": ("evaluate --model {d}/model --data {d}/binary.bin", ["binary.bin:2:"]),
    "evaluate: bad tag": ("evaluate --model {d}/model --data {d}/badtag.txt", ["badtag.txt:2:"]),
    "evaluate: output dir missing": (
        "evaluate --model {d}/model --data {d}/dev.txt --output {d}/nope/out.txt",
        ["out.txt"],
    ),
    "tag: empty text": ("tag --model {d}/model ''", ["text", "no words"]),
    "tag: blank text": ("tag --model {d}/model '   ' ''", ["text", "no words"]),
    "tag: input missing": ("tag --model {d}/model --input {d}/nope.txt", ["nope.txt", "no such file"]),
    "tag: input empty": ("tag --model {d}/model --input {d}/empty.txt", ["empty.txt", "no sentences"]),
    "tag: input binary": ("tag --model {d}/model --input {d}/binary.bin", ["binary.bin", "binary"]),
    "tag: input invalid UTF-8": ("tag --model {d}/model --input {d}/latin1.txt", ["latin1.txt:3:", "UTF-8"]),
    "dev sentence over 10,000 words": (
        "train --train {d}/train.txt --dev {d}/long_conll.txt --out {d}/o --epochs 1",
        ["long_conll.txt:3:", "10001"],
    ),
    "evaluate: sentence over 10,000 words": (
        "evaluate --model {d}/model --data {d}/long_conll.txt",
        ["long_conll.txt:3:", "10001"],
    ),
    "tag: sentence over 10,000 words": (
        "tag --model {d}/model --input {d}/long.txt",
        ["long.txt:2:", "10001"],
    ),
    "tag: conll input, wrong columns": (
        "tag --model {d}/model --input {d}/columns.txt --input-format conll",
        ["columns.txt:2:"],
    ),
    "tag: conll input empty": (
        "tag --model {d}/model --input {d}/empty.txt --input-format conll",
        ["empty.txt", "no sentences"],
    ),
    "tag: --threads 0": ("tag --model {d}/model --threads 0 Hello", ["--threads", "0"]),
    "train: --aux with --task ner": (
        "train --train {d}/train.txt --out {d}/o --task ner --aux",
        ["--aux", "only with --task person"],
    ),
    "tag: bad --format": ("tag --model {d}/model --format xml Hello", ["--format", "xml"]),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_bad_input_is_one_line(case, d, capsys):
    command, expected = CLI_CASES[case]
    unseen_line = (d / "unseen_line.txt").read_text()
    argv = shlex.split(command.format(d=d))
    rc, _, err = cli(capsys, argv)
    assert_one_line_error(rc, err, [e.format(unseen_line=unseen_line) for e in expected])


def run_bptt(*argv):
    """Run ``python -m bptt ARGV`` as a process of its own."""
    env = {**os.environ, "PYTHONPATH": SRC}
    cmd = [sys.executable, "-m", "bptt", *map(str, argv)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def test_debug_shows_the_traceback(d, capsys):
    with pytest.raises(BpttError, match="nope.txt"):
        main(["--debug", "train", "--train", str(d / "nope.txt"), "--out", str(d / "o")])
    out = run_bptt("--debug", "tag", "--model", d / "flipped", "Hi")
    assert out.returncode == 1 and "Traceback" in out.stderr and "SHA-256" in out.stderr


def test_a_real_process_exits_2_with_one_line(d):
    out = run_bptt("train", "--train", d / "latin1.txt", "--out", d / "o")
    assert_one_line_error(out.returncode, out.stderr, ["latin1.txt:3:", "UTF-8"])


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"", ["<stdin>", "no sentences"]),  # blank lines are records (tests/test_adversarial.py)
        (b"fine line .\ncaf\xe9 au lait\n", ["<stdin>:2:", "UTF-8"]),
        (b"fine line .\n\x00\x01\n", ["<stdin>:2:", "NUL"]),
    ],
)
def test_tag_bad_stdin(data, expected, d, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    rc, _, err = cli(capsys, ["tag", "--model", str(d / "model")])
    assert_one_line_error(rc, err, expected)


def test_tag_into_a_closed_pipe_is_quiet(d, tmp_path):
    """``bptt tag ... | head -n 1``: the reader goes away; no traceback."""
    (tmp_path / "in.txt").write_text("".join(f"Line {i} about Grace Carter .\n" for i in range(20_000)))
    cmd = [
        sys.executable,
        "-m",
        "bptt",
        "tag",
        "--model",
        str(d / "model"),
        "--input",
        str(tmp_path / "in.txt"),
    ]
    env = {**os.environ, "PYTHONPATH": SRC}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as p:
        assert b"Carter" in p.stdout.readline()
        p.stdout.close()
        err = p.stderr.read()
        assert p.wait(timeout=120) == 141
    assert err == b"", err


# ------------------------------------------------------------------------------------------ the API

T, B, N_X, N_A = 5, 3, 4, 6


def rnn_args(dtype=np.float64):
    rng = np.random.default_rng(0)
    params = {
        "W_ax": rng.standard_normal((N_A, N_X)),
        "W_aa": rng.standard_normal((N_A, N_A)) / 3,
        "b_a": rng.standard_normal(N_A),
        "W_ya": rng.standard_normal((2, N_A)),
        "b_y": rng.standard_normal(2),
    }
    params = {k: v.astype(dtype) for k, v in params.items()}
    return rng.standard_normal((T, B, N_X)).astype(dtype), params


def with_value(x, index, value):
    x = x.copy()
    x[index] = value
    return x


def forward(X=None, a0=None, mask=None, activation="tanh", **change):
    X0, p = rnn_args()
    p.update(change)
    return bptt.rnn_forward(X0 if X is None else X, a0, p, mask=mask, activation=activation)


def backward(dA=None, da_T=None, cache=None):
    X, p = rnn_args()
    A, c = bptt.rnn_forward(X, None, p)
    return bptt.rnn_backward(np.ones_like(A) if dA is None else dA, c if cache is None else cache, da_T)


def loss(Y=None, output="sigmoid", reduction="sum", **change):
    X, p = rnn_args()
    p.update(change)
    if Y is None:
        Y = np.zeros((T, B, 2)) if output == "sigmoid" else np.zeros((T, B), dtype=np.int64)
    return bptt.sequence_loss(p, X, Y, output=output, reduction=reduction)


def head(A=None, **change):
    _, p = rnn_args()
    p.update(change)
    return bptt.output_forward(np.zeros((T, B, N_A)) if A is None else A, p)


def head_back(dZ_y=None, A=None):
    _, p = rnn_args()
    A = np.zeros((T, B, N_A)) if A is None else A
    return bptt.output_backward(np.zeros((T, B, 2)) if dZ_y is None else dZ_y, A, p)


def losses(Z_y=None, Y=None, output="softmax", mask=None):
    Z_y = np.zeros((T, B, 3)) if Z_y is None else Z_y
    Y = np.zeros((T, B), dtype=np.int64) if Y is None else Y
    return bptt.step_losses(Z_y, Y, output, mask)


def step(x_t=None, a_prev=None, **change):
    X, p = rnn_args()
    p.update(change)
    a_prev = np.zeros((B, N_A)) if a_prev is None else a_prev
    return bptt.rnn_step_forward(X[0] if x_t is None else x_t, a_prev, p)


def step_back(da_t=None, cache=None):
    a_t, c = step()
    return bptt.rnn_step_backward(np.ones_like(a_t) if da_t is None else da_t, c if cache is None else cache)


def check(fun=None, arrays=None, **kw):
    arrays = {"w": np.ones(3)} if arrays is None else arrays
    fun = (lambda a: (float((a["w"] ** 2).sum()), {"w": 2 * a["w"]})) if fun is None else fun
    return bptt.gradcheck(fun, arrays, **kw)


def tiny_tagger():
    from bptt.models.tagger import Tagger
    from bptt.models.tagger_network import TaggerConfig, init_tagger_params
    from bptt.models.vocab import Vocab

    cfg = TaggerConfig(word_dim=4, case_dim=2, char_dim=2, char_hidden=2, hidden=3)
    vocab = Vocab.build([["John", "Smith", "went", "home"]])
    return Tagger(init_tagger_params(cfg, len(vocab.words), len(vocab.chars)), cfg, vocab)


X64, P64 = rnn_args()

# name -> (a call that must raise BpttError, texts its message must contain)
API_CASES = {
    "rnn_forward: X of 2 dimensions": (lambda: forward(X=X64[0]), ["X", "3 dimensions"]),
    "rnn_forward: X a list": (lambda: forward(X=X64.tolist()), ["X", "array"]),
    "rnn_forward: X of ints": (lambda: forward(X=np.ones((T, B, N_X), dtype=np.int64)), ["X", "floating"]),
    "rnn_forward: NaN in X": (lambda: forward(X=with_value(X64, (2, 1, 0), np.nan)), ["X", "NaN"]),
    "rnn_forward: Inf in X": (lambda: forward(X=with_value(X64, (0, 0, 0), np.inf)), ["X", "Inf"]),
    "rnn_forward: X float32, params float64": (lambda: forward(X=X64.astype(np.float32)), ["X", "dtype"]),
    "rnn_forward: no steps": (lambda: forward(X=X64[:0]), ["X", "empty"]),
    "rnn_forward: a0 of the wrong size": (lambda: forward(a0=np.zeros((B, N_A + 1))), ["a0", "n_a"]),
    "rnn_forward: NaN in a0": (lambda: forward(a0=np.full((B, N_A), np.nan)), ["a0", "NaN"]),
    "rnn_forward: a parameter missing": (
        lambda: bptt.rnn_forward(X64, None, {"W_ax": P64["W_ax"]}),
        ["params", "W_aa"],
    ),
    "rnn_forward: params not a dict": (lambda: bptt.rnn_forward(X64, None, [1, 2]), ["params", "dict"]),
    "rnn_forward: W_aa not square": (lambda: forward(W_aa=np.zeros((N_A, N_A + 1))), ["W_aa"]),
    "rnn_forward: NaN in W_ax": (
        lambda: forward(W_ax=with_value(P64["W_ax"], (0, 0), np.nan)),
        ["W_ax", "NaN"],
    ),
    "rnn_forward: mask of the wrong shape": (lambda: forward(mask=np.ones((T, B + 1))), ["mask", "B"]),
    "rnn_forward: mask not 0/1": (lambda: forward(mask=np.full((T, B), 2)), ["mask", "0/1"]),
    "rnn_forward: unknown activation": (lambda: forward(activation="sigmoid"), ["activation", "sigmoid"]),
    "rnn_backward: dA of the wrong shape": (lambda: backward(dA=np.zeros((T, B, N_A + 1))), ["dA", "n_a"]),
    "rnn_backward: NaN in dA": (lambda: backward(dA=np.full((T, B, N_A), np.nan)), ["dA", "NaN"]),
    "rnn_backward: da_T of the wrong shape": (lambda: backward(da_T=np.zeros((B + 1, N_A))), ["da_T", "B"]),
    "rnn_backward: cache not from rnn_forward": (lambda: backward(cache=(1, 2)), ["cache"]),
    "rnn_step_forward: x_t of the wrong size": (lambda: step(x_t=np.zeros((B, N_X + 1))), ["x_t", "n_x"]),
    "rnn_step_forward: a_prev of 3 dimensions": (lambda: step(a_prev=np.zeros((1, B, N_A))), ["a_prev"]),
    "rnn_step_forward: NaN in x_t": (lambda: step(x_t=np.full((B, N_X), np.nan)), ["x_t", "NaN"]),
    "rnn_step_backward: da_t of the wrong size": (lambda: step_back(da_t=np.zeros((B, 1))), ["da_t"]),
    "rnn_step_backward: cache not from rnn_step_forward": (lambda: step_back(cache="x"), ["cache_t"]),
    "sequence_loss: class id out of range": (
        lambda: loss(Y=np.full((T, B), 2), output="softmax"),
        ["Y", "class ids"],
    ),
    "sequence_loss: float class ids": (lambda: loss(Y=np.zeros((T, B)), output="softmax"), ["Y", "integer"]),
    "sequence_loss: labels not 0/1": (lambda: loss(Y=np.full((T, B, 2), 0.5)), ["Y", "0 or 1"]),
    "sequence_loss: labels of the wrong shape": (lambda: loss(Y=np.zeros((T + 1, B, 2))), ["Y", "T"]),
    "sequence_loss: unknown reduction": (lambda: loss(reduction="avg"), ["reduction", "avg"]),
    "sequence_loss: unknown output": (lambda: loss(output="tanh"), ["output", "tanh"]),
    "sequence_loss: W_ya of the wrong width": (lambda: loss(W_ya=np.zeros((2, N_A + 1))), ["W_ya", "n_a"]),
    "sequence_loss: NaN in b_y": (lambda: loss(b_y=np.array([0.0, np.nan])), ["b_y", "NaN"]),
    "output_forward: A of 2 dimensions": (lambda: head(A=np.zeros((T, N_A))), ["A", "3 dimensions"]),
    "output_forward: NaN in A": (lambda: head(A=np.full((T, B, N_A), np.nan)), ["A", "NaN"]),
    "output_forward: b_y missing": (lambda: head(b_y=None), ["b_y"]),
    "output_forward: b_y of the wrong size": (lambda: head(b_y=np.zeros(3)), ["b_y", "n_y"]),
    "output_forward: params not a dict": (lambda: bptt.output_forward(np.zeros((T, B, N_A)), 3), ["params"]),
    "output_backward: dZ_y of the wrong shape": (lambda: head_back(dZ_y=np.zeros((T, B + 1, 2))), ["dZ_y"]),
    "output_backward: A of the wrong width": (
        lambda: head_back(A=np.zeros((T, B, N_A + 1))),
        ["W_ya", "n_a"],
    ),
    "step_losses: Z_y of 2 dimensions": (lambda: losses(Z_y=np.zeros((T, 3))), ["Z_y"]),
    "step_losses: mask of the wrong shape": (lambda: losses(mask=np.ones((T, B + 1), bool)), ["mask", "B"]),
    "step_losses: class id out of range": (lambda: losses(Y=np.full((T, B), 3)), ["Y", "class ids"]),
    "step_losses: unknown output": (lambda: losses(output="relu"), ["output"]),
    "gradcheck: fun not callable": (lambda: check(fun=3), ["fun"]),
    "gradcheck: arrays not a dict": (lambda: check(arrays=[np.ones(3)]), ["arrays"]),
    "gradcheck: gradient of the wrong shape": (
        lambda: check(fun=lambda a: (0.0, {"w": np.ones(4)})),
        ["grads['w']", "shape"],
    ),
    "gradcheck: NaN in arrays": (
        lambda: check(arrays={"w": np.array([1.0, np.nan])}),
        ["arrays['w']", "NaN"],
    ),
    "gradcheck: eps not positive": (lambda: check(eps=0.0), ["eps"]),
    "gradcheck: fun returns no pair": (lambda: check(fun=lambda a: 1.0), ["fun"]),
    "init_params: negative n_a": (lambda: bptt.init_params(3, -1, 2), ["n_a", "-1"]),
    "init_params: n_x not an int": (lambda: bptt.init_params(2.5, 4, 2), ["n_x", "2.5"]),
    "read_conll: path not a path": (lambda: bptt.read_conll(123), ["path"]),
    "read_conll: tag_column not an int": (lambda: bptt.read_conll(__file__, tag_column="x"), ["tag_column"]),
    "to_iob2: unknown scheme": (lambda: bptt.io.conll.to_iob2(["O"], "BIO"), ["scheme", "BIO"]),
    "to_iob2: invalid tag": (lambda: bptt.io.conll.to_iob2(["O", "Q-PER"], "IOB2"), ["tags[1]", "Q-PER"]),
    "evaluate: lengths differ": (lambda: bptt.evaluate([["O"]], [["O", "O"]]), ["sentence 0", "1 tags", "2"]),
    "Tagger.predict: empty sentence": (
        lambda: tiny_tagger().predict([["Hi"], []]),
        ["sentences[1]", "empty"],
    ),
    "Tagger.predict: 10,001 words": (
        lambda: tiny_tagger().predict([["word"] * 10_001]),
        ["sentences[0]", "10001"],
    ),
    "load_tagger: no directory": (
        lambda: bptt.models.tagger.load_tagger("/nonexistent/model"),
        ["/nonexistent/model"],
    ),
    # parameters, labels and arrays that used to raise from deep inside NumPy, or pass silently
    "sequence_loss: params with an unknown key": (
        lambda: loss(W_yb=np.zeros((2, N_A))),
        ["params", "'W_yb'"],
    ),
    "sequence_loss: W_ya float32, the cell float64": (
        lambda: loss(W_ya=P64["W_ya"].astype(np.float32)),
        ["W_ya", "float32"],
    ),
    "sequence_loss: params not a dict": (
        lambda: bptt.sequence_loss(list(P64.values()), X64, np.zeros((T, B))),
        ["params", "dict"],
    ),
    "sequence_loss: Y a list": (lambda: loss(Y=np.zeros((T, B, 2)).tolist()), ["Y", "array"]),
    "sequence_loss: Y of objects": (lambda: loss(Y=np.zeros((T, B, 2), dtype=object)), ["Y", "object"]),
    "truncated_sequence_loss: params with an unknown key": (
        lambda: bptt.truncated_sequence_loss({**P64, "x": np.ones(1)}, X64, np.zeros((T, B, 2)), k1=2, k2=2),
        ["params", "'x'"],
    ),
    "rnn_forward: X big-endian": (
        lambda: forward(X=X64.astype(">f8"), **{k: v.astype(">f8") for k, v in P64.items()}),
        ["W_aa", "byte order", ".astype("],
    ),
    "params_from_torch: an RNN's state as a GRU's": (
        lambda: bptt.params_from_torch(bptt.params_to_torch(P64), cell="gru"),
        ["weight_hh_l0", "GRU"],
    ),
    "params_from_torch: biases of two sizes": (
        lambda: bptt.params_from_torch({**bptt.params_to_torch(P64), "bias_hh_l0": np.zeros(2)}),
        ["bias_hh_l0"],
    ),
    "to_torch: layers of mismatched sizes": (
        lambda: bptt.to_torch([P64, P64], cell="rnn"),
        ["layers[1]['W_ax']", "n_x"],
    ),
    "to_torch: layers None": (lambda: bptt.to_torch(None), ["layers"]),
    "from_torch: a list": (lambda: bptt.from_torch([1, 2], cell="rnn"), ["module"]),
    "SGD.step: a gradient that would broadcast": (
        lambda: bptt.SGD(lr=0.1).step({"b": np.ones(3)}, {"b": np.ones(1)}),
        ["grads['b']", "(1,)", "(3,)"],
    ),
    "Adam.step: a gradient without a parameter": (
        lambda: bptt.Adam().step({"b": np.ones(3)}, {"c": np.ones(3)}),
        ["grads['c']"],
    ),
    "Adam: negative learning rate": (lambda: bptt.Adam(lr=-1), ["lr", "-1"]),
    "SGD: NaN momentum": (lambda: bptt.SGD(momentum=float("nan")), ["momentum"]),
    "clip_grad_norm: negative max_norm": (lambda: bptt.clip_grad_norm({"b": np.ones(3)}, -1.0), ["max_norm"]),
    "clip_grad_norm: grads a list": (lambda: bptt.clip_grad_norm([np.ones(3)], 1.0), ["grads"]),
    "gradcheck: eps a string": (lambda: check(eps="1e-6"), ["eps"]),
    "gradcheck: negative max_elements": (lambda: check(max_elements=-1), ["max_elements"]),
    "gradcheck: complex arrays": (lambda: check(arrays={"w": np.ones(3, dtype=complex)}), ["arrays['w']"]),
    "gradcheck: L not a number": (
        lambda: check(fun=lambda a: (a["w"], {"w": np.ones(3)})),
        ["fun", "L"],
    ),
    "evaluate: no sequences": (lambda: bptt.evaluate(None, [["O"]]), ["gold_seqs", "NoneType"]),
    "load_safetensors: no path": (lambda: bptt.load_safetensors(None), ["path", "NoneType"]),
    "save_safetensors: no path": (lambda: bptt.save_safetensors(None, {"a": np.zeros(2)}), ["path"]),
    "Tagger.predict: a sentence that is a string": (lambda: tiny_tagger().predict(["Hi"]), ["sentences[0]"]),
    "Tagger.predict: a word that is not a string": (
        lambda: tiny_tagger().predict([["Hi", 3]]),
        ["sentences[0]"],
    ),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_api_bad_input_raises_bptt_error(case):
    call, expected = API_CASES[case]
    with pytest.raises(BpttError) as e:
        call()
    message = str(e.value)
    assert "\n" not in message
    for text in expected:
        assert text in message, (text, message)


def test_the_table_is_large_enough():
    assert len(CLI_CASES) >= 30 and len(API_CASES) >= 30


def test_step_losses_passes_non_finite_logits_through():
    """Not an error: the trainer sees the non-finite loss and skips the step."""
    L_t, dZ = bptt.step_losses(np.full((T, B, 3), np.nan), np.zeros((T, B), dtype=np.int64), "softmax")
    assert np.isnan(L_t).all() and np.isnan(dZ).all()


def test_lm_text_that_is_binary_is_named_a_text_file(tmp_path):
    from bptt.lm.corpus import read_corpus

    (tmp_path / "notes.txt").write_bytes(b"fine\n\x00\x01\n")
    with pytest.raises(BpttError, match=r"notes.txt:2: NUL byte: binary content, not a text file$"):
        read_corpus(texts=[tmp_path / "notes.txt"])


@pytest.mark.parametrize("temperature", [1e-40, 1e-320, 5e-324])
def test_a_tiny_sampling_temperature_draws_greedily(temperature):
    """Below float32's smallest number, z / temperature was inf - inf: NaN probabilities, and the
    unknown symbol written for every character."""
    from bptt.lm.corpus import Alphabet
    from bptt.lm.model import LanguageModel
    from bptt.lm.network import init_lm

    a = Alphabet.of("abcd\n")
    p = init_lm("rnn", len(a), 5, dtype=np.float32)
    p["b_y"][:] = np.arange(len(a), dtype=np.float32)  # "d", the last character, is the likeliest
    model = LanguageModel(p, "rnn", a, "stream")
    with np.errstate(divide="raise", invalid="raise"):  # no 0 / 0, no inf - inf
        got = model.sample(2, 6, temperature, "a", np.random.default_rng(0))
    greedy = model.sample(2, 6, 1e-6, "a", np.random.default_rng(1))
    assert got == greedy and all(len(s) == 7 and "\ufffd" not in s for s in got)
    with pytest.raises(BpttError, match="--temperature: expected a finite number > 0, got inf"):
        model.sample(1, 6, float("inf"))


# ------------------------------------------------------------------------------ edge cases that work


@pytest.mark.slow
def test_one_word_sentences_train_evaluate_and_tag(d, tmp_path, capsys):
    from bptt.io.conll import Sentence

    corpus = [Sentence([w], [t], 0) for s in make_corpus(80, seed=4) for w, t in zip(s.words, s.tags)]
    one, m = tmp_path / "one.txt", tmp_path / "m"
    write_conll(one, corpus[:600])
    ok("train", "--train", one, "--dev", one, "--out", m, "--epochs", 2, "--max-sentences", 400, *MINI)
    capsys.readouterr()
    ok("evaluate", "--model", m, "--data", one)
    assert "600 sentences, 600 words" in capsys.readouterr().out
    ok("tag", "--model", m, "--format", "json", "Hello", "Grace", ".")
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["words"] for r in rows] == [["Hello"], ["Grace"], ["."]]
    assert all(len(r["tags"]) == 1 for r in rows)


@pytest.mark.slow
def test_a_10000_word_sentence_trains_and_tags(d, tmp_path, capsys):
    from bptt.io.conll import Sentence
    from bptt.models.tagger import load_tagger

    corpus = make_corpus(1000, seed=5)
    words, tags = [w for s in corpus for w in s.words], [t for s in corpus for t in s.tags]
    long = Sentence(words[:10_000], tags[:10_000], 0)
    assert len(long.words) == 10_000
    train, m = tmp_path / "long.txt", tmp_path / "m"
    write_conll(train, [*make_corpus(30, seed=6), long])
    ok("train", "--train", train, "--out", m, "--epochs", 1, "--batch-size", 8, *MINI)
    log = json.loads((m / "log.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(log["train_loss"]) and log["skipped_steps"] == 0
    # the long sentence tags to one tag per word, the same alone as batched with short ones
    short = make_corpus(2, seed=7)
    mixed = tmp_path / "in.txt"
    write_conll(mixed, [short[0], long, short[1]])
    capsys.readouterr()
    ok("tag", "--model", d / "model", "--input", mixed, "--input-format", "conll", "--format", "json")
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["words"] for r in rows] == [short[0].words, long.words, short[1].words]
    tagger = load_tagger(d / "model")
    assert rows[1]["tags"] == tagger.output_tags(tagger.predict([long.words])[0])
    # as a line of text, given as an argument
    text = " ".join(w for w in long.words if w.isalpha())
    text = " ".join((text.split() * 2)[:10_000])
    ok("tag", "--model", d / "model", "--format", "conll", text)
    assert len(capsys.readouterr().out.strip().splitlines()) == 10_000


@pytest.mark.parametrize("kind", ["lm.json", "dates.json", "longrange.json"])
def test_another_commands_model_where_a_tagger_is_expected_is_named(kind, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / kind).write_text("{}")
    (run / "log.jsonl").write_text("")
    for argv in (["tag", "--model", run, "Hi"], ["gradflow", "--model", run, "--out", tmp_path / "g.png"]):
        message = error_line(capsys, *argv)
        assert message.startswith(f"{run}: ") and message.endswith("not a tagger of bptt train"), message


def test_the_output_functions_take_lists_as_numpy_does():
    np.testing.assert_allclose(bptt.sigmoid([0.0, 100.0]), [0.5, 1.0])
    np.testing.assert_allclose(bptt.softmax([[0.0, 0.0]]), [[0.5, 0.5]])
    from bptt.io.text import detokenize

    with pytest.raises(TypeError, match="^words: expected a list of words"):
        detokenize(None)
    with pytest.raises(TypeError, match="not a string$"):
        detokenize(["a", 1])
