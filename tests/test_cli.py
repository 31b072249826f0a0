"""The command line end to end on a slice of CoNLL-2003: train, evaluate, tag, resume."""

import json
import subprocess
import sys

import numpy as np
import pytest

from bptt.cli import COMMANDS, main
from bptt.models.metrics import evaluate
from tests.conftest import data_file
from tests.helpers import TINY, write_slice

pytestmark = pytest.mark.slow  # end to end: trains a model and runs every command on it


@pytest.fixture(scope="module")
def conll_slice(tmp_path_factory):
    d = tmp_path_factory.mktemp("conll")
    write_slice(data_file("conll2003", "eng.train"), d / "train.txt", 1500)
    dev = write_slice(data_file("conll2003", "eng.testa"), d / "dev.txt", 300)
    return d, dev


@pytest.fixture(scope="module")
def person_model(conll_slice):
    d, _ = conll_slice
    out = d / "person"
    rc = main(
        [
            "train",
            "--train",
            str(d / "train.txt"),
            "--dev",
            str(d / "dev.txt"),
            "--task",
            "person",
            "--out",
            str(out),
            "--epochs",
            "4",
            "--seed",
            "3",
            *TINY,
        ]
    )
    assert rc == 0
    return out


def test_every_command_has_help_with_examples(capsys):
    for name in COMMANDS:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
        assert "examples:" in capsys.readouterr().out, name


def test_train_writes_the_run_directory(person_model):
    for name in (
        "config.json",
        "vocab.json",
        "weights.safetensors",
        "log.jsonl",
        "run.json",
        "sample.json",
        "loss.png",
    ):
        assert (person_model / name).stat().st_size > 0, name
    records = [json.loads(line) for line in (person_model / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert records[-1]["train_loss"] < records[0]["train_loss"]  # the loss falls
    assert all(len(r["message_norms"]) > 10 for r in records)


def title_case_baseline(sentences):
    """Every capitalised word after the first is a name: a trivial rule to beat."""
    out = []
    for s in sentences:
        on = [i > 0 and w[:1].isupper() and w[1:].islower() for i, w in enumerate(s.words)]
        out.append([("I-PER" if i and on[i - 1] else "B-PER") if o else "O" for i, o in enumerate(on)])
    return out


def test_model_beats_a_trivial_baseline(person_model, conll_slice, capsys):
    d, dev = conll_slice
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(person_model),
                "--data",
                str(d / "dev.txt"),
                "--output",
                str(d / "dev.pred"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "PER" in printed and "token level" in printed
    # the --output file: word gold predicted, scored by us and by seqeval identically
    lines = [line.split() for line in (d / "dev.pred").read_text().split("\n")]
    gold, pred, g, p = [], [], [], []
    for parts in lines:
        if not parts:
            if g:
                gold.append(g)
                pred.append(p)
            g, p = [], []
            continue
        assert len(parts) == 3
        g.append(parts[1])
        p.append(parts[2])
    assert len(gold) == len(dev)
    ours = evaluate(gold, pred)
    seqeval = pytest.importorskip("seqeval.metrics")
    assert ours.f1 == pytest.approx(100 * seqeval.f1_score(gold, pred), abs=1e-9)
    assert f"{ours.f1:.2f}" in printed
    from bptt import load_tagger
    from bptt.models.metrics import unseen_span

    unseen = evaluate(gold, pred, keep=unseen_span([s.words for s in dev], load_tagger(person_model).vocab))
    assert 0 < unseen.gold < ours.gold  # the slice's dev file has names the training slice lacks
    line = next(x for x in printed.splitlines() if x.startswith("unseen names"))
    assert f"{unseen.gold} of {ours.gold} gold" in line and f"FB1: {unseen.f1:6.2f}" in line
    from bptt.io.conll import to_iob2
    from bptt.training import person_only

    base = evaluate([person_only(to_iob2(s.tags, "IOB1")) for s in dev], title_case_baseline(dev))
    assert ours.f1 > base.f1 + 10, (ours.f1, base.f1)


def test_tag_formats(person_model, tmp_path, capsys):
    sentence = "Yesterday John Smith met Mary Jones in Paris."
    assert main(["tag", "--model", str(person_model), sentence]) == 0
    inline = capsys.readouterr().out.strip()  # the text as it is, entities bracketed in it
    assert inline.replace("[", "").replace("]PER", "") == sentence
    assert main(["tag", "--model", str(person_model), "--format", "json", sentence, "Hello world ."]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["words"][-2:] for r in rows] == [["Paris", "."], ["world", "."]]
    for r, text in zip(rows, [sentence, "Hello world ."]):
        assert len(r["tags"]) == len(r["words"]) == len(r["offsets"])
        for e in r["entities"]:
            assert e["type"] == "PER" and e["text"] == text[e["char_start"] : e["char_end"]]
            assert e["text"] == " ".join(r["words"][e["start"] : e["end"]])  # single spaces here
    f = tmp_path / "in.txt"
    f.write_text("One line here .\n\nAnother line .\n")
    assert main(["tag", "--model", str(person_model), "--input", str(f), "--format", "conll"]) == 0
    lines = capsys.readouterr().out.split("\n")  # a blank line ends each input line's words, blank or not
    assert [len(w.split()) for w in lines] == [2, 2, 2, 2, 0, 0, 2, 2, 2, 0, 0]


def test_tag_reads_stdin_streaming(person_model):
    text = "".join(f"Sentence number {i} mentions Alice Walker .\n" for i in range(3000))
    out = subprocess.run(
        [sys.executable, "-m", "bptt", "tag", "--model", str(person_model)],
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 3000


def test_resume_gives_a_bit_identical_model(conll_slice, tmp_path, monkeypatch):
    from bptt.io.safetensors_io import load_safetensors
    from bptt.training import Trainer

    d, _ = conll_slice
    args = [
        "train",
        "--train",
        str(d / "train.txt"),
        "--dev",
        str(d / "dev.txt"),
        "--epochs",
        "3",
        "--max-sentences",
        "400",
        "--patience",
        "10",
        *TINY,
    ]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    # the same run, interrupted right after the checkpoint of epoch 1, then resumed
    real = Trainer.save_checkpoint

    def interrupt_after_first(self):
        real(self)
        if self.epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save_checkpoint", interrupt_after_first)
    assert main([*args, "--out", str(tmp_path / "b")]) == 130
    monkeypatch.setattr(Trainer, "save_checkpoint", real)
    assert main(["train", "--resume", str(tmp_path / "b"), "--quiet"]) == 0
    wa, _ = load_safetensors(tmp_path / "a" / "weights.safetensors")
    wb, _ = load_safetensors(tmp_path / "b" / "weights.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    log_a = [json.loads(x)["train_loss"] for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    log_b = [json.loads(x)["train_loss"] for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert log_a == log_b
