# ---- figures: one rule per figure, PNG + PDF, each in the report -----------
# What each figure shows and which config keys steer it: docs/figures.md.
# Every rule reads the aggregated datasets and the shared style and plotting
# modules (restyling re-renders every figure; editing one plot script
# re-renders only its figure) and gets its block of config["figures"].

STUDY_CODE = Path(workflow.basedir).parent / "scripts" / "study"
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


rule fig_convergence:
    input:
        datasets=figure_datasets("convergence"),
        code=FIGURE_CODE,
    output:
        png=figure_output("convergence", "png"),
        pdf=figure_output("convergence", "pdf"),
    log:
        f"{LOGS}/fig_convergence.log",
    benchmark:
        f"{BENCH}/fig_convergence.tsv"
    localrule: True
    conda:
        "../envs/study.yaml"
    resources:
        mem_mb=1500,
        runtime=10,
    params:
        figure=figure_params("convergence"),
        dpi=config["figures"]["dpi"],
    script:
        "../../scripts/plot_convergence.py"


rule fig_limit_distance:
    input:
        datasets=figure_datasets("limit_distance"),
        code=FIGURE_CODE,
    output:
        png=figure_output("limit_distance", "png"),
        pdf=figure_output("limit_distance", "pdf"),
    log:
        f"{LOGS}/fig_limit_distance.log",
    benchmark:
        f"{BENCH}/fig_limit_distance.tsv"
    localrule: True
    conda:
        "../envs/study.yaml"
    resources:
        mem_mb=1500,
        runtime=10,
    params:
        figure=figure_params("limit_distance"),
        dpi=config["figures"]["dpi"],
    script:
        "../../scripts/plot_limit_distance.py"


rule fig_limit_prediction:
    input:
        datasets=figure_datasets("limit_prediction"),
        code=FIGURE_CODE,
    output:
        png=figure_output("limit_prediction", "png"),
        pdf=figure_output("limit_prediction", "pdf"),
    log:
        f"{LOGS}/fig_limit_prediction.log",
    benchmark:
        f"{BENCH}/fig_limit_prediction.tsv"
    localrule: True
    conda:
        "../envs/study.yaml"
    resources:
        mem_mb=1500,
        runtime=10,
    params:
        figure=figure_params("limit_prediction"),
        dpi=config["figures"]["dpi"],
    script:
        "../../scripts/plot_limit_prediction.py"


rule fig_sparsity_accuracy:
    input:
        datasets=figure_datasets("sparsity_accuracy"),
        code=FIGURE_CODE,
    output:
        png=figure_output("sparsity_accuracy", "png"),
        pdf=figure_output("sparsity_accuracy", "pdf"),
    log:
        f"{LOGS}/fig_sparsity_accuracy.log",
    benchmark:
        f"{BENCH}/fig_sparsity_accuracy.tsv"
    localrule: True
    conda:
        "../envs/study.yaml"
    resources:
        mem_mb=1500,
        runtime=10,
    params:
        figure=figure_params("sparsity_accuracy"),
        dpi=config["figures"]["dpi"],
    script:
        "../../scripts/plot_sparsity_accuracy.py"


rule fig_tradeoff:
    input:
        datasets=figure_datasets("tradeoff"),
        code=FIGURE_CODE,
    output:
        png=figure_output("tradeoff", "png"),
        pdf=figure_output("tradeoff", "pdf"),
    log:
        f"{LOGS}/fig_tradeoff.log",
    benchmark:
        f"{BENCH}/fig_tradeoff.tsv"
    localrule: True
    conda:
        "../envs/study.yaml"
    resources:
        mem_mb=1500,
        runtime=10,
    params:
        figure=figure_params("tradeoff"),
        dpi=config["figures"]["dpi"],
    script:
        "../../scripts/plot_tradeoff.py"


rule fig_support_recovery:
    input:
        datasets=figure_datasets("support_recovery"),
        code=FIGURE_CODE,
    output:
        png=figure_output("support_recovery", "png"),
        pdf=figure_output("support_recovery", "pdf"),
    log:
        f"{LOGS}/fig_support_recovery.log",
    benchmark:
        f"{BENCH}/fig_support_recovery.tsv"
    localrule: True
    conda:
        "../envs/study.yaml"
    resources:
        mem_mb=1500,
        runtime=10,
    params:
        figure=figure_params("support_recovery"),
        dpi=config["figures"]["dpi"],
    script:
        "../../scripts/plot_support_recovery.py"


rule fig_multiple_limits:
    input:
        datasets=figure_datasets("multiple_limits"),
        code=FIGURE_CODE,
    output:
        png=figure_output("multiple_limits", "png"),
        pdf=figure_output("multiple_limits", "pdf"),
    log:
        f"{LOGS}/fig_multiple_limits.log",
    benchmark:
        f"{BENCH}/fig_multiple_limits.tsv"
    localrule: True
    conda:
        "../envs/study.yaml"
    resources:
        mem_mb=1500,
        runtime=10,
    params:
        figure=figure_params("multiple_limits"),
        dpi=config["figures"]["dpi"],
    script:
        "../../scripts/plot_multiple_limits.py"


rule fig_ste:
    input:
        datasets=figure_datasets("ste"),
        code=FIGURE_CODE,
    output:
        png=figure_output("ste", "png"),
        pdf=figure_output("ste", "pdf"),
    log:
        f"{LOGS}/fig_ste.log",
    benchmark:
        f"{BENCH}/fig_ste.tsv"
    localrule: True
    conda:
        "../envs/study.yaml"
    resources:
        mem_mb=1500,
        runtime=10,
    params:
        figure=figure_params("ste"),
        dpi=config["figures"]["dpi"],
    script:
        "../../scripts/plot_ste.py"


rule fig_scaling:
    input:
        datasets=figure_datasets("scaling"),
        code=FIGURE_CODE,
    output:
        png=figure_output("scaling", "png"),
        pdf=figure_output("scaling", "pdf"),
    log:
        f"{LOGS}/fig_scaling.log",
    benchmark:
        f"{BENCH}/fig_scaling.tsv"
    localrule: True
    conda:
        "../envs/study.yaml"
    resources:
        mem_mb=1500,
        runtime=10,
    params:
        figure=figure_params("scaling"),
        dpi=config["figures"]["dpi"],
    script:
        "../../scripts/plot_scaling.py"


rule fig_normalisation:
    input:
        datasets=figure_datasets("normalisation"),
        code=FIGURE_CODE,
    output:
        png=figure_output("normalisation", "png"),
        pdf=figure_output("normalisation", "pdf"),
    log:
        f"{LOGS}/fig_normalisation.log",
    benchmark:
        f"{BENCH}/fig_normalisation.tsv"
    localrule: True
    conda:
        "../envs/study.yaml"
    resources:
        mem_mb=1500,
        runtime=10,
    params:
        figure=figure_params("normalisation"),
        dpi=config["figures"]["dpi"],
    script:
        "../../scripts/plot_normalisation.py"
