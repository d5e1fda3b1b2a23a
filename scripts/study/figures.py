"""The study's figures: functions of the aggregated datasets returning matplotlib Figures.

Each public figure function takes ``datasets``, a dict ``{mode: xarray.Dataset}``
holding the aggregated ``population`` and/or ``empirical`` datasets (the
files of rule ``aggregate``, or ``study.inprocess.build_datasets``), plus the
figure's keyword parameters (the figure's block of ``config["figures"]``),
and returns a ``matplotlib.figure.Figure``. No Snakemake and no file writing
here: the scripts ``scripts/plot_<name>.py`` call one function each and save
through ``style.save``. ``FIGURES`` lists them all.

Conventions shared by every figure (docs/figures.md has the full list):

- ``slice`` fixes the dimensions a figure does not show (``n``, ``k``,
  ``beta``, ``eta``, ``ste``, ``normalise``, ``batch_size``); a missing or
  ``None`` entry takes the default rule of ``default_value``. A value that is
  not on the grid is a ``ValueError`` naming it.
- Means and 95% bands are over seeds: the mean, and the band holding the
  central 95% of the seeds (2.5th to 97.5th percentile).
- Diverged runs (``status == 2``) are excluded from every mean and every
  count, and the figure says how many were excluded.
- An angle involving ``u = 0`` (every weight thresholded) is undefined (NaN);
  such runs are left out of angle means and counted in a note too.
"""

from __future__ import annotations

import math
import warnings
from itertools import product

import numpy as np
import xarray as xr
from matplotlib.lines import Line2D

from . import style
from .config import figure_params  # noqa: F401 - the figures' parameters, one definition
from .style import LABEL, PENALTY_COLOR, PENALTY_LABEL, PENALTY_MARKER

DIVERGED = 2  # status flag (flag_meanings "converged max_steps diverged")
MODES = ("population", "empirical")
SLICE_DIMS = ("n", "k", "beta", "eta", "ste", "normalise", "batch_size")


# The figures, in report order (workflow/rules/figures.smk has one rule each).
FIGURES = (
    "convergence",
    "limit_distance",
    "limit_prediction",
    "sparsity_accuracy",
    "tradeoff",
    "support_recovery",
    "multiple_limits",
    "ste",
    "scaling",
    "normalisation",
)


# ---------------------------------------------------------------------------
# data access
# ---------------------------------------------------------------------------


def load(paths) -> dict[str, xr.Dataset]:
    """Open aggregated datasets (checked) as ``{mode: dataset}``."""
    from .io import open_checked

    out = {}
    for path in paths:
        ds = open_checked(path, required_vars=("angle_w", "status", "w_star"), required_dims=("step",))
        out[ds.attrs["mode"]] = ds
    return out


def default_value(ds: xr.Dataset, dim: str):
    """The value a figure shows along ``dim`` when its slice leaves it open:
    the largest n and batch size, the smallest k, relu and normalise=True when
    on the grid, otherwise the first configured value."""
    values = ds[dim].values.tolist()
    if dim in ("n", "batch_size"):
        return max(values)
    if dim == "k":
        return min(values)
    if dim == "ste" and "relu" in values:
        return "relu"
    if dim == "normalise" and True in values:
        return True
    return values[0]


def resolve(ds: xr.Dataset, slice: dict | None, dims=SLICE_DIMS) -> dict:  # noqa: A002 - the config's name
    """``{dim: value}`` for each of ``dims`` that ``ds`` has: the slice's value
    (checked against the grid) or ``default_value``."""
    slice = slice or {}  # noqa: A001
    unknown = set(slice) - set(SLICE_DIMS)
    if unknown:
        raise ValueError(f"slice has unknown keys {sorted(unknown)}; allowed: {SLICE_DIMS}")
    out = {}
    for dim in dims:
        if dim not in ds.dims:
            continue
        value = slice.get(dim)
        values = ds[dim].values.tolist()
        if value is None:
            out[dim] = default_value(ds, dim)
            continue
        match = [v for v in values if _same(v, value)]
        if not match:
            raise ValueError(f"slice {dim}={value!r} is not on the grid of the {ds.attrs.get('mode')} data: {values}")
        out[dim] = match[0]
    return out


def _same(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return a == b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)


def lam_values(ds: xr.Dataset, lam=None, nonzero: bool = False) -> list[float]:
    """The lambdas to show: all configured (``None``), or those given (checked)."""
    values = [float(x) for x in ds["lam"].values]
    if lam is None:
        chosen = values
    else:
        wanted = lam if isinstance(lam, list | tuple) else [lam]
        chosen = []
        for w in wanted:
            match = [v for v in values if _same(v, w)]
            if not match:
                raise ValueError(f"lam={w!r} is not on the grid: {values}")
            chosen.append(match[0])
    return [x for x in chosen if x != 0] if nonzero else chosen


