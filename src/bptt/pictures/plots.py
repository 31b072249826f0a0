"""Pictures of backpropagation through time: the unrolled graph, gradient flow, training curves.

Every function writes one file (``.png`` or ``.svg``) and returns its path. Figures are
built with ``matplotlib.figure.Figure`` (Agg canvas, no pyplot, no global state); matplotlib
is imported only inside these functions, so ``import bptt`` stays fast. Files are written
to a temporary name and renamed, so a reader never sees half a picture.

The unrolled graph draws the lecture's picture for one sentence, with the numbers of a
real forward and backward pass:

    forward  (blue, left to right and upwards):  x⟨t⟩ → a⟨t⟩ → ŷ⟨t⟩ → L⟨t⟩ → L = Σ_t L⟨t⟩,  a⟨t−1⟩ → a⟨t⟩
    backward (red, right to left and downwards): ∂L/∂a⟨t⟩ = W_yaᵀ (ŷ⟨t⟩ − y⟨t⟩) + W_aaᵀ dz⟨t+1⟩

It takes a *trace*, a plain dict (so any model can draw itself):

    words          [str] * T      the tokens under x⟨t⟩
    y_hat          [float] * T    probability of the predicted (or positive) class
    predicted      [str] * T      predicted tag
    gold           [str] * T or None
    L_t            [float] * T or None   per-step losses L⟨t⟩
    message_norms  [float] * T    ‖∂L/∂a⟨t⟩‖ (forward direction); colours the a⟨t⟩ nodes
    title          str
    cell           "rnn", "gru" or "lstm", optional (default "rnn"): the equations in the legend
    cell_message_norms  [float] * T or None, optional: ‖∂L/∂c⟨t⟩‖ of an LSTM; draws the cell-state
                   lane c⟨t−1⟩ → c⟨t⟩ between x⟨t⟩ and a⟨t⟩, its nodes coloured on the same scale
    fed_back       [bool] * T or None, optional: generation (one-to-many): ŷ⟨t⟩'s drawn symbol is
                   fed back as x⟨t+1⟩, drawn as a green arrow from ŷ⟨t⟩ to x⟨t+1⟩
    output_label   str, optional: the legend's output equation (default the sigmoid's)

Gradient flow takes the training log's records (one dict per epoch, see ``bptt.pictures.report``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import BpttError

FORWARD = "#1f5fa8"  # forward arrows
BACKWARD = "#d1402a"  # backpropagation arrows
PARAM = "#8a8a8a"  # shared-parameter connectors
FEEDBACK = "#2a9d3a"  # a sampled output fed back as the next input
FORMATS = (".png", ".svg")
DPI = 130
MAX_GRAPH_WORDS = 200  # the unrolled graph of a longer sentence is unreadable (and takes minutes, gigabytes)


# ---------------------------------------------------------------------------------------------
# files and checks


def check_picture_path(path, formats=FORMATS):
    """The output path as a Path; its suffix must be one of ``formats``."""
    path = Path(path)
    if path.suffix.lower() not in formats:
        raise BpttError(f"{path}: expected a file name ending in {' or '.join(formats)}")
    if path.parent != Path("") and not path.parent.is_dir():
        raise BpttError(f"{path}: folder {path.parent} does not exist")
    return path


def _new_figure(width, height):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig, path):
    """Write the figure (text stays text in SVG) as `bptt.io.output.open_output` writes any output:
    atomically (readers see the old picture or the new), through a link, never over a read-only file."""
    import matplotlib

    from ..io.output import open_output

    path = Path(path)
    with (
        open_output(path, binary=True) as f,
        matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "bptt"}),
    ):
        fig.savefig(f, format=path.suffix[1:].lower(), facecolor="white")
    return path


def _plain(s):
    """A string for matplotlib that is never read as mathtext."""
    return str(s).replace("$", r"\$")


def _fmt(v):
    """A short number: 0.93, 12, 3.1e-05."""
    if v is None or not math.isfinite(v):
        return "—" if v is None else str(v)
    return f"{v:.2g}" if (v != 0 and (abs(v) < 0.01 or abs(v) >= 1000)) else f"{v:.2f}"


def _check_trace(trace):
    """Check a trace dict's fields and lengths; return T."""
    if not isinstance(trace, dict):
        raise BpttError(f"trace: expected a dict, got {type(trace).__name__}")
    words = trace.get("words")
    if not isinstance(words, (list, tuple)) or not words:
        raise BpttError("trace['words']: expected a non-empty list of words")
    T = len(words)
    if T > MAX_GRAPH_WORDS:
        raise BpttError(
            f"trace['words']: {T} words; a graph shows at most {MAX_GRAPH_WORDS} (more is unreadable)"
        )
    for key, required in (("y_hat", True), ("predicted", True), ("message_norms", True)):
        if trace.get(key) is None and required:
            raise BpttError(f"trace['{key}']: missing")
    for key in ("y_hat", "predicted", "message_norms", "gold", "L_t", "cell_message_norms", "fed_back"):
        v = trace.get(key)
        if v is not None and len(v) != T:
            raise BpttError(f"trace['{key}']: expected {T} values (one per word), got {len(v)}")
    if trace.get("cell", "rnn") not in EQUATIONS:
        raise BpttError(
            f"trace['cell']: expected one of {', '.join(EQUATIONS)}, got {trace.get('cell')!r:.40}"
        )
    return T


