# ---- figures: one rule per registered figure, PNG + PDF, each in the report --
# Generated from scripts/study/figures/registry.py (helpers: figures_common.smk;
# what each figure shows: docs/figures.md). One glue script draws them all.


for _name in FIGURES:

    rule:
        name:
            f"fig_{_name}"
        input:
            datasets=figure_datasets(_name),
            code=figure_code(_name),
        output:
            png=figure_output(_name, "png"),
            pdf=figure_output(_name, "pdf"),
        log:
            f"{LOGS}/fig_{_name}.log",
        benchmark:
            f"{BENCH}/fig_{_name}.tsv"
        localrule: True
        conda:
            "../envs/study.yaml"
        resources:
            mem_mb=1500,
            runtime=10,
        params:
            name=_name,
            figure=figure_params(_name),
            dpi=config["figures"]["dpi"],
        script:
            "../../scripts/plot_figure.py"
