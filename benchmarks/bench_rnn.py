"""Forward + full BPTT of the vanilla RNN vs torch.nn.RNN + autograd on the CPU.

The code is ``bptt.bench.speed``; this script is ``bptt bench`` with the same options:

    flock /tmp/bptt-heavy.lock python benchmarks/bench_rnn.py            # the full run
    python benchmarks/bench_rnn.py --quick --shape 35,1,50,100 --json
"""

import sys

from bptt.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
