# ---- digits: sparse-filter binary networks on the bundled 8x8 digits (issue 12) ----
# data (every seed's split, standardised, cached) -> one training job per seed
# (the whole penalty x lam x ste grid and the baselines batched) -> one dataset
# -> figure (rule fig_digits, generated in figures.smk from the figures
# registry). What the figure shows: docs/figures.md, section digits.
# Paths and helpers: digits_common.smk.


rule digits_data:
    input:
        code=job_code("prepare.py", "study.experiments.digits"),
    output:
        data=DIGITS_DATA,
    log:
        f"{LOGS}/digits_data.log",
    benchmark:
        f"{BENCH}/digits_data.tsv"
    conda:
        "../envs/study.yaml"
    resources:
        mem_mb=600,
        runtime=10,
    params:
        experiment="digits",
        depends_on=digits_data_params(),
    script:
        "../../scripts/prepare.py"


rule digits_train:
    input:
        data=DIGITS_DATA,
        code=job_code("train.py", "study.experiments.digits"),
    output:
        DIGITS_TRAIN,
    log:
        f"{LOGS}/digits_train/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/digits_train/seed{{seed}}.tsv"
    conda:
        "../envs/study.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        experiment="digits",
        depends_on=canonical(config["seed"], config["digits"]),
    script:
        "../../scripts/train.py"


rule aggregate_digits:
    input:
        data=DIGITS_DATA,
        train=digits_train_files(),
        code=job_code("aggregate.py", "study.experiments.digits"),
    output:
        f"{RESULTS}/datasets/digits.nc",
    log:
        f"{LOGS}/aggregate_digits.log",
    benchmark:
        f"{BENCH}/aggregate_digits.tsv"
    localrule: True
    conda:
        "../envs/study.yaml"
    params:
        experiment="digits",
        dataset="digits",
    script:
        "../../scripts/aggregate.py"
