"""Pictures: the unrolled graph, gradient flow and curves are written, legible and non-blank."""

import json

import numpy as np
import pytest

import bptt
from bptt.cli import main
from bptt.pictures.plots import (
    draw_unrolled_graph,
    percent_factor,
    plot_curves,
    plot_f1,
    plot_gradient_flow,
    plot_loss,
    trace_from_params,
)
from tests.conftest import make_params
from tests.helpers import fake_log, png_ok, svg_texts

WORDS = "Harry Potter and Hermione Granger invented a new spell .".split()


def make_trace(words=WORDS, gold=True):
    T = len(words)
    rng = np.random.default_rng(0)
    return {
        "words": words,
        "y_hat": rng.uniform(size=T).tolist(),
        "predicted": ["PER" if i % 3 == 0 else "O" for i in range(T)],
        "gold": ["PER" if i % 2 == 0 else "O" for i in range(T)] if gold else None,
        "L_t": rng.uniform(0, 2, size=T).tolist() if gold else None,
        "message_norms": np.geomspace(1e-4, 2, T).tolist(),
        "title": "test <&> trace",
    }


@pytest.mark.slow
def test_unrolled_graph_png_and_svg(tmp_path):
    trace = make_trace(WORDS + ["$5", "<tag>&"])  # mathtext and markup must come out verbatim
    w, h = png_ok(draw_unrolled_graph(trace, tmp_path / "g.png"), 1200, 700)
    texts = svg_texts(draw_unrolled_graph(trace, tmp_path / "g.svg"))
    for word in trace["words"]:
        assert word in texts
    assert "a⟨1⟩" in texts and "a⟨12⟩" in texts and "gold PER" in texts
    assert any("test <&> trace" in t for t in texts)
    # the width grows with the sentence; a short one still gets a readable canvas
    w3, h3 = png_ok(draw_unrolled_graph(make_trace(WORDS[:3], gold=False), tmp_path / "g3.png"), 900, 700)
    assert w > 1.3 * w3 and abs(h - h3) < 0.2 * h


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_unrolled_graph_of_a_gated_cell(tmp_path, cell):
    """The legend gives the cell's equations; an LSTM's trace adds the lane of c⟨t⟩, coloured by ‖∂L/∂c‖."""
    T = len(WORDS)
    c_norms = np.geomspace(1e-3, 5, T).tolist() if cell == "lstm" else None  # beyond a's range: one scale
    trace = {**make_trace(), "cell": cell, "cell_message_norms": c_norms}
    png_ok(draw_unrolled_graph(trace, tmp_path / "g.png"), 1200, 700)
    texts = svg_texts(draw_unrolled_graph(trace, tmp_path / "g.svg"))
    assert "a⟨10⟩" in texts and any(f"{cell.upper()}(a⟨t−1⟩" in t for t in texts)
    assert ("c⟨10⟩" in texts and "c⟨0⟩" in texts) == (cell == "lstm")
    if cell == "lstm":
        assert "5.00" in texts and any("‖∂L/∂c⟨t⟩‖" in t for t in texts)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_trace_from_params_of_a_gated_cell(cell):
    rng = np.random.default_rng(0)
    p = bptt.init_params(4, 5, 1, cell=cell, dtype=np.float64)
    X, Y = rng.standard_normal((6, 4)), rng.integers(0, 2, size=6)
    trace = trace_from_params(p, WORDS[:6], X, Y, cell=cell)
    led = bptt.ledger(p, X[:, None], Y[:, None].astype(float), cell=cell)
    assert trace["cell"] == cell
    np.testing.assert_allclose(trace["message_norms"], np.linalg.norm(led.messages[:, 0], axis=1))
    if cell == "lstm":
        np.testing.assert_allclose(trace["cell_message_norms"], np.linalg.norm(led.messages_c[:, 0], axis=1))
    else:
        assert trace["cell_message_norms"] is None


def test_graph_trace_errors_name_the_field(tmp_path):
    trace = make_trace()
    with pytest.raises(bptt.BpttError, match=r"trace\['y_hat'\]: expected 10 values"):
        draw_unrolled_graph({**trace, "y_hat": trace["y_hat"][:-1]}, tmp_path / "g.png")
    with pytest.raises(bptt.BpttError, match=r"trace\['message_norms'\]: missing"):
        draw_unrolled_graph({k: v for k, v in trace.items() if k != "message_norms"}, tmp_path / "g.png")
    with pytest.raises(bptt.BpttError, match=r"trace\['cell_message_norms'\]: expected 10 values"):
        draw_unrolled_graph({**trace, "cell_message_norms": [1.0]}, tmp_path / "g.png")
    with pytest.raises(bptt.BpttError, match=r"trace\['cell'\]: expected one of rnn, gru, lstm, got 'elman'"):
        draw_unrolled_graph({**trace, "cell": "elman"}, tmp_path / "g.png")
    with pytest.raises(bptt.BpttError, match=r"trace\['words'\]"):
        draw_unrolled_graph({**trace, "words": []}, tmp_path / "g.png")
    with pytest.raises(bptt.BpttError, match=r"g\.pdf: expected a file name ending in \.png or \.svg"):
        draw_unrolled_graph(trace, tmp_path / "g.pdf")
    with pytest.raises(bptt.BpttError, match="does not exist"):
        draw_unrolled_graph(trace, tmp_path / "missing" / "g.png")


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_trace_from_params_reads_the_ledger(output):
    n_y = 1 if output == "sigmoid" else 3
    p = make_params(n_y=n_y)
    rng = np.random.default_rng(0)
    T = 6
    X = rng.standard_normal((T, 4))
    Y = rng.integers(0, 2 if output == "sigmoid" else n_y, size=T)
    tags = ("O", "PER") if output == "sigmoid" else ("O", "PER", "LOC")
    trace = trace_from_params(p, WORDS[:T], X, Y, tags=tags, output=output)
    led = bptt.ledger(
        p, X[:, None], Y[:, None].astype(float) if output == "sigmoid" else Y[:, None], output=output
    )
    np.testing.assert_allclose(trace["L_t"], led.L_t[:, 0])
    np.testing.assert_allclose(trace["message_norms"], np.linalg.norm(led.messages[:, 0], axis=1))
    assert trace["gold"] == [tags[k] for k in Y]
    if output == "sigmoid":
        np.testing.assert_allclose(trace["y_hat"], led.Y_hat[:, 0, 0])
        assert trace["predicted"] == [tags[int(v > 0.5)] for v in led.Y_hat[:, 0, 0]]
    else:
        np.testing.assert_allclose(trace["y_hat"], led.Y_hat[:, 0].max(axis=1))
    # without gold: no losses shown, messages measured against the model's own predictions
    own = trace_from_params(p, WORDS[:T], X, tags=tags, output=output)
    assert own["gold"] is None and own["L_t"] is None and own["predicted"] == trace["predicted"]
    assert len(own["message_norms"]) == T


