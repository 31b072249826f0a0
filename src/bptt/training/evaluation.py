"""What training measures after every epoch: the dev scores, and the gradient flow on fixed probes.

The probes are chosen once per run (`make_probes`): the first 64 sentences of the dev set (of the
training set without one) for the messages ‖∂L/∂a→⟨t⟩‖ reaching each position t, and the 8 longest
of them for the reach ‖∂s⟨n⟩/∂s⟨n−d⟩‖ (s: the cell's whole state), which `Tagger.reach_profile`
computes by the one reach computation, `bptt.diagnostics.ledger.jacobian_reach`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..models.metrics import evaluate, token_f1
from ..models.tagger_network import Batch, batch_losses, make_batch, tagger_backward, tagger_forward

PROBE_K = 40  # positions of the gradient-flow probe


class Probes(NamedTuple):
    """The fixed sentences the gradient flow is measured on, after every epoch."""

    batch: Batch  # the first 64 sentences, padded: the messages
    reach: list  # the words of the 8 longest of them: the reach


def make_probes(corpus):
    """The probes of a run, from its dev corpus (or its training corpus without one)."""
    first = np.arange(min(64, len(corpus.forms)))
    batch = make_batch(corpus.forms, corpus.labels, first)
    longest = sorted(first, key=lambda i: -len(corpus.forms[i]))[:8]
    return Probes(batch, [corpus.sentences[i].words for i in longest])


def gradient_flow(tagger, probes, tables):
    """The log record's ``message_norms`` and ``reach`` of ``tagger`` on the probes, by position and by
    distance d = 0 … PROBE_K − 1 (as far as the probes are long).

    tables: the lookups of the form table the probe batch was encoded with.
    Returns: {"message_norms": [float], "reach": [float]}.
    """
    total, count = batch_message_norms(tagger.params, tagger.cfg, probes.batch, tables, PROBE_K)
    with np.errstate(invalid="ignore"):
        message_norms = [float(v) for v in (total / count) if np.isfinite(v)]
    reach = tagger.reach_profile(probes.reach, K=PROBE_K)
    return {"message_norms": message_norms, "reach": [float(v) for v in reach if np.isfinite(v)]}


def batch_message_norms(params, cfg, batch, tables, K):
    """Σ over sentences of ‖∂L/∂a→⟨t⟩‖ at t = 1..K, and how many sentences reach each t."""
    Z_y, cache = tagger_forward(params, cfg, batch, tables)
    _, dZ = batch_losses(Z_y, cfg, batch)
    _, M = tagger_backward(dZ, params, cfg, cache, messages=True)
    norms = np.linalg.norm(cfg.word_cell.fields(M)[0], axis=2) * batch.mask  # (T, B) ‖∂L/∂a→⟨t⟩‖
    k = min(K, norms.shape[0])
    total, count = np.zeros(K), np.zeros(K)
    total[:k] = norms[:k].sum(axis=1)
    count[:k] = batch.mask[:k].sum(axis=1)
    return total, count


def dev_scores(tagger, corpus, comm=None):
    """conlleval's scores of ``tagger`` on ``corpus`` (and, for the person task, token P/R/F1).

    comm: the processes of a data-parallel run (`bptt.training.parallel`): each tags every size-th
    batch, the tags are gathered, and every process scores them all (the same scores everywhere,
    and the same tags as one process computes: each batch is computed alike).
    Returns: the log record's ``dev`` dict, and the predicted tags of every sentence.
    """
    words = [s.words for s in corpus.sentences]
    if comm is None or comm.size == 1:
        pred = tagger.predict(words, batch_size=256)
    else:
        parts = comm.allgather(tagger.predict(words, batch_size=256, part=(comm.rank, comm.size)))
        pred = [next(p[i] for p in parts if p[i] is not None) for i in range(len(words))]
    record = evaluate(corpus.gold, pred).to_dict()
    if tagger.cfg.task == "person":
        record["token_precision"], record["token_recall"], record["token_f1"] = token_f1(corpus.gold, pred)
    return record, pred
