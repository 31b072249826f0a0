"""``bptt lm train`` and ``bptt lm evaluate``: a character language model, trained by truncated BPTT."""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import fields

from ..errors import BpttError
from .common import (
    HELP_FORMAT,
    TWO_CORES,
    add_budget_options,
    add_run_options,
    add_seed_option,
    add_threads_option,
    blas_threads,
    checked_settings,
    given_options,
    minutes_of,
    run_training,
    track_given,
)

TRAIN_EXAMPLES = """\
  # the text of CoNLL-2003's training file (sentences one a line), an LSTM, 20 minutes:
  bptt lm train --conll ../shared/data/conll2003/eng.train --out runs/lm --time-budget 20
  # then its bits per character on the development file, and five samples:
  bptt lm evaluate --model runs/lm --conll ../shared/data/conll2003/eng.testa
  bptt sample --model runs/lm --n 5 --length 300 --temperature 0.8 --prime "Harry"
  # an hour on one core: more epochs of the same text, so more regularisation (set by hand):
  bptt lm train --conll ../shared/data/conll2003/eng.train --out runs/lm-1 --threads 1 \\
      --dropout 0.25 --weight-drop 0.25 --time-budget 60
  # any UTF-8 text, read as one stream:
  bptt lm train --text book.txt --out runs/book --time-budget 10
  # person names, one sequence a line: a model that invents names
  bptt lm train --conll ../shared/data/conll2003/eng.train --entities PER --unit line \\
      --hidden 256 --out runs/names --time-budget 5
  # min-char-rnn's settings: the vanilla cell, 100 units, 25-step truncation, Adagrad
  bptt lm train --conll eng.train --cell rnn --hidden 100 --bptt-steps 25 --batch-size 1 \\
      --optimizer adagrad --lr 0.1 --dropout 0 --lr-decay 1 --out runs/minchar --time-budget 20
  # continue an interrupted run:
  bptt lm train --resume runs/lm
"""

BASELINE_EXAMPLES = """\
  # Kneser-Ney n-grams, n = 2..7, trained on eng.train's text, scored on eng.testa's:
  bptt lm baseline --conll ../shared/data/conll2003/eng.train --eval-conll ../shared/data/conll2003/eng.testa
  # names, one a line (as bptt lm train --unit line reads them):
  bptt lm baseline --conll eng.train --eval-conll eng.testa --entities PER --unit line --json
"""

