"""Statistics over seeds and the quantities figures derive from the datasets.

Status codes come from ``rvscgd.STATUS`` (the engine's vocabulary, stored as
the ``status`` variable's ``flag_values``/``flag_meanings``): never bare numbers.
Means and 95% bands are over seeds: the mean, and the band holding the
central 95% of the seeds (2.5th to 97.5th percentile). Diverged runs are
excluded from every mean and every count, and the figure says how many.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import xarray as xr

from rvscgd import STATUS, coarse_constant
from rvscgd.theory import error_bound

from ..stationary import mean_sq_floor as mean_sq_floor  # one definition: the datasets' measured floor
from ..stationary import run_end as run_end
from ..vectors import vector_angle as vector_angle  # one definition: the datasets' summaries use it too

CONVERGED = STATUS.index("converged")
DIVERGED = STATUS.index("diverged")

# The band of every mean over seeds (seaborn's errorbar argument): the central 95% of the seeds.
BAND = ("pi", 95)


def diverged(status: xr.DataArray) -> xr.DataArray:
    return status == DIVERGED


def converged(status: xr.DataArray) -> xr.DataArray:
    return status == CONVERGED


def seed_stats(da: xr.DataArray, dim: str | list[str] = "seed"):
    """Mean over ``dim`` (one or several dimensions) and the band holding the central 95% of the values
    (2.5th to 97.5th percentile, linear interpolation), skipping NaN.

    Returns ``(mean, low, high, count)``; the same band as seaborn's
    ``errorbar=("pi", 95)``. A percentile band stays inside the data (it never
    crosses zero on a log axis); with one seed it collapses onto the mean.
    """
    tail = (100 - BAND[1]) / 200  # BAND = ("pi", 95): 0.025 on each side
    count = da.count(dim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = da.mean(dim)
        lo = da.quantile(tail, dim).drop_vars("quantile")
        hi = da.quantile(1 - tail, dim).drop_vars("quantile")
    return mean, lo, hi, count


def tidy(name: str, da: xr.DataArray, keep=()) -> pd.DataFrame:
    """A DataArray as a tidy frame (one row per value, one column per
    dimension, ``name`` for the value) without its NaN rows: what seaborn
    draws from. ``keep`` coordinates of size one stay as columns."""
    da = da.rename(name)
    drop = [c for c in da.coords if c not in da.dims and c not in keep]
    df = da.drop_vars(drop).to_dataframe().reset_index()
    return df[df[name].notna()]


def n_diverged(status: xr.DataArray) -> tuple[int, int]:
    """(diverged runs, trained runs) in ``status``: grid points a baseline is
    not trained on (status -1, ``not_trained``) are no runs."""
    return int(diverged(status).sum()), int((status >= 0).sum())


def diverged_note(status: xr.DataArray, what: str = "runs") -> str:
    bad, total = n_diverged(status)
    return f"{bad} of {total} {what} diverged, excluded" if bad else ""


def teacher_density(ds: xr.Dataset) -> xr.DataArray:
    """s/n per (n, k, seed): nonzeros of w* over n."""
    nonzero = (ds["w_star"].fillna(0) != 0).sum("feature")
    return nonzero / ds["n"]


def sparsity(u: xr.DataArray, n: xr.DataArray) -> xr.DataArray:
    """Fraction of exact zeros among the first n features; NaN for a diverged (all-NaN) u."""
    return ((u == 0).sum("feature") / n).where(u.notnull().any("feature"))


def final_metrics(sub: xr.Dataset) -> xr.Dataset:
    """Measured (last step) and predicted sparsity and angle of the sparse weights,
    diverged runs NaN: the per-run summaries of the datasets (``sparsity_u_final``,
    ``angle_u_final``, and u_bar's ``predicted_*``), not the weights."""
    ok = ~diverged(sub["status"])
    return xr.Dataset(
        {
            "sparsity": sub["sparsity_u_final"].where(ok),
            "angle": sub["angle_u_final"].where(ok),
            "pred_sparsity": sub["predicted_sparsity_u_final"],
            "pred_angle": sub["predicted_angle_u_final"],
            "density": teacher_density(sub),
            "status": sub["status"],
        }
    )


def u_zero_count(angle: xr.DataArray, status: xr.DataArray) -> int:
    """Runs that did not diverge but whose angle is undefined (u = 0 at the end)."""
    return int((angle.isnull() & ~diverged(status)).sum())


def at_run_end(da: xr.DataArray, ref: xr.DataArray) -> xr.DataArray:
    """``da`` at each run's last recorded step (``run_end`` of ``ref``); NaN where
    ``da`` is NaN there (angle_u of a run ending at u = 0)."""
    return da.where(da["step"] == run_end(ref)).max("step")


# The agreement band of measured over predicted E||w - w_bar||^2 (issue 21's target).
FLOOR_BAND = (0.8, 1.25)


def floor_ratio(measured: xr.DataArray, predicted: xr.DataArray) -> float:
    """Median over the runs of measured / predicted mean-square floor (NaN if none)."""
    r = (measured / predicted).values.ravel()
    r = r[np.isfinite(r)]
    return float(np.median(r)) if r.size else float("nan")


def outside_band(ratios: dict) -> str:
    """A note naming the groups whose median ratio leaves ``FLOOR_BAND`` ("" if none)."""
    lo, hi = FLOOR_BAND
    out = [f"{g}: x{r:.2f}" for g, r in ratios.items() if np.isfinite(r) and not lo <= r <= hi]
    if not out:
        return ""
    head = f"outside the theory's band [{lo:g}, {hi:g}]\n" + r"(measured / predicted $E\|w - \bar w\|^2$):"
    return head + "\n" + "\n".join(out)


def steps_to_reach(dist: xr.DataArray, eps: float) -> xr.DataArray:
    """First step at which ``dist`` (recorded at log-spaced steps) is ``<= eps``,
    interpolated log-linearly between the two recorded steps around the crossing;
    NaN if never reached."""
    t = dist["step"].values.astype(float)

    def first(d):
        below = np.flatnonzero(d <= eps)
        if not below.size:
            return np.nan
        j = below[0]
        if j == 0 or not (d[j - 1] > 0 and d[j] > 0):
            return t[j]
        f = (np.log(d[j - 1]) - np.log(eps)) / (np.log(d[j - 1]) - np.log(d[j]))
        return t[j - 1] + f * (t[j] - t[j - 1])

    return xr.apply_ufunc(first, dist, input_core_dims=[["step"]], vectorize=True)


def teacher_support(w_star: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """(s, w_min) of each teacher: its nonzeros and smallest nonzero magnitude
    (``w_star`` NaN-padded along ``feature``)."""
    mag = np.abs(w_star)
    on = mag > 0  # NaN padding compares False
    return on.sum("feature"), mag.where(on).min("feature")


def error_bounds(sub: xr.Dataset) -> xr.DataArray | None:
    """``rvscgd.theory.error_bound`` on angle(u_bar, w*) (rad) for every run of
    ``sub``, a slice with one k, beta, ste and normalise: from each teacher's s
    and w_min (``teacher_support``) and the grid's lambda/c and beta/c, without
    the runs. NaN where the bound's condition ``w_min > (1 + beta/c) threshold``
    fails. Attribute ``all_fixed_points``: it covers every fixed point
    (beta/c < 1/2), not only those with N > beta. ``None`` where no bound
    exists: clipped-relu STE (no constant c) or runs without normalisation."""
    ste, normalise = str(sub["ste"].item()), bool(sub["normalise"].item())
    if ste == "clipped_relu" or not normalise:
        return None
    c = coarse_constant(int(sub["k"].item()), ste)
    beta_c = float(sub["beta"].item()) / c
    a = float(sub.attrs.get("tl1_a", 1.0))
    s, w_min = teacher_support(sub["w_star"])
    lam_c = sub["lam_effective"] / c
    s, w_min, lam_c, pen = xr.broadcast(s, w_min, lam_c, sub["penalty"])
    out = np.full(s.shape, np.nan)
    for i in np.ndindex(s.shape):
        si = int(s.values[i])
        if si < 1 or not np.isfinite(w_min.values[i]):
            continue
        # w_min <= 1/sqrt(s) for a unit s-sparse vector; an all-equal teacher may exceed it by rounding
        wm = min(float(w_min.values[i]), 1.0 / math.sqrt(si))
        out[i] = error_bound(si, float(lam_c.values[i]), beta_c, wm, str(pen.values[i]), a).angle
    da = xr.DataArray(out, dims=s.dims, coords=s.coords, name="bound")
    da.attrs.update(all_fixed_points=beta_c < 0.5, beta_c=beta_c)
    return da


def match_tol(ds: xr.Dataset) -> float:
    """The dataset's tolerance for "at a predicted limit" (``limit.match_tol`` of
    its mode, carried as an attribute of ``limit_kind``): the rounding and noise
    a run's end state may keep."""
    try:
        return float(ds["limit_kind"].attrs["match_tol"])
    except KeyError as err:
        raise ValueError(f"the {ds.attrs.get('mode')} dataset lacks limit_kind.attrs['match_tol']") from err


def above_bound(angle: xr.DataArray, bound: xr.DataArray, tol: float) -> tuple[int, int, int]:
    """(runs above the bound by more than ``tol``, runs with a bound, runs
    without one) among the runs with a measured angle (diverged and u = 0 runs
    have none)."""
    angle, bound = xr.broadcast(angle, bound)
    measured = angle.notnull()
    has = measured & bound.notnull()
    return int((has & (angle > bound + tol)).sum()), int(has.sum()), int((measured & bound.isnull()).sum())


def wilson_interval(k, n, z: float = 1.96):
    """Wilson score interval of a binomial proportion ``k / n`` (95% for z = 1.96).

    The set of p with ``(k/n - p)^2 <= z^2 p (1 - p) / n``: unlike the normal
    approximation it stays inside [0, 1] and is not empty at k = 0 or k = n.
    Works elementwise on arrays; ``(nan, nan)`` where ``n == 0``.

    Returns
    -------
    (low, high) : floats or arrays like ``k``.
    """
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    if np.any(k < 0) or np.any(k > n):
        raise ValueError(f"k must be in [0, n], got k={k!r}, n={n!r}")
    if not z > 0:
        raise ValueError(f"z must be > 0, got {z!r}")
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = n + z * z
        center = (k + z * z / 2) / denom
        half = z / denom * np.sqrt(k * (n - k) / n + z * z / 4)
        lo = np.where(n > 0, np.clip(center - half, 0.0, 1.0), np.nan)
        hi = np.where(n > 0, np.clip(center + half, 0.0, 1.0), np.nan)
    return (float(lo), float(hi)) if lo.ndim == 0 else (lo, hi)
