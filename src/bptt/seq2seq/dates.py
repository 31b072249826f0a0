"""Date normalisation with the encoder–decoder: training (``bptt dates train``), converting
(``bptt dates convert``) and the pictures' traces.

A run trains in its own directory, DIR:

    dates.json           the settings (checksummed)
    checkpoint/          the training state at the last evaluation (or, after SIGINT/SIGTERM, before
                         the next update): weights, the best weights so far, the optimizer, counters
    log.jsonl            one record per evaluation: updates, training loss, validation exact match
    weights.safetensors  written at the end: the last weights with the best validation exact match, the
                         network's sizes in the header's metadata (all `bptt dates convert` needs)
    result.json          written last: exact match on held-out dates in the training formats and in
                         the held-out formats (greedy and beam search), per format, the attention maps
    report.html          the learning curve, the attention maps and the tables

Every update draws a fresh batch of training dates in the training formats (``bptt.tasks.dates``);
validation (the weights kept) uses the dates of the "valid" split, the final test those of the "test"
split — dates never seen in training, in any format — in the training formats and, separately,
in the formats held out of training. Exact match: the whole ISO date right.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from ..config import Checked, flag, number, one_of
from ..errors import BpttError
from ..io.atomic import atomic_write
from ..io.modelfiles import check_weights, load_checkpoint, save_checkpoint, save_document
from ..io.safetensors_io import load_safetensors, save_safetensors
from ..tasks import dates as task
from ..training.budget import BudgetedTrainer
from ..training.checkpoint import check_budgeted_state, check_checkpoint_arrays
from ..training.optim import Adam, clip_grad_norm
from ..training.parallel import agreed
from ..training.progress import Progress, fmt_time
from ..training.rundir import check_new_run_dir, read_run_document
from .decode import beam_decode, greedy_decode
from .network import Seq2SeqConfig, init_seq2seq, param_shapes, seq2seq_forward, seq2seq_loss

SETTINGS_FILE, SETTINGS_FORMAT, SETTINGS_VERSION = "dates.json", "bptt-dates-run", 1
MODEL_FORMAT, MODEL_VERSION = "bptt-dates", 1
SCORE_BATCH = 500  # dates decoded at once while scoring
SHOWN_MAPS = ("Tuesday, July 10, 2007", "the 3rd of may '79", "5/30/09", "1979-5-3")  # report's maps

_RULES = {
    "cell": one_of(("rnn", "gru", "lstm")),
    "attention": flag(),
    "hidden": number(1, 4096, integer=True),
    "attention_units": number(1, 4096, integer=True),
    "batch_size": number(1, 2**16, integer=True),
    "lr": number(0, above=True),
    "clip": number(0),
    "minutes": number(0, above=True, optional=True),
    "updates": number(1, 10**12, integer=True, optional=True),
    "eval_every": number(1, 10**12, integer=True),
    "valid_size": number(1, 10**6, integer=True),
    "test_size": number(1, 10**6, integer=True),
    "beam": number(1, 64, integer=True),
    "max_bad_steps": number(1, integer=True),
    "seed": number(0, 2**63 - 1, integer=True),
    "dtype": one_of(("float32", "float64")),
}


@dataclass
class DatesConfig(Checked):
    """How a date-normalisation model is trained; every field checked on construction."""

    cell: str = "lstm"  # "rnn" (tanh), "gru" or "lstm": the encoder's and the decoder's
    attention: bool = True  # additive attention (Bahdanau et al. 2015); False: one summary of the source
    hidden: int = 128  # n_e (each encoder direction) and n_d (the decoder)
    attention_units: int = 64  # n_att, the attention's scoring layer
    batch_size: int = 64  # dates per update
    lr: float = 3e-3  # Adam's learning rate
    clip: float = 5.0  # clip the global gradient norm to this (0: off)
    minutes: float | None = 10.0  # wall-time budget, training and evaluations together
    updates: int | None = None  # a budget in updates (deterministic: a resumed run ends bit-identical)
    eval_every: int = 250  # updates between validations (and checkpoints)
    valid_size: int = 1000  # validation dates (the "valid" split, training formats): the weights kept
    test_size: int = 2000  # test dates (the "test" split) in the training formats, and in the held-out ones
    beam: int = 5  # beam width of the final test's beam search (1: greedy only)
    max_bad_steps: int = 20  # the run diverged after this many non-finite updates in a row
    seed: int = 0  # the weights and every draw of dates
    dtype: str = "float32"  # of the weights, gradients and optimizer state

    RULES = _RULES
    KIND, WHERE = "the date model's settings", "settings"

    def __post_init__(self):
        super().__post_init__()
        if self.minutes is None and self.updates is None:
            raise BpttError("--time-budget: a budget is needed: --time-budget, --updates or both")

    @property
    def budget_seconds(self):
        return math.inf if self.minutes is None else 60 * self.minutes

    def network(self):
        return Seq2SeqConfig(
            cell=self.cell, n_x=task.N_INPUT, n_y=task.N_DECODER_INPUT, n_e=self.hidden, n_d=self.hidden,
            n_att=self.attention_units if self.attention else 0, attention=self.attention,
        )  # fmt: skip


def examples(rng, n, split, formats=None):
    """``n`` drawn examples as arrays: X (T_x, B), lengths (B,), Y_in, Y_out (T_y, B), and the texts."""
    drawn = task.draw_dates(rng, n, split, formats)
    texts, isos, names = zip(*drawn)
    X, lengths = task.encode_input(list(texts))
    Y_in, Y_out = task.encode_output(list(isos))
    return X, lengths, Y_in, Y_out, list(texts), list(isos), list(names)


class DateModel:
    """A trained date normaliser: its weights and network."""

    def __init__(self, params, net):
        self.params, self.net = params, net

    def convert(self, texts, beam=1):
        """ISO dates for written ones (each checked: ``tasks.dates.check_text``). Returns: list of str."""
        return self.decode(*task.encode_input(list(texts)), beam)

    def decode(self, X, lengths, beam=1):
        """The ISO strings the decoder writes for encoded sources, greedy (beam 1) or by beam search.

        Shapes: X (T_x, B) input ids, lengths (B,). Returns: list of B strings (no check).
        """
        if beam == 1:
            ids, _ = greedy_decode(self.params, self.net, X, lengths, task.START, task.END, task.TY)
        else:
            ids = beam_decode(self.params, self.net, X, lengths, task.START, task.END, task.TY, beam)
        return [decode(i) for i in ids]

    def attention_map(self, text):
        """The greedy output for one text and its attention weights (steps, len(text)), or None."""
        X, lengths = task.encode_input([text])
        ids, alphas = greedy_decode(self.params, self.net, X, lengths, task.START, task.END, task.TY)
        return decode(ids[0]), None if alphas is None else alphas[:, 0, : len(text)]

    def trace(self, text):
        """The encoder–decoder over one written date, for ``pictures.seq2seq.draw_seq2seq_graph``: the
        greedy output, each output fed back, the attention weights, and the messages of BPTT for the
        loss against the model's own output (float64)."""
        from .network import seq2seq_messages

        X, lengths = task.encode_input([text])
        ids, _ = greedy_decode(self.params, self.net, X, lengths, task.START, task.END, task.TY)
        seq = [*ids[0], task.END][: task.TY]  # what the model wrote, as the targets of its own loss
        Y_out = np.array(seq, dtype=np.int64)[:, None]  # (T_y, 1)
        Y_in = np.array([task.START, *seq[:-1]], dtype=np.int64)[:, None]  # (T_y, 1) each output fed back
        out = decode(ids[0])
        p = {k: v.astype(np.float64) for k, v in self.params.items()}
        Z, cache = seq2seq_forward(p, self.net, X, lengths, Y_in)
        m = seq2seq_messages(Z, Y_out, cache)
        T_y = Y_out.shape[0]
        z = Z[:, 0] - Z[:, 0].max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        outputs = [task.OUTPUT_VOCAB[i] for i in Y_out[:, 0]]
        return {
            "source": list(text),
            "outputs": outputs,
            "p": [float(np.exp(log_p[t, Y_out[t, 0]])) for t in range(T_y)],
            "alphas": None if cache.alphas is None else cache.alphas[:, 0, : len(text)].tolist(),
            "encoder_messages": np.linalg.norm(m["dH"][: len(text), 0], axis=-1).tolist(),
            "decoder_messages": np.linalg.norm(m["dS"][:, 0], axis=-1).tolist(),
            "cell": self.net.cell,
            "attention": self.net.attention,
            "title": f"An encoder–decoder ({self.net.cell.upper()}"
            f"{', attention' if self.net.attention else ''}) over one date: '{text}' → '{out}'",
        }


