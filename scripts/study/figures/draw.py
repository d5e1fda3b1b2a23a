"""Drawing helpers shared by the figures: seed-mean traces, heat maps,
legend handles, notes and slice captions.

The statistical layers are seaborn's (``lineplot`` with the 95% band over
seeds, ``heatmap`` with annotations) on tidy frames; what seaborn does not do
stays matplotlib: legend handles, notes, theory overlays. An axis whose data
is all NaN (every run diverged) still gets limits and a remark when the
figure is saved (``style.mark_empty_log_axes``): ``trace`` leaves an empty
line for it to find.
"""

from __future__ import annotations

import textwrap
from contextlib import contextmanager

import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.lines import Line2D

from study import style

from .select import lam_units, series_columns
from .stats import BAND, above_bound, diverged, seed_stats, tidy

# One style for every per-run strip of points (seaborn ``stripplot``) on a log
# axis: small, translucent, jittered; rasterised, since thousands of points as
# PDF vectors double its save time.
STRIP = dict(jitter=0.25, size=1.6, alpha=0.6, linewidth=0, log_scale=True, rasterized=True, legend=False)


@contextmanager
def keep_labels(ax):
    """Keep ``ax``'s axis labels through a seaborn call. Seaborn labels an
    unlabelled axis after the tick labels it finds visible, which lays out every
    tick of a (shared, log) axis: the most expensive part of a figure."""
    xl, yl = ax.get_xlabel(), ax.get_ylabel()
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    yield
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)


def trace(ax, da: xr.DataArray, status: xr.DataArray, color, ls="-", band=True, lw=None):
    """Mean over seeds of a trace (dims seed, step), diverged runs excluded,
    with its 95% band (seaborn, ``errorbar=("pi", 95)``); step 0 is dropped
    (log x axis)."""
    da = da.where(~diverged(status))
    df = tidy("value", da.where(da["step"] >= 1))
    if df.empty:  # every run diverged: an empty line, so the saved figure says so
        ax.plot([np.nan], [np.nan], color=color, ls=ls, lw=lw)
        return
    with keep_labels(ax):
        sns.lineplot(
            data=df,
            x="step",
            y="value",
            ax=ax,
            color=color,
            linestyle=ls,
            lw=lw if lw is not None else style.plt.rcParams["lines.linewidth"],
            errorbar=BAND if band else None,
            err_kws={"alpha": style.BAND_ALPHA, "lw": 0},
            estimator="mean",
            legend=False,
        )


def cell_text(v: float) -> str:
    """A heat-map cell's annotation: 0, 1, 0.25, or a dash where no run is left."""
    if np.isnan(v):
        return "–"
    return f"{v:.0f}" if v in (0, 1) else f"{v:.2f}".rstrip("0").rstrip(".")


def heatmap(ax, prob: np.ndarray, xlabels, ylabels):
    """prob (len(y), len(x)) in [0, 1] as annotated cells (seaborn), the first
    row at the bottom; grey with a dash where no run is left (all diverged).
    Returns the mappable for a colour bar."""
    prob = np.asarray(prob, dtype=float)
    # seaborn draws the whole figure to test tick labels for overlap: without
    # the layout engine that draw is cheap (the layout is made once, on saving).
    fig, engine = ax.figure, ax.figure.get_layout_engine()
    fig.set_layout_engine("none")
    sns.heatmap(
        prob,
        ax=ax,
        cmap="viridis",
        vmin=0,
        vmax=1,
        annot=np.vectorize(cell_text)(prob),
        fmt="",
        annot_kws={"fontsize": 6},
        cbar=False,
        xticklabels=list(xlabels),
        yticklabels=list(ylabels),
        linewidths=0,
    )
    fig.set_layout_engine(engine)
    ax.set_facecolor("0.85")
    ax.grid(False)
    for yi, xi in zip(*np.nonzero(np.isnan(prob)), strict=True):
        ax.text(xi + 0.5, yi + 0.5, "–", ha="center", va="center", fontsize=6, color="white")
    ax.invert_yaxis()  # first row (smallest beta, s/n) at the bottom
    ax.tick_params(axis="y", rotation=0)
    if len(xlabels) > 4:
        ax.tick_params(axis="x", rotation=45)
        for t in ax.get_xticklabels():
            t.set_ha("right")
            t.set_rotation_mode("anchor")
    else:
        ax.tick_params(axis="x", rotation=0)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(True)
    return ax.collections[0]


def cat_axis(ax, values, label, fmt=style.fmt_num, axis="x"):
    """Evenly spaced categorical ticks for grid values (e.g. lambda with a 0)."""
    pos = np.arange(len(values))
    setter = ax.set_xticks if axis == "x" else ax.set_yticks
    setter(pos, [fmt(v) for v in values])
    (ax.set_xlabel if axis == "x" else ax.set_ylabel)(label)
    if axis == "x":
        ax.set_xlim(-0.5, len(values) - 0.5)
        if len(values) > 6:  # many categories: upright labels would run together
            ax.tick_params(axis="x", labelrotation=90)
    return pos


