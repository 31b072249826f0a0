"""Checkpointed against full BPTT of the whole lecture model: stored states, peak memory and time.

``bptt bench --memory`` runs `memory_benchmark`; see its docstring for what each column measures.
"""

from __future__ import annotations

import functools
import math
import os
import statistics
import tracemalloc

import numpy as np

from ..errors import BpttError
from ..models.lecture import init_params
from ..resources import check_memory
from .speed import DTYPES, cpu_model, time_block


def _peak_bytes(fn):
    """Peak bytes allocated while ``fn`` runs, above what was allocated before (tracemalloc)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def memory_benchmark(
    lengths=(1000, 10000),
    B=16,
    n_x=32,
    n_a=128,
    n_y=10,
    dtype="float32",
    rounds=11,
    budgets=(None, 0.1),
    log=None,
):
    """Checkpointed vs full BPTT of the whole model (softmax head): memory and time.

    budgets: per row, None for the default segment length ⌈√T⌉, or a fraction of full
    BPTT's stored bytes given as ``memory_budget`` (the largest k that fits).
    Stored: bytes of states held from the forward pass to the backward pass (full: every
    a⟨t⟩; checkpointed: checkpoints + the last segment). Peak: tracemalloc's peak during
    one loss-and-gradient call, inputs excluded. Time: in each round, full and every
    checkpointed variant once, in an order that turns every round; ratios are per round.
    Returns: a JSON-ready dict.
    """
    from ..drivers.checkpointed import checkpointed_sequence_loss, rnn_forward_checkpointed
    from ..models.lecture import sequence_loss

    for name, n in (("B", B), ("n_x", n_x), ("n_a", n_a), ("n_y", n_y), ("rounds", rounds)):
        if not isinstance(n, int) or n < 1:
            raise BpttError(f"{name}: expected a positive integer, got {n!r}")
    if not lengths or any(not isinstance(T, int) or T < 1 for T in lengths):
        raise BpttError(f"lengths: expected positive sequence lengths, got {lengths!r}")
    if dtype not in DTYPES:
        raise BpttError(f"dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    if any(b is not None and not 0 < b <= 1 for b in budgets):
        raise BpttError(f"budgets: expected None or fractions in (0, 1], got {budgets!r}")
    for T in lengths:  # measured at 3-4 numbers per (t, b) per unit of n_x + n_a + n_y: counted as 5
        nbytes = np.dtype(dtype).itemsize * 5 * T * B * (n_x + n_a + n_y + 2)
        check_memory(f"length {T} (B={B}, n_x={n_x}, n_a={n_a}, n_y={n_y})", nbytes)
    report = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "numpy": np.__version__},
        "config": {"B": B, "n_x": n_x, "n_a": n_a, "n_y": n_y, "dtype": dtype, "rounds": rounds},
        "results": [],
    }
    log = log or (lambda line: None)
    for line in memory_title(report):
        log(line)
    for T in lengths:
        rng = np.random.default_rng(T)
        params = init_params(n_x, n_a, n_y, seed=0, dtype=dtype)
        X = rng.standard_normal((T, B, n_x)).astype(dtype)
        Y = rng.integers(0, n_y, size=(T, B))
        a0 = np.zeros((B, n_a), dtype=dtype)
        stored_full = T * B * n_a * np.dtype(dtype).itemsize  # every a⟨t⟩

        full = functools.partial(sequence_loss, params, X, Y, output="softmax")
        L, g = full()
        peak_full = _peak_bytes(full)
        sides = [full]
        rows = []
        for budget in budgets:
            nbytes = None if budget is None else budget * stored_full
            least = least_stored_states(T)
            if nbytes is not None and least * B * n_a * np.dtype(dtype).itemsize > nbytes:
                # below what any segment length keeps (about 2√T states): no such run, say so
                report.setdefault("skipped", []).append({"T": T, "budget": budget, "least_states": least})
                continue
            checkpointed = functools.partial(
                checkpointed_sequence_loss, params, X, Y, output="softmax", memory_budget=nbytes
            )
            L_c, g_c = checkpointed()
            _, cache = rnn_forward_checkpointed(X, a0, params, memory_budget=nbytes)
            sides.append(checkpointed)
            rows.append(
                {
                    "T": T,
                    "B": B,
                    "n_x": n_x,
                    "n_a": n_a,
                    "n_y": n_y,
                    "dtype": dtype,
                    "budget": budget,
                    "k": cache.k,
                    "stored_full": stored_full,
                    "stored_checkpointed": cache.stored_bytes,
                    "peak_full": peak_full,
                    "peak_checkpointed": _peak_bytes(checkpointed),
                    "grad_error": max(
                        float(np.abs(g_c[k] - g[k]).max() / max(np.abs(g[k]).max(), 1e-30)) for k in g
                    ),
                    "loss_error": abs(L_c - L) / abs(L),
                }
            )
        times = [[] for _ in sides]  # per side, per round
        for r in range(rounds):
            order = list(range(len(sides)))
            order = order[r % len(order) :] + order[: r % len(order)]  # each side leads in turn
            for i in order if r % 2 == 0 else order[::-1]:
                times[i].append(time_block(sides[i], 0.0))
        for row, t_ckpt in zip(rows, times[1:]):
            row["time_full_ms"] = statistics.median(times[0]) * 1e3
            row["time_checkpointed_ms"] = statistics.median(t_ckpt) * 1e3
            row["time_ratios"] = [c / f for c, f in zip(t_ckpt, times[0])]  # every round's
            row["time_ratio"] = statistics.median(row["time_ratios"])
            row["stored_saving"] = 1 - row["stored_checkpointed"] / row["stored_full"]
            row["peak_saving"] = 1 - row["peak_checkpointed"] / row["peak_full"]
            report["results"].append(row)
            log(format_memory_row(row))
    for skipped in report.get("skipped", ()):
        log(format_memory_note(skipped))
    return report


def least_stored_states(T):
    """The fewest states checkpointed BPTT can keep for length T: min over k of ⌈T/k⌉ + k (about 2√T).

    The minimum is at k = ⌊√T⌋ - 1 ... ⌊√T⌋ + 2 (checked against every k for T < 20,000).
    """
    r = math.isqrt(T)
    return min(-(-T // k) + min(k, T) for k in range(max(1, r - 1), min(T, r + 2) + 1))


MEMORY_HEADER = (
    f"{'T':>6} {'budget':>6} {'k':>4}  {'stored full':>11} {'checkpointed':>12} {'saving':>6}"
    f"  {'peak full':>10} {'checkpointed':>12} {'saving':>6}  {'full ms':>8} {'ckpt ms':>8} {'time':>6}"
)


def _mib(n):
    return f"{n / 2**20:.2f} MiB"


def format_memory_row(r):
    """One row of the memory table."""
    stored = f"{_mib(r['stored_full']):>11} {_mib(r['stored_checkpointed']):>12} {r['stored_saving']:>6.1%}"
    peak = f"{_mib(r['peak_full']):>10} {_mib(r['peak_checkpointed']):>12} {r['peak_saving']:>6.1%}"
    times = f"{r['time_full_ms']:>8.1f} {r['time_checkpointed_ms']:>8.1f} {r['time_ratio'] - 1:>+6.1%}"
    budget = "√T" if r["budget"] is None else f"{r['budget']:.0%}"
    return f"{r['T']:>6} {budget:>6} {r['k']:>4}  {stored}  {peak}  {times}"


def memory_title(report):
    """The lines above the memory table."""
    m, c = report["machine"], report["config"]
    return [
        f"checkpointed vs full BPTT, whole model (softmax head): {m['cpu']}, {m['cores']} cores,"
        f" numpy {m['numpy']}",
        f"B={c['B']}, n_x={c['n_x']}, n_a={c['n_a']}, n_y={c['n_y']}, {c['dtype']}; time: median of"
        f" {c['rounds']} alternating rounds; saving: 1 − checkpointed/full; stored: states kept for backward;"
        " budget: k = ⌈√T⌉, or the largest k whose stored states fit that share of full's",
        MEMORY_HEADER,
    ]


def format_memory_note(s):
    """The line saying why a budget row of length T was not run."""
    return (
        f"{s['T']:>6} {s['budget']:>6.0%}  skipped: {s['budget']:.0%} of full BPTT's {s['T']} stored states"
        f" is below the {s['least_states']} that checkpointed BPTT keeps at least (about 2√T)"
    )


def format_memory_report(report):
    """The readable table of a ``memory_benchmark`` report, and a line for each budget row skipped."""
    rows = [format_memory_row(r) for r in report["results"]]
    return "\n".join(memory_title(report) + rows + [format_memory_note(s) for s in report.get("skipped", ())])
