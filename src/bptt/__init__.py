"""bptt: recurrent networks trained by backpropagation through time, written out by hand."""

from .errors import BpttError
from .gradcheck import GradcheckReport, gradcheck
from .heads import output_backward, output_forward, output_logits, sigmoid, softmax, step_losses
from .ledger import Ledger, ledger
from .model import PARAM_KEYS, init_params, sequence_loss
from .optim import SGD, Adam, clip_grad_norm, global_norm
from .rnn import RNNCache, rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward

__version__ = "0.1.0"

__all__ = [
    "Adam",
    "BpttError",
    "GradcheckReport",
    "Ledger",
    "PARAM_KEYS",
    "RNNCache",
    "SGD",
    "clip_grad_norm",
    "global_norm",
    "gradcheck",
    "init_params",
    "ledger",
    "output_backward",
    "output_forward",
    "output_logits",
    "rnn_backward",
    "rnn_forward",
    "rnn_step_backward",
    "rnn_step_forward",
    "sequence_loss",
    "sigmoid",
    "softmax",
    "step_losses",
]
