"""The basin experiment (config block ``basins``, docs/basins.md): many starts per
teacher on a slice of the grid, and how often each reaches the best fixed
point, recovers the support, or ends on a spurious limit. No file I/O here.

A cell is (n, k, seed); its teacher w* is the one-layer cell's of the same
coordinates (same seed key). Every grid point of ``basins.grid`` runs from
each of the cell's starts (``start`` dimension): ``starts.random`` uniform on
the sphere, then ``starts.adversarial`` near -w* (angle to w* uniform in
``adversarial_angle`` times pi), labelled by ``start_kind``. All runs of a
cell and setting advance together in one engine call, so in empirical mode
they share the cell's input stream (common random numbers). RVSCGD as the
method: relu STE, normalisation on (the setting of the fixed-point theory).

Which fixed point a run reached is decided by matching its final state to the
enumerated fixed points (``study.matching.match_runs``, the study's one
definition); support recovery by ``study.matching.support_metrics``.
"""

from __future__ import annotations

import copy
import itertools
import time

import numpy as np
import xarray as xr

import rvscgd
from rvscgd import theory

from ..floor import floor_config, point_match_distance, predict_floor_cell
from ..grid import MODES, block_cells
from ..labels import label_cell_grid, set_long_names, status_attrs
from ..matching import limit_kind_attrs, limit_match_rule_attrs, match_runs, support_metrics
from ..seeds import PURPOSE as PURPOSE
from ..seeds import rng, seed_sequence
from ..stacking import sort_grid, stack_cells
from ..starts import at_angle, orthogonal_direction
from ..units import empirical_steps, lam_effective
from .gaussian import make_data_cell, predict_limits_cell


def cells(config: dict) -> list[dict]:
    """The cells (n, k, seed) of the basin study, one training job each."""
    return block_cells(config, "basins")


RUN_DIMS = ("start", "penalty", "lam", "beta", "eta")
GRID_DIMS = RUN_DIMS[1:]
STE, NORMALISE = "relu", True  # the method itself: the fixed points are predicted for it
OUTCOMES = {
    "reached_best": "1 if the run ended at the best predicted fixed point (the stable one nearest w*)",
    "support_exact": "1 if supp(u_final) == supp(w*)",
    "spurious": "1 if u_final is spurious: its support is disjoint from supp(w*), or <u_final, w*> < 0",
}
REGION_ATTRS = {
    "long_name": "phase region predicted by the fixed points (docs/theory.md section 8)",
    "flag_values": np.arange(len(theory.REGIONS), dtype=np.int8),
    "flag_meanings": " ".join(theory.REGIONS),
}


def grid_coords(config: dict) -> dict:
    g = config["basins"]["grid"]
    return {
        "penalty": list(g["penalty"]),
        "lam": [float(x) for x in g["lam"]],
        "beta": [float(x) for x in g["beta"]],
        "eta": [float(x) for x in g["eta"]],
    }


def settings(config: dict) -> list[tuple[str, int]]:
    """(mode, B) of each setting the basin runs are trained in: population
    (B = 0: no inputs) and empirical at each ``basins.batch_size``."""
    c = config["basins"]
    out = [("population", 0)] if "population" in c["modes"] else []
    if "empirical" in c["modes"]:
        out += [("empirical", int(b)) for b in c["batch_size"]]
    return out


def setting_label(mode: str, batch_size: int) -> str:
    return "population" if mode == "population" else f"empirical B={batch_size}"


def start_kinds(config: dict) -> list[str]:
    s = config["basins"]["starts"]
    return ["random"] * int(s["random"]) + ["adversarial"] * int(s["adversarial"])


def starts(config: dict, n: int, k: int, seed: int, w_star: np.ndarray) -> np.ndarray:
    """(S, n) unit starts of a cell, in ``start_kinds`` order: random ones
    uniform on the sphere, then adversarial ones at an angle to w* drawn
    uniformly from [lo pi, hi pi) (``basins.adversarial_angle``), in a random
    direction orthogonal to w*. From the cell's own stream (purpose
    ``basin_starts``): bit-reproducible, independent of every other draw."""
    lo, hi = (float(x) * np.pi for x in config["basins"]["adversarial_angle"])
    draw = rng(config, n, k, seed, "basin_starts")
    out = []
    for kind in start_kinds(config):
        if kind == "random":
            w0 = draw.standard_normal(n)
        else:
            e = orthogonal_direction(w_star, draw)
            w0 = at_angle(w_star, e, lo + (hi - lo) * draw.random())  # angle in [lo, hi)
        out.append(w0 / np.linalg.norm(w0))
    return np.stack(out)


