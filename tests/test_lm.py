"""The character language model: its truncated BPTT (central differences, a PyTorch twin), the text it
reads, bits per character, sampling, and the commands (resume, faults, bad input)."""

import json
import math

import numpy as np
import pytest

from bptt.cells import get_cell
from bptt.cli import main
from bptt.lm.config import LMConfig
from bptt.lm.corpus import Alphabet, conll_text, line_batch, read_corpus
from bptt.lm.model import LanguageModel, dynamic_log_probs, evaluate_lines, load_lm, pieces
from bptt.lm.network import LN2, Stack, chunk_log_probs, chunk_loss, init_lm, one_hot, step_log_softmax
from bptt.lm.ngram import adaptive_bits_per_char
from bptt.lm.trainer import LMTrainer, split_held_out
from tests.helpers import error_line, png_ok, run_with_fault, torch_twin, torch_twin_grads

CELLS = ["rnn", "gru", "lstm"]
V, N_A, K, B = 7, 5, 6, 3


def lm_params(cell, rng, layers=1):
    p = init_lm(cell, V, N_A, seed=1, dtype=np.float64, layers=layers)
    return {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in p.items()}  # non-zero biases too


def carried(cell, rng, layers=1):
    c = Stack(cell, layers)
    return c.join(0.5 * rng.standard_normal((B, N_A)) for _ in c.fields(c.zero_state(B, N_A, np.float64)))


def numeric_grads(loss, p, eps=1e-6):
    """Central differences of ``loss()`` in every parameter of ``p`` (changed in place and restored)."""
    out = {}
    for k, w in p.items():
        num = out[k] = np.zeros_like(w)
        for i in np.ndindex(w.shape):
            old = w[i]
            w[i] = old + eps
            up = loss()
            w[i] = old - eps
            down = loss()
            w[i] = old
            num[i] = (up - down) / (2 * eps)
    return out


# ------------------------------------------------------------------------------------------ the gradient


@pytest.mark.parametrize("cell", CELLS)
def test_chunk_gradient_against_central_differences(cell):
    """∂L/∂θ of one chunk from a carried state (held constant: truncated BPTT), masked steps included."""
    rng = np.random.default_rng(0)
    p, c = lm_params(cell, rng), get_cell(cell)
    ids_in, ids_out = rng.integers(0, V, (K, B)), rng.integers(0, V, (K, B))
    mask = np.ones((K, B), dtype=bool)
    mask[4:, 1] = False  # a shorter line
    state0 = carried(cell, rng)
    L, grads, _ = chunk_loss(p, c, ids_in, ids_out, state0, mask)
    num = numeric_grads(lambda: chunk_loss(p, c, ids_in, ids_out, state0, mask)[0], p)
    for k in p:
        err = np.abs(num[k] - grads[k]).max() / max(1.0, np.abs(num[k]).max())
        assert err < 1e-7, (cell, k, err)


@pytest.mark.parametrize("cell", CELLS)
def test_stacked_chunk_gradient_against_central_differences(cell):
    """Three layers, dropout between them and before the head (the same masks every call), a carried
    state in every layer, masked steps: every layer's gradient, layer 1 under the one-layer names."""
    rng = np.random.default_rng(3)
    p, stack = lm_params(cell, rng, layers=3), Stack(cell, 3)
    assert {"W_aa", "layer2.W_aa", "layer3.W_aa", "layer3.b_a"} <= p.keys()
    assert p["layer2.W_ax"].shape == p["layer2.W_aa"].shape  # layer 2 reads layer 1's a⟨t⟩ (n_a)
    ids_in, ids_out = rng.integers(0, V, (K, B)), rng.integers(0, V, (K, B))
    mask = np.ones((K, B), dtype=bool)
    mask[3:, 2] = False
    state0 = carried(cell, rng, layers=3)
    assert len(state0) == 3

    def run():
        return chunk_loss(p, stack, ids_in, ids_out, state0, mask, dropout=0.3, rng=np.random.default_rng(4))

    L, grads, state = run()
    num = numeric_grads(lambda: run()[0], p)
    for k in p:
        err = np.abs(num[k] - grads[k]).max() / max(1.0, np.abs(num[k]).max())
        assert err < 1e-7, (cell, k, err)
    assert run()[0] != chunk_loss(p, stack, ids_in, ids_out, state0, mask)[0]  # the masks did drop units
    assert len(stack.fields(state)) == 3 * len(get_cell(cell).fields(get_cell(cell).zero_state(1, 1, float)))


