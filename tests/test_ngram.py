"""Interpolated Kneser–Ney (bptt.lm.ngram): normalisation, a worked example, a plain-Python twin, errors."""

import itertools
from collections import defaultdict

import numpy as np
import pytest

from bptt.errors import BpttError
from bptt.lm.ngram import KneserNey, OnlineKneserNey, adaptive_bits_per_char, bits_per_char

D = 0.75


def reference_probability(sequences, order, V, history, w, discount=D):
    """Interpolated KN written from the equations with dicts and loops, for one (history, w).

    Independent of the vectorised code: counts every n-gram inside each sequence by slicing.
    """
    raw = defaultdict(int)  # c(g) for every g of length `order`
    left = defaultdict(set)  # {v : vg occurs} for every g shorter than `order`
    for q in sequences:
        q = [int(x) for x in q]
        for i in range(len(q)):
            if i + 1 >= order:
                raw[tuple(q[i + 1 - order : i + 1])] += 1
            for k in range(1, min(order, i + 1)):
                left[tuple(q[i + 1 - k : i + 1])].add(q[i - k])

    def count(g):
        return raw[g] if len(g) == order else len(left[g])

    def prob(h, w):
        lower = prob(h[1:], w) if len(h) > 0 else 1.0 / V
        per_w = [count(h + (v,)) for v in range(V)]
        total = sum(per_w)
        if total == 0:
            return lower
        types = sum(1 for c in per_w if c > 0)
        return (max(per_w[w] - discount, 0.0) + discount * types * lower) / total

    # a history at the start of a sequence is shorter: its length sets the order
    return prob(tuple(history[-(order - 1) :]) if order > 1 else (), w)


def random_corpus(rng, V, n_seq, length, used):
    """``n_seq`` sequences of symbols 0..used-1 (so used..V-1 never occur) with repeated patterns."""
    motif = rng.integers(0, used, size=5)
    out = []
    for _ in range(n_seq):
        q = rng.integers(0, used, size=int(rng.integers(1, length)))
        if len(q) > 6:
            q[2:7] = motif  # repeats make long histories seen, so the high orders matter
        out.append(q)
    return out


def next_symbol_probs(model, history):
    """P(w | history) for every w = 0..V-1, history at the start of a sequence."""
    h = list(history)
    return np.array(
        [np.exp(model.log_probs(np.array(h + [w]), start=len(h))[0]) for w in range(model.vocab_size)]
    )


@pytest.mark.parametrize("order", range(1, 8))
def test_sums_to_one_for_every_history(order):
    rng = np.random.default_rng(order)
    V = 4
    train = random_corpus(rng, V, n_seq=6, length=40, used=3)  # symbol 3 never seen
    model = KneserNey(order, V).fit(train)
    histories = [h for k in range(min(order, 4)) for h in itertools.product(range(V), repeat=k)]
    for q in train:  # seen histories of full length
        for i in range(order - 1, len(q), 3):
            histories.append(tuple(q[i - order + 1 : i]))
    histories += [tuple(rng.integers(0, V, size=order - 1)) for _ in range(20)]  # mostly unseen
    for h in histories:
        p = next_symbol_probs(model, h)
        assert (p > 0).all()
        assert abs(p.sum() - 1.0) < 1e-12, (order, h, p.sum())


