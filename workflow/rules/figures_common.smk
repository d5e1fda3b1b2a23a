# ---- figure helpers (the rules are in figures.smk) --------------------------
# What each figure shows and which config keys steer it: docs/figures.md.
# Every rule reads the aggregated datasets and the shared style and plotting
# modules (restyling re-renders every figure; editing one plot script
# re-renders only its figure) and gets its block of config["figures"].

# Relative to the working directory, as Snakemake records inputs: an absolute
# path would make a moved or copied study look changed and re-render every figure.
STUDY_CODE = Path(os.path.relpath(Path(workflow.basedir).parent / "scripts" / "study"))
FIGURE_CODE = [str(STUDY_CODE / "style.py"), str(STUDY_CODE / "figures.py")]

# name: (report category, report subcategory); the order is the report's.
FIGURES = {
    "convergence": ("1. Convergence", "Angles to w* versus step"),
    "limit_distance": ("2. The limit", "Distance to the predicted limit"),
    "limit_prediction": ("2. The limit", "Predicted versus measured limit"),
    "sparsity_accuracy": (
        "3. Sparsity and accuracy",
        "Sparsity and error versus lambda",
    ),
    "tradeoff": ("3. Sparsity and accuracy", "Error at matched sparsity"),
    "support_recovery": ("4. Support recovery", "Exact support recovery"),
    "multiple_limits": ("5. Multiple limits", "Distinct fixed points"),
    "ste": ("6. Straight-through estimators", "Loss per STE"),
    "scaling": ("7. Scaling", "Steps to converge versus n and k"),
    "normalisation": ("8. Normalisation ablation", "With and without normalisation"),
}
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
    """The figure's block of config["figures"] without `enabled`; its slice is
    figures.slice overridden by the figure's own non-null slice keys. Same as
    study.figures.figure_params, repeated so parsing does not import matplotlib."""
    figs = config["figures"]
    params = {key: value for key, value in figs[name].items() if key != "enabled"}
    if "slice" in params:
        merged = {k: v for k, v in figs["slice"].items() if v is not None}
        merged.update({k: v for k, v in params["slice"].items() if v is not None})
        params["slice"] = dict(sorted(merged.items()))
    return dict(sorted(params.items()))  # key order of the YAML never reruns a figure


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
    """The datasets a figure reads: the one of its `mode` if set, else every enabled mode's."""
    mode = config["figures"][name].get("mode")
    modes = [mode] if mode else enabled_modes()
    return [f"{RESULTS}/datasets/{m}.nc" for m in modes]


def figure_output(name, ext):
    category, subcategory = FIGURES[name]
    return report(
        f"{RESULTS}/figures/{name}.{ext}",
        caption=f"../report/{name}.rst",
        category=category,
        subcategory=subcategory,
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
