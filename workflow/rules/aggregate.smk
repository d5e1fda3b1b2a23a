rule aggregate:
    input:
        train=lambda wc: train_files(wc.mode),
        data=lambda wc: cell_files(wc.mode, "data"),
        limits=lambda wc: cell_files(wc.mode, "limits"),
        code=job_code("aggregate.py", "study.experiments.gaussian"),
    output:
        f"{RESULTS}/datasets/{{mode}}.nc",
    log:
        f"{LOGS}/aggregate/{{mode}}.log",
    benchmark:
        f"{BENCH}/aggregate/{{mode}}.tsv"
    localrule: True
    conda:
        "../envs/study.yaml"
    params:
        experiment="gaussian",
        dataset=lambda wc: wc.mode,
    script:
        "../../scripts/aggregate.py"
