"""``bptt graph``: draw the unrolled computation graph of one sentence, with its real numbers."""

from __future__ import annotations

import argparse
import zlib

import numpy as np

from ..errors import BpttError
from .common import add_seed_option

EXAMPLES = """examples:
  bptt graph --demo "Harry Potter and Hermione Granger invented a new spell ." --out graph.png
  bptt graph --demo "Ada Lovelace wrote the first program ." --gold "B-PER I-PER O O O O O" --out g.svg
  bptt graph --model runs/person "Yesterday Marguerite Okafor flew to Lima ." --out graph.svg
  bptt graph --lm runs/lm --prime "Harry" --length 10 --seed 1 --out generation.png
  bptt graph --dates runs/dates "the 3rd of May 1979" --out dates.png

Forward arrows (blue) run left to right, backpropagation (red) right to left; each a<t> is
coloured by the message ||dL/da<t>|| that reaches it. Without --gold the loss is measured
against the model's own predictions.
"""

HASH_BUCKETS = 32  # hashed word identity, so the demo model can learn frequent words ("The", "Dr.")
MODEL_FILES = ("config.json", "vocab.json", "weights.safetensors", "log.jsonl")  # never written over
MAX_DEMO_STEPS = 100_000  # --demo trains a tiny network on one sentence: 300 steps draw it well
GENERATED_FILES = ("weights.safetensors", "log.jsonl", "result.json", "lm.json", "dates.json", "report.html")


