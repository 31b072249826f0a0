"""The training state a checkpoint holds, checked array by array and field by field before a resume.

A checkpoint (`bptt.io.modelfiles.save_checkpoint`) holds

    arrays   param.NAME, the weights; ema.NAME, their moving average (when kept); opt.KEY, the optimizer's
             state (moments, step counts)
    state    the run's counters (``STATE_FIELDS``: epoch, best F1, RNG state, the log, ...) and, for a
             checkpoint taken inside an epoch, ``inside_epoch``: the next batch, the RNG state the
             epoch's batch order was drawn from, and the running totals (``EPOCH_TOTALS``)

state.json checks itself (self_sha256), but anyone can re-sign it: so `load_training_state` checks every
array against the run's network and `check_state` every field against the run's settings before any
is used. Errors are one line naming the file and the array or field.
"""

from __future__ import annotations

import math
import os
import reprlib

import numpy as np

from ..errors import BpttError
from ..io.modelfiles import load_checkpoint, save_checkpoint
from ..pictures.report import check_record

# the running totals of an epoch, saved with a checkpoint taken inside it
EPOCH_TOTALS = ("total_loss", "tokens", "n_sentences", "n_clipped", "n_bad", "n_skipped", "n_steps")


def save_training_state(out, params, ema, opt, state):
    """Save the weights, their average (or None), the optimizer's state and ``state`` as out/checkpoint/."""
    arrays = {f"param.{k}": v for k, v in params.items()}
    if ema is not None:
        arrays.update({f"ema.{k}": v for k, v in ema.items()})
    arrays.update({f"opt.{k}": v for k, v in opt.state_dict().items()})
    save_checkpoint(out, arrays, state)


def load_training_state(out, params, ema, opt, tcfg, n_sentences):
    """Load the checkpoint in ``out`` into ``params``, ``ema`` (or None) and ``opt``, in place, once every
    array and every field of its state is checked: the arrays must be exactly this run's network, its
    average and its optimizer's state.
    Returns: the checkpoint's state (see `check_state`), or None when there is no checkpoint.
    """
    found = load_checkpoint(out)
    if found is None:
        return None
    arrays, state = found
    where = os.path.join(out, "checkpoint")
    check_state(state, os.path.join(where, "state.json"), tcfg, n_sentences)
    restore_arrays(where, arrays, params, ema, opt)
    return state


def restore_arrays(where, arrays, params, ema, opt):
    """Load a checkpoint's ``arrays`` into ``params``, ``ema`` (or None) and ``opt``, in place, once each is
    checked: they must be exactly this run's network, its average and its optimizer's state, no more.
    Errors are one line naming ``where`` (the checkpoint directory) and the array.
    """
    for name in [f"param.{k}" for k in params] + [f"ema.{k}" for k in ema or ()]:
        want, got = params[name.split(".", 1)[1]], arrays.get(name)
        if got is None or got.shape != want.shape or got.dtype != want.dtype:
            found = "missing" if got is None else f"{got.dtype}{list(got.shape)}"
            raise BpttError(
                f"{where}: {name} is {found}, this run's network needs"
                f" {want.dtype}{list(want.shape)} (a checkpoint of another run?)"
            )
    expected = {f"param.{k}" for k in params} | {f"ema.{k}" for k in ema or ()}
    extra = sorted(k for k in arrays if k not in expected and not k.startswith("opt."))
    if extra:
        raise BpttError(
            f"{where}: holds {extra[0]}, which this run's network does not have"
            f"{f' (and {len(extra) - 1} more)' if len(extra) > 1 else ''} (a checkpoint of another run?)"
        )
    try:
        opt.check_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("opt.")}, params)
    except BpttError as e:
        raise BpttError(f"{where}: opt.{e} (a checkpoint of another run?)") from None
    for k in params:
        params[k] = arrays[f"param.{k}"]
        if ema is not None:
            ema[k] = arrays[f"ema.{k}"]
    opt.load_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("opt.")})


STATE_FIELDS = ("epoch", "best_f1", "bad_epochs", "train_seconds", "ema_updates", "rng", "log")
INSIDE_FIELDS = ("batch", "rng_epoch", "seconds", "totals", "grad_norms")


