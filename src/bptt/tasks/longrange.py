"""The long-range tasks: synthetic sequences whose answer depends on inputs far in the past.

Every batch is drawn from a NumPy generator, so a seed gives a stream of batches and nothing is
read from or written to files. Inputs are time-major, X (T', B, n_x) with T' the sequence length.

adding — Arjovsky, Shah & Bengio (2016), after Hochreiter & Schmidhuber (1997), many-to-one
    x⟨t⟩ = [u_t, m_t]: u_t ~ U[0, 1]; m_t = 1 at two steps, t₁ uniform in the first half
    [0, ⌊T/2⌋) and t₂ uniform in the second [⌊T/2⌋, T), m_t = 0 elsewhere.
    y = u_{t₁} + u_{t₂} at the last step: linear head, squared error. Metric: the mean squared error.
    Baseline: always answering 1, E[(u₁ + u₂ − 1)²] = Var(u₁ + u₂) = 2/12 = 1/6 ≈ 0.167.
copy — copy memory, Arjovsky, Shah & Bengio (2016), many-to-many scored on the last 10 steps
    symbols 0 blank, 1 … 8 data, 9 delimiter, one-hot (n_x = 10). Input (length T + 20): 10 data
    symbols drawn uniformly, T − 1 blanks, the delimiter, 10 blanks. Target: T + 10 blanks, then the
    10 data symbols; softmax over blank and the 8 data symbols (n_y = 9), the loss on the last 10
    steps only. Metric: cross-entropy per step, the summed cross-entropy of the 10 scored outputs
    over the sequence's T + 20 steps (the blanks the paper also scores are free to predict).
    Baseline: a memoryless guess among the 8 symbols, 10 ln 8 / (T + 20).
order — temporal order, Hochreiter & Schmidhuber (1997, experiment 6a), many-to-one
    8 symbols one-hot: a b c d (distractors), B E (begin, end), X Y. x⟨1⟩ = B, x⟨T⟩ = E; step t₁
    uniform in [⌊T/10⌋, ⌊2T/10⌋] and step t₂ in [⌊5T/10⌋, ⌊6T/10⌋] (0-based; 10 … 20 and 50 … 60 at
    T = 100, as in the paper) hold X or Y, every other step a distractor. The class is the order:
    XX, XY, YX, YY = 0 … 3, at the last step, softmax. Metric: accuracy; baseline 1/4 (chance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from ..errors import BpttError, check_choice

MAX_T = 10_000  # the longest sequence a task is generated at (a (T, B, ·) cache per batch)
STREAMS = ("train", "valid", "test")  # independent streams of one seed: never the same sequence twice


class TaskBatch(NamedTuple):
    """One batch of a task: what ``sequence_loss(params, X, Y, ..., loss_at=loss_at)`` takes."""

    X: np.ndarray  # (T', B, n_x) inputs
    Y: np.ndarray  # (B,) targets for loss_at="last"; (T', B) class ids for scored steps
    loss_at: object  # "last", or (T', B) bool: the steps scored


# ------------------------------------------------------------------------------------------ the generators


def adding(rng, T, B, dtype=np.float32):
    """A batch of the adding problem. Returns: TaskBatch with X (T, B, 2), Y (B,) sums, loss_at "last"."""
    X = np.zeros((T, B, 2), dtype=dtype)
    X[:, :, 0] = rng.random((T, B))
    half = T // 2
    t1 = rng.integers(0, half, size=B)  # one marker in each half
    t2 = rng.integers(half, T, size=B)
    b = np.arange(B)
    X[t1, b, 1] = 1
    X[t2, b, 1] = 1
    Y = X[t1, b, 0] + X[t2, b, 0]  # (B,) the sum of the two marked values
    return TaskBatch(X, Y, "last")


COPY_SYMBOLS, COPY_LENGTH = 8, 10  # data symbols 1 … 8; 10 of them to remember
BLANK, DELIMITER = 0, 9


def copy_memory(rng, T, B, dtype=np.float32):
    """A batch of the copy task. Returns: TaskBatch with X (T + 20, B, 10), Y and loss_at (T + 20, B)."""
    n = COPY_LENGTH
    data = rng.integers(1, COPY_SYMBOLS + 1, size=(n, B))  # (10, B)
    ids = np.full((T + 2 * n, B), BLANK)
    ids[:n] = data
    ids[T + n - 1] = DELIMITER  # after T − 1 blanks: now repeat them
    Y = np.full((T + 2 * n, B), BLANK)
    Y[T + n :] = data  # the last 10 outputs are the 10 symbols
    loss_at = np.zeros((T + 2 * n, B), dtype=bool)
    loss_at[T + n :] = True
    return TaskBatch(_one_hot(ids, 10, dtype), Y, loss_at)


ORDER_SYMBOLS = "abcdBEXY"  # distractors a … d, begin, end, and the two that matter


def temporal_order(rng, T, B, dtype=np.float32):
    """A batch of the temporal-order task. Returns: TaskBatch with X (T, B, 8), Y (B,) classes, "last"."""
    ids = rng.integers(0, 4, size=(T, B))  # distractors a … d
    ids[0], ids[T - 1] = 4, 5  # B and E
    t1 = rng.integers(T // 10, 2 * T // 10 + 1, size=B)
    t2 = rng.integers(5 * T // 10, 6 * T // 10 + 1, size=B)
    first, second = rng.integers(0, 2, size=B), rng.integers(0, 2, size=B)  # 0: X, 1: Y
    b = np.arange(B)
    ids[t1, b] = 6 + first
    ids[t2, b] = 6 + second
    return TaskBatch(_one_hot(ids, 8, dtype), 2 * first + second, "last")  # XX, XY, YX, YY


def _one_hot(ids, n, dtype):
    X = np.zeros((*ids.shape, n), dtype=dtype)  # (T', B, n)
    np.put_along_axis(X, ids[..., None], 1, axis=-1)
    return X


# ------------------------------------------------------------------------------------------- the metrics


def squared_errors(Z, Y):
    """{"mse": mean (ŷ − y)²} from the linear head's outputs. Shapes: Z (N, 1), Y (N,)."""
    return {"mse": float(np.mean((Z[:, 0].astype(np.float64) - Y) ** 2))}


