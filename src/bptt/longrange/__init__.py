"""Long-range tasks trained and measured: many-to-one BPTT against the published results (``bptt longrange``).

    config.py    ``LongRangeConfig`` (the run's settings, every field checked), the cells of the command
                 line (``CELL_SPECS``: rnn, irnn, gru, lstm) and the configurations of a run
    trainer.py   ``LongRangeTrainer``: one configuration — the task's stream, ``train_step``, the
                 optimizer, evaluations, probes of the messages and reach, checkpoints and resume
    runner.py    ``longrange``: every configuration in turn, results.json, the table, pictures, report

The tasks themselves are ``bptt.tasks``; the pictures and the page ``bptt.pictures.longrange``.
"""

from .config import CELL_SPECS, Configuration, LongRangeConfig
from .runner import longrange
from .trainer import LongRangeTrainer

__all__ = ["CELL_SPECS", "Configuration", "LongRangeConfig", "LongRangeTrainer", "longrange"]
