"""The settings of a long-range run (`LongRangeConfig`, every field checked) and its configurations.

A run trains one model per configuration: every task × length T × cell × initialisation it
names. The cells are the command line's:

    --cell   cell     g      initialisations (the first is "auto"'s)
    rnn      "rnn"    tanh   default, orthogonal, identity
    irnn     "rnn"    relu   identity (Le, Jaitly & Hinton, 2015)
    gru      "gru"    —      default, orthogonal, chrono
    lstm     "lstm"   —      forget1, default, orthogonal, chrono

``--init auto`` gives each cell its first; named initialisations go to every cell that takes them
(``--init auto chrono``: each cell's own, and chrono where a cell takes it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

from ..config import Checked, flag, number, one_of
from ..errors import BpttError
from ..tasks.longrange import MAX_T, TASKS, get_task
from ..training.config import MAX_UNITS, OPTIMIZERS

# --cell -> (bptt's cell, the vanilla cell's g, the initialisations it is run with; the first is "auto"'s)
CELL_SPECS = {
    "rnn": ("rnn", "tanh", ("default", "orthogonal", "identity")),
    "irnn": ("rnn", "relu", ("identity",)),
    "gru": ("gru", "tanh", ("default", "orthogonal", "chrono")),
    "lstm": ("lstm", "tanh", ("forget1", "default", "orthogonal", "chrono")),
}
INITS = ("auto", "default", "orthogonal", "identity", "forget1", "chrono")
MAX_SEQUENCES = 10**12  # a budget in sequences beyond any run; only a mistake reaches it


def _names(choices, low=1):
    """A rule for a list of distinct names, each one of ``choices``."""
    ok = lambda v: (  # noqa: E731
        isinstance(v, list) and len(v) >= low and len(set(v)) == len(v) and all(x in choices for x in v)
    )
    return ok, f"a list of distinct names among {', '.join(map(repr, choices))}"


def _lengths(v):
    return (
        isinstance(v, list)
        and v
        and len(set(v)) == len(v)
        and all(number(1, MAX_T, integer=True)[0](T) for T in v)
    )


_RULES = {
    "tasks": _names(tuple(TASKS)),
    "lengths": (_lengths, f"a list of distinct integers from 1 to {MAX_T:,}"),
    "cells": _names(tuple(CELL_SPECS)),
    "inits": _names(INITS),
    "minutes": number(0, above=True, optional=True),
    "sequences": number(1, MAX_SEQUENCES, integer=True, optional=True),
    "hidden": number(1, MAX_UNITS, integer=True),
    "batch_size": number(1, 2**20, integer=True),
    "optimizer": one_of(OPTIMIZERS),
    "lr": number(0, above=True),
    "clip": number(0),
    "eval_every": number(1, MAX_SEQUENCES, integer=True),
    "valid_size": number(1, 10**6, integer=True),
    "test_size": number(1, 10**7, integer=True),
    "probes": number(1, 64, integer=True),
    "keep_going": flag(),
    "max_bad_steps": number(1, integer=True),
    "seed": number(0, 2**63 - 1, integer=True),
    "dtype": one_of(("float32", "float64")),
}


@dataclass
class LongRangeConfig(Checked):
    """How a long-range run trains and evaluates each configuration; every field checked on construction."""

    tasks: list = field(default_factory=lambda: ["adding"])  # "adding", "copy", "order"
    lengths: list = field(default_factory=lambda: [100])  # the T of each task (copy: T + 20 steps)
    cells: list = field(default_factory=lambda: list(CELL_SPECS))  # names of CELL_SPECS
    inits: list = field(default_factory=lambda: ["auto"])  # "auto": each cell's own; or names
    minutes: float | None = None  # wall-time budget of each configuration (training and evaluation)
    sequences: int | None = None  # training sequences of each configuration (deterministic)
    hidden: int = 128  # n_a
    batch_size: int = 20  # sequences per update
    optimizer: str = "adam"  # "adam", "momentum" or "sgd"
    lr: float = 1e-3  # learning rate
    clip: float = 1.0  # clip the global gradient norm to this (0: off)
    eval_every: int = 5000  # training sequences between evaluations (and checkpoints)
    valid_size: int = 500  # fresh sequences scored at every evaluation: the learning curve, "solved"
    test_size: int = 2000  # other fresh sequences, scored once at the end: the reported value
    probes: int = 2  # validation sequences whose messages and reach are measured, at the start and end
    keep_going: bool = False  # train the whole budget even once solved (default: stop once the validation
    # score has met the criterion at two evaluations in a row)
    max_bad_steps: int = 20  # a configuration diverged after this many non-finite updates in a row
    seed: int = 0  # parameters and the training stream (the same for every configuration)
    dtype: str = "float32"  # of the weights, gradients, optimizer state and sequences

    RULES = _RULES
    ADDED = {"dtype": "float32"}  # runs from before the choice of dtype
    KIND, WHERE = "the long-range settings", "settings"

    def __post_init__(self):
        super().__post_init__()
        if self.minutes is None and self.sequences is None:
            raise BpttError("minutes: a budget is needed: minutes, sequences or both")
        for name in self.tasks:
            task = get_task(name)
            for T in self.lengths:
                task.check_T(T)
        for cell in self.cells:
            if not self.inits_of(cell):
                raise BpttError(
                    f"inits: {cell} takes {', '.join(map(repr, CELL_SPECS[cell][2]))} (or 'auto'),"
                    f" none of {', '.join(map(repr, self.inits))}"
                )

    def inits_of(self, cell):
        """The initialisations ``cell`` is run with."""
        takes = CELL_SPECS[cell][2]
        return [i for i in takes if i in self.inits or (i == takes[0] and "auto" in self.inits)]

    def configurations(self):
        """Every configuration of the run, in the order they are trained."""
        return [
            Configuration(task, T, cell, init)
            for task in self.tasks
            for T in self.lengths
            for cell in self.cells
            for init in self.inits_of(cell)
        ]

    @property
    def budget_seconds(self):
        return math.inf if self.minutes is None else 60 * self.minutes


class Configuration(NamedTuple):
    """One model to train: a task at one length, a cell and its initialisation."""

    task: str
    T: int
    cell: str  # a name of CELL_SPECS
    init: str

    @property
    def name(self):
        """Its directory under DIR/runs and its fault points: "adding-T100-lstm-forget1"."""
        return f"{self.task}-T{self.T}-{self.cell}-{self.init}"

    @property
    def label(self):
        """How tables and legends name it: "lstm (forget1)"."""
        return f"{self.cell} ({self.init})"
