"""The digits figure. What it shows, and how to read it: workflow/report/digits.rst."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from study import style

from .select import default_value, fix_new_dims
from .stats import BAND

REFERENCE = {
    "acc_relu": ("float ReLU (ceiling)", style.OKABE_ITO["vermillion"], "--"),
    "acc_dense": (r"dense binary ($\lambda=0$)", style.CGD_COLOR, ":"),
}
PRUNE_COLOR = "0.45"
PRUNE_LABEL = "magnitude pruning of dense binary"
PANELS = (
    ("acc_u", "acc_prune", "with sparse filters $u$ (deployed)"),
    ("acc_w", None, "with filters $w$"),
    ("acc_u_finetuned", "acc_prune_finetuned", "$u$ after readout fine-tuning"),
)


def _tidy(ds: xr.Dataset, var: str) -> pd.DataFrame:
    """Rows (penalty, lam, seed) with the accuracy ``var`` and x = the mean
    sparsity of (penalty, lam) over seeds (so seeds share x and lineplot bands them)."""
    df = ds[[var, "sparsity"]].to_dataframe().reset_index()
    df["x"] = df.groupby(["penalty", "lam"])["sparsity"].transform("mean")
    return df


def _shown_lam(ds: xr.Dataset, lam) -> float:
    """The lambda whose filters are shown: ``lam``, else the largest with mean sparsity <= 0.8."""
    if lam is not None:
        return float(lam)
    sp = ds["sparsity"].mean(["seed", "penalty"])
    ok = sp["lam"].values[(sp.values <= 0.8) & (sp["lam"].values > 0)]
    return float(ok.max()) if ok.size else float(ds["lam"].values.max())


def draw(datasets: dict[str, xr.Dataset], lam=None, filters_shown: int = 8) -> Figure:
    """The digits figure.

    Parameters
    ----------
    datasets : {"digits": the aggregated digits dataset, ...}
    lam : float or None
        lambda of the filter images (on the dataset's ``lam``); None = the
        largest lambda whose mean sparsity is at most 0.8.
    filters_shown : int
        Filters drawn per penalty (the first ones of the first seed).
    """
    ds = datasets["digits"]
    ste = default_value(ds, "ste")  # relu if on the grid, else the first
    # A dimension this figure does not know yet (a baseline `method`) shows its first value.
    d = fix_new_dims(ds.sel(ste=ste), known=("penalty", "lam", "filter"))
    panels = [p for p in PANELS if p[0] in d]
    pens = list(d["penalty"].values)
    shown = min(int(filters_shown), d.sizes["filter"])
    lam_img = _shown_lam(d, lam)
    with style.context():
        fig = style.plt.figure(figsize=(style.PAGE, 2.3 + 0.55 * len(pens) + 0.3))
        outer = fig.add_gridspec(2, 1, height_ratios=[2.3, 0.55 * len(pens) + 0.3])
        top = outer[0].subgridspec(1, len(panels))
        axes = [fig.add_subplot(top[0, 0])]
        axes += [fig.add_subplot(top[0, i], sharey=axes[0]) for i in range(1, len(panels))]
        relu = float(d["acc_relu"].mean("seed"))
        dense = float(d["acc_dense"].mean("seed"))
        for letter, ax, (var, prune_var, title) in zip("abc", axes, panels, strict=False):
            df = _tidy(d, var)
            sns.lineplot(
                data=df,
                x="x",
                y=var,
                hue="penalty",
                hue_order=pens,
                palette=style.PENALTY_COLOR,
                style="penalty",
                markers=style.PENALTY_MARKER,
                dashes=False,
                errorbar=BAND,
                err_kws={"alpha": style.BAND_ALPHA, "linewidth": 0},
                ax=ax,
                legend=False,
                markersize=4,
            )
            if prune_var is not None:
                pr = d[[prune_var, "sparsity"]].mean("seed").to_dataframe().reset_index()
                pr = pr[pr["lam"] > 0].sort_values("sparsity")
                ax.plot(pr["sparsity"], pr[prune_var], color=PRUNE_COLOR, ls="-.", lw=1.0, marker=".", ms=3)
            ax.axhline(relu, color=REFERENCE["acc_relu"][1], ls=REFERENCE["acc_relu"][2], lw=1.0)
            ax.axhline(dense, color=REFERENCE["acc_dense"][1], ls=REFERENCE["acc_dense"][2], lw=1.0)
            ax.set_xlabel("filter sparsity of $u$ (fraction of zeros)")
            ax.set_ylabel("test accuracy" if ax is axes[0] else "")
            ax.set_xlim(-0.02, 1.0)
            style.panel_title(ax, title, letter)
        # Every mean on the axes, pruning included (its drop without fine-tuning is a result).
        shown_vars = [v for panel in panels for v in panel[:2] if v is not None]
        lo = min(float(d[v].mean("seed").min()) for v in shown_vars)
        axes[0].set_ylim(max(0.0, min(lo, dense) - 0.02), min(1.0, relu + 0.01) + 0.005)
        handles = [
            Line2D([], [], color=style.PENALTY_COLOR[p], marker=style.PENALTY_MARKER[p], label=style.PENALTY_LABEL[p])
            for p in pens
        ]
        handles += [Line2D([], [], color=c, ls=ls, label=label) for label, c, ls in REFERENCE.values()]
        handles.append(Line2D([], [], color=PRUNE_COLOR, ls="-.", marker=".", label=PRUNE_LABEL))
        # Panel b (accuracy with w) leaves its lower part empty: the legend goes there.
        axes[1 if len(axes) > 1 else 0].legend(handles=handles, loc="lower left", fontsize=6)

        # Learned sparse filters of the first seed, one row per penalty.
        seed0 = int(d["seed"].values[0])
        u = d["u"].sel(seed=seed0, lam=lam_img)
        n_pix = u.sizes["feature"] - 1  # the last entry is the bias
        side = int(round(np.sqrt(n_pix)))
        vmax = float(np.abs(u.isel(feature=slice(0, n_pix))).max()) or 1.0
        image_axes = []
        grid = outer[1].subgridspec(len(pens), shown + 1, width_ratios=[2.2] + [1] * shown, wspace=0.08, hspace=0.12)
        for r, p in enumerate(pens):
            lab = fig.add_subplot(grid[r, 0])
            lab.axis("off")
            sp = float(d["sparsity"].sel(seed=seed0, penalty=p, lam=lam_img))
            lab.text(1.0, 0.5, f"{style.PENALTY_LABEL[p]}: {sp:.0%} zeros", ha="right", va="center", fontsize=7)
            for f in range(shown):
                ax = fig.add_subplot(grid[r, f + 1])
                image_axes.append(ax)
                img = u.sel(penalty=p).isel(filter=f, feature=slice(0, n_pix)).values.reshape(side, side)
                im = ax.imshow(img, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_linewidth(0.4)
                    spine.set_color("0.6")
        fig.colorbar(im, ax=image_axes, location="right", shrink=0.9, label="filter weight", pad=0.01)
        fig.suptitle(
            f"Digits 8x8: {ds.attrs.get('filters', '?')} filters of {side}x{side} on {ds.attrs.get('k', '?')} patches, "
            f"STE {style.STE_LABEL.get(ste, ste)}, {ds.sizes['seed']} seeds (mean, 95% band); "
            rf"filters below: $\lambda$ = {style.fmt_num(lam_img)}, seed {seed0} (white = 0)",
            fontsize=7,
        )
    return fig
