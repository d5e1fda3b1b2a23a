"""Combine a mode's cells into one labelled dataset (model.md section 5 metrics)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .labels import SUPPORT_LONG_NAMES
from .matching import DEFAULT_MATCH_TOL, LIMIT_VARS, final_sparse_metrics, limit_kind_attrs, match_runs, support_metrics
from .stacking import sort_grid, stack_cells
from .units import lam_attrs, lam_effective, relu_constant


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
    ds["limit_kind"] = (dims, m["limit_kind"], limit_kind_attrs(tol))
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
    ds = stack_cells(cells, pad=("feature", "fixed_point"))
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
        **SUPPORT_LONG_NAMES,
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
