"""A trained character language model: loading it, bits per character on a text, and sampling.

Scoring a text. ``unit="line"``: each line alone, from the zero state, reading the start symbol
"\\n" first; every character of the line and the end "\\n" are predicted. ``unit="stream"``: the text
is cut at line ends into at most ``PIECES`` pieces of about equal size, each read from the zero state
after a "\\n" (as if a line had just ended) and scored to its end; the state is carried through the
whole piece, so only PIECES − 1 places of the text lose their left context (the n-gram baseline, scored
as one stream, loses none: on CoNLL's 275,559 characters of eng.testa the difference is within the
last digit). Bits per character = −Σ log₂ p over every predicted character, divided by their number.

Dynamic evaluation (Mikolov 2010; Krause, Kahembwe, Murray & Renals 2018): the model goes on
learning from the text it scores. The text is read as above, but by default as one piece (a line
model's lines one at a time, in their order); every ``steps`` characters, once they
are scored, one step on their mean loss (the same truncated BPTT as training, no dropout) moves
the weights (plain SGD, or RMSprop's step per weight: `evaluate_dynamic`), and ``decay`` pulls
them back towards the trained ones, θ ← θ + λ (θ₀ − θ). Every character is scored before any
update has read it, so the bits per character remain a code length a decoder could reproduce; they
measure how well the model adapts to a text's own names and words, as a cache does.

Sampling (one-to-many): the prime (default: "\\n", the start of a line) is read, then each next
character is drawn from softmax(z / temperature) and fed back as the next input; with
``unit="line"`` a sample ends at the end symbol.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..cells import get_cell
from ..errors import BpttError, check_choice
from ..io.modelfiles import check_weights
from ..io.safetensors_io import load_safetensors
from ..training.optim import SGD, Adam, clip_grad_norm
from .config import MAX_LAYERS
from .corpus import UNITS, Alphabet, line_batch, lines_of
from .network import LN2, Stack, chunk_log_probs, chunk_loss, step_log_softmax

MODEL_FORMAT, MODEL_VERSION = "bptt-lm", 1
PIECES = 16  # a stream is scored as this many pieces side by side (a batch): 16× fewer steps
EVAL_STEPS = 1000  # steps per forward call while scoring: the caches of one call stay small
EVAL_LINES = 256  # lines scored side by side (``unit="line"``)
MAX_GRAPH_CHARS = 60  # steps of a generation's unrolled graph (more is unreadable)


def pieces(text, n=PIECES):
    """A stream cut at line ends into at most ``n`` pieces of about equal size (without their final "\\n")."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        return []
    ends = np.cumsum([len(line) + 1 for line in lines])
    bounds = sorted({int(np.searchsorted(ends, ends[-1] * i / n)) + 1 for i in range(1, n)} | {len(lines)})
    out, s = [], 0
    for e in bounds:
        if e > s:
            out.append("\n".join(lines[s:e]))
            s = e
    return out


def evaluate_lines(params, cell, alphabet, lines):
    """Bits per character over ``lines`` (each scored alone: see the module docstring).

    Returns: bpc (float; inf or nan for a diverged model).
    """
    total, count = 0.0, 0
    order = sorted(range(len(lines)), key=lambda i: len(lines[i]))  # similar lengths side by side
    n_a = cell.hidden_size(params)
    dtype = params["W_ya"].dtype
    for s in range(0, len(order), EVAL_LINES):
        chosen = [lines[i] for i in order[s : s + EVAL_LINES]]
        ids_in, ids_out, mask = line_batch(chosen, alphabet)
        state = cell.zero_state(len(chosen), n_a, dtype)
        for t in range(0, ids_in.shape[0], EVAL_STEPS):
            m = mask[t : t + EVAL_STEPS]
            log_p, state = chunk_log_probs(
                params, cell, ids_in[t : t + EVAL_STEPS], ids_out[t : t + EVAL_STEPS], state, m
            )
            total += float(log_p[m].sum())
        count += int(mask.sum())
    if count == 0:
        raise BpttError("no text to score")
    return -total / count / LN2


