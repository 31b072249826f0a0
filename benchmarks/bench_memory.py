"""Checkpointed vs full BPTT: stored activations, tracemalloc peak and time at T = 1,000 and 10,000.

The code is ``bptt.bench.memory.memory_benchmark``; this script is ``bptt bench --memory``:

    flock /tmp/bptt-heavy.lock python benchmarks/bench_memory.py
    python benchmarks/bench_memory.py --lengths 1000 --rounds 3 --json
"""

import sys

from bptt.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--memory", *sys.argv[1:]]))
