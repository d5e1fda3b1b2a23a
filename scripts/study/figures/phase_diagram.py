"""The phase_diagram figure. What it shows, and how to read it: workflow/report/phase_diagram.rst."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

import rvscgd
from rvscgd.theory import REGION_LABELS, REGIONS, phase_map, region_of
from study import style

from .draw import slice_text, wrap
from .select import fixed_points as select_fixed_points
from .select import need_limit_slice, one_mode, penalties, resolve
from .stats import DIVERGED, diverged_note

# What a teacher's runs show: the theory's regions, plus runs that reached no
# stable predicted limit (limit_kind unpredicted, or matched to an unstable point).
CLASSES = (*REGIONS, "unmatched")
LABELS = {**REGION_LABELS, "unmatched": "runs: no stable predicted limit reached"}
COLORS = {
    "recovers": style.OKABE_ITO["green"],
    "hysteresis": style.OKABE_ITO["yellow"],
    "spurious": style.OKABE_ITO["vermillion"],
    "continuum": style.OKABE_ITO["sky"],
    "unmatched": "0.55",
}
CODE = {name: i for i, name in enumerate(CLASSES)}
# phase_map's lattice stride: cells whose corners agree are filled, boundaries refined.
COARSE = 4
# A run dimension pooled per teacher (many starts of one cell), when the datasets have one.
POOLED = ("start",)


def _units_of_c(sub, sel, pen):
    """(lambda/c, beta/c) of the grid for penalty ``pen`` at the slice ``sub``
    (every other dimension fixed): arrays over (lam, beta)."""
    c = rvscgd.coarse_constant(int(sel["k"]), str(sel["ste"]))
    eff = sub["lam_effective"]
    if "penalty" in eff.dims:
        eff = eff.sel(penalty=pen)
    eff = eff.broadcast_like(sub["beta"]).transpose("lam", "beta").values
    betas = sub["beta"].values.astype(float)
    return eff / c, np.broadcast_to(betas / c, eff.shape)


# The listed fixed points' variables the figure reads (ragged in the datasets: fixed_points).
FP_VARS = ("fp_stable", "fp_multiplicity", "fp_support_exact")


def fixed_points(ds, sel: dict):
    """``ds.sel(sel)`` with the listed fixed points' ``FP_VARS`` as padded arrays
    along ``fixed_point`` (``select.fixed_points``: from the ragged variables of
    the whole dataset)."""
    return ds.sel(sel).assign(select_fixed_points(ds, FP_VARS, sel))


def _fp_recovers(sub):
    """Whether each listed fixed point's u_bar (entries of w_bar above the
    threshold) has exactly w*'s support: (seed, penalty, lam, beta, fixed_point),
    from the cell stage's ``fp_support_exact``."""
    return sub["fp_support_exact"] == 1


def theory_at_grid(sub):
    """Region code of every (seed, penalty, lam, beta) of ``sub`` (the slice)
    from the fixed points the dataset stores (``rvscgd.fixed_points``, the
    limits stage): stable ones (``n_limits``), those whose thresholded
    ``w_bar`` has w*'s support, continua (``n_continua``); ``region_of``."""
    same = _fp_recovers(sub)
    stable = sub["fp_stable"] == 1
    n_rec = sub["fp_multiplicity"].where(stable & same, 0).sum("fixed_point")
    n_stable = sub["n_limits"]
    cont = sub["n_continua"] > 0
    dims = ("seed", "penalty", "lam", "beta")
    n_rec, n_stable, cont = (x.transpose(*dims).values for x in (n_rec, n_stable, cont))
    out = np.vectorize(lambda s, r, c: REGIONS.index(region_of(int(s), int(r), bool(c))))(n_stable, n_rec, cont)
    return out.astype(np.int8)


