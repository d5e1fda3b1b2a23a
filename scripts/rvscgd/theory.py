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

``noise_floor`` (from ``rvscgd.noise``, docs/theory.md section 9): the
predicted stationary spread of an empirical run about its fixed point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .fixed_points import fixed_points
from .model import coarse_constant
from .noise import NoiseFloor, gradient_covariance, noise_floor  # noqa: F401 - part of theory's API (section 9)
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


# The phase diagram (docs/theory.md section 8): the regions of the (lambda/c, beta/c)
# plane, in the order of their codes in ``phase_map``.
REGIONS = ("recovers", "hysteresis", "spurious", "continuum")
REGION_LABELS = {
    "recovers": "unique, recovers the support",
    "hysteresis": "several stable (hysteresis)",
    "spurious": "spurious (no stable point with the support of w*)",
    "continuum": "continuum of fixed points",
}


@dataclass(frozen=True)
class Phase:
    """The phase of one (lambda, beta) for one teacher (docs/theory.md section 8).

    ``region``: one of ``REGIONS``; ``n_stable``: distinct linearly stable
    isolated fixed points (multiplicities counted); ``n_recovering``: those
    whose ``u_bar`` has exactly the support of w*; ``continuum``: a continuum
    of fixed points exists; ``flags``: conditions of the fixed points behind
    the verdict that hold only up to rounding (``at_threshold``, ``neutral``,
    ``fold``, ``inexact`` of any listed point, and the setting's own flags):
    near a region boundary the verdict can then flip with the last bit.
    """

    region: str
    n_stable: int
    n_recovering: int
    continuum: bool
    flags: tuple = ()

    @property
    def code(self) -> int:
        """Index of ``region`` in ``REGIONS``."""
        return REGIONS.index(self.region)


def region_of(n_stable: int, n_recovering: int, continuum: bool) -> str:
    """The region of docs/theory.md section 8 from its three facts, in this
    order: ``continuum`` if a continuum of fixed points exists; else
    ``spurious`` if no stable isolated fixed point has the support of w*
    (``n_recovering == 0``); else ``hysteresis`` if ``n_stable >= 2``; else
    ``recovers``."""
    if continuum:
        return "continuum"
    if n_recovering == 0:
        return "spurious"
    if n_stable >= 2:
        return "hysteresis"
    return "recovers"


def phase_of(fp) -> Phase:
    """The ``Phase`` of a ``FixedPoints`` (the result of ``rvscgd.fixed_points``)."""
    support = np.asarray(fp.w_star) != 0
    n_rec = sum(p.multiplicity for p in fp if p.stable and np.array_equal(p.u_bar != 0, support))
    flags = sorted({f for p in fp for f in p.flags} | {f.split(":")[0] for f in fp.flags})
    region = region_of(fp.n_stable, n_rec, bool(fp.continuum))
    return Phase(region, fp.n_stable, int(n_rec), bool(fp.continuum), tuple(flags))


def phase_region(w_star, k, lam, beta, penalty, a=1.0, ste="relu") -> Phase:
    """Classify one (lambda, beta) from ``rvscgd.fixed_points`` alone (no dynamics).

    The regions (``region_of``, docs/theory.md section 8): ``continuum`` (a
    continuum of fixed points: l0, beta > c; runs can end on it whatever else
    exists), ``spurious`` (no stable isolated fixed point has exactly the
    support of w*: some other stable limit, or none), ``hysteresis`` (two or
    more stable isolated fixed points, one with the support: the start
    decides), ``recovers`` (one stable fixed point, with the support).

    Parameters
    ----------
    w_star : (n,) unit-norm teacher; k, lam, beta, penalty, a, ste : as in
        ``rvscgd.fixed_points`` (the verdict depends on lam/c and beta/c only).

    Returns
    -------
    Phase
    """
    return phase_of(fixed_points(w_star, k, lam, beta, penalty, a=a, ste=ste))


def _grid_values(values, name, positive):
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size < 1 or not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be a non-empty finite 1-D array, got {values!r}")
    if positive and not np.all(x > 0):
        raise ValueError(f"{name} must be > 0, got {values!r}")
    if not positive and not np.all(x >= 0):
        raise ValueError(f"{name} must be >= 0, got {values!r}")
    return x