@pytest.mark.parametrize("cell", CELLS)
def test_two_chunks_equal_pytorch_with_detached_state(cell):
    """Truncated BPTT over two chunks = PyTorch running each chunk from ``state.detach()`` (float64, 1e-10):
    the losses, the summed gradients and the state carried."""
    import torch

    rng = np.random.default_rng(1)
    p, c = lm_params(cell, rng), get_cell(cell)
    ids = rng.integers(0, V, (2 * K + 1, B))
    module = torch_twin(cell, {k: p[k] for k in c.keys})
    head = torch.nn.Linear(N_A, V, dtype=torch.float64)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(p["W_ya"]))
        head.bias.copy_(torch.from_numpy(p["b_y"]))
    state = c.zero_state(B, N_A, np.float64)
    total = {k: 0.0 for k in p}
    h = tuple(torch.zeros(1, B, N_A, dtype=torch.float64) for _ in range(2)) if cell == "lstm" else None
    h = h if cell == "lstm" else torch.zeros(1, B, N_A, dtype=torch.float64)
    for s in (0, K):
        L, g, state = chunk_loss(p, c, ids[s : s + K], ids[s + 1 : s + K + 1], state)
        total = {k: total[k] + g[k] for k in p}
        X = torch.from_numpy(one_hot(ids[s : s + K], V, np.float64))
        out, h = module(X, h)
        logits = head(out)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, V), torch.from_numpy(ids[s + 1 : s + K + 1]).reshape(-1), reduction="sum"
        )
        loss.backward()
        h = tuple(x.detach() for x in h) if cell == "lstm" else h.detach()  # the cut
        assert abs(L - loss.item()) < 1e-10
    want = torch_twin_grads(module, cell)
    want.update({"W_ya": head.weight.grad.numpy(), "b_y": head.bias.grad.numpy()})
    for k in p:
        np.testing.assert_allclose(total[k], want[k], atol=1e-10, rtol=0, err_msg=k)
    for got, ref in zip(c.fields(state), h if cell == "lstm" else (h,)):
        np.testing.assert_allclose(got, ref[0].numpy(), atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_stacked_chunks_equal_pytorch_num_layers_2(cell):
    """Two layers over two chunks = ``torch.nn.LSTM/GRU/RNN(num_layers=2)`` from ``state.detach()``
    (float64): losses to 1e-10, every layer's gradients summed over the chunks, the carried state."""
    import torch

    import bptt

    rng = np.random.default_rng(5)
    stack = Stack(cell, 2)
    p = lm_params(cell, rng, layers=2)
    ids = rng.integers(0, V, (2 * K + 1, B))
    kind = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
    module = kind(V, N_A, num_layers=2, dtype=torch.float64)
    weights = {}
    for layer, suffix in ((1, "_l0"), (2, "_l1")):
        weights.update(bptt.params_to_torch(stack.layer_params(p, layer), cell, suffix))
    module.load_state_dict({k: torch.tensor(v) for k, v in weights.items()})
    state = stack.zero_state(B, N_A, np.float64)
    h = torch.zeros(2, B, N_A, dtype=torch.float64)
    h = (h, h.clone()) if cell == "lstm" else h
    total = {k: 0.0 for k in p}
    for s in (0, K):
        L, g, state = chunk_loss(p, stack, ids[s : s + K], ids[s + 1 : s + K + 1], state)
        total = {k: total[k] + g[k] for k in p}
        out, h = module(torch.from_numpy(one_hot(ids[s : s + K], V, np.float64)), h)
        logits = out @ torch.from_numpy(p["W_ya"]).T + torch.from_numpy(p["b_y"])
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, V), torch.from_numpy(ids[s + 1 : s + K + 1]).reshape(-1), reduction="sum"
        )
        loss.backward()
        h = tuple(x.detach() for x in h) if cell == "lstm" else h.detach()  # the cut
        assert abs(L - loss.item()) < 1e-10
    for layer, suffix in ((1, "_l0"), (2, "_l1")):
        want = torch_twin_grads(module, cell, suffix)
        pre = "" if layer == 1 else "layer2."
        for k, v in want.items():
            np.testing.assert_allclose(total[pre + k], v, atol=1e-10, rtol=0, err_msg=pre + k)
    ours = stack.fields(state)  # layer 1's fields, then layer 2's
    theirs = [x[layer].numpy() for layer in range(2) for x in (h if cell == "lstm" else (h,))]
    for got, ref in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(got, ref, atol=1e-12)


def test_dropout_is_the_identity_at_rate_zero_and_changes_the_loss_otherwise():
    rng = np.random.default_rng(2)
    p, c = lm_params("lstm", rng), get_cell("lstm")
    ids_in, ids_out = rng.integers(0, V, (K, B)), rng.integers(0, V, (K, B))
    s0 = c.zero_state(B, N_A, np.float64)
    plain = chunk_loss(p, c, ids_in, ids_out, s0)[0]
    assert chunk_loss(p, c, ids_in, ids_out, s0, dropout=0.0, rng=np.random.default_rng(0))[0] == plain
    assert chunk_loss(p, c, ids_in, ids_out, s0, dropout=0.5, rng=np.random.default_rng(0))[0] != plain


@pytest.mark.parametrize("cell", CELLS)
def test_input_dropout_gradient_against_central_differences(cell):
    """Whole characters dropped (the same draws every call) and dropout before the head, a carried state,
    masked steps: every gradient; the drop changes the loss, and rate 0 draws nothing."""
    rng = np.random.default_rng(7)
    p, c = lm_params(cell, rng), get_cell(cell)
    ids_in, ids_out = rng.integers(0, V, (K, B)), rng.integers(0, V, (K, B))
    mask = np.ones((K, B), dtype=bool)
    mask[4:, 0] = False
    state0 = carried(cell, rng)

    def run(rate=0.4):
        return chunk_loss(
            p, c, ids_in, ids_out, state0, mask, 0.2, np.random.default_rng(8), input_dropout=rate
        )

    L, grads, _ = run()
    num = numeric_grads(lambda: run()[0], p)
    for k in p:
        err = np.abs(num[k] - grads[k]).max() / max(1.0, np.abs(num[k]).max())
        assert err < 1e-7, (cell, k, err)
    assert L != run(0.0)[0]
    draws = np.random.default_rng(9)
    chunk_loss(p, c, ids_in, ids_out, state0, mask, input_dropout=0.0, rng=draws)
    assert draws.random() == np.random.default_rng(9).random()  # no draw: runs without it are unchanged


def test_input_dropout_equals_pytorch_on_the_dropped_characters():
    """The loss and every gradient = PyTorch's LSTM and head reading x⟨t⟩ ⊙ keep⟨t⟩ (float64, 1e-12),
    keep⟨t⟩ ∈ {0, 1/(1 − rate)} one a character, the mask chunk_loss drew."""
    import torch

    rng = np.random.default_rng(10)
    p, c = lm_params("lstm", rng), get_cell("lstm")
    ids_in, ids_out = rng.integers(0, V, (K, B)), rng.integers(0, V, (K, B))
    state0 = carried("lstm", rng)
    L, grads, _ = chunk_loss(p, c, ids_in, ids_out, state0, input_dropout=0.4, rng=np.random.default_rng(11))
    keep = (np.random.default_rng(11).random((K, B, 1), dtype=np.float32) >= 0.4) / 0.6  # (K, B, 1)
    assert 0 < (keep == 0).sum() < K * B  # some characters dropped, not all
    module = torch_twin("lstm", {k: p[k] for k in ("W_ax", "W_aa", "b_a")})
    W_ya, b_y = (torch.tensor(p[k], requires_grad=True) for k in ("W_ya", "b_y"))
    out, _ = module(
        torch.from_numpy(one_hot(ids_in, V, np.float64) * keep),
        tuple(torch.from_numpy(x)[None] for x in state0),
    )
    logits = (out @ W_ya.T + b_y).reshape(-1, V)
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(ids_out).reshape(-1), reduction="sum")
    loss.backward()
    assert abs(L - loss.item()) < 1e-12
    ref = {**torch_twin_grads(module, "lstm"), "W_ya": W_ya.grad.numpy(), "b_y": b_y.grad.numpy()}
    for k in p:
        np.testing.assert_allclose(grads[k], ref[k], rtol=0, atol=1e-12, err_msg=k)


