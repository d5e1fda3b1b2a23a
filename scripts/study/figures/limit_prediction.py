"""The limit_prediction figure. What it shows, and how to read it: workflow/report/limit_prediction.rst."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
import xarray as xr
from matplotlib.lines import Line2D

from study import style

from .draw import STRIP, join, line_handle, penalty_handles
from .select import GRID_DIMS, fix_new_dims, lam_values, limit_stes, modes, penalties
from .stats import diverged, diverged_note, match_tol

SHAPES = ("v", "s", "D", "P", "X")  # empirical batch sizes; population is "o"


def _frame(pa, ps, ma, ms, ok) -> pd.DataFrame:
    """Tidy (pred_angle, angle, pred_sparsity, sparsity, penalty) of the runs left after ``ok``."""
    pa, ps, ma, ms = xr.broadcast(pa, ps, ma.where(ok), ms.where(ok))
    df = xr.Dataset({"pred_angle": pa, "angle": ma, "pred_sparsity": ps, "sparsity": ms}).to_dataframe()
    return df.reset_index()[["penalty", "pred_angle", "angle", "pred_sparsity", "sparsity"]]


def draw(datasets: dict):
    """Predicted versus measured angle(u_bar, w*) and sparsity of u_bar over the
    whole grid (lambda > 0, normalised runs, relu/identity STE), identity line;
    (c) per run, the distance of w_final to the nearest predicted stable fixed
    point or continuum (``limit_distance``, matched with ``limit_kind``), per
    penalty and mode, with each mode's match tolerance.
    The counts of agreement and of excluded runs go under the panels, off the data."""
    shown = modes(datasets)
    pens = penalties(datasets[shown[0]])
    with style.context():
        fig, axd = style.plt.subplot_mosaic(
            [["a", "b"], ["c", "c"]], figsize=(style.PAGE, 5.6), height_ratios=[3.0, 1.6]
        )
        ax_a, ax_s, ax_c = axd["a"], axd["b"], axd["c"]
        mode_markers = {}
        notes, stats_lines = [], []
        dist_frames, floor_frames, tols, kind_lines = [], [], {}, []
        for mode in shown:
            ds = fix_new_dims(datasets[mode], GRID_DIMS)
            stes = limit_stes(ds)
            if not stes or True not in ds["normalise"].values.tolist():
                continue
            sub = ds.sel(ste=stes, normalise=True, lam=lam_values(ds, nonzero=True))
            pred_a = sub["predicted_angle_u_final"]
            pred_s = sub["predicted_sparsity_u_final"]
            meas_a = sub["angle_u_final"]
            meas_s = sub["sparsity_u_final"]
            valid = ~diverged(sub["status"])
            notes.append(diverged_note(sub["status"], f"{mode} runs"))
            if mode == "population":
                groups = [("population", {}, "o")]
            else:
                bs = [int(b) for b in ds["batch_size"].values]
                groups = [(f"empirical, $B={b}$", {"batch_size": b}, SHAPES[i % 5]) for i, b in enumerate(bs)]
            for label, gsel, marker in groups:
                mode_markers[label] = marker
                df = _frame(pred_a, pred_s, meas_a.sel(**gsel), meas_s.sel(**gsel), valid.sel(**gsel))
                for ax, x, y in ((ax_a, "pred_angle", "angle"), (ax_s, "pred_sparsity", "sparsity")):
                    kw = {"s": 18, "linewidth": 0.7} if mode == "population" else {"s": 5, "linewidth": 0, "alpha": 0.5}
                    sns.scatterplot(
                        data=df.dropna(subset=[x, y]),
                        x=x,
                        y=y,
                        hue="penalty",
                        hue_order=pens,
                        palette=style.PENALTY_COLOR,
                        marker=marker,
                        ax=ax,
                        legend=False,
                        zorder=3 if mode == "population" else 2,
                        **kw,
                    )
                    if mode == "population" and ax.collections:  # open circles: the colour on the edge
                        coll = ax.collections[-1]
                        coll.set_edgecolors(coll.get_facecolors())
                        coll.set_facecolors("none")
                dist_frames.append(_distance_frame(sub, gsel, valid, label))
                floor_frames.append(_floor_frame(sub, gsel, valid, label))
                if _by_tolerance(sub, gsel, valid):
                    tols[label] = match_tol(ds)
                kind_lines.append(_kind_line(sub["limit_kind"].sel(**gsel).where(valid.sel(**gsel)), label))
                err = np.abs(meas_a.sel(**gsel).where(valid.sel(**gsel)) - pred_a)
                good, total = int((err < 1e-3).sum()), int(err.count())
                undefined = int((valid.sel(**gsel) & (meas_a.sel(**gsel).isnull() | pred_a.isnull())).sum())
                line = f"{label}: {good}/{total} within $10^{{-3}}$ rad"
                if undefined:
                    line += f"; {undefined} with $u=0$"
                stats_lines.append(line)
        for ax, what in ((ax_a, "angle_ubar"), (ax_s, "sparsity_ubar")):
            lims = _sparsity_lims(ax) if what == "sparsity_ubar" else [0, max(0.05, _axis_max(ax))]
            ax.plot(lims, lims, color=style.PREDICTION_COLOR, ls=":", lw=0.8, zorder=1)
            ax.set_xlim(lims)
            ax.set_ylim(lims)
            ax.set_aspect("equal")
            name = style.LABEL[what]
            ax.set_xlabel(f"predicted {name}")
            ax.set_ylabel(f"measured {name}, last step".replace(r"\bar u", "u^t"))
        style.panel_title(ax_a, "angle of the sparse limit", "a")
        style.panel_title(ax_s, "sparsity of the sparse limit", "b")
        style.below(ax_a, join(*stats_lines))
        style.below(ax_s, join(*notes))
        _distance_panel(ax_c, dist_frames, tols, pens, floor_frames)
        style.panel_title(ax_c, "distance to the nearest predicted stable fixed point (per run)", "c")
        style.below(ax_c, join(*kind_lines))
        handles = [
            Line2D([], [], color=h.get_color(), marker="o", ls="", label=h.get_label()) for h in penalty_handles(pens)
        ]
        handles += [
            Line2D([], [], color="0.3", marker=m, ls="", mfc="none" if lab == "population" else "0.3", label=lab)
            for lab, m in mode_markers.items()
        ]
        handles.append(line_handle("identity", ls=":"))
        if any(len(f) for f in floor_frames):
            handles.append(
                Line2D(
                    [],
                    [],
                    color=style.PREDICTION_COLOR,
                    marker="|",
                    ms=7,
                    lw=4,
                    alpha=0.5,
                    label="theory: predicted match distance (c)",
                )
            )
        if tols:
            handles.append(line_handle("match tolerance (c)", ls="--"))
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5))
    return fig


def _distance_frame(sub, gsel, valid, label) -> pd.DataFrame:
    """Tidy (penalty, group, distance) of one mode group's runs with a final state."""
    d = sub["limit_distance"].sel(**gsel).where(valid.sel(**gsel)).rename("distance")
    df = d.to_dataframe().reset_index()[["penalty", "distance"]].dropna()
    df["group"] = label
    return df


