"""The scaling figure. What it shows, and how to read it: workflow/report/scaling.rst."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.lines import Line2D

from rvscgd import coarse_constant, linear_rate, predicted_steps
from study import style

from .draw import columns, join, line_handle, sci, seed_points, slice_text
from .select import modes, need_limit_slice, resolve
from .stats import converged, diverged, diverged_note, steps_to_reach, vector_angle


def rate_grid(ds: xr.Dataset) -> xr.DataArray:
    """``rvscgd.linear_rate`` for every (n, k, seed, penalty, lam, beta, eta, ste)
    of a dataset (normalised runs; NaN for clipped_relu, which has no constant c)."""
    a = float(ds.attrs["tl1_a"])
    dims = ("n", "k", "seed", "penalty", "lam", "beta", "eta", "ste")
    out = xr.DataArray(np.full(tuple(ds.sizes[d] for d in dims), np.nan), coords={d: ds[d] for d in dims}, dims=dims)
    # Read once: a selection from the lazily opened file decompresses the variable's whole chunk.
    ds = ds[["w_bar", "w_star", "lam_effective"]].load()
    for idx in np.ndindex(out.shape):
        co = {d: ds[d].values[i] for d, i in zip(dims, idx, strict=True)}
        if co["ste"] == "clipped_relu":
            continue
        n, k = int(co["n"]), int(co["k"])
        pt = {d: co[d] for d in ds["w_bar"].dims if d != "feature"}  # with eta if the limits depend on it
        w_bar = ds["w_bar"].sel(pt).values[:n]
        if not np.all(np.isfinite(w_bar)):
            continue
        w_star = ds["w_star"].sel(n=co["n"], k=co["k"], seed=co["seed"]).values[:n]
        eff = ds["lam_effective"]
        lam = float(eff.sel(lam=co["lam"], k=co["k"], **{d: co[d] for d in ("penalty", "beta") if d in eff.dims}))
        out[idx] = linear_rate(
            w_bar, w_star, coarse_constant(k, co["ste"]), lam, float(co["beta"]), float(co["eta"]), co["penalty"], a
        )
    return out


def draw(datasets: dict, slice: dict | None = None, lam=None, penalties=None, eps: float = 0.1):  # noqa: A002
    """Steps to converge versus n (x) and k (colour), measured (markers, mean
    and 95% band over seeds) and predicted from the linear rate of the
    expected dynamics (dashed), for plain CGD and each penalty at one lambda.
    Population row: steps until ``||w^{t+1} - w^t|| <= tol`` (the dataset's
    ``tol`` attribute, population.tol); empirical row: steps until
    ``||w^t - w_bar|| <= eps`` first."""
    shown = modes(datasets)
    first = datasets[shown[0]]
    cols = columns(first, lam, penalties)
    ks = [int(k) for k in first["k"].values]
    kcolors = dict(zip(ks, style.sequential_colors(len(ks)), strict=True))
    ns = [int(n) for n in first["n"].values]
    with style.context():
        fig, axes = style.subplots(len(shown), len(cols), height=1.6 * len(shown) + 1.2, sharex=True, sharey="row")
        subtitles = []
        ymax = [0.0] * len(shown)
        for i, mode in enumerate(shown):
            ds = datasets[mode]
            sel = resolve(ds, slice, shown=("penalty", "lam", "n", "k"))
            need_limit_slice(sel)
            if not sel.get("normalise", True):
                raise ValueError("scaling: slice normalise=false has no predicted limit; use true")
            subtitles.append(f"{mode}: " + slice_text(sel, seeds=ds.sizes["seed"]))
            sub = ds.sel(sel)
            at = {d: sel[d] for d in ("beta", "eta", "ste")}
            fixed = ds.sel({d: v for d, v in sel.items() if d not in at})
            rho = rate_grid(fixed.sel({d: [v] for d, v in at.items()})).sel(at)
            theta0 = vector_angle(sub["w0"], sub["w_bar"])
            if mode == "population":
                tol = float(ds.attrs["tol"])
                measured = sub["steps_run"].where(converged(sub["status"])).astype(float)
                pred = xr.apply_ufunc(predicted_steps, theta0, rho, kwargs={"tol": tol})
                what = f"iterations to converge\n($\\|w^{{t+1}}-w^t\\| \\leq {sci(tol)}$)"
            else:
                measured = steps_to_reach(sub["dist_wbar"].where(~diverged(sub["status"])), eps)
                pred = xr.apply_ufunc(predicted_steps, theta0, rho, kwargs={"eps": eps})
                what = f"iterations to reach\n$\\|w^t-\\bar w\\| \\leq {style.fmt_num(eps)}$"
            for j, (p, x, title) in enumerate(cols):
                ax = axes[i, j]
                m = measured.sel(penalty=p, lam=x)
                pr = pred.sel(penalty=p, lam=x)
                st = sub["status"].sel(penalty=p, lam=x)
                for k in ks:
                    seed_points(ax, m.sel(k=k), "n", ns, kcolors[k], "o")
                    ax.plot(ns, pr.sel(k=k).mean("seed").values, color=kcolors[k], ls="--", lw=0.9)
                missing = int((m.isnull() & ~diverged(st)).sum())
                notes = [diverged_note(st)]
                if missing:
                    notes.append(
                        f"{missing} not converged in max_steps"
                        if mode == "population"
                        else f"{missing} never within {style.fmt_num(eps)}"
                    )
                ok = m.notnull() & pr.notnull()
                if bool(ok.any()):
                    rel = float((np.abs(m - pr) / m).where(ok).median())
                    notes.append(f"median error of prediction {100 * rel:.0f}%")
                style.note(ax, join(*notes), "upper left")
                ax.set_xscale("log", base=2)
                ax.set_xticks(ns, [str(n) for n in ns])
                ax.minorticks_off()
                ax.set_xlim(ns[0] / 1.25, ns[-1] * 1.25)
                top = np.nanmax([np.nanmax(m.values, initial=0), np.nanmax(pr.values, initial=0)])
                ymax[i] = max(ymax[i], top)
                if i == 0:
                    ax.set_title(title)
                if j == 0:
                    ax.set_ylabel(f"{mode} mode\n{what}")
                if i == len(shown) - 1:
                    ax.set_xlabel(style.LABEL["n"])
        for i in range(len(shown)):
            axes[i, 0].set_ylim(0, 1.45 * ymax[i] if ymax[i] > 0 else 1)  # room for the notes
        handles = [Line2D([], [], color=kcolors[k], marker="o", label=f"$k={k}$, measured") for k in ks]
        handles.append(line_handle("predicted (linear rate)", "0.3", ls="--"))
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
        fig.suptitle("\n".join(subtitles), fontsize=7)
    return fig
