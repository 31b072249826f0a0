"""``bptt dates train`` / ``bptt dates convert``: the run's files, resume after a fault, conversion that
keeps its output aligned with its input, bad input."""

import json

import numpy as np
import pytest

from bptt.cli import main
from bptt.cli.dates import convert_lines
from bptt.seq2seq.dates import DateModel, load_date_model
from tests.helpers import error_line, png_ok, run_with_fault

TINY = ["--hidden", "8", "--attention-units", "4", "--batch-size", "8", "--eval-every", "5",
        "--valid-size", "20",
        "--test-size", "20", "--beam", "2", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("dates") / "run"
    assert main(["dates", "train", "--updates", "12", "--out", str(out), *TINY]) == 0
    return out


def test_a_run_writes_its_model_results_and_report(trained):
    result = json.loads((trained / "result.json").read_text())
    assert result["updates"] == 12 and result["stopped"] == "updates"
    for part in ("seen_formats", "held_out_formats"):
        t = result["test"][part]
        assert t["n"] == 20 and 0 <= t["exact_greedy"] <= 1 and 0 <= t["exact_beam"] <= 1
    assert set(result["test"]["held_out_formats"]["per_format"]) == {
        "the_dth_of_month_yy_lower", "dd_mon_yy_dash_lower", "month_d_yyyy_upper", "yyyy_mm_dd_slash",
    }  # fmt: skip
    log = [json.loads(line) for line in (trained / "log.jsonl").read_text().splitlines()]
    assert [r["updates"] for r in log] == [0, 5, 10, 12]
    png_ok(trained / "attention-maps.png")
    assert (trained / "report.html").read_text().count("data:image/png;base64,") == 2
    model = load_date_model(trained)
    assert model.net.attention and model.net.n_e == 8


def test_graph_of_the_encoder_decoder_over_a_date(trained, tmp_path):
    trace = load_date_model(trained).trace("3 May 1979")
    assert trace["source"] == list("3 May 1979") and len(trace["outputs"]) == len(trace["p"])
    alphas = np.asarray(trace["alphas"])
    np.testing.assert_allclose(alphas.sum(axis=1), 1, atol=1e-5)  # each output step reads the source once
    assert all(v > 0 for v in trace["encoder_messages"] + trace["decoder_messages"])
    picture = tmp_path / "dates.png"
    assert main(["graph", "--dates", str(trained), "3 May 1979", "--out", str(picture)]) == 0
    png_ok(picture)


def test_convert_keeps_the_output_aligned_and_names_bad_lines(trained, tmp_path, capsys):
    f = tmp_path / "in.txt"
    lines = [
        b"3 May 1979",
        b"",
        b"zebra 12",
        b"x" * 50,
        b"\xff\xfe bad",
        b"a" * 5000,
        b"1 May\x00 1979",
        b"5/30/09",
    ]
    f.write_bytes(b"\n".join(lines) + b"\n")
    capsys.readouterr()
    rc = main(["dates", "convert", "--model", str(trained), "--input", str(f)])
    out, err = capsys.readouterr()
    got = out.split("\n")
    assert len(got) == len(lines) + 1 and got[-1] == ""  # one answer a line, in order
    assert got[1:7] == [""] * 6
    for want in (":2: empty date", ":3: 'z': no date format", ":4: date too long",
                 ":5: invalid UTF-8 (byte 0xff", ":6: line over 4096 bytes", ":7: '\\x00'"):  # fmt: skip
        assert f"{f}{want}" in err, (want, err)
    assert rc == 1


def test_convert_of_an_input_without_a_line_is_an_error(trained, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert error_line(capsys, "dates", "convert", "--model", trained, "--input", empty) == (
        f"{empty}: no dates to convert (empty input)"
    )
    assert capsys.readouterr().out == ""


class Fixed(DateModel):
    """A model that writes what it is told to (to test what convert does with any output)."""

    def __init__(self, outputs):
        self.outputs = outputs

    def convert(self, texts, beam=1):
        return [self.outputs[t] for t in texts]


def test_convert_refuses_outputs_that_are_no_calendar_date():
    model = Fixed({"3 May 1979": "1979-05-03", "30 Feb 1979": "1979-02-30", "1 May 1979": "1979-05"})
    got = convert_lines(model, [(1, "3 May 1979"), (2, " 30 Feb 1979 "), (3, "1 May 1979")], beam=1)
    assert got[0] == ("1979-05-03", None)
    assert got[1][0] == "" and "no calendar date" in got[1][1] and "'1979-02-30'" in got[1][1]
    assert got[2][0] == "" and "'1979-05'" in got[2][1]


def test_sigterm_then_resume_is_bit_identical(tmp_path, monkeypatch):
    argv = ["dates", "train", "--updates", "9", *TINY]
    assert main([*argv, "--out", str(tmp_path / "ref")]) == 0
    out = tmp_path / "run"
    assert run_with_fault(monkeypatch, [*argv, "--out", str(out)], "SIGTERM@dates:step:7") == 143
    assert not (out / "weights.safetensors").exists()
    assert main(["dates", "train", "--resume", str(out), "--quiet"]) == 0
    ref = tmp_path / "ref"
    assert (ref / "weights.safetensors").read_bytes() == (out / "weights.safetensors").read_bytes()
    a, b = (json.loads((d / "result.json").read_text()) for d in (ref, out))
    assert a["test"] == b["test"] and a["updates"] == b["updates"] == 9


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--time-budget", "0"], ["--time-budget", "more than 0"]),
        (["--hidden", "0"], ["--hidden", "expected an integer"]),
        (["--cell", "transformer"], ["--cell", "invalid choice"]),
        (["--beam", "0"], ["--beam", "expected an integer"]),
        (["--lr", "-1"], ["--lr", "expected a number"]),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, extra, words):
    message = error_line(
        capsys, "dates", "train", "--out", tmp_path / "out", "--updates", "3", "--quiet", *extra
    )
    for w in words:
        assert w in message, message
    assert not (tmp_path / "out").exists()


def test_no_overwrite_and_bad_models(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert "holds files" in error_line(capsys, "dates", "train", "--out", out, "--updates", "2")
    assert "--out: required" in error_line(capsys, "dates", "train", "--updates", "2")
    assert "no such file" in error_line(capsys, "dates", "convert", "--model", tmp_path / "none")
    bad = tmp_path / "bad.safetensors"
    from bptt.io.safetensors_io import save_safetensors

    save_safetensors(bad, {"W": np.zeros(2, np.float32)}, {"format": "something"})
    assert "not a model of bptt dates train" in error_line(capsys, "dates", "convert", "--model", bad)


def test_a_damaged_model_file_is_refused_not_used(trained, tmp_path, capsys):
    """The weights check themselves (tensors_sha256): a flipped bit is one line, not slightly wrong dates."""
    raw = (trained / "weights.safetensors").read_bytes()
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    message = error_line(capsys, "dates", "convert", "--model", damaged)
    assert "damaged.safetensors" in message and "damaged" in message.split(":", 1)[1]


def test_graph_of_a_date_with_characters_no_format_uses_is_refused(trained, tmp_path, capsys):
    message = error_line(capsys, "graph", "--dates", trained, "3 May ###", "--out", tmp_path / "g.png")
    assert message.startswith("sentence: '#': no date format uses these characters")
    assert not (tmp_path / "g.png").exists()
