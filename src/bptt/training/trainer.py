"""Training a tagger: data, minibatches, BPTT, Adam, dev evaluation, checkpoints and resume.

One run writes everything into its output directory:

    run.json            the settings of the run, the absolute paths, sizes and SHA-256 of its input
                        files (``--resume DIR`` needs nothing else, and refuses files that changed);
                        checksummed like config.json, and written only once every input is read
    config.json, vocab.json, weights.safetensors     the best model so far (by dev F1)
    checkpoint/         the full training state after the last finished epoch (or, after
                        SIGINT/SIGTERM, before the next batch of the epoch in progress)
    log.jsonl           one JSON record per epoch (loss, dev scores, speed, gradient flow)
    loss.png, f1.png    the curves, redrawn after every epoch
    sample.json         a few dev sentences tagged by the best model

Every file is written atomically, so an interrupted run (Ctrl-C, SIGTERM, a crash or a
power cut) leaves the last good model and checkpoint intact. Ctrl-C and SIGTERM stop after the
batch in progress and save the state inside the epoch: the RNG state the epoch's batch order was
drawn from, the current one, the next batch and the running totals. ``--resume`` continues from
the checkpoint (SIGKILL or a power cut lose the epoch in progress) and, without a time budget,
ends with a model bit-identical to an uninterrupted run with the same seed.

Started by ``mpiexec -n N`` (`bptt.training.parallel`), the N processes train one model: each computes
its share of every batch, the gradients are summed, every process applies the same update; only
process 0 reads and writes the run's directory and prints. The model does not depend on N (float64:
to 1e-12), and ``--resume`` may continue with another N.

Nothing of the user's is lost: a new run writes nothing before every input is read and checked,
and then only into a new or empty directory (or one holding this same run's run.json alone);
``overwrite`` replaces another run or model, never files of the user's. A run that diverges ends
with a `BpttError` before the diverged epoch is saved: after ``max_bad_steps`` updates in a row with
a non-finite loss or gradient, or after an epoch whose loss per word is over ``DIVERGED`` times
that of a uniform guess (log 2 for name-or-not, log K for K tags).
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
import warnings
from dataclasses import asdict, replace

import numpy as np

from .. import faults
from ..errors import BpttError
from ..io.atomic import atomic_write
from ..io.modelfiles import save_model_dir
from ..models.tagger import Tagger, check_length, tables_for
from ..models.tagger_network import batch_indices, batch_part, init_tagger_params, make_batch, tagger_loss
from ..models.vocab import FormTable, Vocab
from ..resources import check_memory, gib
from .checkpoint import EPOCH_TOTALS, load_training_state, save_training_state
from .config import check_sizes, memory_needed
from .data import encode, read_embeddings, read_tagged, task_tags
from .evaluation import dev_scores, gradient_flow, make_probes
from .optim import clip_grad_norm, make_optimizer
from .parallel import Comm, ShareDraws, agreed, agreed_signal, world
from .progress import Progress, fmt_time
from .rundir import (
    DATA_FILES,
    check_checkpoint_dirs,
    check_data,
    check_out_dir,
    check_regular_files,
    check_same_files,
    data_checksums,
    read_run_file,
    same_run,
    start_run_dir,
)

EMA_EVERY = 4  # steps between updates of the weights' moving average (decay ema**4 each time)
DIVERGED = 10  # an epoch whose loss per word is over this many times a uniform guess's has diverged


class Stop(KeyboardInterrupt):
    """Raised by the loop after SIGINT or SIGTERM, once the training state is saved."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum  # the command exits with 128 + signum, as if the signal had ended it


