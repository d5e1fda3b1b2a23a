"""The two-layer experiment (config block ``two_layer``, docs/two_layer.md): its
cells, starts, training runs and aggregated dataset. No file I/O here. The
experiment contract: ``study.experiments``.

A cell is (n, k, seed); its teacher w* is the one-layer cell's of the same
coordinates (same seed key), v* is drawn by ``two_layer.v_star``. Every run
of a cell starts from one of the cell's starts (``start`` dimension): random
ones and, to probe Yin et al.'s instability, starts near the spurious
critical point (theta = pi, v = spurious_v(v*)).
"""

from __future__ import annotations

import copy
import itertools
import time

import numpy as np
import xarray as xr

import rvscgd
from rvscgd import two_layer as tl
from rvscgd import two_layer_train

from ..grid import block_cells, coords_of, teacher_sparsity
from ..labels import SUPPORT_LONG_NAMES, TRACE_ANGLES, TRACE_SPARSITY, label_cell_grid, status_attrs
from ..matching import support_metrics
from ..seeds import PURPOSE as PURPOSE
from ..seeds import rng, seed_sequence
from ..stacking import sort_grid, stack_cells
from ..starts import at_angle, orthogonal_direction
from ..units import lam_effective


def cells(config: dict) -> list[dict]:
    """The cells (n, k, seed) of the two-layer study, one training job each."""
    return block_cells(config, "two_layer")


RUN_DIMS = ("start", "penalty", "lam", "beta", "eta", "ste", "normalise")
GRID_DIMS = RUN_DIMS[1:]
ENGINE_MODE = {"population": "population", "empirical": "fresh"}
TRACES = {
    "loss": ("population loss L(v^t, w^t) (model.md section 6)", "1"),
    **TRACE_ANGLES,
    "dist_v": ("distance ||v^t - v*|| of the second layer", "1"),
    "sparsity_u": TRACE_SPARSITY,
}
STATUS_ATTRS = status_attrs(
    two_layer_train.STATUS, "how the run ended (docs/two_layer.md: converged, max_steps, diverged, oscillating)"
)


def grid_coords(config: dict) -> dict:
    return coords_of(config["two_layer"]["grid"])


def start_kinds(config: dict) -> list[str]:
    s = config["two_layer"]["starts"]
    return ["random"] * int(s["random"]) + ["near_spurious"] * int(s["near_spurious"])


def teacher(config: dict, n: int, k: int, seed: int):
    """(w*, v*) of a cell: w* exactly the one-layer cell's (same seed key)."""
    w_star = rvscgd.make_teacher(
        n, teacher_sparsity(config, n), rng(config, n, k, seed, "teacher"), config["teacher"]["min_abs"]
    )
    rule = config["two_layer"]["v_star"]
    v_star = tl.make_v_star(k, rule["rule"], rng(config, n, k, seed, "two_layer_v_star"), rule["scale"])
    return w_star, v_star


def starts(config: dict, n: int, k: int, seed: int, w_star, v_star):
    """(W0 (n, S), V0 (k, S)): ``starts.random`` starts with w0 uniform on
    the sphere and v0 ~ v0_scale N(0, I_k), then ``starts.near_spurious``
    starts with w0 at angle pi - spurious_angle from w* (random direction)
    and v0 = spurious_v(v*) + spurious_v_noise N(0, I_k)."""
    s = config["two_layer"]["starts"]
    draw = rng(config, n, k, seed, "two_layer_starts")
    W0, V0 = [], []
    for kind in start_kinds(config):
        if kind == "random":
            w0 = draw.standard_normal(n)
            w0 /= np.linalg.norm(w0)
            v0 = s["v0_scale"] * draw.standard_normal(k)
        else:
            w0 = at_angle(w_star, orthogonal_direction(w_star, draw), np.pi - s["spurious_angle"])
            v0 = tl.spurious_v(v_star) + s["spurious_v_noise"] * draw.standard_normal(k)
        W0.append(w0)
        V0.append(v0)
    return np.stack(W0, axis=1), np.stack(V0, axis=1)


