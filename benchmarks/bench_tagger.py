"""Training throughput of the bptt tagger beside a PyTorch model of the same architecture.

Both train on the same CoNLL-2003 minibatches (same order, same padding) in one process,
alternating in rounds: word + casing embeddings, a bidirectional character RNN (final
states), dropout, stacked bidirectional recurrent layers of the chosen cell (``--cell``:
tanh RNN, GRU or LSTM; bptt's default configuration: 2 layers of 128 units per direction),
a per-word linear output with the logistic loss (person; plus the cross-entropy of its
auxiliary output over every entity type unless ``--no-aux``) or softmax cross-entropy (ner),
Adam, gradient clipping. Prints words/s of each and the ratio.

    python benchmarks/bench_tagger.py --task person --threads 1 [--cell lstm]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data",
        default=os.path.join(
            os.path.dirname(__file__), "..", "..", "shared", "data", "conll2003", "eng.train"
        ),
    )
    p.add_argument("--task", choices=["person", "ner"], default="person")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads for NumPy and torch (default 1)")
    p.add_argument("--batches", type=int, default=60, help="batches per round (default 60)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--cell", choices=["rnn", "gru", "lstm"], default="rnn", help="the word layers' cell")
    p.add_argument("--no-chars", action="store_true", help="without the character RNN")
    p.add_argument("--no-aux", action="store_true", help="person: without the auxiliary output")
    p.add_argument("--json", action="store_true")
    return p.parse_args()


ARGS = parse()
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)  # before NumPy loads its BLAS

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bptt.models.tagger_network import TaggerConfig, batch_indices, make_batch, tagger_loss  # noqa: E402
from bptt.training import TrainConfig, Trainer  # noqa: E402
from bptt.training.optim import clip_grad_norm, make_optimizer  # noqa: E402


class TorchTagger(torch.nn.Module):
    """The same network in PyTorch (packed sequences, so padding is skipped as in bptt)."""

    def __init__(self, cfg, n_words, n_chars, n_case):
        super().__init__()
        self.cfg = cfg
        self.E_word = torch.nn.Embedding(n_words, cfg.word_dim)
        self.E_case = torch.nn.Embedding(n_case, cfg.case_dim)
        n_x = cfg.word_dim + cfg.case_dim
        if cfg.char_dim:
            self.E_char = torch.nn.Embedding(n_chars, cfg.char_dim)
            self.char_rnn = torch.nn.RNN(cfg.char_dim, cfg.char_hidden, bidirectional=True)
            n_x += 2 * cfg.char_hidden
        # dropout between stacked layers, as bptt applies it on every layer's input
        self.rnn = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cfg.cell](
            n_x,
            cfg.hidden,
            num_layers=cfg.layers,
            bidirectional=True,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
        )
        self.drop = torch.nn.Dropout(cfg.dropout)
        self.out = torch.nn.Linear(2 * cfg.hidden, cfg.n_y)

    def forward(self, words, cases, lengths, uniq_chars=None, uniq_len=None, inverse=None):
        parts = [self.E_word(words), self.E_case(cases)]
        if self.cfg.char_dim:
            packed = torch.nn.utils.rnn.pack_padded_sequence(
                self.E_char(uniq_chars), uniq_len, enforce_sorted=False
            )
            _, h = self.char_rnn(packed)  # (2, U, n_c): both directions' final states
            H = torch.cat([h[0], h[1]], dim=1)
            parts.append(H[inverse])
        X = self.drop(torch.cat(parts, dim=2))
        packed = torch.nn.utils.rnn.pack_padded_sequence(X, lengths, enforce_sorted=False)
        A, _ = self.rnn(packed)
        A, _ = torch.nn.utils.rnn.pad_packed_sequence(A, total_length=X.shape[0])
        return self.out(self.drop(A))


def torch_inputs(batch, tables, cfg):
    words = torch.from_numpy(tables.word[batch.forms])
    cases = torch.from_numpy(tables.case[batch.forms])
    extra = {}
    if cfg.char_dim:
        uniq, inverse = np.unique(batch.forms, return_inverse=True)
        n = np.maximum(tables.n_chars[uniq], 1)
        chars = tables.chars[uniq, : n.max()].T
        extra = dict(
            uniq_chars=torch.from_numpy(np.ascontiguousarray(chars)),
            uniq_len=torch.from_numpy(n),
            inverse=torch.from_numpy(inverse.reshape(batch.forms.shape)),
        )
    return words, cases, torch.from_numpy(batch.lengths), extra


def main():
    torch.set_num_threads(ARGS.threads)
    mcfg = TaggerConfig(task=ARGS.task, cell=ARGS.cell, aux=not ARGS.no_aux)
    if ARGS.no_chars:
        mcfg.char_dim = mcfg.char_hidden = 0
    tr = Trainer(TrainConfig(train=ARGS.data, dev=None), mcfg, "/tmp/bench-tagger-unused", progress=False)
    tr.prepare()
    cfg, tables = tr.mcfg, tr.tables
    batches = [
        make_batch(tr.train.forms, tr.train.labels, i)
        for i in batch_indices([len(f) for f in tr.train.forms], 32, np.random.default_rng(0))
    ]
    opt = make_optimizer("adam", 2e-3)
    rng = np.random.default_rng(1)

    person_of_aux = torch.from_numpy(cfg.person_of_aux())
    model = TorchTagger(cfg, len(tr.vocab.words), len(tr.vocab.chars), int(tables.case.max()) + 1)
    topt = torch.optim.Adam(model.parameters(), lr=2e-3)
    prepared = [
        (torch_inputs(b, tables, cfg), torch.from_numpy(b.labels), torch.from_numpy(b.mask)) for b in batches
    ]

    def run_bptt(k0):
        words = 0
        t = time.perf_counter()
        for b in batches[k0 : k0 + ARGS.batches]:
            _, grads, _ = tagger_loss(tr.params, cfg, b, tables, rng=rng)
            clip_grad_norm(grads, 5.0)
            opt.step(tr.params, grads)
            words += int(b.lengths.sum())
        return words / (time.perf_counter() - t)

    def run_torch(k0):
        words = 0
        t = time.perf_counter()
        for (w, c, lengths, extra), labels, mask in prepared[k0 : k0 + ARGS.batches]:
            Z = model(w, c, lengths, **extra)
            if cfg.task == "person":
                person = person_of_aux[labels] if cfg.aux_tags else labels
                L = torch.nn.functional.binary_cross_entropy_with_logits(
                    Z[:, :, 0], person.to(Z.dtype), weight=mask.to(Z.dtype), reduction="sum"
                )
                if cfg.aux_tags:  # the auxiliary output over every entity type
                    CE = torch.nn.functional.cross_entropy(
                        Z[:, :, 1:].permute(0, 2, 1), labels, reduction="none"
                    )
                    L = L + (CE * mask).sum()
            else:
                L = (
                    torch.nn.functional.cross_entropy(Z.permute(0, 2, 1), labels, reduction="none") * mask
                ).sum()
            L = L / w.shape[1]
            topt.zero_grad()
            L.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            topt.step()
            words += int(lengths.sum())
        return words / (time.perf_counter() - t)

    ours, theirs = [], []
    run_bptt(0), run_torch(0)  # warm up
    for r in range(ARGS.rounds):
        k0 = (r * ARGS.batches) % max(1, len(batches) - ARGS.batches)
        ours.append(run_bptt(k0))
        theirs.append(run_torch(k0))
    result = {
        "task": cfg.task,
        "cell": cfg.cell,
        "chars": bool(cfg.char_dim),
        "threads": ARGS.threads,
        "bptt_words_per_s": statistics.median(ours),
        "torch_words_per_s": statistics.median(theirs),
        "ratio_bptt_over_torch": statistics.median(o / t for o, t in zip(ours, theirs)),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    if ARGS.json:
        import json

        print(json.dumps(result))
    else:
        print(
            f"tagger training throughput, task {cfg.task}, cell {cfg.cell}, chars {result['chars']},"
            f" {ARGS.threads} thread(s),"
            f" {ARGS.rounds} rounds of {ARGS.batches} batches of 32 sentences"
        )
        print(f"  bptt (NumPy, hand-written BPTT): {result['bptt_words_per_s']:>9,.0f} words/s")
        print(f"  PyTorch {torch.__version__} (same network): {result['torch_words_per_s']:>9,.0f} words/s")
        print(f"  ratio bptt/torch (median per round): {result['ratio_bptt_over_torch']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
