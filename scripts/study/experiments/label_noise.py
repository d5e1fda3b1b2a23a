"""The label-noise experiment (config block ``label_noise``, docs/theory.md
section 9): the noise floor of ||w^t - w_bar|| against the label-noise level
sigma (``y = f(Z; w*) + sigma N(0, 1)``) and the batch size B, on a slice of
the one-layer grid. No file I/O here. The experiment contract:
``study.experiments``.

A cell is (n, k, seed); its teacher w*, start w0 and input stream are the
one-layer cell's of the same coordinates (same seed keys). Its runs are the
one-layer experiment's empirical runs (``gaussian.train_cell``, fresh
minibatches, the method itself: RVSCGD, relu STE, normalised) on the block's
grid, each sigma on the same inputs and noise draws, so sigma = 0 is the
noise-free run. Only the noise_floor figure reads it: a slice, not the grid,
because every sigma multiplies the empirical training.
"""

from __future__ import annotations

import copy
import time

import xarray as xr

from ..grid import block_cells
from ..seeds import PURPOSE as PURPOSE
from . import gaussian
from .label_noise_checks import EMPIRICAL_KEYS

LABEL = "label-noise"  # in study.plan's job count
REQUIRED = {"train": (("dist_wbar", "status", "floor_mean_sq"), ("step", "batch_size"))}
prepare = None


def cells(config: dict) -> list[dict]:
    """The cells (n, k, seed) of the label-noise slice, one training job each."""
    return block_cells(config, "label_noise")


def as_grid(config: dict) -> dict:
    """The config the one-layer code trains the slice with: the block's cells,
    grid and batch sizes in place of the main grid's, the method itself."""
    c = config["label_noise"]
    out = copy.deepcopy(config)
    out["dims"] = {"n": list(c["n"]), "k": list(c["k"])}
    out["seeds"] = list(c["seeds"])
    out["grid"].update(
        method=["rvscgd"],
        penalty=list(c["grid"]["penalty"]),
        lam=list(c["grid"]["lam"]),
        beta=list(c["grid"]["beta"]),
        eta=list(c["grid"]["eta"]),
        ste=["relu"],
        normalise=[True],
    )
    out["empirical"] = {
        **{key: config["empirical"][key] for key in EMPIRICAL_KEYS},
        "enabled": True,
        "sampling": "fresh",
        "batch_size": list(c["batch_size"]),
        "train_size": None,  # fresh minibatches: no training set
    }
    return out


def train_cell(config: dict, n: int, k: int, seed: int, threads: int = 1) -> xr.Dataset:
    """Every run of the slice on one cell, at every sigma and B, joined with
    the cell's fixed points and the match (``gaussian.cell_dataset``)."""
    grid = as_grid(config)
    data = gaussian.make_data_cell(grid, n, k, seed)
    limits = gaussian.predict_limits_cell(grid, data)
    sigmas = [float(s) for s in config["label_noise"]["sigma"]]
    train = gaussian.train_cell(grid, "empirical", data, limits, threads=threads, label_noise=sigmas)
    return gaussian.cell_dataset(train, data, limits, "empirical", **gaussian.match_args(grid, "empirical"))


def combine(parts: list[xr.Dataset], config: dict) -> xr.Dataset:
    """Stack the cells along n, k, seed (``gaussian.combine`` on the slice's grid)."""
    ds = gaussian.combine(parts, as_grid(config), "empirical")
    ds["label_noise"].attrs.update(long_name="label noise sigma: y = f(Z; w*) + sigma N(0, 1)", units="1")
    ds.attrs.update(title="RVSCGD study, the noise floor against label noise (empirical mode)")
    return ds


def train(config: dict, wildcards: dict, inputs: dict, threads: int = 1) -> tuple[xr.Dataset, list[str]]:
    """Every run of the slice on one (n, k, seed) cell (rule train_label_noise)."""
    n, k, seed = (int(wildcards[d]) for d in ("n", "k", "seed"))
    ds = train_cell(config, n, k, seed, threads=threads)
    return ds, [f"label_noise n={n} k={k} seed={seed}: {int(ds['status'].size)} runs"]


def aggregate(config: dict, dataset: str, inputs: dict) -> tuple[xr.Dataset, list[str]]:
    """One labelled dataset of every label-noise cell (rule aggregate_label_noise)."""
    parts = list(inputs["train"])
    ds = combine(parts, config)
    return ds, [f"label_noise: {len(parts)} cells, dims {dict(ds.sizes)}"]


def plan(config: dict, fraction: float, compare_direct: bool = False) -> dict:
    """Predicted core-seconds of the slice (0 if disabled): its first cell
    timed whole (a slice is small: no extrapolation in steps), times the cells."""
    todo = cells(config)
    if not todo:
        return {"core_s": 0.0}
    c = config["label_noise"]
    total = 0.0
    for n in c["n"]:
        for k in c["k"]:
            t0 = time.process_time()
            train_cell(config, n, k, c["seeds"][0])
            cell_s = time.process_time() - t0
            total += cell_s * len(c["seeds"])
            print(
                f"label_noise n={n:4d} k={k:3d}  {cell_s:8.1f} s per cell  x{len(c['seeds'])} seeds = "
                f"{cell_s * len(c['seeds']) / 3600:6.2f} core-h",
                flush=True,
            )
    return {"core_s": total, "share": "the label-noise slice"}
