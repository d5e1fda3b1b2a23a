"""The one house style of the study's figures: sizes, fonts, palettes, labels, saving.

Every figure of ``study.figures`` draws through this module, so changing a
font size or a colour here restyles the whole paper (and, in the workflow,
re-renders every figure: each figure rule lists this file as an input).

The base is seaborn's theme (``sns.axes_style("ticks")`` and
``sns.plotting_context("paper")``), applied inside ``context()`` only, so
importing this module changes no global state. Sizes are for a two-column
paper: a single column is ``COLUMN`` inches wide, a figure across both
columns ``PAGE`` inches. Palettes are colour-blind safe:
Okabe & Ito (2008) for categories, a truncated viridis for ordered values.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only; never a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from cycler import cycler  # noqa: E402

COLUMN = 3.4  # inches, one column of a two-column paper
PAGE = 7.0  # inches, both columns
DPI = 200  # default raster resolution of the PNG files

# Okabe & Ito (2008), "Color universal design": distinguishable under the common colour-vision deficiencies.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}

PENALTY_LABEL = {"l0": r"$\ell_0$", "l1": r"$\ell_1$", "tl1": "TL1"}
PENALTY_COLOR = {"l0": OKABE_ITO["blue"], "l1": OKABE_ITO["orange"], "tl1": OKABE_ITO["green"]}
PENALTY_MARKER = {"l0": "o", "l1": "s", "tl1": "^"}

STE_LABEL = {"relu": "ReLU", "identity": "identity", "clipped_relu": "clipped ReLU"}
STE_COLOR = {"relu": OKABE_ITO["blue"], "identity": OKABE_ITO["vermillion"], "clipped_relu": OKABE_ITO["purple"]}

MODE_LABEL = {"population": "population", "empirical": "empirical"}
NORMALISE_LABEL = {True: "with normalisation (RVSCGD)", False: "without (ablation)"}
NORMALISE_COLOR = {True: OKABE_ITO["blue"], False: OKABE_ITO["vermillion"]}

CGD_COLOR = OKABE_ITO["black"]  # plain CGD (lambda = 0), the reference curve
CGD_LABEL = r"CGD ($\lambda=0$)"
PREDICTION_COLOR = "0.35"  # grey: predictions and identity lines
BAND_ALPHA = 0.2  # 95% bands

LABEL = {
    "step": r"iteration $t$",
    "angle_w": r"$\theta(w^t, w^*)$ (rad)",
    "angle_u": r"$\theta(u^t, w^*)$ (rad)",
    "loss": r"population loss $L(w^t)$",
    "sparsity_u": r"sparsity of $u^t$ (fraction of zeros)",
    "dist_wbar": r"$\|w^t - \bar w\|$",
    "angle_ubar": r"$\theta(\bar u, w^*)$ (rad)",
    "sparsity_ubar": r"sparsity of $\bar u$",
    "s_over_n": r"teacher density $s/n$",
    "beta": r"splitting parameter $\beta$",
    "n": r"features per patch $n$",
    "k": r"patches $k$",
    "steps": "iterations",
}

# seaborn's "ticks" style and "paper" context, then the house's sizes on top
# (a two-column paper at 7-8 pt), the Okabe-Ito cycle and constrained layout.
HOUSE = {
    "axes.prop_cycle": cycler(color=list(OKABE_ITO.values())),
    "patch.force_edgecolor": False,  # bars and legend patches without seaborn's white rim
    "figure.dpi": 100,
    "savefig.dpi": DPI,
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "legend.frameon": False,
    "legend.handlelength": 1.6,
    "legend.borderaxespad": 0.3,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.linewidth": 0.4,
    "grid.alpha": 0.35,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "mathtext.fontset": "dejavusans",
    "pdf.fonttype": 42,  # TrueType in PDFs: editable, journal-friendly
    "svg.hashsalt": "rvscgd",
    "figure.constrained_layout.use": True,
    "figure.constrained_layout.h_pad": 0.03,
    "figure.constrained_layout.w_pad": 0.03,
}
RC = {**sns.axes_style("ticks"), **sns.plotting_context("paper"), **HOUSE}


@contextmanager
def context():
    """Draw inside the house style (restores the caller's rcParams after)."""
    with plt.rc_context(RC):
        yield


def subplots(nrows=1, ncols=1, width=PAGE, height=None, **kwargs):
    """A figure of ``nrows x ncols`` panels, ``width`` inches wide (COLUMN or PAGE);
    by default each row is a third of the page width high (capped for one-column figures)."""
    if height is None:
        height = nrows * min(width / max(ncols, 1) * 0.85, 2.1) + 0.5
    kwargs.setdefault("squeeze", False)
    return plt.subplots(nrows, ncols, figsize=(width, height), **kwargs)


def bottom_at(axes, bottom: float) -> None:
    """Fix the y axis' bottom of panels once every panel is drawn. Setting it
    earlier freezes the top at the data drawn so far, and a later panel
    sharing the axis is then cut at the top."""
    for ax in np.ravel(axes):
        ax.set_autoscaley_on(True)
        ax.relim()
        ax.autoscale_view(scalex=False)  # the top from all the data (shared panels included)
        ax.set_ylim(bottom=bottom)


def sequential_colors(count: int) -> list:
    """``count`` ordered colours (viridis without its pale yellow end): low -> dark."""
    if count <= 0:
        return []
    cmap = plt.get_cmap("viridis")
    return [cmap(x) for x in np.linspace(0.1, 0.8, count)] if count > 1 else [cmap(0.45)]


def lam_colors(lams) -> dict:
    """lambda -> colour: black for lambda = 0 (plain CGD), viridis for the rest."""
    lams = [float(x) for x in lams]
    nonzero = [x for x in lams if x != 0]
    out = dict(zip(nonzero, sequential_colors(len(nonzero)), strict=True))
    if 0.0 in lams:
        out[0.0] = CGD_COLOR
    return out


def batch_colors(sizes) -> dict:
    """batch size B -> colour (larger B darker)."""
    sizes = sorted(int(b) for b in sizes)
    cmap = plt.get_cmap("magma")
    if len(sizes) == 1:
        return {sizes[0]: cmap(0.55)}
    return {b: cmap(x) for b, x in zip(sizes, np.linspace(0.75, 0.3, len(sizes)), strict=True)}


def fmt_num(x) -> str:
    """Short label of a grid value: 0.002, 0.05, 1, 1e-06."""
    x = float(x)
    if x == int(x) and abs(x) < 1e6:
        return str(int(x))
    return f"{x:.3g}"


def lam_label(lam, units: str = "relative_to_c") -> str:
    """Legend label of a penalty weight, in the dataset's units."""
    if float(lam) == 0:
        return CGD_LABEL
    if units == "threshold":
        return rf"threshold ${fmt_num(lam)}$"
    return rf"$\lambda={fmt_num(lam)}\,c(k)$" if units == "relative_to_c" else rf"$\lambda={fmt_num(lam)}$"


def lam_axis_label(units: str = "relative_to_c") -> str:
    if units == "threshold":
        return r"prox threshold ($\lambda$ matched per penalty)"
    return r"$\lambda$ (units of $c(k)$)" if units == "relative_to_c" else r"$\lambda$"


def log_steps(ax):
    """A log x axis of iterations with a label at every decade (narrow panels
    would otherwise skip some)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, numticks=12))


def panel_title(ax, text: str, letter: str | None = None):
    """Panel title, optionally prefixed by a bold panel letter."""
    if letter:
        ax.set_title(rf"$\bf{{{letter}}}$  {text}", loc="left")
    else:
        ax.set_title(text)


def note(ax, text: str, loc: str = "lower left"):
    """A small boxed remark inside a panel (e.g. excluded diverged runs)."""
    if not text:
        return
    pos = {
        "lower left": (0.03, 0.03, "left", "bottom"),
        "upper right": (0.97, 0.97, "right", "top"),
        "lower right": (0.97, 0.03, "right", "bottom"),
        "upper left": (0.03, 0.97, "left", "top"),
        "center": (0.5, 0.5, "center", "center"),
    }[loc]
    ax.text(
        pos[0],
        pos[1],
        text,
        transform=ax.transAxes,
        ha=pos[2],
        va=pos[3],
        fontsize=6,
        color="0.2",
        bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": "0.7", "lw": 0.4, "alpha": 0.9},
        zorder=10,
    )


def below(ax, text: str):
    """A small remark under a panel, below its x label: counts that a box inside
    the panel would draw over the data (constrained layout makes room)."""
    if not text:
        return
    ax.annotate(
        text,
        xy=(0.5, 0),
        xycoords=ax.xaxis.label,  # just under the x label, whatever its size
        xytext=(0, -2),
        textcoords="offset points",
        ha="center",
        va="top",
        fontsize=6,
        color="0.2",
        annotation_clip=False,
    )


def figure_note(fig, text: str):
    """A remark under the whole figure (what was excluded, which slice is shown)."""
    if text:
        fig.supxlabel(text, fontsize=6, color="0.25", x=0.5, ha="center")


def empty_panel(ax, text: str):
    """A panel that states why it has nothing to show (instead of an empty frame)."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=7, color="0.25", wrap=True)


def mark_empty_log_axes(fig) -> None:
    """A log axis whose data has no positive finite point (every run shown
    diverged after step 0, or u = 0 everywhere) cannot autoscale: give it
    fixed limits and say on the panel that nothing is shown, so the figure
    renders and states why instead of failing."""
    for ax in fig.axes:
        logx, logy = ax.get_xscale() == "log", ax.get_yscale() == "log"
        if not (logx or logy):
            continue
        pts = [np.asarray(line.get_xydata(), dtype=float).reshape(-1, 2) for line in ax.get_lines()]
        xy = np.concatenate(pts) if pts else np.empty((0, 2))
        ok = np.all(np.isfinite(xy), axis=1)
        if logx:
            ok &= xy[:, 0] > 0
        if logy:
            ok &= xy[:, 1] > 0
        for axis, is_log, col in (("x", logx, 0), ("y", logy, 1)):
            lo, hi = getattr(ax, f"get_{axis}lim")()
            if is_log and not (np.isfinite(lo) and np.isfinite(hi) and lo > 0 and hi > 0):
                # Prefer where the data would be (e.g. the steps), else a decade.
                vals = xy[:, col][np.isfinite(xy[:, col]) & (xy[:, col] > 0)]
                limits = (vals.min(), vals.max()) if vals.size and vals.min() < vals.max() else (1e-3, 1.0)
                getattr(ax, f"set_{axis}lim")(*limits)
        if pts and not ok.any():
            ax.text(
                0.5,
                0.5,
                "nothing finite to show\n(see the note on diverged runs)",
                transform=ax.transAxes,
                ha="center",
                va="center",
                fontsize=6,
                color="0.35",
            )


# Minor ticks of a log axis that spans at least this many decades: at 2 and 5
# only. Matplotlib's default (2..9) makes 8 tick artists a decade, and laying
# out and drawing them was most of a figure job's time.
MINOR_LOG_SUBS = (2.0, 5.0)
MANY_DECADES = 3.0


def thin_log_minor_ticks(fig) -> None:
    """Minor ticks at ``MINOR_LOG_SUBS`` on every log axis of ``fig`` that spans
    ``MANY_DECADES`` or more (axes over fewer decades keep every minor tick,
    which there carry the labels)."""
    for ax in fig.axes:
        for axis, lim in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            lo, hi = sorted(lim)
            if axis.get_scale() == "log" and lo > 0 and np.log10(hi / lo) >= MANY_DECADES:
                axis.set_minor_locator(matplotlib.ticker.LogLocator(subs=MINOR_LOG_SUBS))


def label_log_decades_only(fig) -> None:
    """No minor tick labels on a log axis whose view holds a power of ten:
    its decade labels name the scale, and matplotlib's labels of the ticks
    between (2x10^2, 3x10^2, ...) crowd an axis spanning one to two decades.
    An axis within one decade keeps them: they are its only labels."""
    for ax in fig.axes:
        for axis, lim in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            lo, hi = sorted(lim)
            if axis.get_scale() == "log" and lo > 0 and np.floor(np.log10(hi)) >= np.ceil(np.log10(lo)):
                axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def save(fig, png, pdf, dpi: int = DPI) -> None:
    """Write ``fig`` as PNG (``dpi``) and PDF, without timestamps (same inputs, same bytes),
    then close it. The layout is computed once, for the PNG, and kept for the PDF
    (it is in inches, so the same for both; computing it twice doubled the cost)."""
    mark_empty_log_axes(fig)
    thin_log_minor_ticks(fig)
    label_log_decades_only(fig)
    for path in (png, pdf):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with context():  # the save-time settings (pdf.fonttype: TrueType) apply only while saving
        fig.savefig(png, dpi=dpi, metadata={"Software": None})
        fig.set_layout_engine("none")
        fig.savefig(pdf, metadata={"CreationDate": None, "Creator": None, "Producer": None})
    plt.close(fig)
