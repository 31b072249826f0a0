"""A long-range task trained by bptt and by its PyTorch twin, side by side: the curves and the wall time.

Both start from the same weights (bptt's ``init_params``, copied into ``torch.nn.RNN``/``GRU``/``LSTM``
and a ``Linear`` head), take the same batches of the task's training stream, the same loss (the mean
sequence loss: ½(ŷ − y)² at the last step for adding, the cross-entropy at the last step for order,
summed over the last 10 steps for copy), clipping and Adam. bptt's update is `LongRangeTrainer.update`,
the one ``bptt longrange`` runs. Prints the training loss of both, averaged over every ``--every``
updates, then the wall time of each and the ratio bptt / torch (time of the updates only, alternating
between the two in rounds of ``--every`` updates so that both see the same machine).

    python benchmarks/bench_longrange.py --task adding --T 100 --cell lstm --updates 2000 --threads 1
    python benchmarks/bench_longrange.py --task copy --T 100 --cell gru --dtype float64 --updates 200
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=["adding", "copy", "order"], default="adding")
    p.add_argument("--T", type=int, default=100)
    p.add_argument("--cell", choices=["rnn", "irnn", "gru", "lstm"], default="lstm")
    p.add_argument(
        "--init", default="auto", help="the cell's initialisation (default auto: as bptt longrange)"
    )
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--updates", type=int, default=1000, help="updates of each (default 1000)")
    p.add_argument("--every", type=int, default=100, help="updates per printed point and per round")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads for NumPy and torch (default 1)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


ARGS = parse() if __name__ == "__main__" else None
if ARGS is not None:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)  # before NumPy loads its BLAS

import numpy as np  # noqa: E402
import torch  # noqa: E402

import bptt  # noqa: E402
from bptt.longrange import CELL_SPECS, Configuration, LongRangeConfig, LongRangeTrainer  # noqa: E402
from bptt.resources import keep_freed_memory  # noqa: E402
from bptt.tasks import task_rng  # noqa: E402

if ARGS is not None:
    keep_freed_memory()  # as the command line does: for both sides, torch's arrays come from malloc too


class TorchTwin(torch.nn.Module):
    """torch.nn.RNN/GRU/LSTM and a Linear head holding bptt's parameters, with bptt's placed loss."""

    def __init__(self, params, cell, activation, output):
        super().__init__()
        n_a, n_x = params["W_aa"].shape[1], params["W_ax"].shape[1]
        dtype = torch.float64 if params["W_aa"].dtype == np.float64 else torch.float32
        kind = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
        extra = {"nonlinearity": activation} if cell == "rnn" else {}
        self.rnn = kind(n_x, n_a, dtype=dtype, **extra)
        self.rnn.load_state_dict({k: torch.tensor(v) for k, v in bptt.params_to_torch(params, cell).items()})
        # bptt has one bias b_a where PyTorch has two: bias_hh stays 0 (but for the GRU's b_hn), or Adam would
        # move the sum twice as fast and clipping would count its gradient twice
        keep = torch.zeros_like(self.rnn.bias_hh_l0)
        if cell == "gru":
            keep[2 * n_a :] = 1  # b_hn: a parameter of its own in bptt too
        self.rnn.bias_hh_l0.register_hook(lambda g: g * keep)
        self.head = torch.nn.Linear(n_a, params["W_ya"].shape[0], dtype=dtype)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor(params["W_ya"]))
            self.head.bias.copy_(torch.tensor(params["b_y"]))
        self.output = output

    def loss(self, batch):
        """The mean sequence loss of a ``TaskBatch``, as bptt's ``sequence_loss(reduction="mean")``."""
        X = torch.from_numpy(batch.X)
        A, _ = self.rnn(X)  # (T', B, n_a)
        B = X.shape[1]
        if isinstance(batch.loss_at, str):  # "last": no padding in these tasks
            A_s, Y = A[-1], torch.from_numpy(np.asarray(batch.Y))
        else:
            S = torch.from_numpy(batch.loss_at)
            A_s, Y = A[S], torch.from_numpy(batch.Y)[S]
        Z = self.head(A_s)
        if self.output == "linear":
            return 0.5 * ((Z[:, 0] - Y.to(Z.dtype)) ** 2).sum() / B
        return torch.nn.functional.cross_entropy(Z, Y.long(), reduction="sum") / B


def main(args):
    torch.set_num_threads(args.threads)
    cfg = LongRangeConfig(
        tasks=[args.task], lengths=[args.T], cells=[args.cell], inits=[args.init], sequences=1,
        hidden=args.hidden, batch_size=args.batch_size, lr=args.lr, clip=args.clip, seed=args.seed,
    )  # fmt: skip
    conf = cfg.configurations()[0]
    with tempfile.TemporaryDirectory() as tmp:  # the trainer writes nothing until it runs
        ours = LongRangeTrainer(cfg, Configuration(*conf), tmp)
    dtype = np.dtype(args.dtype)
    ours.dtype = dtype.type
    ours.params = {k: v.astype(dtype) for k, v in ours.params.items()}
    cell, activation, _ = CELL_SPECS[conf.cell]
    twin = TorchTwin(ours.params, cell, activation, ours.task.output)
    opt = torch.optim.Adam(twin.parameters(), lr=args.lr)
    rng = task_rng(args.seed, "train")
    print(
        f"{ours.task.title}, T = {args.T}, {conf.cell} ({conf.init}), n_a = {args.hidden},"
        f" batch {args.batch_size},"
        f" Adam lr {args.lr}, clip {args.clip}, {args.dtype}, {args.threads} thread(s);"
        f" kernels {'on' if bptt.drivers.rnn._kernels is not None else 'off'}"
    )
    print(f"{'updates':>8} {'bptt loss':>12} {'torch loss':>12}")
    seconds = {"bptt": 0.0, "torch": 0.0}
    done = 0
    with np.errstate(all="ignore"):
        while done < args.updates:
            n = min(args.every, args.updates - done)
            batches = [ours.task.draw(rng, args.T, args.batch_size, dtype.type) for _ in range(n)]
            losses = {"bptt": [], "torch": []}
            start = time.perf_counter()
            for batch in batches:
                before = ours.interval["loss_sum"]
                ours.update(batch)  # train_step, clipping, Adam: as ``bptt longrange`` runs it
                losses["bptt"].append((ours.interval["loss_sum"] - before) / args.batch_size)  # its loss
            seconds["bptt"] += time.perf_counter() - start
            start = time.perf_counter()
            for batch in batches:
                opt.zero_grad()
                L = twin.loss(batch)
                L.backward()
                if args.clip:
                    torch.nn.utils.clip_grad_norm_(twin.parameters(), args.clip)
                opt.step()
                losses["torch"].append(L.item())
            seconds["torch"] += time.perf_counter() - start
            done += n
            print(f"{done:>8} {np.mean(losses['bptt']):>12.6g} {np.mean(losses['torch']):>12.6g}", flush=True)
    print("wall time of the updates: bptt {bptt:.2f} s, torch {torch:.2f} s".format(**seconds))
    print(f"ratio bptt / torch: {seconds['bptt'] / max(seconds['torch'], 1e-12):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