EVAL_EXAMPLES = """\
  bptt lm evaluate --model runs/lm --conll ../shared/data/conll2003/eng.testa
  bptt lm evaluate --model runs/lm --text notes.txt --json
  bptt lm evaluate --model runs/lm --conll ../shared/data/conll2003/eng.testa --dynamic --ngram 8
"""

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
    from ..lm.config import CELLS, INITS, OPTIMIZERS, SCHEDULES, LMConfig
    from ..lm.model import DYNAMIC_DECAY, DYNAMIC_LR, DYNAMIC_PIECES, DYNAMIC_RULES, DYNAMIC_STEPS

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
    add_budget_options(p, d["minutes"].default, "evaluations")
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
    option("hidden", "hidden units n_a (of each layer)", type=int)
    option("layers", "stacked recurrent layers, each reading the one below", type=int)
    option("batch-size", "streams (or lines) per update, B", type=int)
    option(
        "bptt-steps", "characters per update of each stream, k: the gradient is cut every k steps", type=int
    )
    option("optimizer", "update rule", choices=list(OPTIMIZERS))
    option("lr", "learning rate", type=float)
    option(
        "schedule",
        "learning rate: plateau (multiplied by --lr-decay when the held-out bpc stops improving) or"
        " cosine (lr * (1 + cos(pi p))/2 at the fraction p of the budget spent, 0 at its end)",
        choices=list(SCHEDULES),
    )
    option(
        "lr-decay",
        "plateau: multiply the learning rate by this when the held-out bpc stops improving",
        type=float,
    )
    option(
        "patience",
        "evaluations in a row without improvement before the learning rate decays (once it is cut"
        " 1,000-fold the run stops: converged)",
        type=int,
    )
    option("clip", "clip the global gradient norm to this; 0 off", type=float)
    option("dropout", "dropout rate on a<t> before what reads it (head, next layer) in training", type=float)
    option(
        "weight-drop",
        "DropConnect rate on the recurrent weights W_aa (every layer's): one mask an update, for every"
        " step and stream",
        type=float,
    )
    option(
        "input-dropout",
        "dropout of whole characters read in training: x<t> zeroed, the others scaled by 1/(1 - rate)",
        type=float,
    )
    option(
        "average",
        "keep and evaluate a moving average of the weights with this decay (e.g. 0.999); 0 off",
        type=float,
    )
    option(
        "zoneout-hidden",
        "zoneout (LSTM): the probability that a unit of a<t> keeps its previous value in a training step;"
        " scoring uses the expectation",
        type=float,
    )
    option("zoneout-cell", "zoneout (LSTM): the same for the cell state c<t>", type=float)
    g.add_argument(
        "--rotate", action="store_true",
        help="--unit stream: each epoch reads the text from a new place (seeded), so the streams' starts"
        " and the gradient cuts are not the same characters every epoch",
    )  # fmt: skip
    option("eval-every", "updates between held-out evaluations and checkpoints", type=int)
    option(
        "valid-fraction", "fraction of the training text (its end) held out to choose the weights", type=float
    )
    option("dtype", "of the weights, gradients and optimizer state", choices=["float32", "float64"])
    add_seed_option(g, "random seed: weights, dropout, the order of lines")
    add_run_options(
        p, "continue the run in DIR (same text files); only --quiet and --threads may be added",
        "a network of 512 units trains about 1.5x as fast on two cores as on one; more were not measured",
        TWO_CORES,
    )  # fmt: skip
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
    e.add_argument(
        "--ngram", type=int, metavar="N",
        help="also a Kneser-Ney n-gram of order N fitted on the model's training text, for comparison (with"
        " --dynamic, also the same n-gram counting the text as it scores it, read as --dynamic reads it)",
    )  # fmt: skip
    add_text_options(e, "the text to score")
    e.add_argument(
        "--dynamic", type=float, nargs="?", const=DYNAMIC_LR, metavar="LR",
        help="also dynamic evaluation: the model goes on learning from the text as it scores it, one step"
        " of this size every --dynamic-steps characters, each character scored before any step has read it"
        f" (LR {DYNAMIC_LR:g} if not given)",
    )  # fmt: skip
    e.add_argument(
        "--dynamic-rule", choices=list(DYNAMIC_RULES), default="rms",
        help="dynamic evaluation's step: rms (RMSprop's, a step per weight) or sgd (default rms)",
    )  # fmt: skip
    e.add_argument(
        "--dynamic-steps", type=int, default=DYNAMIC_STEPS, metavar="K",
        help=f"characters of each piece between two steps (default {DYNAMIC_STEPS})",
    )  # fmt: skip
    e.add_argument(
        "--dynamic-decay", type=float, default=DYNAMIC_DECAY, metavar="LAMBDA",
        help="each step also pulls the weights back this fraction of the way to the trained ones"
        f" (default {DYNAMIC_DECAY})",
    )  # fmt: skip
    e.add_argument(
        "--dynamic-pieces", type=int, default=DYNAMIC_PIECES, metavar="N",
        help="read the text as N pieces side by side, each step learning from all (a line model: N lines"
        f" at a time; default {DYNAMIC_PIECES}: one stream, as it comes, the slowest and the best)",
    )  # fmt: skip
    e.add_argument(
        "--json", action="store_true", help="print one JSON object (bpc, characters, unknown, dynamic)"
    )
    add_threads_option(e, "a large model scores faster on two cores", TWO_CORES)
    e.set_defaults(run=run_evaluate)

    b = inner.add_parser(
        "baseline",
        help="bits per character of Kneser-Ney character n-grams (the baseline)",
        description="Fit character n-gram models with interpolated Kneser-Ney smoothing (one discount for\n"
        "all orders) on the training text and score the evaluation text, read as bptt lm reads them\n"
        "(--unit stream: one stream; --unit line: each line from a start symbol, its end predicted).\n"
        "Characters not in the training text are one unknown symbol.",
        formatter_class=HELP_FORMAT,
        epilog="examples:\n" + BASELINE_EXAMPLES,
    )
    add_text_options(b, "the training text")
    b.add_argument(
        "--eval-text", nargs="+", default=[], metavar="FILE", help="the evaluation text: text file(s)"
    )
    b.add_argument(
        "--eval-conll", nargs="+", default=[], metavar="FILE", help="the evaluation text: CoNLL file(s)"
    )
    b.add_argument(
        "--unit", choices=["stream", "line"], default="stream", help="as bptt lm train (default stream)"
    )
    b.add_argument(
        "--orders", nargs="+", type=int, default=[2, 3, 4, 5, 6, 7], metavar="N", help="(default 2 … 7)"
    )
    b.add_argument("--discount", type=float, default=0.75, help="the discount D (default 0.75)")
    b.add_argument("--json", action="store_true", help="print one JSON object: {order: bpc}")
    b.set_defaults(run=run_baseline)