def spurious(u: xr.DataArray, w_star: xr.DataArray) -> xr.DataArray:
    """1 where u (over ``feature``) keeps no entry of supp(w*) (u = 0 too) or
    points against w* (<u, w*> < 0, as the repelling -w* does), else 0;
    NaN where u is NaN (a diverged run)."""
    valid = u.notnull().all("feature")
    overlap = ((u != 0) & (w_star != 0)).sum("feature")
    against = (u.fillna(0) * w_star.fillna(0)).sum("feature") < 0
    return ((overlap == 0) | against).astype(float).where(valid)


def train_cell(config: dict, n: int, k: int, seed: int, threads: int = 1) -> xr.Dataset:
    """Every basin run of one cell, in each setting (``settings``), with the
    fixed point each reached and the three outcomes (``OUTCOMES``)."""
    data = make_data_cell(config, n, k, seed)
    w_star = data["w_star"].values
    coords = grid_coords(config)
    limits = predict_limits_cell(config, data, {**coords, "ste": [STE]})
    W0s = starts(config, n, k, seed, w_star)
    kinds = start_kinds(config)
    table = [dict(zip(RUN_DIMS, v, strict=True)) for v in itertools.product(range(len(kinds)), *coords.values())]
    runs = rvscgd.make_runs(
        penalty=[r["penalty"] for r in table],
        lam=[lam_effective(config, r["lam"], k, r["penalty"], r["beta"]) for r in table],
        beta=[r["beta"] for r in table],
        eta=[r["eta"] for r in table],
        a=config["grid"]["tl1_a"],
        ste=STE,
        normalise=NORMALISE,
    )
    W0 = W0s[[r["start"] for r in table]]
    shape = (len(kinds),) + tuple(len(v) for v in coords.values())
    parts = []
    sampler = "expectation"
    for mode, B in settings(config):
        mcfg = config[mode]
        kwargs = {}
        if mode == "empirical":
            kwargs = {
                "batch_size": B,
                "seed": seed_sequence(config, n, k, seed, "stream"),
                "precision": config["empirical"]["precision"],
                "sample_threads": max(threads, 1) if threads > 1 else 0,
            }
        res = rvscgd.train(
            w_star,
            W0,
            k,
            runs,
            "population" if mode == "population" else "fresh",
            max_steps=empirical_steps(config, k) if mode == "empirical" else mcfg["max_steps"],
            tol=mcfg["tol"],
            record_steps=np.array([0]),  # outcomes only: no traces
            **kwargs,
        )
        tol = config["limit"]["match_tol"][mode]
        w_final = xr.DataArray(res.w_final.reshape(shape + (n,)), dims=(*RUN_DIMS, "feature"), coords=coords)
        floor = _match_floor(config, data, limits, w_final, B) if mode == "empirical" else None
        parts.append(_setting_dataset(res, shape, coords, n, data, limits, tol, floor))
        if mode == "empirical":
            sampler = res.extra["sampler"]  # how the inputs were drawn (engine "auto": by n and the run count)
    labels = [setting_label(m, b) for m, b in settings(config)]
    ds = xr.concat(parts, dim="setting")
    ds = ds.assign_coords(
        setting=("setting", labels, {"long_name": "population, or empirical at minibatch size B"}),
        mode=("setting", [m for m, _ in settings(config)], {"long_name": "population or empirical"}),
        batch_size=("setting", [b for _, b in settings(config)], {"long_name": "inputs per step B (0: population)"}),
        start=("start", np.arange(len(kinds)), {"long_name": "start index of the cell"}),
        start_kind=("start", kinds, {"long_name": "random (uniform on the sphere) or adversarial (near -w*)"}),
        **{d: (d, coords[d]) for d in GRID_DIMS},
    )
    # The STE and normalisation as the other datasets hold them (length-1 dimensions): select alike.
    ds = ds.expand_dims(ste=[STE], normalise=[NORMALISE])
    ds = ds.transpose("setting", "start", *GRID_DIMS, "ste", "normalise", ...)
    ds["w_star"] = ("feature", w_star, {"long_name": "teacher weights w*", "units": "1"})
    ds["w0"] = (("start", "feature"), W0s, {"long_name": "start w^0", "units": "1"})
    ds["theta0"] = ("start", rvscgd.angle(W0s.T, w_star), {"long_name": "angle between w^0 and w*", "units": "rad"})
    ds["region"] = (GRID_DIMS, _regions(config, w_star, k, coords, limits), dict(REGION_ATTRS))
    ds["n_limits"] = (
        GRID_DIMS,
        limits["n_limits"].sel(ste=STE).transpose(*GRID_DIMS).values,
        {"long_name": "stable isolated fixed points the theory predicts", "units": "1"},
    )
    ds.attrs = {"n": n, "k": k, "seed": seed, "sampler": sampler}
    return ds


