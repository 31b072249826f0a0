"""The tagger with every cell: shapes and initialisation, its probes, and every command end to end.

Gradient checks of the GRU and LSTM taggers are in test_tagger_grad.py; their layers against
torch.nn.GRU/LSTM(bidirectional=True) there too.
"""

import json
import signal

import numpy as np
import pytest

from bptt.cells import get_cell
from bptt.cli import main
from bptt.diagnostics.ledger import jacobian_reach, reach_by_distance
from bptt.io.modelfiles import load_checkpoint
from bptt.models.tagger import Tagger
from bptt.models.tagger_network import TaggerConfig, init_tagger_params, param_shapes, tagger_forward
from bptt.models.vocab import Vocab
from bptt.training import TrainConfig, memory_needed
from tests.conftest import data_file
from tests.helpers import (
    MINI,
    assert_same_weights,
    error_line,
    png_ok,
    start_with_fault,
    svg_texts,
    write_slice,
)

SENTENCES = [["Harry", "Potter", "met", "Ron", "."], ["He", "went", "to", "London", "in", "1999", "."]]
SMALL = {"word_dim": 4, "case_dim": 2, "char_dim": 3, "char_hidden": 2, "hidden": 3}


def old_init(cfg, n_words, n_chars, seed=0, dtype=np.float32):
    """init_tagger_params as it was before the choice of cell: the vanilla tagger's draws must not change."""
    rng = np.random.default_rng(seed)
    p = {}
    for name, shape in param_shapes(cfg, n_words, n_chars):
        kind = name.rsplit(".", 1)[-1]
        if kind.startswith("E_"):
            p[name] = (0.1 * rng.standard_normal(shape)).astype(dtype)
        elif kind.startswith("b_"):
            p[name] = np.zeros(shape, dtype=dtype)
        else:
            k = 1 / np.sqrt(shape[1] if kind == "W_ya" else shape[0])
            p[name] = rng.uniform(-k, k, size=shape).astype(dtype)
    p["E_word"][0] = 0
    return p


@pytest.mark.parametrize(
    "cfg",
    [TaggerConfig(cell="rnn"), TaggerConfig(**SMALL, bidirectional=False, activation="relu", cell="rnn")],
)
def test_the_vanilla_taggers_initial_weights_are_unchanged(cfg):
    new, old = init_tagger_params(cfg, 50, 20, seed=3), old_init(cfg, 50, 20, seed=3)
    assert list(new) == list(old)
    for k in old:
        assert new[k].dtype == old[k].dtype
        np.testing.assert_array_equal(new[k], old[k], err_msg=k)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_word_layers_take_the_cell_and_the_characters_stay_vanilla(cell):
    cfg = TaggerConfig(**SMALL, cell=cell, init="forget1" if cell == "lstm" else "default")
    p = init_tagger_params(cfg, 11, 9, dtype=np.float64)
    k = get_cell(cell).gates
    n_x = 4 + 2 + 2 * 2
    assert p["rnn1.f.W_ax"].shape == (k * 3, n_x) and p["rnn2.b.W_aa"].shape == (k * 3, 3)
    assert ("rnn1.f.b_hn" in p) == (cell == "gru") and "char.f.b_hn" not in p
    assert p["char.f.W_aa"].shape == (2, 2) and not p["char.f.b_a"].any()  # the vanilla cell: zero b_a
    assert np.abs(p["rnn1.f.W_aa"]).max() <= 1 / np.sqrt(3)  # PyTorch's U(±1/√n_a), not 1/√(k·n_a)
    if cell == "lstm":  # forget1: every word layer's forget-gate bias is 1
        for name in ("rnn1.f.b_a", "rnn1.b.b_a", "rnn2.f.b_a", "rnn2.b.b_a"):
            np.testing.assert_array_equal(p[name][3:6], 1.0)


def test_gated_cells_are_counted_in_the_memory_needed():
    tcfg = TrainConfig(train="x")
    need = {
        cell: memory_needed(TaggerConfig(cell=cell), tcfg, 1000, 50, 40) for cell in ("rnn", "gru", "lstm")
    }
    assert need["rnn"][0] < need["gru"][0] < need["lstm"][0]  # activations and weights
    assert need["rnn"][1] < need["gru"][1] < need["lstm"][1]  # weights alone: 1, 3 and 4 blocks


