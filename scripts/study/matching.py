"""Metrics of a run's final weights and the matching of runs to the predicted
fixed points (docs/theory.md 5.2): shared by every experiment whose runs
have a teacher w* (support recovery) or enumerated fixed points (which one a
run reached)."""

from __future__ import annotations

import numpy as np
import xarray as xr

import rvscgd

from .floor import FLOOR_RULES
from .vectors import vector_angle


def support_metrics(u: xr.DataArray, w_star: xr.DataArray) -> dict[str, xr.DataArray]:
    """Precision, recall and exact recovery of the support of w* by u (over features).

    NaN where u is NaN (a diverged run): no metric from garbage.
    """
    valid = u.notnull().all("feature")
    found = u != 0
    true = w_star != 0
    tp = (found & true).sum("feature")
    n_found = found.sum("feature")
    precision = xr.where(n_found > 0, tp / n_found.where(n_found > 0), np.nan)
    recall = tp / true.sum("feature")
    exact = (found == true).all("feature").astype(float)
    return {
        "support_precision": precision.where(valid),
        "support_recall": recall.where(valid),
        "support_exact": exact.where(valid),
    }


def final_sparse_metrics(u: xr.DataArray, w_star: xr.DataArray) -> dict[str, xr.DataArray]:
    """Angle of the final sparse weights u_final to w* and their nonzeros (for
    the baselines too: prune's u_final is its pruned w, the others' their w)."""
    dims = [d for d in u.dims if d != "feature"]
    U = u.transpose(*dims, "feature").values
    flat = U.reshape(-1, U.shape[-1]).T
    ang = rvscgd.angle(flat, w_star.values).reshape(U.shape[:-1])
    nnz = np.where(np.isnan(U).any(-1), np.nan, (U != 0).sum(-1))
    return {
        "angle_u_final": (
            dims,
            ang,
            {"long_name": "angle between the final sparse weights u_final and w*", "units": "rad"},
        ),
        "nonzeros_u_final": (dims, nnz, {"long_name": "nonzero entries of u_final", "units": "1"}),
    }


def sparsity_fraction(u: xr.DataArray) -> xr.DataArray:
    """Fraction of exact zeros of u over its ``feature`` entries (one cell: n
    of them); NaN where u is all NaN (a diverged or untrained run, a setting
    without a stable fixed point). The figures' ``sparsity`` of the padded
    vectors gives the same numbers (the padding is NaN, never zero)."""
    return ((u == 0).sum("feature") / u.sizes["feature"]).where(u.notnull().any("feature"))


def run_summaries(u_final: xr.DataArray, u_bar: xr.DataArray, w_star: xr.DataArray) -> dict[str, xr.DataArray]:
    """What the figures need of the final and predicted sparse weights, so that
    the datasets need not hold the weights themselves (docs/datasets.md):
    ``sparsity_u_final`` per run, and ``predicted_angle_u_final`` and
    ``predicted_sparsity_u_final`` (u_bar's, per setting). The angle of
    u_final is ``angle_u_final`` (``final_sparse_metrics``)."""
    return {
        "sparsity_u_final": sparsity_fraction(u_final).assign_attrs(
            long_name="fraction of zero entries of u_final", units="1"
        ),
        "predicted_angle_u_final": vector_angle(u_bar, w_star).assign_attrs(
            long_name="angle between the predicted sparse limit u_bar and w*", units="rad"
        ),
        "predicted_sparsity_u_final": sparsity_fraction(u_bar).assign_attrs(
            long_name="fraction of zero entries of u_bar", units="1"
        ),
    }


def fp_support_exact(limits: xr.Dataset, w_star: xr.DataArray) -> xr.DataArray:
    """Per listed fixed point: 1 if its sparse part (entries of ``fp_w_bar``
    above the prox ``threshold``) has exactly the support of w*, 0 if not, -1
    padding (``fp_stable`` -1). What the phase diagram needs of ``fp_w_bar``."""
    kept = np.abs(limits["fp_w_bar"]) > limits["threshold"]
    exact = (kept == (w_star != 0)).all("feature").astype(np.int8)
    out = exact.where(limits["fp_stable"] >= 0, -1).astype(np.int8)
    return out.assign_attrs(long_name="1 if the listed fixed point's u = prox(w) has exactly w*'s support (0 not)")


