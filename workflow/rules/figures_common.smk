# ---- figure helpers (the rules are in figures.smk) --------------------------
# The figures and what each uses: scripts/study/figures/registry.py; what each
# shows and which config keys steer it: docs/figures.md. A figure's rule reads
# its datasets, its own module, the shared modules it imports and the style
# (restyling re-renders every figure, editing a figure only that one, editing a
# shared module the figures that use it) and gets its block of config["figures"].

from study.figures.registry import FIGURES, modules  # noqa: E402

# Relative to the working directory, as Snakemake records inputs: an absolute
# path would make a moved or copied study look changed and re-render every figure.
STUDY_CODE = Path(os.path.relpath(Path(workflow.basedir).parent / "scripts" / "study"))


def figure_params(name):
    """The figure's block of config["figures"] (study.config.figure_params); the
    config gate (common.smk) has checked its slice, lambdas and penalties."""
    return study_config.figure_params(config["figures"], name)


def figure_datasets(name):
    """The datasets a figure reads: the one of its `mode` if set, else those of
    its registry entry that the config enables."""
    mode = config["figures"][name].get("mode")
    if FIGURES[name].datasets == ("two_layer",):
        mode = None  # its `mode` picks traces inside the one two-layer dataset
    names = (
        [mode]
        if mode
        else [d for d in FIGURES[name].datasets if d in available_datasets()]
    )
    return [f"{RESULTS}/datasets/{d}.nc" for d in names]


def available_datasets():
    """The datasets the config makes: its enabled modes, two_layer, basins and digits if enabled."""
    return (
        enabled_modes()
        + (["two_layer"] if two_layer_cells(config) else [])
        + (["basins"] if basin_cells(config) else [])
        + (["digits"] if config["digits"]["enabled"] else [])
    )


def figure_code(name):
    """The code a figure's output depends on: its module, the shared modules it
    imports (registry.modules) and the style."""
    return [str(STUDY_CODE / "figures" / f"{m}.py") for m in modules(name)] + [
        str(STUDY_CODE / "style.py")
    ]


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
