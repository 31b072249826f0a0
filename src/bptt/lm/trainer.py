"""Training a character language model: the text's batches, truncated BPTT, evaluations, checkpoints.

A run trains in its own directory, DIR:

    lm.json              the settings, the alphabet and the SHA-256 of the text (checksummed)
    checkpoint/          the training state at the last evaluation (or, after SIGINT/SIGTERM, before
                         the next update): weights, the best weights so far, the optimizer's moments,
                         the weights' moving average (``average`` > 0),
                         the state carried along the streams, counters, the dropout RNG
    log.jsonl            one record per evaluation: updates, characters, training and held-out bpc
    weights.safetensors  written at the end: the weights with the best held-out bpc, the settings and
                         the alphabet in the header's metadata (all `bptt lm evaluate`/`bptt sample` need)
    result.json          written last: the held-out bpc, updates, characters, seconds

Every file is written atomically; a run stops when its budget is spent (``minutes`` of wall time,
training and evaluation together, and/or ``updates``: deterministic, a resumed run then ends
bit-identical to an uninterrupted one), when it diverges, or ("converged") once the plateau rule has cut
the learning rate 1,000-fold (CONVERGED_CUT): by then the held-out bpc has long stopped falling.

The held-out text is the end of the training text (``valid_fraction`` of it, cut at a line end):
the weights kept are the ones it scores best, and (``schedule="plateau"``) the learning rate is
multiplied by ``lr_decay`` after ``patience`` evaluations without improving on the best; with
``schedule="cosine"`` it follows lr · ½(1 + cos πp) instead, p the fraction of the budget spent (a
budget in updates makes it deterministic; in minutes it follows the clock). With ``average`` = β > 0
the weights evaluated (and kept) are an exponential moving average of the updates' weights,
w̄ ← β_n w̄ + (1 − β_n) w after update n, β_n = min(β, (1 + n) / (10 + n)) so that the first
updates' weights are not held back by the random initial ones (Polyak averaging, as AWD-LSTM's
averaged SGD uses it to score a noisy optimiser's weights): the held-out bpc, the learning-rate
decay and the model file all see w̄; the updates themselves are unchanged. The evaluation text
(`bptt lm evaluate`) is never seen while training.

Batches. ``unit="stream"``: the training text is cut into B pieces, one per stream; each update
advances every stream by k = ``bptt_steps`` characters, carrying the state from chunk to chunk (its
gradient cut at the boundary); after the last chunk (an epoch) the streams start again from zero.
With ``rotate`` each epoch after the first reads the text as a circle from a place drawn for it
(seeded by the epoch, so a resume draws it again): a network that reads the text many times no longer
starts its streams, and cuts its gradients, at the same characters every time.
``unit="line"``: each epoch shuffles the lines (seeded); an update reads B lines, each from the zero
state, in chunks of k steps if longer (`corpus.line_batch`).

Started by ``mpiexec -n N`` the N processes train one model as the tagger's do
(`bptt.training.parallel`): each computes its share of the B streams (or lines), keeping those
streams' carried state; dropout is drawn for the whole batch; one Allreduce sums the gradients; every
process applies the same update; only process 0 writes, gathering the carried state for its
checkpoints. 1, 2 and 3 processes train float64 models equal to 1e-12, and a run resumes on any number.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict

import numpy as np

from ..errors import BpttError
from ..io.atomic import atomic_write
from ..io.modelfiles import load_checkpoint, save_checkpoint, save_document
from ..io.safetensors_io import save_safetensors
from ..models.layers import dropout_backward, dropout_forward
from ..training.budget import BudgetedTrainer
from ..training.checkpoint import check_budgeted_state, check_checkpoint_arrays
from ..training.optim import clip_grad_norm, make_optimizer
from ..training.parallel import Comm, ShareDraws
from ..training.progress import Progress, fmt_time
from ..training.rundir import check_new_run_dir, read_run_document
from .config import LMConfig
from .corpus import Alphabet, line_batch, lines_of, read_corpus
from .model import MODEL_FORMAT, MODEL_VERSION, evaluate_lines, pieces
from .network import LN2, Stack, chunk_loss, init_lm, layer_prefix

SETTINGS_FILE, SETTINGS_FORMAT, SETTINGS_VERSION = "lm.json", "bptt-lm-run", 1
RUN_FILES = (SETTINGS_FILE, "checkpoint", "checkpoint.old", "log.jsonl", "weights.safetensors", "result.json")
# a run stops as "converged" once the plateau rule has cut the learning rate this much: the held-out bpc
# stopped falling long before (the defaults given 40 minutes: cut 1,000-fold by update ~10,600 of 17,129,
# and the 16 minutes after it moved the held-out bpc by 0.0004), so what is left of the budget is not spent
CONVERGED_CUT = 1e-3


def text_sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_held_out(text, fraction):
    """(training part, held-out part): the held-out part is the last ``fraction`` of the lines' characters."""
    lines = text.split("\n")[:-1]  # the text ends in "\n" (read_corpus)
    if len(lines) < 2:
        raise BpttError("the training text has one line: a held-out part needs at least two")
    total, keep = len(text), len(text) * (1 - fraction)
    ends = np.cumsum([len(line) + 1 for line in lines])
    cut = int(min(max(np.searchsorted(ends, keep) + 1, 1), len(lines) - 1))  # lines before the cut train
    train, held = "\n".join(lines[:cut]) + "\n", "\n".join(lines[cut:]) + "\n"
    assert len(train) + len(held) == total
    return train, held


