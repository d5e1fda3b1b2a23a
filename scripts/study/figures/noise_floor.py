"""The noise_floor figure. What it shows, and how to read it: workflow/report/noise_floor.rst."""

from __future__ import annotations

import numpy as np

from study import style

from .draw import line_handle, seed_points, slice_text
from .select import lam_units, middle_lam, need_limit_slice, penalties, resolve
from .stats import diverged, diverged_note, floor_ratio, mean_sq_floor, outside_band


def draw(datasets: dict, slice: dict | None = None, lam=None):  # noqa: A002
    """RMS noise floor of ||w^t - w_bar|| (over the second half of the run)
    versus the label-noise level sigma (the ``label_noise`` slice), one panel
    per penalty, one line per batch size B; mean and 95% band over seeds;
    dashed, "theory": the predicted floor (``floor_mean_sq``, study.floor)."""
    ds = datasets["label_noise"]
    pens = penalties(ds)
    x = middle_lam(ds, lam)
    units = lam_units(ds)
    if True not in ds["normalise"].values.tolist():
        raise ValueError("noise_floor needs normalised runs (grid.normalise must contain true)")
    sel = resolve(ds, slice, shown=("penalty", "lam", "batch_size", "normalise", "label_noise"))
    need_limit_slice(sel)
    sel["normalise"] = True
    sub = ds.sel(sel).sel(lam=x)
    sigmas = [float(s) for s in sub["label_noise"].values]
    sizes = [int(b) for b in sub["batch_size"].values]
    colors = style.batch_colors(sizes)
    with style.context():
        fig, axes = style.subplots(1, len(pens), height=3.4, sharey=True)  # room for the notes under the panels
        for i, p in enumerate(pens):
            ax = axes[0, i]
            r = sub.sel(penalty=p)
            ratios = {}
            for b in sizes:
                rb = r.sel(batch_size=b)
                ms = mean_sq_floor(rb["dist_wbar"].where(~diverged(rb["status"])))
                seed_points(ax, np.sqrt(ms), "label_noise", sigmas, colors[b], style.PENALTY_MARKER[p])
                if "floor_mean_sq" in rb:
                    pred = rb["floor_mean_sq"].broadcast_like(ms)
                    seed_points(ax, np.sqrt(pred), "label_noise", sigmas, colors[b], None, ls="--", lw=0.8)
                    for s in sigmas:
                        ratios[f"B={b}, sigma={s:g}"] = floor_ratio(ms.sel(label_noise=s), pred.sel(label_noise=s))
            notes = [diverged_note(r["status"])]
            style.note(ax, "\n".join(n for n in notes if n), "upper left")
            band = outside_band(ratios)
            if band:
                style.below(ax, band)  # under the panel: a box inside would cover the points
            ax.set_yscale("log")
            ax.set_xticks(sigmas, [f"{s:g}" for s in sigmas])
            ax.set_xlabel(r"label noise $\sigma$")
            ax.set_title(f"{style.PENALTY_LABEL[p]}, {style.lam_label(x, units)}")
            if i == 0:
                ax.set_ylabel(r"RMS noise floor of $\|w^t - \bar w\|$")
        handles = [line_handle(f"$B={b}$", colors[b]) for b in sizes]
        if "floor_mean_sq" in sub:
            handles.append(line_handle("theory: predicted RMS floor", ls="--"))
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
        fig.suptitle("empirical: " + slice_text(sel, seeds=ds.sizes["seed"]), fontsize=7)
    return fig