def test_input_dropout_of_every_character_leaves_only_the_bias():
    """At a rate that drops every character, x⟨t⟩ = 0: W_ax gets no gradient, and the loss is that of the
    network with W_ax = 0 and nothing dropped."""
    rng = np.random.default_rng(12)
    p, c = lm_params("gru", rng), get_cell("gru")
    ids_in, ids_out = rng.integers(0, V, (K, B)), rng.integers(0, V, (K, B))
    state0 = carried("gru", rng)
    L, grads, _ = chunk_loss(
        p, c, ids_in, ids_out, state0, input_dropout=1 - 1e-9, rng=np.random.default_rng(0)
    )
    assert not grads["W_ax"].any()
    blind = {**p, "W_ax": np.zeros_like(p["W_ax"])}
    assert L == pytest.approx(chunk_loss(blind, c, ids_in, ids_out, state0)[0], rel=1e-14)


def weight_drop_trainer(tmp_path):
    """An LSTM language-model trainer in float64 with weight drop 0.4, no dropout, a carried state."""
    from bptt.lm.config import LMConfig
    from bptt.lm.trainer import LMTrainer

    cfg = LMConfig(text=[str(corpus(tmp_path))], hidden=N_A, batch_size=B, bptt_steps=K, dtype="float64",
                   dropout=0.0, weight_drop=0.4, updates=1)  # fmt: skip
    t = LMTrainer(cfg, tmp_path / "run")
    t.read_data()
    t.init_state()
    t.carry = carried("lstm", np.random.default_rng(1))
    return t


def test_weight_drop_gradient_against_central_differences(tmp_path):
    """DropConnect on W_aa: one mask for the update; ∂L/∂W_aa is the masked weights' gradient, masked."""
    t = weight_drop_trainer(tmp_path)
    batch, rng_state = t.next_batch(), t.rng.bit_generator.state

    def loss_and_grads():
        t.rng.bit_generator.state = rng_state  # the same mask every call
        L, grads, _, _ = t.train_step(t.params, batch)
        return L, grads

    L, grads = loss_and_grads()
    W, eps = t.params["W_aa"], 1e-6
    dropped = grads["W_aa"] == 0
    assert 0.25 < dropped.mean() < 0.55  # about 40% of the weights dropped, and they get no gradient
    num = np.zeros_like(W)
    for i in np.ndindex(W.shape):
        old = W[i]
        W[i] = old + eps
        up = loss_and_grads()[0]
        W[i] = old - eps
        down = loss_and_grads()[0]
        W[i] = old
        num[i] = (up - down) / (2 * eps)
    assert np.abs(num[dropped]).max() == 0  # a dropped weight does not move the loss at all
    np.testing.assert_allclose(grads["W_aa"], num, rtol=0, atol=1e-8)
    t.rng.bit_generator.state = rng_state
    t.cfg.weight_drop = 0.0
    assert t.train_step(t.params, batch)[0] != L  # the mask changed the loss


