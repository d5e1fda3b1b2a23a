"""The baselines figure. What it shows, and how to read it: workflow/report/baselines.rst."""

from __future__ import annotations

import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.ticker import FuncFormatter

from study import style

from .draw import slice_text
from .select import lam_units, lam_values, modes, penalties, resolve
from .stats import at_run_end, converged, diverged_note, steps_to_reach, tidy

METHOD_LABEL = {
    "rvscgd": "RVSCGD",
    "prune": "CGD + magnitude pruning",
    "prox_cgd": "proximal CGD",
    "iht": "IHT (knows s)",
}
METHOD_COLOR = {
    "rvscgd": style.OKABE_ITO["blue"],
    "prune": style.OKABE_ITO["vermillion"],
    "prox_cgd": style.OKABE_ITO["green"],
    "iht": style.OKABE_ITO["purple"],
}
METHOD_DASHES = {"rvscgd": "", "prune": (4, 2), "prox_cgd": (1, 1.5), "iht": (5, 1.5, 1, 1.5)}
METHOD_MARKER = {"rvscgd": "o", "prune": "s", "prox_cgd": "^", "iht": "D"}
# Empirical runs go to max_steps (tol 0): their "steps" are those to get this
# close to their final angle, relative to the start's distance from it.
SETTLE = 0.05
ROWS = ("angle", "exact", "steps", "nonzeros")


def settle_steps(angle_w: xr.DataArray) -> xr.DataArray:
    """Steps until |theta(w^t) - theta(w^T)| <= SETTLE |theta(w^0) - theta(w^T)|."""
    final = at_run_end(angle_w, angle_w)
    gap = np.abs(angle_w - final) / np.abs(angle_w.isel(step=0) - final)
    return steps_to_reach(gap, SETTLE)


def metrics(sub: xr.Dataset, mode: str) -> dict[str, xr.DataArray]:
    """Per run: angle of u_final to w*, exact support recovery, steps, nonzeros."""
    if mode == "population":
        steps = sub["steps_run"].where(converged(sub["status"])).astype(float)
    else:
        steps = settle_steps(sub["angle_w"])
    return {
        "angle": sub["angle_u_final"],
        "exact": sub["support_exact"],
        "steps": steps,
        "nonzeros": sub["nonzeros_u_final"],
    }


def ylabel(row: str, mode: str) -> str:
    if row == "angle":
        return r"$\theta(u, w^*)$ (rad)"
    if row == "exact":
        return "P(supp u = supp w*)"
    if row == "nonzeros":
        return "nonzeros of u"
    return "steps to converge" if mode == "population" else f"steps to {1 - SETTLE:.0%} of final angle"


def method_styles(methods: list[str]) -> dict:
    """Seaborn keywords giving each method its colour and marker, in ``methods`` order."""
    return dict(
        hue="method",
        hue_order=methods,
        palette=METHOD_COLOR,
        style="method",
        style_order=methods,
        markers=METHOD_MARKER,
    )


def matched_panel(ax, m: dict, penalty: str, first: bool) -> None:
    """Angle against nonzeros of u, one point per run (every lambda > 0 and
    seed): methods compared where their sparsity matches, including proximal
    CGD, which finds its own."""
    angle = tidy("angle", m["angle"].sel(penalty=penalty))
    runs = [c for c in angle.columns if c != "angle"]  # the dimensions left: method, lam, seed
    df = angle.merge(tidy("nonzeros", m["nonzeros"].sel(penalty=penalty)), on=runs)
    methods = [x for x in METHOD_LABEL if x in set(df["method"])]
    sns.scatterplot(
        data=df,
        x="nonzeros",
        y="angle",
        **method_styles(methods),
        s=9,
        alpha=0.7,
        linewidth=0,
        rasterized=True,
        ax=ax,
        legend=False,
    )
    # Nonzeros from 1 to n (u = 0 has no angle): log2, so the few near s and the dense runs both show.
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.tick_params(axis="x", which="minor", bottom=False)
    ax.set_xlabel("nonzeros of u")
    ax.set_ylabel(r"$\theta(u, w^*)$, every run" if first else "")


