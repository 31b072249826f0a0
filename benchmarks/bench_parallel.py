"""Data-parallel training measured: words/s on 1 process x 1 thread, 1 process x 2 threads and 2
processes x 1 thread at the same global batch, 2 processes with twice the global batch (the same
sentences per process), and the time of the tagger's gradient Allreduce between two processes.

    python benchmarks/bench_parallel.py [--data FILE] [--sentences 3000] [--epochs 2] [--json]
    python benchmarks/bench_parallel.py --smoke          # a tiny model, seconds: does it run?

Each configuration trains the tagger (`bptt train`, float32, the default model unless --smoke) on
the first --sentences sentences of --data for --epochs epochs, without a dev set, into a temporary
directory, and reports words/s from its log (the epochs' training time; evaluation and saving are
not counted) as the mean over its epochs; with --rounds, every configuration again in turn, and the
median of each round's ratio. Two processes run under the mpiexec beside this
Python (the mpich wheel's) or on PATH.

The Allreduce is timed by this script run under ``mpiexec -n 2`` (``--allreduce``, started by the
script itself): the gradients of a real batch of the same tagger, summed by `MPIComm.sum` (the
allgather of the embedding rows used, then the one Allreduce over the packed buffer) --reps times,
and for comparison a bare Allreduce of that buffer's size and of the whole gradient, dense (every
parameter: what the sum would cost without sparse embedding rows). Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "data", "conll2003", "eng.train")
SMOKE_MODEL = ["--cell", "rnn", "--hidden", "24", "--word-dim", "24", "--char-dim", "8", "--char-hidden", "8"]
# (name, processes, threads, global batch as a multiple of --batch-size): the same global batch on
# each (strong scaling), and last the global batch grown with the processes, --batch-size sentences
# each (weak scaling; the learning-rate rule for it is benchmarks/lr_rule.py's)
CONFIGS = [
    ("1 process x 1 thread", 1, 1, 1),
    ("1 process x 2 threads", 1, 2, 1),
    ("2 processes x 1 thread", 2, 1, 1),
    ("2 processes x 1 thread, 2x batch", 2, 1, 2),
]


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DATA, help="a CoNLL training file (default: CoNLL-2003 eng.train)")
    p.add_argument(
        "--sentences", type=int, default=3000, help="train on the first N sentences (3000; 0: all)"
    )
    p.add_argument("--epochs", type=int, default=2, help="epochs per configuration (2)")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per update, all processes (32)")
    p.add_argument("--reps", type=int, default=50, help="timed gradient sums (50)")
    p.add_argument(
        "--rounds", type=int, default=1, help="train every configuration this many times, interleaved (1)"
    )
    p.add_argument(
        "--smoke", action="store_true", help="a tiny model on 100 sentences: a check, not a measure"
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--allreduce", action="store_true", help=argparse.SUPPRESS)  # (under mpiexec -n 2)
    args = p.parse_args()
    if args.smoke:
        args.sentences, args.epochs, args.reps = min(args.sentences, 100), 1, min(args.reps, 5)
    return args


def find_mpiexec():
    for path in (os.path.join(os.path.dirname(sys.executable), "mpiexec"), shutil.which("mpiexec")):
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    sys.exit("bench_parallel: no mpiexec beside this Python or on PATH: pip install 'bptt[mpi]'")


def environment(threads):
    """The environment of a measured process: BLAS with ``threads`` threads, bptt from this checkout."""
    env = dict(os.environ, PYTHONPATH=os.path.join(HERE, "..", "src"))
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    return env


def model_args(args):
    return SMOKE_MODEL if args.smoke else []


def words_per_second(args, processes, threads, batch_size):
    """Train one configuration; returns {"last": words/s of the last epoch, "mean": of all epochs}."""
    with tempfile.TemporaryDirectory() as out:
        model = os.path.join(out, "m")
        command = [sys.executable, "-m", "bptt", "train", "--train", args.data, "--out", model,
                   "--epochs", str(args.epochs), "--batch-size", str(batch_size), "--threads", str(threads),
                   "--quiet", *model_args(args)]  # fmt: skip
        if args.sentences:
            command += ["--max-sentences", str(args.sentences)]
        if processes > 1:
            command = [find_mpiexec(), "-n", str(processes), *command]
        subprocess.run(command, env=environment(threads), check=True)
        with open(os.path.join(model, "log.jsonl")) as f:
            speeds = [json.loads(line)["tokens_per_s"] for line in f]
    return {"last": speeds[-1], "mean": statistics.mean(speeds)}


def allreduce_times(args):
    """Under mpiexec -n 2: time the tagger's gradient sum; process 0 returns the numbers."""
    import numpy as np
    from mpi4py import MPI

    from bptt.models.tagger_network import TaggerConfig, batch_indices, make_batch
    from bptt.training import TrainConfig, Trainer
    from bptt.training.parallel import world

    warnings.simplefilter("ignore")  # what reading the data says, the training runs said already
    comm = world()
    tcfg = TrainConfig(
        train=os.path.abspath(args.data), max_sentences=args.sentences or None, batch_size=args.batch_size
    )
    mcfg = TaggerConfig()
    if args.smoke:
        mcfg = TaggerConfig(cell="rnn", hidden=24, word_dim=24, char_dim=8, char_hidden=8)
    trainer = Trainer(tcfg, mcfg, out=None, progress=False, comm=comm)
    trainer.read_data()
    trainer.init_state()
    lengths = [len(f) for f in trainer.train.forms]
    index = batch_indices(lengths, args.batch_size, np.random.default_rng(0))[0]
    L, grads = trainer.train_step(
        trainer.params, make_batch(trainer.train.forms, trainer.train.labels, index)
    )

    def timed(fn):
        times = []
        for _ in range(args.reps):
            comm.comm.Barrier()
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    control = (0.0, 0.0, 0.0)
    step = timed(lambda: comm.sum(L, grads, control))
    n = comm._buffer.size  # the packed buffer of the last sum
    buffer = np.zeros(n, dtype=np.float32)
    bare = timed(lambda: comm.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM))
    n_dense = sum(v.size for v in trainer.params.values())
    dense = np.zeros(n_dense, dtype=np.float32)
    whole = timed(lambda: comm.comm.Allreduce(MPI.IN_PLACE, dense, op=MPI.SUM))
    return {
        "parameters": n_dense,
        "packed_floats": int(n),
        "sum_ms": 1e3 * step,
        "allreduce_packed_ms": 1e3 * bare,
        "allreduce_dense_ms": 1e3 * whole,
        "dense_GB_per_s": 4 * n_dense / whole / 1e9,
    }