def lam_handles(lams, colors, units):
    return [Line2D([], [], color=colors[x], ls="--" if x == 0 else "-", label=style.lam_label(x, units)) for x in lams]


def penalty_handles(penalties, marker=False, line=True, suffix=""):
    return [
        Line2D(
            [],
            [],
            color=style.PENALTY_COLOR[p],
            marker=style.PENALTY_MARKER[p] if marker else None,
            ls="-" if line else "",
            label=style.PENALTY_LABEL[p] + suffix,
        )
        for p in penalties
    ]


def line_handle(label, color=style.PREDICTION_COLOR, **kw):
    return Line2D([], [], color=color, label=label, **kw)


def wrap(text: str, width: int = 125) -> str:
    """Wrap a long figure title to the page width (about 125 characters at 7 pt)."""
    return "\n".join(textwrap.fill(part, width) for part in text.split("\n"))


def join(*notes) -> str:
    return "\n".join(n for n in notes if n)


SLICE_SYMBOL = {"n": "n", "k": "k", "beta": r"\beta", "eta": r"\eta", "batch_size": "B"}


def slice_text(sel: dict, seeds: int | None = None) -> str:
    """The slice a panel shows, as a caption line: "$n=8$, ReLU STE, normalised, 2 seeds"."""
    parts = []
    for dim, value in sel.items():
        if dim == "ste":
            parts.append(f"{style.STE_LABEL.get(value, value)} STE")
        elif dim == "normalise":
            parts.append("normalised" if value else "not normalised")
        elif dim in SLICE_SYMBOL:
            parts.append(f"${SLICE_SYMBOL[dim]}={style.fmt_num(value)}$")
        else:  # a dimension no figure knows yet: name=value
            parts.append(f"{dim}={value if isinstance(value, str) else style.fmt_num(value)}")
    if seeds:
        parts.append(f"{seeds} seeds")
    return ", ".join(parts)


def sci(x: float) -> str:
    """``x`` in mathtext scientific notation: 10^{-12}, 2.5\\times 10^{-3}."""
    if x == 0:
        return "0"
    e = int(np.floor(np.log10(abs(x))))
    m = x / 10**e
    return f"10^{{{e}}}" if np.isclose(m, 1.0) else f"{m:.2g}\\times 10^{{{e}}}"


def frac(density: xr.DataArray) -> str:
    """s/n as a fraction label, e.g. 4/16."""
    d = float(density.mean())
    n = int(density["n"]) if "n" in density.coords and density["n"].size == 1 else None
    if n:
        return f"{round(d * n)}/{n}"
    return f"{d:.2g}"


def seed_points(ax, da: xr.DataArray, along: str, x, color, marker, ls="-", lw=1.0):
    """Mean over seeds of ``da`` (dims seed, ``along``) at positions ``x`` (one
    per value of ``along``: numeric, may be dodged), joined by a line (seaborn
    ``lineplot``), with the 95% band (``BAND``) as a bar from its 2.5th to its
    97.5th percentile. The bar is drawn from the band itself, not as an error
    about the mean: a few outlying seeds can put the mean outside the band
    (seaborn's error bars then fail on a negative length)."""
    df = tidy("value", da)
    df["x"] = df[along].map(dict(zip(da[along].values.tolist(), x, strict=True)))
    if df.empty:
        ax.plot([np.nan], [np.nan], color=color, ls=ls)
        return
    _, lo, hi, _ = seed_stats(da, [d for d in da.dims if d != along])  # every value at each x
    with keep_labels(ax):
        sns.lineplot(
            data=df,
            x="x",
            y="value",
            ax=ax,
            color=color,
            marker=marker,
            linestyle=ls,
            lw=lw,
            markeredgewidth=0,
            errorbar=None,
            legend=False,
        )
        band_bars(ax, x, lo.transpose(along).values, hi.transpose(along).values, color, lw)


def band_bars(ax, x, lo, hi, color, lw=1.0):
    """A band drawn as vertical bars from ``lo`` to ``hi`` at ``x``, with caps;
    not as errors about an estimate, which a percentile band need not hold."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    ax.errorbar(x, (lo + hi) / 2, yerr=(hi - lo) / 2, fmt="none", ecolor=color, elinewidth=lw, capsize=1.5)


def columns(ds, lam, penalties):
    """Plain CGD, then each penalty at one lambda: ``[(penalty, lam, title)]``."""
    return series_columns(
        ds,
        lam,
        penalties,
        style.CGD_LABEL,
        lambda p, x: f"{style.PENALTY_LABEL[p]}, {style.lam_label(x, lam_units(ds))}",
    )


def bound_note(angle: xr.DataArray, bound: xr.DataArray, tol: float) -> str:
    """The per-panel finding: how many runs lie above their theory bound by more
    than ``tol`` (drawn, never clipped), and how many have no bound (its
    condition ``w_min > (1 + beta/c) threshold`` fails)."""
    above, total, without = above_bound(angle, bound, tol)
    # Short lines: a note wider than its panel makes constrained layout shrink every panel.
    text = f"above theory bound: {above} of {total} runs\n(margin ${sci(tol)}$ rad"
    return text + (f";\n{without} runs without bound)" if without else ")")
