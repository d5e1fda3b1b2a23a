"""The whole study in one process, without Snakemake or files: for tests,
notebooks and figure development on small configs."""

from __future__ import annotations

import xarray as xr

from . import basins, digits, two_layer
from .aggregate import cell_dataset, combine
from .cells import make_data_cell, predict_limits_cell, train_cell
from .config import load_files
from .grid import MODES, cells


def build_datasets(config: dict) -> dict[str, xr.Dataset]:
    """{mode: aggregated dataset} for every enabled mode of a config that passed
    the gate (``load_config``: checked, defaults filled in), and "two_layer",
    "basins" and "digits" if enabled, exactly as the workflow's aggregate rules
    make them."""
    out = {}
    cache = {}
    for mode in MODES:
        parts = []
        for c in cells(config, mode):
            key = (c["n"], c["k"], c["seed"])
            if key not in cache:
                data = make_data_cell(config, *key)
                cache[key] = (data, predict_limits_cell(config, data))
            data, limits = cache[key]
            tol = config["limit"]["match_tol"][mode]
            parts.append(cell_dataset(train_cell(config, mode, data, limits), data, limits, mode, tol))
        if parts:
            out[mode] = combine(parts, config, mode)
    two = [two_layer.train_cell(config, c["n"], c["k"], c["seed"]) for c in two_layer.cells(config)]
    if two:
        out["two_layer"] = two_layer.combine(two, config)
    parts = [basins.train_cell(config, c["n"], c["k"], c["seed"]) for c in basins.cells(config)]
    if parts:
        out["basins"] = basins.combine(parts, config)
    if config["digits"]["enabled"]:
        out["digits"] = build_digits(config)
    return out


def build_digits(config: dict) -> xr.Dataset:
    """The digits dataset (rules digits_data, digits_train, aggregate_digits) in-process."""
    from sklearn.datasets import load_digits  # bundled images, no download; only the digits part needs it

    bundled = load_digits()
    data = digits.make_data(config, bundled.images, bundled.target)
    parts = [digits.train_cell(config, data.sel(seed=s)) for s in config["digits"]["seeds"]]
    return digits.combine(parts, config, {"train": data.sizes["train_item"], "test": data.sizes["test_item"]})


def load_config(*paths) -> dict:
    """Read config files safely and pass them through the config gate
    (``study.config.load``: the workflow's own checks, defaults filled in).

    Raises ``study.config.ConfigError`` for a config the workflow refuses.
    """
    return load_files(paths)
