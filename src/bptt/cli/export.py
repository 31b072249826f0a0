"""``bptt export``: a trained tagger as one ONNX file, or as a PyTorch module's weights and constructor."""

from __future__ import annotations

import os

from .common import add_command

EXAMPLES = """\
  bptt export --model runs/ner --format onnx --out ner.onnx
  bptt tag --model ner.onnx "Mr. Smith visited the U.S. Senate."    # onnxruntime: the same tags
  bptt export --model runs/ner --format torch --out ner_torch
  python -c "from bptt.export.torch_tagger import TaggerModule; print(TaggerModule.from_files('ner_torch'))"

onnx: one graph (opset 17, float32) with the standard RNN/GRU/LSTM operators and sequence_lens.
  Inputs (int64, time-major): words (T, B), cases (T, B), chars (T, B, C), n_chars (T, B),
  lengths (B,) (no cases/chars when the model has no casing/character features). Outputs:
  logits (T, B, n_y), bptt's Z_y, and proba: sigmoid of column 0 (person) or softmax (ner).
  The metadata key "bptt" holds the vocabularies, tags, task, tag scheme, and how words become
  ids and probabilities tags, in JSON: the file alone suffices to tag. Needs: pip install 'bptt[onnx]'.
torch: a directory with tagger.safetensors (the state dict), tagger.json (sizes, vocabularies,
  tags, scheme) and tagger_module.py (the nn.Module: TaggerModule.from_files(DIR)); no pickle.
Before anything is written, the export runs test sentences (known and unknown words and characters,
lengths 1 to 40) and compares its logits with bptt's (with torch only when torch is installed).
"""


def add_parser(sub):
    p = add_command(
        sub,
        "export",
        "export a trained tagger to ONNX or PyTorch",
        "Write a model directory's tagger as one ONNX file (run by onnxruntime: bptt tag --model\n"
        "FILE.onnx gives the same output as the directory), or as a PyTorch module's weights\n"
        "(safetensors) beside its constructor. The output's logits equal bptt's to float32 precision.\n"
        "An existing output is replaced only with --overwrite, and never one of the model's files.",
        EXAMPLES,
        run,
    )
    p.add_argument("--model", required=True, metavar="DIR", help="model directory written by bptt train")
    p.add_argument(
        "--format",
        choices=["onnx", "torch"],
        default="onnx",
        help="onnx: one .onnx file (default); torch: a directory",
    )
    p.add_argument(
        "--out", required=True, metavar="PATH", help="onnx: FILE.onnx; torch: a directory (created)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output file (or export directory's files)",
    )


def run(args):
    from ..errors import BpttError
    from ..export.common import check_new_file
    from ..export.onnx import export_onnx, import_onnx
    from ..export.pytorch import check_torch_out, export_torch
    from ..io.modelfiles import CONFIG, VOCAB, WEIGHTS
    from ..models.tagger import load_tagger

    if os.fspath(args.model).endswith(".onnx") and not os.path.isdir(args.model):
        raise BpttError(f"{args.model}: is an exported file; export from the model directory")
    inputs = [os.path.join(args.model, f) for f in (CONFIG, VOCAB, WEIGHTS)]
    if args.format == "onnx":  # every check before the model is read
        check_new_file(args.out, inputs, args.overwrite, ".onnx")
        import_onnx()
    else:
        check_torch_out(args.out, inputs, args.overwrite)
    tagger = load_tagger(args.model)
    export = export_onnx if args.format == "onnx" else export_torch
    done = export(tagger, args.out, inputs, args.overwrite)
    diff = done["max_diff"]
    checked = (
        "not checked: no torch" if diff is None else f"max |logit - bptt's| on test sentences {diff:.1e}"
    )
    print(f"wrote {', '.join(done['files'])} ({checked})")
    return 0
