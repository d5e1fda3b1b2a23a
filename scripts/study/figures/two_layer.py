"""The two_layer figure. What it shows, and how to read it: workflow/report/two_layer.rst."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from rvscgd.two_layer_train import STATUS
from study import style

from .draw import wrap
from .select import lam_values, resolve
from .stats import diverged, diverged_note

KINDS = ("random", "near_spurious")
KIND_LABEL = {"random": "random start", "near_spurious": r"start near $\theta=\pi$, $v=\tilde v$"}
# (start kind, normalise) -> colour: blue/sky = random, vermillion/orange = near the spurious point.
COLOR = {
    ("random", True): style.OKABE_ITO["blue"],
    ("random", False): style.OKABE_ITO["sky"],
    ("near_spurious", True): style.OKABE_ITO["vermillion"],
    ("near_spurious", False): style.OKABE_ITO["orange"],
}
STATUS_COLOR = {
    "converged": style.OKABE_ITO["green"],
    "max_steps": "0.7",
    "diverged": style.OKABE_ITO["black"],
    "oscillating": style.OKABE_ITO["vermillion"],
}
ROWS = (
    ("loss", r"population loss $L(v^t, w^t)$", "log"),
    ("angle_w", style.LABEL["angle_w"], "linear"),
    ("dist_v", r"$\|v^t - v^*\|$", "log"),
)


def shares(status: xr.DataArray) -> dict[str, float]:
    """Share of runs of each status (over every dimension of ``status``)."""
    values = status.values.ravel()
    return {name: float(np.mean(values == i)) if values.size else np.nan for i, name in enumerate(STATUS)}


def instability_note(ds: xr.Dataset, lam0: float) -> str:
    """The measured answer to "is the identity STE unstable here?": per mode
    and STE, the runs (all seeds, plain CGD) that oscillated or diverged, by
    start kind and normalisation."""
    parts = []
    for mode in ds["mode"].values:
        for ste in ds["ste"].values:
            cells = []
            for norm in (True, False):
                if norm not in ds["normalise"].values:
                    continue
                for kind in KINDS:
                    st = ds["status"].sel(mode=mode, ste=ste, normalise=norm, lam=lam0)
                    st = st.where(ds["start_kind"] == kind, drop=True)
                    if st.size == 0:
                        continue
                    bad = int(((st == STATUS.index("oscillating")) | (st == STATUS.index("diverged"))).sum())
                    tag = ("norm." if norm else "no norm.") + (", rand." if kind == "random" else r", near $\pi$")
                    cells.append(f"{tag} {bad}/{st.size}")
            parts.append(f"{mode} {style.STE_LABEL[ste]}: " + "; ".join(cells))
    return "oscillating or diverged (plain CGD, all seeds and starts): " + " | ".join(parts)


def runs_lines(ax, da: xr.DataArray, status: xr.DataArray, color, ls="-"):
    """Every run as a thin line (dims seed, start, step; step 0 dropped for
    the log x axis), diverged runs left out: the runs of one setting split
    between limits (theta -> 0 or pi), so a mean over them would show neither."""
    da = da.where(~diverged(status)).where(da["step"] >= 1, drop=True)
    flat = da.stack(run=[d for d in da.dims if d != "step"]).transpose("run", "step")
    steps = flat["step"].values.astype(float)
    segments = [np.column_stack([steps, y]) for y in flat.values]
    # One collection per setting: much faster to draw and save than a line per run.
    ax.add_collection(LineCollection(segments, colors=[color], linestyles=ls, linewidths=0.6, alpha=0.6))
    y = flat.values[np.isfinite(flat.values) & (flat.values > 0)]  # positive: some axes are log
    if y.size:
        ax.update_datalim([[steps.min(), y.min()], [steps.max(), y.max()]])
        ax.autoscale_view()


def draw(
    datasets: dict,
    slice: dict | None = None,  # noqa: A002
    mode: str = "population",
    lam=None,
    ymin: float | None = 1e-8,
):
    """Two-layer model: rows = population loss, angle(w^t, w*) and ||v^t - v*||
    versus step (mode ``mode``), every run a thin line, and the share of runs
    that converged, hit the step limit, diverged or oscillated (both modes);
    columns = STEs. Colour = start kind x normalisation; solid = plain CGD
    (lambda = 0), dotted = RVSCGD at ``lam`` (default the first nonzero
    lambda). ``ymin`` cuts the log axes of the loss and ||v - v*|| below."""
    ds = datasets["two_layer"]
    if mode not in ds["mode"].values:
        raise ValueError(f"mode={mode!r} is not in the two-layer dataset's modes {list(ds['mode'].values)}")
    sel = resolve(ds, slice, shown=("mode", "ste", "lam", "normalise", "start", "unit"))
    sub = ds.sel(sel)
    lams = lam_values(sub)
    lam0 = 0.0 if 0.0 in lams else lams[0]
    nonzero = [x for x in lams if x != 0]
    lam_rv = nonzero[0] if lam is None and nonzero else lam
    if lam_rv is not None and not any(np.isclose(lam_rv, x) for x in lams):
        raise ValueError(f"lam={lam_rv!r} is not on the two-layer grid {lams}")
    shown_lams = [(lam0, "-")] + ([(lam_rv, ":")] if lam_rv is not None and lam_rv != lam0 else [])
    stes = list(sub["ste"].values)
    norms = [bool(x) for x in sub["normalise"].values]
    kinds = [k for k in KINDS if k in sub["start_kind"].values]
    with style.context():
        fig, axes = style.subplots(len(ROWS) + 1, len(stes), height=8.2, sharex="row")
        for j, ste in enumerate(stes):
            for i, (var, label, scale) in enumerate(ROWS):
                ax = axes[i, j]
                runs = sub.sel(mode=mode, ste=ste)
                for kind in kinds:
                    starts = runs["start"].where(runs["start_kind"] == kind, drop=True).values
                    for norm in norms:
                        for x, ls in shown_lams:
                            r = runs.sel(normalise=norm, lam=x, start=starts)
                            runs_lines(ax, r[var], r["status"], COLOR[(kind, norm)], ls=ls)
                ax.set_xscale("log")
                ax.set_yscale(scale)
                if scale == "log" and ymin is not None:
                    ax.set_ylim(bottom=ymin)
                if var == "angle_w":
                    ax.set_ylim(-0.1, np.pi + 0.1)
                if i == 0:
                    ax.set_title(f"{style.STE_LABEL[ste]} ({mode})")
                    style.note(ax, diverged_note(runs["status"]), loc="lower left")
                if j == 0:
                    ax.set_ylabel(label)
                if i == len(ROWS) - 1:
                    ax.set_xlabel(style.LABEL["step"])
            _status_bars(axes[len(ROWS), j], sub.sel(ste=ste), norms, kinds, shown_lams, first=j == 0)
        handles = [
            Line2D([], [], color=COLOR[(k, n)], label=f"{KIND_LABEL[k]}, {'normalised' if n else 'not normalised'}")
            for k in kinds
            for n in norms
        ]
        handles += [
            Line2D([], [], color="0.3", ls=ls, label=style.CGD_LABEL if x == 0 else rf"RVSCGD $\lambda={x:g}$")
            for x, ls in shown_lams
        ]
        handles += [Patch(color=STATUS_COLOR[s], label=s.replace("_", " ")) for s in STATUS]
        fig.legend(handles=handles, loc="outside upper center", ncols=5, fontsize=6)
        cell = ", ".join(f"{d}={sel[d]}" for d in sel)
        head = (
            f"two-layer model, v* {ds.attrs.get('v_star_rule', '')}; {cell}; "
            f"{ds.sizes['seed']} seeds x {ds.sizes['start']} starts. "
        )
        style.figure_note(fig, wrap(head + instability_note(sub, lam0), 150))
    return fig


def _status_bars(ax, sub: xr.Dataset, norms, kinds, shown_lams, first: bool):
    """Stacked horizontal bars: share of runs per status, one bar per
    (mode, normalisation, start kind, lambda)."""
    labels, rows = [], []
    for mode in sub["mode"].values:
        for norm in norms:
            for kind in kinds:
                for x, _ in shown_lams:
                    st = sub["status"].sel(mode=mode, normalise=norm, lam=x)
                    rows.append(shares(st.where(sub["start_kind"] == kind, drop=True)))
                    labels.append(
                        f"{mode[:3]}, {'norm' if norm else 'no norm'}, {kind.replace('_', ' ')}, "
                        + ("CGD" if x == 0 else rf"$\lambda$={x:g}")
                    )
    left = np.zeros(len(rows))
    for name in STATUS:  # one stacked segment per status, all bars at once
        width = np.array([r[name] for r in rows])
        ax.barh(np.arange(len(rows)), width, left=left, color=STATUS_COLOR[name], height=0.8, lw=0)
        left += width
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels if first else [], fontsize=5)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of runs")
