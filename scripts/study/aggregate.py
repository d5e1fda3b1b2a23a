"""Combine a mode's cells into one labelled dataset (model.md section 5 metrics)."""

from __future__ import annotations

import numpy as np
import xarray as xr

import rvscgd

from .grid import lam_effective, relu_constant

CELL_DIMS = ("n", "k", "seed")


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
# How the configured lambda is meant, said in `lam`'s long_name: CF wants a UDUNITS
# unit in `units` ("1": dimensionless), and c(k) or a prox threshold is none.
LAM_MEANING = {"absolute": "", "relative_to_c": ", in units of c(k)", "threshold": ", as a prox threshold"}


def lam_attrs(config: dict) -> dict:
    """Attributes of the `lam` coordinate of every dataset (CF-1.8 clean)."""
    units = config["grid"]["lam_units"]
    return {
        "long_name": "penalty weight lambda as configured" + LAM_MEANING[units],
        "lam_units": units,
        "units": "1",
    }


_LIMIT_KEY = ("penalty", "lam", "beta", "eta", "ste")
DEFAULT_MATCH_TOL = {"population": 1e-6, "empirical": 0.05}


def match_runs(train: xr.Dataset, data: xr.Dataset, limits: xr.Dataset, tol: float) -> dict:
    """Which predicted fixed point each run's final state is (docs/theory.md 5.2).

    A run is ``isolated`` when its final w is within ``tol`` of a listed fixed
    point's orbit (``rvscgd.orbit_distances``) and its u_final has that point's
    support (entries above the threshold);
    ``continuum`` when within ``tol`` of the l0 continuum's conditions;
    otherwise ``unpredicted`` (never counted as a new limit).
    ``not_applicable``: baselines, un-normalised, clipped_relu, or diverged runs.
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
            d_pts = np.full(pts.shape[0], np.inf)
            oriented = np.full(pts.shape, np.nan)
            if listed.any():
                d_pts[listed], oriented[listed] = rvscgd.orbit_distances(w_star, pts[listed], w)
            d_cont = np.inf
            if size_min > 0:
                kept = off & (np.abs(w) > float(lim["cont_threshold"]))
                if size_min <= kept.sum() <= size_max:
                    proj = lim["cont_base"].copy()
                    proj[kept] = w[kept] * float(lim["cont_radius"]) / np.linalg.norm(w[kept])
                    d_cont = float(np.linalg.norm(w - proj))
            i = int(np.argmin(d_pts))
            # lam = 0 thresholds nothing: the support of u is then that of w, rounding included.
            same_support = bool(np.isfinite(d_pts[i])) and (
                thr == 0 or np.array_equal(uf[pos] != 0, np.abs(oriented[i]) > thr)
            )
            if d_pts[i] <= tol and same_support:
                kind[pos], index[pos] = LIMIT_KINDS["isolated"], i
                best[pos] = int(i == best_i)
            elif d_cont <= tol:
                kind[pos] = LIMIT_KINDS["continuum"]
            else:
                kind[pos] = LIMIT_KINDS["unpredicted"]
            dist[pos] = min(float(np.min(np.where(stable, d_pts, np.inf))), d_cont)
    return {"dims": dims, "limit_kind": kind, "limit_index": index, "limit_distance": dist, "limit_best": best}


def cell_dataset(
    train: xr.Dataset, data: xr.Dataset, limits: xr.Dataset, mode: str, match_tol: float | None = None
) -> xr.Dataset:
    """One cell's training runs joined with its teacher, predicted fixed points
    and the fixed point each run reached (``match_runs``)."""
    ds = train.copy()
    ds["w_star"] = data["w_star"]
    ds["w0"] = data["w0"]
    for name in LIMIT_VARS:
        ds[name] = limits[name]
    tol = DEFAULT_MATCH_TOL[mode] if match_tol is None else float(match_tol)
    m = match_runs(train, data, limits, tol)
    dims = m.pop("dims")
    ds["limit_kind"] = (
        dims,
        m["limit_kind"],
        {
            "long_name": "which predicted object the run ended on",
            "flag_values": np.array(list(LIMIT_KINDS.values()), dtype=np.int8),
            "flag_meanings": " ".join(LIMIT_KINDS),
            "match_tol": tol,
        },
    )
    ds["limit_index"] = (dims, m["limit_index"], {"long_name": "fixed_point index of the matched point (-1: none)"})
    ds["limit_distance"] = (
        dims,
        m["limit_distance"],
        {"long_name": "distance of w_final to the nearest predicted stable fixed point or continuum", "units": "1"},
    )
    ds["limit_best"] = (dims, m["limit_best"], {"long_name": "1 if the run ended at w_bar (best stable point)"})
    ds.update(support_metrics(ds["u_final"], ds["w_star"]))
    ds.update(final_sparse_metrics(ds["u_final"], ds["w_star"]))
    ds.update({f"predicted_{k}": v for k, v in support_metrics(ds["u_bar"], ds["w_star"]).items()})
    ds = ds.drop_vars("feature")
    coords = {"n": [int(train.attrs["n"])], "k": [int(train.attrs["k"])], "seed": [int(train.attrs["seed"])]}
    ds = ds.expand_dims(coords)
    ds.attrs = {}
    return ds


def combine(cells: list[xr.Dataset], config: dict, mode: str) -> xr.Dataset:
    """Stack cells along n, k, seed (and batch_size), NaN-padding weights beyond n."""
    n_max = max(int(c.sizes["feature"]) for c in cells)
    p_max = max(int(c.sizes.get("fixed_point", 0)) for c in cells)
    padded = [c.pad(feature=(0, n_max - c.sizes["feature"])) for c in cells]
    if p_max:  # one length of the fixed_point dimension, or combine would spread every variable over it
        padded = [
            c.drop_vars("fixed_point")
            .pad(fixed_point=(0, p_max - c.sizes["fixed_point"]))
            .assign_coords(fixed_point=np.arange(p_max))
            for c in padded
        ]
    ds = xr.combine_by_coords(padded, combine_attrs="drop_conflicts", join="outer")
    ds.attrs = {}
    ds = ds.assign_coords(feature=("feature", np.arange(n_max), {"long_name": "feature index (NaN beyond n)"}))
    if "fixed_point" in ds.dims:
        ds["fixed_point"].attrs.update(long_name="index of a distinct fixed point of the cell's search")
    ks = ds["k"].values
    if config["grid"]["lam_units"] == "threshold":  # lambda depends on the penalty and beta too
        pens, betas = ds["penalty"].values.tolist(), [float(b) for b in ds["beta"].values]
        lam_eff = np.array(
            [
                [[[lam_effective(config, lam, int(k), p, b) for k in ks] for b in betas] for lam in ds["lam"].values]
                for p in pens
            ]
        )
        eff_dims = ("penalty", "lam", "beta", "k")
    else:
        lam_eff = np.array([[lam_effective(config, lam, int(k)) for k in ks] for lam in ds["lam"].values])
        eff_dims = ("lam", "k")
    ds["lam_effective"] = (
        eff_dims,
        lam_eff,
        {"long_name": "lambda used by the algorithm", "units": "1"},
    )
    ds["c"] = ("k", [relu_constant(int(k)) for k in ks], {"long_name": "relu coarse-gradient constant c(k)"})
    ds["lam"].attrs.update(lam_attrs(config))
    ds["beta"].attrs.update(long_name="splitting parameter beta", units="1")
    ds["eta"].attrs.update(long_name="step size eta", units="1")
    if "method" in ds.dims:
        ds["method"].attrs.update(long_name="training method: rvscgd or a baseline at matched sparsity")
    ds["penalty"].attrs.update(long_name="sparsity penalty")
    ds["ste"].attrs.update(long_name="straight-through estimator")
    ds["normalise"].attrs.update(long_name="normalisation step on (method) or off (ablation)")
    ds["n"].attrs.update(long_name="features per patch n")
    ds["k"].attrs.update(long_name="patches k")
    ds["seed"].attrs.update(long_name="seed index of the cell")
    if "batch_size" in ds.dims:
        ds["batch_size"].attrs.update(long_name="inputs per step B")
    for name, long in {
        "support_precision": "support precision of u_final w.r.t. w*",
        "support_recall": "support recall of u_final w.r.t. w*",
        "support_exact": "1 if supp(u_final) == supp(w*)",
        "predicted_support_precision": "support precision of u_bar",
        "predicted_support_recall": "support recall of u_bar",
        "predicted_support_exact": "1 if supp(u_bar) == supp(w*)",
    }.items():
        ds[name].attrs.update(long_name=long, units="1")
    # Facts the figures need, carried by the data (not read back from the provenance config).
    ds.attrs.update(
        mode=mode,
        lam_units=config["grid"]["lam_units"],
        tl1_a=float(config["grid"]["tl1_a"]),
        # netCDF attributes cannot be None: "none" means iht steps at the grid's eta.
        iht_eta=float(config["grid"]["iht_eta"]) if config["grid"].get("iht_eta") is not None else "none",
        tol=float(config[mode]["tol"]),
        title=f"RVSCGD study, {mode} mode",
    )
    return sort_grid(ds)


def sort_grid(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with every numeric dimension coordinate in increasing order,
    whatever order the config lists the values in (CF: coordinates are
    monotonic). Labels and values move together; boolean flags
    (``normalise``) and names (``penalty``, ``ste``) keep the config's order."""
    dims = [d for d in ds.dims if d in ds.coords and ds[d].dtype.kind in "iuf"]
    unsorted = [d for d in dims if ds.sizes[d] > 1 and not bool((ds[d].diff(d) > 0).all())]
    return ds.sortby(unsorted) if unsorted else ds
