# ---- gaussian: the one-layer Gaussian grid (study.experiments.gaussian) ------
# prepare_gaussian (one job per (n, k, seed) cell: teacher, start, predicted
# limits) -> train_gaussian (one job per mode and cell: the cell's whole run
# grid) -> aggregate_gaussian (one dataset per mode: results/datasets/{mode}.nc,
# a mode being population or empirical). Hand-written rather than generated
# (experiments.smk): its data stage and its mode wildcard are its own.
GAUSSIAN = f"{RESULTS}/gaussian"


rule prepare_gaussian:
    input:
        code=job_code("prepare.py", "study.experiments.gaussian"),
    output:
        data=f"{GAUSSIAN}/data/{CELL}.nc",
        limits=f"{GAUSSIAN}/limits/{CELL}.nc",
    log:
        f"{LOGS}/prepare_gaussian/{CELL}.log",
    benchmark:
        f"{BENCH}/prepare_gaussian/{CELL}.tsv"
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


rule train_gaussian:
    input:
        data=f"{GAUSSIAN}/data/{CELL}.nc",
        limits=f"{GAUSSIAN}/limits/{CELL}.nc",
        code=job_code("train.py", "study.experiments.gaussian"),
    output:
        f"{GAUSSIAN}/train/{{mode}}/{CELL}.nc",
    log:
        f"{LOGS}/train_gaussian/{{mode}}/{CELL}.log",
    benchmark:
        f"{BENCH}/train_gaussian/{{mode}}/{CELL}.tsv"
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
        # a mode's settings: changing one retrains only that mode
        depends_on=lambda wc: canonical(
            config["grid"], config[wc.mode], config["trace_points"]
        ),
    script:
        "../../scripts/train.py"


rule aggregate_gaussian:
    input:
        train=lambda wc: cell_paths(
            f"{GAUSSIAN}/train/{wc.mode}", cells(config, wc.mode)
        ),
        data=lambda wc: cell_paths(f"{GAUSSIAN}/data", cells(config, wc.mode)),
        limits=lambda wc: cell_paths(f"{GAUSSIAN}/limits", cells(config, wc.mode)),
        code=job_code("aggregate.py", "study.experiments.gaussian"),
    output:
        f"{RESULTS}/datasets/{{mode}}.nc",
    log:
        f"{LOGS}/aggregate_gaussian/{{mode}}.log",
    benchmark:
        f"{BENCH}/aggregate_gaussian/{{mode}}.tsv"
    localrule: True
    conda:
        "../envs/study.yaml"
    # Measured peaks (max_rss) on config/paper.yaml with 20 seeds: empirical 3.0 GB,
    # population 1.4 GB; they grow with the seeds (docs/performance.md).
    resources:
        mem_mb=4000,
    params:
        experiment="gaussian",
        dataset=lambda wc: wc.mode,
    script:
        "../../scripts/aggregate.py"