def _floor_frame(sub, gsel, valid, label) -> pd.DataFrame:
    """Tidy (penalty, group, match) of the runs matched by their predicted floor
    (``limit_match_rule`` predicted_floor): the predicted quantile they were matched with."""
    if "floor_match_distance" not in sub or "limit_match_rule" not in sub:
        return pd.DataFrame(columns=["penalty", "match", "group"])
    rule = sub["limit_match_rule"].sel(**gsel)
    m = sub["floor_match_distance"].sel(**gsel).broadcast_like(rule)
    m = m.where(valid.sel(**gsel) & (rule == 0)).rename("match")
    df = m.to_dataframe().reset_index()[["penalty", "match"]].dropna()
    df["group"] = label
    return df


def _by_tolerance(sub, gsel, valid) -> bool:
    """Whether any run of the group was matched by the configured tolerance."""
    if "limit_match_rule" not in sub:
        return True
    rule = sub["limit_match_rule"].sel(**gsel).where(valid.sel(**gsel))
    return bool((rule > 0).any())


def _kind_line(kind: xr.DataArray, label: str) -> str:
    """ "population: 1440 isolated, 0 on a continuum, 0 unpredicted" (limit_kind of the runs shown)."""
    k = kind.where(kind >= 0)
    counts = [int((k == v).sum()) for v in (0, 1, 2)]
    return f"{label}: {counts[0]} isolated, {counts[1]} on a continuum, {counts[2]} unpredicted"