def _regions(config, w_star, k, coords, limits) -> np.ndarray:
    """The phase region of each grid point (``theory.region_of``) from the
    enumerated fixed points of ``limits`` (no dynamics): stable ones, those
    whose u_bar = prox(w_bar) has exactly the support of w*, a continuum."""
    out = np.zeros(tuple(len(coords[d]) for d in GRID_DIMS), dtype=np.int8)
    support = w_star != 0
    for idx in np.ndindex(out.shape):
        p, lam, beta, eta = (coords[d][i] for d, i in zip(GRID_DIMS, idx, strict=True))
        lim = limits.sel(penalty=p, lam=lam, beta=beta, eta=eta, ste=STE)
        tau = lam_effective(config, lam, k, p, beta) / beta
        n_rec = 0
        for j in np.flatnonzero(lim["fp_stable"].values == 1):
            u_bar = rvscgd.prox(lim["fp_w_bar"].values[j], tau, p, config["grid"]["tl1_a"])
            n_rec += int(lim["fp_multiplicity"].values[j]) * bool(np.array_equal(u_bar != 0, support))
        region = theory.region_of(int(lim["n_limits"]), n_rec, int(lim["n_continua"]) > 0)
        out[idx] = theory.REGIONS.index(region)
    return out


def _match_floor(config, data, limits, w_final: xr.DataArray, batch_size: int) -> xr.Dataset | None:
    """The predicted noise floor of each listed point for the empirical runs at
    ``batch_size`` (``study.floor``), by which they are matched as the one-layer
    study's are (``gaussian.cell_dataset``); None with the floor off
    (``limit.match_tol`` alone)."""
    if not floor_config(config)["enabled"]:
        return None
    finals = w_final.expand_dims(ste=[STE], normalise=[NORMALISE])
    fl = predict_floor_cell(config, data, limits, [batch_size], [0.0], finals=finals)
    return fl.isel(batch_size=0, label_noise=0, drop=True)


def _setting_dataset(res, shape, coords, n, data, limits, tol, floor=None) -> xr.Dataset:
    dims = RUN_DIMS
    ds = xr.Dataset(
        {
            "w_final": (dims + ("feature",), res.w_final.reshape(shape + (n,)), {"long_name": "final w"}),
            "u_final": (dims + ("feature",), res.u_final.reshape(shape + (n,)), {"long_name": "final u = prox(w)"}),
            "status": (dims, res.status.reshape(shape), status_attrs(rvscgd.STATUS)),
            "steps_run": (dims, res.steps_run.reshape(shape), {"long_name": "steps taken", "units": "1"}),
        },
        coords={"start": np.arange(shape[0]), **{d: coords[d] for d in GRID_DIMS}},
    )
    # match_runs reads the STE and the normalisation from the run's coordinates, and
    # the floor's hop flag from the runs' dataset (a hopping point: rule tolerance_hops).
    runs = ds.expand_dims(ste=[STE], normalise=[NORMALISE])
    if floor is not None:
        runs["fp_floor_hops"] = floor["fp_floor_hops"]
    m = match_runs(runs, data, limits, tol, floor=None if floor is None else point_match_distance(floor))
    mdims = m.pop("dims")
    kind = xr.DataArray(m["limit_kind"], dims=mdims).squeeze(["ste", "normalise"], drop=True)
    best = xr.DataArray(m["limit_best"], dims=mdims).squeeze(["ste", "normalise"], drop=True)
    rule = xr.DataArray(m["limit_match_rule"], dims=mdims).squeeze(["ste", "normalise"], drop=True)
    ds["limit_kind"] = (kind.dims, kind.values, limit_kind_attrs(tol))
    ds["limit_match_rule"] = (rule.dims, rule.values, limit_match_rule_attrs())
    valid = ds["u_final"].notnull().all("feature")
    ds["reached_best"] = xr.DataArray(best.values.astype(float), dims=best.dims).where(valid.values)
    w_star = xr.DataArray(data["w_star"].values, dims="feature")
    ds["support_exact"] = support_metrics(ds["u_final"], w_star)["support_exact"]
    ds["spurious"] = spurious(ds["u_final"], w_star)
    set_long_names(ds, OUTCOMES, units="1")
    return ds.drop_vars(["start", *GRID_DIMS])