def test_worked_bigram_example():
    # V = 3, D = 3/4, order 2, one training sequence 0 1 1 0 1 (symbol 2 never seen).
    # Bigrams: 01 (twice), 11, 10.  c(0·) = 2, N1+(0·) = 1;  c(1·) = 2, N1+(1·) = 2.
    # Continuation unigrams: N1+(·0) = |{1}| = 1, N1+(·1) = |{0, 1}| = 2, N1+(·2) = 0;
    #   N1+(··) = 3 distinct bigrams, 2 symbols with a left extension.
    # P1(w) = (max(N1+(·w) - 3/4, 0) + 3/4 · 2 · 1/3) / 3:
    #   P1(0) = (1/4 + 1/2) / 3 = 1/4,  P1(1) = (5/4 + 1/2) / 3 = 7/12,  P1(2) = (1/2) / 3 = 1/6.
    # P2(w | 0) = (max(c(0w) - 3/4, 0) + 3/4 · 1 · P1(w)) / 2:
    #   P2(1 | 0) = (5/4 + 3/4 · 7/12) / 2 = 27/32.
    # P2(w | 1) = (max(c(1w) - 3/4, 0) + 3/4 · 2 · P1(w)) / 2:
    #   P2(2 | 1) = (0 + 3/2 · 1/6) / 2 = 1/8.
    # Scoring 0 1 2 1: P1(0) (empty history at the start), P2(1 | 0), P2(2 | 1), and history 2 is unseen,
    # so the last symbol backs off entirely to P1(1) = 7/12.
    model = KneserNey(2, 3, discount=0.75).fit([np.array([0, 1, 1, 0, 1])])
    got = np.exp(model.log_probs(np.array([0, 1, 2, 1])))
    np.testing.assert_allclose(got, [1 / 4, 27 / 32, 1 / 8, 7 / 12], rtol=1e-14)
    # the whole rows, each summing to 1: P2(0|0) = 3/32, P2(2|0) = 1/16; P2(0|1) = 5/16, P2(1|1) = 9/16
    np.testing.assert_allclose(next_symbol_probs(model, [0]), [3 / 32, 27 / 32, 1 / 16], rtol=1e-14)
    np.testing.assert_allclose(next_symbol_probs(model, [1]), [5 / 16, 9 / 16, 1 / 8], rtol=1e-14)


def test_order_one_is_raw_unigram_interpolated_with_uniform():
    # with n = 1 the unigram is the highest order, so raw counts: P(w) = (max(c(w) - D, 0) + D·N1+/V) / N
    train = [np.array([0, 0, 0, 1, 2, 2]), np.array([2, 0])]
    V = 5
    c = np.bincount(np.concatenate(train), minlength=V)
    want = (np.maximum(c - D, 0) + D * (c > 0).sum() / V) / c.sum()
    model = KneserNey(1, V).fit(train)
    np.testing.assert_allclose(np.exp(model.log_probs(np.arange(V))), want, rtol=1e-14)


def test_unigram_level_is_continuation_counts_interpolated_with_uniform():
    # In a model of order 3 the first symbol of a sequence (empty history) gets the order-1 distribution:
    # P1(w) = (max(N1+(·w) - D, 0) + D·|{w: N1+(·w) > 0}|/V) / N1+(··), N1+(·w) = distinct left neighbours.
    train = [np.array([0, 0, 0, 0, 1, 2, 1]), np.array([3, 1])]
    V = 5
    left = {w: set() for w in range(V)}
    for q in train:
        for a, b in zip(q[:-1], q[1:]):
            left[int(b)].add(int(a))
    n1 = np.array([len(left[w]) for w in range(V)], dtype=float)  # [1, 3, 1, 0, 0]
    want = (np.maximum(n1 - D, 0) + D * (n1 > 0).sum() / V) / n1.sum()
    model = KneserNey(3, V).fit(train)
    got = np.array([np.exp(model.log_probs(np.array([w]))[0]) for w in range(V)])
    np.testing.assert_allclose(got, want, rtol=1e-14)
    # symbol 0 is by far the most frequent, yet it has one left neighbour only: KN gives it little mass
    assert got[0] < got[1]


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_matches_plain_python_reference(order):
    rng = np.random.default_rng(10 + order)
    V = 5
    train = random_corpus(rng, V, n_seq=5, length=30, used=4)
    model = KneserNey(order, V).fit(train)
    test = random_corpus(rng, V, n_seq=3, length=25, used=5)
    for q in test:
        got = np.exp(model.log_probs(q))
        want = [reference_probability(train, order, V, q[:i], int(q[i])) for i in range(len(q))]
        np.testing.assert_allclose(got, want, rtol=1e-13)


