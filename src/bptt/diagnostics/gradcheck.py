"""Check hand-written gradients against central differences, in float64.

For every element θ_i of every checked array:

    ∂L/∂θ_i ≈ (L(θ_i + ε) − L(θ_i − ε)) / 2ε          error O(ε²)

and the relative error |numeric − analytic| / max(|numeric| + |analytic|, floor)
is reported per array, with floor = 1e-3 · (the array's largest |analytic| entry): the
float64 differences carry about 1e-10 of absolute round-off, so entries a thousand times
smaller than the array's largest are compared on that array's scale, not on their own.
Use it on your own models too: any function that returns ``(L, grads)`` can be checked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import BpttError, check_array, is_real


@dataclass
class GradcheckReport:
    """Max relative error (and the numeric/analytic pair behind it) per array."""

    errors: dict  # name -> max relative error
    checked: dict  # name -> number of elements checked

    def ok(self, tol=1e-6):
        return all(e < tol for e in self.errors.values())

    @property
    def max_error(self):
        return max(self.errors.values(), default=0.0)

    def __str__(self):
        width = max((len(k) for k in self.errors), default=4)
        lines = [f"{'array':<{width}}  elements  max rel. error"]
        for k, e in self.errors.items():
            lines.append(f"{k:<{width}}  {self.checked[k]:>8}  {e:.2e}")
        return "\n".join(lines)


def gradcheck(fun, arrays, *, eps=1e-6, max_elements=None, floor=1e-10, scale_floor=1e-3, seed=0):
    """Compare ``fun``'s analytic gradients with central differences.

    fun: ``fun(arrays) -> (L, grads)``, with ``grads[name]`` shaped like ``arrays[name]``
    for every name to check (names missing from ``grads`` are not checked).
    arrays: dict of arrays; copied to float64 first.
    max_elements: check at most this many randomly chosen elements per array.
    floor, scale_floor: the error's denominator is at least max(floor, scale_floor · max|analytic|).
    Returns: a GradcheckReport.
    """
    if not callable(fun):
        raise BpttError(f"fun: expected a function arrays -> (L, grads), got {type(fun).__name__}")
    if not isinstance(arrays, dict):
        raise BpttError(f"arrays: expected a dict of name -> array, got {type(arrays).__name__}")
    if not (is_real(eps) and 0 < eps < np.inf):
        raise BpttError(f"eps: must be a number > 0, got {eps!r}")
    whole = isinstance(max_elements, (int, np.integer)) and not isinstance(max_elements, bool)
    if max_elements is not None and not (whole and max_elements >= 0):
        raise BpttError(f"max_elements: must be None or an integer >= 0, got {max_elements!r}")
    for k, v in arrays.items():
        dtype = np.asarray(v).dtype
        if dtype.kind not in "biuf":  # float64 would fail on text, drop an imaginary part, or misread objects
            raise BpttError(f"arrays[{k!r}]: expected an array of real numbers, got dtype {dtype}")
    arrays = {k: np.array(v, dtype=np.float64) for k, v in arrays.items()}
    for k, v in arrays.items():
        check_array(f"arrays[{k!r}]", v, tuple(f"d{i}" for i in range(v.ndim)))
    result = fun(arrays)
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)):
        raise BpttError(f"fun: must return a pair (L, grads dict), got {type(result).__name__}")
    if not (np.ndim(result[0]) == 0 and np.asarray(result[0]).dtype.kind in "iuf"):
        raise BpttError(f"fun: L must be a real number, got {type(result[0]).__name__} {np.shape(result[0])}")
    grads = result[1]
    rng = np.random.default_rng(seed)
    errors, checked = {}, {}
    for name, analytic in grads.items():
        if name not in arrays:
            continue
        x = arrays[name]
        if np.asarray(analytic).dtype.kind not in "iuf":
            raise BpttError(
                f"grads[{name!r}]: expected an array of real numbers, got {type(analytic).__name__}"
            )
        analytic = np.asarray(analytic, dtype=np.float64)
        if analytic.shape != x.shape:
            raise BpttError(f"grads[{name!r}]: shape {analytic.shape} differs from the array's {x.shape}")
        flat = x.reshape(-1)  # a view: perturbing it perturbs arrays[name]
        idx = np.arange(flat.size)
        if max_elements is not None and flat.size > max_elements:
            idx = rng.choice(flat.size, size=max_elements, replace=False)
        worst = 0.0
        denom_floor = max(floor, scale_floor * float(np.abs(analytic).max(initial=0.0)))
        for i in idx:
            old = flat[i]
            flat[i] = old + eps
            L_plus = fun(arrays)[0]
            flat[i] = old - eps
            L_minus = fun(arrays)[0]
            flat[i] = old
            numeric = (L_plus - L_minus) / (2 * eps)
            a = analytic.reshape(-1)[i]
            worst = max(worst, abs(numeric - a) / max(abs(numeric) + abs(a), denom_floor))
        errors[name] = worst
        checked[name] = len(idx)
    return GradcheckReport(errors, checked)
