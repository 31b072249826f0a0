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
from .checkpointed import (
    checkpoint_interval,
    checkpointed_sequence_loss,
    rnn_backward_checkpointed,
    rnn_forward_checkpointed,
)
from .conll import iter_conll, read_conll
from .errors import BpttError
from .gradcheck import GradcheckReport, gradcheck
from .heads import output_backward, output_forward, output_logits, sigmoid, softmax, step_losses
from .ledger import Ledger, ledger
from .metrics import Scores, evaluate
from .model import PARAM_KEYS, init_params, sequence_loss
from .optim import SGD, Adam, clip_grad_norm, global_norm
from .rnn import RNNCache, rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward
from .safetensors_io import load_safetensors, save_safetensors
from .tagging import Entity, Tagger, load_tagger
from .text import Token, detokenize, split_sentences, tokenize
from .truncated import rnn_backward_truncated, truncated_sequence_loss

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
    "step_losses",
    "tokenize",
    "truncated_sequence_loss",
]