def test_weight_drop_equals_pytorch_autograd_through_the_mask(tmp_path):
    """The weight-dropped update's loss and gradients = PyTorch's autograd through W_aa ⊙ keep (float64)."""
    import torch

    from bptt.models.layers import dropout_forward

    t = weight_drop_trainer(tmp_path)
    ids_in, ids_out, _, state = batch = t.next_batch()
    rng_state = t.rng.bit_generator.state
    L, grads, n, _ = t.train_step(t.params, batch)
    t.rng.bit_generator.state = rng_state
    _, keep = dropout_forward(t.params["W_aa"], t.cfg.weight_drop, t.rng)  # the mask train_step drew
    p = t.params
    V_ = p["W_ya"].shape[0]
    module = torch_twin("lstm", {k: p[k] for k in ("W_ax", "W_aa", "b_a")})
    W = torch.tensor(p["W_aa"], requires_grad=True)
    weights = {**dict(module.named_parameters()), "weight_hh_l0": W * torch.from_numpy(keep)}
    h0 = tuple(torch.from_numpy(np.array(x))[None] for x in state)
    X = torch.from_numpy(one_hot(ids_in, V_, np.float64))
    out, _ = torch.func.functional_call(module, weights, (X, h0))
    logits = out @ torch.from_numpy(p["W_ya"]).T + torch.from_numpy(p["b_y"])
    loss = (
        torch.nn.functional.cross_entropy(
            logits.reshape(-1, V_), torch.from_numpy(ids_out).reshape(-1), reduction="sum"
        )
        / n
    )
    loss.backward()
    assert abs(L - loss.item()) < 1e-12
    np.testing.assert_allclose(grads["W_aa"], W.grad.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(grads["W_ax"], module.weight_ih_l0.grad.numpy(), rtol=0, atol=1e-12)
    assert (W.grad.numpy()[keep == 0] == 0).all() and (keep == 0).any()


# ------------------------------------------------------------------------------------------ the text


def test_alphabet_unknown_symbol_and_round_trip():
    a = Alphabet.of("ab a\n")
    assert a.chars == ["\ufffd", "\n", " ", "a", "b"]
    assert a.encode("ba z").tolist() == [4, 3, 2, 0]  # z was never seen: the unknown symbol, id 0
    assert a.decode([4, 3, 1]) == "ba\n"
    assert Alphabet.from_json(a.to_json(), "x").chars == a.chars
    assert a.unknown_in("abz!") == ["!", "z"]


def test_line_batch_reads_a_start_symbol_and_predicts_the_end():
    a = Alphabet.of("ab\n")  # ids: \n 1, a 2, b 3
    ids_in, ids_out, mask = line_batch(["ab", "b"], a)
    assert ids_in[:, 0].tolist() == [1, 2, 3] and ids_out[:, 0].tolist() == [2, 3, 1]
    assert ids_in[:2, 1].tolist() == [1, 3] and ids_out[:2, 1].tolist() == [3, 1]
    assert mask.T.tolist() == [[True, True, True], [True, True, False]]


def test_conll_text_and_entities(tmp_path):
    f = tmp_path / "a.conll"
    f.write_text(
        "-DOCSTART- -X- O O\n\nHarry NNP B-NP I-PER\nPotter NNP I-NP I-PER\nmet VBD O O\nRon NNP O I-PER\n\n"
        "Harry NNP O I-PER\nPotter NNP O I-PER\nleft VBD O O\n\n"
    )
    assert conll_text(f) == "Harry Potter met Ron\nHarry Potter left\n"
    assert conll_text(f, "PER") == "Harry Potter\nRon\n"  # distinct, in order of first appearance
    assert read_corpus(conll=[f], entities="PER") == "Harry Potter\nRon\n"


def test_split_held_out_cuts_at_a_line_end():
    text = "".join(f"line {i}\n" for i in range(100))
    train, held = split_held_out(text, 0.1)
    assert train + held == text and train.endswith("\n") and held.startswith("line ")
    assert 0.08 < len(held) / len(text) < 0.12


def test_pieces_cover_the_stream():
    text = "".join(f"{'x' * (i % 7)}\n" for i in range(50))
    got = pieces(text, 4)
    assert 1 < len(got) <= 4 and "\n".join(got) + "\n" == text


# ------------------------------------------------------------------------------------------ scoring, sampling


def test_bits_per_char_equals_the_sum_of_step_log_probabilities():
    """Scoring a stream (pieces side by side, masked) = reading each piece one character at a time."""
    rng = np.random.default_rng(3)
    text = "ab ba\nab\nbbb a\na\n"
    a = Alphabet.of(text)
    p = init_lm("gru", len(a), 4, seed=0, dtype=np.float64)
    p = {k: v + 0.2 * rng.standard_normal(v.shape) for k, v in p.items()}
    model = LanguageModel(p, "gru", a, "stream")
    c = get_cell("gru")
    total, n = 0.0, 0
    for piece in pieces(text):
        ids = a.encode("\n" + piece + "\n")
        state = c.zero_state(1, 4, np.float64)
        for t in range(len(ids) - 1):
            log_p, state = step_log_softmax(p, c, state, ids[t : t + 1])
            total += log_p[0, ids[t + 1]]
            n += 1
    assert n == len(text)
    assert math.isclose(model.bits_per_char(text), -total / n / LN2, rel_tol=1e-12)


def test_a_uniform_model_scores_log2_of_the_alphabet():
    a = Alphabet.of("abc\n")
    p = init_lm("lstm", len(a), 3, dtype=np.float64)
    p["W_ya"][:] = 0
    p["b_y"][:] = 0
    assert math.isclose(
        evaluate_lines(p, get_cell("lstm"), a, ["abc", "cab"]), math.log2(len(a)), rel_tol=1e-12
    )


def test_sampling_is_seeded_never_writes_the_unknown_symbol_and_lines_end():
    rng = np.random.default_rng(4)
    a = Alphabet.of("abc\n")
    p = init_lm("lstm", len(a), 6, dtype=np.float64)
    p["b_y"][:] = rng.standard_normal(len(a))
    p["b_y"][0] = 20.0  # the unknown symbol would win every draw
    model = LanguageModel(p, "lstm", a, "stream")
    s1 = model.sample(3, 40, 1.0, "ab", np.random.default_rng(7))
    assert s1 == model.sample(3, 40, 1.0, "ab", np.random.default_rng(7))
    assert all(s.startswith("ab") and len(s) == 42 and "\ufffd" not in s for s in s1)
    p["b_y"][:] = -10.0
    p["b_y"][a.index["\n"]] = 10.0  # the end symbol is (nearly) certain
    lines = LanguageModel(p, "lstm", a, "line").sample(4, 30, 1.0, "", np.random.default_rng(0))
    assert lines == ["", "", "", ""]


def test_low_temperature_is_greedy():
    rng = np.random.default_rng(5)
    a = Alphabet.of("abcd\n")
    p = init_lm("rnn", len(a), 5, dtype=np.float64)
    p = {k: v + 0.5 * rng.standard_normal(v.shape) for k, v in p.items()}
    model = LanguageModel(p, "rnn", a, "stream")
    got = model.sample(1, 10, 1e-4, "a", np.random.default_rng(0))[0]
    c, state, x, want = get_cell("rnn"), None, a.encode("\na"), "a"
    state = c.zero_state(1, 5, np.float64)
    log_p, state = chunk_log_probs(p, c, x[:-1, None], x[1:, None], state)
    x = x[-1:]
    for _ in range(10):
        log_p, state = step_log_softmax(p, c, state, x)
        log_p[:, 0] = -np.inf
        x = log_p.argmax(axis=1)
        want += a.decode(x)
    assert got == want


# ----------------------------------------------------------------------------------------- dynamic evaluation


def dynamic_setup():
    rng = np.random.default_rng(8)
    text = "".join(f"{w} met Zqx Vbrt at {i}\n" for i, w in enumerate(["ann", "bo", "cy", "di"] * 50))
    a = Alphabet.of(text)
    p = init_lm("lstm", len(a), 6, seed=0, dtype=np.float64)
    return {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in p.items()}, a, text


@pytest.mark.parametrize("rule", ["sgd", "rms"])
def test_dynamic_evaluation_scores_each_chunk_before_its_step(rule):
    """Chunk 1 is scored by the trained weights, chunk 2 by them after one step on chunk 1's mean loss
    (sgd: θ − η g; rms: θ − η g / (|g| + ε), v̂ = g² after one step); what comes later never changes
    what was scored before; the model's own weights stay as they were."""
    p, a, text = dynamic_setup()
    before = {k: v.copy() for k, v in p.items()}
    c, lr, k = get_cell("lstm"), 0.05, 7
    group = pieces(text)
    got = list(dynamic_log_probs(p, c, a, [group], lr, rule, steps=k))
    ids_in, ids_out, mask = line_batch(group, a)
    state = c.zero_state(len(group), 6, np.float64)
    first, _ = chunk_log_probs(p, c, ids_in[:k], ids_out[:k], state, mask[:k])
    np.testing.assert_array_equal(got[0][0], first)
    L, g, carry = chunk_loss(p, c, ids_in[:k], ids_out[:k], state, mask[:k])
    g = {name: v / mask[:k].sum() for name, v in g.items()}
    norm = math.sqrt(sum(float((v * v).sum()) for v in g.values()))
    g = {name: v * min(1.0, 1.0 / (norm + 1e-6)) for name, v in g.items()}  # clipped to norm 1
    step = {name: v if rule == "sgd" else v / (np.abs(v) + 1e-6) for name, v in g.items()}
    moved = {name: p[name] - lr * step[name] for name in p}
    second, _ = chunk_log_probs(moved, c, ids_in[k : 2 * k], ids_out[k : 2 * k], carry, mask[k : 2 * k])
    np.testing.assert_allclose(got[1][0], second, rtol=1e-12, atol=1e-14)
    assert not np.allclose(got[1][0], chunk_log_probs(p, c, ids_in[k:], ids_out[k:], carry, mask[k:])[0][:k])
    changed = group[:-1] + [group[-1][:-2] + "qq"]  # the last piece's last 2 characters differ:
    first = (len(group[-1]) - 2) // k  # the chunk that predicts the first of them
    again = list(dynamic_log_probs(p, c, a, [changed], lr, rule, steps=k))
    for (x, _), (y, _) in zip(got[:first], again[:first]):  # every chunk before it is scored the same
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(got[first][0], again[first][0])
    for name in p:
        np.testing.assert_array_equal(p[name], before[name])


def test_dynamic_evaluation_equals_a_pytorch_twin():
    """Dynamic evaluation of an LSTM = the same loop in PyTorch (float64): each chunk scored from the
    detached state, then autograd's gradient of its mean loss, clipped by ``clip_grad_norm_``, an
    RMSprop step and the decay towards the trained weights; every score to 1e-10."""
    import torch

    p, a, text = dynamic_setup()
    c, lr, decay, k = get_cell("lstm"), 0.01, 0.05, 9
    piece = text[:200]
    got = np.concatenate([lp[m] for lp, m in dynamic_log_probs(p, c, a, [[piece]], lr, "rms", decay, k)])
    module = torch_twin("lstm", {name: p[name] for name in c.keys})
    module.bias_hh_l0.requires_grad_(False)  # bptt's one bias is bias_ih; bias_hh stays 0
    head = torch.nn.Linear(6, len(a), dtype=torch.float64)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(p["W_ya"]))
        head.bias.copy_(torch.from_numpy(p["b_y"]))
    weights = [module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, head.weight, head.bias]
    theta0 = [w.detach().clone() for w in weights]
    v = [torch.zeros_like(w) for w in weights]
    ids_in, ids_out, _ = line_batch([piece], a)
    h, want = None, []
    for u, t in enumerate(range(0, ids_in.shape[0], k), 1):
        X = torch.from_numpy(one_hot(ids_in[t : t + k], len(a), np.float64))
        out, h = module(X, h)
        log_p = torch.log_softmax(head(out), dim=-1).gather(
            -1, torch.from_numpy(ids_out[t : t + k])[..., None]
        )
        want.append(log_p.detach().numpy().reshape(-1))
        (-log_p.mean()).backward()
        torch.nn.utils.clip_grad_norm_(weights, 1.0)
        with torch.no_grad():
            for w, w0, vw in zip(weights, theta0, v):
                vw.mul_(0.99).add_(0.01 * w.grad * w.grad)
                w.sub_(lr * w.grad / ((vw / (1 - 0.99**u)).sqrt() + 1e-6))
                w.add_(decay * (w0 - w))
                w.grad = None
        h = tuple(x.detach() for x in h)
    np.testing.assert_allclose(got, np.concatenate(want), rtol=0, atol=1e-10)


