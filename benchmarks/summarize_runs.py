"""A table of finished ``bptt train`` runs: best dev F1, when it came, speed, and unseen names.

    python benchmarks/summarize_runs.py runs/cells/*/

For each run directory: the cell and task (config.json), epochs run, the best dev F1 (overall for
ner, PER for person: the task's F1) with its epoch and minute, the median training words/s over
epochs, and — from ``DIR.log`` beside the directory when ``benchmarks/cell_quality.sh`` wrote one —
the F1 on the unseen names (entities none of whose words is in the training vocabulary) of
``bptt evaluate``.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path


def summarize(run):
    run = Path(run)
    cfg = json.loads((run / "config.json").read_text())
    model = cfg.get("tagger", cfg)
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    best = max(rows, key=lambda r: r["dev"]["f1"])
    unseen = per_unseen = "-"
    log = run.parent / (run.name + ".log")
    if log.exists():
        text = log.read_text()
        m = re.search(r"unseen names .*?: (\d+) of (\d+) gold.*FB1:\s+([\d.]+)", text)
        if m:
            unseen = f"{float(m.group(3)):.2f} ({m.group(1)} of {m.group(2)})"
        m = re.search(r"^\s+PER: precision: .*FB1:\s+([\d.]+)\s+\d+$", text.split("unseen names")[-1], re.M)
        per_unseen = m.group(1) if m and model.get("task") == "ner" else "-"
    return {
        "run": run.name,
        "cell": model.get("cell", "rnn"),
        "task": model.get("task"),
        "epochs": len(rows),
        "minutes": rows[-1]["elapsed"] / 60,
        "best_f1": best["dev"]["f1"],
        "best_epoch": best["epoch"],
        "best_minute": best["elapsed"] / 60,
        "dev_per_f1": best["dev"]["per_type"].get("PER", {}).get("f1"),
        "words_per_s": statistics.median(r["tokens_per_s"] for r in rows),
        "unseen_f1": unseen,
        "unseen_per_f1": per_unseen,
    }


def main(runs):
    print(
        "| run | cell | task | epochs (min) | best dev F1 (epoch, min) | dev PER F1 | words/s |"
        " unseen names F1 (of gold) | unseen PER F1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        try:
            s = summarize(run)
        except (OSError, ValueError, KeyError) as e:
            print(f"| {run} | (unreadable: {e}) |")
            continue
        print(
            f"| {s['run']} | {s['cell']} | {s['task']} | {s['epochs']} ({s['minutes']:.1f}) |"
            f" {s['best_f1']:.2f} ({s['best_epoch']}, {s['best_minute']:.1f}) | {s['dev_per_f1'] or 0:.2f} |"
            f" {s['words_per_s']:,.0f} | {s['unseen_f1']} | {s['unseen_per_f1']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
