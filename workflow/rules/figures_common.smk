# ---- figure helpers (the rules are in figures.smk) --------------------------
# The figures and what each uses: scripts/study/figures/registry.py; what each
# shows and which config keys steer it: docs/figures.md. A figure's rule reads
# its datasets and the code it runs (figure_code: its own module and what it
# imports, the style included: restyling re-renders every figure, editing a
# figure only that one, editing a shared module the figures that use it) and
# gets its block of config["figures"].

from study.figures.registry import FIGURES  # noqa: E402


def figure_params(name):
    """The figure's block of config["figures"] (study.config.figure_params); the
    config gate (common.smk) has checked its slice, lambdas and penalties."""
    return study_config.figure_params(config["figures"], name)


def figure_datasets(name):
    """The datasets a figure reads: the one of its `mode` if that is one of its
    registry entry's datasets, else those of its entry that the config enables
    (a `mode` that names no dataset of the entry picks traces inside one)."""
    mode = config["figures"][name].get("mode")
    if mode not in FIGURES[name].datasets:
        mode = None
    names = (
        [mode]
        if mode
        else [d for d in FIGURES[name].datasets if d in available_datasets()]
    )
    return [f"{RESULTS}/datasets/{d}.nc" for d in names]


def figure_code(name):
    """The code a figure's output depends on: the drawing script, the figure's
    module and everything they import (the shared figure modules, the style,
    the rvscgd modules that compute theory while drawing): job_code."""
    return job_code("plot_figure.py", f"study.figures.{name}")


def figure_output(name, ext):
    entry = FIGURES[name]
    return report(
        f"{RESULTS}/figures/{name}.{ext}",
        caption=f"../{entry.caption(name)}",
        category=entry.category,
        subcategory=entry.subcategory,
        labels={"figure": name, "format": ext.upper()},
    )


def figures_all():
    """PNG and PDF of every figure the config enables."""
    return [
        f"{RESULTS}/figures/{name}.{ext}"
        for name in FIGURES
        if config["figures"][name]["enabled"] and figure_datasets(name)
        for ext in ("png", "pdf")
    ]