# dynamic evaluation's defaults, chosen on the held-out end of CoNLL's training text (BENCHMARKS.md)
DYNAMIC_LR = 3e-3  # the step size (of the "rms" rule) for a 512-unit LSTM
DYNAMIC_STEPS = 20  # characters of each piece scored between two updates
DYNAMIC_DECAY = 0.01  # λ: each update pulls the weights this fraction of the way back to the trained ones
DYNAMIC_PIECES = 1  # pieces of a stream (lines of a line model) read side by side
DYNAMIC_CLIP = 1.0  # the norm of an update's mean-loss gradient is clipped to this
DYNAMIC_RULES = ("rms", "sgd")
RMS_BETA, RMS_EPS = 0.99, 1e-6  # the "rms" rule's running mean of g² and its ε


def dynamic_log_probs(params, cell, alphabet, groups, lr, rule="rms", decay=0.0, steps=DYNAMIC_STEPS):
    """Dynamic evaluation (see the module docstring) over ``groups``: lists of pieces (or lines) read side
    by side, one group after the other, the weights adapting from chunk to chunk and group to group.
    ``params`` is not changed.

    rule: "sgd", θ ← θ − η g; or "rms", θ ← θ − η g / (√v̂ + ε), v̂ the bias-corrected running mean
    (decay RMS_BETA) of g² over the updates so far (RMSprop: a step per weight of about η, where a
    weight's gradient is small as where it is large; it is Adam with β₁ = 0). g: the chunk's mean-loss
    gradient, its norm clipped to DYNAMIC_CLIP. Yields, chunk by chunk: log p (k, B) of the characters
    predicted (0 where masked), scored before the chunk's update, and the mask (k, B).
    """
    check_choice("rule", rule, DYNAMIC_RULES)
    theta0 = params
    params = {k: v.copy() for k, v in params.items()}
    opt = SGD(lr=lr) if rule == "sgd" else Adam(lr=lr, beta1=0.0, beta2=RMS_BETA, eps=RMS_EPS)
    n_a = cell.hidden_size(params)
    for group in groups:
        ids_in, ids_out, mask = line_batch(group, alphabet)
        state = cell.zero_state(len(group), n_a, params["W_ya"].dtype)
        for t in range(0, ids_in.shape[0], steps):
            m = mask[t : t + steps]
            i, o = ids_in[t : t + steps], ids_out[t : t + steps]
            L_t, grads, state = chunk_loss(params, cell, i, o, state, m, summed=False)  # before the update
            yield -L_t, m
            if not np.isfinite(L_t.sum()):
                return
            for g in grads.values():
                g *= 1.0 / int(m.sum())  # of the mean loss
            clip_grad_norm(grads, DYNAMIC_CLIP)
            opt.step(params, grads)
            if decay:
                for k, w in params.items():
                    w += decay * (theta0[k] - w)  # θ ← θ + λ (θ₀ − θ)


def dynamic_groups(text, unit, side_by_side):
    """How dynamic evaluation reads ``text``: groups of units read side by side, one group after the
    other — a stream as one group of ``side_by_side`` pieces, a line model's lines ``side_by_side`` at a
    time, in their order. Each unit is read after "\n" and its characters and the end "\n" predicted."""
    if unit == "line":
        lines = lines_of(text)
        return [lines[i : i + side_by_side] for i in range(0, len(lines), side_by_side)]
    return [pieces(text, side_by_side)] if text.strip("\n") else []


def evaluate_dynamic(
    params, cell, alphabet, groups, lr, rule="rms", decay=0.0, steps=DYNAMIC_STEPS, progress=None
):
    """Bits per character with dynamic evaluation (`dynamic_log_probs`); ``progress(scored, total, bpc)``,
    if given, is called after every chunk. Returns: bpc (float; inf or nan for a diverged model)."""
    total, count = 0.0, 0
    n = sum(len(unit) + 1 for group in groups for unit in group)  # the predictions to make
    with np.errstate(all="ignore"):
        for log_p, m in dynamic_log_probs(params, cell, alphabet, groups, lr, rule, decay, steps):
            total, count = total + float(log_p[m].sum()), count + int(m.sum())
            if progress is not None:
                progress(count, n, -total / count / LN2)
    if count == 0:
        raise BpttError("no text to score")
    return -total / count / LN2


