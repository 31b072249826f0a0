"""Pictures and the HTML report of a long-range run (``bptt longrange``; see ``bptt.longrange.runner``).

    curves-TASK.png      per T: the validation score against the training sequences seen (top), one
                         line per configuration, with the memoryless baseline (dashed) and the score
                         that counts as solved (dotted) where the criterion is on that score; below it
                         the gradient's norm before clipping, averaged between evaluations, with the
                         clipping threshold (dashed): the exploding-gradient bursts a gated cell goes
                         through as it leaves the baseline
    gradients-TASK.png   per T: the messages ‖∂L/∂a⟨t⟩‖ by step t (top) and the reach ‖∂s⟨T'⟩/∂s⟨T'−d⟩‖
                         by distance d (bottom), at the end of training (solid) and at the start
                         (dotted): with one loss at the end, how much gradient is left d steps back

Each configuration's result (``LongRangeTrainer.finish``) brings its curve and its probes. Figures
are built like ``bptt.pictures.plots``'s (``Figure``, no pyplot) and written the same way.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import asdict

import numpy as np

from ..io.output import open_output
from ..tasks.longrange import get_task
from .plots import _new_figure, _positive, _save
from .report import CSS, SCRIPT, _config, _img

NAMES = {"mse": "MSE", "cross_entropy": "cross-entropy per step", "accuracy": "accuracy"}


def _by_task(results):
    """{task: {T: [result, ...]}}, in the order the results came."""
    out = {}
    for r in results:
        rec = r["record"]
        out.setdefault(rec["task"], {}).setdefault(rec["T"], []).append(r)
    return out


def _colours(results):
    """A colour per configuration label ("lstm (forget1)"), the same in every panel."""
    from matplotlib import colormaps

    labels = list(dict.fromkeys(_label(r) for r in results))
    cmap = colormaps["tab10"]
    return {label: cmap(i % 10) for i, label in enumerate(labels)}


def _label(result):
    rec = result["record"]
    return f"{rec['cell']} ({rec['init']})"


def draw_pictures(out, results, redraw=None):
    """Draw curves-TASK.png and gradients-TASK.png into ``out`` for the task ``redraw`` (None: every task
    of ``results``); the other tasks' pictures are already there.

    Returns: [(caption, path)] of every task's pictures.
    """
    colours = _colours(results)
    pictures = []
    for task_name, by_T in _by_task(results).items():
        task = get_task(task_name)
        curves, gradients = (os.path.join(out, f"{kind}-{task_name}.png") for kind in ("curves", "gradients"))
        if redraw in (None, task_name):
            plot_learning_curves(task, by_T, colours, curves)
            plot_gradients(task, by_T, colours, gradients)
        pictures += [
            (f"Learning curves: {task.title}", curves),
            (f"Messages and reach: {task.title}", gradients),
        ]
    return pictures


def _floats(values):
    """An array of ``values``, None (not measured, or not finite: JSON has no NaN) as NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _series(curve, value):
    """(sequences, values) of a learning curve, ``value(point)`` None as NaN."""
    return _floats(p["sequences"] for p in curve), _floats(value(p) for p in curve)


def plot_learning_curves(task, by_T, colours, path):
    """Validation score (top) and the mean gradient norm before clipping (bottom) against training
    sequences, a column per T. Returns: the path written."""
    lengths = sorted(by_T)
    fig = _new_figure(4.2 * len(lengths) + 1.2, 6.0)
    top, bottom = fig.subplots(2, len(lengths), squeeze=False, sharex="col", height_ratios=(3, 2))
    metric = task.metric
    for col, T in enumerate(lengths):
        ax, below = top[col], bottom[col]
        for r in by_T[T]:
            x, y = _series(r["curve"], lambda p: p["valid"].get(metric))
            ax.plot(x, y if task.higher_is_better else _positive(y), "-", color=colours[_label(r)], lw=1.6,
                    label=_label(r))  # fmt: skip
            x, g = _series(r["curve"], lambda p: p.get("grad_norm"))
            below.semilogy(x, _positive(g), "-", color=colours[_label(r)], lw=1.2)
        ax.axhline(task.baseline(T), color="#555555", ls="--", lw=1, label="memoryless baseline")
        if task.solved_on == metric:
            ax.axhline(task.target, color="#2a9d3a", ls=":", lw=1.2, label="solved")
        if not task.higher_is_better:
            ax.set_yscale("log")
        ax.set_title(f"T = {T}", loc="left")
        clips = {r["record"].get("clip") for r in by_T[T]} - {None, 0}
        for clip in clips:
            below.axhline(clip, color="#555555", ls="--", lw=1)
        below.set_title("gradient norm before clipping" + (" (dashed: clipped to)" if clips else ""),
                        loc="left", fontsize=9)  # fmt: skip
        below.set_xlabel("training sequences")
        for a in (ax, below):
            a.grid(alpha=0.3, which="both")
    top[0].set_ylabel(f"validation {NAMES[metric]}")
    bottom[0].set_ylabel("mean ‖g‖ between evaluations")
    top[-1].legend(fontsize=8, loc="best")
    fig.suptitle(f"{task.title[0].upper()}{task.title[1:]}: learning curves", x=0.01, ha="left")
    return _save(fig, path)