def train_cell(config: dict, n: int, k: int, seed: int) -> xr.Dataset:
    """Every run of the two-layer grid on one cell, in each of ``two_layer.modes``."""
    c = config["two_layer"]
    w_star, v_star = teacher(config, n, k, seed)
    W0s, V0s = starts(config, n, k, seed, w_star, v_star)
    kinds = start_kinds(config)
    coords = grid_coords(config)
    table = [
        dict(zip(RUN_DIMS, values, strict=True)) for values in itertools.product(range(len(kinds)), *coords.values())
    ]
    runs = rvscgd.make_runs(
        penalty=[r["penalty"] for r in table],
        lam=[lam_effective(config, r["lam"], k) for r in table],
        beta=[r["beta"] for r in table],
        eta=[r["eta"] for r in table],
        a=config["grid"]["tl1_a"],
        ste=[r["ste"] for r in table],
        normalise=[r["normalise"] for r in table],
    )
    cols = [r["start"] for r in table]
    W0, V0 = W0s[:, cols], V0s[:, cols]
    record = rvscgd.log_record_steps(c["max_steps"], config["trace_points"])
    shape = (len(kinds),) + tuple(len(v) for v in coords.values())
    parts = []
    for mode in c["modes"]:
        stream = seed_sequence(config, n, k, seed, "two_layer_stream")
        res = two_layer_train.train(
            w_star,
            v_star,
            W0,
            V0,
            runs,
            ENGINE_MODE[mode],
            max_steps=c["max_steps"],
            tol=c["tol"],
            batch_size=c["batch_size"],
            seed=stream,
            record_steps=record,
            window=c["oscillation"]["window"],
            amplitude=c["oscillation"]["amplitude"],
        )
        parts.append(_result_dataset(res, shape, len(record), n, k))
    ds = xr.concat(parts, dim="mode")
    ds = ds.assign_coords(
        mode=("mode", list(c["modes"]), {"long_name": "population (expected gradients) or empirical (minibatches)"}),
        step=("step", record, {"long_name": "iteration t"}),
        start=("start", np.arange(len(kinds)), {"long_name": "start index of the cell"}),
        start_kind=("start", kinds, {"long_name": "random, or near the spurious critical point (theta = pi)"}),
        **{d: (d, coords[d]) for d in GRID_DIMS},
    )
    ds["w_star"] = ("feature", w_star, {"long_name": "teacher filter w*", "units": "1"})
    ds["v_star"] = ("unit", v_star, {"long_name": "teacher second layer v*", "units": "1"})
    ds["v_spurious"] = ("unit", tl.spurious_v(v_star), {"long_name": "v of the critical point at theta = pi"})
    ds["spurious_exists"] = (
        (),
        np.int8(tl.spurious_minimum_exists(v_star)),
        {"long_name": "theta = pi, v = v_spurious is a local minimum (1) or not (0)"},
    )
    ds["w0"] = (("start", "feature"), W0s.T, {"long_name": "start w^0"})
    ds["v0"] = (("start", "unit"), V0s.T, {"long_name": "start v^0"})
    ds["theta0"] = ("start", rvscgd.angle(W0s, w_star), {"long_name": "angle between w^0 and w*", "units": "rad"})
    ds["vv0"] = ("start", V0s.T @ v_star, {"long_name": "<v^0, v*>", "units": "1"})
    ds["zero_loss"] = ((), two_layer_train.zero_network_loss(v_star), {"long_name": "loss L(0) of the zero network"})
    ds["amplitude"] = ((), parts[0].attrs["amplitude"], {"long_name": "oscillation amplitude threshold (loss units)"})
    ds.update(support_metrics(ds["u_final"], ds["w_star"]))
    ds.attrs = {"n": n, "k": k, "seed": seed}
    return ds


def _result_dataset(res, shape, T, n, k) -> xr.Dataset:
    dims = RUN_DIMS
    data = {
        name: (dims + ("step",), getattr(res, name).reshape(shape + (T,)), {"long_name": ln, "units": u})
        for name, (ln, u) in TRACES.items()
    }
    data["w_final"] = (dims + ("feature",), res.w_final.reshape(shape + (n,)), {"long_name": "final w"})
    data["u_final"] = (dims + ("feature",), res.u_final.reshape(shape + (n,)), {"long_name": "final u = prox(w)"})
    data["v_final"] = (dims + ("unit",), res.v_final.reshape(shape + (k,)), {"long_name": "final v"})
    data["status"] = (dims, res.status.reshape(shape), dict(STATUS_ATTRS))
    data["steps_run"] = (dims, res.steps_run.reshape(shape), {"long_name": "steps taken", "units": "1"})
    late = "of the population loss over the late window (docs/two_layer.md)"
    data["late_rise"] = (dims, res.late_rise.reshape(shape), {"long_name": f"largest rise {late}", "units": "1"})
    data["late_fall"] = (dims, res.late_fall.reshape(shape), {"long_name": f"largest fall {late}", "units": "1"})
    return xr.Dataset(data, attrs={"amplitude": res.amplitude})