def middle_lam(ds: xr.Dataset, lam=None) -> float:
    """One lambda: the one given, or the middle of the nonzero configured ones."""
    if lam is not None:
        return lam_values(ds, lam)[0]
    nonzero = sorted(x for x in lam_values(ds) if x != 0)
    if not nonzero:
        return 0.0
    return nonzero[len(nonzero) // 2]


def lam_units(ds: xr.Dataset) -> str:
    return ds.attrs.get("lam_units", ds["lam"].attrs.get("lam_units", "relative_to_c"))


def teacher_density(ds: xr.Dataset) -> xr.DataArray:
    """s/n per (n, k, seed): nonzeros of w* over n."""
    nonzero = (ds["w_star"].fillna(0) != 0).sum("feature")
    return nonzero / ds["n"]


def vector_angle(a: xr.DataArray, b: xr.DataArray) -> xr.DataArray:
    """Angle (rad) between two NaN-padded vectors along ``feature``; NaN if either
    is zero or all-NaN (a diverged run). Same arctan2 form as ``rvscgd.angle``."""
    valid = a.notnull().any("feature") & b.notnull().any("feature")
    a0, b0 = a.fillna(0), b.fillna(0)
    na = np.sqrt((a0 * a0).sum("feature"))
    nb = np.sqrt((b0 * b0).sum("feature"))
    with np.errstate(invalid="ignore", divide="ignore"):
        ua, ub = a0 / na, b0 / nb
        dot = (ua * ub).sum("feature")
        cross = np.sqrt(((ua - dot * ub) ** 2).sum("feature"))
        out = xr.apply_ufunc(np.arctan2, cross, dot)
    return out.where(valid & (na > 0) & (nb > 0))


def sparsity(u: xr.DataArray, n: xr.DataArray) -> xr.DataArray:
    """Fraction of exact zeros among the first n features; NaN for a diverged (all-NaN) u."""
    return ((u == 0).sum("feature") / n).where(u.notnull().any("feature"))


def seed_stats(da: xr.DataArray, dim: str = "seed"):
    """Mean over ``dim`` and the band holding the central 95% of the values
    (2.5th to 97.5th percentile, linear interpolation), skipping NaN.

    Returns ``(mean, low, high, count)``. A percentile band stays inside the
    data (it never crosses zero on a log axis) and shows the spread over
    seeds; with one seed it collapses onto the mean.
    """
    count = da.count(dim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = da.mean(dim)
        lo = da.quantile(0.025, dim).drop_vars("quantile")
        hi = da.quantile(0.975, dim).drop_vars("quantile")
    return mean, lo, hi, count


def n_diverged(status: xr.DataArray) -> tuple[int, int]:
    """(diverged runs, all runs) in ``status``."""
    return int((status == DIVERGED).sum()), int(status.size)


def diverged_note(status: xr.DataArray, what: str = "runs") -> str:
    bad, total = n_diverged(status)
    return f"{bad} of {total} {what} diverged, excluded" if bad else ""


def _wrap(text: str, width: int = 125) -> str:
    """Wrap a long figure title to the page width (about 125 characters at 7 pt)."""
    import textwrap

    return "\n".join(textwrap.fill(part, width) for part in text.split("\n"))


def _join(*notes) -> str:
    return "\n".join(n for n in notes if n)


def _slice_text(sel: dict, units: str | None = None, seeds: int | None = None) -> str:
    names = {"n": "n", "k": "k", "beta": r"\beta", "eta": r"\eta", "batch_size": "B"}
    parts = []
    for dim, value in sel.items():
        if dim == "ste":
            parts.append(f"{style.STE_LABEL.get(value, value)} STE")
        elif dim == "normalise":
            parts.append("normalised" if value else "not normalised")
        else:
            parts.append(f"${names[dim]}={style.fmt_num(value)}$")
    if seeds:
        parts.append(f"{seeds} seeds")
    return ", ".join(parts)


def _trace(ax, da: xr.DataArray, status: xr.DataArray, color, label=None, ls="-", band=True, lw=None):
    """Mean over seeds of a trace (dims seed, step), diverged runs excluded,
    with its 95% band; step 0 is dropped (log x axis)."""
    da = da.where(status != DIVERGED)
    mean, lo, hi, _ = seed_stats(da)
    t = da["step"].values
    keep = t >= 1
    (line,) = ax.plot(t[keep], mean.values[keep], color=color, ls=ls, label=label, lw=lw)
    if band:
        ax.fill_between(t[keep], lo.values[keep], hi.values[keep], color=color, alpha=style.BAND_ALPHA, lw=0)
    return line


def _lam_handles(lams, colors, units):
    return [Line2D([], [], color=colors[x], ls="--" if x == 0 else "-", label=style.lam_label(x, units)) for x in lams]


def _penalty_handles(penalties, marker=False):
    return [
        Line2D(
            [],
            [],
            color=PENALTY_COLOR[p],
            marker=PENALTY_MARKER[p] if marker else None,
            ls="-",
            label=PENALTY_LABEL[p],
        )
        for p in penalties
    ]


def _modes(datasets: dict, need: tuple = MODES) -> list[str]:
    modes = [m for m in MODES if m in need and datasets.get(m) is not None]
    if not modes:
        raise ValueError(f"no dataset of mode {need} given (have {sorted(datasets)})")
    return modes


def _cat_axis(ax, values, label, fmt=style.fmt_num, axis="x"):
    """Evenly spaced categorical ticks for grid values (e.g. lambda with a 0)."""
    pos = np.arange(len(values))
    setter = ax.set_xticks if axis == "x" else ax.set_yticks
    setter(pos, [fmt(v) for v in values])
    (ax.set_xlabel if axis == "x" else ax.set_ylabel)(label)
    if axis == "x":
        ax.set_xlim(-0.5, len(values) - 0.5)
    return pos


# ---------------------------------------------------------------------------
# 1. convergence
# ---------------------------------------------------------------------------


def convergence(
    datasets: dict,
    slice: dict | None = None,  # noqa: A002
    lam=None,
    yscale: str = "log",
    ymin: float | None = 1e-4,
):
    """Angles of w^t and u^t to w* versus step: rows = penalties, columns =
    (angle of w, angle of u) x (population, empirical); hue = lambda, plain
    CGD (lambda = 0) dashed black; mean and 95% band over seeds.

    ``ymin`` (rad) cuts the y axis below (plain CGD goes to exactly 0 in
    population mode); ``None`` lets matplotlib choose.
    """
    modes = _modes(datasets)
    first = datasets[modes[0]]
    penalties = [str(p) for p in first["penalty"].values]
    lams = lam_values(first, lam)
    units = lam_units(first)
    colors = style.lam_colors(lams)
    quantities = ("angle_w", "angle_u")
    cols = list(product(quantities, modes))
    with style.context():
        fig, axes = style.subplots(
            len(penalties), len(cols), height=1.25 * len(penalties) + 1.0, sharex=True, sharey=True
        )
        subtitles = []
        for j, (q, mode) in enumerate(cols):
            ds = datasets[mode]
            sel = resolve(ds, slice)
            if q == quantities[0]:
                subtitles.append(f"{mode}: " + _slice_text(sel, seeds=ds.sizes["seed"]))
            sub = ds.sel(sel)
            for i, p in enumerate(penalties):
                ax = axes[i, j]
                runs = sub.sel(penalty=p, lam=lams)
                for x in lams:
                    r = runs.sel(lam=x)
                    _trace(ax, r[q], r["status"], colors[x], ls="--" if x == 0 else "-")
                notes = [diverged_note(runs["status"])]
                if q == "angle_u":
                    u0 = int((runs[q].isel(step=-1).isnull() & (runs["status"] != DIVERGED)).sum())
                    if u0:
                        notes.append(f"{u0} runs end with $u=0$\n(angle undefined)")
                style.note(ax, _join(*notes))
                ax.set_xscale("log")
                ax.set_yscale(yscale)
                if i == 0:
                    sym = r"$\theta(w^t, w^*)$" if q == "angle_w" else r"$\theta(u^t, w^*)$"
                    ax.set_title(f"{sym}, {mode}")
                if j == 0:
                    ax.set_ylabel(f"{PENALTY_LABEL[p]}: angle (rad)")
                if i == len(penalties) - 1:
                    ax.set_xlabel(LABEL["step"])
        if ymin is not None:
            axes[0, 0].set_ylim(bottom=ymin)
        fig.legend(handles=_lam_handles(lams, colors, units), loc="outside lower center", ncols=min(len(lams), 6))
        fig.suptitle("\n".join(subtitles), fontsize=7)
    return fig


# ---------------------------------------------------------------------------
# 2. the limit
# ---------------------------------------------------------------------------


def _need_limit_slice(sel: dict):
    if sel.get("ste") == "clipped_relu":
        raise ValueError("slice ste='clipped_relu' has no predicted limit (no constant c): choose relu or identity")


def noise_floor(dist: xr.DataArray) -> xr.DataArray:
    """Noise floor of ||w^t - w_bar||: the mean over the recorded steps in the
    second half of the run (t >= max step / 2)."""
    t = dist["step"]
    return dist.where(t >= t.max() / 2).mean("step")


def limit_distance(datasets: dict, slice: dict | None = None, lam=None):  # noqa: A002
    """||w^t - w_bar|| versus step, one panel per penalty: population mode
    (to zero) and empirical mode per batch size B (to a noise floor); last
    panel: the floor versus B with a B^(-1/2) guide."""
    modes = _modes(datasets)
    first = datasets[modes[0]]
    penalties = [str(p) for p in first["penalty"].values]
    x = middle_lam(first, lam)
    units = lam_units(first)
    emp = datasets.get("empirical")
    ncols = len(penalties) + (emp is not None)
    with style.context():
        fig, axes = style.subplots(1, ncols, height=2.45)
        axes = axes[0]
        sel_text = []
        bcolors = style.batch_colors(emp["batch_size"].values) if emp is not None else {}
        floors = {}
        for mode in modes:
            ds = datasets[mode]
            sel = resolve(ds, slice, ("n", "k", "beta", "eta", "ste"))
            _need_limit_slice(sel)
            sel["normalise"] = True
            if True not in ds["normalise"].values.tolist():
                raise ValueError("limit_distance needs normalised runs (grid.normalise must contain true)")
            sel_text.append(f"{mode}: " + _slice_text(sel, seeds=ds.sizes["seed"]))
            sub = ds.sel(sel).sel(lam=x)
            for i, p in enumerate(penalties):
                ax = axes[i]
                r = sub.sel(penalty=p)
                if mode == "population":
                    _trace(ax, r["dist_wbar"], r["status"], style.CGD_COLOR, ls="-")
                else:
                    for b in r["batch_size"].values:
                        rb = r.sel(batch_size=b)
                        _trace(ax, rb["dist_wbar"], rb["status"], bcolors[int(b)])
                        floors[(p, int(b))] = noise_floor(rb["dist_wbar"].where(rb["status"] != DIVERGED))
                note = diverged_note(r["status"], f"{mode} runs")
                if note:
                    style.note(ax, note, "lower left" if mode == "population" else "upper right")
        for i, p in enumerate(penalties):
            ax = axes[i]
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{PENALTY_LABEL[p]}, {style.lam_label(x, units)}")
            ax.set_xlabel(LABEL["step"])
            if i == 0:
                ax.set_ylabel(LABEL["dist_wbar"])
            else:
                ax.sharey(axes[0])
        handles = []
        if "population" in modes:
            handles.append(Line2D([], [], color=style.CGD_COLOR, label="population"))
        handles += [Line2D([], [], color=c, label=f"empirical, $B={b}$") for b, c in bcolors.items()]
        if emp is not None:
            ax = axes[-1]
            bs = sorted(bcolors)
            for p in penalties:
                mean, lo, hi, _ = seed_stats(xr.concat([floors[(p, b)] for b in bs], dim="batch_size"))
                ax.errorbar(
                    bs,
                    mean.values,
                    yerr=[mean.values - lo.values, hi.values - mean.values] if len(lo) else None,
                    color=PENALTY_COLOR[p],
                    marker=PENALTY_MARKER[p],
                    capsize=2,
                )
            ref = np.nanmean([float(seed_stats(floors[(p, bs[0])])[0]) for p in penalties])
            bb = np.array([bs[0], bs[-1]], dtype=float) if len(bs) > 1 else np.array([bs[0] / 2, bs[0] * 2.0])
            ax.plot(bb, ref * np.sqrt(bs[0] / bb), color=style.PREDICTION_COLOR, ls=":")
            ax.plot(bb, ref * (bs[0] / bb), color=style.PREDICTION_COLOR, ls="-.")
            if len(bs) > 1:
                slopes = []
                for p in penalties:
                    f0, f1 = (float(seed_stats(floors[(p, b)])[0]) for b in (bs[0], bs[-1]))
                    slopes.append(f"{PENALTY_LABEL[p]} {np.log(f1 / f0) / np.log(bs[-1] / bs[0]):.2f}")
                style.note(ax, "slopes:\n" + "\n".join(slopes), "upper right")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(bs, [str(b) for b in bs])
            ax.minorticks_off()
            ax.set_xlabel(r"batch size $B$")
            ax.set_ylabel(r"noise floor of $\|w^t - \bar w\|$")
            ax.set_title("empirical noise floor")
            handles += _penalty_handles(penalties, marker=True)
            handles.append(Line2D([], [], color=style.PREDICTION_COLOR, ls=":", label=r"$\propto B^{-1/2}$"))
            handles.append(Line2D([], [], color=style.PREDICTION_COLOR, ls="-.", label=r"$\propto B^{-1}$"))
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
        fig.suptitle("\n".join(sel_text), fontsize=7)
    return fig


def limit_prediction(datasets: dict):
    """Predicted versus measured angle(u_bar, w*) and sparsity of u_bar over the
    whole grid (lambda > 0, normalised runs, relu/identity STE), identity line."""
    modes = _modes(datasets)
    first = datasets[modes[0]]
    penalties = [str(p) for p in first["penalty"].values]
    with style.context():
        fig, axes = style.subplots(1, 2, width=style.PAGE, height=3.3)
        ax_a, ax_s = axes[0]
        mode_markers = {}
        notes = []
        stats_lines = []
        for mode in modes:
            ds = datasets[mode]
            stes = [s for s in ds["ste"].values.tolist() if s != "clipped_relu"]
            if not stes or True not in ds["normalise"].values.tolist():
                continue
            sub = ds.sel(ste=stes, normalise=True, lam=lam_values(ds, nonzero=True))
            pred_a = vector_angle(sub["u_bar"], sub["w_star"])
            pred_s = sparsity(sub["u_bar"], sub["n"])
            meas_a = vector_angle(sub["u_final"], sub["w_star"])
            meas_s = sparsity(sub["u_final"], sub["n"])
            valid = sub["status"] != DIVERGED
            notes.append(diverged_note(sub["status"], f"{mode} runs"))
            if mode == "population":
                groups = [("population", {}, "o")]
            else:
                bs = [int(b) for b in ds["batch_size"].values]
                shapes = ["v", "s", "D", "P", "X"]
                groups = [(f"empirical, $B={b}$", {"batch_size": b}, shapes[i % 5]) for i, b in enumerate(bs)]
            for label, gsel, marker in groups:
                mode_markers[label] = marker
                for p in penalties:
                    pa, ps = pred_a.sel(penalty=p), pred_s.sel(penalty=p)
                    ma, ms = meas_a.sel(penalty=p, **gsel), meas_s.sel(penalty=p, **gsel)
                    ok = valid.sel(penalty=p, **gsel)
                    pa, ps, ma, ms = xr.broadcast(pa, ps, ma.where(ok), ms.where(ok))
                    kw = {"marker": marker, "zorder": 3 if mode == "population" else 2}
                    if mode == "population":
                        kw.update(facecolors="none", edgecolors=PENALTY_COLOR[p], s=18, lw=0.7)
                    else:
                        kw.update(color=PENALTY_COLOR[p], s=5, lw=0, alpha=0.5)
                    ax_a.scatter(pa.values.ravel(), ma.values.ravel(), **kw)
                    ax_s.scatter(ps.values.ravel(), ms.values.ravel(), **kw)
                err = np.abs(meas_a.sel(**gsel).where(valid.sel(**gsel)) - pred_a)
                good = int((err < 1e-3).sum())
                total = int(err.count())
                undefined = int((valid.sel(**gsel) & (meas_a.sel(**gsel).isnull() | pred_a.isnull())).sum())
                line = f"{label}: {good}/{total} within $10^{{-3}}$ rad"
                if undefined:
                    line += f"; {undefined} with $u=0$"
                stats_lines.append(line)
        for ax, what in ((ax_a, "angle_ubar"), (ax_s, "sparsity_ubar")):
            lims = [0, 1] if what == "sparsity_ubar" else [0, max(0.05, _axis_max(ax))]
            ax.plot(lims, lims, color=style.PREDICTION_COLOR, ls=":", lw=0.8, zorder=1)
            ax.set_xlim(lims)
            ax.set_ylim(lims)
            ax.set_aspect("equal")
            name = LABEL[what]
            ax.set_xlabel(f"predicted {name}")
            ax.set_ylabel(f"measured {name}, last step".replace(r"\bar u", "u^t"))
        style.panel_title(ax_a, "angle of the sparse limit", "a")
        style.panel_title(ax_s, "sparsity of the sparse limit", "b")
        style.note(ax_a, _join(*stats_lines), "lower right")
        style.note(ax_s, _join(*notes), "lower right")
        handles = _penalty_handles(penalties)
        handles = [Line2D([], [], color=h.get_color(), marker="o", ls="", label=h.get_label()) for h in handles]
        handles += [
            Line2D(
                [],
                [],
                color="0.3",
                marker=m,
                ls="",
                mfc="none" if lab == "population" else "0.3",
                label=lab,
            )
            for lab, m in mode_markers.items()
        ]
        handles.append(Line2D([], [], color=style.PREDICTION_COLOR, ls=":", label="identity"))
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 7))
    return fig


