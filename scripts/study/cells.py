"""One cell of the study (n, k, seed): its data, predicted limits and training
runs, as labelled xarray datasets. No file I/O here (see ``study.ncio``)."""

from __future__ import annotations

import numpy as np
import xarray as xr

import rvscgd

from .grid import (
    RUN_DIMS,
    lam_effective,
    run_coords,
    run_table,
    seed_sequence_key,
    teacher_sparsity,
)

LIMIT_DIMS = ("penalty", "lam", "beta", "eta", "ste")
TRACE_VARS = {
    "angle_w": ("angle between w^t and w*", "rad"),
    "angle_u": ("angle between u^t = prox(w^t) and w*", "rad"),
    "loss": ("population loss L(w^t) = theta / (2 pi k)", "1"),
    "sparsity_u": ("fraction of zero entries of u^t", "1"),
    "dist_wbar": ("distance ||w^t - w_bar|| to the predicted limit", "1"),
}
STATUS_ATTRS = {
    "long_name": "how the run ended",
    "flag_values": np.array([0, 1, 2], dtype=np.int8),
    "flag_meanings": " ".join(rvscgd.STATUS),
}


def _rng(config, n, k, seed, purpose):
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(**seed_sequence_key(config, n, k, seed, purpose)))
    )


def make_data_cell(config: dict, n: int, k: int, seed: int) -> xr.Dataset:
    """Teacher w*, start w0 (shared by all runs of the cell) and the seed of
    the fixed training set (regenerated on demand: cheaper than storing it)."""
    s = teacher_sparsity(config, n)
    w_star = rvscgd.make_teacher(n, s, _rng(config, n, k, seed, "teacher"), config["teacher"]["min_abs"])
    w0 = _rng(config, n, k, seed, "start").standard_normal(n)
    w0 /= np.linalg.norm(w0)
    feature = np.arange(n)
    ds = xr.Dataset(
        {
            "w_star": ("feature", w_star, {"long_name": "teacher weights w*", "units": "1"}),
            "w0": ("feature", w0, {"long_name": "common start w^0 of the cell's runs", "units": "1"}),
        },
        coords={"feature": ("feature", feature, {"long_name": "feature index"})},
        attrs={"n": n, "k": k, "seed": seed, "s": s},
    )
    return ds


def predict_limits_cell(config: dict, data: xr.Dataset) -> xr.Dataset:
    """Solve model.md section 5 for every (penalty, lam, beta, ste) of the grid.

    The run's own limit is the one population RVSCGD with the run's eta
    reaches from its start w0; the search also runs from ``limit.starts``
    random starts and records how many distinct limits exist and how often
    each is reached.
    """
    n, k, seed = int(data.attrs["n"]), int(data.attrs["k"]), int(data.attrs["seed"])
    w_star = data["w_star"].values
    w0 = data["w0"].values
    extra = rvscgd.limit.random_starts(n, config["limit"]["starts"], _rng(config, n, k, seed, "limit_starts"))
    starts = np.vstack([w0, extra])
    coords = {d: v for d, v in run_coords(config).items() if d in LIMIT_DIMS}
    shape = tuple(len(coords[d]) for d in LIMIT_DIMS)
    max_limits = starts.shape[0]
    w_bar = np.full(shape + (n,), np.nan)
    u_bar = np.full(shape + (n,), np.nan)
    n_limits = np.zeros(shape, dtype=np.int32)
    share = np.full(shape, np.nan)
    stable = np.zeros(shape, dtype=np.int8)
    counts = np.zeros(shape + (max_limits,), dtype=np.int32)
    a = config["grid"]["tl1_a"]
    for idx in np.ndindex(shape):
        penalty, lam, beta, eta, ste = (coords[d][i] for d, i in zip(LIMIT_DIMS, idx, strict=True))
        if ste == "clipped_relu":
            continue  # no constant c: no closed fixed-point equation (NaN, documented)
        # Followed with the run's eta: where several fixed points exist, the
        # one predicted is the one the population run from w0 reaches.
        search = rvscgd.predicted_limit(
            w_star, k, lam_effective(config, lam, k), beta, penalty, a=a, ste=ste, starts=starts, eta=eta
        )
        n_limits[idx] = len(search)
        counts[idx][: len(search)] = [lim.count for lim in search.limits]
        own = search.start_limit[0]
        if own >= 0:
            lim = search.limits[own]
            w_bar[idx], u_bar[idx] = lim.w_bar, lim.u_bar
            share[idx] = lim.count / search.n_starts
            stable[idx] = lim.stable
    dims = LIMIT_DIMS
    ds = xr.Dataset(
        {
            "w_bar": (dims + ("feature",), w_bar, {"long_name": "predicted limit w_bar reached from w0", "units": "1"}),
            "u_bar": (dims + ("feature",), u_bar, {"long_name": "predicted sparse limit u_bar = prox(w_bar)"}),
            "n_limits": (dims, n_limits, {"long_name": "distinct fixed points found from all starts"}),
            "limit_share": (dims, share, {"long_name": "share of starts reaching the run's predicted limit"}),
            "limit_stable": (dims, stable, {"long_name": "the run's predicted limit is linearly stable (1) or not"}),
            "limit_counts": (
                dims + ("limit",),
                counts,
                {"long_name": "starts reaching each distinct fixed point, most reached first"},
            ),
        },
        coords={**coords, "feature": np.arange(n)},
        attrs={"n": n, "k": k, "seed": seed, "n_starts": starts.shape[0]},
    )
    return ds


