"""``bptt dates train`` and ``bptt dates convert``: an encoder–decoder (with attention) that writes dates
the many ways people write them as ISO dates."""

from __future__ import annotations

import sys

from ..errors import BpttError
from .common import (
    HELP_FORMAT,
    add_budget_options,
    add_run_options,
    add_seed_option,
    add_threads_option,
    blas_threads,
    checked_settings,
    given_options,
    minutes_of,
    open_input,
    run_training,
    track_given,
)

TRAIN_EXAMPLES = """\
  # the defaults: an LSTM encoder-decoder with attention, 10 minutes (one core)
  bptt dates train --out runs/dates
  # without attention (one summary of the source read at every step), for comparison
  bptt dates train --no-attention --out runs/dates-plain
  # continue an interrupted run
  bptt dates train --resume runs/dates
"""

CONVERT_EXAMPLES = """\
  echo "Tuesday, July 10, 2007" | bptt dates convert --model runs/dates        # 2007-07-10
  bptt dates convert --model runs/dates --input dates.txt > iso.txt
  bptt dates convert --model runs/dates --input dates.txt --beam 5
A line that cannot be read (empty, too long, a character no date format uses, or an output that is
no calendar date) gets a message naming its line on stderr and an empty line on stdout, so the
output stays aligned with the input; the exit status is then 1. An input without a line is an error (2).
"""

OPTIONS = {"minutes": "--time-budget", "attention": "--no-attention", "attention_units": "--attention-units"}
CHUNK = 256  # lines converted at once (fewer when the input is a pipe and no more has arrived)


def add_parser(sub):
    from ..seq2seq.dates import DatesConfig

    top = sub.add_parser(
        "dates",
        help="date normalisation: an encoder-decoder with attention (train, convert)",
        description="Dates written the many ways people write them ('3 May 1979', 'Tuesday, July 10, 2007',\n"
        "'5/30/09', \"the 3rd of may '79\") -> ISO dates, by an encoder-decoder with additive attention\n"
        "trained by hand-written BPTT on dates bptt generates.",
        formatter_class=HELP_FORMAT,
        epilog="examples:\n" + TRAIN_EXAMPLES + CONVERT_EXAMPLES,
    )
    top.set_defaults(run=lambda args: top.print_help() or 2)
    inner = top.add_subparsers(dest="dates_command", metavar="COMMAND")
    d = DatesConfig.__dataclass_fields__
    p = inner.add_parser(
        "train",
        help="train a date normaliser",
        description="Train the encoder-decoder on fresh batches of generated dates (the training dates, in\n"
        "the training formats), keep the weights with the best exact match on validation dates, and test\n"
        "on dates never seen in training: in the training formats, and in formats held out of training.\n"
        "--out gets weights.safetensors, log.jsonl, result.json, report.html (attention maps) and a\n"
        "checkpoint at each validation; --resume DIR goes on.",
        formatter_class=HELP_FORMAT,
        epilog="examples:\n" + TRAIN_EXAMPLES,
    )
    g = p.add_argument_group("network")

    def option(name, help, **kw):
        default = d[name.replace("-", "_")].default
        g.add_argument(f"--{name}", default=default, help=f"{help} (default {default})", **kw)

    option("cell", "the recurrent cell of the encoder and the decoder", choices=["rnn", "gru", "lstm"])
    g.add_argument(
        "--no-attention", dest="attention", action="store_false", default=True,
        help="no attention: the decoder reads one summary of the source at every step",
    )  # fmt: skip
    option("hidden", "hidden units of each encoder direction and of the decoder", type=int)
    option("attention-units", "units of the attention's scoring layer", type=int)
    add_budget_options(p, d["minutes"].default, "validations")
    g = p.add_argument_group("training")
    option("batch-size", "dates per update", type=int)
    option("lr", "Adam's learning rate", type=float)
    option("clip", "clip the global gradient norm to this; 0 off", type=float)
    option("eval-every", "updates between validations and checkpoints", type=int)
    option("valid-size", "validation dates (the weights kept are the best on them)", type=int)
    option("test-size", "test dates, in the training formats and in the held-out formats", type=int)
    option("beam", "beam width of the final test (1: greedy only)", type=int)
    option("dtype", "of the weights, gradients and optimizer state", choices=["float32", "float64"])
    add_seed_option(g, "random seed: the weights and every draw of dates")
    add_run_options(
        p, "continue the run in DIR; only --quiet and --threads may be added",
        "the matrices of one batch of dates are small",
    )  # fmt: skip
    track_given(p, run_train)

    c = inner.add_parser(
        "convert",
        help="write dates as ISO dates, one a line",
        description="Read one written date a line (--input FILE, or standard input) and write its ISO date\n"
        "(YYYY-MM-DD), one a line, in order.",
        formatter_class=HELP_FORMAT,
        epilog="examples:\n" + CONVERT_EXAMPLES,
    )
    c.add_argument("--model", required=True, metavar="DIR", help="the run directory of bptt dates train")
    c.add_argument("--input", metavar="FILE", help="dates, one a line (default: standard input)")
    c.add_argument("--beam", type=int, default=1, help="beam width (default 1: greedy decoding)")
    add_threads_option(c, "the matrices of a few dates are small")
    c.set_defaults(run=run_convert)


