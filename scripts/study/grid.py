"""What the config means: the study's cells, seeds and run grid.

Pure functions of the (already validated) config dict; cheap to import, so
the Snakefile can use them at parse time without numpy-heavy work.
"""

from __future__ import annotations

import itertools

from .units import eta_effective, lam_effective

# Coordinates of one training batch (a cell), in the order of the flattened runs;
# method first, so the RVSCGD runs come first and in the order of a study without baselines.
RUN_DIMS = ("method", "penalty", "lam", "beta", "eta", "ste", "normalise")
# The baselines (grid.method other than rvscgd) are trained on this slice only:
# the figure compares them there, and the rest of the grid would cost runs for nothing.
BASELINE_SLICE = {"normalise": True, "ste": "relu"}
MODES = ("population", "empirical")


def teacher_sparsity(config: dict, n: int) -> int:
    """Nonzeros s of w* for dimension n: a count (int >= 1) or a fraction of n (0 < x < 1)."""
    value = config["teacher"]["sparsity"]
    s = max(1, round(value * n)) if isinstance(value, float) and value < 1 else int(value)
    if s > n:
        raise ValueError(f"teacher.sparsity={value!r} gives s={s} > n={n}: s must be <= n")
    return s


def run_coords(config: dict) -> dict:
    """The run grid's coordinate values, in RUN_DIMS order."""
    return {"method": list(config["grid"].get("method", ["rvscgd"])), **coords_of(config["grid"])}


def is_trained(run: dict) -> bool:
    """Whether a run of ``run_table`` is trained: every RVSCGD run, the
    baselines on ``BASELINE_SLICE`` only (elsewhere their variables are NaN)."""
    return run["method"] == "rvscgd" or all(run[d] == v for d, v in BASELINE_SLICE.items())


def engine_key(config: dict, run: dict, k: int) -> tuple:
    """What the engine's dynamics depend on for this run: runs with equal keys
    are the same run and are trained once (prox_cgd ignores beta, and the
    penalty at lambda 0; iht and prune ignore penalty, lambda and beta)."""
    m = run["method"]
    if m == "rvscgd":
        return (m, run["penalty"], run["lam"], run["beta"], run["eta"], run["ste"], run["normalise"])
    common = (eta_effective(config, run, k), run["ste"], run["normalise"])
    if m == "prox_cgd":
        lam = lam_effective(config, run["lam"], k, run["penalty"], run["beta"])
        return (m, run["penalty"] if lam > 0 else None, lam, *common)
    return (m, *common)


def coords_of(g: dict) -> dict:
    """Coordinate values of a run grid block (``grid`` or ``two_layer.grid``), in RUN_DIMS order."""
    return {
        "penalty": list(g["penalty"]),
        "lam": [float(x) for x in g["lam"]],
        "beta": [float(x) for x in g["beta"]],
        "eta": [float(x) for x in g["eta"]],
        "ste": list(g["ste"]),
        "normalise": [bool(x) for x in g["normalise"]],
    }


def run_table(config: dict):
    """All runs of one cell's grid, as a list of dicts (C order over RUN_DIMS;
    ``is_trained`` tells which are trained)."""
    coords = run_coords(config)
    return [dict(zip(RUN_DIMS, values, strict=True)) for values in itertools.product(*coords.values())]


def trained_runs(config: dict, k: int) -> tuple[list, list]:
    """The runs a cell's batch trains and where each grid run finds its result.

    Returns ``(unique, take)``: ``unique`` the distinct trained runs (dicts of
    ``run_table``, the first of each ``engine_key``), ``take[i]`` the index
    into ``unique`` of grid run i, or -1 where it is not trained.
    """
    unique, where, take = [], {}, []
    for run in run_table(config):
        if not is_trained(run):
            take.append(-1)
            continue
        key = engine_key(config, run, k)
        if key not in where:
            where[key] = len(unique)
            unique.append(run)
        take.append(where[key])
    return unique, take


def cells(config: dict, mode: str) -> list[dict]:
    """Training cells of a mode: one job each, every run of the grid (and,
    in empirical mode, every batch size) batched inside. A new seed or
    dimension adds cells; it never invalidates the existing ones."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not config[mode]["enabled"]:
        return []
    return [
        {"mode": mode, "n": n, "k": k, "seed": seed}
        for n in config["dims"]["n"]
        for k in config["dims"]["k"]
        for seed in config["seeds"]
    ]


def block_cells(config: dict, block: str) -> list[dict]:
    """Cells (n, k, seed) of an experiment with a config block of its own
    (``two_layer``, ``basins``: its ``n``, ``k`` and ``seeds``), one training
    job each; [] when it is disabled."""
    c = config.get(block, {})
    if not c.get("enabled", False):
        return []
    return [{"n": n, "k": k, "seed": seed} for n in c["n"] for k in c["k"] for seed in c["seeds"]]