def check_state(state, where, tcfg, n_sentences):
    """Check every field of a checkpoint's state (`Trainer.state`) before any is used.

    state.json checks itself (self_sha256), but anyone can re-sign it: so each field's type and range
    is checked here, against the run's settings (0 <= epoch <= epochs; a log of epochs 1..epoch; an
    RNG state of the run's generator, PCG64; inside an epoch: its batch, totals and gradient norms).
    Errors are one line naming the file and the field.
    """

    def fail(field, what, value):
        raise BpttError(f"{where}: {field}: expected {what}, got {reprlib.repr(value)}")

    def integer(field, value, low, high):
        if type(value) is not int or not low <= value <= high:
            fail(field, f"an integer from {low} to {high}", value)

    def number(field, value, low, high=math.inf):
        ok = type(value) in (int, float) and math.isfinite(value) and low <= value <= high
        if not ok:
            fail(field, f"a finite number >= {low}" + ("" if high == math.inf else f" and <= {high}"), value)

    if not isinstance(state, dict):
        fail("state", "an object", state)
    unknown = [k for k in state if k not in STATE_FIELDS + ("inside_epoch",)]
    if unknown:
        raise BpttError(f"{where}: state: unknown field {reprlib.repr(unknown[0])}")
    missing = [k for k in STATE_FIELDS if k not in state and k != "ema_updates"]
    if missing:
        raise BpttError(f"{where}: state: missing the field {missing[0]!r}")
    inside = state.get("inside_epoch")
    epoch = state["epoch"]
    integer("epoch", epoch, 0, tcfg.epochs - (inside is not None))  # an epoch in progress is < epochs
    number("best_f1", state["best_f1"], -1, 100)
    integer("bad_epochs", state["bad_epochs"], 0, epoch)
    number("train_seconds", state["train_seconds"], 0)
    integer("ema_updates", state.get("ema_updates", 0), 0, 2**62)
    check_rng_state(state["rng"], where, "rng")
    log = state["log"]
    if not isinstance(log, list) or len(log) != epoch:
        fail("log", f"a list of {epoch} records (one per finished epoch)", log)
    for i, record in enumerate(log):
        check_record(record, i + 1, f"{where}: log[{i}]")
    if inside is None:
        return
    if not isinstance(inside, dict) or sorted(inside) != sorted(INSIDE_FIELDS):
        fail("inside_epoch", f"an object of {', '.join(INSIDE_FIELDS)}", inside)
    integer("inside_epoch.batch", inside["batch"], 0, n_sentences)
    check_rng_state(inside["rng_epoch"], where, "inside_epoch.rng_epoch")
    number("inside_epoch.seconds", inside["seconds"], 0)
    totals = inside["totals"]
    if not isinstance(totals, dict) or sorted(totals) != sorted(EPOCH_TOTALS):
        fail("inside_epoch.totals", f"an object of {', '.join(EPOCH_TOTALS)}", totals)
    number("inside_epoch.totals.total_loss", totals["total_loss"], 0)
    for k in EPOCH_TOTALS[1:]:
        integer(f"inside_epoch.totals.{k}", totals[k], 0, 2**62)
    norms = inside["grad_norms"]
    if not isinstance(norms, list) or len(norms) > inside["batch"]:
        fail("inside_epoch.grad_norms", f"a list of at most {inside['batch']} numbers (one per batch)", norms)
    for i, v in enumerate(norms):
        number(f"inside_epoch.grad_norms[{i}]", v, 0)


def check_rng_state(value, where, field):
    """A saved state of NumPy's PCG64 (the run's generator) exactly as ``bit_generator.state`` gives it."""
    ints = {"state": 2**128, "inc": 2**128}
    ok = (
        isinstance(value, dict)
        and sorted(value) == ["bit_generator", "has_uint32", "state", "uinteger"]
        and value["bit_generator"] == "PCG64"
        and isinstance(value["state"], dict)
        and sorted(value["state"]) == sorted(ints)
        and all(type(value["state"][k]) is int and 0 <= value["state"][k] < n for k, n in ints.items())
        and value["has_uint32"] in (0, 1)
        and type(value["has_uint32"]) is int
        and type(value["uinteger"]) is int
        and 0 <= value["uinteger"] < 2**32
    )
    if ok:
        try:
            np.random.PCG64().state = value
        except (TypeError, ValueError, KeyError, OverflowError):
            ok = False
    if not ok:
        raise BpttError(
            f"{where}: {field}: expected the state of NumPy's PCG64 generator"
            f" ({{bit_generator, state: {{state, inc}}, has_uint32, uinteger}}), got {reprlib.repr(value)}"
        )


def check_checkpoint_arrays(where, arrays, want, opt, params):
    """A checkpoint's ``arrays`` are exactly the arrays ``want`` (name -> array of the shape and dtype
    expected) and the optimizer's state for ``params`` ("opt.*"), nothing else. Errors name ``where``."""
    for name, w in want.items():
        got = arrays.get(name)
        if got is None or got.shape != w.shape or got.dtype != w.dtype:
            found = "missing" if got is None else f"{got.dtype}{list(got.shape)}"
            raise BpttError(f"{where}: {name} is {found}, this run needs {w.dtype}{list(w.shape)}")
    extra = sorted(k for k in arrays if k not in want and not k.startswith("opt."))
    if extra:
        raise BpttError(f"{where}: holds {extra[0]}, which this run does not have")
    try:
        opt.check_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("opt.")}, params)
    except BpttError as e:
        raise BpttError(f"{where}: opt.{e}") from None


def check_budgeted_state(path, state, fields, integers, numbers, interval):
    """The state.json of a `training.budget` trainer (lm, dates), checked before any field is used: exactly
    ``fields``; ``integers`` ≥ 0; ``numbers`` finite ≥ 0; a non-empty log of evaluation records; the
    running totals ``interval`` (their keys); the RNG state. Errors are one line naming ``path``."""
    if not isinstance(state, dict) or sorted(state) != sorted(fields):
        raise BpttError(f"{path}: expected an object of {', '.join(fields)}")
    for k in integers:
        if type(state[k]) is not int or not 0 <= state[k] < 2**62:
            raise BpttError(f"{path}: {k}: expected an integer >= 0")
    for k in numbers:
        if type(state[k]) not in (int, float) or not math.isfinite(state[k]) or state[k] < 0:
            raise BpttError(f"{path}: {k}: expected a finite number >= 0")
    log = state["log"]
    if not isinstance(log, list) or not log or not all(isinstance(r, dict) for r in log):
        raise BpttError(f"{path}: log: expected a non-empty list of evaluation records")
    iv = state["interval"]
    if not isinstance(iv, dict) or sorted(iv) != sorted(interval):
        raise BpttError(f"{path}: interval: expected an object of {', '.join(sorted(interval))}")
    check_rng_state(state["rng"], path, "rng")
