"""Training one long-range configuration: batches from the task's stream, BPTT, the optimizer, evaluations.

One configuration (task, T, cell, initialisation) trains in its own directory, DIR/runs/NAME:

    checkpoint/          the training state at the last evaluation (or, after SIGINT/SIGTERM, before the
                         next batch): weights, optimizer moments, the training stream's RNG state, counters
    log.jsonl            one record per evaluation: sequences seen, training loss, validation scores
    weights.safetensors  the final weights, the configuration in the header's metadata
    result.json          written last: the configuration's record, its learning curve and its probes

Every file is written atomically. A configuration stops when its budget is spent — sequences
(deterministic: a resumed run ends bit-identical to an uninterrupted one) and/or minutes of wall
time (training and evaluation together) — once its validation score has met the task's criterion
at SOLVED_IN_A_ROW evaluations in a row (unless ``keep_going``), or when it diverges (``max_bad_steps``
non-finite updates in a row). The final weights are then scored on fresh test sequences, never seen
in training or validation.

Every configuration of a seed draws the same parameters' stream, the same training batches and the
same validation and test sequences (``bptt.tasks.task_rng``): cells differ only by what they are.
The probes — messages ‖∂L/∂a⟨t⟩‖ and reach ‖∂s⟨T⟩/∂s⟨t⟩‖ on a few validation sequences — are taken
at the start and at the end, in float64: with one loss at the end, they show the vanishing gradient.

Started by ``mpiexec -n N``, the N processes train each configuration together as the tagger's do
(`bptt.training.parallel`): every process draws the whole batch, computes its share of the sequences,
the gradients are summed by one Allreduce, every process applies the same update; the validation and
test sequences are scored in chunks shared out among them; only process 0 writes and prints.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time

import numpy as np

from .. import faults
from ..cells import get_cell
from ..diagnostics.ledger import jacobian_reach, reach_by_distance
from ..errors import BpttError
from ..heads.classification import output_logits
from ..heads.placement import scored_steps
from ..io.atomic import atomic_write
from ..io.modelfiles import load_checkpoint
from ..io.safetensors_io import save_safetensors
from ..models.lecture import init_params, sequence_loss
from ..tasks.longrange import get_task, task_rng
from ..training.budget import BudgetedTrainer
from ..training.checkpoint import check_rng_state, restore_arrays, save_training_state
from ..training.optim import clip_grad_norm, make_optimizer
from ..training.parallel import Comm, agreed_signal
from ..training.progress import Progress, fmt_time
from .config import CELL_SPECS

EVAL_FLOATS = 2**25  # floats of the forward caches while scoring: sequences are scored in chunks of this
MAX_REACH_STEPS = 2000  # the reach of longer sequences is not measured (a Jacobian product per step)
# evaluations in a row that must meet the criterion before a configuration stops as solved: the first
# one alone stopped a GRU at a validation MSE of 0.0094 whose test MSE was 0.01003, just over 0.01
SOLVED_IN_A_ROW = 2
LINE_EVERY = 60  # seconds between the progress lines of evaluations (a log file gets one a minute)
INTERVAL = ("loss_sum", "sequences", "grad_norm_sum", "updates", "clipped", "skipped")


def eval_chunk(length, hidden):
    """Sequences scored at once: the caches of an LSTM (the largest) over ``length`` steps fit EVAL_FLOATS.

    The same for every cell, so that every cell is scored on the same sequences.
    """
    return int(min(256, max(1, EVAL_FLOATS // (length * hidden * 8))))


class LongRangeTrainer(BudgetedTrainer):
    """Trains (or resumes) one configuration into ``out``; ``run`` returns its result.

    Its loop is its own (several processes agree on when to stop); `BudgetedTrainer` gives it
    ``on_signal``.
    """

    def __init__(self, cfg, conf, out, progress=None, comm=None):
        self.cfg, self.conf, self.out = cfg, conf, os.fspath(out)
        self.comm = comm or Comm()  # the processes training together (`bptt.training.parallel`)
        # with several processes, what they all act on, from the last step's Allreduce: a stop signal
        # any of them got, and process 0's clock
        self.agreed_stop, self.agreed_seconds = None, 0.0
        self.task = get_task(conf.task)
        cell, self.activation, _ = CELL_SPECS[conf.cell]
        self.cell = get_cell(cell, self.activation)
        self.length = self.task.length(conf.T)  # T': the copy task's sequences are T + 20 long
        self.dtype = np.dtype(cfg.dtype).type
        self.progress = progress or Progress(enabled=False)
        self.stop_signal = None  # set by SIGINT/SIGTERM: save and stop before the next batch
        self.last_line = -math.inf  # when show() last wrote a line of its own (time.monotonic)
        self.init_state()

    # ---------------------------------------------------------------- state
    def init_state(self):
        """The initial weights, optimizer, training stream and counters (`restore` may load a checkpoint)."""
        c, t = self.cfg, self.task
        T_max = self.length if self.conf.init == "chrono" else None  # chrono: the longest dependency
        self.params = init_params(
            t.n_x, c.hidden, t.n_y, seed=c.seed, dtype=self.dtype, cell=self.cell.name, init=self.conf.init,
            T_max=T_max,
        )  # fmt: skip
        self.opt = make_optimizer(c.optimizer, c.lr)
        self.rng = task_rng(c.seed, "train")
        self.steps = 0  # batches drawn (updates and skipped ones)
        self.updates = 0  # updates of the weights
        self.sequences = 0  # training sequences seen
        self.seconds = 0.0  # wall time spent before this process's start (a resumed run's)
        self.bad = 0  # non-finite updates in a row
        self.log = []  # one record per evaluation: the learning curve
        self.interval = dict.fromkeys(INTERVAL, 0)  # since the last evaluation
        self.solved_at = None  # training sequences at the first evaluation that met the criterion
        self.probe_start = None  # messages and reach of the initial weights

    def state(self, seconds):
        return {
            "steps": self.steps,
            "updates": self.updates,
            "sequences": self.sequences,
            "seconds": seconds,
            "bad": self.bad,
            "rng": self.rng.bit_generator.state,
            "log": self.log,
            "interval": self.interval,
            "solved_at": self.solved_at,
            "probe_start": self.probe_start,
        }

    def save_checkpoint(self, seconds):
        if self.comm.root:  # only process 0 writes
            save_training_state(self.out, self.params, None, self.opt, self.state(seconds))

    def restore(self):
        """Load the checkpoint in ``out``, every field and array checked (with several processes,
        process 0 loads it and `share_state` hands it on). Returns: False if there is none."""

        def load():
            found = load_checkpoint(self.out)
            if found is None:
                return None
            arrays, state = found
            where = os.path.join(self.out, "checkpoint")
            check_state(state, os.path.join(where, "state.json"), self.length, self.task.metric)
            restore_arrays(where, arrays, self.params, None, self.opt)
            return state

        state = self.comm.on_root(load)
        if state is None:
            return False
        self.steps, self.updates, self.sequences = state["steps"], state["updates"], state["sequences"]
        self.seconds = state["seconds"]
        self.bad, self.log, self.solved_at = state["bad"], state["log"], state["solved_at"]
        self.interval, self.probe_start = state["interval"], state["probe_start"]
        self.rng.bit_generator.state = state["rng"]
        self.agreed_seconds = self.seconds
        return True

    def share_state(self):
        """Every process starts from process 0's weights and optimizer state (a broadcast)."""
        if self.comm.size == 1:
            return
        mine = (self.params, self.opt.state_dict()) if self.comm.root else None
        self.params, opt_state = self.comm.broadcast(mine)
        if not self.comm.root:
            self.opt.load_state_dict(opt_state)

    # ---------------------------------------------------------------- one batch
    def train_step(self, params, batch):
        """One batch's loss (the mean sequence loss) and its BPTT gradients; nothing is updated.

        The seam where data-parallel training plugs in: each process computes its share, the
        gradients are summed, and every process applies the same update.
        With several processes, each computes the share `parallel.Comm.share` gives it, its loss and
        gradients divided by the whole batch's size; `update` sums the shares.
        Returns: (L, grads) with grads keyed like params.
        """
        kw = dict(output=self.task.output, activation=self.activation, cell=self.cell.name)
        if self.comm.size == 1:
            return sequence_loss(params, batch.X, batch.Y, reduction="mean", loss_at=batch.loss_at, **kw)
        lo, hi, mean_over = self.comm.share(batch.X.shape[1])
        steps = isinstance(batch.loss_at, np.ndarray)  # (T', B) scored steps and targets, or one a sequence
        X = np.ascontiguousarray(batch.X[:, lo:hi])  # (T', B', n_x)
        Y = batch.Y[:, lo:hi] if steps else batch.Y[lo:hi]
        loss_at = batch.loss_at[:, lo:hi] if steps else batch.loss_at
        L, grads = sequence_loss(params, X, Y, reduction="sum", loss_at=loss_at, **kw)
        for g in grads.values():
            g /= mean_over  # the mean over the whole batch
        return L / mean_over, grads

    def update(self, batch):
        """One update from one batch (`train_step`, clipping, the optimizer), counted in ``interval``; a
        non-finite loss or gradient skips it. Returns: whether the weights were updated."""
        B = batch.X.shape[1]
        L, grads = self.sum_shares(*self.train_step(self.params, batch))
        norm = clip_grad_norm(grads, self.cfg.clip)
        self.steps += 1
        self.sequences += B
        if not (math.isfinite(L) and math.isfinite(norm)):
            self.bad += 1  # a non-finite step never reaches the weights
            self.interval["skipped"] += 1
            return False
        self.bad = 0
        self.opt.step(self.params, grads)
        self.updates += 1
        iv = self.interval
        iv["loss_sum"] += L * B
        iv["sequences"] += B
        iv["grad_norm_sum"] += norm
        iv["updates"] += 1
        iv["clipped"] += bool(self.cfg.clip) and norm > self.cfg.clip
        return True

    # ---------------------------------------------------------------- measuring
    def scores(self, which, n):
        """The task's scores of the current weights on ``n`` fresh sequences of the stream ``which``.

        With several processes each scores every size-th chunk (every process draws them all, so the
        stream moves on alike), and the outputs are gathered: the same scores everywhere.
        """
        rng, chunk = task_rng(self.cfg.seed, which), eval_chunk(self.length, self.cfg.hidden)
        rank, size = self.comm.rank, self.comm.size
        Z, Y = [], []
        for k, start in enumerate(range(0, n, chunk)):
            batch = self.task.draw(rng, self.conf.T, min(chunk, n - start), self.dtype)
            if k % size != rank:
                continue
            z, y = self.outputs(batch)
            Z.append(z)
            Y.append(y)
        if size > 1:
            parts = self.comm.allgather((Z, Y))  # chunk k is process k % size's (k // size)-th
            n_chunks = len(range(0, n, chunk))
            Z = [parts[k % size][0][k // size] for k in range(n_chunks)]
            Y = [parts[k % size][1][k // size] for k in range(n_chunks)]
        scores = self.task.score(np.concatenate(Z), np.concatenate(Y), self.conf.T, n)
        return dict(zip(scores, finite(scores.values())))  # JSON has no NaN: a diverged model scores null

    def outputs(self, batch):
        """The head's logits and the targets at the scored steps of ``batch``: (N, n_y), (N,)."""
        X = batch.X
        T, B, _ = X.shape
        state0 = self.cell.zero_state(B, self.cfg.hidden, self.dtype)
        A, _ = self.cell.fast_forward(X, state0, self.params, None)
        steps = scored_steps(batch.loss_at, None, T, B, np)
        Z = output_logits(A[steps.t, steps.b][:, None], self.params)[:, 0]  # (N, n_y)
        return Z, batch.Y[steps.b] if steps.last else batch.Y[steps.t, steps.b]

    def probe(self):
        """The messages ‖∂L/∂a⟨t⟩‖ by step and the reach ‖∂s⟨T'⟩/∂s⟨T'−d⟩‖ by distance d, in float64,
        averaged over the first ``probes`` validation sequences (no reach beyond MAX_REACH_STEPS).
        None on processes other than 0: what they write, it alone measures."""
        if not self.comm.root:
            return None
        batch = self.task.draw(task_rng(self.cfg.seed, "valid"), self.conf.T, self.cfg.probes, np.float64)
        p = {k: v.astype(np.float64) for k, v in self.params.items()}
        kw = dict(output=self.task.output, activation=self.activation, cell=self.cell.name)
        _, _, M = sequence_loss(p, batch.X, batch.Y, **kw, loss_at=batch.loss_at, return_messages=True)
        M_a = self.cell.fields(M)[0]  # (T', probes, n_a): ∂L/∂a⟨t⟩
        probe = {"message_norms": finite(np.linalg.norm(M_a, axis=2).mean(axis=1)), "reach": None}
        if self.length <= MAX_REACH_STEPS:
            state0 = self.cell.zero_state(self.cfg.probes, self.cfg.hidden, np.float64)
            _, cache = self.cell.fast_forward(batch.X, state0, p, None)
            probe["reach"] = finite(reach_by_distance(jacobian_reach(self.cell, cache)))
        return probe

    def evaluate(self, seconds):
        """Score the validation sequences, log the interval since the last evaluation, note when solved."""
        iv, c = self.interval, self.cfg
        scores = self.scores("valid", c.valid_size)
        record = {
            "sequences": self.sequences,
            "steps": self.steps,
            "seconds": seconds,
            "train_loss": iv["loss_sum"] / iv["sequences"] if iv["sequences"] else None,
            "grad_norm": iv["grad_norm_sum"] / iv["updates"] if iv["updates"] else None,
            "clip_fraction": iv["clipped"] / iv["updates"] if iv["updates"] else None,
            "skipped": iv["skipped"],
            "valid": scores,
        }
        self.log.append(record)
        self.interval = dict.fromkeys(INTERVAL, 0)
        if self.solved_at is None and self.task.solved(scores):
            self.solved_at = self.sequences
        self.comm.check_same(self.params, f"at {self.sequences:,} sequences")
        if self.comm.root:  # only process 0 writes
            text = "".join(json.dumps(r) + "\n" for r in self.log)
            atomic_write(os.path.join(self.out, "log.jsonl"), text.encode())
        return record

    # ---------------------------------------------------------------- the loop
    def stop_reason(self, seconds):
        """Why this configuration stops now, or None to go on."""
        c = self.cfg
        if self.bad >= c.max_bad_steps:
            return "diverged"
        recent = [self.task.solved(r["valid"]) for r in self.log[-SOLVED_IN_A_ROW:]]
        if not c.keep_going and len(recent) == SOLVED_IN_A_ROW and all(recent):
            return "solved"
        if c.sequences is not None and self.sequences >= c.sequences:
            return "sequences"
        if seconds >= c.budget_seconds:
            return "minutes"
        return None

    def run(self, resume=False):
        """Train from the initial state, or with ``resume`` from the checkpoint in ``out`` if there is one.

        Returns: the result (see `result`), also written to result.json.
        """
        if self.comm.root:
            os.makedirs(self.out, exist_ok=True)
        resumed = resume and self.restore()
        self.share_state()
        start = self.start = time.monotonic() - self.seconds
        name, c = self.conf.name, self.cfg
        self.progress.line(
            f"{name}: {self.task.title} at T = {self.conf.T}, {self.cell.title}"
            f" ({self.conf.init}), {sum(v.size for v in self.params.values()):,} parameters"
            + (f"; resumed after {self.sequences:,} sequences" if resumed else "")
        )
        if self.probe_start is None:
            self.probe_start = self.probe()
        previous = {s: signal.signal(s, self.on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            # a non-finite step is caught where it matters (skipped, counted): NumPy's warnings repeat it
            with np.errstate(all="ignore"):
                if not self.log:
                    self.evaluate(time.monotonic() - start)  # the curve starts at the untrained weights
                    self.save_checkpoint(time.monotonic() - start)
                while (reason := self.stop_reason(self.clock(start))) is None:
                    faults.point(f"step:{name}:{self.steps}")  # test-only (BPTT_FAULT); a no-op otherwise
                    stop = self.stop_signal if self.comm.size == 1 else self.agreed_stop
                    if stop is not None:  # SIGINT/SIGTERM: save the state before this batch
                        self.save_checkpoint(time.monotonic() - start)
                        raise self.stop(stop)
                    self.update(self.task.draw(self.rng, self.conf.T, c.batch_size, self.dtype))
                    if self.sequences >= len(self.log) * c.eval_every:
                        self.show(self.evaluate(time.monotonic() - start), start)
                        self.save_checkpoint(time.monotonic() - start)
                    else:
                        self.show(None, start)
                if self.log[-1]["sequences"] != self.sequences:  # the curve ends where training did
                    self.show(self.evaluate(time.monotonic() - start), start)
                result = self.finish(reason, time.monotonic() - start)
            stop = self.stop_signal
            if self.comm.size > 1:  # agreed: any process's
                stop = agreed_signal(*self.comm.agree((stop is not None, stop or 0)))
            if stop is not None:  # came while scoring or saving: the next configuration waits
                raise self.stop(stop)
            return result
        except KeyboardInterrupt:
            self.progress.line("interrupted: the training state is saved; continue with --resume")
            raise
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def show(self, record, start):
        """The progress line; after an evaluation, a line of its own (at most one a LINE_EVERY seconds)."""
        seconds = time.monotonic() - start
        metric, t = self.task.metric, self.task
        last, baseline = self.log[-1]["valid"][metric], t.baseline(self.conf.T)
        last = "—" if last is None else f"{last:.4g}"
        budget = []
        if self.cfg.sequences is not None:
            budget.append(f"{100 * self.sequences / self.cfg.sequences:3.0f}%")
        if self.cfg.minutes is not None:
            budget.append(f"{fmt_time(self.cfg.budget_seconds - seconds)} left")
        text = (
            f"  {self.sequences:>10,} sequences  valid {metric} {last} (baseline {baseline:.4g})"
            f"  {self.sequences / max(seconds, 1e-9):,.0f} seq/s  {'  '.join(budget)}"
        )
        now = time.monotonic()
        if record is None or (now - self.last_line < LINE_EVERY and self.solved_at != self.sequences):
            self.progress.update(text)
        else:
            loss = record["train_loss"]
            self.progress.line(
                text + (f"  train loss {loss:.4g}" if loss is not None else "") + f"  ({fmt_time(seconds)})"
            )
            self.last_line = now

    def finish(self, reason, seconds):
        """Score the test sequences, take the final probes, save the weights and the result."""
        c, t, conf = self.cfg, self.task, self.conf
        scores = self.scores("test", c.test_size)
        probe_end = self.probe()
        spec = {"task": conf.task, "T": conf.T, "cell": conf.cell, "init": conf.init}
        meta = {**{k: str(v) for k, v in spec.items()}, "activation": self.activation, "output": t.output}
        if self.comm.root:  # only process 0 writes
            save_safetensors(os.path.join(self.out, "weights.safetensors"), self.params, meta, digest=True)
        record = {
            **spec,
            "activation": self.activation,
            "metric": t.metric,
            "value": scores[t.metric],
            "baseline": t.baseline(conf.T),
            "solved": t.solved(scores),
            "solved_by": t.solved_by,
            "sequences": self.sequences,
            "seconds": seconds,
            "updates": self.updates,
            "sequences_to_solve": self.solved_at,
            "stopped": reason,
            "scores": scores,
            "test_size": c.test_size,
            "hidden": c.hidden,
            "batch_size": c.batch_size,
            "optimizer": c.optimizer,
            "lr": c.lr,
            "clip": c.clip,
            "seed": c.seed,
        }
        result = {
            "record": record,
            "curve": self.log,
            "probe_start": self.probe_start,
            "probe_end": probe_end,
        }
        if self.comm.root:
            atomic_write(os.path.join(self.out, "result.json"), json.dumps(result).encode())
        verdict = "solved" if record["solved"] else "not solved"
        self.progress.line(
            f"{conf.name}: test {t.metric} {table_row(record)[5]} (baseline {record['baseline']:.4g}),"
            f" {verdict};"
            f" {self.sequences:,} sequences in {fmt_time(seconds)} (stopped: {reason})"
        )
        return result


TABLE_HEAD = ("task", "T", "cell", "init", "metric", "test value", "baseline", "solved", "sequences",
              "to solve", "minutes", "stopped")  # fmt: skip


def table_row(r):
    """A record's cells in the table, as strings (TABLE_HEAD's columns)."""
    number = lambda v, f: "—" if v is None else format(v, f)  # noqa: E731
    return [
        r["task"], str(r["T"]), r["cell"], r["init"], r["metric"], number(r["value"], ".4g"),
        number(r["baseline"], ".4g"), "yes" if r["solved"] else "no", number(r["sequences"], ","),
        number(r["sequences_to_solve"], ","), number(r["seconds"] / 60, ".1f"), r["stopped"],
    ]  # fmt: skip


def finite(values):
    """Floats as JSON keeps them: a non-finite one (a diverged model's) becomes None."""
    return [float(v) if math.isfinite(v) else None for v in values]


def check_state(state, where, length, metric):
    """Check every field of a checkpoint's state (`LongRangeTrainer.state`) before any is used.

    state.json checks itself (self_sha256), but anyone can re-sign it: each field's type and range is
    checked here. Errors are one line naming the file and the field.
    """

    def fail(field, what):
        raise BpttError(f"{where}: {field}: expected {what}")

    def integer(v):
        return type(v) is int and 0 <= v < 2**62

    def number(v):
        return type(v) in (int, float) and math.isfinite(v) and v >= 0

    def numbers(v, n=None):
        return isinstance(v, list) and (n is None or len(v) == n) and all(x is None or number(x) for x in v)

    fields = (
        "steps",
        "updates",
        "sequences",
        "seconds",
        "bad",
        "rng",
        "log",
        "interval",
        "solved_at",
        "probe_start",
    )
    if not isinstance(state, dict) or sorted(state) != sorted(fields):
        fail("state", f"an object of {', '.join(fields)}")
    for k in ("steps", "updates", "sequences", "bad"):
        if not integer(state[k]):
            fail(k, "an integer >= 0")
    if not number(state["seconds"]):
        fail("seconds", "a finite number >= 0")
    if state["solved_at"] is not None and not integer(state["solved_at"]):
        fail("solved_at", "null or an integer >= 0")
    check_rng_state(state["rng"], where, "rng")
    iv = state["interval"]
    if not isinstance(iv, dict) or sorted(iv) != sorted(INTERVAL) or not all(number(iv[k]) for k in INTERVAL):
        fail("interval", f"an object of {', '.join(INTERVAL)}, numbers >= 0")
    log = state["log"]
    good = lambda r: (  # noqa: E731  an evaluation record, as far as a resumed run reads it
        isinstance(r, dict)
        and integer(r.get("sequences"))
        and isinstance(r.get("valid"), dict)
        and numbers([r["valid"].get(metric)])
    )
    if not isinstance(log, list) or not log or not all(good(r) for r in log):
        fail("log", f"a non-empty list of evaluation records (sequences, valid {metric})")
    probe = state["probe_start"]
    if not (
        isinstance(probe, dict)
        and sorted(probe) == ["message_norms", "reach"]
        and numbers(probe["message_norms"], length)
        and (probe["reach"] is None or numbers(probe["reach"], length))
    ):
        fail("probe_start", f"an object of message_norms and reach, {length} numbers each")
