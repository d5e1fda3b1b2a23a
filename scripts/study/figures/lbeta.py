"""The lbeta figure. What it shows, and how to read it: workflow/report/lbeta.rst."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from study import style

from .draw import STRIP, cat_axis, join, keep_labels, wrap
from .select import GRID_DIMS, fix_new_dims, lam_units, lam_values, modes, penalties
from .stats import diverged, wilson_interval

MODE_LINE = {"population": "-", "empirical": "--"}
MODE_MARKER = {"population": "o", "empirical": "s"}


def _runs(ds):
    """The RVSCGD runs (lambda > 0, normalised) of a dataset, every other grid
    dimension pooled: (rises, relative rise, status); ``rises`` is 1/0 per run,
    NaN where undefined (diverged or no trace)."""
    ds = fix_new_dims(ds, GRID_DIMS)
    sub = ds.sel(lam=lam_values(ds, nonzero=True))
    if "normalise" in sub.dims and True in sub["normalise"].values.tolist():
        sub = sub.sel(normalise=True)
    ok = ~diverged(sub["status"]) & (sub["lbeta_rises"] >= 0)
    rises = sub["lbeta_rises"].where(ok)
    # Largest rise above the running minimum, relative to the objective at the start.
    rel = (sub["lbeta_rise"] / sub["lbeta"].isel(step=0)).where(ok)
    return rises, rel, sub["status"]


def _share(rises, dims=None):
    """(k, n, share, low, high) of runs that rose, with Wilson 95% intervals."""
    k = (rises == 1).sum(dims)
    n = rises.notnull().sum(dims)
    lo, hi = wilson_interval(k.values, n.values)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = k.values / n.values
    return k.values, n.values, share, lo, hi


def draw(datasets: dict):
    """Per penalty, over every RVSCGD run of the grid (lambda > 0, normalised;
    n, k, seeds, beta, eta, STEs and batch sizes pooled): (a) the share of runs
    whose L_beta(w^t, u^t) rises somewhere on the recorded steps, with Wilson
    95% intervals, per mode; (b) that share versus lambda; (c) the largest
    rise above the running minimum relative to L_beta(0), per run that rose
    (log scale)."""
    shown = modes(datasets)
    first = datasets[shown[0]]
    pens = penalties(first)
    lams = lam_values(first, nonzero=True)
    units = lam_units(first)
    with style.context():
        fig, axes = style.subplots(1, 3, width=style.PAGE, height=2.5, gridspec_kw={"width_ratios": [1, 1.3, 1]})
        ax_a, ax_b, ax_c = axes[0]
        frames, notes = [], []
        dodge = {m: (i - (len(shown) - 1) / 2) * 0.22 for i, m in enumerate(shown)}
        for mode in shown:
            rises, rel, status = _runs(datasets[mode])
            bad = int(diverged(status).sum())
            if bad:
                notes.append(f"{mode}: {bad} of {int(status.size)} runs diverged, excluded")
            pool = [d for d in rises.dims if d != "penalty"]
            k, n, share, lo, hi = _share(rises.sel(penalty=pens), pool)
            for i, p in enumerate(pens):
                x = i + dodge[mode]
                ax_a.errorbar(
                    x,
                    share[i],
                    yerr=[[share[i] - lo[i]], [hi[i] - share[i]]],
                    color=style.PENALTY_COLOR[p],
                    marker=MODE_MARKER[mode],
                    mfc="white" if mode == "empirical" else style.PENALTY_COLOR[p],
                    ms=4,
                    capsize=2,
                    lw=1.0,
                    ls="",
                )
                ax_a.annotate(
                    f"{int(k[i])}/{int(n[i])}",
                    (x, hi[i]),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=5,
                    color="0.25",
                )
                kb, nb, sb, lob, hib = _share(rises.sel(penalty=p), [d for d in pool if d != "lam"])
                pos = np.arange(len(lams))
                ax_b.plot(pos, sb, color=style.PENALTY_COLOR[p], ls=MODE_LINE[mode], marker=MODE_MARKER[mode], ms=2.5)
                ax_b.fill_between(pos, lob, hib, color=style.PENALTY_COLOR[p], alpha=style.BAND_ALPHA * 0.6, lw=0)
            df = rel.where(rises == 1).rename("rel").to_dataframe().reset_index()[["penalty", "rel"]].dropna()
            df = df[df["rel"] > 0]
            df["mode"] = mode
            frames.append(df)
        ax_a.set_xticks(range(len(pens)), [style.PENALTY_LABEL[p] for p in pens])
        ax_a.set_xlim(-0.6, len(pens) - 0.4)
        ax_a.set_ylim(-0.03, 1.1)
        ax_a.set_ylabel(r"share of runs where $L_\beta$ rises")
        style.panel_title(ax_a, "runs with a rise", "a")
        cat_axis(ax_b, lams, style.lam_axis_label(units))
        ax_b.set_ylim(-0.03, 1.03)
        ax_b.set_ylabel(r"share where $L_\beta$ rises")
        style.panel_title(ax_b, r"versus $\lambda$ (band: Wilson 95%)", "b")
        data = pd.concat(frames, ignore_index=True)
        if data.empty:
            style.empty_panel(ax_c, r"$L_\beta$ never rose in these runs.")
        else:
            with keep_labels(ax_c):
                sns.stripplot(
                    data=data,
                    x="penalty",
                    y="rel",
                    order=pens,
                    hue="mode",
                    hue_order=shown,
                    palette={m: "0.3" if m == "population" else style.OKABE_ITO["vermillion"] for m in shown},
                    dodge=len(shown) > 1,
                    ax=ax_c,
                    **STRIP,
                )
            ax_c.set_xticks(range(len(pens)), [style.PENALTY_LABEL[p] for p in pens])
            ax_c.set_xlabel("")
            ax_c.set_ylabel(r"largest rise $/\ L_\beta(w^0, u^0)$")
        style.panel_title(ax_c, "size of the largest rise", "c")
        handles = [Line2D([], [], color=style.PENALTY_COLOR[p], lw=1.2, label=style.PENALTY_LABEL[p]) for p in pens]
        handles += [
            Line2D(
                [],
                [],
                color="0.3",
                ls=MODE_LINE[m],
                marker=MODE_MARKER[m],
                mfc="white" if m == "empirical" else "0.3",
                ms=3,
                label=f"{m} (a, b)",
            )
            for m in shown
        ]
        if not data.empty:
            handles += [
                Line2D([], [], color=c, marker="o", ls="", ms=3, label=f"{m} (c)")
                for m, c in (("population", "0.3"), ("empirical", style.OKABE_ITO["vermillion"]))
                if m in shown
            ]
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
        caption = (
            r"$L_\beta(w^t, u^t) = L(w^t) + \lambda P(u^t) + \frac{\beta}{2}\|w^t - u^t\|^2$ (true population loss) "
            "on the recorded steps (a rise between them is missed; a rise counts above "
            r"$10^{-12}\max_t |L_\beta|$); "
            r"RVSCGD runs ($\lambda > 0$, normalised), every n, k, seed, $\beta$, $\eta$, STE and B pooled"
        )
        fig.suptitle(wrap(join(caption, "; ".join(notes))), fontsize=7)
    return fig
