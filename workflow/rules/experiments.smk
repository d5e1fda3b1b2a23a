# ---- experiments with cells of their own (study.experiments.CELL_BLOCKS) ------
# Generated from the experiment registry: for each, one training job per
# (n, k, seed) cell of its config block and one dataset. What each is:
# docs/two_layer.md, docs/basins.md. Independent of the one-layer stages.


for _name in experiments.CELL_BLOCKS:

    rule:
        name:
            f"train_{_name}"
        input:
            code=job_code("train.py", f"study.experiments.{_name}"),
        output:
            f"{RESULTS}/{_name}/train/{CELL}.nc",
        log:
            f"{LOGS}/{_name}/train/{CELL}.log",
        benchmark:
            f"{BENCH}/{_name}/train/{CELL}.tsv"
        group:
            "train"
        conda:
            "../envs/study.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=30,
        params:
            experiment=_name,
            depends_on=canonical(*experiments.DEPENDS_ON[_name](config)),
        script:
            "../../scripts/train.py"

    rule:
        name:
            f"aggregate_{_name}"
        input:
            train=block_train_files(_name),
            code=job_code("aggregate.py", f"study.experiments.{_name}"),
        output:
            f"{RESULTS}/datasets/{_name}.nc",
        log:
            f"{LOGS}/aggregate/{_name}.log",
        benchmark:
            f"{BENCH}/aggregate/{_name}.tsv"
        localrule: True
        conda:
            "../envs/study.yaml"
        params:
            experiment=_name,
            dataset=_name,
        script:
            "../../scripts/aggregate.py"