def test_dynamic_evaluation_without_a_step_is_the_static_score_and_it_adapts():
    p, a, text = dynamic_setup()
    model = LanguageModel(p, "lstm", a, "stream")
    static = model.bits_per_char(text)
    assert math.isclose(model.dynamic_bits_per_char(text, 0.0, side_by_side=16), static, rel_tol=1e-12)
    pulled_back = model.dynamic_bits_per_char(text, 0.1, decay=1.0, side_by_side=16)
    assert math.isclose(pulled_back, static, rel_tol=1e-12)
    for side_by_side in (1, 16):  # "Zqx Vbrt" is learnt as it recurs
        assert model.dynamic_bits_per_char(text, 0.02, "rms", 0, 10, side_by_side) < static - 0.5
    assert model.dynamic_bits_per_char(text, 2.0, "sgd", 0, 10, 16) < static - 0.3
    lines = LanguageModel(p, "lstm", a, "line")
    assert lines.dynamic_bits_per_char(text, 0.02, "rms", 0, 10, 16) < lines.bits_per_char(text) - 0.5
    calls = []
    got = model.dynamic_bits_per_char(text, 0.02, progress=lambda *c: calls.append(c))
    assert calls[-1] == (len(text), len(text), got) and len(calls) == math.ceil(len(text) / 20)
    assert all(x[0] < y[0] for x, y in zip(calls, calls[1:]))


def test_cosine_schedule_follows_the_budget(tmp_path):
    """--schedule cosine: lr · ½(1 + cos πp) at the fraction p of the budget spent (updates or minutes,
    whichever is further), with no plateau decay; the lr of every update is the formula's."""
    from bptt.lm.config import LMConfig
    from bptt.lm.trainer import LMTrainer, cosine_lr

    cfg = LMConfig(text=[str(corpus(tmp_path))], hidden=N_A, batch_size=B, bptt_steps=K, dtype="float64",
                   schedule="cosine", updates=10, eval_every=2, lr=0.04, minutes=100)  # fmt: skip
    assert cosine_lr(cfg, 0, 0.0) == 0.04 and cosine_lr(cfg, 5, 0.0) == pytest.approx(0.02, abs=1e-15)
    assert cosine_lr(cfg, 1, 3000.0) == pytest.approx(0.02, abs=1e-15)  # half the minutes: the clock leads
    assert cosine_lr(cfg, 10, 0.0) == 0.0 and cosine_lr(cfg, 12, 0.0) == 0.0
    (tmp_path / "run").mkdir()
    t = LMTrainer(cfg, tmp_path / "run")
    t.read_data()
    t.init_state()
    t.start = __import__("time").monotonic()  # the clock's share, seconds / 6,000, stays below the updates'
    # (n / 10) unless the six updates took ten minutes: the lr below is set by the update count alone
    seen = []
    for _ in range(6):
        t.update()
        seen.append(t.opt.lr)
        t.evaluate(0.0)  # no better held-out score never decays it
    for n, lr in enumerate(seen, 1):
        assert lr == pytest.approx(0.02 * (1 + math.cos(math.pi * n / 10)), rel=1e-3)


# ------------------------------------------------------------------------------------------ the commands


def corpus(tmp_path):
    f = tmp_path / "train.txt"
    f.write_text("".join(f"the cat {i % 5} sat on the mat number {i}\n" for i in range(60)))
    return f


TRAIN = [
    "--hidden",
    "8",
    "--batch-size",
    "4",
    "--bptt-steps",
    "10",
    "--eval-every",
    "5",
    "--lr",
    "0.02",
    "--quiet",
]


def test_a_run_whose_learning_rate_has_decayed_away_stops_as_converged(tmp_path):
    f, out = corpus(tmp_path), tmp_path / "lm"
    # patience 1 and a 10⁻⁴ cut: the first evaluation that does not improve ends the run
    cut = ["--eval-every", "1", "--lr", "0.3", "--patience", "1", "--lr-decay", "1e-4"]
    assert main(["lm", "train", "--text", str(f), "--out", str(out), "--updates", "400", *TRAIN, *cut]) == 0
    result = json.loads((out / "result.json").read_text())
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert result["stopped"] == "converged" and result["updates"] < 400
    assert log[-1]["lr"] == pytest.approx(0.3e-4) and all(r["lr"] == 0.3 for r in log[:-1])
    assert log[-1]["held_out_bpc"] >= min(r["held_out_bpc"] for r in log[:-1])  # it had stopped improving
    cosine = tmp_path / "cosine"  # no plateau cuts: it spends its budget
    argv = [
        "lm",
        "train",
        "--text",
        str(f),
        "--out",
        str(cosine),
        "--updates",
        "30",
        *TRAIN,
        "--schedule",
        "cosine",
    ]
    assert main(argv) == 0
    assert json.loads((cosine / "result.json").read_text())["stopped"] == "updates"