def _axis_max(ax) -> float:
    vals = [c.get_offsets() for c in ax.collections]
    vals = [v for v in vals if len(v)]
    if not vals:
        return 1.0
    arr = np.ma.concatenate(vals)
    m = float(np.ma.masked_invalid(arr).max())
    return 1.05 * m if np.isfinite(m) else 1.0


# ---------------------------------------------------------------------------
# 3. sparsity and accuracy
# ---------------------------------------------------------------------------


def _final_metrics(sub: xr.Dataset) -> xr.Dataset:
    """Measured (last step) and predicted sparsity and angle of the sparse weights,
    diverged runs NaN."""
    ok = sub["status"] != DIVERGED
    return xr.Dataset(
        {
            "sparsity": sparsity(sub["u_final"], sub["n"]).where(ok),
            "angle": vector_angle(sub["u_final"], sub["w_star"]).where(ok),
            "pred_sparsity": sparsity(sub["u_bar"], sub["n"]),
            "pred_angle": vector_angle(sub["u_bar"], sub["w_star"]),
            "density": teacher_density(sub),
            "status": sub["status"],
        }
    )


def sparsity_accuracy(datasets: dict, slice: dict | None = None, mode: str | None = None):  # noqa: A002
    """Sparsity of u and angle(u, w*) at the end of the runs versus lambda, one
    colour per penalty, one column per n; the predicted u_bar as open markers
    on dashed lines, the sparsity of w* dotted."""
    mode = _modes(datasets, (mode,) if mode else MODES)[0]
    ds = datasets[mode]
    penalties = [str(p) for p in ds["penalty"].values]
    lams = lam_values(ds)
    units = lam_units(ds)
    sel = resolve(ds, slice, ("k", "beta", "eta", "ste", "normalise", "batch_size"))
    m = _final_metrics(ds.sel(sel))
    ns = [int(x) for x in ds["n"].values]
    offsets = dict(zip(penalties, (np.arange(len(penalties)) - (len(penalties) - 1) / 2) * 0.12, strict=True))
    has_pred = bool(m["pred_angle"].notnull().any())
    with style.context():
        fig, axes = style.subplots(2, len(ns), height=4.2, sharex=True, sharey="row")
        for j, n in enumerate(ns):
            mn = m.sel(n=n)
            for i, (what, pred) in enumerate((("sparsity", "pred_sparsity"), ("angle", "pred_angle"))):
                ax = axes[i, j]
                pos = _cat_axis(ax, lams, style.lam_axis_label(units) if i == 1 else "")
                for p in penalties:
                    mean, lo, hi, _ = seed_stats(mn[what].sel(penalty=p))
                    x = pos + offsets[p]
                    c = PENALTY_COLOR[p]
                    ax.errorbar(
                        x,
                        mean.values,
                        yerr=[mean.values - lo.values, hi.values - mean.values],
                        color=c,
                        marker=PENALTY_MARKER[p],
                        capsize=1.5,
                        lw=1.0,
                    )
                    if has_pred:  # not at lambda = 0: no thresholding, u_bar = w* only up to rounding
                        pm = mn[pred].sel(penalty=p).mean("seed").where(mn["lam"] != 0)
                        ax.plot(
                            x,
                            pm.values,
                            color=c,
                            ls="--",
                            lw=0.7,
                            marker=PENALTY_MARKER[p],
                            mfc="white",
                            ms=2.5,
                            zorder=4,
                        )
                if what == "sparsity":
                    dens = float(mn["density"].mean())
                    ax.axhline(1 - dens, color=style.PREDICTION_COLOR, ls=":", lw=0.8)
                    ax.set_title(f"$n={n}$, $s/n={_frac(mn['density'])}$")
                    ax.set_ylim(-0.03, 1.03)
                notes = [diverged_note(mn["status"])]
                if what == "angle":
                    u0 = int((mn["angle"].isnull() & (mn["status"] != DIVERGED)).sum())
                    if u0:
                        notes.append(f"{u0} runs end with $u=0$ (angle undefined)")
                    ax.set_ylim(bottom=0)
                style.note(ax, _join(*notes), "upper left")
        axes[0, 0].set_ylabel("sparsity of $u$ (fraction of zeros)")
        axes[1, 0].set_ylabel(r"$\theta(u, w^*)$ (rad)")
        handles = _penalty_handles(penalties, marker=True)
        handles = [
            Line2D([], [], color=h.get_color(), marker=h.get_marker(), label=f"{h.get_label()}, measured")
            for h in handles
        ]
        if has_pred:
            handles.append(
                Line2D([], [], color="0.3", ls="--", marker="o", mfc="white", ms=3, lw=0.7, label=r"predicted $\bar u$")
            )
        handles.append(Line2D([], [], color=style.PREDICTION_COLOR, ls=":", label="sparsity of $w^*$"))
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
        fig.suptitle(f"{mode} mode, last step: " + _slice_text(sel, seeds=ds.sizes["seed"]), fontsize=7)
    return fig


