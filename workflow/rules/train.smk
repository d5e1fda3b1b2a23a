rule train:
    input:
        data=f"{RESULTS}/data/{CELL}.nc",
        limits=f"{RESULTS}/limits/{CELL}.nc",
        code=job_code("train.py", "study.experiments.gaussian"),
    output:
        f"{RESULTS}/train/{{mode}}/{CELL}.nc",
    log:
        f"{LOGS}/train/{{mode}}/{CELL}.log",
    benchmark:
        f"{BENCH}/train/{{mode}}/{CELL}.tsv"
    group:
        "train"
    conda:
        "../envs/study.yaml"
    threads: 1
    # Measured per job: at most 61 s and 160 MB on config/config.yaml; the
    # heaviest cell of config/paper.yaml (empirical, n=256, k=16) 260 s of CPU
    # and 200 MB. 30 min leaves about 7x headroom for slow nodes.
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        experiment="gaussian",
        depends_on=train_params,
    script:
        "../../scripts/train.py"
