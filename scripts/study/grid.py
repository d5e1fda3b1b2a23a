"""What the config means: the study's cells, seeds and run grid.

Pure functions of the (already validated) config dict; cheap to import, so
the Snakefile can use them at parse time without numpy-heavy work.
"""

from __future__ import annotations

import itertools
import math

# Coordinates of one training batch (a cell), in the order of the flattened runs;
# method first, so the RVSCGD runs come first and in the order of a study without baselines.
RUN_DIMS = ("method", "penalty", "lam", "beta", "eta", "ste", "normalise")
# The baselines (grid.method other than rvscgd) are trained on this slice only:
# the figure compares them there, and the rest of the grid would cost runs for nothing.
BASELINE_SLICE = {"normalise": True, "ste": "relu"}
MODES = ("population", "empirical")

# SeedSequence spawn-key purposes: each random object has its own stream.
PURPOSE = {
    "teacher": 0,
    "start": 1,
    "stream": 2,
    "train_set": 3,
    "limit_starts": 4,
    "two_layer_v_star": 5,
    "two_layer_starts": 6,
    "two_layer_stream": 7,
    "basin_starts": 8,
}


def teacher_sparsity(config: dict, n: int) -> int:
    """Nonzeros s of w* for dimension n: a count (int >= 1) or a fraction of n (0 < x < 1)."""
    value = config["teacher"]["sparsity"]
    s = max(1, round(value * n)) if isinstance(value, float) and value < 1 else int(value)
    if s > n:
        raise ValueError(f"teacher.sparsity={value!r} gives s={s} > n={n}: s must be <= n")
    return s


def relu_constant(k: int) -> float:
    """c(k) = 1 / (2 k sqrt(2 pi)), the relu expected-coarse-gradient constant."""
    return 1.0 / (2.0 * k * math.sqrt(2.0 * math.pi))


def lam_from_threshold(theta: float, penalty: str, beta: float, a: float = 1.0) -> float:
    """The lambda whose prox threshold (docs/theory.md section 3) is ``theta``:
    l0 ``sqrt(2 lam/beta)``, l1 ``lam/beta``, TL1 ``(a+1) t/a`` for
    ``t <= a^2/(2(a+1))`` (threshold <= a/2), else ``sqrt(2 t (a+1)) - a/2``."""
    theta = float(theta)
    if penalty == "l0":
        t = theta * theta / 2.0
    elif penalty == "l1":
        t = theta
    elif penalty == "tl1":
        t = a * theta / (a + 1.0) if theta <= a / 2.0 else (theta + a / 2.0) ** 2 / (2.0 * (a + 1.0))
    else:
        raise ValueError(f"penalty must be l0, l1 or tl1, got {penalty!r}")
    return float(beta) * t


def lam_effective(config: dict, lam: float, k: int, penalty: str | None = None, beta: float | None = None) -> float:
    """The lambda the algorithm uses: the configured value (``absolute``), that
    times c(k) (``relative_to_c``), or (``threshold``) the lambda whose prox
    threshold for ``penalty`` and ``beta`` is the configured value, so every
    penalty thresholds at the same magnitude."""
    units = config["grid"]["lam_units"]
    if units == "relative_to_c":
        return lam * relu_constant(k)
    if units == "threshold":
        if penalty is None or beta is None:
            raise ValueError("lam_units 'threshold' needs the penalty and beta of the run (penalty=None or beta=None)")
        return lam_from_threshold(lam, penalty, beta, config["grid"].get("tl1_a", 1.0))
    return float(lam)


def eta_effective(config: dict, run: dict, k: int) -> float:
    """The step size the engine uses: the run's eta, except for iht when
    ``grid.iht_eta`` is set (in units of 1/c(k): hard thresholding needs a
    step near 1/c to change the support)."""
    iht_eta = config["grid"].get("iht_eta")
    if run["method"] == "iht" and iht_eta is not None:
        return float(iht_eta) / relu_constant(k)
    return float(run["eta"])


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


def two_layer_cells(config: dict) -> list[dict]:
    """Cells (n, k, seed) of the two-layer model (config ``two_layer``), one
    training job each; [] when it is disabled."""
    c = config.get("two_layer", {})
    if not c.get("enabled", False):
        return []
    return [{"n": n, "k": k, "seed": seed} for n in c["n"] for k in c["k"] for seed in c["seeds"]]


def basin_cells(config: dict) -> list[dict]:
    """Cells (n, k, seed) of the basin study (config ``basins``), one training
    job each; [] when it is disabled."""
    c = config.get("basins", {})
    if not c.get("enabled", False):
        return []
    return [{"n": n, "k": k, "seed": seed} for n in c["n"] for k in c["k"] for seed in c["seeds"]]


def seed_sequence_key(config: dict, n: int, k: int, seed: int, purpose: str) -> dict:
    """Arguments of numpy.random.SeedSequence for one random object of a cell.

    The key is the cell's coordinates, never the job order, so results do
    not depend on cores, scheduling or which cells exist.
    """
    return {"entropy": int(config["seed"]), "spawn_key": (int(n), int(k), int(seed), PURPOSE[purpose])}