def small_tagger(cell, bidirectional=True):
    """An untrained float64 tagger with weights large enough that the reach varies."""
    cfg = TaggerConfig(**SMALL, cell=cell, bidirectional=bidirectional)
    vocab = Vocab.build(SENTENCES)
    params = init_tagger_params(cfg, len(vocab.words), len(vocab.chars), dtype=np.float64)
    rng = np.random.default_rng(1)
    params = {k: v + 0.5 * rng.standard_normal(v.shape) for k, v in params.items()}
    return Tagger(params, cfg, vocab)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_reach_profile_against_finite_differences(cell, bidirectional):
    """reach_profile's ‖∂s→⟨n⟩/∂s→⟨n−d⟩‖ by central differences through layer 1's forward cell."""
    tagger = small_tagger(cell, bidirectional)
    words = SENTENCES[1]
    K = 9  # longer than the sentence: NaN beyond it
    profile = tagger.reach_profile([words], K=K)
    assert np.isnan(profile[len(words) :]).all() and profile[0] == pytest.approx(1.0)
    batch, tables = tagger._single(words)
    _, cache = tagger_forward(tagger.params, tagger.cfg, batch, tables)
    fwd = cache.layer_caches[0].forward if bidirectional else cache.layer_caches[0]
    c, n, n_a, eps = get_cell(cell), len(words), 3, 1e-6

    def flat(state):
        return np.concatenate(c.fields(state), axis=1)[0]  # (n_s,)

    for d in range(1, n):
        t = n - d  # from the state after step t (1-based) to the last
        s_t = flat(c.state_before(fwd, t))
        J = np.empty((s_t.size, s_t.size))
        for i in range(s_t.size):
            e = np.zeros(s_t.size)
            e[i] = eps
            ends = []
            for s in (s_t + e, s_t - e):
                state = c.join(x[None] for x in (s[:n_a], s[n_a:])[: 2 if c.paired else 1])
                _, rest = c.fast_forward(fwd.X[t:], state, fwd.params, None)
                ends.append(flat(c.state_before(rest, n - t)))
            J[:, i] = (ends[0] - ends[1]) / (2 * eps)
        assert profile[d] == pytest.approx(np.linalg.norm(J, 2), rel=1e-6), d


def test_reach_profile_batches_sentences_as_the_mean_by_distance():
    tagger = small_tagger("lstm")
    one = [tagger.reach_profile([s], K=7) for s in SENTENCES]  # 5 and 7 words
    both = tagger.reach_profile(SENTENCES + [[]], K=7)  # an empty sentence is ignored
    np.testing.assert_allclose(both, np.nanmean(one, axis=0), rtol=1e-9)
    assert np.isnan(tagger.reach_profile([[]], K=3)).all()


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_trace_carries_the_cell_and_its_messages(cell):
    trace = small_tagger(cell).trace(SENTENCES[0])
    assert trace["cell"] == cell and len(trace["message_norms"]) == 5
    if cell == "lstm":  # ‖∂L/∂c⟨t⟩‖ for the graph's cell-state lane
        assert len(trace["cell_message_norms"]) == 5 and all(v > 0 for v in trace["cell_message_norms"])
    else:
        assert trace["cell_message_norms"] is None


def test_reach_profile_is_the_ledgers_reach():
    """One reach computation: the tagger's profile is jacobian_reach by distance, on its layer-1 cache."""
    tagger = small_tagger("gru")
    batch, tables = tagger._single(SENTENCES[0])
    _, cache = tagger_forward(tagger.params, tagger.cfg, batch, tables)
    reach = reach_by_distance(jacobian_reach(get_cell("gru"), cache.layer_caches[0].forward))
    np.testing.assert_allclose(tagger.reach_profile([SENTENCES[0]], K=5), reach, rtol=1e-12)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--cell", "gru", "--init", "forget1"], "--init: a GRU takes 'default', got 'forget1'"),
        (["--cell", "rnn", "--init", "forget1"], "--init: the vanilla cell takes 'default', got 'forget1'"),
        (["--cell", "lstm", "--activation", "relu"], "--activation: only the vanilla cell ('rnn') takes one"),
    ],
)
def test_bad_cell_options_are_one_line_naming_the_option(capsys, tmp_path, argv, expected):
    message = error_line(capsys, "train", "--train", tmp_path / "none.txt", "--out", tmp_path / "m", *argv)
    assert message.startswith(expected), message
    assert not (tmp_path / "m").exists()  # refused before anything is read or written


