"""An encoder–decoder with optional additive attention (Bahdanau, Cho & Bengio 2015), backward by hand.

``network``: the equations, the teacher-forced forward, the backward and the loss; ``decode``:
greedy and beam-search decoding on the same decoder step.
"""

from .decode import beam_decode, greedy_decode
from .network import (
    DecoderStep,
    Encoded,
    Seq2SeqCache,
    Seq2SeqConfig,
    decoder_step,
    encode,
    init_seq2seq,
    param_shapes,
    seq2seq_backward,
    seq2seq_forward,
    seq2seq_loss,
    seq2seq_messages,
)

__all__ = [
    "DecoderStep",
    "Encoded",
    "Seq2SeqCache",
    "Seq2SeqConfig",
    "beam_decode",
    "decoder_step",
    "encode",
    "greedy_decode",
    "init_seq2seq",
    "param_shapes",
    "seq2seq_backward",
    "seq2seq_forward",
    "seq2seq_loss",
    "seq2seq_messages",
]