@dataclass(frozen=True)
class PhaseMap:
    """``codes``: region codes (indices into ``REGIONS``), shape
    ``(len(beta_c), len(lam_c))``, rows beta, columns lambda; ``evaluated``:
    where ``phase_region`` was called (the rest filled from agreeing corners,
    ``phase_map``); ``flagged``: evaluated points whose verdict holds only up
    to rounding (``Phase.flags``)."""

    codes: np.ndarray
    evaluated: np.ndarray
    flagged: np.ndarray

    def counts(self) -> dict[str, int]:
        """Grid points per region."""
        return {r: int(np.sum(self.codes == i)) for i, r in enumerate(REGIONS)}


def phase_map(w_star, lam_c, beta_c, penalty, a=1.0, coarse=None) -> PhaseMap:
    """``phase_region`` on the grid ``lam_c`` x ``beta_c`` (lambda/c, beta/c).

    In units of c the verdict does not depend on k or the STE, so k = 1 with
    relu is used. ``coarse=None`` evaluates every grid point. ``coarse=h``
    (an integer >= 1) evaluates a lattice of every h-th point, then splits
    each cell whose four corners disagree in two along each side and
    evaluates the new corners, down to neighbouring points; a cell whose
    corners agree is filled with their region. That costs about the boundary
    length instead of the area, but misses a region that fits inside one
    cell without touching its corners (narrower than h grid steps).

    Returns
    -------
    PhaseMap
    """
    lam_c = _grid_values(lam_c, "lam_c", positive=False)
    beta_c = _grid_values(beta_c, "beta_c", positive=True)
    check_penalty(penalty)
    if not a > 0:
        raise ValueError(f"a (TL1 shape parameter) must be > 0, got {a!r}")
    if coarse is not None and (int(coarse) != coarse or coarse < 1):
        raise ValueError(f"coarse must be None or an integer >= 1, got {coarse!r}")
    c = coarse_constant(1)
    ny, nx = beta_c.size, lam_c.size
    codes = np.full((ny, nx), -1, dtype=np.int8)
    evaluated = np.zeros((ny, nx), dtype=bool)
    flagged = np.zeros((ny, nx), dtype=bool)

    def get(i, j):
        if not evaluated[i, j]:
            ph = phase_region(w_star, 1, lam_c[j] * c, beta_c[i] * c, penalty, a)
            codes[i, j], evaluated[i, j], flagged[i, j] = ph.code, True, bool(ph.flags)
        return int(codes[i, j])

    def cell(i0, i1, j0, j1):
        corners = {get(i0, j0), get(i0, j1), get(i1, j0), get(i1, j1)}
        if i1 - i0 <= 1 and j1 - j0 <= 1:
            return
        if len(corners) == 1:
            block = codes[i0 : i1 + 1, j0 : j1 + 1]
            block[block < 0] = corners.pop()
            return
        rows = [i0, (i0 + i1) // 2, i1] if i1 - i0 > 1 else [i0, i1]
        cols = [j0, (j0 + j1) // 2, j1] if j1 - j0 > 1 else [j0, j1]
        for a0, a1 in zip(rows[:-1], rows[1:], strict=True):
            for b0, b1 in zip(cols[:-1], cols[1:], strict=True):
                cell(a0, a1, b0, b1)

    h = 1 if coarse is None else int(coarse)
    rows = sorted(set(range(0, ny, h)) | {ny - 1})
    cols = sorted(set(range(0, nx, h)) | {nx - 1})
    if len(rows) == 1 or len(cols) == 1:  # a single row or column: no cells, every point
        for i in range(ny):
            for j in range(nx):
                get(i, j)
    for a0, a1 in zip(rows[:-1], rows[1:], strict=True):
        for b0, b1 in zip(cols[:-1], cols[1:], strict=True):
            cell(a0, a1, b0, b1)
    return PhaseMap(codes, evaluated, flagged)


__all__ = [
    "NoiseFloor",
    "gradient_covariance",
    "noise_floor",
    "REGIONS",
    "REGION_LABELS",
    "ErrorBound",
    "Phase",
    "error_bound",
    "l1_angle",
    "l1_fixed_point",
    "l1_range",
    "PhaseMap",
    "phase_map",
    "phase_of",
    "phase_region",
    "region_of",
]
