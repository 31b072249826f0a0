"""The recurrent step's GEMM on NumPy's BLAS against Intel MKL's, plain and with the weights packed once.

A step of the LSTM's recurrence multiplies a (B, n_a) state by a (n_a, 4n_a) weight that is the same at
every step. MKL can pack such a weight once (``cblas_sgemm_pack``) and reuse it (``cblas_sgemm_compute``),
as oneDNN's fused LSTM does; OpenBLAS (NumPy's wheels) packs it again in every call. This measures
whether MKL, plain or packed, would beat NumPy's GEMM at the shapes of ``bptt bench --cell lstm``.
MKL is not a bptt dependency: install it beside NumPy in a scratch environment and point --mkl at it.

    python -m venv /tmp/mklenv && /tmp/mklenv/bin/pip install mkl numpy
    OPENBLAS_NUM_THREADS=2 MKL_NUM_THREADS=2 python benchmarks/gemm_backends.py \
        --mkl /tmp/mklenv/lib/libmkl_rt.so.3 --threads 2

Prints, for each (M = B, K, N): microseconds per call and GFLOP/s of NumPy, MKL and MKL packed (the
best of 5 rounds of 200 calls, float32, row-major, results checked against NumPy's).
"""

from __future__ import annotations

import argparse
import ctypes
import time

import numpy as np

ROW_MAJOR, NO_TRANS, PACKED, B_MATRIX = 101, 111, 151, 162  # CBLAS enumerations
SHAPES = [(32, 128, 512), (64, 256, 1024), (128, 512, 2048), (16, 64, 256), (32, 512, 2048)]  # (M, K, N)


def best_seconds(call, calls=200, rounds=5):
    call()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(calls):
            call()
        times.append((time.perf_counter() - t) / calls)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mkl", required=True, help="the path of libmkl_rt.so")
    ap.add_argument("--threads", type=int, default=1, help="MKL's threads (set OPENBLAS_NUM_THREADS alike)")
    args = ap.parse_args()
    mkl = ctypes.CDLL(args.mkl, mode=ctypes.RTLD_GLOBAL)
    mkl.MKL_Set_Num_Threads(ctypes.c_int(args.threads))
    mkl.cblas_sgemm_pack_get_size.restype = ctypes.c_size_t
    for M, K, N in SHAPES:
        print(" | ".join([f"{args.threads}t M={M:<4} K={K:<4} N={N:<5}", *measure(mkl, M, K, N)]))


def measure(mkl, M, K, N):
    """Each backend's time and rate on C = A W, A (M, K), W (K, N): one string each."""
    n, one, zero = ctypes.c_longlong, ctypes.c_float(1), ctypes.c_float(0)
    rng = np.random.default_rng(0)
    A, W = rng.random((M, K), dtype=np.float32), rng.random((K, N), dtype=np.float32)
    C, ref = np.empty((M, N), np.float32), A @ W
    a, w, c = (x.ctypes.data_as(ctypes.c_void_p) for x in (A, W, C))
    packed = ctypes.create_string_buffer(mkl.cblas_sgemm_pack_get_size(B_MATRIX, n(M), n(N), n(K)))
    mkl.cblas_sgemm_pack(ROW_MAJOR, B_MATRIX, NO_TRANS, n(M), n(N), n(K), one, w, n(N), packed)
    sizes = (n(M), n(N), n(K))
    calls = {
        "numpy": lambda: np.dot(A, W, out=C),
        "mkl": lambda: mkl.cblas_sgemm(
            ROW_MAJOR, NO_TRANS, NO_TRANS, *sizes, one, a, n(K), w, n(N), zero, c, n(N)
        ),
        "mkl packed": lambda: mkl.cblas_sgemm_compute(
            ROW_MAJOR, NO_TRANS, PACKED, *sizes, a, n(K), packed, n(N), zero, c, n(N)
        ),
    }
    row = []
    for name, call in calls.items():
        seconds = best_seconds(call)
        np.testing.assert_allclose(C, ref, rtol=1e-4)
        row.append(f"{name} {seconds * 1e6:7.1f} us {2 * M * N * K / seconds / 1e9:6.1f} GFLOP/s")
    return row


if __name__ == "__main__":
    main()
