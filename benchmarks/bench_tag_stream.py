"""``bptt tag`` streams: peak memory does not grow with the input, and its throughput.

Trains a person tagger on a slice of CoNLL-2003 (or uses ``--model``): ``--size tiny`` (24 units,
the tests' size) or ``default`` (the default architecture, one short epoch: speed does not depend on
the weights' values). Writes inputs of one sentence a line (CoNLL-2003 training sentences, cycled),
runs ``bptt tag`` on each as a process of its own, and measures its wall time and peak resident
memory (``/usr/bin/time -v`` when present, else ``getrusage`` of the child). One row per input size.

    flock /tmp/bptt-heavy.lock python benchmarks/bench_tag_stream.py --sizes 20000 200000 --size default
    flock /tmp/bptt-heavy.lock python benchmarks/bench_tag_stream.py --sizes 20000 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "conll2003")
TINY = ["--hidden", "24", "--word-dim", "24", "--char-dim", "8", "--char-hidden", "8"]


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000], help="sentences per input")
    p.add_argument("--model", help="a model directory to use (default: train one)")
    p.add_argument("--size", choices=["tiny", "default"], default="tiny", help="of the model to train")
    p.add_argument("--threads", type=int, default=1, help="bptt tag --threads (default 1)")
    p.add_argument("--format", default="inline", choices=["inline", "conll", "json"], help="output format")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    return p.parse_args()


def bptt(*argv):
    return [sys.executable, "-m", "bptt", *map(str, argv)]


def train(work, size):
    """A person tagger: tiny (1,000 sentences, 2 epochs) or of the default size (300 sentences, 1 epoch)."""
    out = os.path.join(work, "model")
    n, epochs, dims = (1000, 2, TINY) if size == "tiny" else (300, 1, [])
    cmd = bptt("train", "--train", os.path.join(DATA, "eng.train"), "--max-sentences", n, "--epochs", epochs,
               "--out", out, "--quiet", *dims)  # fmt: skip
    subprocess.run(cmd, check=True)
    return out


def write_input(path, n):
    """n lines of text: the sentences of eng.train, cycled. Returns the number of words."""
    from bptt.io.conll import iter_conll

    sentences = [" ".join(s.words) for s in iter_conll(os.path.join(DATA, "eng.train"))]
    words = 0
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            line = sentences[i % len(sentences)]
            f.write(line + "\n")
            words += line.count(" ") + 1
    return words


def measure(cmd, stdout):
    """Run cmd; return (wall seconds, peak RSS in MiB, how it was measured)."""
    if os.path.exists("/usr/bin/time"):
        start = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-v", *cmd], stdout=stdout, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(done.stderr)
        kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
        return wall, kb / 1024, "/usr/bin/time -v"
    # without time(1): a helper process of our own, so RUSAGE_CHILDREN holds this command alone
    helper = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True);"
        " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)"
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", helper, *cmd], stdout=stdout, stderr=subprocess.PIPE, text=True
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(done.stderr)
    return wall, int(done.stderr.split()[-1]) / 1024, "getrusage(RUSAGE_CHILDREN)"


def main():
    args = parse()
    work = tempfile.mkdtemp(prefix="bench-tag-")
    try:
        model = args.model or train(work, args.size)
        rows = []
        for n in args.sizes:
            path = os.path.join(work, f"in-{n}.txt")
            words = write_input(path, n)
            out_path = os.path.join(work, "out.txt")
            with open(out_path, "w") as out:
                cmd = bptt(
                    "tag",
                    "--model",
                    model,
                    "--input",
                    path,
                    "--format",
                    args.format,
                    "--threads",
                    args.threads,
                )
                wall, rss, how = measure(cmd, out)
            with open(out_path, "rb") as f:
                lines = sum(1 for _ in f)
            expected = n if args.format != "conll" else words + n
            assert lines == expected, (lines, expected)
            rows.append(
                {
                    "sentences": n,
                    "words": words,
                    "seconds": round(wall, 2),
                    "sentences_per_s": round(n / wall),
                    "words_per_s": round(words / wall),
                    "peak_rss_mib": round(rss, 1),
                    "rss_from": how,
                }
            )
            os.remove(path)
        if args.json:
            print(json.dumps(rows, indent=1))
            return
        print("| sentences | words | time (s) | sentences/s | words/s | peak RSS (MiB) |")
        print("|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(
                f"| {r['sentences']:,} | {r['words']:,} | {r['seconds']:.1f} | {r['sentences_per_s']:,}"
                f" | {r['words_per_s']:,} | {r['peak_rss_mib']:.1f} |"
            )
        print(f"peak RSS measured with {rows[0]['rss_from']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
