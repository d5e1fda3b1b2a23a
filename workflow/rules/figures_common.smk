# ---- figure helpers (the rules are in figures.smk) --------------------------
# The figures and what each uses: scripts/study/figures/registry.py; what each
# shows and which config keys steer it: docs/figures.md. A figure's rule reads
# its datasets, its own module, the shared modules it imports and the style
# (restyling re-renders every figure, editing a figure only that one, editing a
# shared module the figures that use it) and gets its block of config["figures"].

from study.figures.registry import (
    FIGURES,
    figure_params as _figure_params,
    modules,
)  # noqa: E402

# Relative to the working directory, as Snakemake records inputs: an absolute
# path would make a moved or copied study look changed and re-render every figure.
STUDY_CODE = Path(os.path.relpath(Path(workflow.basedir).parent / "scripts" / "study"))


SLICE_GRID = {
    "n": lambda: config["dims"]["n"],
    "k": lambda: config["dims"]["k"],
    "beta": lambda: config["grid"]["beta"],
    "eta": lambda: config["grid"]["eta"],
    "ste": lambda: config["grid"]["ste"],
    "normalise": lambda: config["grid"]["normalise"],
    "batch_size": lambda: (
        config["empirical"]["batch_size"]
        if config["empirical"]["sampling"] == "fresh"
        else [config["empirical"]["train_size"]]
    ),
}


def figure_params(name):
    """The figure's block of config["figures"] (study.figures.registry.figure_params)."""
    return _figure_params(config["figures"], name)


def _check_figure_config():
    """Slice values, lambdas and penalties must be on the grid: fail at parse
    time, before any training, naming the key."""
    for name in FIGURES:
        if not config["figures"][name]["enabled"]:
            continue
        params = figure_params(name)
        for dim, value in params.get("slice", {}).items():
            grid = SLICE_GRID[dim]()
            if not any(value == g for g in grid):
                raise ValueError(
                    f"figures.{name}.slice.{dim} (or figures.slice.{dim}) = {value!r} is not on the grid {grid}"
                )
        lam = params.get("lam")
        for value in lam if isinstance(lam, list) else [] if lam is None else [lam]:
            if not any(value == g for g in config["grid"]["lam"]):
                raise ValueError(
                    f"figures.{name}.lam = {value!r} is not in grid.lam {config['grid']['lam']}"
                )
        if name != "multiple_limits":
            for p in params.get("penalties") or []:
                if p not in config["grid"]["penalty"]:
                    raise ValueError(
                        f"figures.{name}.penalties: {p!r} is not in grid.penalty"
                    )
        mode = params.get("mode")
        if mode is not None and not config[mode]["enabled"]:
            raise ValueError(
                f"figures.{name}.mode = {mode!r} but {mode}.enabled is false"
            )


try:
    _check_figure_config()
except ValueError as err:
    raise WorkflowError(f"Invalid config: {err}") from None


def figure_datasets(name):
    """The datasets a figure reads: the one of its `mode` if set, else those of
    its registry entry that the config enables."""
    mode = config["figures"][name].get("mode")
    names = (
        [mode] if mode else [d for d in FIGURES[name].datasets if d in enabled_modes()]
    )
    return [f"{RESULTS}/datasets/{d}.nc" for d in names]


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
        if config["figures"][name]["enabled"]
        for ext in ("png", "pdf")
    ]
