"""Pictures of the encoder–decoder (``bptt dates``): attention maps, the network unrolled over one
date, and the run's HTML report.

    attention-maps.png   for a few written dates, α⟨t,j⟩: which source character j each output
                         character t read (rows: the ISO output, columns: the written date)
    curve.png            validation exact match and training loss against updates
    report.html          both pictures and the tables: test exact match in the training formats and in
                         the held-out ones, per format, the errors

``draw_seq2seq_graph`` draws the lecture's picture of an encoder–decoder for one date from a trace
(``DateModel.trace``): the source characters and the bidirectional encoder states h⟨j⟩ below, the
decoder states s⟨t⟩ and the outputs above, each output fed back as the next decoder input, and the
attention weights α⟨t,j⟩ as lines from s⟨t⟩ to h⟨j⟩ (their opacity); every state is coloured by the
norm of the BPTT message that reaches it (the loss against the model's own output).
"""

from __future__ import annotations

import html
import json
import math
import os

import numpy as np

from ..io.output import open_output
from .plots import (
    BACKWARD,
    DPI,
    FEEDBACK,
    FORWARD,
    _colormap,
    _luminance,
    _new_figure,
    _plain,
    _save,
    check_picture_path,
)
from .report import CSS, SCRIPT, _config, _img


def plot_attention_maps(maps, path):
    """One heat map per written date: α (output steps × source characters)."""
    maps = [m for m in maps if m.get("alphas") is not None]
    if not maps:
        return None
    n = len(maps)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig = _new_figure(6.2 * cols, 3.6 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    for ax, m in zip(axes, maps):
        A = np.asarray(m["alphas"], dtype=float)  # (steps, len(text))
        out = list(m["output"]) + ["<end>"]
        ax.imshow(A, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(m["text"])))
        ax.set_xticklabels([c if c != " " else "␣" for c in m["text"]], fontsize=8)
        ax.set_yticks(range(A.shape[0]))
        ax.set_yticklabels(out[: A.shape[0]], fontsize=8)
        ax.set_title(_plain(f"'{m['text']}' → {m['output']}"), fontsize=10, loc="left")
        ax.set_xlabel("written date (encoder, j)", fontsize=8)
        ax.set_ylabel("ISO output (decoder, t)", fontsize=8)
    for ax in axes[n:]:
        ax.axis("off")
    fig.suptitle("Attention α⟨t,j⟩: the source characters each output character reads", x=0.01, ha="left")
    return _save(fig, path)


def plot_dates_curve(log, path):
    """Validation exact match (left axis) and training loss (right axis) against updates."""
    fig = _new_figure(7.5, 3.6)
    ax = fig.subplots()
    u = [r["updates"] for r in log]
    ax.plot(u, [100 * r["valid_exact"] for r in log], color=FORWARD, lw=1.6, label="validation exact match")
    ax.set_xlabel("updates")
    ax.set_ylabel("exact match (%)", color=FORWARD)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    right = ax.twinx()
    loss = [(x, r["train_loss"]) for x, r in zip(u, log) if r.get("train_loss")]
    if loss:
        right.semilogy(*zip(*loss), color=BACKWARD, lw=1.2, label="training loss (per date)")
        right.set_ylabel("training loss", color=BACKWARD)
    ax.set_title(
        "Learning curve: dates never seen in training, in the training formats", loc="left", fontsize=10
    )
    return _save(fig, path)


def write_dates_report(out, result, log):
    """The pictures and report.html of a finished ``bptt dates train`` run, in ``out``."""
    pictures = []
    for name, draw, arg, caption in (
        ("curve.png", plot_dates_curve, log, "Learning curve"),
        ("attention-maps.png", plot_attention_maps, result["attention_maps"], "Attention maps"),
    ):
        path = draw(arg, os.path.join(out, name))
        if path is not None:
            pictures.append((caption, path))
    with open_output(os.path.join(out, "report.html")) as f:
        f.write(render_dates_report(result, pictures))