def draw(datasets: dict, slice: dict | None = None):  # noqa: A002
    """Rows: angle of the final sparse weights to w*, exact support recovery,
    steps, nonzeros (the matched sparsity), then angle against nonzeros per
    run; columns: penalty, population then
    empirical; x lambda > 0, one line per method, mean and 95% band over seeds
    (seaborn). prune is pruned to the nonzeros of the RVSCGD run at the same
    point; IHT keeps s; proximal CGD finds its own sparsity."""
    shown = modes(datasets)
    ds0 = datasets[shown[0]]
    pens = penalties(ds0)
    units = lam_units(ds0)
    ncol = len(pens) * len(shown)
    with style.context():
        # The lambda rows share x; the last row plots angle against nonzeros (its own x).
        fig, axes = style.subplots(len(ROWS) + 1, ncol, height=1.35 * (len(ROWS) + 1) + 0.9)
        axes = np.asarray(axes).reshape(len(ROWS) + 1, ncol)
        for j in range(ncol):
            for ri in range(1, len(ROWS)):
                axes[ri, j].sharex(axes[0, j])
        titles = []
        for mi, mode in enumerate(shown):
            ds = datasets[mode]
            if "method" not in ds.dims:
                raise ValueError(f"the {mode} dataset has no method dimension: set grid.method to include baselines")
            sel = resolve(ds, slice, shown=("method", "penalty", "lam"))
            lams = lam_values(ds, nonzero=True)
            sub = ds.sel(sel).sel(lam=lams)
            titles.append(f"{mode}: " + slice_text(sel))
            m = metrics(sub, mode)
            for pi, p in enumerate(pens):
                j = mi * len(pens) + pi
                for ri, row in enumerate(ROWS):
                    ax = axes[ri, j]
                    df = tidy(row, m[row].sel(penalty=p))
                    # lambda as evenly spaced categories: the grid is a handful of values over decades
                    df["x"] = df["lam"].map({lam: i for i, lam in enumerate(lams)})
                    methods = [x for x in METHOD_LABEL if x in set(df["method"])]
                    sns.lineplot(
                        data=df,
                        x="x",
                        y=row,
                        **method_styles(methods),
                        dashes=METHOD_DASHES,
                        errorbar=("pi", 95),
                        estimator="mean",
                        markersize=3.5,
                        ax=ax,
                        legend=False,
                        err_kws={"alpha": style.BAND_ALPHA},
                    )
                    ax.set_xticks(range(len(lams)), [style.fmt_num(x) for x in lams], rotation=45, fontsize=5)
                    ax.tick_params(axis="x", which="minor", bottom=False)
                    ax.tick_params(axis="x", labelbottom=ri == len(ROWS) - 1)
                    ax.set_ylabel(ylabel(row, mode) if pi == 0 else "")
                    ax.set_xlabel(style.lam_axis_label(units) if ri == len(ROWS) - 1 else "")
                    if row == "exact":
                        ax.set_ylim(-0.05, 1.05)
                    if row == "steps":
                        ax.set_yscale("log")
                matched_panel(axes[-1, j], m, p, first=pi == 0)
                axes[0, j].set_title(f"{mode}, {style.PENALTY_LABEL[p]}")
                note = diverged_note(sub["status"].sel({"penalty": p, "method": "rvscgd"}))
                if note:
                    style.below(axes[-1, j], note)
        handles = [
            style.plt.Line2D(
                [],
                [],
                color=METHOD_COLOR[x],
                marker=METHOD_MARKER[x],
                markersize=3.5,
                label=METHOD_LABEL[x],
                **({"dashes": METHOD_DASHES[x]} if METHOD_DASHES[x] else {"linestyle": "-"}),
            )
            for x in METHOD_LABEL
            if x in ds0["method"].values
        ]
        fig.legend(handles=handles, loc="outside upper center", ncol=len(handles), frameon=False)
        style.figure_note(fig, f"Over {ds0.sizes['seed']} seeds; " + ".  ".join(titles))
    return fig