# ---------------------------------------------------------------------------------------------
# the unrolled computation graph

# rows of the picture, bottom to top (data units; one unit is one column, drawn SCALE inches wide)
Y_X, Y_A, Y_YHAT, Y_LT, Y_L = 0.0, 1.9, 3.75, 5.0, 6.0
R_A = 0.32  # radius of the a⟨t⟩ circles
Y_C, R_C = 1.2, 0.2  # the LSTM's cell-state lane c⟨t⟩, between x⟨t⟩ and a⟨t⟩, and its circles
W_BOX, H_BOX = 0.84, 0.78  # ŷ⟨t⟩ boxes
OFF = 0.09  # forward and backward arrows run side by side, this far apart
SCALE = 1.0  # inches per data unit
# the legend's forward equation and the recurrent term of the message ∂L/∂a⟨t⟩, by the trace's cell
EQUATIONS = {
    "rnn": ("a⟨t⟩ = g(W_aa a⟨t−1⟩ + W_ax x⟨t⟩ + b_a)", "W_aaᵀ dz⟨t+1⟩"),
    "gru": ("a⟨t⟩ = GRU(a⟨t−1⟩, x⟨t⟩)", "(∂a⟨t+1⟩/∂a⟨t⟩)ᵀ ∂L/∂a⟨t+1⟩"),
    "lstm": ("(a⟨t⟩, c⟨t⟩) = LSTM(a⟨t−1⟩, c⟨t−1⟩, x⟨t⟩)", "(∂(a, c)⟨t+1⟩/∂a⟨t⟩)ᵀ ∂L/∂(a, c)⟨t+1⟩"),
}


