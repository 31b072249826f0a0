"""An exported ONNX file as a `Tagger`: the same text in and out as the model directory it came from.

``load_tagger("tagger.onnx")`` (`bptt.models.tagger.load_tagger`) comes here. The file's ``bptt``
metadata (`bptt.export.onnx`) gives the settings, vocabularies and tag scheme, each checked as a
model directory's are; the Tagger then computes its logits with onnxruntime instead of bptt's
network (``Tagger(logits=OnnxLogits(...))``), and everything after the logits — probabilities,
valid-sequence decoding, the scheme, entities and offsets — is the Tagger's own code. Only
onnxruntime is needed here, not the onnx package.
"""

from __future__ import annotations

import os
import stat

from ..errors import BpttError
from ..models.tagger import Tagger
from ..models.tagger_network import TaggerConfig
from ..models.vocab import Vocab
from .common import FORMAT_VERSION
from .inputs import input_names, model_inputs
from .onnx import FORMAT

NEEDS = "bptt tag --model FILE.onnx needs: pip install 'bptt[onnx]'"
MAX_FILE_BYTES = 2**31  # one ONNX file holds at most 2 GiB


def _first_line(e):
    return (str(e).strip().splitlines() or [type(e).__name__])[-1][:300]


def session_from(data, where, threads=1, needs=NEEDS):
    """An onnxruntime session of the model ``data`` (bytes) on the CPU, with ``threads`` threads.

    Returns: onnxruntime.InferenceSession; a `BpttError` naming ``where`` when it cannot load.
    """
    try:
        import onnxruntime
    except ImportError:
        raise BpttError(needs) from None
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = threads  # the per-word matrices are small: one thread is fastest
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only: they come back as one line
    try:
        return onnxruntime.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own exception types: not a model it can run
        raise BpttError(f"{where}: not an ONNX model onnxruntime can run: {_first_line(e)}") from None


class OnnxLogits:
    """Z_y of a batch from an onnxruntime session: the pluggable ``logits`` of a `Tagger`."""

    def __init__(self, session, cfg, where):
        self.session, self.cfg, self.where = session, cfg, where

    def __call__(self, batch, tables):
        """Shapes: batch.forms (T, B). Returns: Z_y (T, B, n_y) float32."""
        try:
            (Z_y,) = self.session.run(["logits"], model_inputs(self.cfg, batch, tables))
        except Exception as e:  # e.g. a crafted file whose tables are smaller than its vocabulary
            raise BpttError(f"{self.where}: onnxruntime failed: {_first_line(e)}") from None
        return Z_y


def read_model_file(path):
    """The bytes of a regular file of at most 2 GiB; one-line errors naming it."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise BpttError(f"{path}: is a directory, expected an ONNX file")
        if not stat.S_ISREG(st.st_mode):  # a pipe would be drained, a device read forever
            raise BpttError(f"{path}: not a regular file, expected an ONNX file")
        if st.st_size > MAX_FILE_BYTES:
            raise BpttError(f"{path}: {st.st_size:,} bytes; an ONNX file holds at most 2 GiB")
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise BpttError(f"{path}: no such file") from None
    except OSError as e:
        raise BpttError(f"{path}: cannot read: {e.strerror or e}") from None


def read_metadata(session, where):
    """The settings, vocabularies and scheme of an exported tagger, each checked.

    Returns: (TaggerConfig, Vocab, scheme).
    """
    from ..io.conll import SCHEMES
    from ..io.safetensors_io import parse_json

    raw = session.get_modelmeta().custom_metadata_map.get("bptt")
    if raw is None:
        raise BpttError(f"{where}: no 'bptt' metadata: not a tagger exported by bptt export")
    doc = parse_json(raw.encode("utf-8"), f"{where}: metadata 'bptt'")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BpttError(f"{where}: metadata 'bptt': format is not {FORMAT!r}")
    if doc.get("format_version") != FORMAT_VERSION:
        version = doc.get("format_version")
        raise BpttError(f"{where}: format version {version!r:.20}; this bptt reads version {FORMAT_VERSION}")
    cfg = TaggerConfig.from_json(doc.get("tagger"), f"{where}: metadata 'bptt': tagger")
    vocab = Vocab.from_json(doc.get("vocab"), f"{where}: metadata 'bptt': vocab")
    scheme = doc.get("scheme")
    if scheme not in SCHEMES:
        raise BpttError(
            f"{where}: metadata 'bptt': scheme: expected one of {', '.join(SCHEMES)}, got {scheme!r:.60}"
        )
    return cfg, vocab, scheme


def check_signature(session, cfg, where):
    """The graph takes the inputs ``cfg`` implies and gives ``logits`` (T, B, n_y)."""
    names = tuple(i.name for i in session.get_inputs())
    if names != input_names(cfg):
        raise BpttError(
            f"{where}: inputs {', '.join(names)}; its metadata implies {', '.join(input_names(cfg))}"
        )
    logits = {o.name: o for o in session.get_outputs()}.get("logits")
    if logits is None or logits.shape[-1:] != [cfg.n_y]:
        shape = None if logits is None else logits.shape
        raise BpttError(f"{where}: expected an output 'logits' (T, B, {cfg.n_y}), got {shape}")


def load_onnx_tagger(path, threads=1):
    """A `Tagger` running an ONNX file written by ``bptt export`` (no parameters: it tags only).

    Returns: Tagger.
    """
    where = os.fspath(path)
    session = session_from(read_model_file(where), where, threads)
    cfg, vocab, scheme = read_metadata(session, where)
    check_signature(session, cfg, where)
    meta = {"task": cfg.task, "tagger": cfg.to_json(), "scheme": scheme, "onnx": where}
    return Tagger(None, cfg, vocab, scheme, meta, logits=OnnxLogits(session, cfg, where))