def decode(ids):
    return "".join(task.OUTPUT_VOCAB[i] for i in ids if 0 < i < task.N_OUTPUT)


def load_date_model(model):
    """Load ``bptt dates train``'s model: a run directory or its weights.safetensors."""
    path = os.path.join(model, "weights.safetensors") if os.path.isdir(model) else model
    if not os.path.exists(path):
        hint = (
            " (is the run finished? continue it with bptt dates train --resume)"
            if os.path.isdir(model)
            else ""
        )
        raise BpttError(f"{path}: no such file{hint}")
    params, meta = load_safetensors(path)
    meta = meta or {}
    if meta.get("format") != MODEL_FORMAT or meta.get("format_version") != str(MODEL_VERSION):
        raise BpttError(f"{path}: not a model of bptt dates train (format {meta.get('format')!r})")
    try:
        net = Seq2SeqConfig(**json.loads(meta["network"]))
    except (KeyError, TypeError, ValueError, BpttError) as e:
        raise BpttError(f"{path}: metadata: network: {e}") from None
    if (net.n_x, net.n_y) != (task.N_INPUT, task.N_DECODER_INPUT):
        raise BpttError(f"{path}: the network's vocabularies differ from this bptt's date task")
    check_weights(path, params, param_shapes(net))
    return DateModel(params, net)


