"""bptt: recurrent networks trained by backpropagation through time, written out by hand."""

from . import cells
from .cells import (
    CELLS,
    Cell,
    GRUCache,
    LSTMCache,
    get_cell,
    gru_step_backward,
    gru_step_forward,
    lstm_step_backward,
    lstm_step_forward,
    params_from_torch,
    params_to_torch,
)
from .diagnostics.gradcheck import GradcheckReport, gradcheck
from .diagnostics.ledger import Ledger, ledger
from .drivers.checkpointed import (
    checkpoint_interval,
    checkpointed_sequence_loss,
    rnn_backward_checkpointed,
    rnn_forward_checkpointed,
)
from .drivers.rnn import RNNCache, rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward
from .drivers.truncated import rnn_backward_truncated, truncated_sequence_loss
from .errors import BpttError
from .heads.classification import (
    output_backward,
    output_forward,
    output_logits,
    sigmoid,
    softmax,
    step_losses,
)
from .io.conll import iter_conll, read_conll
from .io.safetensors_io import load_safetensors, save_safetensors
from .io.text import Token, detokenize, split_sentences, tokenize
from .io.torch_params import from_torch, to_torch
from .models.lecture import PARAM_KEYS, init_params, sequence_loss
from .models.metrics import Scores, evaluate
from .models.tagger import Entity, Tagger, load_tagger
from .training.optim import SGD, Adam, clip_grad_norm, global_norm

__version__ = "0.1.0"

__all__ = [
    "Adam",
    "BpttError",
    "CELLS",
    "Cell",
    "Entity",
    "GRUCache",
    "GradcheckReport",
    "LSTMCache",
    "Ledger",
    "PARAM_KEYS",
    "RNNCache",
    "SGD",
    "Scores",
    "Tagger",
    "Token",
    "checkpoint_interval",
    "checkpointed_sequence_loss",
    "cells",
    "clip_grad_norm",
    "detokenize",
    "evaluate",
    "from_torch",
    "get_cell",
    "global_norm",
    "gradcheck",
    "gru_step_backward",
    "gru_step_forward",
    "init_params",
    "iter_conll",
    "ledger",
    "load_safetensors",
    "load_tagger",
    "lstm_step_backward",
    "lstm_step_forward",
    "output_backward",
    "output_forward",
    "output_logits",
    "params_from_torch",
    "params_to_torch",
    "read_conll",
    "rnn_backward",
    "rnn_backward_checkpointed",
    "rnn_backward_truncated",
    "rnn_forward",
    "rnn_forward_checkpointed",
    "rnn_step_backward",
    "rnn_step_forward",
    "save_safetensors",
    "sequence_loss",
    "sigmoid",
    "softmax",
    "split_sentences",
    "to_torch",
    "step_losses",
    "tokenize",
    "truncated_sequence_loss",
]
