"""Benchmarks: hand-written forward + BPTT against ``torch.nn.RNN``/``GRU``/``LSTM`` + autograd on the CPU.

What one timed call does, on both sides, with identical parameters and inputs, for each cell
("rnn": the vanilla tanh cell, "gru", "lstm"; see ``bptt.cells``):

    bptt:   A, cache = cell.fast_forward(X, state0, params)
            dX, d_state0, grads = cell.fast_backward(R, cache)
    torch:  out, _ = module(X, hx);  out.backward(R)       (X.requires_grad, so dX too)

where R (T, B, n_a) is a fixed random upstream gradient ∂L/∂a⟨t⟩ (L = Σ A ⊙ R) and the initial
state is zeros (h0, and c0 for the LSTM). Before timing, the two sides' gradients (every parameter
and X) are compared; a mismatch stops the benchmark. The two sides then run in rounds, with bptt between torch
and the GEMM yardstick and the order flipped every round (before each timed
block, a pause so one library's spinning worker threads do not slow the other,
then one untimed warm-up call), and the report gives the median time of each
side and the median of the per-round ratios bptt/torch.

FLOPs, counted from the GEMMs only: forward 2·T·B·(n_x + n_a)·k·n_a with k gates (1, 3, 4),
backward twice that (dz·W_aa, dW_aa, dW_ax and dX). Achieved GFLOP/s is reported as a
fraction of the machine's GEMM throughput, measured in the same run with an
n × n by n × n ``np.dot`` in the same dtype.

torch is imported only here, only when a benchmark runs (``pip install bptt[bench]``).
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..cells import get_cell, params_to_torch
from ..drivers import rnn
from ..errors import BpttError
from ..models.lecture import init_params
from ..resources import check_memory

# (T, B, n_x, n_a): the shapes of issue #4, small to large, plus two long/tiny ones
SHAPES = ((50, 32, 64, 128), (100, 64, 128, 256), (200, 128, 256, 512), (1000, 16, 32, 64), (35, 1, 50, 100))
PROBE = (1000, 1, 8, 8)  # per-step overhead probe: the work per step is almost nothing
DTYPES = ("float32", "float64")
# the cells ``bptt bench --cell`` knows, and their torch twins
TWINS = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}
CELL_NAMES = tuple(TWINS)


@dataclass
class BenchConfig:
    """What ``run_benchmark`` measures."""

    shapes: tuple = SHAPES  # (T, B, n_x, n_a) per row
    cells: tuple = ("rnn",)  # "rnn", "gru" and/or "lstm", each against its torch twin
    dtypes: tuple = DTYPES  # "float32" and/or "float64"
    probe: bool = True  # also time the per-step overhead probe PROBE
    rounds: int = 7  # alternating rounds per shape; medians are taken over them
    min_time: float = 0.2  # seconds each side runs per round (whole calls, at least one)
    pause: float = 0.15  # seconds of sleep between the two sides, so spinning threads settle
    gemm_n: int = 1024  # size of the square GEMM that measures the machine's throughput
    threads: int = 0  # BLAS and torch threads; 0: as many as NumPy's BLAS uses
    seed: int = 0  # seed for parameters and inputs


@dataclass
class ShapeResult:
    """One row of the report."""

    cell: str  # "rnn", "gru" or "lstm"
    dtype: str
    T: int
    B: int
    n_x: int
    n_a: int
    probe: bool  # the per-step overhead probe rather than a workload shape
    bptt_ms: float  # median time of one forward + backward
    torch_ms: float
    ratio: float  # median over rounds of bptt time / torch time
    ratios: list = field(default_factory=list)  # every round's ratio
    bptt_us_per_step: float = 0.0
    torch_us_per_step: float = 0.0
    gflops: float = 0.0  # achieved by bptt
    gemm_gflops: float = 0.0  # the GEMM yardstick in this dtype, timed in the same rounds
    gemm_fraction: float = 0.0  # median over rounds of achieved / yardstick
    call_us: float = 0.0  # probe only: one small NumPy call (the call yardstick), timed in the same rounds
    calls_per_step: float = 0.0  # probe only: median over rounds of (time per step) / (time per call)
    grad_error: float = 0.0  # max relative difference of the gradients, bptt vs torch


def import_torch():
    """Import torch, or fail with one line saying how to get it."""
    try:
        import torch
    except ImportError:
        raise BpttError(
            "bench: PyTorch is not installed; it is needed only to benchmark against it "
            "(pip install 'bptt[bench]')"
        ) from None
    return torch


def blas_threads():
    """How many threads NumPy's BLAS uses (threadpoolctl when installed, else 2)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return 2
    counts = [info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"]
    return max(counts) if counts else 2


def limit_blas_threads(n):
    """Make NumPy's BLAS use ``n`` threads from now on (needs threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise BpttError(
            "threads: setting NumPy's BLAS threads needs threadpoolctl (pip install threadpoolctl)"
        ) from None
    threadpool_limits(n, user_api="blas")


def cpu_model():
    """The CPU's model name, as ``lscpu`` shows it."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def flops(T, B, n_x, n_a, gates=1):
    """GEMM FLOPs of one forward + backward: forward 2·T·B·(n_x+n_a)·gates·n_a, backward twice that."""
    return 3 * 2 * T * B * (n_x + n_a) * gates * n_a


def time_block(fn, min_time):
    """Seconds per call of ``fn``, running whole calls for at least ``min_time`` seconds."""
    gc.collect()
    gc.disable()
    try:
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                return elapsed / calls
    finally:
        gc.enable()


def gemm_runner(dtype, n):
    """A function running one n × n by n × n ``np.dot`` in ``dtype``: the machine's GEMM yardstick."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
    c = np.empty((n, n), dtype=dtype)
    np.dot(a, b, out=c)  # warm up the BLAS threads
    return lambda: np.dot(a, b, out=c)


CALLS = 1000  # small NumPy calls per run of the call yardstick


def call_runner(dtype):
    """A function making ``CALLS`` calls of ``np.add`` on 8 numbers: the call yardstick.

    At B = 1, n = 8 a step's cost is a handful of such calls; this machine's cost per call
    drifts by up to 2x over seconds, so the probe is reported in calls as well as in µs.
    """
    x, out = np.ones((1, 8), dtype=dtype), np.empty((1, 8), dtype=dtype)
    add = np.add

    def run():
        for _ in range(CALLS):
            add(x, x, out)

    return run


class Case:
    """One benchmark case: identical parameters and inputs on both sides, and their runners."""

    def __init__(self, torch, shape, dtype, seed=0, cell="rnn"):
        T, B, n_x, n_a = shape
        self.shape, self.dtype, self.cell = shape, dtype, get_cell(cell)
        p = init_params(n_x, n_a, 1, seed=seed, dtype=dtype, cell=cell)  # uniform(±1/√n_a), like torch
        self.params = {k: p[k] for k in self.cell.keys}
        rng = np.random.default_rng(seed + 1)
        if cell == "rnn":  # its init has b_a = 0, which would hide a bias bug
            self.params["b_a"] = (0.1 * rng.standard_normal(n_a)).astype(dtype)
        self.X = rng.standard_normal((T, B, n_x)).astype(dtype)
        self.R = rng.standard_normal((T, B, n_a)).astype(dtype)  # upstream gradient ∂L/∂A
        a0 = np.zeros((B, n_a), dtype=dtype)
        self.state0 = (a0, a0.copy()) if self.cell.paired else a0  # (a0, c0) for the LSTM

        self.torch = torch
        kind = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
        extra = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        self.module = kind(n_x, n_a, dtype=getattr(torch, dtype), **extra)
        state = params_to_torch(self.params, cell)  # bias_ih = b_a, bias_hh = 0 (GRU: [0; 0; b_hn])
        self.module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        self.Xt = torch.from_numpy(self.X).requires_grad_()
        h0 = torch.from_numpy(a0[None])  # (1, B, n_a)
        self.hx = (h0, torch.from_numpy(self.state0[1][None])) if self.cell.paired else h0
        self.Rt = torch.from_numpy(self.R)

    def run_bptt(self):
        """Forward + full BPTT by hand. Returns: dX, grads."""
        _, cache = self.cell.fast_forward(self.X, self.state0, self.params, None)
        dX, _, grads, _ = self.cell.fast_backward(self.R, cache)
        return dX, grads

    def run_torch(self):
        """Forward + autograd backward in torch. Returns: dX, grads (as NumPy arrays, under bptt's names)."""
        for q in (self.Xt, *self.module.parameters()):
            q.grad = None
        out, _ = self.module(self.Xt, self.hx)
        out.backward(self.Rt)
        m = self.module
        grads = {"W_ax": m.weight_ih_l0.grad, "W_aa": m.weight_hh_l0.grad, "b_a": m.bias_ih_l0.grad}
        if self.cell.name == "gru":
            grads["b_hn"] = m.bias_hh_l0.grad[2 * m.hidden_size :]  # the n block of bias_hh
        return self.Xt.grad.numpy(), {k: v.numpy() for k, v in grads.items()}


def grad_error(ours, theirs):
    """Max over every parameter and X of max|ours − theirs| / max|theirs|."""
    (dX, grads), (dX_ref, grads_ref) = ours, theirs
    pairs = [(dX, dX_ref)] + [(grads[k], grads_ref[k]) for k in grads_ref]
    return max(float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)) for a, b in pairs)