def runs_at_grid(sub):
    """Class code of every (seed, penalty, lam, beta) from its runs (pooled over
    ``POOLED`` dimensions if any), -1 where every run diverged or has no
    prediction. In this order: ``continuum`` if a run ended on a continuum;
    ``unmatched`` if one reached no stable predicted point; ``spurious`` if
    none ended with w*'s support; ``hysteresis`` if they ended at two or more
    distinct points, or at a stable point other than w_bar (so the teacher has
    several); else ``recovers`` (all at w_bar, with the support). The support
    is the final u's (``support_exact``), except at lambda = 0, where u = w
    keeps rounding-sized entries off the support: there it is the matched
    point's."""
    dims = ("seed", "penalty", "lam", "beta")
    pool = [d for d in sub["limit_kind"].dims if d not in dims]
    order = (*dims, *pool)
    kind = sub["limit_kind"].transpose(*order).values
    best = sub["limit_best"].transpose(*order).values
    exact = sub["support_exact"].transpose(*order).values
    index = sub["limit_index"].transpose(*order).values
    status = sub["status"].transpose(*order).values

    def at_index(var):
        x = var.transpose(*dims, "fixed_point").values
        x = x.reshape(x.shape[:4] + (1,) * len(pool) + x.shape[4:])
        return np.take_along_axis(x, np.clip(index, 0, None)[..., None], axis=-1)[..., 0]

    at = at_index(sub["fp_stable"])
    lam0 = (sub["lam"].values == 0).reshape((1, 1, -1, 1) + (1,) * len(pool))
    exact = np.where(lam0, at_index(_fp_recovers(sub)), exact == 1)
    valid = (status != DIVERGED) & (kind >= 0)
    iso = valid & (kind == 0) & (at == 1)
    unmatched = valid & ((kind == 2) | ((kind == 0) & (at != 1)))
    axes = tuple(range(4, 4 + len(pool)))

    def anyp(x):
        return x.any(axis=axes) if axes else x

    idx = np.where(iso, index, -1)
    distinct = (np.where(iso, index, np.iinfo(np.int32).max).min(axis=axes) != idx.max(axis=axes)) if axes else False
    out = np.full(kind.shape[:4], CODE["recovers"], dtype=np.int8)
    several = anyp(iso & (best == 0)) | (distinct & anyp(iso))
    out[several] = CODE["hysteresis"]
    out[~anyp(iso & exact)] = CODE["spurious"]
    out[anyp(unmatched)] = CODE["unmatched"]
    out[anyp(valid & (kind == 1))] = CODE["continuum"]
    out[~anyp(valid)] = -1
    return out


def compare(theory, runs):
    """Per (seed, penalty, lam, beta): 0 agree, 1 consistent (the theory has
    several limits, hysteresis or a continuum beside stable points, and the
    runs reached one stable predicted point: one start shows one limit),
    2 contradict, -1 no run to compare."""
    out = np.where(theory == runs, 0, 2).astype(np.int8)
    several = (theory == CODE["hysteresis"]) | (theory == CODE["continuum"])
    one = np.isin(runs, [CODE["recovers"], CODE["spurious"], CODE["hysteresis"]])
    out[(out == 2) & several & one] = 1
    out[runs < 0] = -1
    return out


def draw(datasets: dict, slice: dict | None = None, mode: str | None = None, resolution: int = 16):  # noqa: A002
    """Per penalty (columns), top: the regions of docs/theory.md section 8 on
    a ``resolution`` x ``resolution`` log grid of (lambda/c, beta/c), from
    ``rvscgd.theory.phase_map`` for the teacher of the first seed at the
    slice; bottom: the class of each seed's runs at the config's grid points
    (one marker per seed, each with its own teacher), a cross where it
    contradicts the theory for that seed's teacher, a dot where the theory
    has several limits and the runs reached one of them."""
    if int(resolution) != resolution or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2, got {resolution!r}")
    mode, ds = one_mode(datasets, mode)
    sel = resolve(ds, slice, shown=("penalty", "lam", "beta", *POOLED))
    need_limit_slice(sel)
    if sel.get("normalise") is False:
        raise ValueError("slice normalise=False has no predicted limit (the fixed points are those of RVSCGD)")
    pens = penalties(ds)
    sub = fixed_points(ds, sel)
    n = int(sel["n"])
    seeds = [int(s) for s in sub["seed"].values]
    a = float(ds.attrs.get("tl1_a", 1.0))
    theory = theory_at_grid(sub)
    runs = runs_at_grid(sub)
    verdict = compare(theory, runs)
    w0 = sub["w_star"].sel(seed=seeds[0]).values[:n]
    nonzero = ds["lam"].values.astype(float) > 0
    cmap = ListedColormap([COLORS[r] for r in REGIONS])
    norm = BoundaryNorm(np.arange(len(REGIONS) + 1) - 0.5, len(REGIONS))
    with style.context():
        fig, axes = style.subplots(2, len(pens), height=4.9)
        for i, pen in enumerate(pens):
            ax_t, ax_r = axes[0, i], axes[1, i]
            lam_c, beta_c = _units_of_c(sub, sel, pen)
            pts_l, pts_b = lam_c[nonzero], beta_c[nonzero]
            if not pts_l.size:
                for ax in (ax_t, ax_r):
                    style.empty_panel(ax, "no $\\lambda > 0$ on the grid")
                continue
            xlo, xhi = pts_l.min() / 2, pts_l.max() * 2
            ylo, yhi = min(pts_b.min() / 2, 0.5), max(pts_b.max() * 2, 2.0)
            gl, gb = np.geomspace(xlo, xhi, resolution), np.geomspace(ylo, yhi, resolution)
            pm = phase_map(w0, gl, gb, pen, a=a, coarse=COARSE)
            ax_t.pcolormesh(gl, gb, pm.codes, cmap=cmap, norm=norm, shading="nearest", rasterized=True)
            ax_t.plot(pts_l.ravel(), pts_b.ravel(), ls="", marker=".", ms=2.5, color="black")
            _run_markers(ax_r, pts_l, pts_b, runs[:, i][:, nonzero], verdict[:, i][:, nonzero])
            for ax in (ax_t, ax_r):
                _axes(ax, xlo, xhi, ylo, yhi)
            ax_t.set_title(f"{style.PENALTY_LABEL[pen]}: theory (teacher of seed {seeds[0]})")
            ax_r.set_title(f"{style.PENALTY_LABEL[pen]}: {mode} runs ({len(seeds)} seeds)")
            counts = pm.counts()
            style.below(
                ax_t,
                ", ".join(f"{counts[r]} {r}" for r in REGIONS if counts[r])
                + f" of {pm.codes.size}\n({int(pm.evaluated.sum())} evaluated"
                + (f", {int(pm.flagged.sum())} up to rounding)" if pm.flagged.any() else ")"),
            )
            v = verdict[:, i][:, nonzero]
            at_best = int(((v == 1) & (runs[:, i][:, nonzero] == CODE["recovers"])).sum())
            v = v[v >= 0]
            style.below(
                ax_r,
                f"{int((v == 0).sum())} agree, {int((v == 1).sum())} one of several ({at_best} at "
                + r"$\bar w$"
                + f"),\n{int((v == 2).sum())} contradict the theory (of {v.size})"
                + (f"\n{gone}" if (gone := diverged_note(sub["status"].sel(penalty=pen))) else ""),
            )
        for row in axes:
            row[0].set_ylabel(r"$\beta / c$")
        handles = [Patch(color=COLORS[r], label=LABELS[r]) for r in CLASSES]
        handles += [
            Line2D([], [], ls="", marker="x", color="black", ms=4, label="runs contradict the theory (that seed)"),
            Line2D([], [], ls="", marker=".", color="black", ms=4, label="theory: several limits, runs reached one"),
        ]
        fig.legend(handles=handles, loc="outside lower center", ncols=3, handlelength=1.0, handleheight=0.7)
        zero = ""
        if (~nonzero).any():
            vz = verdict[:, :, ~nonzero]
            vz = vz[vz >= 0]
            zero = (
                f" $\\lambda = 0$ (plain CGD), off the log axis: runs agree with the theory at "
                f"{int((vz == 0).sum())} of {vz.size} (seed, penalty, $\\beta$)."
            )
        fig.suptitle(
            wrap(
                f"{slice_text(sel, len(seeds))}. Top: rvscgd.theory.phase_map on {resolution}x{resolution} points "
                f"(a lattice of every {COARSE}th, refined where corners differ); dots: the config's grid. "
                f"Bottom: one square per seed (its own teacher) at each grid point.{zero}"
            ),
            fontsize=7,
        )
    return fig


