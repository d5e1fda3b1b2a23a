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


def figure_params(name):
    """The figure's block of config["figures"] without `enabled`, its slice
    merged over figures.slice (the config gate checked it is on the grid)."""
    return study_config.figure_params(config["figures"], name)


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