def combine(parts: list[xr.Dataset], config: dict) -> xr.Dataset:
    """Stack cells along n, k, seed (NaN-padding features beyond n)."""
    ds = stack_cells(parts)
    ks = [int(k) for k in ds["k"].values]
    ds["c"] = (
        "k",
        [rvscgd.coarse_constant(k, "relu") for k in ks],
        {"long_name": "relu coarse-gradient constant c(k)", "units": "1"},
    )
    ds["beta_over_c"] = (
        ("beta", "k"),
        np.array([[b / rvscgd.coarse_constant(k, "relu") for k in ks] for b in ds["beta"].values]),
        {"long_name": "beta / c(k): the side of beta = c (model.md section 5.1)", "units": "1"},
    )
    units = config["grid"]["lam_units"]
    pens, betas, lams = ds["penalty"].values.tolist(), [float(b) for b in ds["beta"].values], ds["lam"].values
    ds["lam_effective"] = (
        ("penalty", "lam", "beta", "k"),
        np.array([[[[lam_effective(config, x, k, p, b) for k in ks] for b in betas] for x in lams] for p in pens]),
        {"long_name": "lambda used by the algorithm", "units": "1"},
    )
    label_cell_grid(
        ds,
        config,
        {
            "k": "patches k",
            "eta": "step size eta",
            "ste": "straight-through estimator (relu: the basin study trains the method itself)",
            "normalise": "normalisation step on (the method)",
        },
        OUTCOMES,
    )
    c = config["basins"]
    lo, hi = (float(x) for x in c["adversarial_angle"])
    ds.attrs.update(
        title="RVSCGD study, basins of the fixed points over many starts",
        Conventions="CF-1.8",
        source="Dinh & Xin, arXiv:1901.09731; the rvscgd study workflow",
        lam_units=units,
        tl1_a=float(config["grid"]["tl1_a"]),
        adversarial_angle_low=lo,
        adversarial_angle_high=hi,
        adversarial_angle_units="pi rad, half-open [low, high)",
    )
    return sort_grid(ds)


# ---- the experiment contract (study.experiments) ---------------------------------
LABEL = "basin"  # in study.plan's job count
REQUIRED = {"train": (("status", *OUTCOMES), ("start", "setting"))}
prepare = None


def train(config: dict, wildcards: dict, inputs: dict, threads: int = 1) -> tuple[xr.Dataset, list[str]]:
    """Every basin run (starts x grid slice x settings) of one (n, k, seed) cell (rule train_basins)."""
    n, k, seed = (int(wildcards[d]) for d in ("n", "k", "seed"))
    ds = train_cell(config, n, k, seed, threads=threads)
    lines = []
    for setting in ds["setting"].values:
        sub = ds.sel(setting=setting)
        shares = ", ".join(f"{q} {float(sub[q].mean()):.2f}" for q in OUTCOMES)
        lines.append(f"basins {setting} n={n} k={k} seed={seed}: {sub['status'].size} runs, {shares}")
    return ds, lines


def aggregate(config: dict, dataset: str, inputs: dict) -> tuple[xr.Dataset, list[str]]:
    """One labelled dataset of every basin cell (rule aggregate_basins)."""
    parts = list(inputs["train"])
    ds = combine(parts, config)
    diverged = int((ds["status"] == rvscgd.STATUS.index("diverged")).sum())
    ds.attrs.update(runs_total=int(ds["status"].size), runs_diverged=diverged)
    lines = [f"basins: {len(parts)} cells, dims {dict(ds.sizes)}, diverged {diverged}"]
    if diverged:
        lines.append(f"WARNING: {diverged} of {ds['status'].size} basin runs diverged (NaN weights)")
    return ds, lines


def plan(config: dict, fraction: float, compare_direct: bool = False) -> dict:
    """Predicted core-seconds of the basin cells (0 if disabled): each (n, k)
    timed on its first seed with both modes' step limits cut to a fraction,
    and with one step (what does not depend on the steps: the fixed-point
    enumeration and the matching); the difference is extrapolated linearly
    in steps (an upper bound, as for the main cells), then in seeds."""
    if not cells(config):
        return {"core_s": 0.0}
    c = config["basins"]

    def timed(steps_of):
        short = copy.deepcopy(config)
        short["empirical"]["contraction_times"] = None  # the cut step count, whatever the budget
        for mode in MODES:
            short[mode]["max_steps"] = steps_of(full[mode])
        t0 = time.process_time()
        train_cell(short, n, k, c["seeds"][0])
        return time.process_time() - t0, short

    total = 0.0
    for n in c["n"]:
        for k in c["k"]:
            full = {"population": int(config["population"]["max_steps"]), "empirical": empirical_steps(config, k)}
            fixed, _ = timed(lambda steps: 1)
            part, short = timed(lambda steps: max(10, int(steps * fraction)))
            scale = max(full[m] / short[m]["max_steps"] for m in c["modes"])
            cell_s = fixed + max(part - fixed, 0.0) * scale
            total += cell_s * len(c["seeds"])
            grid = len(start_kinds(config)) * np.prod([len(v) for v in grid_coords(config).values()])
            print(
                f"basins n={n:4d} k={k:3d}  {cell_s:8.1f} s per cell ({grid} runs x {len(settings(config))} "
                "settings)  "
                f"x{len(c['seeds'])} seeds = {cell_s * len(c['seeds']) / 3600:6.2f} core-h",
                flush=True,
            )
    return {"core_s": total, "share": "the basin study"}
