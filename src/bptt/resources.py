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


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_KEPT = 1 << 30  # large arrays from the heap, and freed memory kept, up to this many bytes
_PAD = 1 << 26  # and the heap grown 64 MiB at a time


def keep_freed_memory():
    """Ask glibc's malloc to serve arrays of up to 1 GiB from its heap and to keep what is freed.

    A training step allocates its (T, B, ·) arrays afresh and frees them at the end; by default glibc
    maps each large one anew from the system and unmaps it when freed, so every step pays page faults
    and the zeroing of new pages: 40% of an LSTM update at T = 100, B = 20, n_a = 128 on the machine
    of BENCHMARKS.md (21 against 13 ms). Kept, the next step reuses the same pages. The cost: memory
    freed stays with the process until it ends. Called by the command line; a library user may call
    it too. Returns: whether it applied (glibc only; elsewhere nothing changes).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((_M_MMAP_THRESHOLD, _KEPT), (_M_TRIM_THRESHOLD, _KEPT), (_M_TOP_PAD, _PAD))
    return all(mallopt(option, value) == 1 for option, value in settings)
