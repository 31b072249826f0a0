"""``bptt lm train`` and ``bptt lm evaluate``: a character language model, trained by truncated BPTT."""

from __future__ import annotations

import json
import sys

from ..errors import BpttError
from .common import (
    HELP_FORMAT,
    add_seed_option,
    add_threads_option,
    blas_threads,
    given_options,
    refuse_with_resume,
    track_given,
)

TRAIN_EXAMPLES = """\
  # the text of CoNLL-2003's training file (sentences one a line), an LSTM, 20 minutes:
  bptt lm train --conll ../shared/data/conll2003/eng.train --out runs/lm --time-budget 20
  # then its bits per character on the development file, and five samples:
  bptt lm evaluate --model runs/lm --conll ../shared/data/conll2003/eng.testa
  bptt sample --model runs/lm --n 5 --length 300 --temperature 0.8 --prime "Harry"
  # any UTF-8 text, read as one stream:
  bptt lm train --text book.txt --out runs/book --time-budget 10
  # person names, one sequence a line: a model that invents names
  bptt lm train --conll ../shared/data/conll2003/eng.train --entities PER --unit line \\
      --hidden 256 --out runs/names --time-budget 5
  # min-char-rnn's settings: the vanilla cell, 100 units, 25-step truncation, Adagrad
  bptt lm train --conll eng.train --cell rnn --hidden 100 --bptt-steps 25 --batch-size 1 \\
      --optimizer adagrad --lr 0.1 --dropout 0 --out runs/minchar --time-budget 20
  # continue an interrupted run:
  bptt lm train --resume runs/lm
"""

EVAL_EXAMPLES = """\
  bptt lm evaluate --model runs/lm --conll ../shared/data/conll2003/eng.testa
  bptt lm evaluate --model runs/lm --text notes.txt --json
"""

WITH_RESUME = ("resume", "quiet", "threads")
OPTIONS = {"minutes": "--time-budget"}


def add_text_options(p, what):
    p.add_argument(
        "--text", nargs="+", default=[], metavar="FILE", help=f"{what}: UTF-8 text file(s), as they are"
    )
    p.add_argument(
        "--conll", nargs="+", default=[], metavar="FILE",
        help=f"{what}: CoNLL file(s), read as their sentences one a line (words joined by spaces)",
    )  # fmt: skip
    p.add_argument(
        "--entities", metavar="TYPE",
        help="with --conll: the distinct entities of this type (e.g. PER), one a line, not the sentences",
    )  # fmt: skip


def add_parser(sub):
    from ..lm.config import CELLS, INITS, OPTIMIZERS, LMConfig

    lm = sub.add_parser(
        "lm",
        help="a character language model: train, evaluate (bits per character)",
        description="A character-level language model trained by hand-written truncated BPTT.\n"
        "Sampling from a trained model is `bptt sample`.",
        formatter_class=HELP_FORMAT,
        epilog="examples:\n" + TRAIN_EXAMPLES,
    )
    lm.set_defaults(run=lambda args: lm.print_help() or 2)
    inner = lm.add_subparsers(dest="lm_command", metavar="COMMAND")
    d = LMConfig.__dataclass_fields__
    p = inner.add_parser(
        "train",
        help="train a character language model",
        description="Read the text (--text and/or --conll files) as one stream of characters (--unit stream)"
        "\n"
        "or one sequence a line (--unit line), hold out its end (--valid-fraction) to choose the weights\n"
        "by, and train the cell by truncated BPTT: B streams advance --bptt-steps characters per update,\n"
        "the state carried from chunk to chunk, its gradient cut between them. Stops when --time-budget\n"
        "(minutes) or --updates is spent. --out gets weights.safetensors (the best held-out weights),\n"
        "log.jsonl, result.json and a checkpoint at each evaluation; --resume DIR goes on.",
        formatter_class=HELP_FORMAT,
        epilog="examples:\n" + TRAIN_EXAMPLES,
    )
    g = p.add_argument_group("text")
    add_text_options(g, "the training text")
    g.add_argument(
        "--unit",
        choices=["stream", "line"],
        default="stream",
        help="one stream, or one sequence a line (default stream)",
    )
    g = p.add_argument_group("budget (at least one)")
    budget = d["minutes"].default
    g.add_argument(
        "--time-budget", type=float, metavar="MINUTES", default=budget,
        help=f"wall time, training and evaluations (default {budget:g})",
    )  # fmt: skip
    g.add_argument("--updates", type=int, metavar="N", help="updates (deterministic: same seed, same model)")
    g = p.add_argument_group("network and training")

    def option(name, help, **kw):
        default = d[name.replace("-", "_")].default
        g.add_argument(f"--{name}", default=default, help=f"{help} (default {default})", **kw)

    option("cell", "the recurrent cell", choices=list(CELLS))
    option(
        "init",
        "initialisation: PyTorch's default, orthogonal W_aa, forget-gate bias 1, chrono",
        choices=list(INITS),
    )
    option("hidden", "hidden units n_a", type=int)
    option("batch-size", "streams (or lines) per update, B", type=int)
    option(
        "bptt-steps", "characters per update of each stream, k: the gradient is cut every k steps", type=int
    )
    option("optimizer", "update rule", choices=list(OPTIMIZERS))
    option("lr", "learning rate", type=float)
    option("lr-decay", "multiply the learning rate by this when the held-out bpc stops improving", type=float)
    option("patience", "evaluations in a row without improvement before the learning rate decays", type=int)
    option("clip", "clip the global gradient norm to this; 0 off", type=float)
    option("dropout", "dropout rate on a<t> before the output layer, while training", type=float)
    option("eval-every", "updates between held-out evaluations and checkpoints", type=int)
    option(
        "valid-fraction", "fraction of the training text (its end) held out to choose the weights", type=float
    )
    option("dtype", "of the weights, gradients and optimizer state", choices=["float32", "float64"])
    add_seed_option(g, "random seed: weights, dropout, the order of lines")
    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="DIR", help="a new or empty directory for the run")
    g.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR (same text files); only --quiet and --threads may be added",
    )
    g.add_argument("--quiet", action="store_true", help="no progress display")
    add_threads_option(g)
    track_given(p, run_train)

    e = inner.add_parser(
        "evaluate",
        help="bits per character of a trained model on a text",
        description="Bits per character of a trained model (bptt lm train's --out) on a text: -sum log2 p\n"
        "over every character predicted, divided by their number. A --unit stream model reads the text\n"
        "as one stream (in 16 pieces cut at line ends, side by side); a --unit line model each line alone,\n"
        "its end included. Characters the model never saw are its unknown symbol (counted, and said).",
        formatter_class=HELP_FORMAT,
        epilog="examples:\n" + EVAL_EXAMPLES,
    )
    e.add_argument("--model", required=True, metavar="DIR", help="the run directory of bptt lm train")
    add_text_options(e, "the text to score")
    e.add_argument("--json", action="store_true", help="print one JSON object (bpc, characters, unknown)")
    add_threads_option(e)
    e.set_defaults(run=run_evaluate)


