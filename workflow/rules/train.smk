def train_params(wildcards):
    """What a training cell depends on: changing one mode's settings retrains only that mode."""
    return {"grid": config["grid"], "settings": config[wildcards.mode], "trace_points": config["trace_points"]}


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
    params:
        settings=train_params,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    group:
        "train"
    script:
        "../../scripts/train.py"
