"""Every backward of the tagger: gradient checks in float64 and PyTorch twins."""

import numpy as np
import pytest

from bptt.diagnostics.gradcheck import gradcheck
from bptt.drivers.bidirectional import birnn_backward, birnn_forward
from bptt.models.layers import dropout_backward, dropout_forward, embedding_backward
from bptt.models.tagger_network import Tables, TaggerConfig, init_tagger_params, make_batch, tagger_loss
from bptt.models.vocab import FormTable, Vocab
from tests.conftest import cell_params
from tests.helpers import torch_twin, torch_twin_grads

SENTS = [
    ["Harry", "Potter", "met", "Ron", "."],
    ["He", "went", "to", "London", "in", "1999", "."],
    ["Hermione", "Granger", "!"],
    ["McDonald", "SAID", "no"],
]


def tiny_setup(cfg, seed=0):
    vocab = Vocab.build(SENTS[:2])
    table = FormTable(vocab)
    forms = [table.encode(s) for s in SENTS]
    rng = np.random.default_rng(seed)
    classes = cfg.n_y if cfg.task == "ner" else len(cfg.aux_tags) or 2
    labels = [rng.integers(0, classes, size=len(s)) for s in SENTS]
    word, case, chars, n_chars = table.arrays()
    tables = Tables(word, case, chars, n_chars, vocab.singleton)
    params = init_tagger_params(cfg, len(vocab.words), len(vocab.chars), seed=seed, dtype=np.float64)
    for k in params:  # non-zero biases and larger weights, so every path carries signal
        params[k] = params[k] + 0.3 * rng.standard_normal(params[k].shape)
    return params, tables, make_batch(forms, labels, np.arange(len(SENTS)))


# the gradient-checked taggers: three shapes with the vanilla cell, and again with the gated cells
PERSON = dict(task="person", word_dim=3, case_dim=2, char_dim=3, char_hidden=2, hidden=4, dropout=0.3)
NER = dict(task="ner", tags=["O", "B-PER", "I-PER"], word_dim=3, case_dim=0, char_dim=2, char_hidden=3)
NER.update(hidden=3, layers=2, dropout=0.25)
UNI = dict(task="person", word_dim=4, case_dim=2, char_dim=0, hidden=3, bidirectional=False, dropout=0.0)
AUX = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]  # the person task's auxiliary output
CONFIGS = {
    "person-char-dropout": TaggerConfig(**PERSON, cell="rnn"),
    "ner-2layers": TaggerConfig(**NER, cell="rnn"),
    "uni-relu": TaggerConfig(**UNI, activation="relu", cell="rnn"),
    "gru-person": TaggerConfig(**{**PERSON, "hidden": 3}, cell="gru"),
    "lstm-person-aux": TaggerConfig(**{**PERSON, "hidden": 3}, cell="lstm", aux_tags=AUX),
    "lstm-ner-forget1": TaggerConfig(**{**NER, "char_hidden": 2}, cell="lstm", init="forget1"),
    "lstm-uni": TaggerConfig(**{**UNI, "layers": 1}, cell="lstm"),
}


@pytest.mark.parametrize("cfg", list(CONFIGS.values()), ids=list(CONFIGS))
def test_gradcheck_whole_tagger(cfg):
    params, tables, batch = tiny_setup(cfg)

    def fun(arrs):
        # the same seed every call: the same dropout masks and <unk> replacements
        L, grads, _ = tagger_loss(arrs, cfg, batch, tables, rng=np.random.default_rng(7), dense=True)
        return L, grads

    # eps 1e-5: the tagger's loss is a mean over sentences of sums of many terms, and at 1e-6 its
    # round-off (~1e-10) is already 1e-6 of its smallest gradient entries; the gated cells' products of
    # gates make smaller entries still (at 1e-5: 2e-6 of them), so they take 1e-4 (truncation ~1e-7)
    report = gradcheck(fun, params, max_elements=25, eps=1e-5 if cfg.cell == "rnn" else 1e-4)
    assert set(report.errors) == set(params)
    assert report.max_error < 1e-6, str(report)


def test_auxiliary_output_adds_its_cross_entropy_to_the_logistic_loss():
    from bptt.models.tagger_network import batch_losses, tagger_forward

    cfg = CONFIGS["lstm-person-aux"]
    params, tables, batch = tiny_setup(cfg)
    Z, _ = tagger_forward(params, cfg, batch, tables)
    L_t, _ = batch_losses(Z, cfg, batch)
    assert Z.shape[2] == 1 + len(AUX)
    t, b = 1, 2  # one word, by hand: its tag is AUX[k]; the person label is whether AUX[k] is a PER tag
    k = batch.labels[t, b]
    y = float(AUX[k].endswith("-PER"))
    p = 1 / (1 + np.exp(-Z[t, b, 0]))
    z = Z[t, b, 1:]
    expected = -(y * np.log(p) + (1 - y) * np.log(1 - p)) - (z[k] - np.log(np.exp(z).sum()))
    assert L_t[t, b] == pytest.approx(expected, rel=1e-12)
    assert np.all(L_t[~batch.mask] == 0)


