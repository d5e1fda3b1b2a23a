"""The limit_distance figure. What it shows, and how to read it: workflow/report/limit_distance.rst."""

from __future__ import annotations

import numpy as np
import xarray as xr

from study import style

from .draw import line_handle, penalty_handles, seed_points, slice_text, trace
from .select import lam_units, middle_lam, modes, need_limit_slice, penalties, resolve
from .stats import diverged, diverged_note, floor_ratio, mean_sq_floor, outside_band, run_end, seed_stats


def draw(datasets: dict, slice: dict | None = None, lam=None):  # noqa: A002
    """||w^t - w_bar|| versus step, one panel per penalty: population mode
    (to zero) and empirical mode per batch size B (to a noise floor, with the
    predicted RMS floor, "theory", dashed); last panel: the measured RMS floor
    versus B against the predicted one (``floor_mean_sq``, study.floor), and the
    groups whose measurement leaves the theory's band."""
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
        floors, theory, ratios = {}, {}, {}
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
                        ms = mean_sq_floor(rb["dist_wbar"].where(~diverged(rb["status"])))
                        floors[(p, int(b))] = np.sqrt(ms)
                        if "floor_mean_sq" in rb:
                            pred = rb["floor_mean_sq"]
                            theory[(p, int(b))] = np.sqrt(pred)
                            level = float(np.sqrt(pred.mean()))
                            t_end = float(run_end(rb["dist_wbar"]).max())
                            if np.isfinite(level):  # over the stationary part the floor is measured on
                                ax.hlines(level, t_end / 2, 4 * t_end, color=bcolors[int(b)], ls="--", lw=1.1, zorder=4)
                            ratios[f"{style.PENALTY_LABEL[p]}, B={int(b)}"] = floor_ratio(ms, pred)
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
        if theory:
            handles.append(line_handle("theory: predicted RMS floor", ls="--"))
        if emp is not None:
            ax = axes[-1]
            bs = sorted(bcolors)
            slopes = []
            for p in pens:
                floor = xr.concat([floors[(p, b)] for b in bs], dim="batch_size")
                seed_points(ax, floor, "batch_size", bs, style.PENALTY_COLOR[p], style.PENALTY_MARKER[p])
                line = f"{style.PENALTY_LABEL[p]} "
                if len(bs) > 1:
                    f0, f1 = (float(seed_stats(floors[(p, b)])[0]) for b in (bs[0], bs[-1]))
                    line += f"{np.log(f1 / f0) / np.log(bs[-1] / bs[0]):.2f}"
                if all((p, b) in theory for b in bs):
                    pred = xr.concat([theory[(p, b)] for b in bs], dim="batch_size")
                    seed_points(ax, pred, "batch_size", bs, style.PENALTY_COLOR[p], None, ls="--", lw=0.8)
                    if len(bs) > 1:
                        t0, t1 = (float(theory[(p, b)].mean()) for b in (bs[0], bs[-1]))
                        line += f" (theory {np.log(t1 / t0) / np.log(bs[-1] / bs[0]):.2f})"
                slopes.append(line)
            text = "slopes in $B$:\n" + "\n".join(slopes) if len(bs) > 1 else ""
            band = outside_band(ratios)
            text = "\n".join(t for t in (text, band) if t)
            if text:
                style.below(ax, text)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(bs, [str(b) for b in bs])
            ax.minorticks_off()
            ax.set_xlabel(r"batch size $B$")
            ax.set_ylabel(r"RMS floor of $\|w^t - \bar w\|$")
            ax.set_title("empirical noise floor")
            handles += penalty_handles(pens, marker=True)
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=len(handles) if len(handles) <= 5 else (len(handles) + 1) // 2,
        )
        fig.suptitle("\n".join(sel_text), fontsize=7)
    return fig
