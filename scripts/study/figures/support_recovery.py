"""The support_recovery figure. What it shows, and how to read it: workflow/report/support_recovery.rst."""

from __future__ import annotations

from study import style

from .draw import heatmap, slice_text
from .select import lam_units, lam_values, one_mode, penalties, resolve
from .stats import diverged_note, teacher_density


def draw(datasets: dict, slice: dict | None = None, mode: str | None = None):  # noqa: A002
    """Probability (over seeds) that supp(u) = supp(w*) at the end of the runs:
    top row on (lambda, beta) at fixed n; bottom row on (lambda, s/n), s/n
    varying through n at fixed beta; one column per penalty (seaborn heat maps)."""
    mode, ds = one_mode(datasets, mode)
    pens = penalties(ds)
    lams = lam_values(ds)
    units = lam_units(ds)
    sel_b = resolve(ds, slice, shown=("penalty", "lam", "beta"))
    sel_s = resolve(ds, slice, shown=("penalty", "lam", "n"))
    ex = ds["support_exact"]
    with style.context():
        fig, axes = style.subplots(2, len(pens), height=1.0 + 0.28 * (ds.sizes["beta"] + ds.sizes["n"]) + 1.6)
        xl = [style.fmt_num(x) for x in lams]
        betas = [float(b) for b in ds["beta"].values]
        dens = teacher_density(ds.sel(sel_s)).mean("seed")
        ns = sorted((int(x) for x in ds["n"].values), key=lambda n: float(dens.sel(n=n)))  # s/n upwards
        ylab_s = [f"{round(float(dens.sel(n=n)) * n)}/{n}" for n in ns]
        im = None
        for j, p in enumerate(pens):
            top = ds.sel(sel_b).sel(penalty=p, lam=lams)
            prob_b = ex.sel(sel_b).sel(penalty=p, lam=lams).mean("seed").transpose("beta", "lam").values
            bot = ds.sel(sel_s).sel(penalty=p, lam=lams)
            prob_s = ex.sel(sel_s).sel(penalty=p, lam=lams, n=ns).mean("seed").transpose("n", "lam").values
            im = heatmap(axes[0, j], prob_b, xl, [style.fmt_num(b) for b in betas])
            heatmap(axes[1, j], prob_s, xl, ylab_s)
            axes[0, j].set_title(style.PENALTY_LABEL[p])
            for i, r in enumerate((top, bot)):
                note = diverged_note(r["status"])
                axes[i, j].set_xlabel(style.lam_axis_label(units) + (f"\n({note})" if note else ""))
        for i, label in enumerate((style.LABEL["beta"], style.LABEL["s_over_n"])):
            axes[i, 0].set_ylabel(label)
            for ax in axes[i, 1:]:
                ax.set_ylabel("")
        fig.colorbar(im, ax=axes, label="P(exact support recovery)", shrink=0.8, fraction=0.05, pad=0.02)
        fig.suptitle(
            f"{mode} mode, over {ds.sizes['seed']} seeds. Top: "
            + slice_text(sel_b)
            + ".\nBottom: "
            + slice_text(sel_s),
            fontsize=7,
        )
    return fig