def _frac(density: xr.DataArray) -> str:
    """s/n as a fraction label, e.g. 4/16."""
    d = float(density.mean())
    n = int(density["n"]) if "n" in density.coords and density["n"].size == 1 else None
    if n:
        return f"{round(d * n)}/{n}"
    return f"{d:.2g}"


def tradeoff(datasets: dict, slice: dict | None = None, mode: str | None = None):  # noqa: A002
    """Error angle(u, w*) versus sparsity of u at the end of the runs, one curve
    per penalty through the lambdas > 0 (mean over seeds), one panel per n: at
    matched sparsity, the lower curve is the better penalty. Plain CGD
    (lambda = 0: sparsity 0) is left out so the axis zooms on the trade-off."""
    mode = _modes(datasets, (mode,) if mode else MODES)[0]
    ds = datasets[mode]
    penalties = [str(p) for p in ds["penalty"].values]
    lams = lam_values(ds, nonzero=True) or lam_values(ds)
    units = lam_units(ds)
    sel = resolve(ds, slice, ("k", "beta", "eta", "ste", "normalise", "batch_size"))
    m = _final_metrics(ds.sel(sel).sel(lam=lams))
    ns = [int(x) for x in ds["n"].values]
    with style.context():
        fig, axes = style.subplots(1, len(ns), height=2.6, sharey=True)
        for j, n in enumerate(ns):
            ax = axes[0, j]
            mn = m.sel(n=n)
            for p in penalties:
                sp = seed_stats(mn["sparsity"].sel(penalty=p))[0]
                an, lo, hi, _ = seed_stats(mn["angle"].sel(penalty=p))
                ax.errorbar(
                    sp.values,
                    an.values,
                    yerr=[an.values - lo.values, hi.values - an.values],
                    color=PENALTY_COLOR[p],
                    marker=PENALTY_MARKER[p],
                    capsize=1.5,
                    lw=1.0,
                    label=PENALTY_LABEL[p],
                )
            dens = float(mn["density"].mean())
            ax.axvline(1 - dens, color=style.PREDICTION_COLOR, ls=":", lw=0.8)
            ax.set_title(f"$n={n}$, $s/n={_frac(mn['density'])}$")
            ax.set_xlabel("sparsity of $u$ (fraction of zeros)")
            low = np.nanmin(np.append(mn["sparsity"].mean("seed").values.ravel(), 1 - dens))
            ax.set_xlim(max(low - 0.04, -0.03), 1.01)
            ax.set_ylim(bottom=0)
            notes = [diverged_note(mn["status"])]
            u0 = int((mn["angle"].isnull() & (mn["status"] != DIVERGED)).sum())
            if u0:
                notes.append(f"{u0} runs end with $u=0$ (excluded)")
            style.note(ax, _join(*notes), "upper left")
        axes[0, 0].set_ylabel(r"error $\theta(u, w^*)$ (rad)")
        handles = _penalty_handles(penalties, marker=True)
        handles.append(Line2D([], [], color=style.PREDICTION_COLOR, ls=":", label="sparsity of $w^*$"))
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
        lam_txt = ", ".join(style.fmt_num(x) for x in lams)
        unit_txt = " (units of $c(k)$)" if units == "relative_to_c" else ""
        fig.suptitle(
            f"{mode} mode, last step, points: $\\lambda \\in \\{{{lam_txt}\\}}${unit_txt}\n"
            + _slice_text(sel, seeds=ds.sizes["seed"]),
            fontsize=7,
        )
    return fig


