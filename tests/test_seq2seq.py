"""The encoder–decoder (bptt.seq2seq): gradient checks, PyTorch twin, padding, decoding, bad input, learning.

Every cell × attention on/off, at small odd sizes (T_x = 5, T_y = 4, B = 3, n_x = 7, n_y = 6,
n_e = 4, n_d = 5, n_att = 3) with ragged source lengths and garbage ids in the padding.
"""

import functools
import itertools
import time

import numpy as np
import pytest

import bptt
from bptt.errors import BpttError
from bptt.seq2seq import (
    Seq2SeqConfig,
    beam_decode,
    decoder_step,
    greedy_decode,
    init_seq2seq,
    param_shapes,
    seq2seq_backward,
    seq2seq_forward,
    seq2seq_loss,
)
from bptt.seq2seq.network import encode
from bptt.training.optim import Adam
from tests.helpers import torch_twin, torch_twin_grads

SIZES = {"n_x": 7, "n_y": 6, "n_e": 4, "n_d": 5, "n_att": 3}
T_X, T_Y, B = 5, 4, 3
LENGTHS = np.array([5, 2, 3])
START, END = 0, 1
CASES = [(cell, attention) for cell in ("rnn", "gru", "lstm") for attention in (True, False)]
CASE_IDS = [f"{cell}-{'attention' if a else 'summary'}" for cell, a in CASES]

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def config(cell, attention, **sizes):
    return Seq2SeqConfig(cell, attention=attention, **{**SIZES, **sizes})


def random_params(cfg, rng, scale=1.0):
    """Standard-normal parameters times ``scale`` (no zero biases: they would hide bias bugs)."""
    return {k: scale * rng.standard_normal(s) for k, s in param_shapes(cfg).items()}


def random_batch(rng, lengths=LENGTHS, T_x=T_X, T_y=T_Y, n_x=SIZES["n_x"], n_y=SIZES["n_y"]):
    """Source ids (garbage, out of range too, in the padding), Y_in, Y_out and a random target mask."""
    X = rng.integers(0, n_x, size=(T_x, len(lengths)))
    pad = np.arange(T_x)[:, None] >= np.asarray(lengths)[None, :]
    X[pad] = rng.integers(-5, n_x + 5, size=int(pad.sum()))
    Y_in = rng.integers(0, n_y, size=(T_y, len(lengths)))
    Y_out = rng.integers(0, n_y, size=(T_y, len(lengths)))
    mask = rng.random((T_y, len(lengths))) < 0.7
    return X, Y_in, Y_out, mask


