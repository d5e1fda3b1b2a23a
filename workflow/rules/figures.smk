# ---- figures: one rule per figure, PNG + PDF, each in the report -----------
# Helpers and the figure list: figures_common.smk; what each figure shows: docs/figures.md.


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