GRAD_TOL = {"float32": 1e-3, "float64": 1e-9}  # max relative gradient difference accepted


def check_gradients(case):
    """Run both sides once and stop if their gradients differ. Returns: the relative error."""
    err = grad_error(case.run_bptt(), case.run_torch())
    if not err <= GRAD_TOL[case.dtype]:
        T, B, n_x, n_a = case.shape
        raise BpttError(
            f"bench: {case.cell.name} gradients differ from torch at T={T}, B={B}, n_x={n_x}, n_a={n_a},"
            f" {case.dtype}: "
            f"max relative error {err:.3g} > {GRAD_TOL[case.dtype]:g}"
        )
    return err


def time_case(case, config, yardstick):
    """Time bptt, torch and a yardstick (GEMM, or calls for the probe) for ``config.rounds`` rounds.

    bptt always runs between the other two (yardstick, bptt, torch, then torch, bptt,
    yardstick), so both of its per-round ratios compare blocks timed next to each other:
    this machine's speed drifts by up to 2x over seconds (others' work on the same cores).
    Returns: per-round seconds of bptt, of torch, and of one yardstick run.
    """
    t_bptt, t_torch, t_yard = [], [], []
    for r in range(config.rounds):
        blocks = [(yardstick, t_yard), (case.run_bptt, t_bptt), (case.run_torch, t_torch)]
        for fn, times in blocks if r % 2 == 0 else blocks[::-1]:
            time.sleep(config.pause)
            fn()  # one untimed call: all are timed warm (caches, BLAS threads awake)
            times.append(time_block(fn, config.min_time))
    return t_bptt, t_torch, t_yard


