"""What the machine can give: memory available, checked before large allocations."""

from __future__ import annotations

import os

from .errors import BpttError


def available_memory():
    """Bytes a new allocation can get: MemAvailable of /proc/meminfo, else the physical memory (where the
    system tells), else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # in kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def gib(n):
    """Bytes in MiB or GiB for messages (absurd sizes as a power of two)."""
    if n < 2**30:
        return f"{n / 2**20:,.1f} MiB"
    return f"{n / 2**30:,.1f} GiB" if n < 2**90 else f"2^{n.bit_length() - 1} bytes"


def check_memory(what, nbytes, detail="", advice=""):
    """Refuse, in one line naming ``what``, work needing more than the memory available.

    detail: what the estimate is made of; advice: what to change. Both are optional clauses.
    """
    free = available_memory()
    if free is not None and nbytes > free:
        raise BpttError(
            f"{what}: needs about {gib(nbytes)} of memory{f' ({detail})' if detail else ''},"
            f" more than the {gib(free)} available{f'; {advice}' if advice else ''}"
        )