def _distance_panel(ax, frames, tols, pens, floor_frames=()):
    """Per-run ``limit_distance`` (log x) per mode group (rows) and penalty (hue,
    dodged); the predicted match distance of the runs matched by their noise
    floor (grey bar: its range over those runs, tick: its median, per penalty's
    sub-row), and the match tolerance as a dashed segment over a row with runs
    matched by the tolerance.
    Distances of exactly 0 or with nothing predicted (inf) cannot sit on a log
    axis: they are counted in the panel's note, not dropped silently."""
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["penalty", "distance", "group"])
    groups = list(dict.fromkeys(df["group"])) if len(df) else list(tols)
    finite = df[np.isfinite(df["distance"]) & (df["distance"] > 0)]
    if finite.empty:
        style.empty_panel(ax, "No run with a finite positive distance to a predicted limit.")
        return
    sns.stripplot(
        data=finite,
        x="distance",
        y="group",
        order=groups,
        hue="penalty",
        hue_order=pens,
        palette=style.PENALTY_COLOR,
        dodge=True,
        ax=ax,
        **STRIP,
    )
    for i, g in enumerate(groups):
        if g in tols:
            ax.vlines(tols[g], i - 0.45, i + 0.45, color=style.PREDICTION_COLOR, ls="--", lw=0.9, zorder=4)
    fl = (
        pd.concat([f for f in floor_frames if len(f)], ignore_index=True) if any(len(f) for f in floor_frames) else None
    )
    width = 0.8 / max(len(pens), 1)
    his = [max(tols.values())] if tols else []
    if fl is not None:
        for i, g in enumerate(groups):
            for j, p in enumerate(pens):
                m = fl[(fl["group"] == g) & (fl["penalty"] == p)]["match"]
                if m.empty:
                    continue
                y = i + (j - (len(pens) - 1) / 2) * width
                lo, hi = float(m.min()), float(m.max())
                ax.fill_betweenx(
                    [y - width / 2, y + width / 2], lo, hi, color=style.PREDICTION_COLOR, alpha=0.25, lw=0, zorder=1
                )
                ax.vlines(
                    float(m.median()), y - width / 2, y + width / 2, color=style.PREDICTION_COLOR, lw=1.2, zorder=4
                )
                his.append(hi)
    if his:
        ax.set_xlim(right=max(ax.get_xlim()[1], 3 * max(his)))
    ax.set_xlabel(r"$\min\,\|w_{\mathrm{final}} - \bar w\|$ over the predicted stable points (and continuum)")
    ax.set_ylabel("")
    zero, nothing = int((df["distance"] == 0).sum()), int(np.isinf(df["distance"]).sum())
    extra = [f"{zero} runs at distance 0" if zero else "", f"{nothing} runs with nothing predicted" if nothing else ""]
    style.note(ax, join(*extra), "lower right")


def _sparsity_lims(ax) -> list[float]:
    """Equal limits for both axes of the sparsity panel: the range of the points
    drawn plus a margin of 5% (at least 0.02), within [0, 1] but for the margin."""
    vals = [c.get_offsets() for c in ax.collections]
    vals = [v for v in vals if len(v)]
    if not vals:
        return [0.0, 1.0]
    v = np.ma.masked_invalid(np.ma.concatenate(vals))
    lo, hi = float(v.min()), float(v.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return [0.0, 1.0]
    margin = max(0.05 * (hi - lo), 0.02)
    return [max(lo - margin, -0.02), min(hi + margin, 1.02)]


def _axis_max(ax) -> float:
    """1.05 x the largest finite point drawn on ``ax`` (1 if none)."""
    vals = [c.get_offsets() for c in ax.collections]
    vals = [v for v in vals if len(v)]
    if not vals:
        return 1.0
    m = float(np.ma.masked_invalid(np.ma.concatenate(vals)).max())
    return 1.05 * m if np.isfinite(m) else 1.0