def test_an_unknown_cell_is_refused_by_the_options_choices(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--train", "t.txt", "--out", "m", "--cell", "elman"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1
    assert err.startswith(
        "bptt: error: argument --cell: invalid choice: 'elman' (choose from 'rnn', 'gru', 'lstm')"
    )


# ------------------------------------------------------------------------------------- end to end

EPOCHS, BATCH, SENTS = 2, 8, 80  # 10 batches an epoch


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("cells")
    write_slice(data_file("conll2003", "eng.train"), d / "train.txt", SENTS)
    write_slice(data_file("conll2003", "eng.testa"), d / "dev.txt", 30)
    return d


def train_args(d, out, cell):
    # --cell after MINI's
    return ["train", "--train", str(d / "train.txt"), "--dev", str(d / "dev.txt"), "--out", str(out),
            *[a for a in MINI if a != "--quiet"], "--cell", cell, "--epochs", str(EPOCHS),
            "--batch-size", str(BATCH), "--seed", "2", "--bptt-steps", "4"]  # fmt: skip


@pytest.fixture(scope="module")
def models(data):
    """An uninterrupted run of each gated cell (truncated BPTT on, so that path trains too)."""
    out = {}
    for cell in ("gru", "lstm"):
        out[cell] = data / f"model-{cell}"
        assert main([*train_args(data, out[cell], cell), "--quiet"]) == 0
    return out


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_cell_is_recorded_in_the_model_and_the_run(models, cell):
    model = models[cell]
    assert json.loads((model / "config.json").read_text())["tagger"]["cell"] == cell
    assert json.loads((model / "run.json").read_text())["model"]["cell"] == cell
    records = [json.loads(r) for r in (model / "log.jsonl").read_text().splitlines()]
    assert len(records) == EPOCHS and all(len(r["reach"]) > 5 and r["reach"][0] == 1.0 for r in records)


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_every_command_runs_on_a_gated_model(models, data, cell, tmp_path, capsys):
    model = str(models[cell])
    assert main(["tag", "--model", model, "--format", "conll", "Harry Potter met Ron ."]) == 0
    assert len(capsys.readouterr().out.split()) == 2 * 5  # a word and its tag per line
    assert main(["evaluate", "--model", model, "--data", str(data / "dev.txt")]) == 0
    assert "F1" in capsys.readouterr().out
    graph = tmp_path / "graph.svg"
    assert main(["graph", "--model", model, "Harry Potter met Ron .", "--out", str(graph)]) == 0
    texts = svg_texts(graph)
    assert "a⟨4⟩" in texts and ("c⟨4⟩" in texts) == (cell == "lstm")  # the LSTM's cell-state lane
    assert any(cell.upper() in t for t in texts)  # the legend's equations are the cell's
    flow = tmp_path / "flow.png"
    assert main(["gradflow", "--model", model, "--data", str(data / "dev.txt"), "--out", str(flow)]) == 0
    png_ok(flow)
    report = tmp_path / "report.html"
    assert main(["report", model, "--out", str(report)]) == 0
    assert f"<code>tagger.cell</code> &quot;{cell}&quot;" in report.read_text()  # the configuration shown


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_sigterm_inside_an_epoch_then_resume_is_bit_identical(models, data, cell):
    out = data / f"interrupted-{cell}"
    p = start_with_fault(train_args(data, out, cell), "SIGTERM@batch:2:5")
    err = p.communicate(timeout=600)[1]
    assert p.returncode == 128 + signal.SIGTERM, err
    _, state = load_checkpoint(out)
    assert state["epoch"] == 1 and state["inside_epoch"]["batch"] == 5
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_weights(models[cell], out)
    logs = [
        [json.loads(r)["train_loss"] for r in (d / "log.jsonl").read_text().splitlines()]
        for d in (models[cell], out)
    ]
    assert logs[0] == logs[1]