def combine(parts: list[xr.Dataset], config: dict) -> xr.Dataset:
    """Stack cells along n, k, seed (NaN-padding features beyond n and units beyond k)."""
    ds = stack_cells(parts, pad=("feature", "unit"))
    ks = ds["k"].values
    ds["lam_effective"] = (
        ("lam", "k"),
        np.array([[lam_effective(config, lam, int(k)) for k in ks] for lam in ds["lam"].values]),
        {"long_name": "lambda used by the algorithm", "units": "1"},
    )
    ds["c"] = (
        "k",
        [rvscgd.coarse_constant(int(k), "relu") for k in ks],
        {"long_name": "fixed-readout relu constant c(k) (lam units)"},
    )
    label_cell_grid(
        ds,
        config,
        {
            "k": "patches (hidden units) k",
            "eta": "step size eta (both layers)",
            "ste": "straight-through estimator of the coarse gradient in w",
            "normalise": "normalisation step of w on (method) or off (ablation)",
        },
        SUPPORT_LONG_NAMES,
    )
    c = config["two_layer"]
    ds.attrs.update(
        title="RVSCGD study, two-layer model (trainable second layer, model.md section 6)",
        Conventions="CF-1.8",
        source="Dinh & Xin, arXiv:1901.09731, and Yin et al., ICLR 2019; the rvscgd study workflow",
        v_star_rule=c["v_star"]["rule"],
        v_star_scale=float(c["v_star"]["scale"]),
        lam_units=config["grid"]["lam_units"],
        oscillation_window=float(c["oscillation"]["window"]),
        oscillation_amplitude=float(c["oscillation"]["amplitude"]),
        batch_size=int(c["batch_size"]),
        tol=float(c["tol"]),
        tl1_a=float(config["grid"]["tl1_a"]),
    )
    return sort_grid(ds)


# ---- the experiment contract (study.experiments) ---------------------------------
LABEL = "two-layer"  # in study.plan's job count
REQUIRED = {"train": (("loss", "status", "w_final", "v_final"), ("step", "mode"))}
prepare = None


def train(config: dict, wildcards: dict, inputs: dict, threads: int = 1) -> tuple[xr.Dataset, list[str]]:
    """Every run of the two-layer grid on one (n, k, seed) cell (rule train_two_layer)."""
    n, k, seed = (int(wildcards[d]) for d in ("n", "k", "seed"))
    ds = train_cell(config, n, k, seed)
    lines = []
    for mode in ds["mode"].values:
        status = ds["status"].sel(mode=mode).values.ravel()
        counts = ", ".join(f"{name} {int(np.sum(status == i))}" for i, name in enumerate(two_layer_train.STATUS))
        lines.append(f"two_layer {mode} n={n} k={k} seed={seed}: {status.size} runs, {counts}")
    return ds, lines


def aggregate(config: dict, dataset: str, inputs: dict) -> tuple[xr.Dataset, list[str]]:
    """One labelled dataset of every two-layer cell (rule aggregate_two_layer)."""
    parts = list(inputs["train"])
    ds = combine(parts, config)
    counts = {name: int((ds["status"] == i).sum()) for i, name in enumerate(two_layer_train.STATUS)}
    ds.attrs.update(runs_total=int(ds["status"].size), **{f"runs_{name}": c for name, c in counts.items()})
    lines = [f"two_layer: {len(parts)} cells, dims {dict(ds.sizes)}, status {counts}"]
    if counts["diverged"]:
        lines.append(f"WARNING: {counts['diverged']} of {ds['status'].size} two-layer runs diverged (NaN weights)")
    return ds, lines


def plan(config: dict, fraction: float, compare_direct: bool = False) -> dict:
    """Predicted core-seconds of the two-layer cells (0 if disabled): each
    (n, k) timed on its first seed for a fraction of the steps."""
    if not cells(config):
        return {"core_s": 0.0}
    c = config["two_layer"]
    short = copy.deepcopy(config)
    short["two_layer"]["max_steps"] = max(10, int(c["max_steps"] * fraction))
    total = 0.0
    for n in c["n"]:
        for k in c["k"]:
            t0 = time.process_time()
            train_cell(short, n, k, c["seeds"][0])
            cell_s = (time.process_time() - t0) * c["max_steps"] / short["two_layer"]["max_steps"]
            total += cell_s * len(c["seeds"])
            print(
                f"two_layer n={n:4d} k={k:3d}  {cell_s:8.1f} s per cell  x{len(c['seeds'])} seeds = "
                f"{cell_s * len(c['seeds']) / 3600:6.2f} core-h",
                flush=True,
            )
    return {"core_s": total}