class LanguageModel:
    """A trained character model: its weights, cell (a name or a ``Stack``), alphabet and unit."""

    def __init__(self, params, cell, alphabet, unit):
        self.cell = cell if isinstance(cell, Stack) else Stack(get_cell(cell))
        self.params, self.alphabet, self.unit = params, alphabet, unit

    def bits_per_char(self, text):
        """Bits per character of ``text`` (a string; see the module docstring for how it is read)."""
        units = lines_of(text) if self.unit == "line" else pieces(text)
        if not units:
            raise BpttError("no text to score")
        return evaluate_lines(self.params, self.cell, self.alphabet, units)

    def dynamic_bits_per_char(
        self, text, lr, rule="rms", decay=DYNAMIC_DECAY, steps=DYNAMIC_STEPS, side_by_side=DYNAMIC_PIECES,
        progress=None,
    ):  # fmt: skip
        """Bits per character of ``text`` with dynamic evaluation at learning rate ``lr`` (see the module
        docstring), the stream cut into ``side_by_side`` pieces read together (a line model: that many
        lines at a time, in their order); the model's own weights are not changed."""
        groups = dynamic_groups(text, self.unit, side_by_side)
        if not groups:
            raise BpttError("no text to score")
        return evaluate_dynamic(
            self.params, self.cell, self.alphabet, groups, lr, rule, decay, steps, progress
        )

    def sample(self, n, length, temperature=1.0, prime="", rng=None):
        """``n`` samples of at most ``length`` characters after ``prime``, drawn side by side.

        Returns: a list of n strings (each starts with the prime; a line model's stops before its end).
        """
        if not 0 < temperature < np.inf:
            raise BpttError(f"--temperature: expected a finite number > 0, got {temperature}")
        rng = rng or np.random.default_rng()
        nl = self.alphabet.index["\n"]
        read = np.concatenate([[nl], self.alphabet.encode(prime)]).astype(np.int64)
        n_a = self.cell.hidden_size(self.params)
        state = self.cell.zero_state(n, n_a, self.params["W_ya"].dtype)
        ids = np.repeat(read[:, None], n, axis=1)  # (len(prime) + 1, n)
        if len(read) > 1:
            _, state = chunk_log_probs(self.params, self.cell, ids[:-1], ids[1:], state)
        x = ids[-1]
        out = np.zeros((length, n), dtype=np.int64)
        done = np.zeros(n, dtype=bool)
        written = np.full(n, length)
        for t in range(length):
            log_p, state = step_log_softmax(self.params, self.cell, state, x)
            z = log_p.astype(np.float64)  # a temperature as small as 1e-320 is 0 in float32
            z[:, 0] = -np.inf  # the unknown symbol is never a character to write
            with np.errstate(over="ignore"):  # a tiny temperature: the others' -inf, a greedy draw
                p = np.exp((z - z.max(axis=1, keepdims=True)) / temperature)
            p /= p.sum(axis=1, keepdims=True)
            x = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)  # one draw per sample
            out[t] = x
            if self.unit == "line":
                ended = (x == nl) & ~done
                written[ended] = t
                done |= ended
                if done.all():
                    break
        return [prime + self.alphabet.decode(out[: written[b], b]) for b in range(n)]


SHOWN = {"\n": "⏎", " ": "␣"}  # how the graph writes characters that would not show


def shown(ch):
    return SHOWN.get(ch, ch)


