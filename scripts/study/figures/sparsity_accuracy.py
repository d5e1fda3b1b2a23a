"""The sparsity_accuracy figure. What it shows, and how to read it: workflow/report/sparsity_accuracy.rst."""

from __future__ import annotations

import numpy as np

from study import style

from .draw import bound_note, cat_axis, frac, join, line_handle, penalty_handles, seed_points, slice_text
from .select import lam_units, lam_values, one_mode, penalties, resolve
from .stats import diverged_note, error_bounds, final_metrics, match_tol, u_zero_count


def draw(datasets: dict, slice: dict | None = None, mode: str | None = None):  # noqa: A002
    """Sparsity of u and angle(u, w*) at the end of the runs versus lambda, one
    colour per penalty, one column per n (mean and 95% band over seeds); the
    predicted u_bar as open markers on dashed lines, the sparsity of w* dotted.
    Bottom row: the explicit error bound (``stats.error_bounds``), its largest
    value over the seeds' teachers dash-dotted over a band down to the
    smallest; each panel counts the runs above their own teacher's bound by more
    than the dataset's match tolerance (drawn, never clipped)."""
    mode, ds = one_mode(datasets, mode)
    pens = penalties(ds)
    lams = lam_values(ds)
    units = lam_units(ds)
    sel = resolve(ds, slice, shown=("penalty", "lam", "n"))
    m = final_metrics(ds.sel(sel))
    ns = [int(x) for x in ds["n"].values]
    offsets = dict(zip(pens, (np.arange(len(pens)) - (len(pens) - 1) / 2) * 0.12, strict=True))
    has_pred = bool(m["pred_angle"].notnull().any())
    # The explicit bound (rvscgd.theory.error_bound) from each teacher and the grid: no run enters it.
    bound = error_bounds(ds.sel(sel))
    tol = match_tol(ds)
    with style.context():
        fig, axes = style.subplots(2, len(ns), height=4.2, sharex=True, sharey="row")
        for j, n in enumerate(ns):
            mn = m.sel(n=n)
            for i, (what, pred) in enumerate((("sparsity", "pred_sparsity"), ("angle", "pred_angle"))):
                ax = axes[i, j]
                pos = np.arange(len(lams))
                for p in pens:
                    x = pos + offsets[p]
                    c = style.PENALTY_COLOR[p]
                    seed_points(ax, mn[what].sel(penalty=p, lam=lams), "lam", x, c, style.PENALTY_MARKER[p])
                    if has_pred:  # not at lambda = 0: no thresholding, u_bar = w* only up to rounding
                        pm = mn[pred].sel(penalty=p, lam=lams).mean("seed").where(mn["lam"] != 0)
                        ax.plot(
                            x,
                            pm.values,
                            color=c,
                            ls="--",
                            lw=0.7,
                            marker=style.PENALTY_MARKER[p],
                            mfc="white",
                            ms=2.5,
                            zorder=4,
                        )
                    if what == "angle" and bound is not None:
                        b = bound.sel(n=n, penalty=p, lam=lams)
                        lo, hi = b.min("seed").values, b.max("seed").values
                        ax.fill_between(x, lo, hi, color=c, alpha=0.12, lw=0, zorder=1, gid="theory_bound")
                        ax.plot(x, hi, color=c, ls="-.", lw=0.8, zorder=1, gid="theory_bound")
                cat_axis(ax, lams, style.lam_axis_label(units) if i == 1 else "")
                if what == "sparsity":
                    ax.axhline(1 - float(mn["density"].mean()), color=style.PREDICTION_COLOR, ls=":", lw=0.8)
                    ax.set_title(f"$n={n}$, $s/n={frac(mn['density'])}$")
                    ax.set_ylim(-0.03, 1.03)
                notes = [diverged_note(mn["status"])]
                if what == "angle":
                    u0 = u_zero_count(mn["angle"], mn["status"])
                    if u0:
                        notes.append(f"{u0} runs end with $u=0$\n(angle undefined)")
                    if bound is not None:
                        style.below(ax, bound_note(mn["angle"], bound.sel(n=n), tol))
                style.note(ax, join(*notes), "upper left")
        style.bottom_at(axes[1], 0)
        axes[0, 0].set_ylabel("sparsity of $u$ (fraction of zeros)")
        axes[1, 0].set_ylabel(r"$\theta(u, w^*)$ (rad)")
        handles = penalty_handles(pens, marker=True, suffix=", measured")
        if has_pred:
            handles.append(line_handle(r"predicted $\bar u$", "0.3", ls="--", marker="o", mfc="white", ms=3, lw=0.7))
        if bound is not None:
            scope = "" if bound.attrs["all_fixed_points"] else r", fixed points with $N>\\beta$"
            handles.append(line_handle(f"theory bound (max over seeds{scope})", "0.3", ls="-."))
        handles.append(line_handle("sparsity of $w^*$", ls=":"))
        fig.legend(handles=handles, loc="outside lower center", ncols=(len(handles) + 1) // 2)
        fig.suptitle(f"{mode} mode, last step: " + slice_text(sel, seeds=ds.sizes["seed"]), fontsize=7)
    return fig