def run_train(defaults, args):
    from ..lm.trainer import LMTrainer

    return run_training(*given_options(defaults, args), config, LMTrainer)


def config(args):
    """The run's LMConfig from the options, checked (errors name the option)."""
    from ..lm.config import LMConfig

    # every setting has its option, but the budget in minutes (--time-budget) and the divergence rule
    names = [f.name for f in fields(LMConfig) if f.name not in ("minutes", "max_bad_steps")]
    values = {k: getattr(args, k) for k in names}
    # absolute, so that --resume and --ngram find them from any directory
    files = {k: [os.path.abspath(p) if p else p for p in getattr(args, k)] for k in ("text", "conll")}
    values.update(files, minutes=minutes_of(args, LMConfig))
    return checked_settings(LMConfig, OPTIONS, **values)


def dynamic_settings(args):
    """--dynamic's settings, checked (None without it; then a --dynamic-* option given is refused)."""
    if args.dynamic is None:
        from ..lm.model import DYNAMIC_DECAY, DYNAMIC_PIECES, DYNAMIC_STEPS

        defaults = {"rule": "rms", "steps": DYNAMIC_STEPS, "decay": DYNAMIC_DECAY, "pieces": DYNAMIC_PIECES}
        for k, default in defaults.items():
            if getattr(args, f"dynamic_{k}") != default:
                raise BpttError(f"--dynamic-{k}: only with --dynamic (it sets dynamic evaluation)")
        return None
    if not (math.isfinite(args.dynamic) and args.dynamic > 0):
        raise BpttError(f"--dynamic: expected a learning rate > 0, got {args.dynamic}")
    if not 1 <= args.dynamic_steps <= 10**6:
        raise BpttError(f"--dynamic-steps: expected 1 to 1000000 characters, got {args.dynamic_steps}")
    if not (math.isfinite(args.dynamic_decay) and 0 <= args.dynamic_decay < 1):
        raise BpttError(f"--dynamic-decay: expected a fraction in [0, 1), got {args.dynamic_decay}")
    if not 1 <= args.dynamic_pieces <= 4096:
        raise BpttError(f"--dynamic-pieces: expected 1 to 4096, got {args.dynamic_pieces}")
    keys = ("lr", "rule", "steps", "decay", "pieces")
    return {k: getattr(args, "dynamic" if k == "lr" else f"dynamic_{k}") for k in keys}


def run_baseline(args):
    from ..lm.corpus import Alphabet, read_corpus
    from ..lm.ngram import baseline_table

    if not args.eval_text and not args.eval_conll:
        raise BpttError("--eval-text: no evaluation text: give --eval-text FILE or --eval-conll FILE")
    bad = [n for n in args.orders if not 1 <= n <= 20]
    if bad:
        raise BpttError(f"--orders: expected orders from 1 to 20, got {bad[0]}")
    if not 0 < args.discount < 1:
        raise BpttError(f"--discount: expected a number between 0 and 1, got {args.discount:g}")
    train = read_corpus(args.text, args.conll, args.entities)
    evaluate = read_corpus(args.eval_text, args.eval_conll, args.entities)
    table = baseline_table(train, evaluate, Alphabet.of(train), args.unit, args.orders, args.discount)
    if args.json:
        print(json.dumps({str(n): bpc for n, bpc in table}))
    else:
        for n, bpc in table:
            print(f"n = {n}: {bpc:.4f} bits per character")
    return 0


