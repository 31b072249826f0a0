"""Tagging speed of a bptt model directory against its ONNX export (onnxruntime), one thread each.

Exports MODEL to a temporary .onnx file (``bptt.export.export_onnx``), then tags the sentences of a
CoNLL file (its own tokens) with both, and reports sentences/s:

    predict     ``Tagger.predict`` in this process, best of --repeat: the model alone (batches of
                128 sentences, the same decoding); NumPy's BLAS limited to one thread, onnxruntime
                given one intra-op thread
    bptt tag    ``bptt tag --input DATA --input-format conll --format conll --threads 1`` as a process
                of its own, wall time (start-up and output included), best of --repeat

and checks that both give the same tags on every sentence.

    flock /tmp/bptt-heavy.lock python benchmarks/bench_export.py runs/ner
    python benchmarks/bench_export.py runs/ner --max-sentences 20 --repeat 1      # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEV = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "conll2003", "eng.testa"))


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a model directory written by bptt train")
    p.add_argument("--data", default=DEV, help="a CoNLL file (default: CoNLL-2003 eng.testa)")
    p.add_argument("--max-sentences", type=int, help="only the first N sentences")
    p.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the best is kept")
    p.add_argument("--no-cli", action="store_true", help="skip the bptt tag processes")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    return p.parse_args()


def best_time(fn, repeat):
    """The shortest of ``repeat`` runs of fn() in seconds, and fn's last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def cli_time(model, data, repeat):
    """Wall seconds of ``bptt tag`` over the sentences of data (best of repeat)."""
    cmd = [sys.executable, "-m", "bptt", "tag", "--model", model, "--input", data, "--input-format", "conll",
           "--format", "conll", "--threads", "1"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def run():
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)

    return best_time(run, repeat)[0]


def main():
    args = parse()
    from threadpoolctl import threadpool_limits

    from bptt.export import export_onnx
    from bptt.io.conll import read_conll
    from bptt.models.tagger import load_tagger

    sentences = read_conll(args.data)[: args.max_sentences]
    words = [s.words for s in sentences]
    n_words = sum(len(w) for w in words)
    results = {"model": args.model, "data": args.data, "sentences": len(words), "words": n_words}
    with tempfile.TemporaryDirectory() as work, threadpool_limits(1, user_api="blas"):
        onnx_path = os.path.join(work, "model.onnx")
        tagger = load_tagger(args.model)
        done = export_onnx(tagger, onnx_path)
        exported = load_tagger(onnx_path, threads=1)
        results["onnx_bytes"], results["max_logit_diff_probe"] = done["bytes"], done["max_diff"]
        t_bptt, tags_bptt = best_time(lambda: tagger.predict(words), args.repeat)
        t_onnx, tags_onnx = best_time(lambda: exported.predict(words), args.repeat)
        results["same_tags"] = sum(a == b for a, b in zip(tags_bptt, tags_onnx))
        results["predict"] = {"bptt": len(words) / t_bptt, "onnx": len(words) / t_onnx}
        if not args.no_cli:
            data = args.data
            if args.max_sentences:  # bptt tag reads a file: write the slice
                data = os.path.join(work, "data.conll")
                with open(data, "w", encoding="utf-8") as f:
                    f.write(
                        "".join(
                            "".join(f"{w} {t}\n" for w, t in zip(s.words, s.tags)) + "\n" for s in sentences
                        )
                    )
            results["bptt_tag"] = {
                name: len(words) / cli_time(model, data, args.repeat)
                for name, model in (("bptt", args.model), ("onnx", onnx_path))
            }
    if args.json:
        print(json.dumps(results))
        return
    print(f"{args.model} on {args.data}: {len(words):,} sentences, {n_words:,} words, one thread each")
    print(
        f"ONNX file {results['onnx_bytes'] / 2**20:.1f} MiB; same tags on {results['same_tags']:,} sentences"
    )
    for what in ("predict", "bptt_tag"):
        if what in results:
            r = results[what]
            print(f"{what:>9}: bptt {r['bptt']:8.1f} sentences/s   onnx {r['onnx']:8.1f} sentences/s"
                  f"   (onnx/bptt {r['onnx'] / r['bptt']:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