def test_train_evaluate_sample_end_to_end(tmp_path, capsys):
    f = corpus(tmp_path)
    out = tmp_path / "lm"
    assert main(["lm", "train", "--text", str(f), "--out", str(out), "--updates", "40", *TRAIN]) == 0
    result = json.loads((out / "result.json").read_text())
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert result["updates"] == 40 and len(log) == 9
    from bptt.lm.trainer import read_settings

    assert read_settings(out)["settings"].minutes is None  # --updates alone: no wall-time budget
    assert log[-1]["held_out_bpc"] < log[0]["held_out_bpc"] - 0.5  # it learns
    capsys.readouterr()
    assert main(["lm", "evaluate", "--model", str(out), "--text", str(f), "--json", "--ngram", "3"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["characters"] == len(f.read_text()) and 0 < doc["bpc"] < math.log2(len(load_lm(out).alphabet))
    assert doc["ngram"]["order"] == 3 and 0 < doc["ngram"]["bpc"] < doc["bpc"]  # it memorises a tiny text
    argv = [
        "lm",
        "evaluate",
        "--model",
        str(out),
        "--text",
        str(f),
        "--dynamic",
        "0.01",
        "--dynamic-steps",
        "20",
    ]
    assert main([*argv, "--json"]) == 0
    dyn = json.loads(capsys.readouterr().out)["dynamic"]
    assert dyn == {"lr": 0.01, "rule": "rms", "steps": 20, "decay": 0.01, "pieces": 1, "bpc": dyn["bpc"]}
    assert dyn["bpc"] == load_lm(out).dynamic_bits_per_char(f.read_text(), 0.01, "rms", 0.01, 20, 1)
    assert main(["lm", "evaluate", "--model", str(out), "--text", str(f), "--dynamic", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dynamic"]["lr"] == 3e-3  # --dynamic alone: the default step
    g = tmp_path / "new.txt"  # a name the training text never had, again and again
    g.write_text("the mat met Zqxv Wbry\n" * 20)
    assert main([*argv[:5], str(g), *argv[6:], "--ngram", "3", "--json"]) == 0
    ngram = json.loads(capsys.readouterr().out)["ngram"]
    a = load_lm(out).alphabet
    fit_on = [a.encode(split_held_out(f.read_text(), 0.03)[0])]
    piece = [a.encode("\n" + g.read_text())]  # "\n" read first; the text's own final "\n" is the end
    adaptive = adaptive_bits_per_char(fit_on, piece, 3, 20, vocab_size=len(a), start=1)
    assert (
        ngram["adaptive_bpc"] == pytest.approx(adaptive, rel=1e-12) and ngram["adaptive_bpc"] < ngram["bpc"]
    )
    for bad in (
        ["--dynamic", "0"],
        ["--dynamic-steps", "0"],
        ["--dynamic-decay", "1"],
        ["--dynamic-pieces", "0"],
    ):
        assert bad[0] in error_line(capsys, *argv, *bad)
    plain = argv[:6]  # without --dynamic: its settings are refused, not ignored
    assert "--dynamic-pieces: only with --dynamic" in error_line(capsys, *plain, "--dynamic-pieces", "4")
    assert "--dynamic-rule: only with --dynamic" in error_line(capsys, *plain, "--dynamic-rule", "sgd")
    # the options are checked before the text is read: no warning of its unknown characters comes first
    assert "--ngram" in error_line(capsys, "lm", "evaluate", "--model", out, "--text", g, "--ngram", "0")
    assert (
        main(["sample", "--model", str(out), "--n", "3", "--length", "20", "--seed", "1", "--prime", "the"])
        == 0
    )
    text = capsys.readouterr().out
    assert text.count("the") >= 3
    picture = tmp_path / "generation.png"
    argv = ["graph", "--lm", str(out), "--prime", "th", "--length", "6", "--seed", "2", "--out", str(picture)]
    assert main(argv) == 0
    png_ok(picture)
    assert "takes no sentence" in error_line(
        capsys, "graph", "--lm", out, "the cat", "--out", tmp_path / "x.png"
    )
    assert "--length" in error_line(
        capsys, "graph", "--lm", out, "--length", "500", "--out", tmp_path / "x.png"
    )


def test_a_stacked_model_trains_evaluates_samples_and_loads(tmp_path, capsys):
    """--layers 2: learns, the model file records its layers (a file without the field is one layer),
    evaluate and sample read it; the graph, which draws one layer, says so."""
    from bptt.io.safetensors_io import load_safetensors, save_safetensors

    f = corpus(tmp_path)
    out = tmp_path / "lm2"
    argv = ["lm", "train", "--text", str(f), "--out", str(out), "--updates", "40", "--layers", "2", *TRAIN]
    assert main(argv) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[-1]["held_out_bpc"] < log[0]["held_out_bpc"] - 0.5
    assert json.loads((out / "result.json").read_text())["layers"] == 2
    model = load_lm(out)
    assert model.cell.layers == 2 and model.params["layer2.W_aa"].shape == (32, 8)
    capsys.readouterr()
    assert main(["lm", "evaluate", "--model", str(out), "--text", str(f), "--json"]) == 0
    assert 0 < json.loads(capsys.readouterr().out)["bpc"] < math.log2(len(model.alphabet))
    assert main(["sample", "--model", str(out), "--n", "2", "--length", "15", "--seed", "1"]) == 0
    assert len(capsys.readouterr().out.split("\n")) >= 2
    assert "draws one-layer models" in error_line(capsys, "graph", "--lm", out, "--out", tmp_path / "g.png")
    raw = (out / "weights.safetensors").read_bytes()
    (tmp_path / "flipped.safetensors").write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))  # one bit of b_y
    msg = error_line(capsys, "lm", "evaluate", "--model", tmp_path / "flipped.safetensors", "--text", f)
    assert "flipped.safetensors" in msg and "damaged" in msg
    params, meta = load_safetensors(out / "weights.safetensors")
    assert len(meta.pop("tensors_sha256")) == 64  # the file checks itself; the edits below go without it
    one = {k: v for k, v in params.items() if not k.startswith("layer2.")}
    old_meta = {k: v for k, v in meta.items() if k != "layers"}  # a file written before stacks
    save_safetensors(tmp_path / "old.safetensors", one, old_meta)
    assert load_lm(str(tmp_path / "old.safetensors")).cell.layers == 1
    save_safetensors(tmp_path / "bad.safetensors", params, {**meta, "layers": "1"})  # layer2.* unexpected
    msg = error_line(capsys, "lm", "evaluate", "--model", tmp_path / "bad.safetensors", "--text", f)
    assert "bad.safetensors" in msg and "unexpected array 'layer2." in msg
    save_safetensors(tmp_path / "bad3.safetensors", params, {**meta, "layers": "3"})
    msg = error_line(capsys, "lm", "evaluate", "--model", tmp_path / "bad3.safetensors", "--text", f)
    assert "layer3.W_ax is missing" in msg
    save_safetensors(tmp_path / "bad2.safetensors", params, {**meta, "layers": "x"})
    msg = error_line(capsys, "lm", "evaluate", "--model", tmp_path / "bad2.safetensors", "--text", f)
    assert "bad2.safetensors" in msg and "layers" in msg


def test_average_is_the_moving_average_of_the_updates_weights_and_is_what_is_kept(tmp_path):
    """--average β: w̄ ← β_n w̄ + (1 − β_n) w after update n, β_n = min(β, (1 + n) / (10 + n)); the held-out
    bpc scores w̄, and the best w̄ is the model file's; the updates themselves do not change."""
    from bptt.lm.config import LMConfig
    from bptt.lm.trainer import LMTrainer

    def trainer(average, name):
        cfg = LMConfig(text=[str(corpus(tmp_path))], hidden=N_A, batch_size=B, bptt_steps=K, dtype="float64",
                       average=average, updates=12, eval_every=4, lr=0.05)  # fmt: skip
        (tmp_path / name).mkdir()
        t = LMTrainer(cfg, tmp_path / name)
        t.read_data()
        t.init_state()
        return t

    t, plain = trainer(0.6, "avg"), trainer(0.0, "plain")
    want = {k: v.copy() for k, v in t.params.items()}
    for n in range(1, 7):  # β_n: 2/11, 3/12, 4/13, 5/14, 0.6, 0.6
        t.update()
        plain.update()
        beta = min(0.6, (1 + n) / (10 + n))
        want = {k: beta * want[k] + (1 - beta) * t.params[k] for k in want}
    for k in want:
        np.testing.assert_allclose(t.avg[k], want[k], rtol=0, atol=1e-13, err_msg=k)
        assert np.array_equal(t.params[k], plain.params[k])  # the same updates
        assert not np.allclose(t.avg[k], t.params[k], atol=1e-6)
    record = t.evaluate(0.0)
    assert record["held_out_bpc"] == evaluate_lines(want, t.cell, t.alphabet, t.held)
    for k in want:
        np.testing.assert_array_equal(t.best_params[k], t.avg[k])


def test_line_unit_model_writes_lines(tmp_path, capsys):
    f = tmp_path / "names.txt"
    f.write_text("".join(f"{n}\n" for n in ["Ann Lee", "Bob Ray", "Cy Young", "Di Moss"] * 10))
    out = tmp_path / "names"
    argv = ["lm", "train", "--text", str(f), "--unit", "line", "--out", str(out), "--updates", "60", *TRAIN]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["sample", "--model", str(out), "--n", "5", "--length", "30", "--seed", "0"]) == 0
    lines = capsys.readouterr().out.split("\n")[:-1]
    assert len(lines) == 5 and all(len(line) <= 30 for line in lines)


@pytest.mark.parametrize("rotate", [False, True])
def test_each_epoch_reads_the_text_as_a_circle_from_a_seeded_place(tmp_path, rotate):
    cfg = LMConfig(text=[str(corpus(tmp_path))], batch_size=4, rotate=rotate, updates=1)
    t = LMTrainer(cfg, tmp_path / "run")
    t.read_data()
    ids, L = t.ids, t.steps_per_stream
    first = [a.copy() for a in t.streams(0)]
    assert np.array_equal(first[0], ids[: 4 * L].reshape(4, L).T)  # epoch 0: stream b reads ids[b·L …]
    starts = []
    for epoch in (1, 2, 3, 1):
        inputs, targets = t.streams(epoch)
        assert inputs.shape == targets.shape == (L, 4)
        # every stream reads L consecutive characters of the circular text, and predicts the next ones
        s = next(j for j in range(len(ids)) if np.array_equal(np.roll(ids, -j)[:L], inputs[:, 0]))
        starts.append(s)
        for b in range(4):
            assert np.array_equal(inputs[:, b], np.roll(ids, -(s + b * L))[:L])
            assert np.array_equal(targets[:, b], np.roll(ids, -(s + b * L + 1))[:L])
    if rotate:
        assert len(set(starts[:3])) == 3 and starts[3] == starts[0]  # new places, drawn again alike
    else:
        assert starts == [0, 0, 0, 0]


@pytest.mark.parametrize(
    ("unit", "extra"),
    [
        ("stream", []),
        ("line", []),
        ("stream", ["--layers", "2"]),
        ("stream", ["--average", "0.9"]),
        ("stream", ["--schedule", "cosine"]),
        ("stream", ["--rotate", "--bptt-steps", "100"]),  # 5 updates an epoch: the fault in the third
        ("line", ["--zoneout-cell", "0.5", "--zoneout-hidden", "0.1"]),
        ("stream", ["--input-dropout", "0.2"]),
    ],
)
def test_sigterm_then_resume_is_bit_identical(tmp_path, monkeypatch, unit, extra):
    f = corpus(tmp_path)
    argv = ["lm", "train", "--text", str(f), "--unit", unit, "--updates", "23", "--dropout", "0.3", *TRAIN,
            "--weight-drop", "0.25", *extra]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "ref")]) == 0
    out = tmp_path / "run"
    assert run_with_fault(monkeypatch, [*argv, "--out", str(out)], "SIGTERM@lm:step:12") == 143
    assert not (out / "weights.safetensors").exists()
    assert main(["lm", "train", "--resume", str(out), "--quiet"]) == 0
    ref = tmp_path / "ref"
    assert (ref / "weights.safetensors").read_bytes() == (out / "weights.safetensors").read_bytes()
    drop = lambda d: {k: v for k, v in json.loads((d / "result.json").read_text()).items() if k != "seconds"}  # noqa: E731
    assert drop(ref) == drop(out)
    settings = json.loads((out / "lm.json").read_text())["settings"]  # the options given reached the run
    assert settings["rotate"] == ("--rotate" in extra)
    assert settings["input_dropout"] == (0.2 if "--input-dropout" in extra else 0.0)


