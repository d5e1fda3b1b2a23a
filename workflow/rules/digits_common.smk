# ---- digits helpers (the rules are in digits.smk) ----------------------------
# Intermediates in a folder of their own, apart from the Gaussian cells'.
DIGITS_DATA = f"{RESULTS}/digits/data.nc"
DIGITS_TRAIN = f"{RESULTS}/digits/train/seed{{seed}}.nc"


def digits_train_files():
    return [DIGITS_TRAIN.format(seed=s) for s in config["digits"]["seeds"]]


def digits_data_params():
    """What the split depends on (the training keys do not re-split)."""
    d = config["digits"]
    return canonical(config["seed"], d["seeds"], d["test_fraction"])
