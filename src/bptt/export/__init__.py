"""A trained tagger taken elsewhere: one ONNX file, or a PyTorch module, computing bptt's logits exactly.

inputs.py         how sentences become the exported models' id arrays (words, cases, chars, n_chars, lengths)
onnx.py           the whole tagger as one ONNX graph (standard RNN/GRU/LSTM operators), vocabularies in
                  its metadata: ``export_onnx``
onnx_runtime.py   an exported ONNX file as a `Tagger` (onnxruntime): ``bptt tag --model FILE.onnx``
pytorch.py        the tagger's weights under a ``torch.nn.Module``'s names, safetensors + JSON:
                  ``export_torch`` (needs no torch)
torch_tagger.py   that module, ``TaggerModule.from_files(DIR)``: standalone (torch only), copied beside
                  the weights
common.py         output checks, and the check of every export against bptt's own logits

onnx, onnxruntime and torch are imported only where they are used (``pip install 'bptt[onnx]'``).
"""

from .inputs import encode, input_names, model_inputs
from .onnx import build_onnx, export_onnx
from .pytorch import export_torch, torch_state_dict

__all__ = [
    "build_onnx",
    "encode",
    "export_onnx",
    "export_torch",
    "input_names",
    "model_inputs",
    "torch_state_dict",
]