def test_resume_and_ngram_work_from_another_directory(tmp_path, capsys, monkeypatch):
    """The run records its text files' absolute paths: a relative --text given in one directory is found
    by --resume and --ngram run from another."""
    corpus(tmp_path)
    monkeypatch.chdir(tmp_path)
    argv = ["lm", "train", "--text", "train.txt", "--updates", "20", "--out", "run", *TRAIN]
    assert run_with_fault(monkeypatch, argv, "SIGTERM@lm:step:3") == 143
    assert json.loads((tmp_path / "run" / "lm.json").read_text())["settings"]["text"] == [
        str(tmp_path / "train.txt")
    ]
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["lm", "train", "--resume", "../run", "--quiet"]) == 0
    capsys.readouterr()
    assert (
        main(["lm", "evaluate", "--model", "../run", "--text", "../train.txt", "--ngram", "3", "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["ngram"]["order"] == 3


def test_resume_refuses_a_changed_text(tmp_path, capsys, monkeypatch):
    f = corpus(tmp_path)
    out = tmp_path / "run"
    argv = ["lm", "train", "--text", str(f), "--updates", "20", "--out", str(out), *TRAIN]
    assert run_with_fault(monkeypatch, argv, "SIGTERM@lm:step:3") == 143
    f.write_text(f.read_text() + "one more line\n")
    assert "the text differs" in error_line(capsys, "lm", "train", "--resume", out)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ([], ["--text", "no text"]),
        (["--text", "MISSING"], ["MISSING", "no such file"]),
        (["--text", "TRAIN", "--time-budget", "0"], ["--time-budget", "more than 0"]),
        (["--text", "TRAIN", "--hidden", "0"], ["--hidden", "expected an integer"]),
        (["--text", "TRAIN", "--layers", "0"], ["--layers", "expected an integer"]),
        (["--text", "TRAIN", "--average", "1"], ["--average", "expected a number"]),
        (["--text", "TRAIN", "--dropout", "1"], ["--dropout", "expected a number"]),
        (["--text", "TRAIN", "--weight-drop", "-0.1"], ["--weight-drop", "expected a number"]),
        (["--text", "TRAIN", "--entities", "PER"], ["--entities", "needs --conll"]),
        (["--text", "TRAIN", "--cell", "rnn", "--init", "chrono"], ["--init", "rnn cell takes"]),
        (["--text", "TRAIN", "--batch-size", "100000"], ["--batch-size"]),
        (["--text", "TRAIN", "--unit", "line", "--rotate"], ["--rotate", "only for --unit stream"]),
        (["--text", "TRAIN", "--cell", "gru", "--zoneout-cell", "0.5"], ["--zoneout-cell", "not the gru"]),
        (["--text", "TRAIN", "--zoneout-hidden", "1"], ["--zoneout-hidden", "expected a number"]),
        (["--text", "TRAIN", "--input-dropout", "1"], ["--input-dropout", "expected a number"]),
        (["--text", "TRAIN", "--input-dropout", "nan"], ["--input-dropout", "expected a number"]),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, extra, words):
    f = corpus(tmp_path)
    extra = [str(f) if a == "TRAIN" else str(tmp_path / a) if a == "MISSING" else a for a in extra]
    message = error_line(
        capsys, "lm", "train", "--out", tmp_path / "out", "--updates", "3", "--quiet", *extra
    )
    for w in words:
        assert w in message, message
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_no_overwrite_and_bad_models(tmp_path, capsys):
    f = corpus(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert "holds files" in error_line(capsys, "lm", "train", "--text", f, "--out", out, "--updates", "2")
    assert (out / "mine.txt").read_text() == "keep"
    assert "no such file" in error_line(capsys, "lm", "evaluate", "--model", tmp_path / "none", "--text", f)
    assert "--temperature" in error_line(capsys, "sample", "--model", out, "--temperature", "0")
    bad = tmp_path / "empty.txt"
    bad.write_text("\n\n")
    msg = error_line(capsys, "lm", "train", "--text", bad, "--out", tmp_path / "e", "--updates", "2")
    assert "no text" in msg


def test_baseline_command_matches_the_library(tmp_path, capsys):
    from bptt.lm.ngram import KneserNey, bits_per_char

    f, g = corpus(tmp_path), tmp_path / "eval.txt"
    g.write_text("the cat 3 sat on the mat number 7\nthe dog sat\n")
    capsys.readouterr()
    assert (
        main(["lm", "baseline", "--text", str(f), "--eval-text", str(g), "--orders", "1", "3", "--json"]) == 0
    )
    got = json.loads(capsys.readouterr().out)
    a = Alphabet.of(f.read_text())
    want = bits_per_char(KneserNey(3, len(a)).fit([a.encode(f.read_text())]), [a.encode(g.read_text())])
    assert set(got) == {"1", "3"} and math.isclose(got["3"], want, rel_tol=1e-12) and got["3"] < got["1"]
    assert main(["lm", "baseline", "--text", str(f), "--eval-text", str(g), "--unit", "line", "--json"]) == 0
    lines = json.loads(capsys.readouterr().out)
    seqs = [a.encode("\n" + line + "\n") for line in g.read_text().split("\n") if line]
    want = bits_per_char(
        KneserNey(7, len(a)).fit([a.encode("\n" + s + "\n") for s in f.read_text().split("\n") if s]), seqs, 1
    )
    assert math.isclose(lines["7"], want, rel_tol=1e-12)
    assert "--eval-text" in error_line(capsys, "lm", "baseline", "--text", f)
    assert "--orders" in error_line(capsys, "lm", "baseline", "--text", f, "--eval-text", g, "--orders", "0")


@pytest.mark.parametrize(("cores", "want"), [(1, 1), (2, 2), (16, 2)])
def test_lm_commands_use_two_threads_where_two_cores_exist(monkeypatch, cores, want):
    import os

    from bptt.cli import build_parser

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    p = build_parser()
    train = p.parse_args(["lm", "train", "--text", "t.txt", "--out", "run"])
    assert train.run.args[0]["threads"] == want  # the default train_run fills in (`track_given`)
    assert p.parse_args(["lm", "evaluate", "--model", "run", "--text", "t.txt"]).threads == want
    assert p.parse_args(["tag", "--model", "run"]).threads == 1  # the tagger's small matrices: one
