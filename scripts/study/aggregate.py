"""Combine a mode's cells into one labelled dataset (model.md section 5 metrics)."""

from __future__ import annotations

import numpy as np
import xarray as xr

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


def cell_dataset(train: xr.Dataset, data: xr.Dataset, limits: xr.Dataset, mode: str) -> xr.Dataset:
    """One cell's training runs joined with its teacher and predicted limits."""
    ds = train.copy()
    ds["w_star"] = data["w_star"]
    ds["w0"] = data["w0"]
    for name in ("w_bar", "u_bar", "n_limits", "limit_share", "limit_stable", "limit_counts"):
        ds[name] = limits[name]
    # Every search has w0 plus limit.starts starts: the `limit` dim is that long.
    ds["limit_counts"].attrs["n_starts"] = int(limits.sizes["limit"])
    ds.update(support_metrics(ds["u_final"], ds["w_star"]))
    ds.update({f"predicted_{k}": v for k, v in support_metrics(ds["u_bar"], ds["w_star"]).items()})
    ds = ds.drop_vars("feature")
    coords = {"n": [int(train.attrs["n"])], "k": [int(train.attrs["k"])], "seed": [int(train.attrs["seed"])]}
    ds = ds.expand_dims(coords)
    ds.attrs = {}
    return ds


def combine(cells: list[xr.Dataset], config: dict, mode: str) -> xr.Dataset:
    """Stack cells along n, k, seed (and batch_size), NaN-padding weights beyond n."""
    n_max = max(int(c.sizes["feature"]) for c in cells)
    padded = [c.pad(feature=(0, n_max - c.sizes["feature"])) for c in cells]
    ds = xr.combine_by_coords(padded, combine_attrs="drop_conflicts", join="outer")
    ds.attrs = {}
    ds = ds.assign_coords(feature=("feature", np.arange(n_max), {"long_name": "feature index (NaN beyond n)"}))
    ks = ds["k"].values
    lam_eff = np.array([[lam_effective(config, lam, int(k)) for k in ks] for lam in ds["lam"].values])
    ds["lam_effective"] = (
        ("lam", "k"),
        lam_eff,
        {"long_name": "lambda used by the algorithm", "units": "1"},
    )
    ds["c"] = ("k", [relu_constant(int(k)) for k in ks], {"long_name": "relu coarse-gradient constant c(k)"})
    relative = config["grid"]["lam_units"] == "relative_to_c"
    ds["lam"].attrs.update(
        long_name="penalty weight lambda as configured" + (", in units of c(k)" if relative else ""),
        lam_units=config["grid"]["lam_units"],
        units="1",  # dimensionless either way; c(k) is no UDUNITS unit (the long_name says it)
    )
    ds["beta"].attrs.update(long_name="splitting parameter beta", units="1")
    ds["eta"].attrs.update(long_name="step size eta", units="1")
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
