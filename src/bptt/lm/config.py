"""The settings of a language-model run (`LMConfig`), every field checked on construction."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..config import Checked, flag, number, one_of, string
from ..errors import BpttError
from ..training.config import MAX_UNITS
from .corpus import UNITS
from .network import check_zoneout_cell

CELLS = ("rnn", "gru", "lstm")
OPTIMIZERS = ("adam", "adagrad", "momentum", "sgd")
INITS = ("default", "orthogonal", "forget1", "chrono")
SCHEDULES = ("plateau", "cosine")
MAX_LAYERS = 64  # beyond any useful stack; keeps a crafted settings file from allocating without end
MAX_UPDATES = 10**12  # a budget beyond any run; only a mistake reaches it


def _paths(v):
    return isinstance(v, list) and all(isinstance(p, str) and p for p in v)


_RULES = {
    "text": (_paths, "a list of file paths"),
    "conll": (_paths, "a list of file paths"),
    "entities": string(optional=True),
    "unit": one_of(UNITS),
    "cell": one_of(CELLS),
    "init": one_of(INITS),
    "hidden": number(1, MAX_UNITS, integer=True),
    "layers": number(1, MAX_LAYERS, integer=True),
    "batch_size": number(1, 2**16, integer=True),
    "bptt_steps": number(1, 10**6, integer=True),
    "optimizer": one_of(OPTIMIZERS),
    "lr": number(0, above=True),
    "schedule": one_of(SCHEDULES),
    "lr_decay": number(0, 1, above=True),
    "patience": number(1, 10**6, integer=True),
    "clip": number(0),
    "dropout": number(0, 1, below=True),
    "weight_drop": number(0, 1, below=True),
    "input_dropout": number(0, 1, below=True),
    "average": number(0, 1, below=True),
    "zoneout_hidden": number(0, 1, below=True),
    "zoneout_cell": number(0, 1, below=True),
    "minutes": number(0, above=True, optional=True),
    "updates": number(1, MAX_UPDATES, integer=True, optional=True),
    "eval_every": number(1, MAX_UPDATES, integer=True),
    "valid_fraction": number(0, 0.5, above=True),
    "max_bad_steps": number(1, integer=True),
    "seed": number(0, 2**63 - 1, integer=True),
    "dtype": one_of(("float32", "float64")),
    "rotate": flag(),
}


@dataclass
class LMConfig(Checked):
    """How a character language model is trained; every field checked on construction."""

    text: list = field(default_factory=list)  # UTF-8 text files, read as they are
    conll: list = field(default_factory=list)  # CoNLL files, read as their sentences one a line
    entities: str | None = None  # with conll: the entities of this type (e.g. "PER") one a line instead
    unit: str = "stream"  # "stream": one long sequence (truncated BPTT); "line": one sequence a line
    cell: str = "lstm"  # "rnn" (tanh), "gru" or "lstm"
    init: str = "default"  # PyTorch's; "orthogonal"; "forget1" (lstm); "chrono" (gru, lstm)
    hidden: int = 512  # n_a (of every layer)
    layers: int = 1  # stacked layers of the cell, each reading the a⟨t⟩ of the one below
    batch_size: int = 32  # B: streams (or lines) advanced together per update
    bptt_steps: int = 64  # k: characters per update of each stream; the gradient is cut every k steps
    optimizer: str = "adam"  # "adam", "adagrad" (min-char-rnn's), "momentum" or "sgd"
    lr: float = 5e-3  # learning rate (the first; see schedule)
    # "plateau": multiplied by lr_decay when the held-out bpc stops falling; "cosine": lr · ½(1 + cos πp)
    # at the budget's fraction p spent (the larger of updates and minutes), reaching 0 at its end
    schedule: str = "plateau"
    lr_decay: float = 0.5  # "plateau": the learning rate is multiplied by this when the held-out bpc
    patience: int = 2  # stops falling: after this many evaluations in a row that do not improve on the best
    clip: float = 5.0  # clip the global gradient norm to this (0: off)
    # the defaults of both are the best of the rates measured for a 512-unit LSTM on CoNLL's text in 20
    # minutes, on one core and on two (BENCHMARKS.md)
    dropout: float = 0.2  # inverted dropout on a⟨t⟩ before the head (and the next layer) while training
    weight_drop: float = 0.2  # DropConnect on every W_aa: each weight dropped for a whole update
    input_dropout: float = 0.0  # whole characters read dropped (x⟨t⟩ = 0, the rest scaled) while training
    average: float = 0.0  # > 0: evaluate and keep an exponential moving average of the weights, this decay
    # zoneout (LSTM): the probability that a unit of a⟨t⟩ (of c⟨t⟩) keeps its previous value in a step
    zoneout_hidden: float = 0.0
    zoneout_cell: float = 0.0
    minutes: float | None = 20.0  # wall-time budget: training and evaluations together
    updates: int | None = None  # a budget in updates (deterministic: a resumed run ends bit-identical)
    eval_every: int = 200  # updates between evaluations on the held-out text (and checkpoints)
    valid_fraction: float = 0.03  # the end of the training text held out to choose the weights by
    max_bad_steps: int = 20  # the run diverged after this many non-finite updates in a row
    seed: int = 0  # the weights, dropout and the order of lines
    dtype: str = "float32"  # of the weights, gradients and optimizer state
    # unit "stream": each epoch reads the text from a new place (seeded), as a circle, so that the streams'
    # starts and the gradient cuts move from one epoch to the next
    rotate: bool = False

    RULES = _RULES
    # settings written before the option existed
    ADDED = {
        "weight_drop": 0.0, "layers": 1, "average": 0.0, "schedule": "plateau", "rotate": False,
        "zoneout_hidden": 0.0, "zoneout_cell": 0.0, "input_dropout": 0.0,
    }  # fmt: skip
    KIND, WHERE = "the language model's settings", "settings"

    def __post_init__(self):
        super().__post_init__()
        if self.minutes is None and self.updates is None:
            raise BpttError("--time-budget: a budget is needed: --time-budget, --updates or both")
        if not self.text and not self.conll:
            raise BpttError("--text: no text: give --text FILE or --conll FILE")
        if self.entities is not None and not self.conll:
            raise BpttError("--entities: needs --conll files (entities come from their tags)")
        if self.rotate and self.unit != "stream":
            raise BpttError("--rotate: only for --unit stream (lines are shuffled every epoch)")
        check_zoneout_cell(self.cell, (self.zoneout_hidden, self.zoneout_cell))
        allowed = {"rnn": ("default", "orthogonal"), "gru": ("default", "orthogonal", "chrono")}
        if self.init not in allowed.get(self.cell, INITS):
            raise BpttError(f"--init: the {self.cell} cell takes {', '.join(allowed[self.cell])}")

    @property
    def budget_seconds(self):
        return math.inf if self.minutes is None else 60 * self.minutes
