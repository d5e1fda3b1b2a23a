# ---- digits: sparse-filter binary networks on the bundled 8x8 digits (issue 12) ----
# prepare_digits (every seed's split, standardised, cached) -> train_digits
# (one job per seed: the whole penalty x lam x ste grid and the baselines
# batched) -> aggregate_digits (one dataset) -> figure (rule fig_digits,
# generated in figures.smk from the figures registry). Hand-written rather
# than generated (experiments.smk): its cells are seeds, not (n, k, seed).
# What the figure shows: docs/figures.md, section digits.
DIGITS_DATA = f"{RESULTS}/digits/data.nc"
DIGITS_TRAIN = f"{RESULTS}/digits/train/seed{{seed}}.nc"


rule prepare_digits:
    input:
        code=job_code("prepare.py", "study.experiments.digits"),
    output:
        data=DIGITS_DATA,
    log:
        f"{LOGS}/prepare_digits/data.log",
    benchmark:
        f"{BENCH}/prepare_digits/data.tsv"
    conda:
        "../envs/study.yaml"
    resources:
        mem_mb=600,
        runtime=10,
    params:
        experiment="digits",
        # what the split depends on (the training keys do not re-split)
        depends_on=canonical(
            config["seed"],
            config["digits"]["seeds"],
            config["digits"]["test_fraction"],
        ),
    script:
        "../../scripts/prepare.py"


rule train_digits:
    input:
        data=DIGITS_DATA,
        code=job_code("train.py", "study.experiments.digits"),
    output:
        DIGITS_TRAIN,
    log:
        f"{LOGS}/train_digits/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/train_digits/seed{{seed}}.tsv"
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
        train=[DIGITS_TRAIN.format(seed=s) for s in config["digits"]["seeds"]],
        code=job_code("aggregate.py", "study.experiments.digits"),
    output:
        f"{RESULTS}/datasets/digits.nc",
    log:
        f"{LOGS}/aggregate_digits/digits.log",
    benchmark:
        f"{BENCH}/aggregate_digits/digits.tsv"
    localrule: True
    conda:
        "../envs/study.yaml"
    params:
        experiment="digits",
        dataset="digits",
    script:
        "../../scripts/aggregate.py"