def add_parser(sub):
    p = sub.add_parser(
        "graph",
        help="draw the unrolled RNN for a sentence: forward values, backward messages",
        description="Draw BPTT unrolled over one sentence (.png or .svg): x<t> -> a<t> -> y_hat<t> -> L<t>,"
        " forward arrows left to right, gradient messages right to left, with the values of a real pass.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_source_arguments(p, "use the lecture RNN trained for a moment on the built-in person-name corpus")
    p.add_argument(
        "sentence", nargs="*",
        help="the sentence, tokens separated by spaces (at most 200); with --dates, the date as written",
    )  # fmt: skip
    g = p.add_argument_group("a generated sequence (--lm) or the encoder-decoder (--dates)")
    g.add_argument("--prime", default="", help="--lm: the text read before generating (default none)")
    g.add_argument("--length", type=int, default=12, help="--lm: characters to generate (default 12)")
    g.add_argument("--temperature", type=float, default=1.0, help="--lm: sampling temperature (default 1)")
    p.add_argument("--gold", metavar="TAGS", help="gold tags, one per token (e.g. 'B-PER I-PER O')")
    p.add_argument("--steps", type=int, default=300, help="--demo: training steps (default 300)")
    add_seed_option(p, "--demo: random seed; --lm: the draws")
    p.set_defaults(run=run)


def add_source_arguments(p, demo_help):
    """--model DIR or --demo (one of them), and --out FILE.png|.svg: shared with ``bptt gradflow``."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="DIR", help="a model directory written by `bptt train`")
    source.add_argument("--demo", action="store_true", help=demo_help)
    if p.prog.endswith("graph"):
        source.add_argument(
            "--lm", metavar="DIR", help="a language model of `bptt lm train`: draw a generation"
        )
        source.add_argument(
            "--dates", metavar="DIR", help="a model of `bptt dates train`: draw it over a date"
        )
    p.add_argument("--out", required=True, metavar="FILE", help="picture to write: FILE.png or FILE.svg")


def check_out(args):
    """Refuse ``--out`` before any work: not a picture's name, a directory, write-protected, or one
    of the model's files (`bptt.io.output.check_output`, as the picture is written)."""
    import os

    from ..io.output import check_output
    from ..pictures.plots import check_picture_path

    check_picture_path(args.out)
    inputs = [] if args.model is None else [os.path.join(args.model, f) for f in MODEL_FILES]
    for kind in ("lm", "dates"):  # another kind of model directory: none of its files either
        directory = getattr(args, kind, None)
        if directory is not None:
            inputs += [os.path.join(directory, f) for f in GENERATED_FILES]
    check_output(args.out, inputs + [p for p in [getattr(args, "data", None)] if p])


def run(args):
    from ..pictures.plots import MAX_GRAPH_WORDS, draw_unrolled_graph

    check_out(args)  # before any training
    if args.lm is not None or args.dates is not None:
        return run_generated(args)
    words = " ".join(args.sentence).split()
    if not words:
        raise BpttError("sentence: empty; give at least one word")
    if len(words) > MAX_GRAPH_WORDS:  # before any training or loading
        raise BpttError(
            f"sentence: {len(words)} words; a graph shows at most {MAX_GRAPH_WORDS} (more is unreadable)"
        )
    if args.gold is not None and len(args.gold.split()) != len(words):
        raise BpttError(f"--gold: {len(args.gold.split())} tags for {len(words)} words")
    if args.demo:
        if not 1 <= args.steps <= MAX_DEMO_STEPS:
            raise BpttError(f"--steps: expected 1 to {MAX_DEMO_STEPS:,} training steps, got {args.steps:,}")
        gold = None if args.gold is None else gold_iob2(args.gold.split(), ("O", "B-PER", "I-PER"))
        trace = demo_trace(words, gold, steps=args.steps, seed=args.seed)
    else:
        from ..models.tagger import load_tagger

        tagger = load_tagger(args.model)
        known = tagger.cfg.tags if tagger.cfg.task == "ner" else ("O", "B-PER", "I-PER")
        gold = None if args.gold is None else gold_iob2(args.gold.split(), known)
        trace = tagger.trace(words, gold=gold)
    path = draw_unrolled_graph(trace, args.out)
    print(f"wrote {path}")


def run_generated(args):
    """``--lm``: a generated sequence, each drawn character fed back; ``--dates``: the encoder-decoder."""
    from ..pictures.plots import draw_unrolled_graph

    if args.lm is not None:
        from ..lm.model import MAX_GRAPH_CHARS, lm_trace, load_lm

        if args.sentence:
            raise BpttError("--lm: takes no sentence; give the text to start from as --prime")
        if not 1 <= args.length or len(args.prime) + args.length + 1 > MAX_GRAPH_CHARS:
            raise BpttError(
                f"--length: from 1 to {MAX_GRAPH_CHARS - 1} characters with the prime, got {args.length}"
            )
        if not args.temperature > 0:
            raise BpttError(f"--temperature: expected a number > 0, got {args.temperature:g}")
        model = load_lm(args.lm)
        trace = lm_trace(model, args.prime, args.length, args.temperature, np.random.default_rng(args.seed))
        print(f"wrote {draw_unrolled_graph(trace, args.out)}")
        return 0
    from ..pictures.seq2seq import draw_seq2seq_graph
    from ..seq2seq.dates import load_date_model
    from ..tasks import dates as task

    text = " ".join(args.sentence)
    if not text:
        raise BpttError('sentence: give the date to draw, as written (e.g. "3 May 1979")')
    try:  # before the model is read
        task.check_chars(text)
    except BpttError as e:
        raise BpttError(f"sentence: {e}") from None
    model = load_date_model(args.dates)
    print(f"wrote {draw_seq2seq_graph(model.trace(text), args.out)}")
    return 0


def gold_iob2(gold, known):
    """The --gold tags as IOB2, each checked: O or B-/I-/E-/S-TYPE (read as conlleval reads them,
    in any scheme), whose IOB2 form is one of ``known``, the model's tags.

    Returns: list of IOB2 tags.
    """
    from ..io.conll import split_tag, to_iob2

    for i, tag in enumerate(gold):
        try:
            split_tag(tag)
        except BpttError as e:
            raise BpttError(f"--gold: tag {i + 1}: {e}") from None
    iob2 = to_iob2(gold, "IOBES")  # every prefix B, I, E, S read by conlleval's rules
    for i, (tag, t) in enumerate(zip(gold, iob2)):
        if t not in known:
            raise BpttError(
                f"--gold: tag {i + 1}, {tag!r}: not a tag of this model (it tags {', '.join(known)})"
            )
    return iob2


# ---------------------------------------------------------------------------------------------
# the demo model: the lecture RNN tagging person names from the form of each word


def word_features(words):
    """x⟨t⟩ for each word from its form alone, so names never seen in training still light up.

    Returns: X (T, n_x) float64: 8 shape features and a one-hot hash of the lower-cased word.
    """
    X = np.zeros((len(words), 8 + HASH_BUCKETS))
    for t, w in enumerate(words):
        X[t, :8] = [
            w[:1].isupper(),
            w.islower(),
            len(w) > 1 and w.isupper(),
            not any(c.isalnum() for c in w),
            any(c.isdigit() for c in w),
            t == 0,  # sentence-initial: capitalised anyway
            w.endswith(".") and len(w) <= 4,  # "Dr.", "J."
            "-" in w.strip("-"),
        ]
        X[t, 8 + zlib.crc32(w.lower().encode()) % HASH_BUCKETS] = 1.0
    return X


def train_demo_model(steps=300, seed=0, n_a=24, batch_size=32):
    """The lecture RNN (sigmoid output: "is this word part of a person name?") trained by BPTT.

    Returns: params (float64).
    """
    from ..io.synthetic import make_corpus
    from ..models.lecture import init_params, sequence_loss
    from ..training.optim import Adam, clip_grad_norm

    if steps < 0:
        raise BpttError(f"--steps: expected a non-negative number, got {steps}")
    corpus = make_corpus(2000, seed=seed, split="train")
    rng = np.random.default_rng(seed)
    params = init_params(8 + HASH_BUCKETS, n_a, 1, seed=seed, dtype=np.float64)
    opt = Adam(lr=0.01)
    for _ in range(steps):
        chosen = [corpus[i] for i in rng.choice(len(corpus), size=batch_size, replace=False)]
        T = max(len(s.words) for s in chosen)
        X = np.zeros((T, batch_size, 8 + HASH_BUCKETS))
        Y = np.zeros((T, batch_size))
        mask = np.zeros((T, batch_size), dtype=bool)
        for b, s in enumerate(chosen):
            n = len(s.words)
            X[:n, b] = word_features(s.words)
            Y[:n, b] = [tag.endswith("PER") for tag in s.tags]
            mask[:n, b] = True
        _, grads = sequence_loss(params, X, Y, mask=mask, reduction="mean")
        clip_grad_norm(grads, 5.0)
        opt.step(params, grads)
    return params


def demo_trace(words, gold=None, steps=300, seed=0):
    """Train the demo model and trace ``words`` through it (tags "PER" and "O")."""
    from ..pictures.plots import trace_from_params

    params = train_demo_model(steps, seed)
    Y = None if gold is None else np.array([tag.endswith("PER") for tag in gold], dtype=float)
    return trace_from_params(
        params,
        words,
        word_features(words),
        Y,
        tags=("O", "PER"),
        title=f"BPTT through the lecture RNN (n_a = 24, {steps} steps of training): is each word in a name?",
    )
