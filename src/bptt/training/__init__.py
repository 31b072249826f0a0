"""Training a tagger: settings, data, the loop with its checkpoints, and the run's directory.

``train(tcfg, mcfg, out)`` is the one entry; `Trainer` runs the epochs, and its ``train_step`` is
the seam where one batch becomes a loss and gradients (what data-parallel training replaces).
"""

from .config import OPTIMIZERS, TrainConfig, check_sizes, memory_needed
from .data import Corpus, encode, person_only, read_embeddings, read_tagged, task_tags
from .rundir import RUN_FILE, RUN_FORMAT, RUN_FORMAT_VERSION, read_run_file
from .trainer import Stop, Trainer, train

__all__ = [
    "OPTIMIZERS",
    "RUN_FILE",
    "RUN_FORMAT",
    "RUN_FORMAT_VERSION",
    "Corpus",
    "Stop",
    "TrainConfig",
    "Trainer",
    "check_sizes",
    "encode",
    "memory_needed",
    "person_only",
    "read_embeddings",
    "read_run_file",
    "read_tagged",
    "task_tags",
    "train",
]
