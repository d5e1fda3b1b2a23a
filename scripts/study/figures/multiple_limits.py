"""Figure 5: how often the fixed-point equation has several solutions, and which starts reach which."""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Patch

from study import style

from .draw import cat_axis, heatmap, wrap
from .select import GRID_DIMS, fix_new_dims, lam_units, lam_values, limit_stes, modes
from .stats import converged, diverged_note

# Fill colours of the stacked shares, most reached fixed point first.
LIMIT_COLORS = (
    style.OKABE_ITO["black"],
    style.OKABE_ITO["orange"],
    style.OKABE_ITO["sky"],
    style.OKABE_ITO["green"],
    "0.6",
)
LIMIT_LABELS = ("1st (most reached)", "2nd", "3rd", "4th", "others")


def draw(datasets: dict, penalties=("l0", "tl1")):
    """How often the fixed-point equation has several solutions, over the whole
    grid: (left) share of searches (cells n, k, seed and STEs pooled) with two
    or more distinct fixed points, on (lambda, beta); (right) for those
    searches, the share of the starts (w0 and the random starts) reaching each
    fixed point, one stacked bar per search."""
    ds = fix_new_dims(datasets[modes(datasets)[0]], GRID_DIMS)
    penalties = [p for p in penalties if p in ds["penalty"].values.tolist()]
    if not penalties:
        raise ValueError(f"penalties: none of them is on the grid {ds['penalty'].values.tolist()}")
    stes = limit_stes(ds)
    lams = lam_values(ds, nonzero=True)
    units = lam_units(ds)
    betas = [float(b) for b in ds["beta"].values]
    with style.context():
        if not stes or not lams:
            fig, axes = style.subplots(1, 1, width=style.COLUMN, height=1.5)
            style.empty_panel(axes[0, 0], "No predicted limits on this grid (no relu/identity STE or no $\\lambda>0$).")
            return fig
        sub = ds.sel(ste=stes, lam=lams)
        nl = sub["n_limits"]
        searched = nl > 0
        multi = nl > 1
        n_search = int(searched.sel(penalty=penalties).sum())
        n_multi = int(multi.sel(penalty=penalties).sum())
        starts = int(sub["limit_counts"].attrs["n_starts"])  # w0 and the random starts
        fig, axes = style.subplots(len(penalties), 2, height=1.6 * len(penalties) + 1.1, width=style.PAGE)
        xl = [style.fmt_num(x) for x in lams]
        im = None
        for i, p in enumerate(penalties):
            mp, sp = multi.sel(penalty=p), searched.sel(penalty=p)
            pool = [d for d in mp.dims if d not in ("beta", "lam")]  # n, k, seed, ste (and eta if the search has it)
            share_multi = (mp.sum(pool) / sp.sum(pool)).transpose("beta", "lam")
            im = heatmap(axes[i, 0], share_multi.values, xl, [style.fmt_num(b) for b in betas])
            axes[i, 0].set_ylabel(f"{style.PENALTY_LABEL[p]}\n" + style.LABEL["beta"])
            axes[i, 0].set_xlabel(style.lam_axis_label(units))
            _limit_shares(axes[i, 1], sub.sel(penalty=p), lams, units, starts)
        axes[0, 0].set_title("share of searches with $\\geq 2$ fixed points", fontsize=7)
        axes[0, 1].set_title("share of starts reaching each fixed point", fontsize=7)
        fig.colorbar(im, ax=axes[:, 0], label="share of searches", shrink=0.9, fraction=0.06, pad=0.02)
        if n_multi:
            handles = [Patch(color=c, label=lab) for c, lab in zip(LIMIT_COLORS, LIMIT_LABELS, strict=True)]
            fig.legend(
                handles=handles, loc="outside lower right", ncols=len(handles), handlelength=1.0, handleheight=0.7
            )
        pooled = " × ".join(
            f"{sub.sizes[d]} {name}"
            for d, name in (("n", "n"), ("k", "k"), ("seed", "seeds"), ("ste", "STEs"), ("eta", "η"))
            if d in nl.dims
        )
        per = "; ".join(
            f"{style.PENALTY_LABEL[p]} {int(multi.sel(penalty=p).sum())} of {int(searched.sel(penalty=p).sum())}"
            for p in penalties
        )
        if n_multi == 0:
            headline = (
                f"Multiple limits never happened on this grid: each of the {n_search} searches "
                f"({starts} starts each) found a single fixed point."
            )
        else:
            headline = f"Searches that found several fixed points ({starts} starts each; pooled: {pooled}): {per}."
        fig.suptitle(wrap(headline + _reached_note(datasets)), fontsize=7)
    return fig


def _reached_note(datasets) -> str:
    """Do the trained population runs end at the limit predicted from w0?"""
    pop = datasets.get("population")
    if pop is None or True not in pop["normalise"].values.tolist():
        return ""
    r = fix_new_dims(pop, GRID_DIMS).sel(normalise=True)
    d = r["dist_wbar"].isel(step=-1)
    ok = converged(r["status"]) & d.notnull()
    total = int(ok.sum())
    far = int((ok & (d > 1e-6)).sum())
    diverged = diverged_note(r["status"], "normalised population runs")
    diverged = f" {diverged}." if diverged else ""
    if not total:
        return diverged
    return (
        " Trained population runs (converged, normalised) ending farther than $10^{-6}$ from the limit "
        f"predicted from their start, i.e. at another fixed point: {far} of {total}.{diverged}"
    )


def _limit_shares(ax, sub, lams, units, starts):
    """Right panel for one penalty: per lambda, one stacked bar per search with
    several fixed points, the share of its starts reaching each (matplotlib:
    seaborn has no stacked bars). The number over a group counts its searches."""
    multi = sub["n_limits"] > 1
    pos = cat_axis(ax, lams, style.lam_axis_label(units))
    ax.set_ylim(0, 1.12)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel("share of starts")
    if not bool(multi.any()):
        style.note(ax, "single fixed point in every search", "center")
        return
    counts = sub["limit_counts"]
    for xi, lam in zip(pos, lams, strict=True):
        c = counts.sel(lam=lam).where(multi.sel(lam=lam))
        stacked = c.stack(search=[d for d in c.dims if d != "limit"]).dropna("search", how="all")
        m = stacked.sizes["search"]
        if not m:
            continue
        shares = (stacked / starts).values  # (limit, search)
        shares = shares[:, np.argsort(-shares[0])]
        width = 0.8 / m
        bottom = np.zeros(m)
        xs = xi - 0.4 + width * (np.arange(m) + 0.5)
        for li in range(min(shares.shape[0], len(LIMIT_COLORS))):
            last = li == len(LIMIT_COLORS) - 1
            h = np.nan_to_num(shares[li:]).sum(axis=0) if last else np.nan_to_num(shares[li])
            ax.bar(xs, h, width=width, bottom=bottom, color=LIMIT_COLORS[li], lw=0)
            bottom += h
        ax.text(xi, 1.03, f"{m}", ha="center", va="bottom", fontsize=6)