def render_dates_report(result, pictures):
    esc = html.escape
    test = result["test"]
    pct = lambda v: "—" if v is None else f"{100 * v:.2f}%"  # noqa: E731
    rows = "".join(
        f"<tr><td>{esc(k.replace('_', ' '))}</td><td>{v['n']:,}</td><td>{pct(v['exact_greedy'])}</td>"
        f"<td>{pct(v['exact_beam'])}</td></tr>"
        for k, v in test.items()
    )
    per_format = "".join(
        f"<tr><td><code>{esc(name)}</code></td><td>{esc(kind)}</td><td>{100 * acc:.1f}%</td></tr>"
        for kind, v in (("training", test["seen_formats"]), ("held out", test["held_out_formats"]))
        for name, acc in v["per_format"].items()
    )
    errors = "".join(
        f"<tr><td>{esc(e['text'])}</td><td>{esc(e['output'])}</td><td>{esc(e['iso'])}</td></tr>"
        for v in test.values()
        for e in v["errors"][:10]
    )
    s = result["settings"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>bptt date normalisation</title>",
        f"<style>{CSS}</style></head><body>",
        "<header><h1>Date normalisation</h1>",
        f'<p class="sub">An encoder–decoder ({esc(s["cell"])}, {"with" if s["attention"] else "without"}'
        f" attention), {result['parameters']:,} parameters, {result['updates']:,} updates"
        f" ({result['dates']:,} dates) in {result['seconds'] / 60:.1f} minutes</p></header>",
        '<section id="results"><h2>Test: exact match on dates never seen in training</h2>',
        "<table><tr><th>formats</th><th>dates</th><th>greedy</th><th>beam</th></tr>" + rows + "</table>",
        "</section>",
    ]
    for caption, picture in pictures:
        parts += [f"<section><h2>{esc(caption)}</h2>", _img(picture, caption), "</section>"]
    parts += [
        "<section><h2>By format</h2><table><tr><th>format</th><th>in training</th><th>exact</th></tr>",
        per_format + "</table></section>",
        "<section><h2>Some errors</h2><table><tr><th>written</th><th>output</th><th>ISO</th></tr>",
        (errors or "<tr><td colspan=3>none</td></tr>") + "</table></section>",
    ]
    parts += _config(json.loads(json.dumps(s)))
    parts += [
        '<footer><p class="note">Written by bptt dates train. Self-contained: no network access needed.</p>',
        f"</footer><script>{SCRIPT}</script></body></html>",
    ]
    return "\n".join(parts) + "\n"


