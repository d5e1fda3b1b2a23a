# ---- experiments with cells of their own (study.experiments.CELL_BLOCKS) ------
# Generated from the experiment registry: for each, one training job per
# (n, k, seed) cell of its config block and one dataset. What each is:
# docs/two_layer.md, docs/basins.md. Independent of the one-layer stages.
# The pattern every experiment's rules follow (gaussian.smk and digits.smk
# by hand): prepare_<name>, train_<name>, aggregate_<name>; intermediates in
# results/<name>/, logs and benchmarks in results/{logs,benchmarks}/<rule>/.


for _name in experiments.CELL_BLOCKS:

    rule:
        name:
            f"train_{_name}"
        input:
            code=job_code("train.py", f"study.experiments.{_name}"),
        output:
            f"{RESULTS}/{_name}/train/{CELL}.nc",
        log:
            f"{LOGS}/train_{_name}/{CELL}.log",
        benchmark:
            f"{BENCH}/train_{_name}/{CELL}.tsv"
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
            f"{LOGS}/aggregate_{_name}/{_name}.log",
        benchmark:
            f"{BENCH}/aggregate_{_name}/{_name}.tsv"
        localrule: True
        conda:
            "../envs/study.yaml"
        params:
            experiment=_name,
            dataset=_name,
        script:
            "../../scripts/aggregate.py"