def test_auxiliary_loss_gradient_matches_torch():
    torch = pytest.importorskip("torch")
    from bptt.models.tagger_network import batch_losses, tagger_forward

    cfg = CONFIGS["lstm-person-aux"]
    params, tables, batch = tiny_setup(cfg)
    Z, _ = tagger_forward(params, cfg, batch, tables)
    L_t, dZ = batch_losses(Z, cfg, batch)
    Zt = torch.tensor(Z, requires_grad=True)
    labels, mask = torch.from_numpy(batch.labels), torch.from_numpy(batch.mask).double()
    person = torch.from_numpy(cfg.person_of_aux())[labels].double()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(Zt[:, :, 0], person, reduction="none")
    ce = torch.nn.functional.cross_entropy(Zt[:, :, 1:].permute(0, 2, 1), labels, reduction="none")
    L = ((bce + ce) * mask).sum()
    L.backward()
    np.testing.assert_allclose(L_t.sum(), L.item(), rtol=1e-12)
    np.testing.assert_allclose(dZ, Zt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_embedding_backward_sums_repeated_rows(rng):
    E = rng.standard_normal((6, 3))
    ids = np.array([[1, 4], [4, 0], [1, 1]])
    R = rng.standard_normal((3, 2, 3))
    g = embedding_backward(R, ids, 6).dense()
    expected = np.zeros_like(E)
    for (t, b), i in np.ndenumerate(ids):
        expected[i] += R[t, b]
    np.testing.assert_allclose(g, expected, atol=1e-14)


def test_dropout_is_inverted_and_backprops_through_the_same_mask(rng):
    X = rng.standard_normal((50, 40))
    Y, keep = dropout_forward(X, 0.4, np.random.default_rng(0))
    assert set(np.unique(keep)) == {0.0, 1 / 0.6}
    assert abs((keep > 0).mean() - 0.6) < 0.03
    dY = rng.standard_normal(X.shape)
    np.testing.assert_array_equal(dropout_backward(dY, keep), dY * keep)
    same, none = dropout_forward(X, 0.4, None)  # inference: identity
    assert same is X and none is None


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_bidirectional_equals_two_manual_runs_and_torch(rng, cell):
    """birnn_forward/backward against torch.nn.RNN/GRU/LSTM(bidirectional=True) on a packed sequence,
    with a gradient on each direction's final a too (what the character RNN passes)."""
    torch = pytest.importorskip("torch")
    T, B, n_x, n_a = 6, 3, 4, 5
    lengths = np.array([6, 2, 4])
    mask = np.arange(T)[:, None] < lengths[None]
    pf, pb = cell_params(cell, rng, n_x, n_a), cell_params(cell, rng, n_x, n_a)
    X = rng.standard_normal((T, B, n_x))
    R = rng.standard_normal((T, B, 2 * n_a)) * mask[:, :, None]
    R_T = rng.standard_normal((B, 2 * n_a))
    A, cache = birnn_forward(X, mask, pf, pb, cell=cell)
    dX, gf, gb, _ = birnn_backward(R, cache, da_T=R_T)

    module = torch_twin(cell, pf, pb)
    Xt = torch.tensor(X, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(Xt, torch.tensor(lengths), enforce_sorted=False)
    out, final = module(packed)
    h_n = final[0] if cell == "lstm" else final  # (2, B, n_a): each direction's final a
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)
    L = (out * torch.from_numpy(R)).sum() + (
        h_n * torch.from_numpy(R_T.reshape(B, 2, n_a).swapaxes(0, 1))
    ).sum()
    L.backward()
    np.testing.assert_allclose(A * mask[:, :, None], out.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(dX, Xt.grad.numpy(), atol=1e-10)
    for suffix, g in (("_l0", gf), ("_l0_reverse", gb)):
        ref = torch_twin_grads(module, cell, suffix)
        assert list(g) == list(ref)
        for key in ref:
            np.testing.assert_allclose(g[key], ref[key], atol=1e-10, err_msg=key + suffix)
    # and the backward direction is the plain cell run on each reversed sentence
    for b, n in enumerate(lengths):
        from bptt import rnn_forward

        A_b, _ = rnn_forward(X[:n, b : b + 1][::-1].copy(), None, pb, cell=cell)
        np.testing.assert_allclose(A[:n, b, n_a:], A_b[::-1, 0], atol=1e-13)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_truncated_training_gradients(cell):
    """--bptt-steps: k >= T is full BPTT; a small k changes only the recurrent paths."""
    cfg = TaggerConfig(
        task="person", word_dim=3, case_dim=2, char_dim=0, hidden=4, dropout=0.0, unk_replace=0.0, cell=cell
    )
    params, tables, batch = tiny_setup(cfg)
    _, full, _ = tagger_loss(params, cfg, batch, tables, dense=True)
    _, same, _ = tagger_loss(params, cfg, batch, tables, dense=True, truncate=batch.forms.shape[0])
    _, cut, _ = tagger_loss(params, cfg, batch, tables, dense=True, truncate=2)
    for k in full:
        np.testing.assert_array_equal(full[k], same[k])
    np.testing.assert_array_equal(full["W_ya"], cut["W_ya"])  # the head does not backprop through time
    assert not np.allclose(full["rnn1.f.W_aa"], cut["rnn1.f.W_aa"])


def test_viterbi_returns_the_best_valid_iob2_sequence(rng):
    from itertools import product

    from bptt.models.tagger_network import allowed_transitions, viterbi

    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    allowed = allowed_transitions(tags)
    assert not allowed[len(tags), 2] and allowed[1, 2] and not allowed[3, 2] and allowed[2, 2]
    T, B = 4, 3
    log_p = np.log(rng.dirichlet(np.ones(len(tags)), size=(T, B)))
    lengths = np.array([4, 2, 3])
    ids = viterbi(log_p, lengths, allowed)
    for b, n in enumerate(lengths):
        best, best_seq = -np.inf, None
        for seq in product(range(len(tags)), repeat=n):  # brute force over every sequence
            prev = len(tags)
            ok = True
            for k in seq:
                ok &= allowed[prev, k]
                prev = k
            score = sum(log_p[t, b, k] for t, k in enumerate(seq))
            if ok and score > best:
                best, best_seq = score, seq
        assert tuple(ids[:n, b]) == best_seq
