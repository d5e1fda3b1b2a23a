"""The tradeoff figure. What it shows, and how to read it: workflow/report/tradeoff.rst."""

from __future__ import annotations

import numpy as np

from study import style

from .draw import band_bars, bound_note, frac, join, line_handle, penalty_handles, slice_text
from .select import lam_units, lam_values, one_mode, penalties, resolve
from .stats import diverged_note, error_bounds, final_metrics, match_tol, seed_stats, u_zero_count


def draw(datasets: dict, slice: dict | None = None, mode: str | None = None):  # noqa: A002
    """Error angle(u, w*) versus sparsity of u at the end of the runs, one curve
    per penalty through the lambdas > 0 (mean over seeds), one panel per n: at
    matched sparsity, the lower curve is the better penalty. Plain CGD
    (lambda = 0: sparsity 0) is left out so the axis zooms on the trade-off.

    The explicit error bound (``stats.error_bounds``) is drawn where it holds:
    there u_bar keeps exactly the support of w*, so its points (one per lambda,
    the largest over the seeds' teachers) sit at the sparsity of w*; each panel
    counts the runs above their own teacher's bound (never clipped).

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
    # The explicit bound (rvscgd.theory.error_bound) from each teacher and the grid: no run enters it.
    bound = error_bounds(ds.sel(sel).sel(lam=lams))
    tol = match_tol(ds)
    dodge = dict(zip(pens, (np.arange(len(pens)) - (len(pens) - 1) / 2) * 0.006, strict=True))
    with style.context():
        fig, axes = style.subplots(1, len(ns), height=2.6, sharey=True)
        for j, n in enumerate(ns):
            ax = axes[0, j]
            mn = m.sel(n=n)
            for p in pens:
                sp = seed_stats(mn["sparsity"].sel(penalty=p))[0]
                an, lo, hi, _ = seed_stats(mn["angle"].sel(penalty=p))
                ax.plot(sp.values, an.values, color=style.PENALTY_COLOR[p], marker=style.PENALTY_MARKER[p], lw=1.0)
                band_bars(ax, sp.values, lo.values, hi.values, style.PENALTY_COLOR[p])
            dens = float(mn["density"].mean())
            if bound is not None:
                # Where the bound holds, u_bar keeps exactly the support of w*: sparsity 1 - s/n.
                for p in pens:
                    hi = bound.sel(n=n, penalty=p).max("seed").values
                    ax.plot(
                        np.full(hi.shape, 1 - dens) + dodge[p],
                        hi,
                        color=style.PENALTY_COLOR[p],
                        ls="-.",
                        lw=0.8,
                        marker=style.PENALTY_MARKER[p],
                        mfc="white",
                        ms=3,
                        zorder=1,
                        gid="theory_bound",
                    )
            ax.axvline(1 - dens, color=style.PREDICTION_COLOR, ls=":", lw=0.8)
            ax.set_title(f"$n={n}$, $s/n={frac(mn['density'])}$")
            ax.set_xlabel("sparsity of $u$ (fraction of zeros)")
            low = np.nanmin(np.append(mn["sparsity"].mean("seed").values.ravel(), 1 - dens))
            ax.set_xlim(max(low - 0.04, -0.03), 1.01)
            notes = [diverged_note(mn["status"])]
            u0 = u_zero_count(mn["angle"], mn["status"])
            if u0:
                notes.append(f"{u0} runs end with $u=0$\n(excluded)")
            if bound is not None:
                style.below(ax, bound_note(mn["angle"], bound.sel(n=n), tol))
            style.note(ax, join(*notes), "lower right")
        style.bottom_at(axes, 0)
        axes[0, 0].set_ylabel(r"error $\theta(u, w^*)$ (rad)")
        handles = penalty_handles(pens, marker=True)
        if bound is not None:
            scope = "" if bound.attrs["all_fixed_points"] else r", fixed points with $N>\\beta$"
            handles.append(
                line_handle(
                    f"theory bound per $\\lambda$ (max over seeds{scope})",
                    "0.3",
                    ls="-.",
                    marker="o",
                    mfc="white",
                    ms=3,
                )
            )
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
