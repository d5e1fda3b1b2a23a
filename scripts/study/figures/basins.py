"""The basins figure. What it shows, and how to read it: workflow/report/basins.rst."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from rvscgd.theory import REGION_LABELS, REGIONS
from study import style

from .draw import cat_axis, join, wrap
from .select import fix_new_dims
from .stats import DIVERGED, wilson_interval

QUANTITIES = {
    "reached_best": "reached the best fixed point",
    "support_exact": "recovered the support exactly",
    "spurious": "ended on a spurious limit",
}
SHORT = {"reached_best": "P(best)", "support_exact": "P(exact support)", "spurious": "P(spurious)"}
KIND_STYLE = {
    "random": {"ls": "-", "mfc": None, "label": "random starts"},
    "adversarial": {"ls": ":", "mfc": "white", "label": r"adversarial starts (near $-w^*$)"},
}
REGION_COLOR = {
    "recovers": style.OKABE_ITO["green"],
    "hysteresis": style.OKABE_ITO["yellow"],
    "spurious": style.OKABE_ITO["vermillion"],
    "continuum": style.OKABE_ITO["sky"],
}
KNOWN = ("n", "k", "seed", "setting", "start", "penalty", "lam", "beta", "eta")
POOLED = ("n", "seed", "start", "eta")  # every start of every teacher of a row is one trial


def shares(ds) -> pd.DataFrame:
    """One row per (quantity, setting, start_kind, penalty, lam, beta, k): the
    runs where the outcome is 1 (``hits``) out of the runs where it is defined
    (``trials``: diverged runs excluded), the share ``p`` and its Wilson 95%
    interval (``low``, ``high``), and ``beta_c`` = beta/c(k). Pooled over n,
    seeds (teachers), starts of the kind and eta."""
    ds = fix_new_dims(ds, KNOWN)
    rows = []
    for kind in dict.fromkeys(ds["start_kind"].values.tolist()):
        sub = ds.isel(start=np.flatnonzero(ds["start_kind"].values == kind))
        for q in QUANTITIES:
            v = sub[q]
            hits = (v == 1).sum(POOLED)
            trials = v.notnull().sum(POOLED)
            frame = xr_frame(hits, "hits").merge(xr_frame(trials, "trials")).assign(quantity=q, start_kind=kind)
            rows.append(frame)
    df = pd.concat(rows, ignore_index=True)
    lo, hi = wilson_interval(df["hits"].to_numpy(), df["trials"].to_numpy())
    with np.errstate(invalid="ignore", divide="ignore"):
        df["p"] = df["hits"] / df["trials"].where(df["trials"] > 0)
    df["low"], df["high"] = lo, hi
    bc = ds["beta_over_c"].to_dataframe().reset_index()[["beta", "k", "beta_over_c"]]
    return df.merge(bc, on=["beta", "k"]).rename(columns={"beta_over_c": "beta_c"})


def xr_frame(da, name):
    return da.rename(name).to_dataframe().reset_index()[[*da.dims, name]]


def _modal_region(ds) -> pd.DataFrame:
    """The theory's region per (penalty, lam, beta, k): the most frequent over
    the teachers (and n), with how many teachers have it."""
    ds = fix_new_dims(ds, KNOWN)
    reg = ds["region"].isel(eta=0)
    df = reg.rename("region").to_dataframe().reset_index()
    out = []
    for key, g in df.groupby(["penalty", "lam", "beta", "k"]):
        counts = g["region"].value_counts()
        out.append((*key, int(counts.index[0]), int(counts.iloc[0]), int(len(g))))
    return pd.DataFrame(out, columns=["penalty", "lam", "beta", "k", "region", "agree", "teachers"])


def _setting_colors(settings) -> dict:
    sizes = [int(s.split("=")[1]) for s in settings if s != "population"]
    colors = style.batch_colors(sizes) if sizes else {}
    return {s: style.CGD_COLOR if s == "population" else colors[int(s.split("=")[1])] for s in settings}


def draw(datasets: dict):
    """Rows: each quantity (``QUANTITIES``) at each beta/c of the basin grid
    (sorted: below c first); columns: penalties. In each panel the share of
    runs versus lambda (categorical), one line per setting (population black,
    each empirical B its colour) and start kind (random solid, adversarial
    dotted with open markers), Wilson 95% intervals as bars. The background of
    each lambda is the region the fixed points predict (docs/theory.md section
    8), the most frequent over the teachers."""
    ds = datasets["basins"]
    df = shares(ds)
    regions = _modal_region(ds)
    pens = ds["penalty"].values.tolist()
    lams = [float(x) for x in ds["lam"].values]
    settings = ds["setting"].values.tolist()
    colors = _setting_colors(settings)
    kinds = list(dict.fromkeys(ds["start_kind"].values.tolist()))
    rows_bk = df[["beta", "k", "beta_c"]].drop_duplicates().sort_values("beta_c").to_records(index=False).tolist()
    units = ds.attrs.get("lam_units", "relative_to_c")
    nrows = len(QUANTITIES) * len(rows_bk)
    lines = [(s, kind) for s in settings for kind in kinds]
    dodge = {x: (i - (len(lines) - 1) / 2) * min(0.12, 0.6 / max(len(lines), 1)) for i, x in enumerate(lines)}
    with style.context():
        fig, axes = style.subplots(
            nrows, len(pens), width=style.PAGE, height=min(1.25 * nrows + 1.2, 9.5), sharex=True, sharey=True
        )
        for qi, q in enumerate(QUANTITIES):
            for bi, (beta, k, beta_c) in enumerate(rows_bk):
                r = qi * len(rows_bk) + bi
                side = "<" if beta_c < 1 else ">"
                for ci, p in enumerate(pens):
                    ax = axes[r][ci]
                    reg = regions[(regions.penalty == p) & (regions.beta == beta) & (regions.k == k)]
                    for _, row in reg.iterrows():
                        x = lams.index(float(row["lam"]))
                        name = REGIONS[int(row["region"])]
                        ax.axvspan(x - 0.5, x + 0.5, color=REGION_COLOR[name], alpha=0.18, lw=0, zorder=0)
                    for s, kind in lines:
                        sel = df[
                            (df.quantity == q)
                            & (df.setting == s)
                            & (df.start_kind == kind)
                            & (df.penalty == p)
                            & (df.beta == beta)
                            & (df.k == k)
                        ].sort_values("lam")
                        if sel.empty:
                            continue
                        x = np.array([lams.index(float(v)) for v in sel["lam"]]) + dodge[(s, kind)]
                        y = sel["p"].to_numpy(dtype=float)
                        err = np.vstack([y - sel["low"].to_numpy(), sel["high"].to_numpy() - y])
                        st = KIND_STYLE.get(kind, KIND_STYLE["random"])
                        ax.errorbar(
                            x,
                            y,
                            yerr=err,
                            color=colors[s],
                            ls=st["ls"],
                            marker="o",
                            ms=2.5,
                            mfc=st["mfc"] or colors[s],
                            lw=0.9,
                            elinewidth=0.6,
                            capsize=1.2,
                        )
                    ax.set_ylim(-0.05, 1.05)
                    if r == 0:
                        style.panel_title(ax, style.PENALTY_LABEL[p])
                    if ci == 0:
                        ax.set_ylabel(f"{SHORT[q]}\n" + rf"$\beta/c={beta_c:.2g}$ ({side} 1)")
                    if r == nrows - 1:
                        cat_axis(ax, lams, style.lam_axis_label(units))
        handles = [Line2D([], [], color=colors[s], marker="o", ms=3, lw=1.0, label=s) for s in settings] + [
            Line2D(
                [],
                [],
                color="0.3",
                ls=KIND_STYLE[kd]["ls"],
                marker="o",
                ms=3,
                mfc=KIND_STYLE[kd]["mfc"] or "0.3",
                label=KIND_STYLE[kd]["label"],
            )
            for kd in kinds
            if kd in KIND_STYLE
        ]
        shown = sorted({REGIONS[int(x)] for x in regions["region"]}, key=REGIONS.index)
        handles += [Patch(color=REGION_COLOR[x], alpha=0.35, lw=0, label=f"theory: {REGION_LABELS[x]}") for x in shown]
        fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=6)
        seeds = int(ds.sizes["seed"]) * int(ds.sizes["n"])
        counts = ", ".join(f"{int((ds['start_kind'] == kd).sum())} {kd}" for kd in kinds)
        bad = int((ds["status"] == DIVERGED).sum())
        caption = (
            f"Basins over many starts: {seeds} teachers x ({counts}) starts per grid point; "
            r"RVSCGD (ReLU STE, normalised); best = the stable predicted fixed point nearest $w^*$, matched "
            r"to the final $w$ (empirical: within the point's predicted noise floor); "
            r"spurious = supp$(u)$ disjoint from supp$(w^*)$ (incl. $u=0$) or "
            r"$\langle u, w^*\rangle<0$; at $\lambda=0$ nothing is thresholded, so $u=w$ is dense and never has "
            "the exact support; bars: Wilson 95% over the runs pooled per point; background: the region the fixed "
            "points predict (most teachers)"
        )
        note = f"{bad} of {int(ds['status'].size)} runs diverged, excluded" if bad else ""
        fig.suptitle(wrap(join(caption, note)), fontsize=7)
    return fig