def _axes(ax, xlo, xhi, ylo, yhi):
    """Log axes in units of c with plain tick labels, and the line beta = c."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(xlo, xhi)
    ax.set_ylim(ylo, yhi)
    ax.set_xlabel(r"$\lambda / c$")
    ax.grid(False)
    # Plain labels at fixed ticks: cheaper to lay out than log mathtext, and readable.
    for axis, lo, hi, steps in ((ax.xaxis, xlo, xhi, (1,)), (ax.yaxis, ylo, yhi, (1, 2, 5))):
        ticks = [m * 10.0**e for e in range(-6, 4) for m in steps if lo <= m * 10.0**e <= hi]
        axis.set_major_locator(FixedLocator(ticks))
        axis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        axis.set_minor_locator(NullLocator())
    ax.axhline(1.0, color="black", lw=0.7, ls="--")
    ax.text(0.02, 1.05, r"$\beta > c$", transform=ax.get_yaxis_transform(), ha="left", va="bottom", fontsize=6)
    ax.text(0.02, 0.95, r"$\beta < c$", transform=ax.get_yaxis_transform(), ha="left", va="top", fontsize=6)


def _run_markers(ax, lam_c, beta_c, runs, verdict):
    """One square per seed at each grid point, the seeds side by side (seed 0
    left) within 0.7 of the smallest ratio between neighbouring lambdas,
    coloured by the runs' class."""
    S = runs.shape[0]
    v = np.unique(lam_c)
    ratio = min(float(np.min(v[1:] / v[:-1])) if v.size > 1 else 4.0, 4.0)
    step = ratio ** (0.7 / max(S, 1))
    size = max(2.0, min(9.0, 36.0 / S))
    for s in range(S):
        x, y = lam_c * step ** (s - (S - 1) / 2), beta_c
        code, ver = runs[s], verdict[s]
        ok = code >= 0
        colors = [COLORS[CLASSES[c]] for c in code[ok]]
        ax.scatter(x[ok], y[ok], s=size, marker="s", c=colors, linewidths=0, zorder=3)
        bad, one = ver == 2, ver == 1
        ax.scatter(x[bad], y[bad], s=size * 1.5, marker="x", c="black", linewidths=0.7, zorder=4)
        ax.scatter(x[one], y[one], s=1.5, marker="o", c="black", linewidths=0, zorder=4)
