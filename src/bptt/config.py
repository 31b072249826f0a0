"""Checked configurations: every field of a settings dataclass is checked when it is built.

A rule is ``(check, description)``: ``check(value) -> bool``, and the description completes
"expected ..." in the one-line error. A bad option, an edited run.json or a re-signed config.json
fails with a line naming the field, before anything is read, allocated or sized by it.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import fields

from .errors import BpttError


def number(low, high=None, *, integer=False, above=False, below=False, optional=False):
    """A rule for a number from ``low`` to ``high``; ``above``/``below`` exclude the ends.

    ``high=None``: no upper end, but finite. ``optional``: None passes too.
    """

    def ok(v):
        if v is None:
            return optional
        if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)):
            return False
        if not (low < v if above else low <= v):  # NaN fails here
            return False
        return math.isfinite(v) if high is None else (v < high if below else v <= high)

    kind = "an integer" if integer else "a number"
    if high is None:
        what = f"{kind} {'>' if above else '>='} {low}" + ("" if integer else ", finite")
    else:
        what = f"{kind} in {'(' if above else '['}{low}, {high}{')' if below else ']'}"
    return ok, what + (", or null" if optional else "")


def string(optional=False):
    """A rule for a string (or None with ``optional``)."""
    return (lambda v: isinstance(v, str) or (optional and v is None)), "a string" + (" or null" * optional)


def flag():
    """A rule for true or false."""
    return (lambda v: isinstance(v, bool)), "true or false"


def one_of(choices):
    """A rule for one of the strings ``choices``."""
    names = [repr(c) for c in choices]
    what = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return (lambda v: isinstance(v, str) and v in choices), what


class Checked:
    """Mixin for a dataclass whose class attribute ``RULES`` maps every field to its rule.

    ``KIND`` names the settings in messages ("the tagger's settings"), ``WHERE`` their key in a
    document (the default start of `from_json`'s errors); ``HINT`` is added when a document lacks them.

    ``ADDED`` maps each field added after documents of these settings were first written to the
    value such a document means by its absence: the behaviour before the field existed (e.g.
    ``{"cell": "rnn"}``: a tagger saved before there was a choice of cell is the vanilla one).
    `from_json` fills it in where it is missing; every other field must be present. A field keeps
    its entry for good: documents written without it stay readable.
    """

    RULES: dict = {}
    ADDED: dict = {}
    KIND, WHERE, HINT = "settings", "settings", ""

    def __post_init__(self):
        for name, (ok, what) in self.RULES.items():
            value = getattr(self, name)
            if not ok(value):
                raise BpttError(f"{name}: expected {what}, got {reprlib.repr(value)}")

    @classmethod
    def from_json(cls, d, where=None):
        """The settings as saved (`dataclasses.asdict`), every field checked; errors start with ``where``."""
        where = cls.WHERE if where is None else where
        if d is None:
            raise BpttError(f"{where}: missing{cls.HINT}")
        if not isinstance(d, dict):
            raise BpttError(f"{where}: expected an object of {cls.KIND}, got {type(d).__name__}")
        names = [f.name for f in fields(cls)]
        d = {**{k: v for k, v in cls.ADDED.items() if k not in d}, **d}  # written before the field existed
        missing = [k for k in names if k not in d]
        if missing:
            raise BpttError(f"{where}: missing the field {missing[0]!r}")
        unknown = [k for k in d if k not in names]
        if unknown:
            raise BpttError(f"{where}: unknown field {reprlib.repr(unknown[0])}")
        try:
            return cls(**d)
        except BpttError as e:
            raise BpttError(f"{where}.{e}") from None