def lm_trace(model, prime="", length=12, temperature=1.0, rng=None):
    """The unrolled graph of a generated sequence (``bptt graph --lm``): the model reads "\\n" and the
    prime, then writes ``length`` characters, each drawn one fed back as the next input.

    Every step's loss is −log ŷ⟨t⟩ of the character that came next (the prime's, or the one drawn), and
    the messages are the BPTT of their sum. Returns: the trace for ``plots.draw_unrolled_graph``.
    """
    from ..pictures.plots import trace_from_params

    if model.cell.layers > 1:
        raise BpttError(f"--lm: the graph draws one-layer models; this one has {model.cell.layers} layers")
    text = model.sample(1, length, temperature, prime, rng)[0]
    read = "\n" + text  # x⟨1⟩ … x⟨T⟩ and, one ahead, what each step predicts
    if model.unit == "line" and len(text) - len(prime) < length:
        read += "\n"  # the line ended: the last prediction is the end symbol
    ids = model.alphabet.encode(read)
    V = len(model.alphabet)
    X = np.eye(V, dtype=np.float64)[ids[:-1]]  # (T, V) one-hot
    params = {k: v.astype(np.float64) for k, v in model.params.items()}
    chars = [shown(c) for c in model.alphabet.chars]
    trace = trace_from_params(
        params, [shown(c) for c in read[:-1]], X, ids[1:], tags=chars, output="softmax", cell=model.cell.name,
        title=f"Generation by a character {model.cell.name.upper()}: each drawn character is the next input",
    )  # fmt: skip
    log_p = np.log(np.maximum(np.exp(-np.array(trace["L_t"])), 1e-300))
    trace["predicted"] = [shown(c) for c in read[1:]]  # what came next: the prime's, or the one drawn
    trace["y_hat"] = np.exp(log_p).tolist()  # its probability
    trace["gold"] = None
    trace["fed_back"] = [t >= len(prime) for t in range(len(read) - 1)]
    trace["output_label"] = "ŷ⟨t⟩ = softmax(W_ya a⟨t⟩ + b_y), a character drawn from it"
    return trace


def zoneout_of(meta, key, path):
    """A zoneout probability of the model file's metadata (0 when absent: written without zoneout)."""
    value = meta.get(key, "0.0")
    try:
        z = float(value)
    except (TypeError, ValueError):
        z = math.nan
    if not 0 <= z < 1:
        raise BpttError(f"{path}: metadata: {key} {value!r}: expected a probability in [0, 1)")
    return z


def load_lm(model):
    """Load ``bptt lm train``'s model: a run directory or its weights.safetensors."""
    path = os.path.join(model, "weights.safetensors") if os.path.isdir(model) else model
    if not os.path.exists(path):
        hint = (
            " (is the run finished? continue it with bptt lm train --resume)" if os.path.isdir(model) else ""
        )
        raise BpttError(f"{path}: no such file{hint}")
    params, meta = load_safetensors(path)
    meta = meta or {}
    if meta.get("format") != MODEL_FORMAT:
        raise BpttError(f"{path}: not a language model of bptt lm train (format {meta.get('format')!r})")
    if meta.get("format_version") != str(MODEL_VERSION):
        raise BpttError(
            f"{path}: format version {meta.get('format_version')!r}; this bptt reads {MODEL_VERSION}"
        )
    cell, unit = meta.get("cell"), meta.get("unit")
    if cell not in ("rnn", "gru", "lstm") or unit not in UNITS:
        raise BpttError(f"{path}: metadata: cell {cell!r} or unit {unit!r} unknown")
    alphabet = Alphabet.from_json(meta.get("alphabet", ""), path)
    layers = meta.get("layers", "1")  # files written before stacks are one layer
    if not (isinstance(layers, str) and layers.isdigit() and 1 <= int(layers) <= MAX_LAYERS):
        raise BpttError(f"{path}: metadata: layers {layers!r}: expected a number from 1 to {MAX_LAYERS}")
    stack = Stack(
        cell, int(layers), (zoneout_of(meta, "zoneout_hidden", path), zoneout_of(meta, "zoneout_cell", path))
    )
    V = len(alphabet)
    if "W_aa" not in params or "W_ya" not in params:
        raise BpttError(f"{path}: missing weights W_aa or W_ya")
    n_a = params["W_aa"].shape[-1]
    check_weights(path, params, {**stack.param_shapes(V, n_a), "W_ya": (V, n_a), "b_y": (V,)})
    return LanguageModel(params, stack, alphabet, unit)