# ---------------------------------------------------------------------------
# 4. support recovery
# ---------------------------------------------------------------------------


def _heatmap(ax, prob: np.ndarray, xlabels, ylabels):
    """prob (len(y), len(x)) in [0, 1] as coloured cells with their value; grey
    where no run is left (all diverged)."""
    cmap = style.plt.get_cmap("viridis").with_extremes(bad="0.85")
    im = ax.imshow(np.ma.masked_invalid(prob), cmap=cmap, vmin=0, vmax=1, origin="lower", aspect="auto")
    if len(xlabels) > 4:
        ax.set_xticks(np.arange(len(xlabels)), xlabels, rotation=45, ha="right", rotation_mode="anchor")
    else:
        ax.set_xticks(np.arange(len(xlabels)), xlabels)
    ax.set_yticks(np.arange(len(ylabels)), ylabels)
    ax.grid(False)
    for (yi, xi), v in np.ndenumerate(prob):
        text = "–" if np.isnan(v) else f"{v:.2f}".rstrip("0").rstrip(".") if v not in (0, 1) else f"{v:.0f}"
        ax.text(
            xi, yi, text, ha="center", va="center", fontsize=6, color="white" if (np.isnan(v) or v < 0.6) else "black"
        )
    for side in ("top", "right"):
        ax.spines[side].set_visible(True)
    return im


def support_recovery(datasets: dict, slice: dict | None = None, mode: str | None = None):  # noqa: A002
    """Probability (over seeds) that supp(u) = supp(w*) at the end of the runs:
    top row on (lambda, beta) at fixed n; bottom row on (lambda, s/n), s/n
    varying through n at fixed beta; one column per penalty."""
    mode = _modes(datasets, (mode,) if mode else MODES)[0]
    ds = datasets[mode]
    penalties = [str(p) for p in ds["penalty"].values]
    lams = lam_values(ds)
    units = lam_units(ds)
    sel_b = resolve(ds, slice, ("n", "k", "eta", "ste", "normalise", "batch_size"))
    sel_s = resolve(ds, slice, ("beta", "k", "eta", "ste", "normalise", "batch_size"))
    ex = ds["support_exact"]
    with style.context():
        fig, axes = style.subplots(2, len(penalties), height=1.0 + 0.28 * (ds.sizes["beta"] + ds.sizes["n"]) + 1.6)
        xl = [style.fmt_num(x) for x in lams]
        betas = [float(b) for b in ds["beta"].values]
        dens = teacher_density(ds.sel(k=sel_s["k"])).mean("seed")
        ns = sorted((int(x) for x in ds["n"].values), key=lambda n: float(dens.sel(n=n)))  # s/n upwards
        ylab_s = [f"{round(float(dens.sel(n=n)) * n)}/{n}" for n in ns]
        for j, p in enumerate(penalties):
            top = ds.sel(sel_b).sel(penalty=p, lam=lams)
            prob_b = ex.sel(sel_b).sel(penalty=p, lam=lams).mean("seed").transpose("beta", "lam").values
            bot = ds.sel(sel_s).sel(penalty=p, lam=lams)
            prob_s = ex.sel(sel_s).sel(penalty=p, lam=lams, n=ns).mean("seed").transpose("n", "lam").values
            im = _heatmap(axes[0, j], prob_b, xl, [style.fmt_num(b) for b in betas])
            _heatmap(axes[1, j], prob_s, xl, ylab_s)
            axes[0, j].set_title(PENALTY_LABEL[p])
            for i, r in enumerate((top, bot)):
                note = diverged_note(r["status"])
                if note:
                    axes[i, j].set_xlabel(style.lam_axis_label(units) + f"\n({note})")
                else:
                    axes[i, j].set_xlabel(style.lam_axis_label(units))
        axes[0, 0].set_ylabel(LABEL["beta"])
        axes[1, 0].set_ylabel(LABEL["s_over_n"])
        fig.colorbar(im, ax=axes, label="P(exact support recovery)", shrink=0.8, fraction=0.05, pad=0.02)
        fig.suptitle(
            f"{mode} mode, over {ds.sizes['seed']} seeds. Top: "
            + _slice_text(sel_b)
            + ".  Bottom: "
            + _slice_text(sel_s),
            fontsize=7,
        )
    return fig


# ---------------------------------------------------------------------------
# 5. multiple limits
# ---------------------------------------------------------------------------


