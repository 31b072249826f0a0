"""Test-only fault injection: the process delivers a signal to itself at a chosen point.

Tests of interruption and resumption must not depend on timing (a signal sent "0.1 s after a
progress line" lands in a different place on a fast or a loaded machine). Instead the code calls
`point(name)` at the places where a fault matters, and the environment variable ``BPTT_FAULT``
(read once, at the first point) names where the process should signal itself:

    BPTT_FAULT="SIGNAL@POINT[#N]"

SIGNAL is SIGKILL, SIGTERM or SIGINT; the fault fires the N-th time (default 1) this process
reaches POINT. The points are:

    batch:E:B          before batch B (0-based) of epoch E (1-based) of ``bptt train``
    eval:E             after the batches of epoch E, before its evaluation and saving
    step:NAME:S        before batch S (0-based) of the long-range configuration NAME (``bptt longrange``)
    write:FILE         an atomic write of FILE (its base name) has created the temporary file
    mid-write:FILE     half of the first chunk of FILE's data is in the temporary file
    rename:FILE        the temporary file is complete and durable, before it replaces FILE
    checkpoint:swap    between moving checkpoint/ to checkpoint.old/ and the new one into place
    any                every point above counts: "SIGKILL@any#17" fires at the 17th point reached
    PREFIX*            every point whose name starts with PREFIX: "SIGKILL@write:*" kills a process
                       that writes any file (the processes of a parallel run other than 0 must not)

It is meant for tests, is never set by bptt itself, and costs one global lookup per point when unset.
"""

from __future__ import annotations

import os
import signal

from .errors import BpttError

ENV = "BPTT_FAULT"
_SIGNALS = ("SIGKILL", "SIGTERM", "SIGINT")

_fault = None  # [signum, point, hits left] once read; False when none is set or it has fired


def _parse(spec):
    try:
        name, _, where = spec.partition("@")
        where, _, count = where.partition("#")
        n = int(count) if count else 1
        if name not in _SIGNALS or not where or n < 1:
            raise ValueError
    except ValueError:
        raise BpttError(
            f"{ENV}={spec!r}: expected SIGNAL@POINT[#N] with SIGNAL one of {', '.join(_SIGNALS)}"
        ) from None
    return [getattr(signal, name), where, n]


def armed(name):
    """Whether a fault is waiting at ``name`` (so a caller can set up a finer-grained point)."""
    global _fault
    if _fault is None:
        spec = os.environ.get(ENV)
        _fault = _parse(spec) if spec else False
    if not _fault:
        return False
    where = _fault[1]
    return where in (name, "any") or (where.endswith("*") and name.startswith(where[:-1]))


def point(name):
    """Signal this process if ``BPTT_FAULT`` names this point and this is the chosen hit."""
    global _fault
    if _fault is False or not armed(name):
        return
    _fault[2] -= 1
    if _fault[2] == 0:
        signum, _fault = _fault[0], False  # once: a handled SIGINT/SIGTERM then saves and stops
        os.kill(os.getpid(), signum)


def reset():
    """Read ``BPTT_FAULT`` again at the next point (for tests that set it in this process)."""
    global _fault
    _fault = None