class DatesTrainer(BudgetedTrainer):
    """Trains (or, with ``resume``, continues) a date normaliser in ``out``."""

    FAULT = "dates:step"

    @staticmethod
    def settings_of(out):
        """The settings of the run in ``out`` (for --resume)."""
        return read_settings(out)

    def __init__(self, cfg, out, progress=None, comm=None):
        if comm is not None and comm.size > 1:  # every process meets this alike: process 0 says it
            raise agreed(
                BpttError("bptt dates train runs on one process: start it without mpiexec"), not comm.root
            )
        self.cfg, self.out = cfg, os.fspath(out)
        self.progress = progress or Progress(enabled=False)
        self.net = cfg.network()
        self.dtype = np.dtype(cfg.dtype).type
        self.params = init_seq2seq(self.net, seed=cfg.seed, dtype=self.dtype)
        self.best_params = {k: v.copy() for k, v in self.params.items()}
        self.opt = Adam(lr=cfg.lr)
        self.rng = task.dates_rng(cfg.seed, "train")
        self.steps = self.updates = self.bad = 0
        self.seconds, self.best, self.log = 0.0, None, []
        self.interval = {"loss": 0.0, "dates": 0, "updates": 0, "skipped": 0}
        valid = examples(task.dates_rng(cfg.seed, "valid"), cfg.valid_size, "valid")
        self.valid = valid[:2] + (valid[5],)  # X, lengths, the ISO dates

    # ------------------------------------------------------------------ state
    def state(self, seconds):
        return {
            "steps": self.steps, "updates": self.updates, "bad": self.bad, "seconds": seconds,
            "best": self.best, "log": self.log, "interval": self.interval,
            "rng": self.rng.bit_generator.state,
        }  # fmt: skip

    def save(self, seconds):
        arrays = {f"param.{k}": v for k, v in self.params.items()}
        arrays.update({f"best.{k}": v for k, v in self.best_params.items()})
        arrays.update({f"opt.{k}": v for k, v in self.opt.state_dict().items()})
        save_checkpoint(self.out, arrays, self.state(seconds))

    def restore(self):
        found = load_checkpoint(self.out)
        if found is None:
            return False
        arrays, state = found
        where = os.path.join(self.out, "checkpoint")
        check_arrays(where, arrays, self.params, self.opt)
        check_state(os.path.join(where, "state.json"), state)
        for k in self.params:
            self.params[k], self.best_params[k] = arrays[f"param.{k}"], arrays[f"best.{k}"]
        self.opt.load_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("opt.")})
        for k in ("steps", "updates", "bad", "seconds", "best", "log", "interval"):
            setattr(self, k, state[k])
        self.rng.bit_generator.state = state["rng"]
        return True

    # ------------------------------------------------------------------ one update
    def train_step(self, params, batch):
        """One batch's loss (the mean over its dates) and its BPTT gradients; nothing is updated."""
        X, lengths, Y_in, Y_out = batch[:4]
        L, grads, _ = seq2seq_loss(params, self.net, X, lengths, Y_in, Y_out)
        return L, grads

    def update(self):
        batch = examples(self.rng, self.cfg.batch_size, "train")
        L, grads = self.train_step(self.params, batch)
        norm = clip_grad_norm(grads, self.cfg.clip)
        self.steps += 1
        if not (math.isfinite(L) and math.isfinite(norm)):
            self.bad += 1
            self.interval["skipped"] += 1
            return
        self.bad = 0
        self.opt.step(self.params, grads)
        self.updates += 1
        iv = self.interval
        iv["loss"] += L * self.cfg.batch_size
        iv["dates"] += self.cfg.batch_size
        iv["updates"] += 1

    # ------------------------------------------------------------------ measuring
    def exact(self, params, X, lengths, isos, beam=1):
        """The fraction of exact ISO dates, decoding ``SCORE_BATCH`` at a time, and the outputs."""
        model, out = DateModel(params, self.net), []
        for s in range(0, X.shape[1], SCORE_BATCH):
            ls = lengths[s : s + SCORE_BATCH]
            out += model.decode(X[: int(ls.max()), s : s + SCORE_BATCH], ls, beam)
        return float(np.mean([o == w for o, w in zip(out, isos)])), out

    def evaluate(self, seconds):
        iv = self.interval
        score, _ = self.exact(self.params, *self.valid)
        if self.best is None or score >= self.best:  # ties: the later weights, trained longer
            self.best = score
            self.best_params = {k: v.copy() for k, v in self.params.items()}
        record = {
            "updates": self.updates, "dates": self.updates * self.cfg.batch_size, "seconds": seconds,
            "train_loss": iv["loss"] / iv["dates"] if iv["dates"] else None, "valid_exact": score,
            "skipped": iv["skipped"],
        }  # fmt: skip
        self.log.append(record)
        self.interval = {"loss": 0.0, "dates": 0, "updates": 0, "skipped": 0}
        text = "".join(json.dumps(r) + "\n" for r in self.log)
        atomic_write(os.path.join(self.out, "log.jsonl"), text.encode())
        return record

    def status(self, seconds):
        last = self.log[-1] if self.log else {}
        loss = last.get("train_loss")
        rate = self.updates * self.cfg.batch_size / max(seconds, 1e-9)
        return (
            f"  {self.updates:>7,} updates  valid exact {100 * (last.get('valid_exact') or 0):6.2f}%"
            f" (best {100 * (self.best or 0):6.2f}%)"
            + (f"  train loss {loss:.4f}" if loss is not None else "")
            + f"  {rate:,.0f} dates/s  {self.budget_left(seconds)}"
        )

    def finish(self, reason, seconds):
        c = self.cfg
        meta = {
            "format": MODEL_FORMAT, "format_version": str(MODEL_VERSION),
            "network": json.dumps(asdict(self.net)),
        }  # fmt: skip
        save_safetensors(os.path.join(self.out, "weights.safetensors"), self.best_params, meta, digest=True)
        model = DateModel(self.best_params, self.net)
        scores = {}
        for name, formats in (
            ("seen_formats", task.TRAIN_FORMATS),
            ("held_out_formats", task.HELD_OUT_FORMATS),
        ):
            X, lengths, _, _, texts, isos, names = examples(
                task.dates_rng(c.seed, "test"), c.test_size, "test", formats
            )
            greedy, out = self.exact(self.best_params, X, lengths, isos)
            per_format = {}
            for n, o, w in zip(names, out, isos):
                hit = per_format.setdefault(n, [0, 0])
                hit[0] += o == w
                hit[1] += 1
            wrong = [{"text": t, "output": o, "iso": w} for t, o, w in zip(texts, out, isos) if o != w][:20]
            beam = self.exact(self.best_params, X, lengths, isos, c.beam)[0] if c.beam > 1 else None
            scores[name] = {
                "exact_greedy": greedy, "exact_beam": beam, "n": len(isos),
                "per_format": {k: v[0] / v[1] for k, v in sorted(per_format.items())}, "errors": wrong,
            }  # fmt: skip
        maps = []
        for text in SHOWN_MAPS:
            out, alphas = model.attention_map(text)
            maps.append({"text": text, "output": out, "alphas": None if alphas is None else alphas.tolist()})
        result = {
            "test": scores, "valid_exact": self.best, "updates": self.updates,
            "dates": self.updates * c.batch_size,
            "seconds": seconds, "stopped": reason, "settings": asdict(c),
            "parameters": int(sum(v.size for v in self.params.values())), "attention_maps": maps,
        }  # fmt: skip
        atomic_write(os.path.join(self.out, "result.json"), (json.dumps(result, indent=1) + "\n").encode())
        try:
            from ..pictures.seq2seq import write_dates_report
        except ImportError:  # matplotlib is optional for training
            pass
        else:
            write_dates_report(self.out, result, self.log)
        seen, held = scores["seen_formats"], scores["held_out_formats"]
        self.progress.line(
            f"test exact match: {100 * seen['exact_greedy']:.2f}% on held-out dates in the training formats,"
            f" {100 * held['exact_greedy']:.2f}% in the held-out formats (greedy); {self.updates:,} updates"
            f" in {fmt_time(seconds)} (stopped: {reason}); the model is {self.out}"
        )
        return result

    # ------------------------------------------------------------------ the run
    def run(self, resume=False):
        c = self.cfg
        if resume:
            resumed = self.restore()
        else:
            check_new_run_dir(self.out, SETTINGS_FILE, "a date-model run")
            os.makedirs(self.out, exist_ok=True)
            save_document(
                os.path.join(self.out, SETTINGS_FILE),
                SETTINGS_FORMAT,
                SETTINGS_VERSION,
                {"settings": asdict(c)},
            )
            resumed = False
        n_params = sum(v.size for v in self.params.values())
        self.progress.line(
            f"date normalisation: an encoder-decoder ({c.cell}{', attention' if c.attention else ''}),"
            f" {n_params:,} parameters" + (f"; resumed after {self.updates:,} updates" if resumed else "")
        )
        return self.loop(time.monotonic() - self.seconds)


def read_settings(out):
    """The settings of the run in ``out`` (dates.json, checksummed, every field checked)."""
    doc, path = read_run_document(out, SETTINGS_FILE, SETTINGS_FORMAT, SETTINGS_VERSION, "bptt dates train")
    return DatesConfig.from_json(doc["settings"], f"{path}: settings")


def check_arrays(where, arrays, params, opt):
    """A checkpoint's arrays are exactly this run's weights, best weights and optimizer state."""
    want = {f"{kind}.{k}": v for kind in ("param", "best") for k, v in params.items()}
    check_checkpoint_arrays(where, arrays, want, opt, params)


def check_state(path, state):
    fields = ("steps", "updates", "bad", "seconds", "best", "log", "interval", "rng")
    interval = ("dates", "loss", "skipped", "updates")
    check_budgeted_state(path, state, fields, ("steps", "updates", "bad"), ("seconds",), interval)
    best = state["best"]
    if best is not None and (type(best) not in (int, float) or not 0 <= best <= 1):
        raise BpttError(f"{path}: best: expected null or a number from 0 to 1")