def run_train(defaults, args):
    from ..seq2seq.dates import DatesTrainer

    return run_training(*given_options(defaults, args), config, DatesTrainer)


def config(args):
    """The run's DatesConfig from the options, checked (errors name the option)."""
    from ..seq2seq.dates import DatesConfig

    names = ("cell", "attention", "hidden", "attention_units", "batch_size", "lr", "clip", "updates",
             "eval_every", "valid_size", "test_size", "beam", "seed", "dtype")  # fmt: skip
    return checked_settings(
        DatesConfig, OPTIONS, minutes=minutes_of(args, DatesConfig), **{k: getattr(args, k) for k in names}
    )


def run_convert(args):
    from ..io.output import open_output
    from ..seq2seq.dates import load_date_model

    if not 1 <= args.beam <= 64:
        raise BpttError(f"--beam: expected 1 to 64, got {args.beam}")
    model = load_date_model(args.model)
    stream, name, ready = open_input(args.input)
    failed = lines = 0
    with blas_threads(args.threads), open_output("-", inputs=[args.input] if args.input else [0]) as out:
        pending = []  # (line number, text) waiting to be converted

        def flush():
            nonlocal failed
            answers = convert_lines(model, pending, args.beam)
            for (lineno, _), (iso, problem) in zip(pending, answers):
                if problem:
                    failed += 1
                    print(f"bptt: {name}:{lineno}: {problem}", file=sys.stderr)
                out.write(iso + "\n")
            out.flush()
            pending.clear()

        try:
            for lineno, line in input_lines(stream):
                pending.append((lineno, line))
                lines = lineno
                if len(pending) >= CHUNK or (ready is not None and not ready()):
                    flush()
            flush()
        finally:
            stream.close()
    if not lines:  # an empty line is a record (an empty answer); an input without a line has none
        raise BpttError(f"{name}: no dates to convert (empty input)")
    return 1 if failed else 0


MAX_LINE_BYTES = 4096  # a longer line is no date; it is skipped (with a message), not read whole


def input_lines(stream):
    """(line number, text without its line end) for each line of a binary stream; a line that is not
    text (invalid UTF-8, over MAX_LINE_BYTES) comes as (line number, UnreadableLine(problem)), so that
    it gets its message and its empty output line and the rest goes on."""
    lineno = 0
    while raw := stream.readline(MAX_LINE_BYTES + 1):
        lineno += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # the rest of the line
                raw = stream.readline(MAX_LINE_BYTES + 1)
            yield lineno, UnreadableLine(f"line over {MAX_LINE_BYTES} bytes")
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield lineno, UnreadableLine(f"invalid UTF-8 (byte 0x{raw[e.start]:02x} at byte {e.start + 1})")
            continue
        if lineno == 1 and text.startswith("\ufeff"):  # a UTF-8 byte-order mark
            text = text[1:]
        yield lineno, text.rstrip("\r\n")


class UnreadableLine(str):
    """A line that is not text: the string is the problem."""


def convert_lines(model, lines, beam):
    """(ISO date or "", the problem or None) for each (line number, text)."""
    import datetime

    from ..tasks import dates as task

    answers = [("", None)] * len(lines)
    readable = []
    for k, (_, text) in enumerate(lines):
        if isinstance(text, UnreadableLine):
            answers[k] = ("", str(text))
            continue
        text = text.strip()
        try:
            task.check_chars(text)
        except BpttError as e:
            answers[k] = ("", str(e))
            continue
        readable.append((k, text))
    if readable:
        isos = model.convert([t for _, t in readable], beam)
        for (k, text), iso in zip(readable, isos):
            try:
                datetime.date.fromisoformat(iso)
                answers[k] = (
                    (iso, None) if len(iso) == task.ISO_LEN else ("", f"no date read (wrote {iso!r})")
                )
            except ValueError:
                answers[k] = ("", f"no calendar date read from {text!r} (the model wrote {iso!r})")
    return answers
