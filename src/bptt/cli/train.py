"""``bptt train``: train a person-name or named-entity tagger on CoNLL files."""

from __future__ import annotations

import argparse

from ..errors import BpttError
from .common import (
    add_command,
    add_reader_options,
    add_seed_option,
    blas_threads,
    given_options,
    refuse_with_resume,
    strip_prefix_arg,
    track_given,
)

EXAMPLES = """\
  # person names, the lecture's setting (sigmoid + logistic loss per word), 10 minutes:
  bptt train --train ../shared/data/conll2003/eng.train --dev ../shared/data/conll2003/eng.testa \\
             --task person --out runs/person --time-budget 10
  # an LSTM instead of the lecture's RNN, its forget-gate bias 1 (also: --cell gru):
  bptt train --train ../shared/data/conll2003/eng.train --dev ../shared/data/conll2003/eng.testa \\
             --cell lstm --init forget1 --out runs/person-lstm
  # all entity types (softmax over IOB tags):
  bptt train --train ../shared/data/conll2003/eng.train --dev ../shared/data/conll2003/eng.testa \\
             --task ner --out runs/ner --time-budget 15
  # WikiANN (its "en:" prefix is removed automatically):
  bptt train --train ../shared/data/wikiann-en/train --dev ../shared/data/wikiann-en/dev --out runs/wikiann
  # continue an interrupted run (with the settings and data it started with):
  bptt train --resume runs/person
  # one model trained by 4 processes (pip install 'bptt[mpi]'; the same model on any number, float64):
  mpiexec -n 4 bptt train --train ../shared/data/conll2003/eng.train --out runs/person4 --dtype float64
  # faster: 32 sentences a process, Adam's learning rate times sqrt(2) (keeps the accuracy; README):
  mpiexec -n 2 bptt train --train ../shared/data/conll2003/eng.train --out runs/person2 \\
          --batch-size 64 --lr 0.00424
  # train again into a directory that holds a model, replacing it:
  bptt train --train ../shared/data/conll2003/eng.train --out runs/person --overwrite
"""

# may be given with --resume: they change how a run is shown and how fast it goes, not what it computes
WITH_RESUME = ("resume", "quiet", "threads")


def add_parser(sub):
    from ..cells import CELLS
    from ..models.tagger_network import INITS, TASKS, TaggerConfig
    from ..training.config import MAX_LAYERS, MAX_UNITS, TrainConfig

    p = add_command(
        sub,
        "train",
        "train a tagger on CoNLL files",
        "Train a tagger (embeddings -> bidirectional RNN, GRU or LSTM -> per-word output) by hand-written\n"
        "BPTT.\n"
        "Evaluates on --dev after every epoch, keeps the best model, stops early when dev F1 stops\n"
        "improving or when --time-budget runs out, and writes model, log and curves to --out.\n"
        "--out must be new or empty (or hold this same run's run.json alone): a directory with a model\n"
        "or another run is only replaced with --overwrite, and one holding other files never is.\n"
        "Every input is read and checked before anything is written. A run stops with an error\n"
        "(exit 2) when it diverges: 20 updates in a row with a non-finite loss or gradient, or an\n"
        "epoch whose loss per word is over 10 times a uniform guess's (log 2 for --task person).",
        EXAMPLES,
        run,
    )
    g = p.add_argument_group("data")
    g.add_argument("--train", metavar="FILE", help="training file (CoNLL columns; tag in the last column)")
    g.add_argument("--dev", metavar="FILE", help="development file, scored after every epoch")
    g.add_argument(
        "--task",
        choices=list(TASKS),
        default="person",
        help="person: is each word part of a person's name (default); ner: every entity type",
    )
    add_reader_options(g)
    g.add_argument("--embeddings", metavar="FILE", help="pretrained word vectors, GloVe text format")
    g.add_argument("--max-sentences", type=int, metavar="N", help="use only the first N training sentences")
    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="DIR", help="directory for the model, log and curves")
    g.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the interrupted run in DIR with the settings and data files it started with"
        " (refused when a file changed); only --quiet and --threads may be given with it",
    )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the model or run in --out (files bptt did not write are never deleted)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress display")
    m, t = TaggerConfig(), TrainConfig()  # the defaults live in the configs, once

    def option(group, name, help, **kw):
        default = kw.setdefault("default", getattr(m, name.replace("-", "_"), None))
        if default is None:
            kw["default"] = getattr(t, name.replace("-", "_"))
        group.add_argument(f"--{name}", help=f"{help} (default {kw['default']})", **kw)

    g = p.add_argument_group("model")
    option(g, "hidden", f"RNN units per direction, at most {MAX_UNITS}", type=int)
    option(g, "layers", f"stacked bidirectional RNN layers, at most {MAX_LAYERS}", type=int)
    g.add_argument("--unidirectional", action="store_true", help="left-to-right only (the lecture's RNN)")
    option(g, "cell", "the word layers' cell: rnn (the lecture's), gru or lstm", choices=list(CELLS))
    option(
        g, "init", "the word cell's initialisation; forget1 (--cell lstm): forget-gate bias 1", choices=INITS
    )
    option(
        g,
        "activation",
        "--cell rnn only: the vanilla cell's g, in the word layers and the character RNN",
        choices=["tanh", "relu"],
    )
    g.add_argument(
        "--aux",
        action=argparse.BooleanOptionalAction,
        default=m.aux,
        help="--task person: also learn every entity type of the training file with a second, softmax"
        " output (extra supervision; the person output is unchanged) (default on)",
    )
    option(g, "word-dim", "word embedding size", type=int)
    option(g, "case-dim", "casing embedding size, 0 for none", type=int)
    option(g, "char-dim", "character embedding size, 0 for no character RNN", type=int)
    option(g, "char-hidden", "character RNN units per direction", type=int)
    option(g, "dropout", "dropout rate on every layer's input and the top output", type=float)
    option(g, "word-dropout", "training: replace any word by <unk> with this probability", type=float)
    g = p.add_argument_group("training")
    g.add_argument(
        "--time-budget", type=float, metavar="MINUTES", help="stop after this many minutes (wall time)"
    )
    option(g, "epochs", "at most this many epochs", type=int)
    option(g, "patience", "stop after this many epochs without a better dev F1", type=int)
    option(g, "batch-size", "sentences per update", type=int)
    option(g, "optimizer", "update rule", choices=["adam", "momentum", "sgd"])
    option(g, "lr", "learning rate", type=float)
    option(g, "clip", "clip the global gradient norm to this; 0 off", type=float)
    g.add_argument(
        "--bptt-steps",
        type=int,
        default=0,
        metavar="K",
        help="truncated BPTT: backpropagate through chunks of K words only (default 0: full)",
    )
    option(
        g,
        "dtype",
        "of the weights, gradients and optimizer state; float64 makes runs on any number of processes"
        " agree to 1e-12",
        choices=["float32", "float64"],
    )
    g.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS threads (default 1: the per-word matrices are small, one thread is fastest)",
    )
    add_seed_option(g, "random seed: same seed, same model")
    track_given(p, run)


