"""How far the compiled kernels' tanh (bptt._kernels) is from float64 np.tanh, in ulps.

float32: every finite value with |x| ≤ 10 (past 9.01 tanh rounds to ±1), about 2.2 billion
(about 2 minutes on 2 cores). float64: ``--samples`` values with magnitudes spread evenly
over 10^-300 … 30 on a log scale, plus uniform ones in [−20, 20].

    python benchmarks/kernel_accuracy.py [--samples 100000000]
"""

import argparse
import time

import numpy as np

from bptt.drivers import rnn

CHUNK = 1 << 24


def ulps(ours, exact, dtype):
    """|ours − exact| in units of the last place of ``dtype`` at ``exact``."""
    spacing = np.spacing(np.abs(exact).astype(dtype)).astype(np.float64)
    return np.abs(ours.astype(np.float64) - exact) / spacing


def kernel_tanh(x):
    out = np.empty_like(x)
    rnn._kernels.tanh_add(x, np.full_like(x, -0.0), out)  # x + (−0) is x, −0 included
    return out


def worst(chunks, dtype):
    """(max ulp, where) over the chunks of ``dtype`` values."""
    top, where = 0.0, None
    for x in chunks:
        err = ulps(kernel_tanh(x), np.tanh(x.astype(np.float64)), dtype)
        i = int(np.argmax(err))
        if err[i] > top:
            top, where = float(err[i]), float(x[i])
    return top, where


def float32_chunks():
    """Every finite float32 with |x| ≤ 10, both signs, in chunks."""
    last = int(np.float32(10).view(np.uint32))
    for sign in (0, 0x80000000):
        for start in range(0, last + 1, CHUNK):
            bits = np.arange(start, min(start + CHUNK, last + 1), dtype=np.uint32) | np.uint32(sign)
            yield bits.view(np.float32)


def float64_chunks(samples, seed=0):
    rng = np.random.default_rng(seed)
    for start in range(0, samples, CHUNK):
        n = min(CHUNK, samples - start)
        magnitude = 10.0 ** rng.uniform(-300, np.log10(30), n // 2)
        signs = rng.choice([-1.0, 1.0], n // 2)
        yield np.concatenate([signs * magnitude, rng.uniform(-20, 20, n - n // 2)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000_000, help="float64 values to check")
    args = parser.parse_args()
    if rnn._kernels is None:
        raise SystemExit("bptt._kernels is not built (or BPTT_NO_KERNELS is set): nothing to check")
    t0 = time.time()
    top, where = worst(float32_chunks(), np.float32)
    print(f"float32: every finite |x| <= 10: max {top:.3f} ulp (at x = {where!r}), {time.time() - t0:.0f} s")
    t0 = time.time()
    top, where = worst(float64_chunks(args.samples), np.float64)
    seconds = time.time() - t0
    print(f"float64: {args.samples:,} samples: max {top:.3f} ulp (at x = {where!r}), {seconds:.0f} s")


if __name__ == "__main__":
    main()