def draw_seq2seq_graph(trace, path):
    """The encoder–decoder unrolled over one date (see the module docstring). Returns: the path."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle, FancyArrowPatch

    path = check_picture_path(path)
    src, outs = list(trace["source"]), list(trace["outputs"])
    T_x, T_y = len(src), len(outs)
    alphas = None if trace.get("alphas") is None else np.asarray(trace["alphas"], dtype=float)
    enc_m = np.asarray(trace["encoder_messages"], dtype=float)
    dec_m = np.asarray(trace["decoder_messages"], dtype=float)
    step_x, step_y = 0.62, 1.0  # columns: source characters are narrower than output steps
    span = max(
        (T_x - 1) * step_x, (T_y - 1) * step_y
    )  # data units (inches) from the first column to the last
    width = span + 1.6 + 0.5 + 1.3  # the row labels, a margin, the colour bar
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, 7.2), dpi=DPI)  # laid out by hand: one data unit is one inch
    ax = fig.add_axes((0.0, 0.12, (span + 2.1) / width, 0.8))
    ax.set_xlim(-1.6, span + 0.5)
    ax.set_ylim(-0.8, 6.4)
    ax.axis("off")
    every = np.concatenate([enc_m, dec_m])
    ok = every[np.isfinite(every) & (every > 0)]
    lo, hi = (float(ok.min()), float(ok.max())) if ok.size else (1e-3, 1.0)
    if hi <= lo * 1.01:
        lo, hi = lo / 2, hi * 2
    cnorm, cmap = LogNorm(lo, hi), _colormap("YlOrRd")
    # both rows centred on [0, span]: the shorter under (or over) the middle of the longer
    xs = [(span - (T_x - 1) * step_x) / 2 + j * step_x for j in range(T_x)]
    ys = [(span - (T_y - 1) * step_y) / 2 + t * step_y for t in range(T_y)]
    Y_SRC, Y_H, Y_S, Y_OUT = 0.0, 1.6, 4.0, 5.5

    def node(x, y, r, value, label):
        fill = cmap(cnorm(value)) if math.isfinite(value) and value > 0 else (0.85, 0.85, 0.85, 1)
        ax.add_patch(Circle((x, y), r, fc=fill, ec="#555555", lw=0.9, zorder=3))
        ink = "white" if _luminance(fill) < 0.5 else "black"
        ax.text(x, y, label, ha="center", va="center", fontsize=7, color=ink, zorder=4)

    def arrow(p, q, color, lw=1.0, **kw):
        ax.add_patch(
            FancyArrowPatch(p, q, arrowstyle="-|>", mutation_scale=8, color=color, lw=lw, zorder=2, **kw)
        )

    for j, (x, ch) in enumerate(zip(xs, src)):
        ax.text(x, Y_SRC, ch if ch != " " else "␣", ha="center", va="center", fontsize=10, weight="bold",
                bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="#999999", lw=0.7))  # fmt: skip
        arrow((x, Y_SRC + 0.25), (x, Y_H - 0.25), FORWARD, 0.8)
        node(x, Y_H, 0.22, float(enc_m[j]), f"h{j + 1}")
        if j:
            arrow((xs[j - 1] + 0.22, Y_H + 0.06), (x - 0.22, Y_H + 0.06), FORWARD, 0.6)
            arrow((x - 0.22, Y_H - 0.06), (xs[j - 1] + 0.22, Y_H - 0.06), "#6c8ebf", 0.6)
    for t, (x, ch) in enumerate(zip(ys, outs)):
        node(x, Y_S, 0.28, float(dec_m[t]), f"s{t + 1}")
        arrow((x, Y_S + 0.28), (x, Y_OUT - 0.25), FORWARD, 1.0)
        p = trace["p"][t]
        ax.text(x, Y_OUT, ch, ha="center", va="center", fontsize=10, weight="bold",
                bbox=dict(boxstyle="round,pad=0.25", fc="#f7f9fc", ec="#999999", lw=0.8))  # fmt: skip
        ax.text(x, Y_OUT + 0.42, f"{p:.2f}", ha="center", va="center", fontsize=7, color="#555555")
        if t:
            arrow((ys[t - 1] + 0.28, Y_S), (x - 0.28, Y_S), FORWARD, 1.0)
            arrow((ys[t - 1] + 0.2, Y_OUT - 0.2), (x - 0.25, Y_S + 0.2), FEEDBACK, 0.9, ls=(0, (3, 2)))
        if alphas is not None:
            for j in range(T_x):
                a = float(alphas[t, j])
                if a > 0.02:
                    ax.plot(
                        [x, xs[j]],
                        [Y_S - 0.28, Y_H + 0.22],
                        color="#2b6cb0",
                        lw=0.4 + 2.5 * a,
                        alpha=min(1, 0.15 + a),
                        zorder=1,
                    )
    if alphas is None:  # one summary of the source, read at every step
        summary = "c = [h→ at the last character; h← at the first], read at every step"
        ax.text(np.mean(ys), (Y_H + Y_S) / 2, summary, ha="center", va="center", fontsize=9, color="#2b6cb0")
    for y, lab in (
        (Y_SRC, "written date"),
        (Y_H, "encoder h⟨j⟩"),
        (Y_S, "decoder s⟨t⟩"),
        (Y_OUT, "ISO output"),
    ):
        ax.text(-1.55, y, lab, ha="left", va="center", fontsize=9, color="#333333")
    fig.text(0.01, 0.96, _plain(trace.get("title", "An encoder–decoder")), fontsize=12, ha="left")
    handles = [
        Line2D([], [], color=FORWARD, lw=1.5, label="forward"),
        Line2D(
            [], [], color=FEEDBACK, lw=1.2, ls="--", label="the output fed back as the next decoder input"
        ),
    ]
    if alphas is not None:
        handles.append(
            Line2D([], [], color="#2b6cb0", lw=2, alpha=0.6, label="attention α⟨t,j⟩ (width, opacity)")
        )
    fig.legend(
        handles=handles, loc="lower left", bbox_to_anchor=(0.01, 0.01), ncol=3, fontsize=8, frameon=False
    )
    cax = fig.add_axes((1 - 1.0 / width, 0.25, 0.15 / width, 0.55))
    bar = fig.colorbar(ScalarMappable(cnorm, cmap), cax=cax)
    bar.set_label("‖∂L/∂h⟨j⟩‖, ‖∂L/∂s⟨t⟩‖ (BPTT messages)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return _save(fig, path)
