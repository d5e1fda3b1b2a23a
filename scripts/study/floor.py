"""The predicted empirical noise floor of a cell's runs (docs/theory.md section 9,
``rvscgd.noise_floor``): what the empirical match of a run to its fixed point
uses in place of a hand tolerance (``study.matching.match_runs``).

Once per cell, in the empirical training job (it needs the batch sizes and
label noises), for every setting where the prediction applies: normalised
RVSCGD with the relu or identity STE on fresh minibatches, at a setting whose
best fixed point ``w_bar`` (the limits' ``w_bar``) is listed and linearly
stable. Elsewhere the floor variables are NaN and the match falls back to
``limit.match_tol.empirical`` (``FLOOR_RULES``, docs/datasets.md).

Cost: one self-consistent solve per (setting, listed stable point, B, sigma), the solver shared
across B (``rvscgd.noise._Solver``) and settings that are the same map shared
(lambda = 0: every penalty and beta is plain CGD), and one simulation of the
linearised law per (STE, sigma) for the shape of its tail (``tail_factor``).
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

import rvscgd
from rvscgd import noise

from .units import lam_effective

FLOOR_DIMS = ("penalty", "lam", "beta", "eta", "ste")
# limit_match_rule values (CF flags): which threshold decided a run's match.
FLOOR_RULES = {"not_applicable": -1, "predicted_floor": 0, "tolerance_hops": 1, "tolerance_no_prediction": 2}
FLOOR_STES = ("relu", "identity")
DEFAULT_FLOOR = {"enabled": True, "quantile": 0.999}
# The crossover batch size is estimated from the study's own batch sizes; with
# one batch size, the state-dependent part is taken to fall as 1/B^2 (its
# slope where it dominates, docs/theory.md 9.3): dep/ind ~ 1/B.
SINGLE_B_SLOPE = -1.0
# The self-consistent solve stops at this relative change of tr C: far below the
# closure's own error (docs/theory.md 9.4), about half the iterations of the library's 1e-6.
SOLVE_RTOL = 1e-3
# Chains of the simulated law behind the tail factor (rvscgd.noise.SIM_CHAINS is 128).
TAIL_CHAINS = 64


def floor_config(config: dict) -> dict:
    """``limit.floor`` with its defaults."""
    return {**DEFAULT_FLOOR, **config.get("limit", {}).get("floor", {})}


def _crossover(bs, ind, dep) -> float:
    """The B where state_dependent = state_independent, log-linear in B through
    the two parts' ratio at the study's batch sizes ``bs`` (extrapolated outside them)."""
    ok = [(b, i, d) for b, i, d in zip(bs, ind, dep, strict=True) if np.isfinite(i) and np.isfinite(d)]
    if not ok:
        return math.nan
    if any(i <= 0 for _, i, _ in ok):
        return math.inf  # no state-independent part: w_bar = w*, no label noise
    logb = np.log([b for b, _, _ in ok])
    logr = np.log([max(d, 1e-300) / i for _, i, d in ok])
    if len(ok) == 1:
        slope = SINGLE_B_SLOPE
    else:
        slope = float(np.polyfit(logb, logr, 1)[0])
    if not slope < 0:
        return math.nan
    # log r(B) = logr[j] + slope (log B - logb[j]) at the nearest of the batch sizes
    j = int(np.argmin(np.abs(logr)))
    return float(math.exp(logb[j] - logr[j] / slope))


def predict_floor_cell(
    config: dict, data: xr.Dataset, limits: xr.Dataset, batch_sizes, label_noises, finals: xr.DataArray | None = None
) -> xr.Dataset:
    """The predicted noise floor of every setting of one cell, over
    (penalty, lam, beta, eta, ste, batch_size, label_noise).

    ``floor_mean_sq`` (E||w - w_bar||^2), ``floor_rms``, ``floor_state_independent``,
    ``floor_crossover_batch``, ``floor_hops`` and ``floor_match_distance``, the
    ``limit.floor.quantile`` q of ||w - w_bar|| under the predicted stationary law:
    ``tail_factor`` x ``floor_rms``, the factor q-quantile / rms of the simulated
    law (``NoiseFloor.distance_quantile``) at the setting of the cell (per STE and
    sigma) whose noise is the most state-dependent, the heaviest tail: so at
    every other setting the match distance is at or above its own q-quantile
    (up to the simulation's sampling error, a few per cent at q = 0.999).
    NaN (``floor_hops`` -1) where the prediction does not apply.

    ``finals``: the cell's final weights ``w_final`` (its training). The match
    reads a listed point's floor only for the runs whose nearest listed point
    it is (``study.matching.match_runs``), so with ``finals`` the other stable
    points' floors (``fp_floor_*`` away from w_bar; l0 lists up to hundreds)
    are predicted only where some run of the setting ended nearest them, NaN
    elsewhere: the same matches for a fraction of the cost.
    """
    from threadpoolctl import threadpool_limits  # lazy, as in the engine

    # Small products: one BLAS thread is many times faster than several contending for shared cores.
    with threadpool_limits(limits=1, user_api="blas"):
        return _predict(config, data, limits, batch_sizes, label_noises, nearest_points(data, limits, finals))


def point_match_distance(floor: xr.Dataset) -> xr.DataArray:
    """Each listed point's match distance (``fp_floor_match_distance``) where its
    prediction holds (``fp_floor_hops`` 0), NaN elsewhere: what ``match_runs``
    reads as ``floor`` (a NaN falls back to the tolerance)."""
    return floor["fp_floor_match_distance"].where(floor["fp_floor_hops"] == 0)


def nearest_points(data: xr.Dataset, limits: xr.Dataset, finals: xr.DataArray | None) -> dict | None:
    """{setting index over FLOOR_DIMS: listed points nearest some run's final w}
    (``rvscgd.nearest_listed``, as ``match_runs`` takes it), for
    the method's runs (rvscgd, normalised) of ``finals``; None without ``finals``."""
    if finals is None:
        return None
    w_star = data["w_star"].values
    sel = {d: v for d, v in (("method", "rvscgd"), ("normalise", True)) if d in finals.dims}
    runs = finals.sel(sel) if sel else finals
    coords = {d: limits[d].values.tolist() for d in FLOOR_DIMS}
    fp_w = limits["fp_w_bar"].transpose(*FLOOR_DIMS, "fixed_point", "feature").values
    out = {}
    for idx in np.ndindex(tuple(len(coords[d]) for d in FLOOR_DIMS)):
        at = {d: coords[d][i] for d, i in zip(FLOOR_DIMS, idx, strict=True)}
        if at["ste"] not in runs["ste"].values.tolist():
            continue
        w = runs.sel(at).transpose(..., "feature").values.reshape(-1, w_star.size)
        w = w[np.all(np.isfinite(w), axis=1)]
        if not len(w) or not np.all(np.isfinite(fp_w[idx]), axis=1).any():
            continue
        out[idx] = {rvscgd.nearest_listed(w_star, fp_w[idx], x)[0] for x in w}
    return out


def _predict(config, data, limits, batch_sizes, label_noises, nearest=None) -> xr.Dataset:
    fcfg = floor_config(config)
    q = float(fcfg["quantile"])
    n, k = int(data.attrs["n"]), int(data.attrs["k"])
    w_star = data["w_star"].values
    a = float(config["grid"]["tl1_a"])
    coords = {d: limits[d].values.tolist() for d in FLOOR_DIMS}
    bs = [int(b) for b in batch_sizes]
    sigmas = [float(s) for s in label_noises]
    shape = tuple(len(coords[d]) for d in FLOOR_DIMS) + (len(bs), len(sigmas))
    mean_sq = np.full(shape, np.nan)
    ind_sq = np.full(shape, np.nan)
    hops = np.full(shape, -1, dtype=np.int8)
    cross = np.full(shape[:-2] + (len(sigmas),), np.nan)
    P = limits.sizes["fixed_point"]
    point_ms = np.full(shape[:-2] + (P,) + shape[-2:], np.nan)
    point_hops = np.full(shape[:-2] + (P,) + shape[-2:], -1, dtype=np.int8)
    w_bar_all = limits["w_bar"].transpose(*FLOOR_DIMS, "feature").values
    stable = limits["limit_stable"].transpose(*FLOOR_DIMS).values
    fp_w = limits["fp_w_bar"].transpose(*FLOOR_DIMS, "fixed_point", "feature").values
    fp_stable = limits["fp_stable"].transpose(*FLOOR_DIMS, "fixed_point").values

    solved, warm = {}, {}
    # (ste, sigma) -> (share, setting index, B index): where the tail is heaviest
    heaviest: dict = {}
    for idx in np.ndindex(shape[:-2]):
        penalty, lam, beta, eta, ste = (coords[d][i] for d, i in zip(FLOOR_DIMS, idx, strict=True))
        if ste not in FLOOR_STES or stable[idx] != 1:
            continue
        w_bar = w_bar_all[idx]
        lam_eff = lam_effective(config, lam, k, penalty, beta)
        listed = (fp_stable[idx] == 1) & np.all(np.isfinite(fp_w[idx]), axis=1)
        pts = fp_w[idx][listed]
        others = np.empty((0, n))
        at_bar = np.zeros(P, dtype=bool)
        if len(pts):
            dist, oriented = rvscgd.orbit_distances(w_star, pts, w_bar)
            others = oriented[dist > 1e-9]
            at_bar[np.flatnonzero(listed)[dist <= 1e-9]] = True
        for s_i, sigma in enumerate(sigmas):
            # lambda = 0 is plain CGD whatever the penalty and beta: one solve for all of them
            key = (None, 0.0, None, eta, ste, sigma) if lam_eff == 0 else (penalty, lam_eff, beta, eta, ste, sigma)
            if key not in solved:
                c = rvscgd.coarse_constant(k, ste)
                args = (k, c, float(lam_eff), float(beta), penalty, float(eta), sigma, ste, a, 0)
                solver = noise._Solver(w_star, w_bar, *args)
                rows = []
                if solver.rho < 1.0:
                    # Warm starts: the previous lambda's solution at this B, else the previous B's.
                    near = warm.get((penalty, beta, eta, ste, sigma), {})
                    C_prev, B_prev = None, None
                    for B in sorted(bs):
                        start = near.get(B, None if C_prev is None else C_prev * (B_prev / B))
                        C, _, _, total, ind, dep = solver.parts(B, start, rtol=SOLVE_RTOL)
                        rows.append((B, C, total, ind, dep))
                        C_prev, B_prev = C, B
                    warm[(penalty, beta, eta, ste, sigma)] = {r[0]: r[1] for r in rows}
                solved[key] = (solver, {r[0]: r[1:] for r in rows}, (penalty, lam_eff, beta, eta, w_bar))
            solver, by_b, _ = solved[key]
            if not by_b:
                continue
            parts = [by_b[B] for B in bs]
            for b_i, (C, total, ind, dep) in enumerate(parts):
                at = idx + (b_i, s_i)
                mean_sq[at], ind_sq[at] = total, ind
                z = math.inf
                if len(others):
                    d_o = np.linalg.norm(others - w_bar, axis=1)
                    j = int(np.argmin(d_o))
                    u = solver.Q.T @ (others[j] - w_bar)
                    u /= np.linalg.norm(u)
                    z = 0.5 * float(d_o[j]) / math.sqrt(max(float(u @ C @ u), 1e-300))
                hops[at] = int(z < noise.HOP_Z)
                point_ms[idx + (at_bar,) + (b_i, s_i)] = total
                point_hops[idx + (at_bar,) + (b_i, s_i)] = hops[at]
                share = dep / total if total > 0 else 0.0
                best = heaviest.get((ste, s_i))
                if best is None or share > best[0]:
                    heaviest[(ste, s_i)] = (share, key, bs[b_i])
            cross[idx + (s_i,)] = _crossover(bs, [p[2] for p in parts], [p[3] for p in parts])
            # The other listed stable points: a run may end at any of them (l0), each with its own floor.
            for j in np.flatnonzero(listed & ~at_bar):
                if nearest is not None and j not in nearest.get(idx, ()):
                    continue  # no run ended nearest it: the match never reads its floor
                point = fp_w[idx][j]
                c = rvscgd.coarse_constant(k, ste)
                args = (k, c, float(lam_eff), float(beta), penalty, float(eta), sigma, ste, a, 0)
                psolver = noise._Solver(w_star, point, *args)
                if not psolver.rho < 1.0:
                    continue
                d_p, o_p = rvscgd.orbit_distances(w_star, pts, point)
                o_p, d_p = o_p[d_p > 1e-9], d_p[d_p > 1e-9]
                for b_i, B in enumerate(bs):
                    C, _, _, total, _, _ = psolver.parts(B, by_b[B][0], rtol=SOLVE_RTOL)
                    z = math.inf
                    if len(d_p):
                        i = int(np.argmin(d_p))
                        u = psolver.Q.T @ (o_p[i] - point)
                        u /= np.linalg.norm(u)
                        z = 0.5 * float(d_p[i]) / math.sqrt(max(float(u @ C @ u), 1e-300))
                    point_ms[idx + (j, b_i, s_i)] = total
                    point_hops[idx + (j, b_i, s_i)] = int(z < noise.HOP_Z)
    # The tail: one simulation of the linearised law per (STE, sigma).
    factor = np.full(shape, np.nan)
    ste_axis = FLOOR_DIMS.index("ste")
    for (ste, s_i), (_, key, B) in heaviest.items():
        penalty, lam_eff, beta, eta, w_bar = solved[key][2]
        nf = rvscgd.noise_floor(
            w_star, k, lam_eff, beta, penalty, eta, B, sigmas[s_i], ste=ste, a=a, w_bar=w_bar, crossover=False
        )
        # NoiseFloor.distance_quantile's law, from half its chains (the cost; the tail factor's error is a few %)
        kappa = float(np.sqrt(np.quantile(nf.simulate(chains=TAIL_CHAINS), q))) / nf.rms
        sel = [slice(None)] * len(shape)
        sel[ste_axis] = coords["ste"].index(ste)
        sel[-1] = s_i
        factor[tuple(sel)] = kappa
    rms = np.sqrt(mean_sq)
    point_match = np.sqrt(point_ms) * np.expand_dims(factor, len(FLOOR_DIMS))
    dims = FLOOR_DIMS + ("batch_size", "label_noise")
    cdims = FLOOR_DIMS + ("label_noise",)
    ds = xr.Dataset(
        {
            "floor_mean_sq": (
                dims,
                mean_sq,
                {"long_name": "predicted stationary E||w - w_bar||^2 of an empirical run (noise floor)", "units": "1"},
            ),
            "floor_rms": (dims, rms, {"long_name": "predicted noise floor sqrt(E||w - w_bar||^2)", "units": "1"}),
            "floor_state_independent": (
                dims,
                ind_sq,
                {"long_name": "state-independent part of the predicted E||w - w_bar||^2 (falls as 1/B)", "units": "1"},
            ),
            "floor_crossover_batch": (
                cdims,
                cross,
                {
                    "long_name": "batch size where the predicted state-dependent and state-independent parts are "
                    "equal (log-linear in B through the study's batch sizes)",
                    "units": "1",
                },
            ),
            "floor_hops": (
                dims,
                hops,
                {
                    "long_name": "run may hop to another stable fixed point: prediction outside its regime "
                    "(1 yes, 0 no, -1 not predicted)",
                    "units": "1",
                },
            ),
            "fp_floor_match_distance": (
                FLOOR_DIMS + ("fixed_point", "batch_size", "label_noise"),
                point_match,
                {
                    "long_name": "predicted quantile floor_quantile of the distance to each listed stable fixed "
                    "point: its match distance",
                    "units": "1",
                },
            ),
            "fp_floor_hops": (
                FLOOR_DIMS + ("fixed_point", "batch_size", "label_noise"),
                point_hops,
                {
                    "long_name": "run at the listed stable fixed point may hop to another (1 yes, 0 no, -1 not "
                    "predicted)",
                    "units": "1",
                },
            ),
            "floor_match_distance": (
                dims,
                factor * rms,
                {
                    "long_name": "predicted quantile floor_quantile of ||w - w_bar||: the empirical match distance",
                    "units": "1",
                },
            ),
        },
        coords={
            **{d: (d, limits[d].values) for d in FLOOR_DIMS},
            "fixed_point": ("fixed_point", limits["fixed_point"].values),
            "batch_size": ("batch_size", bs),
            "label_noise": ("label_noise", sigmas),
        },
    )
    return ds