class Trainer:
    """Runs (or resumes) one training run into ``out``; ``comm``: its processes (`parallel.Comm`)."""

    def __init__(self, tcfg, mcfg, out, progress=True, comm=None):
        self.tcfg, self.mcfg, self.out = tcfg, mcfg, out
        self.comm = comm or Comm()
        root = self.comm.root  # process 0 prints and writes; the others are silent
        self.progress = Progress(enabled=progress and root, muted=not root)
        self.dtype = np.dtype(tcfg.dtype).type
        self.stop_signal = None  # set by SIGINT/SIGTERM: save and stop before the next batch
        self.resume_at = None  # restored from a checkpoint taken inside an epoch: where to go on
        # with several processes, what they all act on, from the last step's Allreduce: a stop signal
        # any of them got, and process 0's clock (seconds of the run)
        self.agreed_stop, self.agreed_seconds = None, 0.0

    # ---------------------------------------------------------------- set-up
    def prepare(self):
        """Read the data, then set up the weights and the optimizer."""
        self.read_data()
        self.init_state()

    def read_data(self):
        """Read and check every input file (training, dev, embeddings); allocates no weights."""
        t, m = self.tcfg, self.mcfg
        train_sents, self.scheme, gold_train = read_tagged(t.train, t)
        if t.max_sentences:
            train_sents, gold_train = train_sents[: t.max_sentences], gold_train[: t.max_sentences]
        m.tags = task_tags(m.task, gold_train, t.train)
        m.aux_tags = task_tags("ner", gold_train, t.train) if m.task == "person" and m.aux else []
        extra_words, pretrained = (), None
        if t.embeddings:
            extra_words, vectors = read_embeddings(t.embeddings, m.word_dim)
        self.vocab = Vocab.build([s.words for s in train_sents], extra_words=extra_words)
        if t.embeddings:
            rows = np.array([self.vocab.word_id[w] for w in extra_words if w in self.vocab.word_id])
            keep = [i for i, w in enumerate(extra_words) if w in self.vocab.word_id]
            pretrained = (rows, vectors[keep])
        self.pretrained = pretrained
        self.table = FormTable(self.vocab)
        self.train = encode(t.train, train_sents, gold_train, m, self.table)
        self.dev = None
        if t.dev:
            dev_sents, _, gold_dev = read_tagged(t.dev, t)
            for s in dev_sents:  # the dev sentences are tagged
                check_length(s.words, f"{t.dev}:{s.line}")
            self.dev = encode(t.dev, dev_sents, gold_dev, m, self.table)
        self.tables = tables_for(self.vocab, self.table)

    def check_memory(self):
        """Refuse a run that cannot fit in the memory available, before its weights are allocated."""
        longest = max(len(f) for f in self.train.forms)
        need, weights = memory_needed(
            self.mcfg, self.tcfg, len(self.vocab.words), len(self.vocab.chars), longest
        )
        check_memory(
            "this network",
            need,
            f"{gib(weights)} for the weights, their gradients, optimizer moments and average, the rest for"
            f" a batch of {self.tcfg.batch_size} sentences of up to {longest} words",
            "choose a smaller --hidden, --layers, --word-dim or --batch-size",
        )

    def init_state(self):
        """The initial weights, optimizer, RNG and counters (then `restore` may load a checkpoint)."""
        t, m = self.tcfg, self.mcfg
        self.params = init_tagger_params(
            m,
            len(self.vocab.words),
            len(self.vocab.chars),
            seed=t.seed,
            dtype=self.dtype,
            pretrained=self.pretrained,
        )
        # the moving average of the weights, updated every EMA_EVERY steps: it is what is evaluated and saved
        self.ema = {k: v.copy() for k, v in self.params.items()} if t.ema else None
        self.opt = make_optimizer(t.optimizer, t.lr)
        self.rng = np.random.default_rng(t.seed + 1)
        self.epoch, self.best_f1, self.bad_epochs, self.train_seconds = 0, -1.0, 0, 0.0
        self.ema_updates = 0
        self.log = []
        self.probes = make_probes(self.dev or self.train)  # fixed sentences for the gradient flow

    def model_config(self):
        return {
            "task": self.mcfg.task,
            "tagger": self.mcfg.to_json(),
            "scheme": self.scheme,
            "train": asdict(self.tcfg),
        }

    # ---------------------------------------------------------------- state
    def state(self, inside_epoch=None):
        """The counters of the run; ``inside_epoch``: where in the current epoch it stopped."""
        return {
            "epoch": self.epoch,
            "best_f1": self.best_f1,
            "bad_epochs": self.bad_epochs,
            "train_seconds": self.train_seconds,
            "ema_updates": self.ema_updates,
            "rng": self.rng.bit_generator.state,
            "log": self.log,
            **({"inside_epoch": inside_epoch} if inside_epoch else {}),
        }

    def save_checkpoint(self, inside_epoch=None):
        if self.comm.root:  # only process 0 writes
            save_training_state(self.out, self.params, self.ema, self.opt, self.state(inside_epoch))

    def restore(self):
        """Load the checkpoint in ``out`` (every array and field checked: `load_training_state`); with
        several processes, process 0 loads it and `share_state` hands it to the others.
        Returns: False when there is no checkpoint."""
        n_sentences = len(self.train.forms)
        state = self.comm.on_root(
            lambda: load_training_state(self.out, self.params, self.ema, self.opt, self.tcfg, n_sentences)
        )
        if state is None:
            return False
        self.epoch, self.best_f1 = state["epoch"], state["best_f1"]
        self.bad_epochs, self.train_seconds = state["bad_epochs"], state["train_seconds"]
        self.ema_updates = state.get("ema_updates", 0)
        self.rng.bit_generator.state = state["rng"]
        self.log = state["log"]
        self.resume_at = state.get("inside_epoch")
        return True

    def share_state(self):
        """Every process starts from process 0's weights, average and optimizer state (a broadcast)."""
        if self.comm.size == 1:
            return
        mine = (self.params, self.ema, self.opt.state_dict()) if self.comm.root else None
        self.params, self.ema, opt_state = self.comm.broadcast(mine)
        if not self.comm.root:
            self.opt.load_state_dict(opt_state)

    def save_model(self):
        if self.comm.root:  # only process 0 writes
            save_model_dir(self.out, self.weights, self.model_config(), self.vocab.to_json())

    @property
    def weights(self):
        """The weights that are evaluated and saved: the moving average when there is one."""
        return self.ema if self.ema is not None else self.params

    def update_ema(self):
        # early on the average forgets faster, so it never lags far behind a short run
        self.ema_updates += 1
        decay = min(self.tcfg.ema**EMA_EVERY, (1 + self.ema_updates) / (10 + self.ema_updates))
        for k, v in self.params.items():
            e = self.ema[k]
            e *= decay
            e += (1 - decay) * v

    # ---------------------------------------------------------------- evaluation
    def tagger(self):
        """The weights evaluated and saved, as a `Tagger`."""
        return Tagger(self.weights, self.mcfg, self.vocab, self.scheme)

    # ---------------------------------------------------------------- the loop
    def run(self, resume=False):
        """Train from the prepared state (`prepare`), or with ``resume`` from the checkpoint in ``out``."""
        t = self.tcfg
        resumed = resume and self.restore()
        self.share_state()
        budget = None if t.time_budget is None else t.time_budget * 60
        p = self.progress
        p.line(
            f"{self.mcfg.task} tagger ({self.mcfg.cell} cell): {len(self.train.forms):,} sentences"
            f" ({self.train.n_tokens:,} words),"
            f" vocabulary {len(self.vocab.words):,}, {sum(v.size for v in self.params.values()):,} parameters"
            + (f", {self.comm.size} processes" if self.comm.size > 1 else "")
            + (f"; resumed after epoch {self.epoch}" if resumed else "")
            + (f" and {self.resume_at['batch']} batches of epoch {self.epoch + 1}" if self.resume_at else "")
        )
        stop_reason = None
        previous = {s: signal.signal(s, self.on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            # Overflow or NaN in a step is caught where it matters (a skipped step, a divergence error):
            # NumPy's own warnings would only repeat it, raw, to the user.
            with np.errstate(all="ignore"):
                while self.epoch < t.epochs:
                    stop_reason = self.run_epoch(budget)
                    stop = self.stop_after_epoch()
                    if stop is not None:  # came during the epoch's evaluation or saving
                        raise self.stop(stop)
                    if stop_reason:
                        break
                    if self.dev is not None and self.bad_epochs >= t.patience:
                        stop_reason = f"no better dev F1 for {t.patience} epochs"
                        break
                else:
                    stop_reason = f"{t.epochs} epochs"
        except KeyboardInterrupt:
            p.line("interrupted: the training state is saved; continue with --resume " + self.out)
            raise
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        p.line(f"stopped: {stop_reason}; best dev F1 {self.best_f1:.2f}; model in {self.out}")
        return self.log

    def on_signal(self, signum, frame):
        """SIGINT/SIGTERM: finish the batch, save, stop. A second one stops at once (with several
        processes, the whole job: `parallel.MPIComm.collective`)."""
        if self.stop_signal is not None:
            raise Stop(signum)  # every file on disk is still whole: they are all written atomically
        self.stop_signal = signum
        self.progress.line(f"{signal.Signals(signum).name}: saving the training state, then stopping")

    def stop(self, signum):
        """The `Stop` that ends the run after ``signum``: with several processes every one raises it
        alike (their own signal's number, or the one they were told of), and process 0 says it."""
        if self.comm.size == 1:
            return Stop(signum)
        return agreed(Stop(self.stop_signal or signum), quiet=not self.comm.root)

    def stop_before_batch(self):
        """The signal to stop on before the next batch, or None: this process's own; with several, one
        that any process had got by the last step (carried in its Allreduce: they all stop together)."""
        return self.stop_signal if self.comm.size == 1 else self.agreed_stop

    def stop_after_epoch(self):
        """The signal to stop on after an epoch's evaluation and saving, or None (agreed by all)."""
        if self.comm.size == 1:
            return self.stop_signal
        count, signums = self.comm.agree((self.stop_signal is not None, self.stop_signal or 0))
        return agreed_signal(count, signums)

    def seconds_spent(self, start):
        """Seconds of the run so far (the time budget's clock): this process's; with several, process
        0's as of the last step, so that they all stop at the same batch."""
        if self.comm.size == 1:
            return self.train_seconds + time.monotonic() - start
        return self.agreed_seconds

    def run_epoch(self, budget):
        """One epoch (or, resumed inside one, the rest of it), then `end_epoch`.

        Returns: why the run stops (the time budget is spent), or None to go on.
        """
        t = self.tcfg
        self.opt.lr = t.lr / (1 + t.lr_decay * self.epoch)
        self.agreed_stop = None  # (an epoch starts only when no process is stopping)
        lengths = [len(f) for f in self.train.forms]
        at, self.resume_at = self.resume_at, None
        if at is None:  # a fresh epoch
            at = {"batch": 0, "rng_epoch": self.rng.bit_generator.state, "seconds": 0.0, "grad_norms": []}
            at["totals"] = dict.fromkeys(EPOCH_TOTALS, 0)
            batches = batch_indices(lengths, t.batch_size, self.rng)
        else:  # resumed inside the epoch: the same batch order, drawn from the epoch's first RNG state
            rng = np.random.default_rng()
            rng.bit_generator.state = at["rng_epoch"]
            batches = batch_indices(lengths, t.batch_size, rng)
        start = self.epoch_start = time.monotonic() - at["seconds"]
        totals = {k: at["totals"][k] for k in EPOCH_TOTALS}  # the running totals, updated by `update`
        grad_norms = list(at["grad_norms"])
        stop_reason = None
        for i in range(at["batch"], len(batches)):
            faults.point(f"batch:{self.epoch + 1}:{i}")  # test-only (BPTT_FAULT); a no-op otherwise
            stop = self.stop_before_batch()
            if stop is not None:  # SIGINT/SIGTERM: save the state before batch i, then stop
                self.save_checkpoint(
                    {
                        **at,
                        "batch": i,
                        "seconds": time.monotonic() - start,
                        "totals": dict(totals),
                        "grad_norms": grad_norms,
                    }
                )
                raise self.stop(stop)
            batch = make_batch(self.train.forms, self.train.labels, batches[i])
            if not self.update(batch, totals, grad_norms):
                continue
            elapsed = time.monotonic() - start
            if i % 10 == 0:
                left = (len(batches) - i - 1) * elapsed / (i + 1)
                self.progress.update(
                    f"epoch {self.epoch + 1} {100 * (i + 1) // len(batches):3d}%"
                    f"  loss {totals['total_loss'] / max(1, totals['n_sentences']):.3f}"
                    f"  {totals['tokens'] / max(elapsed, 1e-9):,.0f} words/s  epoch left {fmt_time(left)}"
                    f"  best dev F1 {max(self.best_f1, 0):.2f}"
                )
            if budget is not None and self.seconds_spent(start) >= budget:
                stop_reason = f"time budget of {t.time_budget:g} minutes"
                break
        self.end_epoch(totals, grad_norms, start, budget)
        return stop_reason

    def train_step(self, params, batch):
        """One batch's loss (the mean sentence loss) and its BPTT gradients; nothing is updated.

        The seam where data-parallel training plugs in: with several processes, each computes its
        share of ``batch`` (`parallel.Comm.share`), its loss divided by the whole batch's size and its
        random numbers drawn for the whole batch (`parallel.ShareDraws`); `update` sums the shares.
        Returns: (L, grads) with grads keyed like params (embedding tables as sparse row gradients).
        """
        t = self.tcfg
        truncate = t.bptt_steps or None
        if self.comm.size == 1:
            L, grads, _ = tagger_loss(params, self.mcfg, batch, self.tables, rng=self.rng, truncate=truncate)
            return L, grads
        lo, hi, mean_over = self.comm.share(len(batch.index))
        rng = ShareDraws(self.rng, *batch.forms.shape, lo, hi)
        part = batch_part(batch, lo, hi)
        L, grads, _ = tagger_loss(
            params, self.mcfg, part, self.tables, rng=rng, truncate=truncate, mean_over=mean_over
        )
        return L, grads

    def sum_shares(self, L, grads):
        """With several processes: the batch's loss and gradients, the sum of the shares' (one
        Allreduce), which also carries what they must all act on alike (`stop_before_batch`,
        `seconds_spent`)."""
        if self.comm.size == 1:
            return L, grads
        seconds = self.train_seconds + time.monotonic() - self.epoch_start
        L, grads, self.agreed_stop, self.agreed_seconds = self.comm.sum_agreeing(
            L, grads, self.stop_signal, seconds
        )
        if self.agreed_stop is not None and not self.stop_signal:
            name = signal.Signals(self.agreed_stop).name
            self.progress.line(f"{name} to another process: saving the training state, then stopping")
        return L, grads

    def update(self, batch, totals, grad_norms):
        """One update from one batch (`train_step`, clipping, the optimizer, the average), counted in
        ``totals`` and ``grad_norms``; a non-finite loss or gradient skips it, and too many in a row end
        the run. Returns: whether the weights were updated."""
        t = self.tcfg
        L, grads = self.sum_shares(*self.train_step(self.params, batch))
        norm = clip_grad_norm(grads, t.clip)
        if not (math.isfinite(L) and math.isfinite(norm)):
            totals["n_bad"] += 1  # a non-finite step never reaches the weights
            totals["n_skipped"] += 1
            self.progress.line(
                f"warning: skipped an update with a non-finite loss or gradient ({totals['n_bad']} in a row)",
                always=True,
            )
            if totals["n_bad"] >= t.max_bad_steps:
                raise self.diverged(f"{totals['n_bad']} updates in a row had a non-finite loss or gradient")
            return False
        totals["n_bad"] = 0
        totals["n_clipped"] += bool(t.clip) and norm > t.clip
        grad_norms.append(norm)
        self.opt.step(self.params, grads)
        totals["n_steps"] += 1
        if self.ema is not None and totals["n_steps"] % EMA_EVERY == 0:
            self.update_ema()
        n = len(batch.index)
        totals["total_loss"] += L * n
        totals["n_sentences"] += n
        totals["tokens"] += int(batch.lengths.sum())
        return True

    def end_epoch(self, totals, grad_norms, start, budget):
        """After the last batch: refuse a diverged epoch, then measure (gradient flow, dev scores), log,
        keep the model if it is the best so far, and save the checkpoint."""
        m = self.mcfg
        total_loss, tokens, n_steps = totals["total_loss"], totals["tokens"], totals["n_steps"]
        # a loss per word far above a uniform guess's (log 2 for name-or-not, log K for K tags, their
        # sum with an auxiliary output) means the
        # weights have blown up, even when every step was finite: stop before this epoch is saved
        uniform = (
            math.log(max(2, m.n_y)) if m.task == "ner" else math.log(2) + math.log(max(1, len(m.aux_tags)))
        )
        if tokens and not total_loss / tokens <= DIVERGED * uniform:
            raise self.diverged(
                f"the loss of epoch {self.epoch + 1} is {total_loss / tokens:.3g} per word,"
                f" over {DIVERGED} times a uniform guess's ({uniform:.3g})"
            )
        seconds = time.monotonic() - start
        self.epoch += 1
        faults.point(f"eval:{self.epoch}")
        record = {
            "epoch": self.epoch,
            "train_loss": total_loss / max(1, totals["n_sentences"]),
            "seconds": seconds,
            "tokens_per_s": tokens / max(seconds, 1e-9),
            "lr": self.opt.lr,
            "grad_norm": float(np.mean(grad_norms)) if grad_norms else float("nan"),
            "clip_fraction": totals["n_clipped"] / max(1, n_steps),
            "skipped_steps": totals["n_skipped"],
        }
        self.comm.check_same(self.params, f"after epoch {self.epoch}")
        tagger = self.tagger()
        if self.dev is not None:  # (shared out among the processes: first, then process 0 goes on alone)
            dev, pred = dev_scores(tagger, self.dev, self.comm)
        if self.comm.root:  # a measurement for the log, which only process 0 writes
            record.update(gradient_flow(tagger, self.probes, self.tables))  # message_norms, reach
        improved = False
        if self.dev is not None:
            record["dev"] = dev
            f1 = record["dev"]["f1"]
            improved = f1 > self.best_f1
            if improved:
                self.best_f1, self.bad_epochs = f1, 0
            else:
                self.bad_epochs += 1
        else:
            improved = True
        self.log.append(record)
        if improved:
            self.save_model()
            if self.dev is not None:
                self.save_sample(pred)
        # the budget counts wall time: training, evaluation and saving alike
        self.train_seconds += time.monotonic() - start
        record["elapsed"] = self.train_seconds
        self.write_log()
        self.save_checkpoint()
        dev_text = f"  dev F1 {record['dev']['f1']:.2f}" if "dev" in record else ""
        budget_text = ""
        if budget is not None:
            budget_text = f"  budget left {fmt_time(budget - self.train_seconds)}"
        self.progress.line(
            f"epoch {self.epoch:3d}  loss {record['train_loss']:.4f}  {record['tokens_per_s']:,.0f} words/s"
            f"{dev_text}{' *' if improved and dev_text else ''}"
            f"  ({fmt_time(self.train_seconds)}){budget_text}"
        )

    def diverged(self, what):
        """The error that ends a diverging run: what happened and what is kept (every process has the
        same loss and gradients, so all of them raise it alike)."""
        kept = (
            f"the last good model is in {self.out}"
            if self.epoch
            else f"no epoch finished: no model in {self.out}"
        )
        error = BpttError(f"training diverged: {what}; {kept} (try a smaller --lr)")
        return error if self.comm.size == 1 else agreed(error, quiet=not self.comm.root)

    def save_sample(self, pred, n=8):
        if not self.comm.root:  # only process 0 writes
            return
        sample = [
            {"words": s.words, "predicted": p, "gold": g}
            for s, p, g in list(zip(self.dev.sentences, pred, self.dev.gold))[:n]
        ]
        atomic_write(os.path.join(self.out, "sample.json"), json.dumps(sample).encode())

    def write_log(self):
        if not self.comm.root:  # only process 0 writes
            return
        text = "".join(json.dumps(r) + "\n" for r in self.log)
        atomic_write(os.path.join(self.out, "log.jsonl"), text.encode())
        try:
            from ..pictures.plots import plot_f1, plot_loss
        except ImportError:  # plotting is optional for training
            return
        plot_loss(self.log, os.path.join(self.out, "loss.png"))
        if any("dev" in r for r in self.log):
            plot_f1(self.log, os.path.join(self.out, "f1.png"))


def train(tcfg, mcfg, out, resume=False, progress=True, overwrite=False):
    """Train (or, with ``resume``, continue) a tagger into directory ``out``.

    Nothing is written before every input is read and checked. A new run refuses an ``out`` holding
    another run or a model (``overwrite`` replaces one), records absolute paths and checksums of its
    input files in run.json, and only then starts. ``resume`` takes every setting from run.json and
    refuses input files that changed since the run started.

    Started by mpiexec as one of several processes (`parallel.world`): process 0 checks and writes
    ``out``, every process reads the input files itself (they must be the same: their SHA-256 are
    compared), and they train one model together.
    Returns: the per-epoch log records.
    """
    comm = world()
    with comm.collective():
        return _train(comm, tcfg, mcfg, os.fspath(out), resume, progress, overwrite)


def _train(comm, tcfg, mcfg, out, resume, progress, overwrite):
    if resume:

        def settings():  # (process 0)
            tcfg, mcfg, data = read_run_file(out)
            check_regular_files(tcfg)
            check_checkpoint_dirs(out)  # saving replaces the checkpoint as a whole: nothing else may be in it
            check_data(tcfg, data)
            return tcfg, mcfg, data, False
    else:

        def settings():  # (process 0)
            # absolute paths: --resume from another working directory must read the same files
            paths = {n: os.path.abspath(getattr(tcfg, n)) for n in DATA_FILES if getattr(tcfg, n)}
            t = replace(tcfg, **paths)
            check_sizes(mcfg)
            only_run_file = check_out_dir(out, overwrite)
            check_regular_files(t)
            return t, mcfg, None, only_run_file

    tcfg, mcfg, data, only_run_file = comm.on_root(settings)
    trainer = Trainer(tcfg, mcfg, out, progress=progress, comm=comm)

    def read():
        if not comm.root:
            check_regular_files(tcfg)
        trainer.read_data()
        trainer.check_memory()

    if comm.root:
        comm.every(read)
    else:
        with warnings.catch_warnings():  # what the files hold is process 0's to say, once
            warnings.simplefilter("ignore")
            comm.every(read)
    if not resume:
        data = comm.on_root(lambda: data_checksums(tcfg))
    if comm.size > 1:  # every process must have read the files process 0 did
        comm.every(lambda: comm.root or check_same_files(tcfg, data, comm.rank))
    if not resume:

        def start():  # (process 0)
            doc = {"train": asdict(tcfg), "model": mcfg.to_json(), "data": data}
            if only_run_file and not same_run(out, doc):
                raise BpttError(
                    f"{out}: holds the run.json of another run, which never finished an epoch;"
                    " --overwrite replaces it"
                )
            start_run_dir(out, doc, overwrite)

        comm.on_root(start)
    trainer.init_state()
    return trainer.run(resume=resume)