def multiple_limits(datasets: dict, penalties=("l0", "tl1")):
    """How often the fixed-point equation has several solutions, over the whole
    grid: (left) share of searches (cells n, k, seed and STEs pooled) with two
    or more distinct fixed points, on (lambda, beta); (right) for those
    searches, the share of the starts (w0 and the random starts) reaching each
    limit (with ``limit_counts``) or the limit of w0 (``limit_share``)."""
    ds = datasets[_modes(datasets)[0]]
    penalties = [p for p in penalties if p in ds["penalty"].values.tolist()]
    if not penalties:
        raise ValueError(f"penalties: none of them is on the grid {ds['penalty'].values.tolist()}")
    stes = [s for s in ds["ste"].values.tolist() if s != "clipped_relu"]
    lams = lam_values(ds, nonzero=True)
    units = lam_units(ds)
    betas = [float(b) for b in ds["beta"].values]
    with style.context():
        if not stes or not lams:
            fig, axes = style.subplots(1, 1, width=style.COLUMN, height=1.5)
            style.empty_panel(axes[0, 0], "No predicted limits on this grid (no relu/identity STE or no $\\lambda>0$).")
            return fig
        sub = ds.sel(ste=stes, lam=lams)
        nl = sub["n_limits"]
        searched = nl > 0
        multi = nl > 1
        n_search = int(searched.sel(penalty=penalties).sum())
        n_multi = int(multi.sel(penalty=penalties).sum())
        starts = _n_starts(ds)
        fig, axes = style.subplots(len(penalties), 2, height=1.6 * len(penalties) + 1.1, width=style.PAGE)
        xl = [style.fmt_num(x) for x in lams]
        im = None
        handles = None
        for i, p in enumerate(penalties):
            mp, sp = multi.sel(penalty=p), searched.sel(penalty=p)
            pool = [d for d in mp.dims if d not in ("beta", "lam")]  # n, k, seed, ste (and eta if the search has it)
            share_multi = (mp.sum(pool) / sp.sum(pool)).transpose("beta", "lam")
            im = _heatmap(axes[i, 0], share_multi.values, xl, [style.fmt_num(b) for b in betas])
            axes[i, 0].set_ylabel(f"{PENALTY_LABEL[p]}\n" + LABEL["beta"])
            axes[i, 0].set_xlabel(style.lam_axis_label(units))
            handles = _limit_shares(axes[i, 1], sub.sel(penalty=p), lams, units, starts) or handles
        axes[0, 0].set_title("share of searches with $\\geq 2$ fixed points", fontsize=7)
        axes[0, 1].set_title(
            "share of starts reaching each fixed point"
            if "limit_counts" in ds
            else "share of starts reaching the limit of $w^0$\n(dots: searches with $\\geq 2$ fixed points)",
            fontsize=7,
        )
        fig.colorbar(im, ax=axes[:, 0], label="share of searches", shrink=0.9, fraction=0.06, pad=0.02)
        if handles:
            fig.legend(handles=handles, loc="outside lower right", ncols=len(handles), handletextpad=0.1)
        pooled = " × ".join(
            f"{sub.sizes[d]} {name}"
            for d, name in (("n", "n"), ("k", "k"), ("seed", "seeds"), ("ste", "STEs"), ("eta", "η"))
            if d in nl.dims
        )
        each = f"{starts} starts each" if starts else "several starts each"
        per = "; ".join(
            f"{PENALTY_LABEL[p]} {int(multi.sel(penalty=p).sum())} of {int(searched.sel(penalty=p).sum())}"
            for p in penalties
        )
        if n_multi == 0:
            headline = (
                f"Multiple limits never happened on this grid: each of the {n_search} searches "
                f"({each}) found a single fixed point."
            )
        else:
            headline = f"Searches that found several fixed points ({each}; pooled: {pooled}): {per}."
        fig.suptitle(_wrap(headline + _reached_note(datasets)), fontsize=7)
    return fig


def _n_starts(ds) -> int | None:
    """Starts per fixed-point search (w0 plus limit.starts), from the provenance config."""
    import json

    try:
        return 1 + int(json.loads(ds.attrs["config"])["limit"]["starts"])
    except (KeyError, ValueError, TypeError):
        return None


def _reached_note(datasets) -> str:
    """Do the trained population runs end at the limit predicted from w0?"""
    pop = datasets.get("population")
    if pop is None or True not in pop["normalise"].values.tolist():
        return ""
    r = pop.sel(normalise=True)
    d = r["dist_wbar"].isel(step=-1)
    ok = (r["status"] == 0) & d.notnull()
    total = int(ok.sum())
    far = int((ok & (d > 1e-6)).sum())
    diverged = diverged_note(r["status"], "normalised population runs")
    diverged = f" {diverged}." if diverged else ""
    if not total:
        return diverged
    return (
        " Trained population runs (converged, normalised) ending farther than $10^{-6}$ from the limit "
        f"predicted from their start, i.e. at another fixed point: {far} of {total}.{diverged}"
    )


def _limit_shares(ax, sub: xr.Dataset, lams, units, starts):
    """Right panel of ``multiple_limits`` for one penalty."""
    nl = sub["n_limits"]
    multi = nl > 1
    pos = _cat_axis(ax, lams, style.lam_axis_label(units))
    ax.set_ylim(0, 1.12)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel("share of starts")
    if not bool(multi.any()):
        style.note(ax, "single fixed point in every search", "center")
        return
    rng = np.random.default_rng(0)  # jitter only
    if "limit_counts" in sub and starts:
        counts = sub["limit_counts"]
        grey = ["#000000", OKABE_ITO_ORDER[0], OKABE_ITO_ORDER[1], OKABE_ITO_ORDER[2], "0.6"]
        for xi, lam in zip(pos, lams, strict=True):
            c = counts.sel(lam=lam).where(multi.sel(lam=lam))
            stacked = c.stack(search=[d for d in c.dims if d != "limit"]).dropna("search", how="all")
            m = stacked.sizes["search"]
            if not m:
                continue
            shares = (stacked / starts).values  # (limit, search)
            order = np.argsort(-shares[0])
            shares = shares[:, order]
            width = 0.8 / m
            bottom = np.zeros(m)
            xs = xi - 0.4 + width * (np.arange(m) + 0.5)
            for li in range(min(shares.shape[0], 5)):
                h = np.nan_to_num(shares[li]) if li < 4 else np.nan_to_num(shares[4:]).sum(axis=0)
                ax.bar(xs, h, width=width, bottom=bottom, color=grey[li], lw=0)
                bottom += h
            ax.text(xi, 1.03, f"{m}", ha="center", va="bottom", fontsize=6)
        labels = ["1st (most reached)", "2nd", "3rd", "4th", "others"]
        return [Line2D([], [], color=grey[i], lw=4, label=labels[i]) for i in range(5)]
    else:
        kinds = {2: "2", 3: "3", 4: r"$\geq 4$"}
        kcol = dict(zip(kinds, style.sequential_colors(3), strict=True))
        for xi, lam in zip(pos, lams, strict=True):
            share = sub["limit_share"].sel(lam=lam).where(multi.sel(lam=lam)).values.ravel()
            count = nl.sel(lam=lam).values.ravel()
            keep = np.isfinite(share)
            share, count = share[keep], np.minimum(count[keep], 4)
            if not share.size:
                continue
            ax.scatter(
                xi + rng.uniform(-0.25, 0.25, share.size),
                share,
                s=7,
                c=[kcol[int(c)] for c in count],
                alpha=0.8,
                lw=0,
            )
            ax.text(xi, 1.03, f"{share.size}", ha="center", va="bottom", fontsize=6)
        return [Line2D([], [], color=kcol[k], marker="o", ls="", label=f"{v} fixed points") for k, v in kinds.items()]


OKABE_ITO_ORDER = [style.OKABE_ITO["orange"], style.OKABE_ITO["sky"], style.OKABE_ITO["green"]]


# ---------------------------------------------------------------------------
# 6. straight-through estimators, 8. normalisation ablation
# ---------------------------------------------------------------------------


def _series_columns(ds, lam, penalties):
    """Columns of the STE and ablation figures: plain CGD, then each penalty at one lambda."""
    x = middle_lam(ds, lam)
    pens = [str(p) for p in ds["penalty"].values] if penalties is None else list(penalties)
    for p in pens:
        if p not in ds["penalty"].values.tolist():
            raise ValueError(f"penalties: {p!r} is not on the grid {ds['penalty'].values.tolist()}")
    cols = []
    if 0.0 in lam_values(ds):
        cols.append((pens[0], 0.0, style.CGD_LABEL))
    if x != 0:
        cols += [(p, x, f"{PENALTY_LABEL[p]}, {style.lam_label(x, lam_units(ds))}") for p in pens]
    return cols