def ngram_of(run, order, text, model, dynamic=None):
    """A Kneser-Ney n-gram's bpc on ``text``, fitted on the run's training text without its held-out part;
    with ``dynamic`` (--dynamic's settings) also its bpc counting the text as it scores it, read as
    dynamic evaluation reads it. Returns: {"order", "bpc"[, "adaptive_bpc"]}."""
    from ..lm.corpus import read_corpus
    from ..lm.model import dynamic_groups
    from ..lm.ngram import adaptive_bits_per_char, baseline_table, text_sequences
    from ..lm.trainer import read_settings, split_held_out, text_sha256

    doc = read_settings(run)
    c = doc["settings"]
    train = read_corpus(c.text, c.conll, c.entities)
    if text_sha256(train) != doc["text_sha256"]:
        raise BpttError(f"{run}: --ngram: the training files changed since the model was trained")
    train = split_held_out(train, c.valid_fraction)[0]  # the part the network trained on
    a = model.alphabet
    out = {"order": order, "bpc": baseline_table(train, text, a, model.unit, [order])[0][1]}
    if dynamic is not None:
        groups = [
            [a.encode("\n" + unit + "\n") for unit in group]
            for group in dynamic_groups(text, model.unit, dynamic["pieces"])
        ]
        fit_on = text_sequences(train, a, model.unit)[0]
        out["adaptive_bpc"] = adaptive_bits_per_char(fit_on, groups, order, dynamic["steps"], 0.75, len(a), 1)
    return out


def run_evaluate(args):
    from ..lm.corpus import read_corpus
    from ..lm.model import load_lm
    from ..training.progress import Progress

    dynamic = dynamic_settings(args)  # every option checked before the model and the text are read
    if args.ngram is not None and not 1 <= args.ngram <= 20:
        raise BpttError(f"--ngram: expected an order from 1 to 20, got {args.ngram}")
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
        if dynamic is not None:
            shown = Progress(sys.stderr)  # a status line on a terminal only

            def progress(done, n, bpc):
                shown.update(f"dynamic evaluation: {done:,} of {n:,} characters, {bpc:.4f} bpc so far")

            dynamic["bpc"] = model.dynamic_bits_per_char(
                text, dynamic["lr"], dynamic["rule"], dynamic["decay"], dynamic["steps"], dynamic["pieces"],
                progress,
            )  # fmt: skip
            shown.clear()
    chars = len(text) if model.unit == "stream" else sum(len(line) + 1 for line in text.split("\n") if line)
    doc = {"bpc": bpc, "characters": chars, "unknown": n_unknown, "unit": model.unit}
    if dynamic is not None:
        doc["dynamic"] = dynamic
    if args.ngram is not None:
        doc["ngram"] = ngram_of(args.model, args.ngram, text, model, dynamic)
    if args.json:
        print(json.dumps(doc))
    else:
        print(f"{bpc:.4f} bits per character over {chars:,} characters ({model.unit} model)")
        if dynamic is not None:
            print(
                f"{dynamic['bpc']:.4f} bits per character with dynamic evaluation ({dynamic['rule']}, lr"
                f" {dynamic['lr']:g}, a step every {dynamic['steps']} characters, decay {dynamic['decay']:g},"
                f" {dynamic['pieces']} piece(s))"
            )
        if args.ngram is not None:
            print(
                f"{doc['ngram']['bpc']:.4f} bits per character: Kneser-Ney n = {args.ngram},"
                " fitted on the same training text"
            )
            if dynamic is not None:
                print(
                    f"{doc['ngram']['adaptive_bpc']:.4f} bits per character: the same n-gram counting the"
                    f" text as it scores it, every {dynamic['steps']} characters"
                )
    return 0
