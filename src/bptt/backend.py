"""Which array library runs the hot loops: NumPy, or CuPy for arrays on a GPU."""

from __future__ import annotations

import numpy as np


def array_namespace(x):
    """Return the module whose functions operate on ``x`` (``numpy`` or ``cupy``)."""
    if type(x).__module__.split(".")[0] == "cupy":
        import cupy

        return cupy
    return np
