"""What both exports share: refusing an output before any work, and checking an export against bptt."""

from __future__ import annotations

import os

import numpy as np

from ..errors import BpttError
from ..io.output import check_output
from ..models.tagger_network import tagger_forward
from .inputs import encoding_doc, model_inputs, probe_sentences, sentence_batch

FORMAT_VERSION = 1  # of the exported files' description (`description`), ONNX and PyTorch alike
CHECK_TOLERANCE = 1e-4  # |logit difference| above which an export is refused as wrong (float32: ~1e-6)


def need_params(tagger):
    """Refuse a tagger without parameters (itself loaded from an exported file)."""
    if tagger.params is None:
        raise BpttError(
            f"{tagger.meta.get('onnx', 'tagger')}: is an exported file; export from the model directory"
        )


def check_new_file(path, inputs, overwrite, suffix=None):
    """Refuse ``path`` before any work: not ending in ``suffix``, a directory, an input, write-protected,
    a missing folder, or an existing file without ``overwrite`` (`bptt.io.output.check_output`)."""
    if suffix is not None and not os.fspath(path).endswith(suffix):
        raise BpttError(f"{path}: expected a file name ending in {suffix}")
    check_output(path, inputs)
    if os.path.lexists(path) and not overwrite:
        raise BpttError(f"{path}: exists; give --overwrite to replace it")


def check_against_bptt(tagger, run_logits, what):
    """Run an export on `probe_sentences` and compare its logits with bptt's on every real word.

    run_logits: inputs (`model_inputs`) -> logits (T, B, n_y).
    Returns: max |Z_y − Z_y'|; a `BpttError` (nothing is written) when it exceeds CHECK_TOLERANCE.
    """
    batch, tables = sentence_batch(tagger.vocab, probe_sentences(tagger.vocab))
    Z_y, _ = tagger_forward(tagger.params, tagger.cfg, batch, tables)
    Z_x = np.asarray(run_logits(model_inputs(tagger.cfg, batch, tables)))
    diff = float(np.abs(Z_y - Z_x)[batch.mask].max()) if Z_x.shape == Z_y.shape else np.inf
    if not diff <= CHECK_TOLERANCE:  # NaN too
        raise BpttError(
            f"{what}: its logits differ from bptt's by {diff:.3g} on test sentences: nothing written"
        )
    return diff


def decoding_doc(cfg):
    """How the outputs become tags (the exported files say so in words)."""
    if cfg.task == "person":
        return {
            "proba": "sigmoid(logits[:, :, 0]): P(word t is part of a person's name); the other columns of"
            " logits (the auxiliary tags) were only trained",
            "tags": "a word is in a name when proba > 0.5; a run of such words is one name: B-PER, I-PER, …",
        }
    return {
        "proba": "softmax(logits) over tags",
        "tags": "the most probable sequence of tags in which I-X follows only B-X or I-X (Viterbi over"
        " log proba with the invalid transitions forbidden; bptt.models.tagger_network.viterbi)",
    }


def description(cfg, vocab, scheme):
    """What an exported file says about itself besides its weights: everything needed to tag."""
    return {
        "format_version": FORMAT_VERSION,
        "bptt_version": bptt_version(),
        "task": cfg.task,
        "tags": cfg.tags,
        "scheme": scheme,  # tags are written in the training file's scheme (IOB1, IOB2, IOBES)
        "tagger": cfg.to_json(),
        "vocab": {"words": vocab.words, "chars": vocab.chars},
        "encoding": encoding_doc(),
        "decoding": decoding_doc(cfg),
    }


def bptt_version():
    from .. import __version__

    return __version__