def _compare_traces(datasets, slice, lam, penalties, along, colors, labels, rows, empty_text):  # noqa: A002
    """Traces of the runs along one dimension (``along``: one colour per value),
    one column per series (plain CGD, then each penalty at one lambda).

    ``rows``: list of ``(quantity, ylabel, yscale, ymin, modes)``; a row with
    two modes draws population solid and empirical dashed in the same panel.
    """
    modes = _modes(datasets)
    first = datasets[modes[0]]
    cols = _series_columns(first, lam, penalties)
    fixed = tuple(d for d in SLICE_DIMS if d != along)
    values = first[along].values.tolist()
    rows = [(q, lab, scale, ymin, [m for m in row_modes if m in modes]) for q, lab, scale, ymin, row_modes in rows]
    rows = [r for r in rows if r[4]]
    sels = {}
    subtitles = []
    for mode in modes:
        sels[mode] = resolve(datasets[mode], slice, fixed)
        subtitles.append(f"{mode}: " + _slice_text(sels[mode], seeds=datasets[mode].sizes["seed"]))
    with style.context():
        fig, axes = style.subplots(len(rows), len(cols), height=1.45 * len(rows) + 1.1, sharex=True, sharey="row")
        for i, (quantity, ylabel, yscale, ymin, row_modes) in enumerate(rows):
            for j, (p, x, title) in enumerate(cols):
                ax = axes[i, j]
                notes = []
                for mode in row_modes:
                    r = datasets[mode].sel(sels[mode]).sel(penalty=p, lam=x)
                    ls = "--" if (mode == "empirical" and len(row_modes) > 1) else "-"
                    for v in values:
                        rv = r.sel({along: v})
                        _trace(ax, rv[quantity], rv["status"], colors[v], ls=ls)
                    notes.append(diverged_note(r["status"], f"{mode} runs" if len(row_modes) > 1 else "runs"))
                style.note(ax, _join(*notes), "lower left")
                ax.set_xscale("log")
                ax.set_yscale(yscale)
                if ymin is not None and j == 0:
                    ax.set_ylim(bottom=ymin)
                if i == 0:
                    ax.set_title(title)
                if j == 0:
                    where = f"{row_modes[0]} mode" if len(row_modes) == 1 else "both modes"
                    ax.set_ylabel(f"{where}\n{ylabel}")
                if i == len(rows) - 1:
                    ax.set_xlabel(LABEL["step"])
        handles = [Line2D([], [], color=colors[v], label=labels[v]) for v in values]
        if len(values) < 2:
            handles.append(Line2D([], [], ls="", label=empty_text))
        if any(len(r[4]) > 1 for r in rows):
            handles += [
                Line2D([], [], color="0.3", ls="-", label="population"),
                Line2D([], [], color="0.3", ls="--", label="empirical"),
            ]
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
        fig.suptitle("\n".join(subtitles), fontsize=7)
    return fig


def ste(datasets: dict, slice: dict | None = None, lam=None, penalties=None, ymin: float | None = 1e-6):  # noqa: A002
    """Population loss L(w^t) versus step for each straight-through estimator,
    on plain CGD and on RVSCGD (each penalty at one lambda); rows = modes.
    ``ymin`` cuts the log y axis below (plain CGD goes to 0)."""
    rows = [("loss", LABEL["loss"], "log", ymin, [m]) for m in MODES]
    return _compare_traces(
        datasets,
        slice,
        lam,
        penalties,
        "ste",
        style.STE_COLOR,
        style.STE_LABEL,
        rows,
        "(only this STE on the grid: grid.ste)",
    )


def normalisation(datasets: dict, slice: dict | None = None, lam=None, penalties=None, ymin: float | None = 1e-4):  # noqa: A002
    """RVSCGD with and without its normalisation step, on plain CGD and on
    RVSCGD (each penalty at one lambda): angle(w^t, w*) in each mode, and the
    sparsity of u^t in both modes (population solid, empirical dashed).
    ``ymin`` (rad) cuts the log angle axis below (plain CGD goes to 0)."""
    rows = [("angle_w", LABEL["angle_w"], "log", ymin, [m]) for m in MODES]
    rows.append(("sparsity_u", "sparsity of $u^t$", "linear", None, list(MODES)))
    return _compare_traces(
        datasets,
        slice,
        lam,
        penalties,
        "normalise",
        style.NORMALISE_COLOR,
        style.NORMALISE_LABEL,
        rows,
        "(no ablation runs: grid.normalise has one value)",
    )


# ---------------------------------------------------------------------------
# 7. scaling, with the linear rate of the expected dynamics
# ---------------------------------------------------------------------------


def linear_rate(w_bar, w_star, c: float, lam: float, beta: float, eta: float, penalty: str, a: float = 1.0) -> float:
    """Linear convergence rate of normalised RVSCGD with the expected coarse
    gradient ``c (w/||w|| - w*)`` (relu or identity STE) near its fixed point.

    One step is ``F(w) = G(w) / ||G(w)||`` with
    ``G(w) = w - eta (c (w/||w|| - w*) + beta (w - p(w)))``, ``p`` the prox
    with threshold ``lam / beta``. At a fixed point ``w_bar`` (unit norm,
    ``w_bar = (c w* + beta u_bar) / N'``, ``N' = ||c w* + beta u_bar||``):

    - ``G(w_bar) = N w_bar`` with ``N = 1 - eta (c + beta) + eta N'``;
    - ``dG = I - eta c P - eta beta (I - D)``, ``P = I - w_bar w_bar^T``,
      ``D = diag(p'(w_bar))``;
    - ``dF = P dG / N``, which on the tangent space ``w_bar^perp`` is
      ``((1 - eta (c + beta)) I + eta beta P D P) / N``.

    The rate is the spectral radius of that map (symmetric on the tangent
    space, so its eigenvalues are real): ``||w^t - w_bar||`` shrinks by about
    this factor per step once the thresholding pattern has settled. For plain
    CGD (``lam = 0``: ``D = I``, ``u_bar = w_bar = w*``, ``N = 1``) it is
    ``1 - eta c``.
    """
    from rvscgd.penalties import prox, prox_derivative

    w_bar = np.asarray(w_bar, dtype=float)
    w_star = np.asarray(w_star, dtype=float)
    n = w_bar.size
    tau = lam / beta
    u_bar = prox(w_bar, tau, penalty, a)
    d = prox_derivative(w_bar, tau, penalty, a) if tau > 0 else np.ones(n)
    N = 1.0 - eta * (c + beta) + eta * np.linalg.norm(c * w_star + beta * u_bar)
    q, _ = np.linalg.qr(np.column_stack([w_bar, np.eye(n)]))
    Q = q[:, 1:n]  # orthonormal basis of the tangent space
    M = (1.0 - eta * (c + beta)) * np.eye(n - 1) + eta * beta * (Q.T * d) @ Q
    return float(np.max(np.abs(np.linalg.eigvalsh((M + M.T) / (2.0 * N)))))


