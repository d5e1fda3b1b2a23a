"""The whole study in one process, without Snakemake or files: for tests,
notebooks and figure development on small configs."""

from __future__ import annotations

import xarray as xr

from . import experiments
from .config import load_files


def build_datasets(config: dict) -> dict[str, xr.Dataset]:
    """{dataset: dataset} of every experiment the config enables
    (``study.experiments``: the Gaussian modes, then the others), for a config
    that passed the gate (``load_config``: checked, defaults filled in),
    exactly as the workflow's aggregate rules make them."""
    out = {}
    for name in experiments.NAMES:
        out.update(experiments.build(name, config))
    return out


def load_config(*paths) -> dict:
    """Read config files safely and pass them through the config gate
    (``study.config.load``: the workflow's own checks, defaults filled in).

    Raises ``study.config.ConfigError`` for a config the workflow refuses.
    """
    return load_files(paths)
