"""Sparsity penalties and their thresholding (proximal) operators (model.md section 3).

``prox(x, t, penalty, a)`` = argmin_u t P(u) + 1/2 ||u - x||^2, entrywise.
``t`` and ``a`` broadcast against ``x`` (so a batch of runs, one per column,
can carry its own threshold).
"""

from __future__ import annotations

import numpy as np

PENALTIES = ("l0", "l1", "tl1")


def check_penalty(penalty: str) -> str:
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}, got {penalty!r}")
    return penalty


def _check_nonneg(name, value):
    if not np.all(np.asarray(value) >= 0):
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def _check_a(a):
    if not np.all(np.asarray(a) > 0):
        raise ValueError(f"a (TL1 shape parameter) must be > 0, got {a!r}")


def penalty_value(u: np.ndarray, penalty: str, a: float = 1.0) -> np.ndarray:
    """``P(u)`` summed over the first axis: l0 count, l1 norm, or TL1
    ``sum_i (a+1)|u_i| / (a+|u_i|)``."""
    check_penalty(penalty)
    u = np.abs(np.asarray(u, dtype=float))
    if penalty == "l0":
        return np.sum(u != 0, axis=0).astype(float)
    if penalty == "l1":
        return np.sum(u, axis=0)
    _check_a(a)
    return np.sum((a + 1.0) * u / (a + u), axis=0)


def tl1_threshold(t, a):
    """The TL1 thresholding level ``t*`` below which prox gives 0 (Zhang & Xin 2018)."""
    t = np.asarray(t, dtype=float)
    a = np.asarray(a, dtype=float)
    small = t <= a * a / (2.0 * (a + 1.0))
    return np.where(small, (a + 1.0) * t / a, np.sqrt(2.0 * t * (a + 1.0)) - a / 2.0)


def threshold(t, penalty: str, a: float = 1.0):
    """Magnitude at or below which ``prox`` returns exactly 0."""
    check_penalty(penalty)
    _check_nonneg("t", t)
    t = np.asarray(t, dtype=float)
    if penalty == "l0":
        return np.sqrt(2.0 * t)
    if penalty == "l1":
        return t
    _check_a(a)
    return tl1_threshold(t, a)


def prox(x: np.ndarray, t, penalty: str, a: float = 1.0) -> np.ndarray:
    """Thresholding operator ``prox_{t P}(x)``, entrywise.

    Parameters
    ----------
    x : array
        Points to threshold.
    t : float or array broadcasting with ``x``
        Threshold parameter ``t = lambda / beta >= 0``.
    penalty : {"l0", "l1", "tl1"}
    a : float or array, TL1 shape parameter ``> 0`` (ignored otherwise).

    Notes
    -----
    At exactly the threshold l0 and TL1 have two minimisers; this returns 0.
    """
    check_penalty(penalty)
    _check_nonneg("t", t)
    x = np.asarray(x, dtype=float)
    t = np.asarray(t, dtype=float)
    ax = np.abs(x)
    if penalty == "l1":
        return np.sign(x) * np.maximum(ax - t, 0.0)
    if penalty == "l0":
        return np.where(ax > np.sqrt(2.0 * t), x, 0.0)
    _check_a(a)
    a = np.asarray(a, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        # The closed form (2/3)(a+|x|) cos(phi/3) - 2a/3 + |x|/3 with
        # phi = arccos(1 - eps), eps = 27 t a (a+1) / (2 (a+|x|)^3), rewritten
        # without cancellation: it equals |x| - (4/3)(a+|x|) sin^2(phi/6), and
        # arccos(1 - eps) = 2 arcsin(sqrt(eps/2)). Same values, but accurate
        # to rounding for small t or small |x| (t = 0 gives exactly x).
        eps = 27.0 * t * a * (a + 1.0) / (2.0 * (a + ax) ** 3)
        phi = 2.0 * np.arcsin(np.sqrt(np.clip(eps, 0.0, 2.0) / 2.0))
        val = ax - (4.0 / 3.0) * (a + ax) * np.sin(phi / 6.0) ** 2
    return np.where(ax > tl1_threshold(t, a), np.sign(x) * val, 0.0)


def prox_derivative(x: np.ndarray, t, penalty: str, a: float = 1.0) -> np.ndarray:
    """d prox / dx entrywise, away from the threshold (0 below it).

    Used to polish fixed points by Newton's method. For TL1 it follows from
    differentiating the optimality condition ``u - x + t rho'(u) = 0``.
    """
    x = np.asarray(x, dtype=float)
    u = prox(x, t, penalty, a)
    on = u != 0
    if penalty in ("l0", "l1"):
        return on.astype(float)
    a = np.asarray(a, dtype=float)
    t = np.asarray(t, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = 1.0 / (1.0 - 2.0 * t * a * (a + 1.0) / (a + np.abs(u)) ** 3)
    return np.where(on, d, 0.0)
