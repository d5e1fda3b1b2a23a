"""The convergence figure. What it shows, and how to read it: workflow/report/convergence.rst."""

from __future__ import annotations

from itertools import product

from study import style

from .draw import join, lam_handles, slice_text, trace
from .select import lam_units, lam_values, modes, penalties, resolve
from .stats import at_run_end, diverged_note, u_zero_count


def draw(
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
    shown = modes(datasets)
    first = datasets[shown[0]]
    pens = penalties(first)
    lams = lam_values(first, lam)
    units = lam_units(first)
    colors = style.lam_colors(lams)
    quantities = ("angle_w", "angle_u")
    cols = list(product(quantities, shown))
    with style.context():
        fig, axes = style.subplots(len(pens), len(cols), height=1.25 * len(pens) + 1.0, sharex=True, sharey=True)
        subtitles = []
        for j, (q, mode) in enumerate(cols):
            ds = datasets[mode]
            sel = resolve(ds, slice)
            if q == quantities[0]:
                subtitles.append(f"{mode}: " + slice_text(sel, seeds=ds.sizes["seed"]))
            sub = ds.sel(sel)
            for i, p in enumerate(pens):
                ax = axes[i, j]
                runs = sub.sel(penalty=p, lam=lams)
                for x in lams:
                    r = runs.sel(lam=x)
                    trace(ax, r[q], r["status"], colors[x], ls="--" if x == 0 else "-")
                notes = [diverged_note(runs["status"])]
                if q == "angle_u":
                    u0 = u_zero_count(at_run_end(runs[q], runs["angle_w"]), runs["status"])
                    if u0:
                        notes.append(f"{u0} runs end with $u=0$\n(angle undefined)")
                style.note(ax, join(*notes))
                style.log_steps(ax)
                ax.set_yscale(yscale)
                if i == 0:
                    sym = r"$\theta(w^t, w^*)$" if q == "angle_w" else r"$\theta(u^t, w^*)$"
                    ax.set_title(f"{sym}, {mode}")
                if j == 0:
                    ax.set_ylabel(f"{style.PENALTY_LABEL[p]}: angle (rad)")
                if i == len(pens) - 1:
                    ax.set_xlabel(style.LABEL["step"])
        if ymin is not None:
            axes[0, 0].set_ylim(bottom=ymin)
        fig.legend(handles=lam_handles(lams, colors, units), loc="outside lower center", ncols=min(len(lams), 6))
        fig.suptitle("\n".join(subtitles), fontsize=7)
    return fig
