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
        # Measured peaks (max_rss): 0.6 GB at most on the paper study, with 4 seeds as with 20
        # (a figure reads the datasets lazily, a slice at a time).
        resources:
            mem_mb=1500,
            runtime=10,
        params:
            name=_name,
            figure=figure_params(_name),
            dpi=config["figures"]["dpi"],
        script:
            "../../scripts/plot_figure.py"