def bench_shape(case, config, gemm):
    """Check, time and summarise one case; ``gemm`` runs the GEMM yardstick. Returns: a ShapeResult.

    The probe is timed beside the call yardstick instead: a fraction of GEMM means nothing there.
    """
    err = check_gradients(case)
    T, B, n_x, n_a = case.shape
    probe = case.shape == PROBE
    t_bptt, t_torch, t_yard = time_case(case, config, call_runner(case.dtype) if probe else gemm)
    bptt_s, torch_s = statistics.median(t_bptt), statistics.median(t_torch)
    gates = case.cell.gates
    r = ShapeResult(
        cell=case.cell.name,
        dtype=case.dtype,
        T=T,
        B=B,
        n_x=n_x,
        n_a=n_a,
        probe=probe,
        bptt_ms=bptt_s * 1e3,
        torch_ms=torch_s * 1e3,
        ratio=statistics.median(a / b for a, b in zip(t_bptt, t_torch)),
        ratios=[a / b for a, b in zip(t_bptt, t_torch)],
        bptt_us_per_step=bptt_s / T * 1e6,
        torch_us_per_step=torch_s / T * 1e6,
        gflops=flops(*case.shape, gates) / bptt_s / 1e9,
        grad_error=err,
    )
    # bptt against its yardstick round by round, so a change of speed between rounds cancels
    if probe:
        r.call_us = statistics.median(t_yard) / CALLS * 1e6
        r.calls_per_step = statistics.median(tb / T / (ty / CALLS) for tb, ty in zip(t_bptt, t_yard))
    else:
        gemm_flops = 2 * config.gemm_n**3
        r.gemm_gflops = statistics.median(gemm_flops / t / 1e9 for t in t_yard)
        r.gemm_fraction = statistics.median(
            flops(*case.shape, gates) / tb / (gemm_flops / ty) for tb, ty in zip(t_bptt, t_yard)
        )
    return r


