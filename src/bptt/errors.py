"""One error type for everything a user can get wrong, with a one-line message.

Every message names what was wrong: the argument (``X: expected 3 dimensions
(T, B, n_x), got 2``) or the file and line (``train.txt:12: expected ...``).
The command line prints the message alone and exits with status 2.
"""

from __future__ import annotations

import numpy as np


class BpttError(ValueError):
    """A problem with the user's input: bad argument, file, or model directory."""


def check_array(name, x, dims, *, sizes=None, floating=True, finite=True):
    """Check that ``x`` is an array with the named dimensions and return it.

    dims: names of the expected dimensions, e.g. ``("T", "B", "n_x")``.
    sizes: ``{dim_name: size}`` already fixed by other arguments; checked and
    updated in place with the sizes found here, so a call chain checks that
    all arguments agree.
    """
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise BpttError(f"{name}: expected an array, got {type(x).__name__}")
    if x.ndim != len(dims):
        raise BpttError(
            f"{name}: expected {len(dims)} dimensions ({', '.join(dims)}), got shape {tuple(x.shape)}"
        )
    if sizes is not None:
        for dim, n in zip(dims, x.shape):
            want = sizes.setdefault(dim, n)
            if want != n:
                raise BpttError(
                    f"{name}: dimension {dim} is {n} but other arguments give {dim} = {want}"
                    f" (shape {tuple(x.shape)}, expected ({', '.join(dims)}))"
                )
    if floating and x.dtype.kind != "f":
        raise BpttError(f"{name}: expected a floating-point array, got dtype {x.dtype}")
    if floating and not x.dtype.isnative:  # BLAS and the compiled loops take the machine's byte order
        raise BpttError(
            f"{name}: dtype {x.dtype.str} is not the machine's byte order: use .astype('{x.dtype.str[1:]}')"
        )
    if finite and x.dtype.kind not in "biufc":  # isfinite takes numbers only
        raise BpttError(f"{name}: expected an array of numbers, got dtype {x.dtype}")
    if finite and x.size and not bool(np.isfinite(x).all()):
        raise BpttError(f"{name}: contains NaN or Inf")
    return x


def is_real(x):
    """Whether ``x`` is a real Python or NumPy number (a bool is not)."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def check_choice(name, value, choices):
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        raise BpttError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