def predicted_steps(theta0, rho, tol=None, eps=None):
    """Steps predicted by the linear rate ``rho`` from a start at angle ``theta0``
    (rad) to the limit.

    The distance to the limit is modelled as ``A rho^t`` with
    ``A = 2 tan(theta0 / 2)`` (for plain CGD, ``tan(theta_t / 2)`` decays by
    ``1 - eta c`` per step to first order, from any angle), so

    - ``tol``: a run stops when ``||w^{t+1} - w^t|| = (1 - rho) A rho^t <= tol``:
      ``T = ln((1 - rho) A / tol) / ln(1 / rho)``;
    - ``eps``: it first gets within ``eps`` of the limit at
      ``T = ln(A / eps) / ln(1 / rho)``.
    """
    theta0 = np.asarray(theta0, dtype=float)
    rho = np.asarray(rho, dtype=float)
    A = 2.0 * np.tan(theta0 / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if tol is not None:
            T = np.log((1.0 - rho) * A / tol) / np.log(1.0 / rho)
        elif eps is not None:
            T = np.log(A / eps) / np.log(1.0 / rho)
        else:
            raise ValueError("give tol or eps")
    return np.maximum(T, 0.0)


def _config(ds) -> dict:
    import json

    try:
        return json.loads(ds.attrs["config"])
    except (KeyError, ValueError, TypeError):
        return {}


def rate_grid(ds: xr.Dataset) -> xr.DataArray:
    """``linear_rate`` for every (n, k, seed, penalty, lam, beta, eta, ste) of a
    dataset (normalised runs; NaN for clipped_relu, which has no constant c)."""
    from rvscgd import coarse_constant

    a = float(_config(ds).get("grid", {}).get("tl1_a", 1.0))
    dims = ("n", "k", "seed", "penalty", "lam", "beta", "eta", "ste")
    out = xr.DataArray(np.full(tuple(ds.sizes[d] for d in dims), np.nan), coords={d: ds[d] for d in dims}, dims=dims)
    for idx in np.ndindex(out.shape):
        co = {d: ds[d].values[i] for d, i in zip(dims, idx, strict=True)}
        if co["ste"] == "clipped_relu":
            continue
        n, k = int(co["n"]), int(co["k"])
        pt = {d: co[d] for d in ds["w_bar"].dims if d != "feature"}  # with eta if the limits depend on it
        w_bar = ds["w_bar"].sel(pt).values[:n]
        if not np.all(np.isfinite(w_bar)):
            continue
        w_star = ds["w_star"].sel(n=co["n"], k=co["k"], seed=co["seed"]).values[:n]
        lam = float(ds["lam_effective"].sel(lam=co["lam"], k=co["k"]))
        out[idx] = linear_rate(
            w_bar, w_star, coarse_constant(k, co["ste"]), lam, float(co["beta"]), float(co["eta"]), co["penalty"], a
        )
    return out


def steps_to_reach(dist: xr.DataArray, eps: float) -> xr.DataArray:
    """First step at which ``dist`` (recorded at log-spaced steps) is ``<= eps``,
    interpolated log-linearly between the two recorded steps around the crossing;
    NaN if never reached."""
    t = dist["step"].values.astype(float)

    def first(d):
        below = np.flatnonzero(d <= eps)
        if not below.size:
            return np.nan
        j = below[0]
        if j == 0 or not (d[j - 1] > 0 and d[j] > 0):
            return t[j]
        f = (np.log(d[j - 1]) - np.log(eps)) / (np.log(d[j - 1]) - np.log(d[j]))
        return t[j - 1] + f * (t[j] - t[j - 1])

    return xr.apply_ufunc(first, dist, input_core_dims=[["step"]], vectorize=True)


def scaling(
    datasets: dict,
    slice: dict | None = None,  # noqa: A002
    lam=None,
    penalties=None,
    eps: float = 0.1,
):
    """Steps to converge versus n (x) and k (colour), measured (markers, mean
    and 95% band over seeds) and predicted from the linear rate of the
    expected dynamics (dashed), for plain CGD and each penalty at one lambda.
    Population row: steps until ``||w^{t+1} - w^t|| <= tol`` (population.tol);
    empirical row: steps until ``||w^t - w_bar|| <= eps`` first."""
    modes = _modes(datasets)
    first = datasets[modes[0]]
    cols = _series_columns(first, lam, penalties)
    ks = [int(k) for k in first["k"].values]
    kcolors = dict(zip(ks, style.sequential_colors(len(ks)), strict=True))
    ns = [int(n) for n in first["n"].values]
    with style.context():
        fig, axes = style.subplots(len(modes), len(cols), height=1.6 * len(modes) + 1.2, sharex=True, sharey="row")
        subtitles = []
        ymax = [0.0] * len(modes)
        for i, mode in enumerate(modes):
            ds = datasets[mode]
            sel = resolve(ds, slice, ("beta", "eta", "ste", "normalise", "batch_size"))
            _need_limit_slice(sel)
            if not sel.get("normalise", True):
                raise ValueError("scaling: slice normalise=false has no predicted limit; use true")
            subtitles.append(f"{mode}: " + _slice_text(sel, seeds=ds.sizes["seed"]))
            sub = ds.sel(sel)
            at = {d: sel[d] for d in ("beta", "eta", "ste")}
            rho = rate_grid(ds.sel({d: [v] for d, v in at.items()})).sel(at)
            theta0 = vector_angle(sub["w0"], sub["w_bar"])
            cfg = _config(ds)
            if mode == "population":
                tol = float(cfg.get("population", {}).get("tol", 1e-12))
                measured = sub["steps_run"].where(sub["status"] == 0).astype(float)
                pred = xr.apply_ufunc(predicted_steps, theta0, rho, kwargs={"tol": tol})
                what = f"iterations to converge\n($\\|w^{{t+1}}-w^t\\| \\leq {_sci(tol)}$)"
            else:
                measured = steps_to_reach(sub["dist_wbar"].where(sub["status"] != DIVERGED), eps)
                pred = xr.apply_ufunc(predicted_steps, theta0, rho, kwargs={"eps": eps})
                what = f"iterations to reach\n$\\|w^t-\\bar w\\| \\leq {style.fmt_num(eps)}$"
            for j, (p, x, title) in enumerate(cols):
                ax = axes[i, j]
                m = measured.sel(penalty=p, lam=x)
                pr = pred.sel(penalty=p, lam=x)
                st = sub["status"].sel(penalty=p, lam=x)
                for k in ks:
                    mean, lo, hi, _ = seed_stats(m.sel(k=k))
                    ax.errorbar(
                        ns,
                        mean.values,
                        yerr=[mean.values - lo.values, hi.values - mean.values],
                        color=kcolors[k],
                        marker="o",
                        capsize=1.5,
                        lw=1.0,
                    )
                    ax.plot(ns, pr.sel(k=k).mean("seed").values, color=kcolors[k], ls="--", lw=0.9)
                missing = int((m.isnull() & (st != DIVERGED)).sum())
                notes = [diverged_note(st)]
                if missing:
                    notes.append(
                        f"{missing} not converged in max_steps"
                        if mode == "population"
                        else f"{missing} never within {style.fmt_num(eps)}"
                    )
                ok = m.notnull() & pr.notnull()
                if bool(ok.any()):
                    rel = float((np.abs(m - pr) / m).where(ok).median())
                    notes.append(f"median error of prediction {100 * rel:.0f}%")
                style.note(ax, _join(*notes), "upper left")
                ax.set_xscale("log", base=2)
                ax.set_xticks(ns, [str(n) for n in ns])
                ax.minorticks_off()
                ax.set_xlim(ns[0] / 1.25, ns[-1] * 1.25)
                top = np.nanmax([np.nanmax(m.values, initial=0), np.nanmax(pr.values, initial=0)])
                ymax[i] = max(ymax[i], top)
                if i == 0:
                    ax.set_title(title)
                if j == 0:
                    ax.set_ylabel(f"{mode} mode\n{what}")
                if i == len(modes) - 1:
                    ax.set_xlabel(LABEL["n"])
        for i in range(len(modes)):
            axes[i, 0].set_ylim(0, 1.45 * ymax[i] if ymax[i] > 0 else 1)  # room for the notes
        handles = [Line2D([], [], color=kcolors[k], marker="o", label=f"$k={k}$, measured") for k in ks]
        handles.append(Line2D([], [], color="0.3", ls="--", label="predicted (linear rate)"))
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
        fig.suptitle("\n".join(subtitles), fontsize=7)
    return fig


def _sci(x: float) -> str:
    if x == 0:
        return "0"
    e = int(np.floor(np.log10(abs(x))))
    m = x / 10**e
    return f"10^{{{e}}}" if math.isclose(m, 1.0) else f"{m:.2g}\\times 10^{{{e}}}"
