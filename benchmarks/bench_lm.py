"""bptt's character language model against a PyTorch twin: the same LSTM, batches, truncation, updates.

Both start from the same weights (bptt's, copied with ``bptt.to_torch``; PyTorch's second bias, bias_hh,
held at 0 as bptt has one), read the same B streams of
the training text in chunks of k characters (the state carried, its gradient cut), take the same
Adam updates with the same global-norm clipping, no dropout (so that nothing random differs), and
are scored on the same held-out text after the same number of updates. Prints the bits per
character of each, their difference, and the wall time of each training loop and its ratio.

    python benchmarks/bench_lm.py --conll ../shared/data/conll2003/eng.train \
        --eval-conll ../shared/data/conll2003/eng.testa --updates 300 --threads 1
"""

from __future__ import annotations

import argparse
import os
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conll", required=True, help="training text: a CoNLL file")
    ap.add_argument("--eval-conll", required=True, help="evaluation text: a CoNLL file")
    ap.add_argument("--cell", default="lstm", choices=["rnn", "gru", "lstm"])
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--bptt-steps", type=int, default=100)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", choices=["bptt", "torch"], help="time one side only")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np
    import torch

    from bptt.cells import get_cell
    from bptt.io.torch_params import to_torch
    from bptt.lm.corpus import Alphabet, conll_text
    from bptt.lm.model import LanguageModel
    from bptt.lm.network import chunk_loss, init_lm
    from bptt.training.optim import Adam, clip_grad_norm

    torch.set_num_threads(args.threads)
    text, eval_text = conll_text(args.conll), conll_text(args.eval_conll)
    alphabet = Alphabet.of(text)
    V, B, k, n_a = len(alphabet), args.batch_size, args.bptt_steps, args.hidden
    ids = alphabet.encode(text)
    L = (len(ids) - 1) // B
    inputs, targets = ids[: B * L].reshape(B, L).T, ids[1 : B * L + 1].reshape(B, L).T  # (L, B) each
    chunks = [(s, min(s + k, L)) for s in range(0, L, k)]
    dtype = getattr(np, args.dtype)
    p0 = init_lm(args.cell, V, n_a, seed=0, dtype=dtype)

    def batches():
        for u in range(args.updates):
            s, e = chunks[u % len(chunks)]
            yield u % len(chunks) == 0, inputs[s:e], targets[s:e]

    # ---- bptt
    cell = get_cell(args.cell)
    p = {key: v.copy() for key, v in p0.items()}
    opt = Adam(lr=args.lr)
    t_bptt = None
    if args.only != "torch":
        t0 = time.perf_counter()
        for first, x, y in batches():
            if first:
                state = cell.zero_state(B, n_a, dtype)
            loss, grads, state = chunk_loss(p, cell, x, y, state)
            for g in grads.values():
                g /= x.size
            clip_grad_norm(grads, args.clip)
            opt.step(p, grads)
        t_bptt = time.perf_counter() - t0

    # ---- torch
    tdt = torch.float32 if args.dtype == "float32" else torch.float64
    rnn = to_torch({key: p0[key] for key in cell.keys}, args.cell)
    head = torch.nn.Linear(n_a, V).to(tdt)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(p0["W_ya"]))
        head.bias.copy_(torch.from_numpy(p0["b_y"]))
    # bptt has one bias b_a where PyTorch has bias_ih + bias_hh: train bias_ih alone (bias_hh stays 0, as
    # to_torch sets it), or Adam would move their sum twice as fast; the GRU's b_hn is bias_hh's n block
    if args.cell == "gru":
        rnn.bias_hh_l0.register_hook(lambda g: torch.cat([torch.zeros_like(g[: 2 * n_a]), g[2 * n_a :]]))
    else:
        rnn.bias_hh_l0.requires_grad_(False)
    params = [q for q in rnn.parameters() if q.requires_grad] + list(head.parameters())
    topt = torch.optim.Adam(params, lr=args.lr)
    eye = torch.eye(V, dtype=tdt)
    t_torch = None
    if args.only != "bptt":
        t0 = time.perf_counter()
        for first, x, y in batches():
            if first:
                h = torch.zeros(1, B, n_a, dtype=tdt)
                hc = (h, h.clone()) if args.cell == "lstm" else h
            X = eye[torch.from_numpy(x)]  # (k, B, V) one-hot
            out, hc = rnn(X, hc)
            logits = head(out)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), torch.from_numpy(y).reshape(-1))
            topt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, args.clip)
            topt.step()
            hc = tuple(s.detach() for s in hc) if args.cell == "lstm" else hc.detach()
        t_torch = time.perf_counter() - t0

    def torch_params():
        from bptt.io.torch_params import from_torch

        q = from_torch(rnn, args.cell)
        q = q[0] if isinstance(q, list) else q
        q = {key: np.asarray(v, dtype=dtype) for key, v in q.items()}
        q["W_ya"] = head.weight.detach().numpy().astype(dtype)
        q["b_y"] = head.bias.detach().numpy().astype(dtype)
        return q

    chars = args.updates * B * k
    print(f"{args.cell} n_a={n_a} B={B} k={k} {args.dtype} threads={args.threads}: {args.updates} updates,"
          f" {chars:,} characters")  # fmt: skip
    results = {}
    if t_bptt is not None:
        results["bptt"] = LanguageModel(p, args.cell, alphabet, "stream").bits_per_char(eval_text)
        print(f"  bptt   {t_bptt:8.1f} s  {chars / t_bptt:10,.0f} chars/s  eval bpc {results['bptt']:.4f}")
    if t_torch is not None:
        results["torch"] = LanguageModel(torch_params(), args.cell, alphabet, "stream").bits_per_char(
            eval_text
        )
        print(f"  torch  {t_torch:8.1f} s  {chars / t_torch:10,.0f} chars/s  eval bpc {results['torch']:.4f}")
    if len(results) == 2:
        print(f"  bpc difference {results['bptt'] - results['torch']:+.2e};"
              f" bptt {t_torch / t_bptt:.2f}x the speed of torch")  # fmt: skip


if __name__ == "__main__":
    main()