def _option(name):
    return "--" + name.replace("_", "-")


def configs(args):
    """The run's TrainConfig and TaggerConfig from the options, each checked (errors name the option)."""
    from ..models.tagger_network import TaggerConfig
    from ..training import TrainConfig

    try:
        tcfg = TrainConfig(
            train=args.train,
            dev=args.dev,
            tag_column=args.tag_column,
            strip_prefix=strip_prefix_arg(args.strip_prefix),
            epochs=args.epochs,
            batch_size=args.batch_size,
            optimizer=args.optimizer,
            lr=args.lr,
            clip=args.clip,
            patience=args.patience,
            time_budget=args.time_budget,
            seed=args.seed,
            embeddings=args.embeddings,
            max_sentences=args.max_sentences,
            bptt_steps=args.bptt_steps,
            dtype=args.dtype,
        )
        mcfg = TaggerConfig(
            task=args.task,
            word_dim=args.word_dim,
            case_dim=args.case_dim,
            char_dim=args.char_dim,
            char_hidden=args.char_hidden if args.char_dim else 0,
            hidden=args.hidden,
            layers=args.layers,
            bidirectional=not args.unidirectional,
            cell=args.cell,
            init=args.init,
            activation=args.activation,
            aux=args.aux and args.task == "person",
            dropout=args.dropout,
            word_dropout=args.word_dropout,
        )
    except BpttError as e:  # "field: expected ..." names the field: say the option instead
        field, _, rest = str(e).partition(":")
        raise BpttError(f"{_option(field)}:{rest}") from None
    return tcfg, mcfg


def run(defaults, args):
    args, given = given_options(defaults, args)
    with blas_threads(args.threads):
        return _run(args, given)


def _run(args, given):
    from ..training import train

    if args.resume:
        refuse_with_resume(given, WITH_RESUME, f"settings and data in {args.resume}/run.json")
        train(None, None, args.resume, resume=True, progress=not args.quiet)
        return 0
    if not args.train:
        raise BpttError("--train: required (or --resume DIR)")
    if not args.out:
        raise BpttError("--out: required: the directory for the model and its log")
    if "aux" in given and args.task != "person":
        raise BpttError(f"--aux, --no-aux: only with --task person (--task {args.task} learns every type)")
    tcfg, mcfg = configs(args)
    train(tcfg, mcfg, args.out, progress=not args.quiet, overwrite=args.overwrite)
    return 0