class LMTrainer(BudgetedTrainer):
    """Trains (or, with ``resume``, continues) a character language model in ``out``."""

    FAULT = "lm:step"

    @staticmethod
    def settings_of(out):
        """The settings of the run in ``out`` (for --resume)."""
        return read_settings(out)["settings"]

    def __init__(self, cfg, out, progress=None, comm=None):
        self.cfg, self.out = cfg, os.fspath(out)
        self.comm = comm or Comm()  # the processes training together (`bptt.training.parallel`)
        self.progress = progress or Progress(enabled=False)
        self.cell = Stack(cfg.cell, cfg.layers, (cfg.zoneout_hidden, cfg.zoneout_cell))  # their state as one
        self.dtype = np.dtype(cfg.dtype).type

    # ------------------------------------------------------------------ data
    def read_data(self, alphabet=None):
        """Read the text; the alphabet is the text's own (a new run) or the run's (a resume)."""
        c = self.cfg
        text = read_corpus(c.text, c.conll, c.entities)
        self.sha = text_sha256(text)
        self.alphabet = alphabet or Alphabet.of(text)
        train, held = split_held_out(text, c.valid_fraction)
        if c.unit == "stream":
            ids = self.alphabet.encode(train)
            B = c.batch_size
            L = (len(ids) - 1) // B  # characters each stream predicts per epoch
            if L < 1:
                raise BpttError(
                    f"--batch-size: {B} streams need a training text of more than {B} characters,"
                    f" got {len(ids):,}"
                )
            self.ids, self.steps_per_stream, self.streams_epoch = ids, L, None
            self.train_chars = B * L
            self.held = pieces(held)
        else:
            self.lines = lines_of(train)
            self.train_chars = sum(len(line) + 1 for line in self.lines)
            self.held = lines_of(held)
        self.held_chars = sum(len(p) + 1 for p in self.held)

    # ------------------------------------------------------------------ state
    def init_state(self):
        c = self.cfg
        n_x = len(self.alphabet)
        self.params = init_lm(
            c.cell, n_x, c.hidden, seed=c.seed, dtype=self.dtype, init=c.init, layers=c.layers
        )
        self.best_params = {k: v.copy() for k, v in self.params.items()}
        self.avg = {k: v.copy() for k, v in self.params.items()} if c.average else None  # w̄
        self.opt = make_optimizer(c.optimizer, c.lr)
        self.rng = np.random.default_rng([c.seed, 1])  # dropout
        self.updates = 0  # updates of the weights
        self.steps = 0  # batches drawn (updates and skipped ones)
        self.epoch = 0
        self.pos = 0  # the next batch of the epoch: a chunk (stream) or a line (line)
        self.chars = 0  # characters predicted in training
        self.seconds = 0.0
        self.bad = 0
        self.lr = c.lr
        self.best = None  # the best held-out bpc so far
        self.stale = 0  # evaluations since the best
        self.log = []
        self.interval = {"loss": 0.0, "chars": 0, "skipped": 0, "clipped": 0, "updates": 0}
        self.carry = self.zero_state(c.batch_size)

    def zero_state(self, B):
        return self.cell.zero_state(B, self.cfg.hidden, self.dtype)

    def state(self, seconds):
        return {
            "updates": self.updates, "steps": self.steps, "epoch": self.epoch, "pos": self.pos,
            "chars": self.chars, "seconds": seconds, "bad": self.bad, "lr": self.lr, "best": self.best,
            "stale": self.stale,
            "log": self.log, "interval": self.interval, "rng": self.rng.bit_generator.state,
        }  # fmt: skip

    def save(self, seconds):
        """The training state as out/checkpoint/ (process 0 writes it; the others hand it their columns
        of the carried state)."""
        carry = self.gathered_carry()
        if not self.comm.root:
            return
        arrays = {f"param.{k}": v for k, v in self.params.items()}
        arrays.update({f"best.{k}": v for k, v in self.best_params.items()})
        arrays.update({f"opt.{k}": v for k, v in self.opt.state_dict().items()})
        arrays.update({f"avg.{k}": v for k, v in (self.avg or {}).items()})
        arrays.update({f"carry.{i}": s for i, s in enumerate(self.cell.fields(carry))})
        save_checkpoint(self.out, arrays, self.state(seconds))

    def gathered_carry(self):
        """The state carried along every stream: each process keeps its own streams' rows current."""
        if self.comm.size == 1:
            return self.carry
        lo, hi, mean_over = self.comm.share(self.cfg.batch_size)
        mine = (
            (lo, hi, [f[lo:hi] for f in self.cell.fields(self.carry)]) if math.isfinite(mean_over) else None
        )
        fields = [f.copy() for f in self.cell.fields(self.carry)]
        for part in self.comm.allgather(mine):
            if part is not None:
                for whole, cols in zip(fields, part[2]):
                    whole[part[0] : part[1]] = cols
        return self.cell.join(fields)

    def restore(self):
        """Load the checkpoint in ``out``, every array and field checked (with several processes, process
        0 loads it and every process gets it). Returns: False if there is none."""

        def load():
            found = load_checkpoint(self.out)
            if found is not None:
                check_checkpoint(os.path.join(self.out, "checkpoint"), *found, self)
            return found

        found = self.comm.on_root(load)
        if found is None:
            return False
        arrays, state = found
        for k in self.params:
            self.params[k] = arrays[f"param.{k}"]
            self.best_params[k] = arrays[f"best.{k}"]
            if self.avg is not None:
                self.avg[k] = arrays[f"avg.{k}"]
        self.opt.load_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("opt.")})
        self.opt.lr = state["lr"]
        n = len(self.cell.fields(self.carry))
        self.carry = self.cell.join(arrays[f"carry.{i}"] for i in range(n))
        for k in (
            "updates",
            "steps",
            "epoch",
            "pos",
            "chars",
            "seconds",
            "bad",
            "lr",
            "best",
            "stale",
            "log",
        ):
            setattr(self, k, state[k])
        self.interval = state["interval"]
        self.rng.bit_generator.state = state["rng"]
        self.agreed_seconds = self.seconds
        return True

    # ------------------------------------------------------------------ one update
    def streams(self, epoch):
        """The epoch's (inputs, targets), each (L, B): stream b reads ids[b·L … (b+1)·L) and predicts the
        characters after them. With ``rotate`` the text is read as a circle starting at a place drawn for
        the epoch (seeded), so the streams' starts and the gradient cuts fall elsewhere every epoch."""
        if self.streams_epoch != epoch:
            ids, L, B = self.ids, self.steps_per_stream, self.cfg.batch_size
            if self.cfg.rotate and epoch:  # the text ends in "\n": the wrap is a line end like any other
                ids = np.roll(ids, -int(np.random.default_rng([self.cfg.seed, 4, epoch]).integers(len(ids))))
            self.streams_epoch = epoch
            self.inputs, self.targets = ids[: B * L].reshape(B, L).T, ids[1 : B * L + 1].reshape(B, L).T
        return self.inputs, self.targets

    def next_batch(self):
        """The next batch: (ids_in, ids_out, mask or None, state0); moves ``pos`` and ``epoch`` on."""
        c = self.cfg
        if c.unit == "stream":
            inputs, targets = self.streams(self.epoch)
            L = self.steps_per_stream
            s, e = self.pos, min(self.pos + c.bptt_steps, L)
            batch = inputs[s:e], targets[s:e], None, self.carry
            self.pos = e
            if self.pos >= L:
                self.pos, self.epoch = 0, self.epoch + 1
            return batch
        order = np.random.default_rng([c.seed, 2, self.epoch]).permutation(len(self.lines))  # the epoch's
        chosen = [self.lines[i] for i in order[self.pos : self.pos + c.batch_size]]
        self.pos += len(chosen)
        if self.pos >= len(self.lines):
            self.pos, self.epoch = 0, self.epoch + 1
        ids_in, ids_out, mask = line_batch(chosen, self.alphabet)
        return ids_in, ids_out, mask, self.zero_state(len(chosen))

    def train_step(self, params, batch):
        """One batch's loss and BPTT gradients, each the mean over the batch's predictions, and the state
        at its end (chunks of k steps for long lines). Nothing is updated.

        With several processes each computes its share of the streams (or lines), the loss and
        gradients divided by the whole batch's count of predictions (`update` sums the shares), and
        the dropout masks drawn for the whole batch (`parallel.ShareDraws`): the same model at any
        number of processes. Returns: (L, grads, predictions in the whole batch, the share's state).
        """
        ids_in, ids_out, mask, state = batch
        B = ids_in.shape[1]
        n = ids_out.size if mask is None else int(mask.sum())  # the whole batch's predictions
        lo, hi, mean_over = self.comm.share(B)
        fields = self.cell.fields(state)
        state = self.cell.join(f[lo:hi] for f in fields)
        k, total, grads = self.cfg.bptt_steps, 0.0, None
        # DropConnect on each layer's W_aa (Wan et al. 2013, as in AWD-LSTM): dropout of the weights, one
        # mask for the update, drawn alike on every process
        params, keeps = dict(params), {}
        for name in (layer_prefix(layer) + "W_aa" for layer in range(1, self.cfg.layers + 1)):
            params[name], keeps[name] = dropout_forward(params[name], self.cfg.weight_drop, self.rng)
        for s in range(0, ids_in.shape[0], k):  # one chunk for a stream; lines may need several
            m = None if mask is None else mask[s : s + k, lo:hi]
            draws = (
                self.rng
                if self.comm.size == 1
                else ShareDraws(self.rng, ids_in[s : s + k].shape[0], B, lo, hi)
            )
            L, g, state = chunk_loss(
                params, self.cell, ids_in[s : s + k, lo:hi], ids_out[s : s + k, lo:hi], state, m,
                self.cfg.dropout, draws, input_dropout=self.cfg.input_dropout,
            )  # fmt: skip
            total += L
            grads = g if grads is None else {name: grads[name] + g[name] for name in grads}
        for name, keep in keeps.items():
            grads[name] = dropout_backward(grads[name], keep)  # the dropped weights get no gradient
        scale = 1.0 / n if math.isfinite(mean_over) else 0.0  # an empty share counts for nothing
        for g in grads.values():
            g *= scale
        return total * scale, grads, n, (state if math.isfinite(mean_over) else None)

    def update(self):
        batch = self.next_batch()
        L, grads, n, state = self.train_step(self.params, batch)
        L, grads = self.sum_shares(L, grads)
        norm = clip_grad_norm(grads, self.cfg.clip)
        self.steps += 1
        if self.cfg.unit == "stream":
            if not self.pos:  # an epoch ended: every stream starts again from zero
                self.carry = self.zero_state(self.cfg.batch_size)
            elif state is not None:  # this process's streams
                lo, hi, _ = self.comm.share(self.cfg.batch_size)
                for whole, part in zip(self.cell.fields(self.carry), self.cell.fields(state)):
                    whole[lo:hi] = part
        if not (math.isfinite(L) and math.isfinite(norm)):
            self.bad += 1  # a non-finite step never reaches the weights
            self.interval["skipped"] += 1
            return
        self.bad = 0
        if self.cfg.schedule == "cosine":
            self.lr = self.opt.lr = cosine_lr(self.cfg, self.steps, self.clock(self.start))
        self.opt.step(self.params, grads)
        self.updates += 1
        if self.avg is not None:  # w̄ ← β_n w̄ + (1 − β_n) w, β_n = min(β, (1 + n) / (10 + n))
            beta = min(self.cfg.average, (1 + self.updates) / (10 + self.updates))
            for k, w in self.params.items():
                self.avg[k] += (1 - beta) * (w - self.avg[k])
        self.chars += n
        iv = self.interval
        iv["loss"] += L * n
        iv["chars"] += n
        iv["updates"] += 1
        iv["clipped"] += bool(self.cfg.clip) and norm > self.cfg.clip

    def stop_reason(self, seconds):
        """Why training stops now (the budget's reasons, or "converged"), or None to go on."""
        reason = super().stop_reason(seconds)
        if reason is None and self.cfg.schedule == "plateau" and self.lr <= self.cfg.lr * CONVERGED_CUT:
            return "converged"
        return reason

    # ------------------------------------------------------------------ measuring
    def evaluate(self, seconds):
        iv = self.interval
        scored = self.params if self.avg is None else self.avg  # the weights a model file would hold
        bpc = evaluate_lines(scored, self.cell, self.alphabet, self.held)
        improved = self.best is None or bpc < self.best
        if improved:
            self.stale = 0
            self.best = bpc
            self.best_params = {k: v.copy() for k, v in scored.items()}
        else:
            self.stale += 1
        if self.cfg.schedule == "plateau" and self.stale >= self.cfg.patience:  # no longer falling: smaller
            self.lr *= self.cfg.lr_decay
            self.opt.lr = self.lr
            self.stale = 0
        record = {
            "updates": self.updates, "chars": self.chars, "epoch": self.epoch, "seconds": seconds,
            "train_bpc": iv["loss"] / iv["chars"] / LN2 if iv["chars"] else None,
            "held_out_bpc": bpc if math.isfinite(bpc) else None, "lr": self.lr,
            "clip_fraction": iv["clipped"] / iv["updates"] if iv["updates"] else None,
            "skipped": iv["skipped"],
        }  # fmt: skip
        self.log.append(record)
        self.interval = {"loss": 0.0, "chars": 0, "skipped": 0, "clipped": 0, "updates": 0}
        self.comm.check_same(self.params, f"after {self.updates:,} updates")
        if self.comm.root:  # only process 0 writes
            atomic_write(
                os.path.join(self.out, "log.jsonl"), "".join(json.dumps(r) + "\n" for r in self.log).encode()
            )
        return record

    def status(self, seconds):
        best = "—" if self.best is None else f"{self.best:.4f}"
        train = self.log[-1]["train_bpc"] if self.log else None
        return (
            f"  {self.updates:>8,} updates  {self.chars:>12,} chars  held-out bpc {best}"
            + (f"  train bpc {train:.4f}" if train is not None else "")
            + f"  {self.chars / max(seconds, 1e-9):,.0f} chars/s  {self.budget_left(seconds)}"
        )

    # ------------------------------------------------------------------ the run
    def run(self, resume=False):
        """Train from the start, or with ``resume`` from the checkpoint in ``out``. Returns: the result."""
        c = self.cfg
        if resume:
            doc = self.comm.on_root(lambda: read_settings(self.out))
            self.comm.every(lambda: self.read_data(doc["alphabet"]))
            if doc["text_sha256"] != self.sha:
                raise BpttError(
                    f"{self.out}: the text differs from the one this run was trained on (SHA-256); resume"
                    " with the same files"
                )
        else:
            self.comm.on_root(lambda: check_new_run_dir(self.out, SETTINGS_FILE, "a language-model run"))
            self.comm.every(self.read_data)
        self.init_state()
        resumed = resume and self.restore()
        if not resume:

            def start():  # (process 0)
                os.makedirs(self.out, exist_ok=True)
                doc = {"settings": asdict(c), "alphabet": self.alphabet.to_json(), "text_sha256": self.sha}
                save_document(os.path.join(self.out, SETTINGS_FILE), SETTINGS_FORMAT, SETTINGS_VERSION, doc)

            self.comm.on_root(start)
        n_params = sum(v.size for v in self.params.values())
        self.progress.line(
            f"{c.cell} language model: {n_params:,} parameters, {len(self.alphabet)} symbols,"
            f" {self.train_chars:,} training characters ({c.unit}s), {self.held_chars:,} held out"
            + (f"; resumed after {self.updates:,} updates" if resumed else "")
        )
        return self.loop(time.monotonic() - self.seconds)

    def finish(self, reason, seconds):
        c = self.cfg
        meta = {
            "format": MODEL_FORMAT, "format_version": str(MODEL_VERSION), "cell": c.cell,
            "hidden": str(c.hidden), "layers": str(c.layers), "unit": c.unit,
            "alphabet": self.alphabet.to_json(),
        }  # fmt: skip
        if c.zoneout_hidden or c.zoneout_cell:  # scoring and sampling use its expectation
            meta.update(zoneout_hidden=repr(c.zoneout_hidden), zoneout_cell=repr(c.zoneout_cell))
        if self.comm.root:  # only process 0 writes
            save_safetensors(
                os.path.join(self.out, "weights.safetensors"), self.best_params, meta, digest=True
            )
        result = {
            "held_out_bpc": self.best, "updates": self.updates, "chars": self.chars, "epochs":
            self.chars / self.train_chars, "seconds": seconds, "stopped": reason,
            "train_chars": self.train_chars, "held_out_chars": self.held_chars, "cell": c.cell,
            "hidden": c.hidden, "layers": c.layers, "unit": c.unit,
            "parameters": int(sum(v.size for v in self.params.values())),
        }  # fmt: skip
        if self.comm.root:
            atomic_write(
                os.path.join(self.out, "result.json"), (json.dumps(result, indent=1) + "\n").encode()
            )
        self.progress.line(
            f"held-out bpc {self.best:.4f} after {self.updates:,} updates ({result['epochs']:.1f} epochs)"
            f" in {fmt_time(seconds)} (stopped: {reason}); the model is {self.out}"
        )
        return result