LIMIT_VARS = (
    "w_bar",
    "u_bar",
    "n_limits",
    "n_fixed_points",
    "n_continua",
    "limit_stable",
    "fp_w_bar",
    "fp_stable",
    "fp_multiplicity",
    "fp_N",
    "fp_flags",
    "cont_base",
    "cont_radius",
    "cont_threshold",
    "cont_size_min",
    "cont_size_max",
    "threshold",
)
# limit_kind values (CF flags): which predicted object a run's final state is.
LIMIT_KINDS = {"not_applicable": -1, "isolated": 0, "continuum": 1, "unpredicted": 2}
_LIMIT_KEY = ("penalty", "lam", "beta", "eta", "ste")
DEFAULT_MATCH_TOL = {"population": 1e-6, "empirical": 0.05}


def match_runs(
    train: xr.Dataset, data: xr.Dataset, limits: xr.Dataset, tol: float, floor: xr.DataArray | None = None
) -> dict:
    """Which predicted fixed point each run's final state is (docs/theory.md 5.2).

    A run is ``isolated`` when its final w is within its match distance of a
    listed fixed point's orbit (``rvscgd.orbit_distances``) and its u_final
    has that point's support (entries above the threshold);
    ``continuum`` when within ``tol`` of the l0 continuum's conditions;
    otherwise ``unpredicted`` (never counted as a new limit).
    ``not_applicable``: baselines, un-normalised, clipped_relu, or diverged runs.

    The match distance: ``floor`` (empirical runs, ``study.floor``: the
    predicted quantile of ||w - w_bar|| over the setting's dims, NaN where the
    prediction does not apply) where it is finite, else ``tol``;
    ``limit_match_rule`` (``FLOOR_RULES``) says which, and why.
    Returns the per-run variables as arrays over the train dataset's dims.
    """
    w_star = data["w_star"].values
    off = w_star == 0
    wf = train["w_final"]
    dims = [d for d in wf.dims if d != "feature"]
    wf = wf.transpose(*dims, "feature")
    uf = train["u_final"].transpose(*dims, "feature").values
    shape = wf.shape[:-1]
    kind = np.full(shape, LIMIT_KINDS["not_applicable"], dtype=np.int8)
    index = np.full(shape, -1, dtype=np.int32)
    dist = np.full(shape, np.nan)
    best = np.zeros(shape, dtype=np.int8)
    rule = np.full(shape, FLOOR_RULES["not_applicable"], dtype=np.int8)
    run_tol = np.full(shape, float(tol))
    floor_rule = np.full(shape, FLOOR_RULES["tolerance_no_prediction"], dtype=np.int8)
    point_tol = point_rule = None
    if floor is not None:
        one = wf.isel(feature=0, drop=True)
        if "fixed_point" in floor.dims:  # a match distance per listed point (study.floor)
            point_tol = floor.broadcast_like(one).transpose(*dims, "fixed_point").values
            point_rule = np.where(
                np.isfinite(point_tol), FLOOR_RULES["predicted_floor"], FLOOR_RULES["tolerance_no_prediction"]
            )
            if "fp_floor_hops" in train:
                hop = (train["fp_floor_hops"] == 1).broadcast_like(one).transpose(*dims, "fixed_point").values
                point_rule[hop & ~np.isfinite(point_tol)] = FLOOR_RULES["tolerance_hops"]
        else:
            fl = floor.broadcast_like(one).transpose(*dims).values
            run_tol = np.where(np.isfinite(fl), fl, run_tol)
            floor_rule[np.isfinite(fl)] = FLOOR_RULES["predicted_floor"]
            if "floor_hops" in train:
                hop = (train["floor_hops"] == 1).broadcast_like(one).transpose(*dims).values
                floor_rule[hop & ~np.isfinite(fl)] = FLOOR_RULES["tolerance_hops"]
    W = wf.values
    coord_values = [wf[d].values for d in dims]
    groups = {}  # runs of one setting (normalise, batch sizes) share its fixed points
    for pos in np.ndindex(shape):
        co = {d: v[i] for d, v, i in zip(dims, coord_values, pos, strict=True)}
        if co.get("method", "rvscgd") != "rvscgd":  # the fixed points are RVSCGD's
            continue
        if not bool(co["normalise"]) or co["ste"] == "clipped_relu" or not np.all(np.isfinite(W[pos])):
            continue
        groups.setdefault(tuple(co[d] for d in _LIMIT_KEY), []).append(pos)
    # numpy arrays indexed by grid position: xarray's .sel per setting costs more than the matching
    names = ("fp_w_bar", "fp_stable", "threshold", "cont_size_min", "cont_size_max", "cont_threshold")
    names += ("cont_base", "cont_radius")
    arrays = {
        v: limits[v].transpose(*_LIMIT_KEY, *[d for d in limits[v].dims if d not in _LIMIT_KEY]).values for v in names
    }
    where = [{val: i for i, val in enumerate(limits[d].values.tolist())} for d in _LIMIT_KEY]
    for key, positions in groups.items():
        at = tuple(wh[val.item() if hasattr(val, "item") else val] for wh, val in zip(where, key, strict=True))
        lim = {v: a[at] for v, a in arrays.items()}
        pts = lim["fp_w_bar"]
        listed = np.all(np.isfinite(pts), axis=1)
        stable = (lim["fp_stable"] == 1) & listed
        thr = float(lim["threshold"])
        size_min, size_max = int(lim["cont_size_min"]), int(lim["cont_size_max"])
        best_i = -1
        if stable.any():
            d_w = np.full(pts.shape[0], np.inf)
            d_w[listed] = rvscgd.orbit_distances(w_star, pts[listed], w_star)[0]
            best_i = int(np.argmin(np.where(stable, d_w, np.inf)))
        for pos in positions:
            w = W[pos]
            i, d_pts, oriented = rvscgd.nearest_listed(w_star, pts, w)
            d_cont = np.inf
            if size_min > 0:
                kept = off & (np.abs(w) > float(lim["cont_threshold"]))
                if size_min <= kept.sum() <= size_max:
                    proj = lim["cont_base"].copy()
                    proj[kept] = w[kept] * float(lim["cont_radius"]) / np.linalg.norm(w[kept])
                    d_cont = float(np.linalg.norm(w - proj))
            # lam = 0 thresholds nothing: the support of u is then that of w, rounding included.
            same_support = bool(np.isfinite(d_pts[i])) and (
                thr == 0 or np.array_equal(uf[pos] != 0, np.abs(oriented[i]) > thr)
            )
            rule[pos] = floor_rule[pos]
            if point_tol is not None and np.isfinite(d_pts[i]):  # the nearest point's own floor
                thr_i = point_tol[pos][i]
                run_tol[pos] = thr_i if np.isfinite(thr_i) else tol
                rule[pos] = point_rule[pos][i]
            # Within the predicted floor the support is not required: the predicted spread
            # carries entries across the prox threshold (docs/theory.md 9.4).
            if d_pts[i] <= run_tol[pos] and (same_support or rule[pos] == FLOOR_RULES["predicted_floor"]):
                kind[pos], index[pos] = LIMIT_KINDS["isolated"], i
                best[pos] = int(i == best_i)
            elif d_cont <= tol:  # a continuum has no predicted floor (a neutral direction)
                kind[pos] = LIMIT_KINDS["continuum"]
                rule[pos] = FLOOR_RULES["tolerance_no_prediction"]
            else:
                kind[pos] = LIMIT_KINDS["unpredicted"]
            dist[pos] = min(float(np.min(np.where(stable, d_pts, np.inf))), d_cont)
    return {
        "dims": dims,
        "limit_kind": kind,
        "limit_index": index,
        "limit_distance": dist,
        "limit_best": best,
        "limit_match_rule": rule,
    }


def limit_kind_attrs(tol: float, floor_quantile: float | None = None) -> dict:
    """Attributes of the ``limit_kind`` variable (CF flags) matched at ``tol``
    (and, empirical runs, by the predicted floor's ``floor_quantile``)."""
    attrs = {
        "long_name": "which predicted object the run ended on",
        "flag_values": np.array(list(LIMIT_KINDS.values()), dtype=np.int8),
        "flag_meanings": " ".join(LIMIT_KINDS),
        "match_tol": float(tol),
    }
    if floor_quantile is not None:
        attrs["floor_quantile"] = float(floor_quantile)
    return attrs


def limit_match_rule_attrs() -> dict:
    """Attributes of ``limit_match_rule`` (CF flags): the threshold of a run's match."""
    return {
        "long_name": "threshold of the run's match: predicted noise floor quantile or the configured tolerance",
        "flag_values": np.array(list(FLOOR_RULES.values()), dtype=np.int8),
        "flag_meanings": " ".join(FLOOR_RULES),
    }
