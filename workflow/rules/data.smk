rule make_data:
    input:
        code=job_code("prepare.py", "study.experiments.gaussian"),
    output:
        data=f"{RESULTS}/data/{CELL}.nc",
        limits=f"{RESULTS}/limits/{CELL}.nc",
    log:
        f"{LOGS}/make_data/{CELL}.log",
    benchmark:
        f"{BENCH}/make_data/{CELL}.tsv"
    group:
        "train"
    conda:
        "../envs/study.yaml"
    resources:
        mem_mb=500,
        runtime=10,
    params:
        experiment="gaussian",
        depends_on=canonical(
            config["seed"], config["teacher"], config["grid"], config["limit"]
        ),
    script:
        "../../scripts/prepare.py"
