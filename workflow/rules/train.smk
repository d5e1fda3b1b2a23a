rule train:
    input:
        data=f"{RESULTS}/data/{CELL}.nc",
        limits=f"{RESULTS}/limits/{CELL}.nc",
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
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        depends_on=train_params,
    script:
        "../../scripts/train.py"