def cross_entropies(Z, Y):
    """Summed cross-entropy and the number of right answers. Shapes: Z (N, n_y) logits, Y (N,) ids."""
    Z = Z.astype(np.float64)
    shifted = Z - Z.max(axis=1, keepdims=True)
    ce = np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(len(Y)), Y]  # logsumexp(z) − z_y
    return float(ce.sum()), int((Z.argmax(axis=1) == Y).sum())


def copy_metrics(Z, Y, T, B):
    """Cross-entropy per step (the scored steps' sum over all T + 20) and the copied symbols' accuracy."""
    ce, right = cross_entropies(Z, Y)
    return {"cross_entropy": ce / (B * (T + 2 * COPY_LENGTH)), "accuracy": right / len(Y)}


def order_metrics(Z, Y, T, B):
    """Accuracy and the mean cross-entropy of the class at the last step."""
    ce, right = cross_entropies(Z, Y)
    return {"accuracy": right / len(Y), "cross_entropy": ce / len(Y)}


# --------------------------------------------------------------------------------------------- the tasks


@dataclass(frozen=True)
class Task:
    """A long-range task: how to draw it, how it is scored, and what a memoryless answer scores."""

    name: str  # "adding", "copy", "order": the command line's --task
    title: str  # "the adding problem"
    n_x: int  # inputs per step
    n_y: int  # outputs of the head
    output: str  # the head: "linear" (squared error) or "softmax" (cross-entropy)
    metric: str  # the task's score among ``score``'s: "mse", "cross_entropy" or "accuracy"
    min_T: int  # the shortest T the definition allows
    draw: Callable  # draw(rng, T, B, dtype) -> TaskBatch
    score: Callable  # score(Z (N, n_y) logits at the scored steps, Y (N,), T, B) -> {name: value}
    baseline: Callable  # baseline(T) -> the memoryless value of ``metric``
    solved_on: str  # the score the criterion reads (the copy task's: its accuracy)
    target: float  # solved when that score reaches it: at least (accuracy) or at most (an error)
    solved_by: str  # the criterion, in words
    source: str  # the definition's reference

    @property
    def higher_is_better(self):
        """Whether a larger ``metric`` is better (accuracy), or a smaller (an error)."""
        return self.metric == "accuracy"

    def length(self, T):
        """T', the length of a sequence drawn at T (the copy task adds its 20 steps)."""
        return T + 2 * COPY_LENGTH if self.name == "copy" else T

    def check_T(self, T, name="T"):
        """Refuse a T outside min_T … MAX_T (one line naming ``name``)."""
        if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or not self.min_T <= T <= MAX_T:
            raise BpttError(f"{name}: {self.title} needs a length from {self.min_T} to {MAX_T:,}, got {T!r}")
        return int(T)

    def solved(self, scores):
        """Whether ``scores`` (from ``score``) meet the criterion ``solved_by``."""
        value = scores[self.solved_on]
        return value >= self.target if self.solved_on == "accuracy" else value <= self.target


TASKS = {
    "adding": Task(
        name="adding",
        title="the adding problem",
        n_x=2,
        n_y=1,
        output="linear",
        metric="mse",
        min_T=2,
        draw=adding,
        score=lambda Z, Y, T, B: squared_errors(Z, Y),
        baseline=lambda T: 1 / 6,
        solved_on="mse",
        target=0.01,
        solved_by="test MSE ≤ 0.01 (6% of the baseline's)",
        source="Arjovsky, Shah & Bengio (2016)",
    ),
    "copy": Task(
        name="copy",
        title="the copy task",
        n_x=10,
        n_y=COPY_SYMBOLS + 1,
        output="softmax",
        metric="cross_entropy",
        min_T=1,
        draw=copy_memory,
        score=copy_metrics,
        baseline=lambda T: COPY_LENGTH * math.log(COPY_SYMBOLS) / (T + 2 * COPY_LENGTH),
        solved_on="accuracy",
        target=0.99,
        solved_by="≥ 99% of the copied symbols right",
        source="Arjovsky, Shah & Bengio (2016)",
    ),
    "order": Task(
        name="order",
        title="the temporal-order task",
        n_x=len(ORDER_SYMBOLS),
        n_y=4,
        output="softmax",
        metric="accuracy",
        min_T=10,
        draw=temporal_order,
        score=order_metrics,
        baseline=lambda T: 0.25,
        solved_on="accuracy",
        target=0.99,
        solved_by="test accuracy ≥ 99%",
        source="Hochreiter & Schmidhuber (1997), experiment 6a",
    ),
}


def get_task(name):
    """The ``Task`` called ``name``."""
    check_choice("task", name, tuple(TASKS))
    return TASKS[name]


def task_rng(seed, stream):
    """The generator of one of a seed's independent streams: "train", "valid" or "test"."""
    check_choice("stream", stream, STREAMS)
    return np.random.default_rng([seed, STREAMS.index(stream)])


def stream(task, T, B, seed=0, which="train", dtype=np.float32):
    """Batches of ``task`` at length T, B sequences each, without end: the same seed, the same batches.

    Returns: an iterator of ``TaskBatch``.
    """
    task = get_task(task) if isinstance(task, str) else task
    task.check_T(T)
    rng = task_rng(seed, which)
    while True:
        yield task.draw(rng, T, B, dtype)