def draw_unrolled_graph(trace, path):
    """Draw the unrolled RNN for one sentence with its forward values and backward messages.

    trace: dict described in the module docstring. path: ``.png`` or ``.svg``.
    Returns: the path written.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

    T = _check_trace(trace)
    path = check_picture_path(path)
    words = [str(w) for w in trace["words"]]
    y_hat = [float(v) for v in trace["y_hat"]]
    pred = [str(v) for v in trace["predicted"]]
    # None in gold or L_t: a step without a loss (``trace_from_params(loss_at=...)``)
    gold = None if trace.get("gold") is None else [None if v is None else str(v) for v in trace["gold"]]
    L_t = None if trace.get("L_t") is None else [None if v is None else float(v) for v in trace["L_t"]]
    norms = np.asarray(trace["message_norms"], dtype=float)
    c_norms = trace.get("cell_message_norms")
    c_norms = None if c_norms is None else np.asarray(c_norms, dtype=float)
    fed_back = trace.get("fed_back") or [False] * T

    # the figure, laid out by hand (inches): title on top, legend below, colour bar on the right
    x_lo, y_lo, y_hi = -1.75, -0.75, Y_L + 0.35
    x_hi = max(T + 0.55, x_lo + 7.5)
    top, bottom, right = 0.55, 0.85 if T >= 9 else 1.05, 1.25
    W = SCALE * (x_hi - x_lo) + right
    H = SCALE * (y_hi - y_lo) + top + bottom
    fig = Figure(figsize=(W, H), dpi=DPI)
    ax = fig.add_axes((0, bottom / H, SCALE * (x_hi - x_lo) / W, SCALE * (y_hi - y_lo) / H))
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    ax.axis("off")
    title = trace.get("title") or "Backpropagation through time, unrolled"
    fig.text(0.15 / W, 1 - 0.3 / H, _plain(title), fontsize=14, va="center", ha="left")

    every = norms if c_norms is None else np.concatenate([norms, c_norms])  # one colour scale for both
    ok = every[np.isfinite(every) & (every > 0)]
    lo, hi = (float(ok.min()), float(ok.max())) if ok.size else (1e-3, 1.0)
    if hi <= lo * 1.01:
        lo, hi = lo / 2, hi * 2
    cnorm, cmap = LogNorm(lo, hi), _colormap("YlOrRd")

    def arrow(p, q, color, lw=1.4):
        ax.add_patch(FancyArrowPatch(p, q, arrowstyle="-|>", mutation_scale=10, color=color, lw=lw, zorder=2))

    def width(v):  # a backward arrow is as thick as the log of the message it carries
        if not (math.isfinite(v) and v > 0):
            return 1.0
        return 0.8 + 2.6 * min(max(math.log(v / lo) / math.log(hi / lo), 0.0), 1.0)

    def text(x, y, s, size=9, **kw):
        ax.text(x, y, s, ha="center", va="center", fontsize=size, zorder=4, **kw)

    rows = [(Y_X, "input x⟨t⟩"), (Y_A, "state a⟨t⟩"), (Y_YHAT, "output ŷ⟨t⟩"), (Y_LT, "loss L⟨t⟩")]
    for y, lab in rows + ([(Y_C, "cell c⟨t⟩")] if c_norms is not None else []):
        ax.text(x_lo + 0.05, y, lab, ha="left", va="center", fontsize=10, color="#333333")

    # shared parameters: one box each, with a light connector to every step that uses them
    y_ax, y_aa, y_ya = (Y_X + Y_A) / 2 - 0.1, Y_A + 0.62, (Y_A + Y_YHAT) / 2 + 0.35
    connectors = (
        (y_ax, "$W_{ax}$", [(t - OFF, y_ax) for t in range(1, T + 1)]),
        (y_aa, "$W_{aa},\\ b_a$", [(t - 0.5, Y_A + OFF) for t in range(1, T + 1)]),
        (y_ya, "$W_{ya},\\ b_y$", [(t - OFF, y_ya) for t in range(1, T + 1)]),
    )
    dotted = dict(color=PARAM, lw=0.8, ls=(0, (1, 2.5)), alpha=0.8, zorder=1)
    for y, lab, hits in connectors:
        ax.plot([-0.5, T + 0.25], [y, y], **dotted)
        for hx, hy in hits:
            if hy != y:  # a drop from the line to the recurrent arrow
                ax.plot([hx, hx], [y, hy], **dotted)
            ax.plot([hx], [hy], "o", ms=2.6, color=PARAM, zorder=4)
        ax.text(
            -0.55,
            y,
            lab,
            ha="right",
            va="center",
            fontsize=10,
            color="#444444",
            zorder=5,
            bbox=dict(boxstyle="round,pad=0.25", fc="#f4f4f4", ec=PARAM, lw=0.8),
        )

    def colours(v):  # a node's fill, by the message reaching it, and the ink that reads on it
        fill = cmap(cnorm(v)) if math.isfinite(v) and v > 0 else (0.85, 0.85, 0.85, 1.0)
        return fill, "white" if _luminance(fill) < 0.5 else "black"

    ax.add_patch(Circle((0, Y_A), R_A * 0.85, fc="#eeeeee", ec="#777777", lw=1.0, zorder=3))
    text(0, Y_A, "a⟨0⟩", 10)
    if c_norms is not None:
        ax.add_patch(Circle((0, Y_C), R_C, fc="#eeeeee", ec="#777777", lw=1.0, zorder=3))
        text(0, Y_C, "c⟨0⟩", 7.5)
    for i in range(T):
        t, v = i + 1, float(norms[i])
        fill, ink = colours(v)

        # x⟨t⟩: the word (smaller type for long words)
        size = 11 if len(words[i]) <= 8 else max(6.5, 88 / len(words[i]))
        text(
            t,
            Y_X,
            _plain(words[i]),
            size,
            weight="bold",
            bbox=dict(boxstyle="round,pad=0.3", fc="white", ec="#999999", lw=0.8),
        )
        text(t, Y_X - 0.48, f"x⟨{t}⟩", 8, color="#777777")

        # a⟨t⟩: coloured by the message ‖∂L/∂a⟨t⟩‖ it receives
        ax.add_patch(Circle((t, Y_A), R_A, fc=fill, ec="#555555", lw=1.0, zorder=3))
        text(t, Y_A + 0.1, f"a⟨{t}⟩", 9.5, color=ink)
        text(t, Y_A - 0.13, _fmt(v), 8, color=ink)

        # ŷ⟨t⟩: probability and predicted tag; green or red edge against the gold tag
        scored = gold is not None and gold[i] is not None
        wrong = scored and gold[i] != pred[i]
        edge = "#999999" if not scored else ("#d1402a" if wrong else "#2a9d3a")
        ax.add_patch(
            FancyBboxPatch(
                (t - W_BOX / 2, Y_YHAT - H_BOX / 2),
                W_BOX,
                H_BOX,
                boxstyle="round,pad=0,rounding_size=0.1",
                fc="#f7f9fc",
                ec=edge,
                lw=1.6 if scored else 1.0,
                zorder=3,
            )
        )
        dy = 0.07 if wrong else 0.0
        text(t, Y_YHAT + 0.14 + dy, _fmt(y_hat[i]))
        text(t, Y_YHAT - 0.12 + dy, _plain(pred[i]), 9.5, weight="bold")
        if wrong:
            text(t, Y_YHAT - 0.25, "gold " + _plain(gold[i]), 7.5, color="#d1402a")

        # L⟨t⟩
        text(
            t,
            Y_LT,
            _fmt(L_t[i]) if L_t is not None else f"L⟨{t}⟩",
            bbox=dict(boxstyle="round,pad=0.3", fc="#fff8ee", ec="#c9a66b", lw=0.8),
        )

        # c⟨t⟩ (LSTM): x⟨t⟩ → c⟨t⟩ → a⟨t⟩ = o ⊙ tanh c⟨t⟩, and c⟨t−1⟩ → c⟨t⟩ along its own lane
        below_a = []  # the arrows up into a⟨t⟩ from below: from x⟨t⟩, or from c⟨t⟩ and x⟨t⟩
        if c_norms is None:
            below_a.append(((Y_X + 0.28, Y_A - R_A), None))
        else:
            vc = float(c_norms[i])
            fill_c, ink_c = colours(vc)
            ax.add_patch(Circle((t, Y_C), R_C, fc=fill_c, ec="#555555", lw=1.0, zorder=3))
            text(t, Y_C + 0.06, f"c⟨{t}⟩", 7.5, color=ink_c)
            text(t, Y_C - 0.09, _fmt(vc), 6.5, color=ink_c)
            below_a += [((Y_X + 0.28, Y_C - R_C), None), ((Y_C + R_C, Y_A - R_A), width(v))]
            left_c = (t - 1) + R_C
            arrow((left_c, Y_C + OFF), (t - R_C, Y_C + OFF), FORWARD)
            arrow((t - R_C, Y_C - OFF), (left_c, Y_C - OFF), BACKWARD, width(vc))

        # forward arrows left of centre, going up; backward arrows right of centre, coming down
        for (y0, y1), lw in (
            *below_a,
            ((Y_A + R_A, Y_YHAT - H_BOX / 2), 1.4),
            ((Y_YHAT + H_BOX / 2, Y_LT - 0.22), 1.0),
            ((Y_LT + 0.22, Y_L - 0.22), 1.0),
        ):
            arrow((t - OFF, y0), (t - OFF, y1), FORWARD)
            if lw is not None:
                arrow((t + OFF, y1), (t + OFF, y0), BACKWARD, lw)
        left = (t - 1) + (R_A * 0.85 if t == 1 else R_A)  # a⟨t−1⟩ → a⟨t⟩, and back
        arrow((left, Y_A + OFF), (t - R_A, Y_A + OFF), FORWARD)
        arrow((t - R_A, Y_A - OFF), (left, Y_A - OFF), BACKWARD, width(v))
        if fed_back[i] and t < T:  # generation: the symbol drawn at ŷ⟨t⟩ is read as x⟨t+1⟩
            ax.add_patch(
                FancyArrowPatch(
                    (t + W_BOX / 2, Y_YHAT - 0.25), (t + 1 - 0.24, Y_X + 0.24), arrowstyle="-|>",
                    mutation_scale=9, color=FEEDBACK, lw=1.1, ls=(0, (4, 2)), zorder=2,
                )
            )  # fmt: skip

    # L = Σ_t L⟨t⟩: one bar over all the steps
    ax.add_patch(
        FancyBboxPatch(
            (0.55, Y_L - 0.22),
            T - 0.1,
            0.44,
            boxstyle="round,pad=0,rounding_size=0.12",
            fc="#fff1dc",
            ec="#c9a66b",
            lw=1.0,
            zorder=3,
        )
    )
    total = "" if L_t is None else f" = {_fmt(sum(v for v in L_t if v is not None))}"
    text((T + 1) / 2, Y_L, "L = Σₜ L⟨t⟩" + total, 11)

    forward, recurrent = EQUATIONS[trace.get("cell", "rnn")]
    handles = [
        Line2D(
            [],
            [],
            color=FORWARD,
            lw=2,
            label=f"forward: {forward},  {trace.get('output_label') or 'ŷ⟨t⟩ = σ(W_ya a⟨t⟩ + b_y)'}",
        ),  # fmt: skip
        Line2D(
            [],
            [],
            color=BACKWARD,
            lw=2,
            label=f"backprop: ∂L/∂a⟨t⟩ = W_yaᵀ (ŷ⟨t⟩ − y⟨t⟩) + {recurrent}   (thickness ∝ log ‖∂L/∂a⟨t⟩‖)",
        ),
        Line2D(
            [],
            [],
            color=PARAM,
            lw=1,
            ls=":",
            marker="o",
            ms=3,
            label="shared parameters, the same at every step",
        ),
    ]
    if any(fed_back):
        handles.append(
            Line2D(
                [], [], color=FEEDBACK, lw=1.2, ls="--", label="generation: the drawn ŷ⟨t⟩ is read as x⟨t+1⟩"
            )
        )
    if c_norms is not None:
        handles.append(
            Line2D(
                [],
                [],
                color="#555555",
                lw=0,
                marker="o",
                ms=7,
                mfc="#fdae61",
                label="cell state c⟨t⟩ = f ⊙ c⟨t−1⟩ + i ⊙ g, coloured by ‖∂L/∂c⟨t⟩‖",
            )
        )
    fig.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0.15 / W, 0.05 / H),
        ncol=2 if T >= 9 else 1,
        fontsize=9,
        frameon=False,
    )
    cax = fig.add_axes((1 - (right - 0.2) / W, (bottom + 1.2) / H, 0.16 / W, 3.6 / H))
    bar = fig.colorbar(ScalarMappable(cnorm, cmap), cax=cax)
    what = "‖∂L/∂a⟨t⟩‖, the message reaching a⟨t⟩" if c_norms is None else "‖∂L/∂a⟨t⟩‖ and ‖∂L/∂c⟨t⟩‖"
    bar.set_label(what, fontsize=9)
    _plain_log_ticks(bar.ax.yaxis, lo, hi)
    bar.ax.tick_params(labelsize=8, which="both")
    return _save(fig, path)


def _plain_log_ticks(axis, lo, hi):
    """Label a log axis 0.001, 0.01, … and, when it spans under a decade, the steps between them."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    if hi / lo > 10:
        axis.set_minor_formatter(NullFormatter())
        return
    shown = (2, 3, 5) if hi / lo > 3 else range(1, 10)  # 2, 3, 5 × 10ᵏ; every step on a narrow axis

    def minor(v, _):
        return f"{v:.3g}" if round(v / 10 ** math.floor(math.log10(v))) in shown else ""

    axis.set_minor_formatter(FuncFormatter(minor))


