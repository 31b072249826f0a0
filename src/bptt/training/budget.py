"""The loop of a trainer with a budget: updates until the minutes or the updates are spent, an
evaluation and a checkpoint every ``eval_every`` updates, and a clean stop on SIGINT/SIGTERM.

`BudgetedTrainer` is shared by ``bptt lm train`` and ``bptt dates train``. A subclass sets
``cfg`` (with ``minutes``, ``updates``, ``eval_every``, ``max_bad_steps`` and ``budget_seconds``),
``progress``, the counters ``steps`` (batches drawn), ``updates``, ``bad`` (non-finite updates in
a row) and ``log`` (evaluation records, each with "updates"), and provides ``update()``,
``evaluate(seconds) -> record``, ``save(seconds)``, ``finish(reason, seconds) -> result`` and
``status(seconds) -> str`` (the progress line). ``FAULT`` names its fault points (`bptt.faults`):
"FAULT:STEP" before batch STEP.

With several processes (``comm``, `bptt.training.parallel`) the subclass sums its shares through
``sum_shares``, whose Allreduce also carries any process's stop signal and process 0's clock: every
process stops at the same update, for the same reason.
"""

from __future__ import annotations

import math
import signal
import time

import numpy as np

from .. import faults
from .parallel import Comm, agreed
from .progress import fmt_time
from .trainer import Stop

LINE_EVERY = 60  # seconds between progress lines of their own (a log file gets one a minute)


class BudgetedTrainer:
    FAULT = "step"
    comm = Comm()  # the processes training together (`bptt.training.parallel`); a subclass may set its own
    stop_signal = None  # set by SIGINT/SIGTERM: save and stop before the next update
    last_line = -math.inf  # when `show` last wrote a line of its own (time.monotonic)
    # with several processes, what they all act on, from the last update's Allreduce: a stop signal any
    # of them got, and process 0's clock
    agreed_stop, agreed_seconds, start = None, 0.0, 0.0

    def sum_shares(self, L, grads):
        """With several processes: the batch's loss and gradients, the sum of the shares' (one
        Allreduce), which also carries a stop signal any process got and process 0's clock."""
        if self.comm.size == 1:
            return L, grads
        L, grads, self.agreed_stop, self.agreed_seconds = self.comm.sum_agreeing(
            L, grads, self.stop_signal, time.monotonic() - self.start
        )
        return L, grads

    def clock(self, start):
        """Seconds of training so far: this process's; with several, process 0's as of the last update
        (so that all stop at the same one)."""
        return time.monotonic() - start if self.comm.size == 1 else self.agreed_seconds

    def stop(self, signum):
        """The `Stop` to raise; with several processes raised alike by all, said by process 0."""
        if self.comm.size == 1:
            return Stop(signum)
        return agreed(Stop(self.stop_signal or signum), quiet=not self.comm.root)

    def stop_reason(self, seconds):
        """Why training stops now, or None to go on."""
        c = self.cfg
        if self.bad >= c.max_bad_steps:
            return "diverged"
        if c.updates is not None and self.steps >= c.updates:
            return "updates"
        if seconds >= c.budget_seconds:
            return "minutes"
        return None

    def loop(self, start):
        """Train from the state in memory until the budget is spent. Returns: ``finish``'s result."""
        c = self.cfg
        self.start, self.agreed_seconds = start, time.monotonic() - start
        previous = {s: signal.signal(s, self.on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            # a non-finite step is caught where it matters (skipped, counted): NumPy's warnings repeat it
            with np.errstate(all="ignore"):
                if not self.log:
                    self.show(self.evaluate(time.monotonic() - start), start)  # the curve starts untrained
                    self.save(time.monotonic() - start)
                while (reason := self.stop_reason(self.clock(start))) is None:
                    faults.point(f"{self.FAULT}:{self.steps}")  # test-only (BPTT_FAULT); else a no-op
                    stop = self.stop_signal if self.comm.size == 1 else self.agreed_stop
                    if stop is not None:  # SIGINT/SIGTERM: save the state before this update
                        self.save(time.monotonic() - start)
                        raise self.stop(stop)
                    self.update()
                    if self.steps % c.eval_every == 0:
                        self.show(self.evaluate(time.monotonic() - start), start)
                        self.save(time.monotonic() - start)
                    else:
                        self.show(None, start)
                if self.log[-1]["updates"] != self.updates:  # the curve ends where training did
                    self.show(self.evaluate(time.monotonic() - start), start)
                return self.finish(reason, time.monotonic() - start)
        except KeyboardInterrupt:
            self.progress.line("interrupted: the training state is saved; continue with --resume")
            raise
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def on_signal(self, signum, frame):
        """SIGINT/SIGTERM: finish the update, save, stop. A second one stops at once."""
        if self.stop_signal is not None:
            raise Stop(signum)  # every file on disk is still whole: they are all written atomically
        self.stop_signal = signum
        self.progress.line(f"{signal.Signals(signum).name}: saving the training state, then stopping")

    def budget_left(self, seconds):
        """The budget still to spend, for the progress line: "37%  12:30 left"."""
        c, parts = self.cfg, []
        if c.updates is not None:
            parts.append(f"{100 * self.steps / c.updates:3.0f}%")
        if c.minutes is not None:
            parts.append(f"{fmt_time(c.budget_seconds - seconds)} left")
        return "  ".join(parts)

    def show(self, record, start):
        """The progress line; after an evaluation, a line of its own (at most one a LINE_EVERY seconds)."""
        seconds = time.monotonic() - start
        text = self.status(seconds)
        now = time.monotonic()
        if record is None or now - self.last_line < LINE_EVERY:
            self.progress.update(text)
            return
        self.progress.line(f"{text}  ({fmt_time(seconds)})")
        self.last_line = now
