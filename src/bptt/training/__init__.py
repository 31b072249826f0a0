"""Training: settings, data, the loop with its checkpoints, and the run's directory.

    config.py       ``TrainConfig``: the run's settings, and the sizes a network may have
    data.py         reading the tagged training, dev and embedding files
    optim.py        SGD (with momentum), Adam (lazy rows for embeddings), gradient clipping
    trainer.py      ``train`` and the ``Trainer``: epochs, updates, early stopping, signals
    evaluation.py   what is measured after every epoch: dev scores and the gradient flow
    checkpoint.py   the training state a checkpoint holds, checked field by field before a resume
    rundir.py       the run's directory: run.json, what may be written over, the input files' checksums
    progress.py     the progress line
    parallel.py     data-parallel training on MPI (mpiexec -n N): `Comm` (one process: the identity),
                    the shares of a batch, their random draws, the gradients summed by one Allreduce

``train(tcfg, mcfg, out)`` is the one entry; `Trainer` runs the epochs, and its ``train_step`` is
the seam where one batch becomes a loss and gradients (each process's share of it, on several).

The names below are imported when first used, so that ``import bptt`` (which takes the optimizers
from ``bptt.training.optim``) does not load the whole training loop.
"""

import importlib

# name -> the module of this package that defines it
_EXPORTS = {
    "OPTIMIZERS": "config",
    "TrainConfig": "config",
    "check_sizes": "config",
    "memory_needed": "config",
    "Corpus": "data",
    "encode": "data",
    "person_only": "data",
    "read_embeddings": "data",
    "read_tagged": "data",
    "task_tags": "data",
    "RUN_FILE": "rundir",
    "RUN_FORMAT": "rundir",
    "RUN_FORMAT_VERSION": "rundir",
    "read_run_file": "rundir",
    "Stop": "trainer",
    "Trainer": "trainer",
    "train": "trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
