"""How to train (`TrainConfig`, every field checked), and what a network may cost: its sizes and memory."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..config import Checked, number, one_of, string
from ..errors import BpttError
from ..models.tagger_network import param_shapes

OPTIMIZERS = ("adam", "momentum", "sgd")
DTYPES = ("float32", "float64")

# every field of TrainConfig: (its check, what it must be); checked on construction, so a bad option
# or an edited run.json is one line naming the field before anything is read or sized by it
_RULES = {
    "train": string(),
    "dev": string(optional=True),
    "tag_column": number(-(2**31), 2**31, integer=True),
    "strip_prefix": string(optional=True),
    "epochs": number(1, integer=True),
    "batch_size": number(1, integer=True),
    "optimizer": one_of(OPTIMIZERS),
    "lr": number(0, above=True),
    "lr_decay": number(0),
    "clip": number(0),
    "bptt_steps": number(0, integer=True),
    "ema": number(0, 1, below=True),
    "patience": number(1, integer=True),
    "time_budget": number(0, above=True, optional=True),
    "seed": number(0, integer=True),
    "embeddings": string(optional=True),
    "max_bad_steps": number(1, integer=True),
    "max_sentences": number(1, integer=True, optional=True),
    "dtype": one_of(DTYPES),
    "extra": (lambda v: isinstance(v, dict), "an object"),
}


@dataclass
class TrainConfig(Checked):
    """How to train. Defaults are the configuration benchmarked in BENCHMARKS.md.

    Every field is checked on construction (`BpttError` naming the field); `from_json` also
    refuses missing and unknown fields.
    """

    train: str = ""  # training file (CoNLL columns)
    dev: str | None = None  # development file, evaluated after every epoch
    tag_column: int = -1  # column of the tag (default: the last)
    strip_prefix: str | None = "auto"  # remove a language prefix like "en:" from words
    epochs: int = 100  # at most this many passes over the training data
    batch_size: int = 32  # sentences per update
    optimizer: str = "adam"  # "adam", "momentum" or "sgd"
    lr: float = 3e-3  # learning rate
    lr_decay: float = 0.05  # lr_epoch = lr / (1 + lr_decay · epoch)
    clip: float = 5.0  # clip the global gradient norm to this (0: off)
    bptt_steps: int = 0  # truncated BPTT: cut the word-level messages every this many steps (0: full)
    ema: float = 0.999  # evaluate and save a moving average of the weights (Polyak); 0: the raw weights
    patience: int = 10  # stop after this many epochs without a better dev F1
    time_budget: float | None = None  # minutes of training, then stop with the best model
    seed: int = 0  # every random choice (init, batches, dropout) follows from it
    embeddings: str | None = None  # optional GloVe-format text file of pretrained word vectors
    max_bad_steps: int = 20  # stop when this many updates in a row had a non-finite loss or gradient
    max_sentences: int | None = None  # use only the first N training sentences (quick runs)
    dtype: str = "float32"  # of the weights, gradients and optimizer state: "float32" or "float64"
    extra: dict = field(default_factory=dict)  # free-form notes kept with the run

    RULES = _RULES
    ADDED = {"dtype": "float32"}  # runs from before the choice of dtype
    KIND, WHERE = "the training settings", "train"


# ---------------------------------------------------------------------------------------------- resources

# the largest network accepted: far beyond any useful tagger, so only a mistake reaches these (a
# network that is merely large meets the memory check, `Trainer.check_memory`)
MAX_LAYERS, MAX_UNITS = 100, 2**16
_UNITS = ("hidden", "word_dim", "case_dim", "char_dim", "char_hidden")  # the sizes MAX_UNITS bounds
# floats held through one step per word of a batch: per unit of each layer's input and output (forward
# caches, dropout masks, backward messages), and per unit of the character RNN (its input and both
# directions' states, over the word's characters); measured with tracemalloc on batches of CoNLL
# sentences, the estimate is within a factor 1.5 of the peak
ACTIVATIONS_PER_UNIT, ACTIVATIONS_PER_CHAR_UNIT = 5, 10
# and per unit of a gated word layer, for each gate beyond the first (the saved gates and their factors;
# measured the same way at the default sizes: 2.9 a gate for the GRU, 2.6 for the LSTM, with its c⟨t⟩)
ACTIVATIONS_PER_GATE_UNIT = 3


def check_sizes(mcfg, where=None):
    """Refuse a network size no tagger needs, before anything is read or allocated.

    Errors name the option, or the field of ``where`` (e.g. ``"DIR/run.json: model"``).
    """
    for name, most in (("layers", MAX_LAYERS), *((n, MAX_UNITS) for n in _UNITS)):
        if getattr(mcfg, name) > most:
            label = f"{where}.{name}" if where else "--" + name.replace("_", "-")
            raise BpttError(f"{label}: at most {most}, got {getattr(mcfg, name)}")


def memory_needed(mcfg, tcfg, n_words, n_chars, longest):
    """About the bytes a run needs (in its dtype): the weights with their gradients, optimizer moments and
    moving average, and the activations of a batch of sentences as long as the longest.

    Returns: (the total, the part for the weights and their copies).
    """
    n = sum(math.prod(shape) for _, shape in param_shapes(mcfg, n_words, n_chars))
    copies = 2 + {"adam": 2, "momentum": 1, "sgd": 0}[tcfg.optimizer] + (tcfg.ema > 0)
    n_x = mcfg.word_dim + mcfg.case_dim + (2 * mcfg.char_hidden if mcfg.char_dim else 0)
    layer_units = mcfg.layers * mcfg.hidden * len(mcfg.directions)
    per_word = ACTIVATIONS_PER_UNIT * (n_x + layer_units)
    per_word += ACTIVATIONS_PER_GATE_UNIT * (mcfg.word_cell.gates - 1) * layer_units
    if mcfg.char_dim:
        per_word += ACTIVATIONS_PER_CHAR_UNIT * (mcfg.char_dim + 2 * mcfg.char_hidden)
    size = 8 if tcfg.dtype == "float64" else 4
    weights = size * copies * n
    return weights + size * per_word * longest * tcfg.batch_size, weights