@pytest.mark.parametrize("order", [1, 2, 4, 7])
def test_online_counts_equal_the_vectorised_fit(order):
    rng = np.random.default_rng(20 + order)
    train = random_corpus(rng, 6, n_seq=6, length=40, used=5)
    online = OnlineKneserNey(order, 6)
    for q in train:
        online.observe(q)
    fitted = KneserNey(order, 6).fit(train)
    for q in random_corpus(rng, 6, n_seq=4, length=30, used=6):
        got = [online.log_prob(q, i) for i in range(len(q))]
        np.testing.assert_allclose(got, fitted.log_probs(q), rtol=1e-13)


@pytest.mark.parametrize(("order", "steps", "start"), [(1, 3, 0), (3, 4, 1), (4, 1, 0)])
def test_adaptive_scores_each_chunk_with_the_counts_of_what_came_before(order, steps, start):
    """The adaptive model = the reference fitted on the training sequences plus every piece's chunks
    already scored, each symbol of a chunk conditioned on its own piece's history."""
    rng = np.random.default_rng(order)
    V = 5
    train = random_corpus(rng, V, n_seq=4, length=20, used=4)
    pieces = [q for q in random_corpus(rng, V, n_seq=3, length=30, used=5) if len(q) > 2 * steps]
    bits, n = 0.0, 0
    for p in pieces:
        for i in range(start, len(p)):
            t0 = i // steps * steps  # the chunk's start: what every piece had scored before it
            seen = [q[:t0] for q in pieces if len(q[:t0])]
            bits -= np.log2(reference_probability(train + seen, order, V, p[:i], int(p[i])))
            n += 1
    got = adaptive_bits_per_char(train, pieces, order, steps, vocab_size=V, start=start)
    assert got == pytest.approx(bits / n, rel=1e-12)
    static = bits_per_char(KneserNey(order, V).fit(train), pieces, start)
    assert got != pytest.approx(static, rel=1e-6)  # the counts did move


def test_training_sequences_shorter_than_the_order():
    # no 4-gram exists: every position is scored by the orders below, and rows still sum to 1
    model = KneserNey(4, 3).fit([np.array([0, 1, 2]), np.array([1, 1])])
    for h in [(), (0,), (0, 1), (1, 1, 1), (2, 2, 2, 2)]:
        p = next_symbol_probs(model, h)
        assert (p > 0).all() and abs(p.sum() - 1.0) < 1e-12


def test_unseen_symbols_have_positive_probability():
    V = 6
    model = KneserNey(7, V).fit([np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1])])  # 3, 4, 5 never seen
    lp = model.log_probs(np.array([0, 1, 2, 0, 1, 2, 3, 4, 5, 5, 0, 1, 2, 0, 1, 4]))
    assert np.isfinite(lp).all()
    assert lp[6] < lp[5]  # the unseen symbol is far less likely than the seen continuation
    p_unseen = np.exp(lp[[6, 7, 8, 9, 15]])
    assert (p_unseen > 0).all()


