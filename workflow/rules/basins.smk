# The basin study (config basins, docs/basins.md): many starts per teacher on a
# slice of the grid; its own cells and dataset, independent of the other stages.


rule train_basins:
    input:
        code=job_code("train_basins.py"),
    output:
        f"{RESULTS}/basins/train/{CELL}.nc",
    log:
        f"{LOGS}/basins/train/{CELL}.log",
    benchmark:
        f"{BENCH}/basins/train/{CELL}.tsv"
    group:
        "train"
    conda:
        "../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        depends_on=lambda wc: canonical(
            config["seed"],
            config["teacher"],
            config["grid"]["lam_units"],
            config["grid"]["tl1_a"],
            config["basins"],
            {m: config[m] for m in config["basins"]["modes"]},
            config["limit"],
        ),
    script:
        "../../scripts/train_basins.py"


rule aggregate_basins:
    input:
        train=lambda wc: basin_train_files(),
        code=job_code("aggregate_basins.py"),
    output:
        f"{RESULTS}/datasets/basins.nc",
    log:
        f"{LOGS}/aggregate/basins.log",
    benchmark:
        f"{BENCH}/aggregate/basins.tsv"
    localrule: True
    conda:
        "../envs/study.yaml"
    script:
        "../../scripts/aggregate_basins.py"