def main():
    args = parse()
    if args.allreduce:
        result = allreduce_times(args)
        from bptt.training.parallel import world

        if world().root:
            print(json.dumps(result))
        return
    results = {"words_per_s": {name: [] for name, *_ in CONFIGS}, "settings": vars(args)}
    # the Allreduce first: seconds, and a failure there should not come after minutes of training
    command = [find_mpiexec(), "-n", "2", sys.executable, os.path.abspath(__file__), "--allreduce",
               "--data", args.data, "--sentences", str(args.sentences), "--batch-size", str(args.batch_size),
               "--reps", str(args.reps), *(["--smoke"] if args.smoke else [])]  # fmt: skip
    out = subprocess.run(command, env=environment(1), check=True, capture_output=True, text=True).stdout
    results["allreduce"] = json.loads(out.strip().splitlines()[-1])
    for _ in range(args.rounds):  # interleaved, so that a slower spell of the machine hits every one
        for name, processes, threads, times in CONFIGS:
            speed = words_per_second(args, processes, threads, times * args.batch_size)
            results["words_per_s"][name].append(speed)
    if args.json:
        print(json.dumps(results, indent=1))
        return
    base = results["words_per_s"][CONFIGS[0][0]]
    print(f"words/s, the mean of each run's epochs, {args.rounds} round(s); × 1 process x 1 thread")
    for name, speeds in results["words_per_s"].items():
        means = [s["mean"] for s in speeds]
        ratios = sorted(s["mean"] / b["mean"] for s, b in zip(speeds, base))
        spread = f" (rounds {ratios[0]:.2f}-{ratios[-1]:.2f})" if len(ratios) > 1 else ""
        print(f"{name:34s} {statistics.median(means):10,.0f}  x{statistics.median(ratios):.2f}{spread}")
    a = results["allreduce"]
    print(
        f"gradient sum, 2 processes: {a['sum_ms']:.3f} ms (allgather of rows + Allreduce of"
        f" {a['packed_floats']:,} floats; that Allreduce alone {a['allreduce_packed_ms']:.3f} ms);"
        f" a dense Allreduce of all {a['parameters']:,} parameters {a['allreduce_dense_ms']:.3f} ms"
        f" ({a['dense_GB_per_s']:.2f} GB/s)"
    )


if __name__ == "__main__":
    main()