def cosine_lr(cfg, steps, seconds):
    """The learning rate after ``steps`` batches and ``seconds`` of the budget: lr · ½(1 + cos πp), where
    p is the fraction of the budget spent (of the updates or of the minutes, whichever is further on)."""
    p = max(steps / cfg.updates if cfg.updates else 0.0, seconds / cfg.budget_seconds)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(p, 1.0)))


def read_settings(out):
    """The settings, alphabet and text checksum of the run in ``out`` (lm.json, checksummed and checked)."""
    doc, path = read_run_document(
        out,
        SETTINGS_FILE,
        SETTINGS_FORMAT,
        SETTINGS_VERSION,
        "bptt lm train",
        ("alphabet", "settings", "text_sha256"),
    )
    cfg = LMConfig.from_json(doc["settings"], f"{path}: settings")
    alphabet = Alphabet.from_json(doc["alphabet"], path)
    sha = doc["text_sha256"]
    if not (isinstance(sha, str) and len(sha) == 64):
        raise BpttError(f"{path}: text_sha256: expected a SHA-256 in hex")
    return {"settings": cfg, "alphabet": alphabet, "text_sha256": sha}


def check_checkpoint(where, arrays, state, trainer):
    """Every array and field of a checkpoint checked against this run before any is used."""
    want = {f"param.{k}": v for k, v in trainer.params.items()}
    want.update({f"best.{k}": v for k, v in trainer.params.items()})
    want.update({f"avg.{k}": v for k, v in (trainer.avg or {}).items()})
    want.update({f"carry.{i}": s for i, s in enumerate(trainer.cell.fields(trainer.carry))})
    check_checkpoint_arrays(where, arrays, want, trainer.opt, trainer.params)
    path = os.path.join(where, "state.json")
    fields = ("updates", "steps", "epoch", "pos", "chars", "seconds", "bad", "lr", "best", "stale", "log")
    integers = ("updates", "steps", "epoch", "pos", "chars", "bad", "stale")
    interval = ("chars", "clipped", "loss", "skipped", "updates")
    check_budgeted_state(path, state, (*fields, "interval", "rng"), integers, ("seconds", "lr"), interval)
    if state["best"] is not None and (
        type(state["best"]) not in (int, float) or not math.isfinite(state["best"])
    ):
        raise BpttError(f"{path}: best: expected null or a finite number")
    limit = trainer.steps_per_stream if trainer.cfg.unit == "stream" else len(trainer.lines)
    if state["pos"] >= limit:
        raise BpttError(f"{path}: pos: expected a position in the epoch, below {limit}")
