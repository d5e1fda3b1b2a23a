# The two-layer model (config two_layer, docs/two_layer.md): its own cells,
# independent of the one-layer stages.


rule train_two_layer:
    input:
        code=job_code("train_two_layer.py"),
    output:
        f"{RESULTS}/two_layer/train/{CELL}.nc",
    log:
        f"{LOGS}/two_layer/train/{CELL}.log",
    benchmark:
        f"{BENCH}/two_layer/train/{CELL}.tsv"
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
            config["two_layer"],
            config["trace_points"],
        ),
    script:
        "../../scripts/train_two_layer.py"


rule aggregate_two_layer:
    input:
        train=lambda wc: two_layer_train_files(),
        code=job_code("aggregate_two_layer.py"),
    output:
        f"{RESULTS}/datasets/two_layer.nc",
    log:
        f"{LOGS}/aggregate/two_layer.log",
    benchmark:
        f"{BENCH}/aggregate/two_layer.tsv"
    localrule: True
    conda:
        "../envs/study.yaml"
    script:
        "../../scripts/aggregate_two_layer.py"
