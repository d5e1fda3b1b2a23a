rule make_data:
    output:
        f"{RESULTS}/data/{CELL}.nc",
    log:
        f"{LOGS}/make_data/{CELL}.log",
    benchmark:
        f"{BENCH}/make_data/{CELL}.tsv"
    params:
        teacher=config["teacher"],
        seed=config["seed"],
    localrule: True
    script:
        "../../scripts/make_data.py"


rule predict_limits:
    input:
        data=f"{RESULTS}/data/{CELL}.nc",
    output:
        f"{RESULTS}/limits/{CELL}.nc",
    log:
        f"{LOGS}/predict_limits/{CELL}.log",
    benchmark:
        f"{BENCH}/predict_limits/{CELL}.tsv"
    params:
        grid=config["grid"],
        limit=config["limit"],
    script:
        "../../scripts/predict_limits.py"