def case_bytes(shape, dtype, gates=1):
    """About the peak memory of one Case (inputs, both sides' caches and gradients): measured for the
    vanilla cell at 6-7 numbers per (t, b) per unit of n_x + n_a, counted here as 8; a gated cell's
    caches and gradients hold its gates, so it is counted as ``gates + 1`` such cells."""
    T, B, n_x, n_a = map(int, shape)  # Python integers: no overflow
    k = 1 if gates == 1 else gates + 1
    return np.dtype(dtype).itemsize * k * (8 * T * B * (n_x + n_a) + 4 * n_a * (n_x + n_a))


def check_config(config):
    """Check a BenchConfig's values and that its shapes fit in memory; BpttError names the bad one."""
    for dtype in config.dtypes:
        if dtype not in DTYPES:
            raise BpttError(f"dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    if not config.cells:
        raise BpttError("cell: expected at least one cell")
    for cell in config.cells:
        if cell not in CELL_NAMES:
            raise BpttError(f"cell: expected one of {', '.join(CELL_NAMES)}, got {cell!r}")
    for shape in config.shapes:
        if len(shape) != 4 or any(not isinstance(n, (int, np.integer)) or n < 1 for n in shape):
            raise BpttError(f"shape: expected four positive sizes T,B,n_x,n_a, got {shape!r}")
    if config.rounds < 1:
        raise BpttError(f"rounds: expected at least 1, got {config.rounds}")
    if config.min_time < 0 or config.pause < 0:
        raise BpttError("min_time/pause: expected non-negative seconds")
    if config.gemm_n < 1:
        raise BpttError(f"gemm_n: expected a positive size, got {config.gemm_n}")
    if config.threads < 0:
        raise BpttError(f"threads: expected a positive count (or 0 for NumPy's own), got {config.threads}")
    widest = max(config.dtypes, key=lambda d: np.dtype(d).itemsize, default="float64")
    yardstick = 3 * config.gemm_n**2 * np.dtype(widest).itemsize
    gates = max(get_cell(cell).gates for cell in config.cells)
    for shape in config.shapes:
        nbytes = case_bytes(shape, widest, gates) + yardstick
        check_memory(f"shape {','.join(map(str, shape))} in {widest}", nbytes)


def run_benchmark(config=None, log=None):
    """Run the bptt-vs-torch benchmark; ``log`` gets the table's lines as they come.

    Returns: a JSON-ready dict (machine, config, gemm_gflops, results).
    """
    config = BenchConfig() if config is None else config
    check_config(config)
    torch = import_torch()
    if config.threads:
        limit_blas_threads(config.threads)
    threads = blas_threads()
    torch.set_num_threads(threads)
    report = {
        "machine": machine_info(torch, threads),
        "config": {**asdict(config), "shapes": [list(s) for s in config.shapes]},
    }
    log = log or (lambda line: None)
    for line in report_title(report):
        log(line)
    shapes = [tuple(int(n) for n in s) for s in config.shapes] + ([PROBE] if config.probe else [])
    results = []
    for cell in config.cells:
        for dtype in config.dtypes:
            gemm = gemm_runner(dtype, config.gemm_n)
            for shape in shapes:
                results.append(bench_shape(Case(torch, shape, dtype, config.seed, cell), config, gemm))
                log(format_row(results[-1]))
    report["gemm_gflops"] = {}
    for d in config.dtypes:
        yardsticks = [r.gemm_gflops for r in results if r.dtype == d and not r.probe]
        report["gemm_gflops"][d] = statistics.median(yardsticks) if yardsticks else 0.0
    report["results"] = [asdict(r) for r in results]
    return report


def machine_info(torch, threads):
    """CPU, core count, library versions and thread counts, for the report header."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "threads": threads,
        "step_kernels": "compiled"
        if rnn._kernels is not None
        else "NumPy only (not built, or BPTT_NO_KERNELS)",
    }


HEADER = (
    f"{'cell':<4} {'dtype':<8} {'T':>5} {'B':>4} {'n_x':>4} {'n_a':>4}"
    f"  {'bptt ms':>9} {'torch ms':>9} {'ratio':>6}"
    f"  {'GFLOP/s':>7} {'GEMM':>6} {'of GEMM':>7}  {'us/step':>7}  {'grad err':>8}"
)


def format_row(r):
    """One table row; ``r`` is a ShapeResult or its dict."""
    r = r if isinstance(r, dict) else asdict(r)
    name = f"{r.get('cell', 'rnn'):<4} {r['dtype']:<8} {r['T']:>5} {r['B']:>4} {r['n_x']:>4} {r['n_a']:>4}"
    times = f"{r['bptt_ms']:>9.3f} {r['torch_ms']:>9.3f} {r['ratio']:>6.3f}"
    if r["probe"]:  # no GEMM columns: the call yardstick instead, after the row
        speed = f"{r['gflops']:>7.1f} {'-':>6} {'-':>7}"
        extra = f" probe: {r['calls_per_step']:.1f} calls per step (a call: {r['call_us']:.2f} us)"
    else:
        speed = f"{r['gflops']:>7.1f} {r['gemm_gflops']:>6.1f} {r['gemm_fraction']:>7.1%}"
        extra = ""
    return f"{name}  {times}  {speed}  {r['bptt_us_per_step']:>7.2f}  {r['grad_error']:>8.1e}{extra}"


def report_title(report):
    """The lines above the table: machine, libraries, and how to read the columns."""
    m, c = report["machine"], report["config"]
    twins = "/".join(f"torch.nn.{TWINS[x]}" for x in c.get("cells", ["rnn"]))
    return [
        f"bptt forward + BPTT vs {twins} + autograd: {m['cpu']},"
        f" {m['cores']} cores, {m['threads']} BLAS/torch threads, numpy {m['numpy']}, torch {m['torch']},"
        f" step kernels: {m['step_kernels']}",
        f"ratio: median over {c['rounds']} alternating rounds of bptt time / torch time; "
        f"GEMM: GFLOP/s of an n = {c['gemm_n']} np.dot in the same rounds; us/step: bptt time / T;"
        " probe: per step, in small NumPy calls timed in the same rounds",
        HEADER,
    ]


def format_report(report):
    """The readable table of a ``run_benchmark`` report."""
    return "\n".join(report_title(report) + [format_row(r) for r in report["results"]])