def test_histories_do_not_cross_sequences():
    a, b = np.array([0, 0, 1]), np.array([2, 0, 2, 0])
    # training: the bigram 1 2 exists only where a and b are joined
    apart = KneserNey(2, 3).fit([a, b])
    joined = KneserNey(2, 3).fit([np.concatenate([a, b])])
    p_apart = np.exp(apart.log_probs(np.array([1, 2]), start=1)[0])
    p_joined = np.exp(joined.log_probs(np.array([1, 2]), start=1)[0])
    # apart: 1 only ends a, so as a history it is unseen and backs off entirely to P1(2)
    np.testing.assert_allclose(p_apart, np.exp(apart.log_probs(np.array([2]))[0]), rtol=1e-14)
    assert p_joined > 2 * p_apart

    # scoring: b after a differs from b alone only where a history would reach into a
    model = KneserNey(3, 3).fit([np.array([0, 1, 2, 0, 2, 1, 0, 1, 2, 2, 1])])
    alone = model.log_probs(b)
    after_a = model.log_probs(np.concatenate([a, b]), start=len(a))
    assert not np.isclose(alone[0], after_a[0]) and not np.isclose(alone[1], after_a[1])
    np.testing.assert_array_equal(alone[2:], after_a[2:])  # full histories lie inside b
    # bits_per_char scores each sequence on its own
    bpc = bits_per_char(model, [a, b])
    want = -(model.log_probs(a).sum() + alone.sum()) / (len(a) + len(b)) / np.log(2)
    assert bpc == pytest.approx(want, rel=1e-14)
    assert bits_per_char(model, [np.concatenate([a, b])]) != pytest.approx(want, rel=1e-6)


def test_start_slices_the_scores_keeping_the_history():
    rng = np.random.default_rng(3)
    train = random_corpus(rng, 4, n_seq=3, length=50, used=4)
    model = KneserNey(4, 4).fit(train)
    q = rng.integers(0, 4, size=20)
    full = model.log_probs(q)
    np.testing.assert_array_equal(model.log_probs(q, start=7), full[7:])
    assert model.log_probs(q, start=20).shape == (0,)
    assert bits_per_char(model, [q], start=7) == pytest.approx(-full[7:].mean() / np.log(2), rel=1e-14)


def test_refit_replaces_counts():
    model = KneserNey(2, 3).fit([np.array([0, 0, 0, 0])])
    before = model.log_probs(np.array([1, 1]))
    model.fit([np.array([1, 1, 1, 1])])
    assert (model.log_probs(np.array([1, 1])) > before).all()


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: KneserNey(0, 3), "order"),
        (lambda: KneserNey(2.5, 3), "order"),
        (lambda: KneserNey(2, 0), "vocab_size"),
        (lambda: KneserNey(2, 3, discount=0.0), "discount"),
        (lambda: KneserNey(2, 3, discount=1.0), "discount"),
        (lambda: KneserNey(2, 3, discount=-0.5), "discount"),
        (lambda: KneserNey(2, 3, discount=float("nan")), "discount"),
        (lambda: KneserNey(2, 3).fit([]), "sequences"),
        (lambda: KneserNey(2, 3).fit([np.array([], dtype=int), np.array([], dtype=int)]), "sequences"),
        (lambda: KneserNey(2, 3).fit(np.array([0, 1, 2])), "sequences"),
        (lambda: KneserNey(2, 3).fit([np.array([0, 1]), np.array([0, 3])]), "sequences[1]"),
        (lambda: KneserNey(2, 3).fit([np.array([0, -1])]), "sequences[0]"),
        (lambda: KneserNey(2, 3).fit([np.array([0.0, 1.0])]), "sequences[0]"),
        (lambda: KneserNey(2, 3).fit([np.zeros((2, 2), dtype=int)]), "sequences[0]"),
        (lambda: KneserNey(2, 3).log_probs(np.array([0])), "fit"),
        (lambda: KneserNey(2, 3).fit([np.array([0, 1])]).log_probs(np.array([0, 5])), "sequence"),
        (lambda: KneserNey(2, 3).fit([np.array([0, 1])]).log_probs(np.array([0, 1]), start=3), "start"),
        (
            lambda: bits_per_char(KneserNey(2, 3).fit([np.array([0, 1])]), [np.array([0])], start=1),
            "sequences",
        ),
    ],
)
def test_bad_arguments_raise_one_line_naming_the_argument(make, name):
    with pytest.raises(BpttError) as err:
        make()
    msg = str(err.value)
    assert name in msg and "\n" not in msg