def test_trace_from_params_errors():
    p = make_params(n_y=1)
    X = np.zeros((3, 4))
    with pytest.raises(bptt.BpttError, match="words: expected 3 words"):
        trace_from_params(p, ["a", "b"], X)
    with pytest.raises(bptt.BpttError, match="X: expected shape"):
        trace_from_params(p, ["a", "b", "c"], np.zeros((3, 2, 4)))
    with pytest.raises(bptt.BpttError, match="n_y = 1"):
        trace_from_params(make_params(n_y=2), ["a", "b", "c"], X)
    with pytest.raises(bptt.BpttError, match="tags: expected 2 names"):
        trace_from_params(p, ["a", "b", "c"], X, tags=("O",))


def test_curves_loss_and_f1(tmp_path):
    log = fake_log()
    png_ok(plot_curves(log, tmp_path / "curves.png"), 1000, 400)
    png_ok(plot_loss(log, tmp_path / "loss.png"))
    png_ok(plot_f1(log[:1], tmp_path / "f1.png"))  # one epoch is enough to draw
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically: no temporary left behind
    with pytest.raises(bptt.BpttError, match="log_records"):
        plot_loss([], tmp_path / "loss.png")


def test_scores_as_fractions_or_percent():
    assert percent_factor([{"dev": {"f1": 0.8, "token_accuracy": 0.97}}]) == 100
    assert percent_factor([{"dev": {"f1": 0.0, "token_accuracy": 80.1}}]) == 1
    assert percent_factor([{"epoch": 1}]) == 100


def test_gradient_flow(tmp_path):
    log = fake_log()
    probe = np.exp(-0.2 * np.arange(10))[None] * np.linspace(0.5, 2, 5)[:, None]  # (N=5, K=10)
    probe[0, 3] = np.inf  # exploded values are left blank, not a crash
    texts = svg_texts(plot_gradient_flow(log, tmp_path / "flow.svg", probe=probe))
    assert any("clipping fired in 2 of 6 epochs" in t for t in texts)
    assert any(t.startswith("Reach ‖∂a⟨t⟩/∂a⟨t−d⟩‖") for t in texts)
    assert "Reach on the probe sentences" in texts
    with pytest.raises(bptt.BpttError, match="log_records: no message_norms"):
        plot_gradient_flow([{"epoch": 1}], tmp_path / "f.png")
    with pytest.raises(bptt.BpttError, match="probe: expected an array"):
        plot_gradient_flow(log, tmp_path / "f.png", probe=np.zeros((2, 2, 2)))


@pytest.mark.slow
def test_cli_graph_demo(tmp_path, capsys):
    out = tmp_path / "graph.svg"
    sentence = "Ada Lovelace wrote the first program ."
    assert (
        main(
            [
                "graph",
                "--demo",
                sentence,
                "--gold",
                "B-PER I-PER O O O O O",
                "--steps",
                "30",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert f"wrote {out}" in capsys.readouterr().out
    texts = svg_texts(out)
    assert all(w in texts for w in sentence.split())
    assert main(["graph", "--demo", "Ada", "Lovelace", "--gold", "O", "--out", str(out)]) == 2
    assert "--gold: 1 tags for 2 words" in capsys.readouterr().err
    assert main(["graph", "--demo", "Ada", "--out", str(tmp_path / "g.jpg")]) == 2
    assert "expected a file name ending in .png or .svg" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_gradflow_demo_logs_the_ledger(tmp_path):
    from bptt.cli.gradflow import demo_log

    records, probe = demo_log(epochs=2, T=12, delay=3)
    assert [r["epoch"] for r in records] == [1, 2]
    assert len(records[0]["message_norms"]) == 12 and records[0]["reach"][0] == pytest.approx(1.0)
    assert probe.shape == (12,)
    json.dumps(records)  # the same JSON-able records as the tagger's log.jsonl
    out = tmp_path / "flow.png"
    assert main(["gradflow", "--demo", "--epochs", "2", "--out", str(out)]) == 0
    png_ok(out, 1000, 800)
