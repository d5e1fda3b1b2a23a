"""The multiple_limits figure. What it shows, and how to read it: workflow/report/multiple_limits.rst."""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Patch

from study import style

from .draw import cat_axis, heatmap, wrap
from .select import GRID_DIMS, fix_new_dims, lam_units, lam_values, limit_stes, modes
from .stats import diverged_note

# Outcome of a run against the enumerated fixed points (docs/theory.md 5.2).
OUTCOMES = ("at w_bar (best)", "other predicted point", "on a continuum", "unpredicted")
OUTCOME_COLORS = (
    style.OKABE_ITO["black"],
    style.OKABE_ITO["orange"],
    style.OKABE_ITO["sky"],
    style.OKABE_ITO["vermillion"],
)


def _outcomes(ds):
    """Counts per outcome of the normalised runs with a prediction (limit_kind >= 0)."""
    kind, best = ds["limit_kind"], ds["limit_best"]
    ok = kind >= 0
    return (
        int((ok & (kind == 0) & (best == 1)).sum()),
        int((ok & (kind == 0) & (best != 1)).sum()),
        int((ok & (kind == 1)).sum()),
        int((ok & (kind == 2)).sum()),
    )


def draw(datasets: dict, penalties=("l0", "tl1")):
    """Theory against runs over the whole grid: (left) share of settings (cells
    n, k, seed and STEs pooled) where rvscgd.fixed_points predicts two or more
    stable fixed points, on (lambda, beta); (right) per lambda, the share of
    the normalised runs whose final state is at w_bar (the stable point
    nearest w*), at another predicted point, on the l0 continuum, or at
    nothing the theory predicts (limit_kind)."""
    mode = "population" if "population" in datasets else modes(datasets)[0]
    ds = fix_new_dims(datasets[mode], GRID_DIMS)
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
        predicted = sub["limit_stable"] == 1
        multi = nl > 1
        fig, axes = style.subplots(len(penalties), 2, height=1.6 * len(penalties) + 1.1, width=style.PAGE)
        xl = [style.fmt_num(x) for x in lams]
        im = None
        for i, p in enumerate(penalties):
            mp, sp = multi.sel(penalty=p), predicted.sel(penalty=p)
            pool = [d for d in mp.dims if d not in ("beta", "lam")]
            share_multi = (mp.sum(pool) / sp.sum(pool)).transpose("beta", "lam")
            im = heatmap(axes[i, 0], share_multi.values, xl, [style.fmt_num(b) for b in betas])
            axes[i, 0].set_ylabel(f"{style.PENALTY_LABEL[p]}\n" + style.LABEL["beta"])
            axes[i, 0].set_xlabel(style.lam_axis_label(units))
            _outcome_bars(axes[i, 1], sub.sel(penalty=p), lams, units)
        axes[0, 0].set_title("share of settings: theory predicts $\\geq 2$ stable fixed points", fontsize=7)
        axes[0, 1].set_title(f"{mode} runs: where the final state is", fontsize=7)
        fig.colorbar(im, ax=axes[:, 0], label="share of settings", shrink=0.9, fraction=0.06, pad=0.02)
        handles = [Patch(color=c, label=lab) for c, lab in zip(OUTCOME_COLORS, OUTCOMES, strict=True)]
        fig.legend(handles=handles, loc="outside lower right", ncols=len(handles), handlelength=1.0, handleheight=0.7)
        per = "; ".join(
            f"{style.PENALTY_LABEL[p]} {int(multi.sel(penalty=p).sum())} of {int(predicted.sel(penalty=p).sum())}"
            f" (at most {int(nl.sel(penalty=p).max())})"
            for p in penalties
        )
        at_best, other, cont, unpredicted = _outcomes(sub.sel(penalty=penalties))
        total = at_best + other + cont + unpredicted
        if int(multi.sel(penalty=penalties).sum()) == 0:
            theory = "Multiple stable fixed points never happened on this grid (theory): one per setting."
        else:
            theory = f"Settings where the theory predicts several stable fixed points: {per}."
        runs = (
            f" Normalised {mode} runs ({total}): {at_best} at w_bar, {other} at another predicted point, "
            f"{cont} on a continuum, {unpredicted} at nothing predicted (match tolerance "
            f"{sub['limit_kind'].attrs.get('match_tol', 'n/a')})."
        )
        shown = sub.sel(penalty=penalties)
        if "normalise" in shown.dims:
            shown = shown.sel(normalise=True)
        note = diverged_note(shown["status"], f"normalised {mode} runs")
        if note:
            runs += f" {note} (no final state to match)."
        fig.suptitle(wrap(theory + runs), fontsize=7)
    return fig


def _outcome_bars(ax, sub, lams, units):
    """Right panel for one penalty: per lambda, the stacked shares of the outcomes."""
    pos = cat_axis(ax, lams, style.lam_axis_label(units))
    ax.set_ylim(0, 1.12)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel("share of runs")
    for xi, lam in zip(pos, lams, strict=True):
        counts = np.array(_outcomes(sub.sel(lam=lam)), dtype=float)
        total = counts.sum()
        if not total:
            continue
        bottom = 0.0
        for share, color in zip(counts / total, OUTCOME_COLORS, strict=True):
            ax.bar(xi, share, width=0.7, bottom=bottom, color=color, lw=0)
            bottom += share
        ax.text(xi, 1.03, f"{int(total)}", ha="center", va="bottom", fontsize=6)
