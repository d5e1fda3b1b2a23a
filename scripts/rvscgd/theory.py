"""The sparsifying operation w* -> u_bar and an explicit error bound (docs/theory.md, section 6).

Everything here is in units of c: ``lam_c = lambda/c``, ``beta_c = beta/c``,
``tau = lam_c / beta_c`` (= lambda/beta), ``M = N/c``. These are closed forms
and 1-D roots written from the scalar equations directly, independent of
``fixed_points`` (which enumerates branches numerically), so each can check
the other.

The bound (ours; the paper's exact statement was not at hand): if every
support entry of w* satisfies ``|w*_i| >= w_min > (1 + beta_c) threshold(tau)``
then every fixed point with ``N > beta`` keeps exactly the support of w* and

- l0: ``u_bar = w*`` (angle 0);
- l1: ``angle(u_bar, w*) <= max_L theta(L)`` over ``L = ||w*||_1`` in its range
  for (s, w_min), with ``M = b + sqrt(1 - 2 b tau L + b^2 tau^2 s)``,
  ``kappa = tau M`` and ``tan theta = kappa sqrt(s - L^2) / (1 - kappa L)``:
  the exact angle depends on w* only through L, so the bound is attained;
- tl1: ``sin angle <= (1 + b) tau G sqrt(s)``, ``G = a(a+1)/(a + p_min)^2``,
  ``p_min = prox((w_min)/(1 + b))``: the largest slope of the penalty on a
  kept entry (not attained in general).

With ``beta < c/2`` no fixed point has ``N <= beta`` (``N >= c - beta``), so the
bound then covers every fixed point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .penalties import check_penalty, prox, threshold


@dataclass(frozen=True)
class ErrorBound:
    """``angle``: bound on angle(u_bar, w*) (rad); ``distance``: the bound on
    ``||u_bar/||u_bar|| - w*||`` (= 2 sin(angle/2)); ``valid``: the condition
    ``w_min > (1 + beta_c) threshold`` holds (else both are NaN);
    ``all_fixed_points``: it covers every fixed point (``beta_c < 1/2``), not
    only those with ``N > beta``; ``attained``: some teacher with these (s,
    w_min) reaches it."""

    angle: float
    distance: float
    valid: bool
    all_fixed_points: bool
    attained: bool


def _check(s, lam_c, beta_c, w_min, penalty, a):
    if int(s) != s or s < 1:
        raise ValueError(f"s must be a positive integer, got {s!r}")
    if not (np.isfinite(lam_c) and lam_c >= 0):
        raise ValueError(f"lam_c must be finite and >= 0, got {lam_c!r}")
    if not (np.isfinite(beta_c) and beta_c > 0):
        raise ValueError(f"beta_c must be finite and > 0, got {beta_c!r}")
    if not (0 < w_min <= 1.0 / math.sqrt(s)):
        raise ValueError(f"w_min must be in (0, 1/sqrt(s)] for a unit s-sparse w*, got {w_min!r}")
    check_penalty(penalty)
    if not a > 0:
        raise ValueError(f"a (TL1 shape parameter) must be > 0, got {a!r}")


def l1_range(s: int, w_min: float) -> tuple[float, float]:
    """Range of ``||w||_1`` over unit s-sparse w with every ``|w_i| >= w_min``:
    the smallest has s-1 entries at w_min and one large, the largest all equal."""
    lo = (s - 1) * w_min + math.sqrt(max(0.0, 1.0 - (s - 1) * w_min**2))
    return lo, math.sqrt(s)


def l1_angle(L: float, s: int, lam_c: float, beta_c: float) -> float:
    """Exact angle(u_bar, w*) of the l1 fixed point with N > beta that keeps the
    whole support, for a teacher with ``||w*||_1 = L`` (needs ``tau M < w_min``)."""
    tau = lam_c / beta_c
    b = beta_c
    M = b + math.sqrt(max(0.0, 1.0 - 2.0 * b * tau * L + (b * tau) ** 2 * s))
    kappa = tau * M
    return math.atan2(kappa * math.sqrt(max(0.0, s - L * L)), 1.0 - kappa * L)


def error_bound(s, lam_c, beta_c, w_min, penalty, a=1.0) -> ErrorBound:
    """Explicit bound on angle(u_bar, w*) and ||u_bar/||u_bar|| - w*|| (module docstring).

    Parameters
    ----------
    s : sparsity of w*; lam_c, beta_c : lambda/c and beta/c; w_min : smallest
    support magnitude of the unit-norm w*; penalty, a : as in ``prox``.
    """
    _check(s, lam_c, beta_c, w_min, penalty, a)
    s = int(s)
    b = float(beta_c)
    tau = lam_c / b
    thr = float(threshold(tau, penalty, a))
    all_points = b < 0.5
    if not w_min > (1.0 + b) * thr:
        return ErrorBound(math.nan, math.nan, False, all_points, False)
    if penalty == "l0" or lam_c == 0:
        theta, attained = 0.0, True
    elif penalty == "l1":
        lo, hi = l1_range(s, w_min)
        if hi - lo < 1e-15:
            theta = l1_angle(hi, s, lam_c, b)
        else:
            grid = np.linspace(lo, hi, 257)
            vals = [l1_angle(L, s, lam_c, b) for L in grid]
            j = int(np.argmax(vals))
            from scipy.optimize import minimize_scalar  # lazy: scipy.optimize costs every job ~0.2 s to import

            left, right = grid[max(j - 1, 0)], grid[min(j + 1, grid.size - 1)]
            res = minimize_scalar(
                lambda L: -l1_angle(L, s, lam_c, b), bounds=(left, right), method="bounded", options={"xatol": 1e-14}
            )
            theta = max(vals[j], -res.fun)
        attained = True
    else:
        p_min = float(prox(w_min / (1.0 + b), tau, "tl1", a))
        G = a * (a + 1.0) / (a + p_min) ** 2
        sin = (1.0 + b) * tau * G * math.sqrt(s)
        theta, attained = (math.asin(sin) if sin < 1 else math.pi / 2), False
    return ErrorBound(theta, 2.0 * math.sin(theta / 2.0), True, all_points, attained)


def l1_fixed_point(w_star, lam_c, beta_c):
    """The l1 fixed point with N > beta, from its closed form (module docstring).

    With ``kappa = tau M`` and ``b = beta_c``: ``u_bar = soft_threshold(w*, kappa) / (M - b)``,
    ``w_bar = (w* + b u_bar)/M``, and M the root on
    ``(b, 1 + b]`` of ``sum_kept (|w*_i| - b tau)^2/(M - b)^2 + sum_off w*_i^2/M^2 = 1``,
    kept = ``{|w*_i| > tau M}`` (a decreasing function of M: one root).
    Returns (w_bar, u_bar, M), ``u_bar = prox_tau(w_bar)``.
    """
    w = np.asarray(w_star, dtype=float)
    b = float(beta_c)
    tau = lam_c / b

    def x_of(M):
        kappa = tau * M
        u = np.sign(w) * np.maximum(np.abs(w) - kappa, 0.0) / (M - b)
        return (w + b * u) / M, u

    def F(M):
        return float(np.linalg.norm(x_of(M)[0])) - 1.0

    hi = (1.0 + b) * (1 + 1e-12)
    if tau > 0:
        hi = min(hi, np.max(np.abs(w)) / tau * (1 - 1e-15))  # beyond it nothing is kept
    from scipy.optimize import brentq  # lazy, as in error_bound

    M = brentq(F, b * (1 + 1e-15) + 1e-300, hi, xtol=1e-300, rtol=1e-15, maxiter=1000)
    x, u = x_of(M)
    return x, u, M


__all__ = ["ErrorBound", "error_bound", "l1_angle", "l1_fixed_point", "l1_range"]
