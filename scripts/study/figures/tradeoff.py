"""Figure 3b: error versus sparsity at the end of the runs, one curve per penalty."""

from __future__ import annotations

import numpy as np

from study import style

from .draw import frac, join, line_handle, penalty_handles, slice_text
from .select import lam_units, lam_values, one_mode, penalties, resolve
from .stats import diverged_note, final_metrics, seed_stats, u_zero_count


def draw(datasets: dict, slice: dict | None = None, mode: str | None = None):  # noqa: A002
    """Error angle(u, w*) versus sparsity of u at the end of the runs, one curve
    per penalty through the lambdas > 0 (mean over seeds), one panel per n: at
    matched sparsity, the lower curve is the better penalty. Plain CGD
    (lambda = 0: sparsity 0) is left out so the axis zooms on the trade-off.

    Matplotlib, not seaborn: both coordinates of a point are means over seeds
    (one point per lambda), which seaborn's x-grouped estimators do not draw.
    """
    mode, ds = one_mode(datasets, mode)
    pens = penalties(ds)
    lams = lam_values(ds, nonzero=True) or lam_values(ds)
    units = lam_units(ds)
    sel = resolve(ds, slice, shown=("penalty", "lam", "n"))
    m = final_metrics(ds.sel(sel).sel(lam=lams))
    ns = [int(x) for x in ds["n"].values]
    with style.context():
        fig, axes = style.subplots(1, len(ns), height=2.6, sharey=True)
        for j, n in enumerate(ns):
            ax = axes[0, j]
            mn = m.sel(n=n)
            for p in pens:
                sp = seed_stats(mn["sparsity"].sel(penalty=p))[0]
                an, lo, hi, _ = seed_stats(mn["angle"].sel(penalty=p))
                ax.errorbar(
                    sp.values,
                    an.values,
                    yerr=[an.values - lo.values, hi.values - an.values],
                    color=style.PENALTY_COLOR[p],
                    marker=style.PENALTY_MARKER[p],
                    capsize=1.5,
                    lw=1.0,
                )
            dens = float(mn["density"].mean())
            ax.axvline(1 - dens, color=style.PREDICTION_COLOR, ls=":", lw=0.8)
            ax.set_title(f"$n={n}$, $s/n={frac(mn['density'])}$")
            ax.set_xlabel("sparsity of $u$ (fraction of zeros)")
            low = np.nanmin(np.append(mn["sparsity"].mean("seed").values.ravel(), 1 - dens))
            ax.set_xlim(max(low - 0.04, -0.03), 1.01)
            ax.set_ylim(bottom=0)
            notes = [diverged_note(mn["status"])]
            u0 = u_zero_count(mn["angle"], mn["status"])
            if u0:
                notes.append(f"{u0} runs end with $u=0$ (excluded)")
            style.note(ax, join(*notes), "upper left")
        axes[0, 0].set_ylabel(r"error $\theta(u, w^*)$ (rad)")
        handles = penalty_handles(pens, marker=True)
        handles.append(line_handle("sparsity of $w^*$", ls=":"))
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
        lam_txt = ", ".join(style.fmt_num(x) for x in lams)
        unit_txt = " (units of $c(k)$)" if units == "relative_to_c" else ""
        fig.suptitle(
            f"{mode} mode, last step, points: $\\lambda \\in \\{{{lam_txt}\\}}${unit_txt}\n"
            + slice_text(sel, seeds=ds.sizes["seed"]),
            fontsize=7,
        )
    return fig