def train_cell(config: dict, mode: str, data: xr.Dataset, limits: xr.Dataset, threads: int = 1) -> xr.Dataset:
    """Train every run of the grid on one cell with the batched engine.

    In empirical mode every batch size B is trained (dimension
    ``batch_size``), all on the same input stream (common random numbers);
    with a fixed training set, ``batch_size`` holds the set's size m.
    """
    n, k, seed = int(data.attrs["n"]), int(data.attrs["k"]), int(data.attrs["seed"])
    w_star = data["w_star"].values
    w0 = data["w0"].values
    table = run_table(config)
    coords = run_coords(config)
    shape = tuple(len(coords[d]) for d in RUN_DIMS)
    runs = rvscgd.make_runs(
        penalty=[r["penalty"] for r in table],
        lam=[lam_effective(config, r["lam"], k) for r in table],
        beta=[r["beta"] for r in table],
        eta=[r["eta"] for r in table],
        a=config["grid"]["tl1_a"],
        ste=[r["ste"] for r in table],
        normalise=[r["normalise"] for r in table],
    )
    # The predicted limit applies to normalised runs (model.md section 5).
    w_ref = np.stack(
        [
            limits["w_bar"].sel(penalty=r["penalty"], lam=r["lam"], beta=r["beta"], eta=r["eta"], ste=r["ste"]).values
            if r["normalise"]
            else np.full(n, np.nan)
            for r in table
        ]
    )
    mcfg = config[mode]
    record = rvscgd.log_record_steps(mcfg["max_steps"], config["trace_points"])

    if mode == "empirical":
        # Sampling threads: a speed knob only, the numbers do not depend on it.
        fast = {
            "precision": config["empirical"]["precision"],
            "sample_threads": max(threads, 1) if threads > 1 else 0,
            "sampler": config["empirical"]["sampler"],
        }
    else:
        fast = {}

    def one(engine_mode, stream, **kwargs):
        res = rvscgd.train(
            w_star,
            w0,
            k,
            runs,
            engine_mode,
            max_steps=mcfg["max_steps"],
            tol=mcfg["tol"],
            seed=stream,
            record_steps=record,
            w_ref=w_ref,
            **fast,
            **kwargs,
        )
        ds = _result_dataset(res, shape, coords, n)
        # How the inputs were drawn (draw by draw, projected and direct differ; in distribution they agree).
        ds.attrs["sampler"] = res.extra["sampler"]
        return ds

    if mode == "population":
        ds = one("population", None)
        sampling = "expectation"
    elif config["empirical"]["sampling"] == "fresh":
        stream = np.random.SeedSequence(**seed_sequence_key(config, n, k, seed, "stream"))
        sizes = [int(b) for b in config["empirical"]["batch_size"]]
        ds = xr.concat([one("fresh", stream, batch_size=b) for b in sizes], dim="batch_size")
        ds = ds.assign_coords(batch_size=("batch_size", sizes, {"long_name": "inputs per step B"}))
        sampling = "fresh"
    else:
        stream = np.random.SeedSequence(**seed_sequence_key(config, n, k, seed, "train_set"))
        m = int(config["empirical"]["train_size"])
        ds = one("fixed", stream, train_size=m).expand_dims(batch_size=[m])
        ds["batch_size"].attrs["long_name"] = "fixed training set size m (full batch)"
        sampling = "fixed"
    ds.attrs.update({"n": n, "k": k, "seed": seed, "mode": mode, "sampling": sampling})
    return ds


def _result_dataset(res, shape, coords, n) -> xr.Dataset:
    """A TrainResult as a dataset over RUN_DIMS (+ step, feature)."""
    T = res.record_steps.size
    data_vars = {}
    names = {"dist_ref": "dist_wbar"}
    for src in ("angle_w", "angle_u", "loss", "sparsity_u", "dist_ref"):
        name = names.get(src, src)
        long_name, units = TRACE_VARS[name]
        data_vars[name] = (
            RUN_DIMS + ("step",),
            getattr(res, src).reshape(shape + (T,)),
            {"long_name": long_name, "units": units},
        )
    data_vars["w_final"] = (RUN_DIMS + ("feature",), res.w_final.reshape(shape + (n,)), {"long_name": "final w"})
    data_vars["u_final"] = (
        RUN_DIMS + ("feature",),
        res.u_final.reshape(shape + (n,)),
        {"long_name": "final sparse weights u = prox(w)"},
    )
    data_vars["status"] = (RUN_DIMS, res.status.reshape(shape), dict(STATUS_ATTRS))
    data_vars["steps_run"] = (RUN_DIMS, res.steps_run.reshape(shape), {"long_name": "steps taken", "units": "1"})
    return xr.Dataset(
        data_vars,
        coords={
            **{d: (d, coords[d]) for d in RUN_DIMS},
            "step": ("step", res.record_steps, {"long_name": "iteration t"}),
            "feature": np.arange(n),
        },
    )
