"""What global batch and learning rate keep the tagger's accuracy as processes are added.

    python benchmarks/lr_rule.py [--epochs 10] [--seeds 0 1] [--out runs/lr-rule] [--only NAME ...]
                                 [--plot PNG]

Data parallelism on p processes with a fixed global batch trains the same model as one process (the
tests hold float64 runs equal to 1e-12); it only gets faster while each process's share stays large
enough. Beyond that the global batch grows with p, and the learning rate must follow it. For Adam
the usual rule is the square root: batch × k ⇒ lr × √k (Goyal et al.'s linear rule is SGD's). This
trains the default person tagger (LSTM, auxiliary output) on CoNLL-2003 for --epochs epochs under
five configurations, one BLAS thread per process:

    p1-b32            1 process,  batch 32, lr 0.003            (the default)
    p2-b64-sqrt       2 processes, batch 64, lr 0.003·√2         (the rule)
    p3-b96-sqrt       3 processes, batch 96, lr 0.003·√3         (the rule; 3 processes on 2 cores)
    p2-b64-same       2 processes, batch 64, lr 0.003            (no rule)
    p2-b64-linear     2 processes, batch 64, lr 0.006            (the linear rule)

and prints, over the seeds, the dev F1 of the last epoch, of the best epoch (the model kept), that
model's F1 on the dev set's unseen names (no word in the training vocabulary), the updates made and
the words/s. Each run is a directory under --out; a run already there (its log complete) is read,
not trained again, so the script can be stopped and started.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_parallel import environment, find_mpiexec  # noqa: E402  (the same launcher and threads)

DATA = os.path.join(HERE, "..", "..", "shared", "data", "conll2003")
LR = 0.003  # bptt train's default
CONFIGS = {  # name: (processes, global batch, learning rate)
    "p1-b32": (1, 32, LR),
    "p2-b64-sqrt": (2, 64, LR * math.sqrt(2)),
    "p3-b96-sqrt": (3, 96, LR * math.sqrt(3)),
    "p2-b64-same": (2, 64, LR),
    "p2-b64-linear": (2, 64, 2 * LR),
}
UNSEEN = re.compile(r"unseen names .*FB1:\s+([\d.]+)")


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", default=os.path.join(DATA, "eng.train"), help="training file (eng.train)")
    p.add_argument("--dev", default=os.path.join(DATA, "eng.testa"), help="dev file (CoNLL-2003 eng.testa)")
    p.add_argument("--epochs", type=int, default=10, help="epochs per run (10)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds (0 1)")
    p.add_argument("--only", nargs="+", choices=list(CONFIGS), help="run only these configurations")
    p.add_argument("--out", default=os.path.join(HERE, "..", "runs", "lr-rule"), help="runs directory")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument(
        "--plot", metavar="PNG", help="also draw dev F1 against training minutes, one line per run"
    )
    return p.parse_args()


def train(args, name, seed):
    """Train one configuration with one seed (unless its run is complete); returns its numbers."""
    processes, batch, lr = CONFIGS[name]
    out = os.path.join(args.out, f"{name}-s{seed}")
    log = os.path.join(out, "log.jsonl")
    if not (os.path.exists(log) and len(read_log(log)) == args.epochs):
        if os.path.exists(out):  # an unfinished run: start it again
            subprocess.run(["rm", "-r", out], check=True)
        command = [sys.executable, "-m", "bptt", "train", "--train", args.train, "--dev", args.dev,
                   "--task", "person", "--out", out, "--epochs", str(args.epochs), "--patience",
                   str(args.epochs), "--batch-size", str(batch), "--lr", repr(lr), "--seed", str(seed),
                   "--quiet"]  # fmt: skip
        if processes > 1:
            command = [find_mpiexec(), "-n", str(processes), *command]
        print(f"{name} seed {seed}: {' '.join(command[-22:])}", file=sys.stderr, flush=True)
        subprocess.run(command, env=environment(1), check=True)
    records = read_log(log)
    scores = subprocess.run(
        [sys.executable, "-m", "bptt", "evaluate", "--model", out, "--data", args.dev],
        env=environment(1), check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return {
        "last_f1": records[-1]["dev"]["f1"],
        "best_f1": max(r["dev"]["f1"] for r in records),
        "unseen_f1": float(UNSEEN.search(scores).group(1)),  # the kept (best-epoch) model's
        "words_per_s": statistics.mean(r["tokens_per_s"] for r in records),
        "train_minutes": sum(r["seconds"] for r in records) / 60,
    }


COLOURS = {"p1-b32": "black", "p2-b64-sqrt": "tab:blue", "p3-b96-sqrt": "tab:green",
           "p2-b64-same": "tab:orange", "p2-b64-linear": "tab:red"}  # fmt: skip


def plot(args, names, path):
    """Dev F1 after each epoch against the training minutes so far, every run (the seeds dashed)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.2), dpi=110)
    ax = fig.add_subplot()
    for name in names:
        p, batch, lr = CONFIGS[name]
        for i, seed in enumerate(args.seeds):
            records = read_log(os.path.join(args.out, f"{name}-s{seed}", "log.jsonl"))
            minutes = [sum(r["seconds"] for r in records[: k + 1]) / 60 for k in range(len(records))]
            label = f"{p} process{'es' if p > 1 else ''}, batch {batch}, lr {lr:.5f}" if i == 0 else None
            ax.plot(minutes, [r["dev"]["f1"] for r in records], color=COLOURS.get(name, "grey"),
                    ls="-" if i == 0 else "--", lw=1.6, marker="o", ms=3, label=label)  # fmt: skip
    ax.set_ylim(88, 95)
    ax.set_xlabel("training minutes (2 cores; 3 processes share them)")
    ax.set_ylabel("dev PER F1 after each epoch (eng.testa)")
    title = f"The person tagger on 1–3 processes, {args.epochs} epochs, seeds {args.seeds} (dashed: 2nd)"
    ax.set_title(title, fontsize=9.5)
    ax.legend(fontsize=8.5, loc="lower right")
    ax.grid(alpha=0.3, lw=0.4)
    fig.tight_layout()
    fig.savefig(path)
    print(f"wrote {path}", file=sys.stderr)


def read_log(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    args = parse()
    os.makedirs(args.out, exist_ok=True)
    results = {}
    for name in args.only or CONFIGS:
        results[name] = [train(args, name, seed) for seed in args.seeds]
    if args.plot:
        plot(args, list(results), args.plot)
    if args.json:
        print(json.dumps({"settings": vars(args), "configs": CONFIGS, "results": results}, indent=1))
        return
    print(f"{args.epochs} epochs, seeds {args.seeds}: means over the seeds (each seed's value in brackets)")
    print(f"{'configuration':15s} {'p':>2s} {'batch':>5s} {'lr':>7s}  {'last F1':>22s}  {'best F1':>22s}"
          f"  {'unseen F1':>22s}  {'words/s':>8s}  train min")  # fmt: skip

    def cell(runs, key):
        values = [r[key] for r in runs]
        return f"{statistics.mean(values):6.2f} [{' '.join(f'{v:.2f}' for v in values)}]"

    for name, runs in results.items():
        p, batch, lr = CONFIGS[name]
        words = statistics.mean(r["words_per_s"] for r in runs)
        minutes = statistics.mean(r["train_minutes"] for r in runs)
        print(f"{name:15s} {p:2d} {batch:5d} {lr:7.5f}  {cell(runs, 'last_f1'):>22s}"
              f"  {cell(runs, 'best_f1'):>22s}  {cell(runs, 'unseen_f1'):>22s}  {words:8,.0f}"
              f"  {minutes:5.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
