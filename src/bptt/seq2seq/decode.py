"""Decoding the encoder–decoder: greedy (batched) and beam search, on the training's own decoder step.

Both feed the decoder its own previous output, y⟨t−1⟩ = the symbol chosen at step t−1 (y⟨0⟩ = <start>),
through ``decoder_step`` — the step the teacher-forced forward runs — so the equations live once,
in ``bptt.seq2seq.network``. A sequence ends when it emits ``end_id`` (not returned) or after
``max_len`` symbols.

    greedy:  y⟨t⟩ = argmax_y z⟨t⟩[y]                   every sequence of the batch at once
    beam:    keep the ``beam`` best prefixes by Σ_t log softmax(z⟨t⟩)[y⟨t⟩], per source sequence

Beam search expands every kept prefix by every symbol, keeps the ``beam`` best that do not end,
and sets aside those that end (their score counts the end symbol's log-probability). Log-probabilities
only fall as a prefix grows, so the search stops once the best finished hypothesis scores at least
as well as the best kept prefix; at ``max_len`` the kept prefixes count as finished. The answer
is the finished hypothesis with the highest total log-probability, with no length normalisation:
that suits outputs of a fixed length (a date), and favours short outputs otherwise. With
``beam=1`` it is greedy decoding. A wider beam usually scores at least as well as greedy, but
beam search does not promise it: the greedy prefix can be pushed out of the beam.
"""

from __future__ import annotations

import numpy as np

from ..cells import get_cell
from ..errors import BpttError
from .network import check_source, decoder_step, encode, rows


def _check_decoding(cfg, start_id, end_id, max_len, beam=1):
    for name, n, low, high in (
        ("start_id", start_id, 0, cfg.n_y - 1),
        ("end_id", end_id, 0, cfg.n_y - 1),
        ("max_len", max_len, 1, None),
        ("beam", beam, 1, None),
    ):
        if (
            isinstance(n, bool)
            or not isinstance(n, (int, np.integer))
            or n < low
            or (high is not None and n > high)
        ):
            within = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise BpttError(f"{name}: expected an int {within}, got {n!r}")


def _until_end(ids, end_id):
    """The symbols before the first ``end_id`` (all of them when there is none), as Python ints."""
    ends = np.flatnonzero(ids == end_id)
    return ids[: ends[0] if ends.size else ids.size].tolist()


def greedy_decode(params, cfg, X, lengths, start_id, end_id, max_len):
    """Greedy decoding of a batch: at every step the most likely symbol, fed back in.

    Shapes: X (T_x, B) source ids, lengths (B,).
    Returns: ids, a list of B lists of symbol ids (without end_id), and the attention weights
    (steps, B, T_x) of the steps run (rows after a sequence's end step are 0), or None without attention.
    """
    dtype, lengths, _ = check_source(params, cfg, X, lengths)
    _check_decoding(cfg, start_id, end_id, max_len)
    T_x, B = X.shape
    cell = get_cell(cfg.cell)
    enc = encode(params, cfg, X, lengths, dtype)
    state = cell.zero_state(B, cfg.n_d, dtype)
    y = np.full(B, start_id, dtype=np.intp)  # y⟨0⟩ = <start>
    out = np.empty((max_len, B), dtype=np.intp)  # (max_len, B) y⟨1⟩, y⟨2⟩, …
    alphas = np.zeros((max_len, B, T_x), dtype=dtype) if cfg.attention else None
    done = np.zeros(B, dtype=bool)  # the sequences that have emitted end_id
    steps = 0
    while steps < max_len and not done.all():
        z, state, step = decoder_step(params, cfg, enc, y, state)
        y = z.argmax(axis=1)  # (B,) y⟨t⟩, fed to step t + 1
        out[steps] = y
        if alphas is not None:
            alphas[steps][~done] = step.alpha[~done]
        done |= y == end_id
        steps += 1
    ids = [_until_end(out[:steps, b], end_id) for b in range(B)]
    return ids, None if alphas is None else alphas[:steps]


def log_softmax(z):
    """log softmax over the last axis, in float64, shifted by the max for stability."""
    z = z.astype(np.float64) - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def beam_decode(params, cfg, X, lengths, start_id, end_id, max_len, beam=5):
    """Beam search, one source sequence at a time (its hypotheses form the decoder's batch).

    Shapes: X (T_x, B) source ids, lengths (B,).
    Returns: a list of B lists of symbol ids (without end_id): per sequence, the finished hypothesis
    with the highest total log-probability (see the module docstring).
    """
    dtype, lengths, _ = check_source(params, cfg, X, lengths)
    _check_decoding(cfg, start_id, end_id, max_len, beam)
    enc = encode(params, cfg, X, lengths, dtype)
    return [
        _beam_one(params, cfg, rows(enc, np.zeros(beam, np.intp) + b), start_id, end_id, max_len, beam, dtype)
        for b in range(X.shape[1])
    ]


def _beam_one(params, cfg, enc, start_id, end_id, max_len, beam, dtype):
    """Beam search for one source sequence; ``enc`` holds it ``beam`` times (the batch rows)."""
    cell = get_cell(cfg.cell)
    state = cell.zero_state(1, cfg.n_d, dtype)
    y = np.array([start_id], dtype=np.intp)  # the last symbol of each kept prefix
    prefixes = [[]]  # the kept prefixes, without <start>
    scores = np.zeros(1)  # their total log-probabilities (float64)
    finished = []  # (total log-probability, ids) of the hypotheses that ended
    for _ in range(max_len):
        k = len(prefixes)
        z, state, _ = decoder_step(params, cfg, rows(enc, slice(0, k)), y, state)
        cand = (scores[:, None] + log_softmax(z)).ravel()  # (k·n_y,) every prefix times every symbol
        parents, symbols, kept = [], [], []
        for i in np.argsort(-cand, kind="stable"):  # best first; ties: the lower index, as argmax
            parent, symbol = divmod(int(i), cfg.n_y)
            if symbol == end_id:
                finished.append((float(cand[i]), prefixes[parent]))
                continue
            parents.append(parent)
            symbols.append(symbol)
            kept.append(cand[i])
            if len(parents) == beam:
                break
        best_finished = max((s for s, _ in finished), default=-np.inf)
        if not parents or best_finished >= kept[0]:  # no kept prefix can beat it any more
            break
        prefixes = [prefixes[q] + [s] for q, s in zip(parents, symbols)]
        scores = np.array(kept)
        state = cell.join(f[parents] for f in cell.fields(state))  # each kept prefix's own state
        y = np.array(symbols, dtype=np.intp)
    else:  # max_len reached: the kept prefixes end here
        finished.extend(zip(scores.tolist(), prefixes))
    return max(finished, key=lambda h: h[0])[1]
