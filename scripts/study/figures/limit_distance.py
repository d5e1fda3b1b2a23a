"""The limit_distance figure. What it shows, and how to read it: workflow/report/limit_distance.rst."""

from __future__ import annotations

import numpy as np
import xarray as xr

from study import style

from .draw import line_handle, penalty_handles, seed_points, slice_text, trace
from .select import lam_units, middle_lam, modes, need_limit_slice, penalties, resolve
from .stats import diverged, diverged_note, noise_floor, seed_stats


def draw(datasets: dict, slice: dict | None = None, lam=None):  # noqa: A002
    """||w^t - w_bar|| versus step, one panel per penalty: population mode
    (to zero) and empirical mode per batch size B (to a noise floor); last
    panel: the floor versus B with B^(-1/2) and B^(-1) guides."""
    shown = modes(datasets)
    first = datasets[shown[0]]
    pens = penalties(first)
    x = middle_lam(first, lam)
    units = lam_units(first)
    emp = datasets.get("empirical")
    ncols = len(pens) + (emp is not None)
    with style.context():
        fig, axes = style.subplots(1, ncols, height=2.45)
        axes = axes[0]
        sel_text = []
        bcolors = style.batch_colors(emp["batch_size"].values) if emp is not None else {}
        floors = {}
        for mode in shown:
            ds = datasets[mode]
            if True not in ds["normalise"].values.tolist():
                raise ValueError("limit_distance needs normalised runs (grid.normalise must contain true)")
            sel = resolve(ds, slice, shown=("penalty", "lam", "batch_size", "normalise"))
            need_limit_slice(sel)
            sel["normalise"] = True
            sel_text.append(f"{mode}: " + slice_text(sel, seeds=ds.sizes["seed"]))
            sub = ds.sel(sel).sel(lam=x)
            for i, p in enumerate(pens):
                ax = axes[i]
                r = sub.sel(penalty=p)
                if mode == "population":
                    trace(ax, r["dist_wbar"], r["status"], style.CGD_COLOR, ls="-")
                else:
                    for b in r["batch_size"].values:
                        rb = r.sel(batch_size=b)
                        trace(ax, rb["dist_wbar"], rb["status"], bcolors[int(b)])
                        floors[(p, int(b))] = noise_floor(rb["dist_wbar"].where(~diverged(rb["status"])))
                note = diverged_note(r["status"], f"{mode} runs")
                if note:
                    style.note(ax, note, "lower left" if mode == "population" else "upper right")
        for i, p in enumerate(pens):
            ax = axes[i]
            style.log_steps(ax)
            ax.set_yscale("log")
            ax.set_title(f"{style.PENALTY_LABEL[p]}, {style.lam_label(x, units)}")
            ax.set_xlabel(style.LABEL["step"])
            if i == 0:
                ax.set_ylabel(style.LABEL["dist_wbar"])
            else:
                ax.sharey(axes[0])
        handles = []
        if "population" in shown:
            handles.append(line_handle("population", style.CGD_COLOR))
        handles += [line_handle(f"empirical, $B={b}$", c) for b, c in bcolors.items()]
        if emp is not None:
            ax = axes[-1]
            bs = sorted(bcolors)
            for p in pens:
                floor = xr.concat([floors[(p, b)] for b in bs], dim="batch_size")
                seed_points(ax, floor, "batch_size", bs, style.PENALTY_COLOR[p], style.PENALTY_MARKER[p])
            # Guides through the mean floor at the smallest B: the B^(-1/2) of noise
            # averaging and the B^(-1) of a bias; from the data's level only, not a fit.
            ref = np.nanmean([float(seed_stats(floors[(p, bs[0])])[0]) for p in pens])
            bb = np.array([bs[0], bs[-1]], dtype=float) if len(bs) > 1 else np.array([bs[0] / 2, bs[0] * 2.0])
            ax.plot(bb, ref * np.sqrt(bs[0] / bb), color=style.PREDICTION_COLOR, ls=":")
            ax.plot(bb, ref * (bs[0] / bb), color=style.PREDICTION_COLOR, ls="-.")
            if len(bs) > 1:
                slopes = []
                for p in pens:
                    f0, f1 = (float(seed_stats(floors[(p, b)])[0]) for b in (bs[0], bs[-1]))
                    slopes.append(f"{style.PENALTY_LABEL[p]} {np.log(f1 / f0) / np.log(bs[-1] / bs[0]):.2f}")
                style.note(ax, "slopes:\n" + "\n".join(slopes), "upper right")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(bs, [str(b) for b in bs])
            ax.minorticks_off()
            ax.set_xlabel(r"batch size $B$")
            ax.set_ylabel(r"noise floor of $\|w^t - \bar w\|$")
            ax.set_title("empirical noise floor")
            handles += penalty_handles(pens, marker=True)
            handles.append(line_handle(r"$\propto B^{-1/2}$", ls=":"))
            handles.append(line_handle(r"$\propto B^{-1}$", ls="-."))
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
        fig.suptitle("\n".join(sel_text), fontsize=7)
    return fig