def _colormap(name):
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad="#d9d9d9")


def _luminance(rgba):
    r, g, b = rgba[:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def trace_from_params(
    params,
    words,
    X,
    Y=None,
    *,
    tags=None,
    a0=None,
    output="sigmoid",
    activation="tanh",
    title=None,
    cell="rnn",
    loss_at=None,
):
    """The trace of one sentence through the lecture model (with any ``cell``), for ``draw_unrolled_graph``.

    Shapes: X (T, n_x) or (T, 1, n_x) the inputs of the T words; Y (T,) gold labels (0/1 for
    sigmoid with n_y = 1, class ids for softmax) or None. Without Y the messages are those of
    the loss against the model's own predictions, and the trace has no gold and no L_t.
    tags: names of the classes (default "0", "1", …).
    loss_at: None (every step), "last" (many-to-one: Y may be the one label) or (T,) 0/1, the steps
    scored (``bptt.heads.placement``); the others have no gold and no L⟨t⟩ (None in the trace).
    Returns: the trace dict.
    """
    from ..diagnostics.ledger import ledger

    X = np.asarray(X)
    if X.ndim == 2:
        X = X[:, None, :]  # (T, 1, n_x)
    if X.ndim != 3 or X.shape[1] != 1:
        raise BpttError(f"X: expected shape (T, n_x) or (T, 1, n_x) for one sentence, got {X.shape}")
    T = X.shape[0]
    if len(words) != T:
        raise BpttError(f"words: expected {T} words (one per row of X), got {len(words)}")
    n_y = np.shape(params.get("W_ya", np.zeros((0, 0))))[0]
    if output == "sigmoid" and n_y != 1:
        raise BpttError(f"params['W_ya']: a sigmoid trace needs n_y = 1, got {n_y}")
    n_classes = 2 if output == "sigmoid" else n_y
    tags = [str(k) for k in range(n_classes)] if tags is None else [str(k) for k in tags]
    if len(tags) != n_classes:
        raise BpttError(f"tags: expected {n_classes} names, got {len(tags)}")
    if output not in ("sigmoid", "softmax"):
        raise BpttError(f"output: the unrolled graph draws 'sigmoid' or 'softmax' outputs, got {output!r}")
    last = isinstance(loss_at, str) and loss_at == "last"
    if loss_at is None or last or (isinstance(loss_at, str) and loss_at == "all"):
        scored = np.arange(T) == T - 1 if last else np.ones(T, dtype=bool)
    else:
        scored = np.asarray(loss_at)
        if scored.size != T or scored.dtype.kind not in "biuf" or not ((scored == 0) | (scored == 1)).all():
            raise BpttError(f"loss_at: expected 'all', 'last' or {T} values of 0/1 (one per word)")
        scored = scored.reshape(T) != 0
    if last and Y is not None and np.size(Y) == 1:
        Y = np.full(T, np.asarray(Y).reshape(()))  # the one label, at the last step

    def labels(ids):  # (T,) class ids in the loss's layout: (T, 1), or (1,) for the last step alone
        ids = np.asarray(ids)[-1:] if last else np.asarray(ids).reshape(T, 1)
        return ids.astype(X.dtype) if output == "sigmoid" else ids.astype(np.int64)

    at = "last" if last else scored[:, None]  # (T, 1): the steps scored
    if Y is None:  # first a pass for the predictions, then messages against them
        probe = ledger(params, X, labels(np.zeros(T, dtype=int)), a0, None, output, activation, cell=cell)
        Y_ids = _classes(probe.Y_hat[:, 0], output)
    else:
        Y_ids = np.asarray(Y).reshape(-1)
        if Y_ids.shape != (T,):
            raise BpttError(f"Y: expected {T} labels (one per word), got shape {np.shape(Y)}")
    led = ledger(params, X, labels(Y_ids), a0, None, output, activation, cell=cell, loss_at=at)
    ids = _classes(led.Y_hat[:, 0], output)
    p = led.Y_hat[:, 0, 0] if output == "sigmoid" else led.Y_hat[:, 0].max(axis=-1)
    return {
        "words": [str(w) for w in words],
        "y_hat": [float(v) for v in p],
        "predicted": [tags[k] for k in ids],
        "gold": None if Y is None else [tags[int(k)] if s else None for k, s in zip(Y_ids, scored)],
        "L_t": None if Y is None else [float(v) if s else None for v, s in zip(led.L_t[:, 0], scored)],
        "message_norms": [float(v) for v in np.linalg.norm(led.messages[:, 0], axis=-1)],
        "cell_message_norms": None
        if led.messages_c is None
        else np.linalg.norm(led.messages_c[:, 0], axis=-1).tolist(),
        "cell": cell,
        "title": title or "BPTT through the lecture RNN",
    }


def _classes(Y_hat, output):
    """Predicted class ids from (T, n_y) probabilities."""
    return (Y_hat[:, 0] > 0.5).astype(int) if output == "sigmoid" else Y_hat.argmax(axis=-1)


# ---------------------------------------------------------------------------------------------
# training curves


def _check_records(log_records):
    if not isinstance(log_records, (list, tuple)) or not log_records:
        raise BpttError("log_records: expected a non-empty list of per-epoch dicts")
    for i, r in enumerate(log_records):
        if not isinstance(r, dict):
            raise BpttError(f"log_records[{i}]: expected a dict, got {type(r).__name__}")
    return list(log_records)


def _epochs(records):
    return np.array([r.get("epoch", i + 1) for i, r in enumerate(records)], dtype=float)


def _series(records, *keys):
    """records[i][k0][k1]… as floats, NaN where missing."""
    out = []
    for r in records:
        v = r
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        out.append(float(v) if isinstance(v, (int, float)) else np.nan)
    return np.array(out)


def _draw_loss(ax, records):
    ep, loss = _epochs(records), _series(records, "train_loss")
    ax.plot(ep, loss, "o-", color=FORWARD, ms=4, lw=1.8, label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title("Training loss", loc="left")
    ax.grid(alpha=0.3)
    if np.isfinite(loss).any() and np.nanmin(loss) > 0 and np.nanmax(loss) / np.nanmin(loss) > 20:
        ax.set_yscale("log")
    _integer_epochs(ax)


def percent_factor(records):
    """100 when the log's dev scores are fractions (0 … 1), 1 when they are percentages already.

    Scores are percentages when any of them (token accuracy included) is above 1.
    """
    values = []
    for r in records:
        dev = r.get("dev") if isinstance(r.get("dev"), dict) else {}
        values += [dev.get(k) for k in ("f1", "precision", "recall", "token_accuracy")]
        for s in (dev.get("per_type") or {}).values() if isinstance(dev.get("per_type"), dict) else ():
            values += [s.get(k) for k in ("f1", "precision", "recall")] if isinstance(s, dict) else []
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return 1.0 if finite and max(finite) > 1.0 else 100.0


def _draw_f1(ax, records):
    ep, k = _epochs(records), percent_factor(records)
    f1 = k * _series(records, "dev", "f1")
    for key, style, color in (("precision", ":", "#7b8fa6"), ("recall", "--", "#a67b8f")):
        s = _series(records, "dev", key)
        if np.isfinite(s).any():
            ax.plot(ep, k * s, style, color=color, lw=1.2, label=f"dev {key}")
    ax.plot(ep, f1, "o-", color="#2a9d3a", ms=4, lw=1.8, label="dev F1")
    if np.isfinite(f1).any():
        best = int(np.nanargmax(f1))
        label = f"best {f1[best]:.1f} (epoch {ep[best]:g})"
        star = dict(ms=15, color="#f2b705", mec="#7a5c00", zorder=5)
        ax.plot([ep[best]], [f1[best]], "*", label=label, **star)
    ax.set_xlabel("epoch")
    lo, hi = ax.get_ylim()  # scores lie in [0, 100]; show at least 10 points of them
    lo = max(lo, 0.0)
    ax.set_ylim(lo, min(max(hi, lo + 10), 101))
    ax.set_ylabel("dev score (%)")
    ax.set_title("Development F1", loc="left")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    _integer_epochs(ax)


def _integer_epochs(ax):
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_curves(log_records, path):
    """Training loss and dev F1 per epoch, side by side. Returns: the path written."""
    records, path = _check_records(log_records), check_picture_path(path)
    fig = _new_figure(10, 3.8)
    ax1, ax2 = fig.subplots(1, 2)
    _draw_loss(ax1, records)
    _draw_f1(ax2, records)
    return _save(fig, path)


def plot_loss(log_records, path):
    """Training loss per epoch. Returns: the path written."""
    records, path = _check_records(log_records), check_picture_path(path)
    fig = _new_figure(5.5, 3.8)
    _draw_loss(fig.add_subplot(), records)
    return _save(fig, path)


def plot_f1(log_records, path):
    """Dev F1 (with precision and recall) per epoch. Returns: the path written."""
    records, path = _check_records(log_records), check_picture_path(path)
    fig = _new_figure(5.5, 3.8)
    _draw_f1(fig.add_subplot(), records)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# gradient flow


def _ragged(rows):
    """A list of lists of numbers (some None or missing) as a float matrix padded with NaN."""
    K = max((len(r) for r in rows if r is not None), default=0)
    M = np.full((len(rows), K), np.nan)
    for i, r in enumerate(rows):
        if r is not None:
            M[i, : len(r)] = [np.nan if v is None else float(v) for v in r]
    return M


def _positive(M):
    """Masked array of the finite, positive values (log colour scales show nothing else)."""
    M = np.asarray(M, dtype=float)
    return np.ma.masked_where(~np.isfinite(M) | (M <= 0), M)


def _log_range(M, around_one=False):
    ok = M.compressed() if np.ma.isMaskedArray(M) else M[np.isfinite(M) & (M > 0)]
    if ok.size == 0:
        return 1e-3, 1.0
    lo, hi = float(ok.min()), float(ok.max())
    if around_one:  # symmetric on the log scale around 1: blue fades, red explodes
        r = max(hi, 1 / lo, 1.5)
        return 1 / r, r
    if hi <= lo * 1.01:
        lo, hi = lo / 2, hi * 2
    return lo, hi


def _heatmap(fig, ax, M, *, x0, xlabel, rows, ylabel, title, cmap, cbar="reach", around_one=False):
    """A log-coloured heatmap of M (n, K), first row on top, with its colour bar."""
    from matplotlib.colors import LogNorm

    P = _positive(M)
    lo, hi = _log_range(P, around_one)
    n, K = P.shape
    xs = np.arange(K + 1) + x0 - 0.5
    mesh = ax.pcolormesh(xs, np.arange(n + 1) - 0.5, P, cmap=_colormap(cmap), norm=LogNorm(lo, hi))
    ax.set_ylim(n - 0.5, -0.5)  # first row (epoch) at the top, as in the log
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.set_title(title, loc="left", fontsize=11)
    step = max(1, n // 12)
    ax.set_yticks(np.arange(0, n, step), [rows[i] for i in range(0, n, step)])
    _integer_epochs(ax)
    bar = fig.colorbar(mesh, ax=ax, pad=0.01, aspect=15)
    bar.set_label(cbar)
    _plain_log_ticks(bar.ax.yaxis, lo, hi)


def _clip_strip(ax, records):
    """A narrow bar chart of the clip fraction per epoch, beside a heatmap's rows."""
    clip = np.nan_to_num(_series(records, "clip_fraction"))
    n = len(records)
    ax.barh(np.arange(n), 100 * clip, height=0.8, color=BACKWARD)
    ax.set(ylim=(n - 0.5, -0.5), xlim=(0, 100), yticks=[], xticks=[0, 100])
    ax.set_xlabel("% updates\nclipped", fontsize=8)
    ax.tick_params(labelsize=8)
    for i in np.nonzero(clip > 0)[0]:
        v = 100 * clip[i]  # the percentage inside long bars, after short ones
        x, ha, ink = (v - 4, "right", "white") if v > 60 else (v + 4, "left", BACKWARD)
        ax.text(x, i, f"{v:.0f}", va="center", ha=ha, fontsize=7, color=ink)


def _line_log(ax, x, y, title, xlabel, ylabel, **style):
    """y against x on a log axis, labelled in plain numbers."""
    ax.semilogy(x, _positive(y), "o-", **style)
    _plain_log_ticks(ax.yaxis, *_log_range(_positive(y)))
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.set_title(title, loc="left", fontsize=11)
    ax.grid(alpha=0.3, which="both")


def plot_gradient_flow(log_records, path, probe=None):
    """Heatmaps of the messages ‖∂L/∂a⟨t⟩‖ and of the reach over training, on log colour scales.

    log_records: the training log, one dict per epoch with ``message_norms`` (K,), optionally
    ``reach`` (K,), ``grad_norm`` and ``clip_fraction``. probe: reach values (N, K) per
    sentence (or (K,)) by distance d = 0 … K−1, e.g. the ledger's reach averaged, or None.
    Returns: the path written.
    """
    records, path = _check_records(log_records), check_picture_path(path)
    epochs = _epochs(records)
    labels = [f"{e:g}" for e in epochs]
    messages = _ragged([r.get("message_norms") for r in records])  # (epochs, K)
    reach = _ragged([r.get("reach") for r in records])  # (epochs, K)
    grad = _series(records, "grad_norm")
    clipped = np.nan_to_num(_series(records, "clip_fraction")) > 0
    if probe is not None:
        probe = np.asarray(probe, dtype=float)
        probe = probe[None] if probe.ndim == 1 else probe  # (N, K)
        if probe.ndim != 2 or probe.size == 0:
            raise BpttError(f"probe: expected an array (N, K) or (K,) of reach values, got {probe.shape}")
    panels = [
        name
        for name, data in (("messages", messages), ("reach", reach), ("probe", probe), ("grad", grad))
        if data is not None and np.isfinite(data).any()
    ]
    if not panels:
        raise BpttError("log_records: no message_norms, reach or grad_norm to plot, and no probe")

    rows = lambda n: 1.2 + 0.2 * min(n, 20)  # noqa: E731  heatmap height (inches) for n rows
    n = len(records)
    heights = {"messages": rows(n), "reach": rows(n), "grad": 2.3}
    heights["probe"] = 2.3 if probe is None or len(probe) == 1 else rows(len(probe))
    fig = _new_figure(10, sum(heights[p] for p in panels) + 0.6)
    grid = fig.add_gridspec(len(panels), 2, width_ratios=[14, 1], height_ratios=[heights[p] for p in panels])
    note = f"; clipping fired in {int(clipped.sum())} of {n} epochs" if clipped.any() else ""
    fig.suptitle(f"Gradient flow through time{note}", x=0.01, ha="left", fontsize=13)
    back = "distance d (steps back)"
    for row, panel in enumerate(panels):
        ax = fig.add_subplot(grid[row, 0])
        if panel == "messages":
            title = "Messages ‖∂L/∂a⟨t⟩‖ reaching each position t (forward direction)"
            x = dict(x0=1, xlabel="position t in the probe sentences")
            _heatmap(
                fig,
                ax,
                messages,
                **x,
                rows=labels,
                ylabel="epoch",
                title=title,
                cmap="viridis",
                cbar="‖∂L/∂a⟨t⟩‖",
            )
        elif panel == "reach":
            title = "Reach ‖∂a⟨t⟩/∂a⟨t−d⟩‖: blue vanishes, red explodes"
            x = dict(x0=0, xlabel=back, rows=labels, ylabel="epoch", title=title)
            _heatmap(fig, ax, reach, **x, cmap="coolwarm", around_one=True)
        elif panel == "probe" and len(probe) > 1:
            x = dict(x0=0, xlabel=back, rows=[str(i + 1) for i in range(len(probe))], ylabel="sentence")
            _heatmap(
                fig, ax, probe, **x, title="Reach on the probe sentences", cmap="coolwarm", around_one=True
            )
        elif panel == "probe":
            title = "Reach on the probe sentences: how much of a⟨t−d⟩ is left in a⟨t⟩"
            _line_log(ax, np.arange(probe.shape[1]), probe[0], title, back, "reach", color="#6a3d9a", ms=3)
            ax.axhline(1.0, color="#999999", lw=0.8, ls="--")
        else:
            title, ylabel = "Gradient norm over training", "‖∇L‖ before clipping"
            _line_log(ax, epochs, grad, title, "epoch", ylabel, color=FORWARD, ms=4, label="mean global norm")
            if clipped.any():
                ax.plot(
                    epochs[clipped],
                    grad[clipped],
                    "v",
                    color=BACKWARD,
                    ms=8,
                    label="clipping fired",
                    zorder=5,
                )
            ax.legend(fontsize=8)
            _integer_epochs(ax)
        if panel in ("messages", "reach"):
            _clip_strip(fig.add_subplot(grid[row, 1]), records)
    return _save(fig, path)