def setup(cell, attention, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    cfg = config(cell, attention)
    return cfg, random_params(cfg, rng, scale), *random_batch(rng)


# ------------------------------------------------------------------------------------- gradient checks


def fourth_order(fun, arrays):
    """``fun`` for ``bptt.gradcheck``, so that its two-point central difference is the five-point one.

    gradcheck moves one element by ±ε and takes (F(+ε) − F(−ε)) / 2ε. With F(θ + δ) =
    (8 L(θ + δ) − L(θ + 2δ)) / 6 that is (8 (L(+ε) − L(−ε)) − (L(+2ε) − L(−2ε))) / 12ε, whose
    truncation error is O(ε⁴): at ε = 1e-3 both it and the round-off are ~1e-12. The two-point
    difference at ε = 1e-5 carries ~1e-10, which is 1e-5 relative error for the attention's
    weights, whose gradients are ~1e-3 here. Returns: F and the float64 arrays to check.
    """
    base = {k: np.array(v, dtype=np.float64) for k, v in arrays.items()}

    def F(arrs):
        L, grads = fun(arrs)
        moved = [k for k in arrs if not np.array_equal(arrs[k], base[k])]
        if not moved:  # the unperturbed call: gradcheck takes the analytic gradients from it
            return L, grads
        (k,) = moved
        far = {**arrs, k: 2 * arrs[k] - base[k]}  # θ + 2δ
        return (8 * L - fun(far)[0]) / 6, grads

    return F, base


@pytest.mark.parametrize("cell, attention", CASES, ids=CASE_IDS)
def test_gradcheck_every_parameter(cell, attention):
    cfg, p, X, Y_in, Y_out, mask = setup(cell, attention)
    F, arrays = fourth_order(lambda a: seq2seq_loss(a, cfg, X, LENGTHS, Y_in, Y_out, mask)[:2], p)
    report = bptt.gradcheck(F, arrays, eps=1e-3, max_elements=40)
    assert set(report.errors) == set(param_shapes(cfg))
    assert report.max_error < 1e-6, str(report)


def test_gradcheck_can_fail():
    """The check sees a gradient that is 1% off in one entry of the attention."""
    cfg, p, X, Y_in, Y_out, mask = setup("lstm", True)

    def wrong(a):
        L, grads, _ = seq2seq_loss(a, cfg, X, LENGTHS, Y_in, Y_out, mask)
        grads["att.W_s"][1, 2] *= 1.01
        return L, grads

    F, arrays = fourth_order(wrong, p)
    report = bptt.gradcheck(F, arrays, eps=1e-3, max_elements=15)  # all of att.W_s (15)
    assert report.errors["att.W_s"] > 1e-3 and report.errors["att.W_h"] < 1e-6


@pytest.mark.parametrize("cell, attention", [("gru", True), ("lstm", False)])
def test_backward_of_a_random_weight_loss(cell, attention):
    """L = Σ Z ⊙ R through seq2seq_forward and seq2seq_backward: the trainer's own pair."""
    cfg, p, X, Y_in, _, _ = setup(cell, attention, seed=3)
    R = np.random.default_rng(4).standard_normal((T_Y, B, cfg.n_y))

    def fun(a):
        Z, cache = seq2seq_forward(a, cfg, X, LENGTHS, Y_in)
        return float((Z * R).sum()), seq2seq_backward(R, cache)

    F, arrays = fourth_order(fun, p)
    report = bptt.gradcheck(F, arrays, eps=1e-3, max_elements=15)
    assert report.max_error < 1e-6, str(report)


# ------------------------------------------------------------------------------------- PyTorch twin


def torch_network(p, cfg, X, lengths, Y_in):
    """The same network in torch: a bidirectional module on packed sequences, a step cell, autograd.

    Returns: Z (T_y, B, n_y), alphas (T_y, B, T_x) or None, the modules and the other leaf tensors.
    """
    parts = {
        d: {k.split(".", 1)[1]: v for k, v in p.items() if k.startswith(d + ".")}
        for d in ("enc_f", "enc_b", "dec")
    }
    enc = torch_twin(cfg.cell, parts["enc_f"], parts["enc_b"])
    kind = {"rnn": torch.nn.RNNCell, "gru": torch.nn.GRUCell, "lstm": torch.nn.LSTMCell}[cfg.cell]
    step = kind(cfg.n_y + 2 * cfg.n_e, cfg.n_d, dtype=torch.float64)  # PyTorch's layout, suffix-free
    step.load_state_dict(
        {k.removesuffix("_l0"): v for k, v in torch_twin(cfg.cell, parts["dec"]).state_dict().items()}
    )
    leaves = {
        k: torch.tensor(v, requires_grad=True) for k, v in p.items() if not k.startswith(("enc_", "dec."))
    }
    T_x, B_ = X.shape
    real = torch.tensor(np.arange(T_x)[:, None] < lengths[None, :])  # (T_x, B)
    Xo = torch.nn.functional.one_hot(torch.tensor(np.where(real.numpy(), X, 0)), cfg.n_x).double()
    packed = torch.nn.utils.rnn.pack_padded_sequence(Xo, torch.tensor(lengths), enforce_sorted=False)
    H, _ = torch.nn.utils.rnn.pad_packed_sequence(enc(packed)[0], total_length=T_x)  # (T_x, B, 2n_e)
    s = torch.zeros(B_, cfg.n_d, dtype=torch.float64)
    state = (s, torch.zeros_like(s)) if cfg.cell == "lstm" else s
    if not cfg.attention:
        c = torch.cat([H[torch.tensor(lengths) - 1, torch.arange(B_), : cfg.n_e], H[0, :, cfg.n_e :]], dim=1)
    Z, alphas = [], []
    for t in range(Y_in.shape[0]):
        if cfg.attention:
            u = torch.tanh(
                H @ leaves["att.W_h"].T + s @ leaves["att.W_s"].T + leaves["att.b"]
            )  # (T_x, B, n_att)
            alpha = torch.softmax((u @ leaves["att.v"]).masked_fill(~real, float("-inf")), dim=0)  # (T_x, B)
            c = (alpha[:, :, None] * H).sum(dim=0)
            alphas.append(alpha.T)
        x = torch.cat([torch.nn.functional.one_hot(torch.tensor(Y_in[t]), cfg.n_y).double(), c], dim=1)
        state = step(x, state)
        s = state[0] if cfg.cell == "lstm" else state
        Z.append(torch.cat([s, c], dim=1) @ leaves["W_ya"].T + leaves["b_y"])
    return torch.stack(Z), torch.stack(alphas) if alphas else None, enc, step, leaves


def torch_grads(cfg, enc, step, leaves):
    """The twin's gradients under bptt's keys (bias_ih is b_a; the GRU's b_hn is bias_hh's n block)."""
    grads = {f"enc_f.{k}": v for k, v in torch_twin_grads(enc, cfg.cell).items()}
    grads.update({f"enc_b.{k}": v for k, v in torch_twin_grads(enc, cfg.cell, "_l0_reverse").items()})
    dec = {"W_ax": step.weight_ih.grad, "W_aa": step.weight_hh.grad, "b_a": step.bias_ih.grad}
    if cfg.cell == "gru":
        dec["b_hn"] = step.bias_hh.grad[2 * cfg.n_d :]
    grads.update({f"dec.{k}": v.numpy() for k, v in dec.items()})
    grads.update({k: v.grad.numpy() for k, v in leaves.items()})
    return grads


@needs_torch
@pytest.mark.parametrize("cell, attention", CASES, ids=CASE_IDS)
def test_loss_and_every_gradient_match_torch(cell, attention):
    cfg, p, X, Y_in, Y_out, mask = setup(cell, attention, seed=7)
    L, grads, per_sequence = seq2seq_loss(p, cfg, X, LENGTHS, Y_in, Y_out, mask)
    Z, cache = seq2seq_forward(p, cfg, X, LENGTHS, Y_in)

    Z_t, alphas_t, enc, step, leaves = torch_network(p, cfg, X, LENGTHS, Y_in)
    ce = torch.nn.functional.cross_entropy(
        Z_t.reshape(-1, cfg.n_y), torch.tensor(Y_out.reshape(-1)), reduction="none"
    )
    per_sequence_t = (ce.reshape(T_Y, B) * torch.tensor(mask)).sum(dim=0)
    L_t = per_sequence_t.sum() / B
    L_t.backward()
    np.testing.assert_allclose(Z, Z_t.detach().numpy(), rtol=0, atol=1e-10)
    if attention:
        np.testing.assert_allclose(cache.alphas, alphas_t.detach().numpy(), rtol=0, atol=1e-10)
    assert abs(L - L_t.item()) < 1e-10
    np.testing.assert_allclose(per_sequence, per_sequence_t.detach().numpy(), rtol=0, atol=1e-10)
    ref = torch_grads(cfg, enc, step, leaves)
    assert list(grads) == list(p) and set(ref) == set(p)
    for k in p:
        assert grads[k].shape == p[k].shape, k
        np.testing.assert_allclose(grads[k], ref[k], rtol=0, atol=1e-10, err_msg=k)


# ------------------------------------------------------------------------------------- step == sequence


@pytest.mark.parametrize("cell, attention", CASES, ids=CASE_IDS)
def test_decoder_step_loop_equals_forward(cell, attention):
    """Looping decoder_step with teacher forcing gives seq2seq_forward's logits (the one-call decoder too)."""
    cfg, p, X, Y_in, _, _ = setup(cell, attention, seed=2)
    Z, cache = seq2seq_forward(p, cfg, X, LENGTHS, Y_in)
    enc = encode(p, cfg, X, LENGTHS, np.dtype(np.float64))
    state = bptt.get_cell(cell).zero_state(B, cfg.n_d, np.float64)
    for t in range(T_Y):
        z, state, step = decoder_step(p, cfg, enc, Y_in[t], state)
        np.testing.assert_allclose(z, Z[t], rtol=0, atol=1e-12)
        if attention:
            np.testing.assert_allclose(step.alpha, cache.alphas[t], rtol=0, atol=1e-14)


# ------------------------------------------------------------------------------------- padding


@pytest.mark.parametrize("cell, attention", CASES, ids=CASE_IDS)
def test_padding_changes_nothing(cell, attention):
    """A sequence's loss and decoded output are the same alone, beside longer ones, and with other padding."""
    cfg, p, X, Y_in, Y_out, mask = setup(cell, attention, seed=5)
    L, grads, per = seq2seq_loss(p, cfg, X, LENGTHS, Y_in, Y_out, mask)

    X2 = X.copy()
    pad = np.arange(T_X)[:, None] >= LENGTHS[None, :]
    X2[pad] = np.random.default_rng(9).integers(-100, 100, size=int(pad.sum()))  # other garbage
    L2, grads2, per2 = seq2seq_loss(p, cfg, X2, LENGTHS, Y_in, Y_out, mask)
    assert L2 == L and all(np.array_equal(grads2[k], grads[k]) for k in p)

    rng = np.random.default_rng(11)
    X_long = np.concatenate([X, rng.integers(0, cfg.n_x, size=(4, B))])  # T_x = 9 ...
    X_long = np.concatenate([X_long, rng.integers(0, cfg.n_x, size=(9, 1))], axis=1)  # ... for a new sequence
    lengths_long = np.append(LENGTHS, 9)
    Y = [np.concatenate([Y, rng.integers(0, cfg.n_y, size=(T_Y, 1))], axis=1) for Y in (Y_in, Y_out)]
    mask_long = np.concatenate([mask, np.ones((T_Y, 1), bool)], axis=1)
    _, _, per_long = seq2seq_loss(p, cfg, X_long, lengths_long, *Y, mask_long)
    np.testing.assert_allclose(per_long[:B], per, rtol=1e-13, atol=0)

    ids, _ = greedy_decode(p, cfg, X, LENGTHS, START, END, 6)
    ids_long, _ = greedy_decode(p, cfg, X_long, lengths_long, START, END, 6)
    assert ids_long[:B] == ids
    beams = beam_decode(p, cfg, X_long, lengths_long, START, END, 6, beam=3)
    for b in range(B):
        n = LENGTHS[b]
        alone = X[:n, b : b + 1]
        _, _, per_alone = seq2seq_loss(
            p, cfg, alone, [n], Y_in[:, b : b + 1], Y_out[:, b : b + 1], mask[:, b : b + 1]
        )
        np.testing.assert_allclose(per_alone[0], per[b], rtol=1e-13, atol=0)
        assert greedy_decode(p, cfg, alone, [n], START, END, 6)[0] == [ids[b]]
        assert beam_decode(p, cfg, alone, [n], START, END, 6, beam=3) == [beams[b]]


# ------------------------------------------------------------------------------------- decoding


def log_probs(p, cfg, X, n, outputs, max_len, start=START, end=END):
    """Σ_t log p(y⟨t⟩) of each output of one source (X (T_x, 1), length n): ids and then end_id, or
    max_len ids without it, as the decoders score them."""
    k = len(outputs)
    Y_in = np.full((max_len, k), start)
    Y_out = np.full((max_len, k), start)
    mask = np.zeros((max_len, k), bool)
    for i, ids in enumerate(outputs):
        full = list(ids) + ([end] if len(ids) < max_len else [])
        Y_out[: len(full), i] = full
        Y_in[1 : len(full), i] = full[:-1]
        mask[: len(full), i] = True
    _, _, per = seq2seq_loss(p, cfg, np.repeat(X, k, axis=1), np.full(k, n), Y_in, Y_out, mask)
    return -per


@functools.lru_cache
def briefly_trained(cell, attention, steps=100):
    """A network after a few Adam steps on reversing 1 to 5 symbols: its outputs end at different steps.

    Returns: cfg, params, and a batch of 10 sources X with their lengths.
    """
    K = 4
    cfg = Seq2SeqConfig(cell, K, K + 2, 8, 8, 8, attention=attention)
    p = init_seq2seq(cfg, seed=0, dtype=np.float64)
    opt = Adam(lr=0.02)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        X, lengths, Y_in, Y_out, mask = reversal_batch(rng, 16, K)
        opt.step(p, seq2seq_loss(p, cfg, X, lengths, Y_in, Y_out, mask)[1])
    X, lengths, *_ = reversal_batch(np.random.default_rng(1), 10, K)
    return cfg, p, X, lengths


@pytest.mark.parametrize("cell, attention", CASES, ids=CASE_IDS)
def test_greedy_is_argmax_of_its_own_teacher_forcing(cell, attention):
    """Fed its own outputs as Y_in, the teacher-forced network's argmax at each step is what greedy chose."""
    cfg, p, X, lengths = briefly_trained(cell, attention)
    B_, T_x = len(lengths), X.shape[0]
    max_len = 4
    start, end = cfg.n_y - 2, cfg.n_y - 1
    ids, alphas = greedy_decode(p, cfg, X, lengths, start, end, max_len)
    ended = [len(out) < max_len for out in ids]
    assert any(ended) and not all(ended) and any(0 < len(out) < max_len for out in ids)
    steps = max(len(out) + (len(out) < max_len) for out in ids)
    assert (alphas is None) == (not attention) and (alphas is None or alphas.shape == (steps, B_, T_x))
    Y_in = np.full((steps, B_), end)  # after a sequence's end: any symbol
    Y_in[0] = start
    for b, out in enumerate(ids):
        Y_in[1 : len(out) + 1, b] = out[: steps - 1]
    Z, cache = seq2seq_forward(p, cfg, X, lengths, Y_in)
    for b, out in enumerate(ids):
        emitted = out + ([end] if len(out) < max_len else [])
        assert Z[: len(emitted), b].argmax(axis=1).tolist() == emitted
        if attention:
            np.testing.assert_allclose(alphas[: len(emitted), b], cache.alphas[: len(emitted), b], atol=1e-14)
            assert not alphas[len(emitted) :, b].any()  # rows after the end step are 0


@pytest.mark.parametrize("cell, attention", CASES, ids=CASE_IDS)
def test_beam_search(cell, attention):
    """beam = 1 is greedy; wider beams score at least as well; a beam that keeps every prefix is exact."""
    cfg, p, X, *_ = setup(cell, attention, seed=17, scale=1.5)
    max_len = 3
    greedy, _ = greedy_decode(p, cfg, X, LENGTHS, START, END, max_len)
    assert beam_decode(p, cfg, X, LENGTHS, START, END, max_len, beam=1) == greedy
    wide = {k: beam_decode(p, cfg, X, LENGTHS, START, END, max_len, beam=k) for k in (2, 4, 25)}
    others = [y for y in range(cfg.n_y) if y != END]
    for b, n in enumerate(LENGTHS):
        x = X[:, b : b + 1]
        scores = {k: log_probs(p, cfg, x, n, [wide[k][b]], max_len)[0] for k in wide}
        g = log_probs(p, cfg, x, n, [greedy[b]], max_len)[0]
        assert scores[2] >= g - 1e-12 and scores[4] >= g - 1e-12
        # every output: l < max_len symbols and the end, or max_len symbols; 25 = 5² keeps every prefix
        everything = [
            list(s) for length in range(max_len + 1) for s in itertools.product(others, repeat=length)
        ]
        all_scores = log_probs(p, cfg, x, n, everything, max_len)
        assert np.logaddexp.reduce(all_scores) == pytest.approx(0.0, abs=1e-12)  # they are all the outputs
        assert wide[25][b] == everything[int(np.argmax(all_scores))]
        assert scores[25] == pytest.approx(all_scores.max(), abs=1e-12)
    cfg, p, X, lengths = briefly_trained(cell, attention)  # and on a network whose outputs end
    start, end = cfg.n_y - 2, cfg.n_y - 1
    greedy, _ = greedy_decode(p, cfg, X, lengths, start, end, 6)
    assert beam_decode(p, cfg, X, lengths, start, end, 6, beam=1) == greedy
    beams = beam_decode(p, cfg, X, lengths, start, end, 6, beam=3)
    for b, n in enumerate(lengths):
        g, k = log_probs(p, cfg, X[:, b : b + 1], n, [greedy[b], beams[b]], 6, start, end)
        assert k >= g - 1e-12


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_attention_weights(cell):
    """α⟨t⟩ sums to 1 over each sequence's real positions and is 0 at its padding (training and greedy)."""
    cfg, p, X, Y_in, *_ = setup(cell, True, seed=19)
    real = np.arange(T_X)[None, :] < LENGTHS[:, None]  # (B, T_x)
    _, cache = seq2seq_forward(p, cfg, X, LENGTHS, Y_in)
    _, alphas = greedy_decode(p, cfg, X, LENGTHS, START, END, 5)
    for A in (cache.alphas, alphas[:1]):
        assert (A[:, ~real] == 0).all() and (A[:, real] > 0).all()
        np.testing.assert_allclose(A.sum(axis=2), 1.0, atol=1e-14)


# ------------------------------------------------------------------------------------- parameters, bad input


@pytest.mark.parametrize("cell, attention", CASES, ids=CASE_IDS)
def test_init(cell, attention):
    cfg = config(cell, attention)
    p = init_seq2seq(cfg, seed=3)
    assert list(p) == list(param_shapes(cfg))
    assert all(p[k].shape == s and p[k].dtype == np.float32 for k, s in param_shapes(cfg).items())
    assert ("att.v" in p) == attention and not p["b_y"].any()
    assert all(np.array_equal(p[k], v) for k, v in init_seq2seq(cfg, seed=3).items())
    assert np.abs(p["W_ya"]).max() <= 1 / np.sqrt(cfg.n_d + 2 * cfg.n_e)
    p64 = init_seq2seq(cfg, seed=3, dtype=np.float64)
    X, Y_in, Y_out, mask = random_batch(np.random.default_rng(0))
    L, grads, _ = seq2seq_loss(p64, cfg, X, LENGTHS, Y_in, Y_out, mask)
    assert np.isfinite(L) and all(grads[k].dtype == np.float64 for k in grads)


def bad_inputs():
    """The good arguments of seq2seq_loss, and (what is changed, the message's start, or None: no error)."""
    cfg, p, X, Y_in, Y_out, mask = setup("lstm", True)
    ok = {"params": p, "cfg": cfg, "X": X, "lengths": LENGTHS, "Y_in": Y_in, "Y_out": Y_out, "mask": mask}
    longer = X.copy()
    longer[0, 0] = 7
    padded_bad = Y_out.copy()
    padded_bad[~mask] = 99  # out of range where the mask is off: allowed
    return ok, [
        ({"cfg": "lstm"}, "cfg: expected a Seq2SeqConfig"),
        ({"params": {k: v for k, v in p.items() if k != "att.v"}}, "params: missing key(s) att.v"),
        ({"params": {**p, "att.u": p["att.v"]}}, "params: unexpected key(s) att.u"),
        ({"params": {**p, "dec.W_ax": p["dec.W_ax"][:, 1:]}}, "params['dec.W_ax']: shape (20, 13) differs"),
        ({"params": {**p, "b_y": p["b_y"].astype(np.float32)}}, "params['b_y']: dtype float32 differs"),
        ({"params": {**p, "W_ya": p["W_ya"] * np.nan}}, "params['W_ya']: contains NaN"),
        ({"X": X.astype(float)}, "X: expected integer symbol ids"),
        ({"X": X[:, :, None]}, "X: expected 2 dimensions"),
        ({"X": longer}, "X: ids at real positions must lie in [0, 7)"),
        ({"X": X[:0]}, "X: empty input"),
        ({"lengths": np.array([5, 0, 3])}, "lengths: must lie in 1..T_x = 1..5"),
        ({"lengths": np.array([6, 2, 3])}, "lengths: must lie in 1..T_x = 1..5"),
        ({"lengths": np.array([5, 2])}, "lengths: dimension B is 2"),
        ({"lengths": np.array([5.0, 2, 3])}, "lengths: expected integers"),
        ({"Y_in": Y_in[:, :2]}, "Y_in: dimension B is 2"),
        ({"Y_in": Y_in + 6}, "Y_in: ids must lie in [0, 6)"),
        ({"Y_out": Y_out[:3]}, "Y_out: dimension T_y is 3"),
        ({"Y_out": np.where(mask, 6, Y_out)}, "Y_out: ids where mask is set must lie in [0, 6)"),
        ({"Y_out": padded_bad}, None),
        ({"mask": mask * 2}, "mask: expected only 0/1"),
        ({"mask": mask[:, :1]}, "mask: dimension B is 1"),
    ]


def test_bad_input_is_one_clear_line():
    ok, cases = bad_inputs()
    for change, message in cases:
        args = {**ok, **change}
        if message is None:
            seq2seq_loss(**args)
            continue
        with pytest.raises(BpttError) as err:
            seq2seq_loss(**args)
        text = str(err.value)
        assert text.startswith(message) and "\n" not in text, (change.keys(), text)


def test_bad_config_decoding_and_backward_arguments():
    cfg, p, X, Y_in, *_ = setup("gru", False)
    for kwargs, message in (
        ({"cell": "cnn"}, "cfg.cell: expected one of"),
        ({"n_e": 0}, "cfg.n_e: expected an int >= 1"),
        ({"n_y": 2.5}, "cfg.n_y: expected an int >= 1"),
        ({"attention": "yes"}, "cfg.attention: expected True or False"),
    ):
        with pytest.raises(BpttError, match="^" + message):
            Seq2SeqConfig(**{"cell": "gru", **SIZES, "attention": True, **kwargs})
    Seq2SeqConfig("gru", 7, 6, 4, 5, 0, attention=False)  # no attention: no attention units needed
    for kwargs, message in (
        ({"start_id": 6}, "start_id: expected an int in [0, 5]"),
        ({"end_id": -1}, "end_id: expected an int in [0, 5]"),
        ({"max_len": 0}, "max_len: expected an int >= 1"),
    ):
        args = {"start_id": START, "end_id": END, "max_len": 4, **kwargs}
        for decode in (greedy_decode, beam_decode):
            with pytest.raises(BpttError, match="^" + message.replace("[", r"\[")):
                decode(p, cfg, X, LENGTHS, **args)
    with pytest.raises(BpttError, match="^beam: expected an int >= 1"):
        beam_decode(p, cfg, X, LENGTHS, START, END, 4, beam=0)
    Z, cache = seq2seq_forward(p, cfg, X, LENGTHS, Y_in)
    with pytest.raises(BpttError, match="^dZ: dimension n_y is 5"):
        seq2seq_backward(Z[:, :, 1:], cache)
    with pytest.raises(BpttError, match="^cache: expected the Seq2SeqCache"):
        seq2seq_backward(Z, cache.enc)


# ------------------------------------------------------------------------------------- learning


def reversal_batch(rng, n, K, lengths=None):
    """n sequences of 1 to 5 symbols from 0 … K−1 (or of the given lengths), padded to 5; the target is
    each sequence reversed, then the end symbol. Output symbols: the K source symbols, start = K, end = K + 1.

    Returns: X (5, n), lengths (n,), Y_in, Y_out (6, n) and the target mask (6, n).
    """
    lengths = rng.integers(1, 6, size=n) if lengths is None else np.asarray(lengths)
    X = rng.integers(0, K, size=(5, n))
    Y_out = np.full((6, n), K + 1)
    for b, m in enumerate(lengths):
        Y_out[:m, b] = X[:m, b][::-1]
    Y_in = np.concatenate([np.full((1, n), K), Y_out[:-1]])  # <start>, y⟨1⟩, …
    mask = np.arange(6)[:, None] <= lengths[None, :]  # the reversed symbols and the end symbol
    return X, lengths, Y_in, Y_out, mask


def test_learns_to_reverse_a_sequence():
    """LSTM with attention, Adam, float32: the loss falls and greedy decoding reverses most new sequences."""
    K = 6
    cfg = Seq2SeqConfig("lstm", K, K + 2, 16, 16, 16, attention=True)
    p = init_seq2seq(cfg, seed=0, dtype=np.float32)
    opt = Adam(lr=0.02)
    rng = np.random.default_rng(0)
    five = np.full(32, 5)
    start = time.perf_counter()
    losses = []
    for _ in range(300):
        X, lengths, Y_in, Y_out, mask = reversal_batch(rng, 32, K, five)
        L, grads, _ = seq2seq_loss(p, cfg, X, lengths, Y_in, Y_out, mask)
        opt.step(p, grads)
        losses.append(L)
    X, lengths, *_ = reversal_batch(np.random.default_rng(1), 200, K, np.full(200, 5))
    ids, _ = greedy_decode(p, cfg, X, lengths, K, K + 1, 8)
    exact = np.mean([out == X[::-1, b].tolist() for b, out in enumerate(ids)])
    assert np.mean(losses[-20:]) < 0.02 * np.mean(losses[:5]), (losses[:5], losses[-20:])
    assert exact >= 0.95, exact
    assert time.perf_counter() - start < 20