def run_train(defaults, args):
    from ..lm.trainer import LMTrainer, read_settings
    from ..training.progress import Progress

    args, given = given_options(defaults, args)
    if args.resume:
        refuse_with_resume(given, WITH_RESUME, f"settings in {args.resume}/lm.json")
        cfg = read_settings(args.resume)["settings"]
    else:
        if not args.out:
            raise BpttError("--out: required: a new or empty directory for the run (or --resume DIR)")
        cfg = config(args)
    with blas_threads(args.threads):
        LMTrainer(cfg, args.resume or args.out, Progress(enabled=not args.quiet)).run(
            resume=bool(args.resume)
        )
    return 0


def config(args):
    """The run's LMConfig from the options, checked (errors name the option)."""
    from ..lm.config import LMConfig

    for name, value in (("time-budget", args.time_budget), ("updates", args.updates)):
        if value is not None and not value > 0:
            raise BpttError(f"--{name}: the budget must be more than 0, got {value:g}")
    try:
        return LMConfig(
            text=list(args.text), conll=list(args.conll), entities=args.entities, unit=args.unit,
            cell=args.cell, init=args.init, hidden=args.hidden, batch_size=args.batch_size,
            bptt_steps=args.bptt_steps, optimizer=args.optimizer, lr=args.lr, lr_decay=args.lr_decay,
            patience=args.patience,
            clip=args.clip, dropout=args.dropout, minutes=args.time_budget, updates=args.updates,
            eval_every=args.eval_every, valid_fraction=args.valid_fraction, seed=args.seed, dtype=args.dtype,
        )  # fmt: skip
    except BpttError as e:  # "field: expected ..." names the field: say the option instead
        field, _, rest = str(e).partition(":")
        if field.startswith("--"):
            raise
        raise BpttError(f"{OPTIONS.get(field, '--' + field.replace('_', '-'))}:{rest}") from None


def run_evaluate(args):
    from ..lm.corpus import read_corpus
    from ..lm.model import load_lm

    model = load_lm(args.model)
    text = read_corpus(args.text, args.conll, args.entities)
    unknown = model.alphabet.unknown_in(text)
    n_unknown = sum(text.count(c) for c in unknown)
    if unknown:
        shown = "".join(unknown[:10]) + ("…" if len(unknown) > 10 else "")
        print(
            f"bptt: warning: {n_unknown:,} character(s) the model never saw ({shown!r}) are read as its"
            " unknown symbol", file=sys.stderr,
        )  # fmt: skip
    with blas_threads(args.threads):
        bpc = model.bits_per_char(text)
    chars = len(text) if model.unit == "stream" else sum(len(line) + 1 for line in text.split("\n") if line)
    if args.json:
        print(json.dumps({"bpc": bpc, "characters": chars, "unknown": n_unknown, "unit": model.unit}))
    else:
        print(f"{bpc:.4f} bits per character over {chars:,} characters ({model.unit} model)")
    return 0