def plot_gradients(task, by_T, colours, path):
    """Messages by step and reach by distance, at the start and the end, a column per T. Returns: the path."""
    lengths = sorted(by_T)
    has_reach = any(r["probe_end"]["reach"] is not None for rs in by_T.values() for r in rs)
    rows = 2 if has_reach else 1
    fig = _new_figure(4.2 * len(lengths) + 1.2, 3.2 * rows + 0.4)
    axes = fig.subplots(rows, len(lengths), squeeze=False)
    for col, T in enumerate(lengths):
        for r in by_T[T]:
            c = colours[_label(r)]
            for probe, style in ((r["probe_end"], "-"), (r["probe_start"], ":")):
                m = _floats(probe["message_norms"])
                label = _label(r) if style == "-" else None
                axes[0, col].semilogy(
                    np.arange(1, len(m) + 1), _positive(m), style, color=c, lw=1.3, label=label
                )
                if has_reach and probe["reach"] is not None:
                    reach = _floats(probe["reach"])
                    axes[1, col].semilogy(np.arange(len(reach)), _positive(reach), style, color=c, lw=1.3)
        axes[0, col].set_title(f"T = {T}: messages ‖∂L/∂a⟨t⟩‖", loc="left", fontsize=10)
        axes[0, col].set_xlabel("step t (the loss at the end)")
        if has_reach:
            axes[1, col].set_title(f"T = {T}: reach ‖∂s⟨T'⟩/∂s⟨T'−d⟩‖", loc="left", fontsize=10)
            axes[1, col].set_xlabel("distance d (steps back from the end)")
            axes[1, col].axhline(1.0, color="#999999", lw=0.8, ls="--")
        for ax in axes[:, col]:
            ax.grid(alpha=0.3, which="both")
    axes[0, -1].legend(fontsize=8, loc="best", title="solid: trained, dotted: initial", title_fontsize=8)
    fig.suptitle(
        f"{task.title[0].upper()}{task.title[1:]}: how far back the gradient reaches", x=0.01, ha="left"
    )
    return _save(fig, path)


# ------------------------------------------------------------------------------------------- the report


def write_report(path, cfg, records, pictures):
    """Write the run's self-contained HTML page: settings, results table, pictures. Returns: the path."""
    page = render_report(cfg, records, pictures)
    with open_output(path) as f:  # atomically; never over a write-protected file
        f.write(page)
    return path


def render_report(cfg, records, pictures):
    """The HTML text of the long-range report."""
    esc = html.escape
    from ..longrange.trainer import TABLE_HEAD, table_row

    head = "".join(f"<th>{h}</th>" for h in TABLE_HEAD)
    rows = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in table_row(r)) + "</tr>" for r in records)
    tasks = sorted({r["task"] for r in records})
    criteria = "".join(
        f"<li><b>{esc(get_task(t).title)}</b> ({esc(get_task(t).source)}): solved when"
        f" {esc(get_task(t).solved_by)}</li>"
        for t in tasks
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>bptt long-range report</title>",
        f"<style>{CSS}</style></head>",
        "<body>",
        "<header><h1>Long-range tasks</h1>",
        f'<p class="sub">{len(records)} configuration(s): test scores on {cfg.test_size:,} fresh sequences'
        " each, against the memoryless baseline</p></header>",
        '<section id="results"><h2>Results</h2>',
        f"<table><tr>{head}</tr>{rows}</table>",
        f'<ul class="note">{criteria}</ul></section>',
    ]
    for caption, picture in pictures:
        parts += [f"<section><h2>{esc(caption)}</h2>", _img(picture, caption), "</section>"]
    parts += _config(json.loads(json.dumps(asdict(cfg))))
    parts += [
        '<footer><p class="note">Written by bptt longrange. Self-contained: no network access needed.</p>',
        "</footer>",
        f"<script>{SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
