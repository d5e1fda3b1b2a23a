"""The one-layer Gaussian experiment (config blocks ``dims``, ``seeds``,
``grid``, ``population``, ``empirical``, ``limit``; docs/theory.md): a cell
(n, k, seed) has its data (teacher w*, start w0), predicted limits and the
training runs of each mode; a mode's cells make the dataset of that name.
Labelled xarray datasets; no file I/O here (see ``study.ncio``). The
experiment contract: ``study.experiments``."""

from __future__ import annotations

import copy
import time

import numpy as np
import xarray as xr

import rvscgd
from rvscgd.engine import resolve_sampler

from ..floor import floor_config, point_match_distance, predict_floor_cell
from ..grid import MODES, RUN_DIMS, cells, run_coords, teacher_sparsity, trained_runs
from ..labels import SUPPORT_LONG_NAMES, TRACE_ANGLES, TRACE_SPARSITY, set_long_names, status_attrs
from ..matching import (
    DEFAULT_MATCH_TOL,
    LIMIT_VARS,
    final_sparse_metrics,
    fp_support_exact,
    limit_kind_attrs,
    limit_match_rule_attrs,
    match_runs,
    run_summaries,
    support_metrics,
)
from ..seeds import PURPOSE as PURPOSE
from ..seeds import rng, seed_sequence
from ..stacking import sort_grid, stack_cells, stack_ragged
from ..stationary import mean_sq_floor
from ..units import contraction_time, empirical_steps, eta_effective, lam_attrs, lam_effective

LIMIT_DIMS = ("penalty", "lam", "beta", "eta", "ste")
TRACE_VARS = {
    **TRACE_ANGLES,
    "loss": ("population loss L(w^t) = theta / (2 pi k)", "1"),
    "sparsity_u": TRACE_SPARSITY,
    "dist_wbar": ("distance ||w^t - w_bar|| to the predicted limit (stable fixed point nearest w*)", "1"),
}
STATUS_ATTRS = status_attrs(rvscgd.STATUS)
# Kept in the per-cell files only (train: final weights; limits: the listed fixed points'
# weights): per run and per listed point they would make the datasets several GB.
DROPPED_VARS = ("w_final", "u_final", "fp_w_bar")
# The listed fixed points' variables: a CF contiguous ragged array along SAMPLE_DIM, one
# count per setting (FP_COUNT over the cell dims and LIMIT_DIMS); fp_stable marks them.
SAMPLE_DIM = "listed_point"
FP_COUNT = "fp_count"
# With baselines: a grid point a baseline is not trained on (grid.BASELINE_SLICE).
NOT_TRAINED = -1


def make_data_cell(config: dict, n: int, k: int, seed: int) -> xr.Dataset:
    """Teacher w*, start w0 (shared by all runs of the cell) and the seed of
    the fixed training set (regenerated on demand: cheaper than storing it)."""
    s = teacher_sparsity(config, n)
    w_star = rvscgd.make_teacher(n, s, rng(config, n, k, seed, "teacher"), config["teacher"]["min_abs"])
    w0 = rng(config, n, k, seed, "start").standard_normal(n)
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


FLAG_BITS = {"at_threshold": 1, "neutral": 2, "fold": 4, "inexact": 8}


def predict_limits_cell(config: dict, data: xr.Dataset, coords: dict | None = None) -> xr.Dataset:
    """Every fixed point of docs/theory.md section 5 for each (penalty, lam, beta, eta, ste).

    From ``rvscgd.fixed_points`` (scalar analysis, no dynamics): the listed
    fixed points (``fp_*``, dimension ``fixed_point``, NaN-padded), the l0
    continuum's conditions (``cont_*``), how many stable ones the theory
    predicts (``n_limits``), and ``w_bar``/``u_bar``: the stable one nearest w*
    (the theory's best limit). Which one a run reached is decided later, by
    matching its final state (``study.matching.match_runs``). ``clipped_relu`` has no
    constant c: NaN there (documented). ``coords``: the values of LIMIT_DIMS
    to predict at (default: the run grid's; the basin study passes its own).
    """
    n, k, seed = int(data.attrs["n"]), int(data.attrs["k"]), int(data.attrs["seed"])
    w_star = data["w_star"].values
    coords = {d: v for d, v in (run_coords(config) if coords is None else coords).items() if d in LIMIT_DIMS}
    shape = tuple(len(coords[d]) for d in LIMIT_DIMS)
    a = config["grid"]["tl1_a"]
    results = {}
    for idx in np.ndindex(shape):
        penalty, lam, beta, eta, ste = (coords[d][i] for d, i in zip(LIMIT_DIMS, idx, strict=True))
        if ste == "clipped_relu":
            continue
        results[idx] = rvscgd.fixed_points(
            w_star, k, lam_effective(config, lam, k, penalty, beta), beta, penalty, a=a, ste=ste, eta=eta
        )
    P = max([len(fp) for fp in results.values()], default=0)
    P = max(P, 1)
    w_bar = np.full(shape + (n,), np.nan)
    u_bar = np.full(shape + (n,), np.nan)
    n_limits = np.zeros(shape, dtype=np.int64)
    n_points = np.zeros(shape, dtype=np.int64)
    n_cont = np.zeros(shape, dtype=np.int8)
    stable = np.zeros(shape, dtype=np.int8)
    fp_w = np.full(shape + (P, n), np.nan)
    fp_stable = np.full(shape + (P,), -1, dtype=np.int8)
    fp_mult = np.zeros(shape + (P,), dtype=np.int64)
    fp_N = np.full(shape + (P,), np.nan)
    fp_flags = np.zeros(shape + (P,), dtype=np.int8)
    cont_base = np.full(shape + (n,), np.nan)
    cont_radius = np.full(shape, np.nan)
    cont_thr = np.full(shape, np.nan)
    cont_min = np.zeros(shape, dtype=np.int32)
    cont_max = np.zeros(shape, dtype=np.int32)
    thr = np.full(shape, np.nan)
    for idx, fp in results.items():
        thr[idx] = rvscgd.threshold(fp.lam / fp.beta, fp.penalty, fp.a)
        n_limits[idx], n_points[idx], n_cont[idx] = fp.n_stable, fp.n_points, len(fp.continuum)
        for j, p in enumerate(fp):
            fp_w[idx][j], fp_stable[idx][j], fp_mult[idx][j], fp_N[idx][j] = p.w_bar, p.stable, p.multiplicity, p.N
            fp_flags[idx][j] = sum(FLAG_BITS[f] for f in p.flags)
        good = [j for j, p in enumerate(fp) if p.stable]
        if good:
            dist, oriented = rvscgd.orbit_distances(w_star, fp_w[idx][good], w_star)
            best = int(np.argmin(dist))
            w_bar[idx] = oriented[best]
            u_bar[idx] = rvscgd.prox(oriented[best], fp.lam / fp.beta, fp.penalty, fp.a)
            stable[idx] = 1
        if fp.continuum:
            cont = fp.continuum[0]
            cont_base[idx], cont_radius[idx], cont_thr[idx] = cont.base, cont.radius, cont.threshold
            cont_min[idx], cont_max[idx] = cont.size_min, cont.size_max
    dims = LIMIT_DIMS
    fdims = dims + ("fixed_point",)
    flag_attrs = {
        "long_name": "conditions that hold only up to rounding (bit mask)",
        "flag_masks": np.array(list(FLAG_BITS.values()), dtype=np.int8),
        "flag_meanings": " ".join(FLAG_BITS),
    }
    ds = xr.Dataset(
        {
            "w_bar": (dims + ("feature",), w_bar, {"long_name": "predicted limit: the stable fixed point nearest w*"}),
            "u_bar": (dims + ("feature",), u_bar, {"long_name": "predicted sparse limit u_bar = prox(w_bar)"}),
            "n_limits": (dims, n_limits, {"long_name": "stable isolated fixed points the theory predicts"}),
            "n_fixed_points": (dims, n_points, {"long_name": "isolated fixed points listed (stable or not)"}),
            "n_continua": (dims, n_cont, {"long_name": "continua of fixed points (l0, beta > c)"}),
            "limit_stable": (dims, stable, {"long_name": "w_bar exists and is linearly stable (1) or not (0)"}),
            "fp_w_bar": (fdims + ("feature",), fp_w, {"long_name": "every listed fixed point (one per profile)"}),
            "fp_stable": (fdims, fp_stable, {"long_name": "listed fixed point is linearly stable (1/0; -1 padding)"}),
            "fp_multiplicity": (fdims, fp_mult, {"long_name": "distinct fixed points the profile stands for"}),
            "fp_N": (fdims, fp_N, {"long_name": "N = ||c w* + beta u_bar|| of the listed fixed point"}),
            "fp_flags": (fdims, fp_flags, flag_attrs),
            "cont_base": (dims + ("feature",), cont_base, {"long_name": "continuum: the fixed support part c w*/beta"}),
            "cont_radius": (dims, cont_radius, {"long_name": "continuum: ||x_K|| of its kept off-support entries"}),
            "cont_threshold": (dims, cont_thr, {"long_name": "continuum: threshold its kept entries exceed"}),
            "cont_size_min": (dims, cont_min, {"long_name": "continuum: fewest kept off-support entries (0: none)"}),
            "cont_size_max": (dims, cont_max, {"long_name": "continuum: most kept off-support entries"}),
            "threshold": (dims, thr, {"long_name": "prox threshold: entries above it are kept", "units": "1"}),
        },
        coords={**coords, "fixed_point": np.arange(P), "feature": np.arange(n)},
        attrs={"n": n, "k": k, "seed": seed, "source": "rvscgd.fixed_points (scalar analysis, docs/theory.md)"},
    )
    return ds


def run_steps(config: dict, mode: str, k: int) -> int:
    """Steps of a run at k: population runs stop on ``tol`` within
    ``max_steps``; empirical runs take their step budget (``empirical_steps``)."""
    return empirical_steps(config, k) if mode == "empirical" else int(config[mode]["max_steps"])


def record_steps(config: dict, mode: str) -> np.ndarray:
    """The steps traces are recorded at, one grid for every cell of a mode (so
    cells stack along k): about ``trace_points`` log-spaced steps up to the
    longest run, and each k's last step. A cell records those it reaches."""
    ends = sorted({run_steps(config, mode, int(k)) for k in config["dims"]["k"]})
    steps = rvscgd.log_record_steps(ends[-1], config["trace_points"])
    return np.union1d(steps, ends) if mode == "empirical" else steps


def train_cell(
    config: dict,
    mode: str,
    data: xr.Dataset,
    limits: xr.Dataset,
    threads: int = 1,
    label_noise=(0.0,),
    floor: bool = True,
) -> xr.Dataset:
    """Train every run of the grid on one cell with the batched engine.

    In empirical mode every batch size B is trained (dimension
    ``batch_size``), all on the same input stream (common random numbers);
    with a fixed training set, ``batch_size`` holds the set's size m. Each
    label-noise level sigma of ``label_noise`` is trained on that stream too
    (dimension ``label_noise``, absent for the default ``(0.0,)``).
    ``floor``: predict the noise floor (fresh minibatches; ``study.floor``).
    """
    n, k, seed = int(data.attrs["n"]), int(data.attrs["k"]), int(data.attrs["seed"])
    w_star = data["w_star"].values
    w0 = data["w0"].values
    coords = run_coords(config)
    shape = tuple(len(coords[d]) for d in RUN_DIMS)
    unique, take = trained_runs(config, k)
    runs = rvscgd.make_runs(
        penalty=[r["penalty"] for r in unique],
        lam=[lam_effective(config, r["lam"], k, r["penalty"], r["beta"]) for r in unique],
        beta=[r["beta"] for r in unique],
        eta=[eta_effective(config, r, k) for r in unique],
        a=config["grid"]["tl1_a"],
        ste=[r["ste"] for r in unique],
        normalise=[r["normalise"] for r in unique],
        method=[r["method"] for r in unique],
    )
    # The predicted limit applies to normalised RVSCGD runs (model.md section 5).
    w_ref = np.stack(
        [
            limits["w_bar"].sel(penalty=r["penalty"], lam=r["lam"], beta=r["beta"], eta=r["eta"], ste=r["ste"]).values
            if r["normalise"] and r["method"] == "rvscgd"
            else np.full(n, np.nan)
            for r in unique
        ]
    )
    mcfg = config[mode]
    steps = run_steps(config, mode, k)
    record = record_steps(config, mode)
    record = record[record <= steps]

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
            max_steps=steps,
            tol=mcfg["tol"],
            seed=stream,
            record_steps=record,
            w_ref=w_ref,
            sparsity=int(data.attrs["s"]),  # iht knows the teacher's s
            **fast,
            **kwargs,
        )
        ds = _result_dataset(_scatter(res, take), shape, coords, n)
        if "prune" in coords["method"]:
            ds = _prune(ds)
        # How the inputs were drawn (draw by draw, projected and direct differ; in distribution they agree).
        ds.attrs["sampler"] = res.extra["sampler"]
        return ds

    def empirical(sigma):
        if config["empirical"]["sampling"] == "fresh":
            stream = seed_sequence(config, n, k, seed, "stream")
            sizes = [int(b) for b in config["empirical"]["batch_size"]]
            ds = xr.concat([one("fresh", stream, batch_size=b, label_noise=sigma) for b in sizes], dim="batch_size")
            return ds.assign_coords(batch_size=("batch_size", sizes, {"long_name": "inputs per step B"})), "fresh"
        stream = seed_sequence(config, n, k, seed, "train_set")
        m = int(config["empirical"]["train_size"])
        ds = one("fixed", stream, train_size=m, label_noise=sigma).expand_dims(batch_size=[m])
        ds["batch_size"].attrs["long_name"] = "fixed training set size m (full batch)"
        return ds, "fixed"

    if mode == "population":
        ds = one("population", None)
        sampling = "expectation"
    else:
        sigmas = [float(s) for s in label_noise]
        if sigmas == [0.0]:
            # No label_noise dimension: the datasets are exactly those of a study without label noise.
            ds, sampling = empirical(0.0)
        else:
            # Every sigma on the same input stream (and the same noise draws, scaled).
            parts = [empirical(s) for s in sigmas]
            sampling = parts[0][1]
            ds = xr.concat([p[0] for p in parts], dim="label_noise")
            ds = ds.assign_coords(
                label_noise=("label_noise", sigmas, {"long_name": "label noise sigma: y = f(Z; w*) + sigma N(0, 1)"})
            )
    ds.attrs.update({"n": n, "k": k, "seed": seed, "mode": mode, "sampling": sampling, "steps_budget": steps})
    if mode == "empirical" and sampling == "fresh" and floor:
        # The predicted noise floor the match uses (study.floor; fresh minibatches only).
        sigmas = ds["label_noise"].values if "label_noise" in ds.dims else [0.0]
        floor = predict_floor_cell(config, data, limits, ds["batch_size"].values, sigmas, finals=ds["w_final"])
        if "label_noise" not in ds.dims:
            floor = floor.isel(label_noise=0, drop=True)
        for name, var in floor.data_vars.items():
            ds[name] = var
    return ds


def _scatter(res, take):
    """The trained runs' results on the whole grid: run i is ``take[i]``'s,
    NaN (status and steps_run -1) where ``take[i]`` is -1 (not trained)."""
    take = np.asarray(take)
    missing = take < 0
    src = np.where(missing, 0, take)

    def spread(a, fill):
        out = a[src].astype(np.result_type(a.dtype, type(fill)) if isinstance(fill, float) else a.dtype)
        out[missing] = fill
        return out

    out = rvscgd.TrainResult(
        record_steps=res.record_steps,
        **{f: spread(getattr(res, f), np.nan) for f in ("angle_w", "angle_u", "loss", "sparsity_u", "dist_ref")},
        w_final=spread(res.w_final, np.nan),
        u_final=spread(res.u_final, np.nan),
        status=spread(res.status, -1),
        steps_run=spread(res.steps_run, -1),
        extra={"lbeta": spread(res.extra["lbeta"], np.nan)},
    )
    return out


def _prune(ds: xr.Dataset) -> xr.Dataset:
    """The prune baseline's sparse weights: its final (plain CGD) w pruned by
    magnitude to the nonzeros the RVSCGD run of the same grid point reaches
    (``rvscgd.prune_to``); NaN where that run diverged or prune was not trained."""
    methods = ds["method"].values.tolist()
    axis = ds["u_final"].dims.index("method")
    U = np.moveaxis(ds["u_final"].values.copy(), axis, 0)  # (method, ..., feature)
    W = np.moveaxis(ds["w_final"].values, axis, 0)
    rv, pr = U[methods.index("rvscgd")], W[methods.index("prune")]
    count = (rv != 0).sum(-1)
    ok = ~np.isnan(rv).any(-1) & ~np.isnan(pr).any(-1)
    pruned = np.full(pr.shape, np.nan)
    for pos in zip(*np.nonzero(ok), strict=True):
        pruned[pos] = rvscgd.prune_to(pr[pos], int(count[pos]))
    U[methods.index("prune")] = pruned
    ds["u_final"] = (ds["u_final"].dims, np.moveaxis(U, 0, axis), ds["u_final"].attrs)
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
    data_vars["lbeta"] = (
        RUN_DIMS + ("step",),
        res.extra["lbeta"].reshape(shape + (T,)),
        {"long_name": "relaxed objective L(w^t) + lam P(u^t) + beta/2 ||w^t - u^t||^2, true population loss"},
    )
    # Does L_beta rise along the run (on the recorded steps), and by how much above its running minimum?
    lb = res.extra["lbeta"]
    running_min = np.fmin.accumulate(lb, axis=1)
    rise = np.nanmax(np.where(np.isnan(lb), -np.inf, lb - running_min), axis=1)
    rise = np.where(np.all(np.isnan(lb), axis=1), np.nan, np.maximum(rise, 0.0))
    scale = np.nanmax(np.abs(lb), axis=1, initial=0.0)
    data_vars["lbeta_rise"] = (
        RUN_DIMS,
        rise.reshape(shape),
        {"long_name": "largest rise of L_beta above its running minimum (recorded steps)", "units": "1"},
    )
    data_vars["lbeta_rises"] = (
        RUN_DIMS,
        np.where(np.isnan(rise), -1, rise > 1e-12 * np.maximum(scale, 1e-300)).astype(np.int8).reshape(shape),
        {"long_name": "L_beta rose somewhere on the recorded steps (1), never (0), undefined (-1)"},
    )
    data_vars["w_final"] = (RUN_DIMS + ("feature",), res.w_final.reshape(shape + (n,)), {"long_name": "final w"})
    data_vars["u_final"] = (
        RUN_DIMS + ("feature",),
        res.u_final.reshape(shape + (n,)),
        {"long_name": "final sparse weights u = prox(w)"},
    )
    status_attrs = dict(STATUS_ATTRS)
    steps_attrs = {"long_name": "steps taken", "units": "1"}
    if np.any(res.status == NOT_TRAINED):
        status_attrs["flag_values"] = np.array([NOT_TRAINED, 0, 1, 2], dtype=np.int8)
        status_attrs["flag_meanings"] = "not_trained " + STATUS_ATTRS["flag_meanings"]
        steps_attrs["long_name"] = "steps taken (-1: not trained)"
    data_vars["status"] = (RUN_DIMS, res.status.reshape(shape), status_attrs)
    data_vars["steps_run"] = (RUN_DIMS, res.steps_run.reshape(shape), steps_attrs)
    return xr.Dataset(
        data_vars,
        coords={
            **{d: (d, coords[d]) for d in RUN_DIMS},
            "step": ("step", res.record_steps, {"long_name": "iteration t"}),
            "feature": np.arange(n),
        },
    )


def cell_dataset(
    train: xr.Dataset,
    data: xr.Dataset,
    limits: xr.Dataset,
    mode: str,
    match_tol: float | None = None,
    floor_enabled: bool = True,
    quantile: float | None = None,
    max_steps: int | None = None,
) -> xr.Dataset:
    """One cell's training runs joined with its teacher, predicted fixed points
    and the fixed point each run reached (``match_runs``). Empirical runs are
    matched by their predicted noise floor where it applies (``study.floor``,
    ``floor_enabled``), else by ``match_tol``; ``limit_match_rule`` says which.
    ``max_steps``: the run length (the measured floor averages its second
    half; default: the training's ``steps_budget``)."""
    if max_steps is None:
        max_steps = int(train.attrs.get("steps_budget", train["step"].max()))
    ds = train.copy()
    ds["w_star"] = data["w_star"]
    ds["w0"] = data["w0"]
    for name in LIMIT_VARS:
        ds[name] = limits[name]
    tol = DEFAULT_MATCH_TOL[mode] if match_tol is None else float(match_tol)
    floor = None
    if "floor_match_distance" in train and floor_enabled:
        floor = point_match_distance(train)
    m = match_runs(train, data, limits, tol, floor=floor)
    dims = m.pop("dims")
    ds["limit_kind"] = (
        dims,
        m["limit_kind"],
        limit_kind_attrs(tol, floor_quantile=quantile if floor is not None else None),
    )
    if mode == "empirical":
        rule = m["limit_match_rule"]
        ds["limit_match_rule"] = (dims, rule, limit_match_rule_attrs())
        if "floor_mean_sq" in train:
            ds["floor_measured_mean_sq"] = mean_sq_floor(train["dist_wbar"], max_steps)
            ds["floor_measured_mean_sq"].attrs = {
                "long_name": "measured noise floor: time average of ||w^t - w_bar||^2 over the recorded steps "
                "of the run's second half",
                "units": "1",
            }
    ds["limit_index"] = (dims, m["limit_index"], {"long_name": "fixed_point index of the matched point (-1: none)"})
    ds["limit_distance"] = (
        dims,
        m["limit_distance"],
        {"long_name": "distance of w_final to the nearest predicted stable fixed point or continuum", "units": "1"},
    )
    ds["limit_best"] = (dims, m["limit_best"], {"long_name": "1 if the run ended at w_bar (best stable point)"})
    ds.update(support_metrics(ds["u_final"], ds["w_star"]))
    ds.update(final_sparse_metrics(ds["u_final"], ds["w_star"]))
    ds.update({f"predicted_{k}": v for k, v in support_metrics(ds["u_bar"], ds["w_star"]).items()})
    # The datasets hold summaries, not the final weights (per-cell training files) nor the
    # listed fixed points' weights (per-cell limits files): docs/datasets.md, "What the datasets hold".
    ds.update(run_summaries(ds["u_final"], ds["u_bar"], ds["w_star"]))
    ds["fp_support_exact"] = fp_support_exact(limits, data["w_star"])
    ds = ds.drop_vars([*DROPPED_VARS, "feature"])
    coords = {"n": [int(train.attrs["n"])], "k": [int(train.attrs["k"])], "seed": [int(train.attrs["seed"])]}
    ds = ds.expand_dims(coords)
    ds.attrs = {}
    return ds


def combine(cells: list[xr.Dataset], config: dict, mode: str) -> xr.Dataset:
    """Stack cells along n, k, seed (and batch_size), NaN-padding the vectors beyond n;
    the listed fixed points' variables (dimension ``fixed_point``, one length per
    cell) become a CF contiguous ragged array (``study.stacking.stack_ragged``).

    Consumes ``cells``: the list is emptied and each cell's arrays are freed as
    they are stacked (``stack_cells(consume=True)``), if the caller holds no
    other reference to the cells: the aggregate job's peak memory is then about
    the dataset plus one variable, not the cells plus twice the dataset. Traces
    are NaN-padded beyond a k's step budget (each cell records the steps of
    the mode's grid it reaches: ``record_steps``)."""
    steps = np.unique(np.concatenate([c["step"].values for c in cells]))
    cells[:] = [c if c.sizes["step"] == steps.size else c.reindex(step=steps) for c in cells]
    points = [c[[v for v in c.data_vars if "fixed_point" in c[v].dims]] for c in cells]
    own = [c.drop_dims("fixed_point", errors="ignore") for c in cells]
    cells.clear()
    ds = stack_cells(own, pad=("feature",), consume=True)
    ks = ds["k"].values
    if config["grid"]["lam_units"] == "threshold":  # lambda depends on the penalty and beta too
        pens, betas = ds["penalty"].values.tolist(), [float(b) for b in ds["beta"].values]
        lam_eff = np.array(
            [
                [[[lam_effective(config, lam, int(k), p, b) for k in ks] for b in betas] for lam in ds["lam"].values]
                for p in pens
            ]
        )
        eff_dims = ("penalty", "lam", "beta", "k")
    else:
        lam_eff = np.array([[lam_effective(config, lam, int(k)) for k in ks] for lam in ds["lam"].values])
        eff_dims = ("lam", "k")
    ds["lam_effective"] = (
        eff_dims,
        lam_eff,
        {"long_name": "lambda used by the algorithm", "units": "1"},
    )
    ds["c"] = (
        "k",
        [rvscgd.coarse_constant(int(k), "relu") for k in ks],
        {"long_name": "relu coarse-gradient constant c(k)"},
    )
    if mode == "empirical":
        ds["steps_budget"] = (
            "k",
            [empirical_steps(config, int(k)) for k in ks],
            {
                "long_name": "steps of every run at k: empirical.contraction_times times 1/(eta c(k)), "
                "at most empirical.max_steps",
                "units": "1",
            },
        )
        ds["contraction_time"] = (
            "k",
            [contraction_time(config, int(k)) for k in ks],
            {"long_name": "contraction time 1/(eta c(k)) in steps, eta the grid's smallest", "units": "1"},
        )
    ds["lam"].attrs.update(lam_attrs(config))
    ds["beta"].attrs.update(long_name="splitting parameter beta", units="1")
    ds["eta"].attrs.update(long_name="step size eta", units="1")
    if "method" in ds.dims:
        ds["method"].attrs.update(long_name="training method: rvscgd or a baseline at matched sparsity")
    ds["penalty"].attrs.update(long_name="sparsity penalty")
    ds["ste"].attrs.update(long_name="straight-through estimator")
    ds["normalise"].attrs.update(long_name="normalisation step on (method) or off (ablation)")
    ds["n"].attrs.update(long_name="features per patch n")
    ds["k"].attrs.update(long_name="patches k")
    ds["seed"].attrs.update(long_name="seed index of the cell")
    if "batch_size" in ds.dims:
        ds["batch_size"].attrs.update(long_name="inputs per step B")
    set_long_names(
        ds,
        {
            **SUPPORT_LONG_NAMES,
            "predicted_support_precision": "support precision of u_bar",
            "predicted_support_recall": "support recall of u_bar",
            "predicted_support_exact": "1 if supp(u_bar) == supp(w*)",
        },
        units="1",
    )
    if "floor_match_distance" in ds:
        fcfg = floor_config(config)
        ds["floor_quantile"] = (
            (),
            float(fcfg["quantile"]),
            {"long_name": "quantile of the predicted stationary law used for the empirical match", "units": "1"},
        )
    # Facts the figures need, carried by the data (not read back from the provenance config).
    ds.attrs.update(
        mode=mode,
        lam_units=config["grid"]["lam_units"],
        tl1_a=float(config["grid"]["tl1_a"]),
        # netCDF attributes cannot be None: "none" means iht steps at the grid's eta.
        iht_eta=float(config["grid"]["iht_eta"]) if config["grid"].get("iht_eta") is not None else "none",
        tol=float(config[mode]["tol"]),
        title=f"RVSCGD study, {mode} mode",
    )
    ds = sort_grid(ds)
    count_dims = ("n", "k", "seed", *LIMIT_DIMS)
    ragged = stack_ragged(points, ds, "fixed_point", SAMPLE_DIM, FP_COUNT, count_dims, listed="fp_stable")
    ragged[FP_COUNT].attrs["long_name"] = "fixed points listed at the setting (the fp_* variables' count)"
    ragged["fp_stable"].attrs["long_name"] = "listed fixed point is linearly stable (1/0)"
    return ds.merge(ragged)


# ---- the experiment contract (study.experiments) ---------------------------------
REQUIRED = {
    "data": (("w_star", "w0"), ()),
    "limits": (("w_bar", "u_bar"), ()),
    "train": (("angle_w", "w_final", "status"), ("step",)),
}


def _cell(wildcards: dict) -> tuple[int, int, int]:
    return int(wildcards["n"]), int(wildcards["k"]), int(wildcards["seed"])


def prepare(config: dict, wildcards: dict) -> tuple[dict[str, xr.Dataset], list[str]]:
    """A cell's data (teacher, start) and predicted limits (rule prepare_gaussian).

    The fixed-point enumeration (rvscgd.fixed_points, docs/theory.md) runs here, not in a job of its
    own: it takes about a second per cell, less than a job's start-up."""
    data = make_data_cell(config, *_cell(wildcards))
    limits = predict_limits_cell(config, data)
    return {"data": data, "limits": limits}, [
        f"stable fixed points predicted per grid point: max {int(limits.n_limits.max())}"
    ]


def train(config: dict, wildcards: dict, inputs: dict, threads: int = 1) -> tuple[xr.Dataset, list[str]]:
    """Every run of the grid on one (mode, n, k, seed) cell (rule train_gaussian)."""
    mode = wildcards["mode"]
    ds = train_cell(config, mode, inputs["data"], inputs["limits"], threads=threads)
    status = ds["status"].values.ravel()
    counts = ", ".join(f"{name} {int(np.sum(status == code))}" for code, name in enumerate(rvscgd.STATUS))
    if np.any(status < 0):  # baselines off their slice (study.grid.BASELINE_SLICE)
        counts += f", not_trained {int(np.sum(status < 0))}"
    n, k, seed = _cell(wildcards)
    return ds, [f"{mode} n={n} k={k} seed={seed}: {status.size} runs, {counts}"]


def match_args(config: dict, mode: str) -> dict:
    """How a mode's runs are matched to the fixed points (``cell_dataset``)."""
    fcfg = floor_config(config)
    return {
        "match_tol": config["limit"]["match_tol"][mode],
        "floor_enabled": bool(fcfg["enabled"]),
        "quantile": float(fcfg["quantile"]),
    }


def aggregate(config: dict, dataset: str, inputs: dict) -> tuple[xr.Dataset, list[str]]:
    """One labelled dataset of a mode's cells (rule aggregate_gaussian, ``dataset`` the mode)."""
    parts = [
        cell_dataset(train, data, limits, dataset, **match_args(config, dataset))
        for train, data, limits in zip(inputs["train"], inputs["data"], inputs["limits"], strict=True)
    ]
    n_cells = len(parts)
    ds = combine(parts, config, dataset)  # empties parts (frees the cells as they are stacked)
    # Diverged runs stay in the dataset, flagged (status) and NaN (weights, traces after
    # divergence): counted here so no reader can miss them.
    diverged = int((ds["status"] == rvscgd.STATUS.index("diverged")).sum())
    trained = int((ds["status"] >= 0).sum())  # not the baselines' untrained grid points (status -1)
    ds.attrs.update(runs_total=trained, runs_diverged=diverged, runs_not_trained=int(ds["status"].size) - trained)
    lines = [f"{dataset}: {n_cells} cells, dims {dict(ds.sizes)}"]
    if diverged:
        lines.append(f"WARNING: {diverged} of {trained} {dataset} runs diverged (status 'diverged', NaN weights)")
    return ds, lines


def build(config: dict) -> dict[str, xr.Dataset]:
    """{mode: dataset} of every enabled mode, in one process."""
    out, cache = {}, {}
    for mode in MODES:
        parts = []
        for c in cells(config, mode):
            key = (c["n"], c["k"], c["seed"])
            if key not in cache:
                data = make_data_cell(config, *key)
                cache[key] = (data, predict_limits_cell(config, data))
            data, limits = cache[key]
            parts.append(
                cell_dataset(train_cell(config, mode, data, limits), data, limits, mode, **match_args(config, mode))
            )
        if parts:
            out[mode] = combine(parts, config, mode)
    return out


# ---- cost model (study.plan) ---------------------------------------------------------
def _sampler(config: dict, n: int) -> str:
    emp = config["empirical"]
    return resolve_sampler(
        emp["sampler"], "fresh" if emp["sampling"] == "fresh" else "fixed", n, len(trained_runs(config, 1)[0])
    )


def plan_rows(config: dict, fraction: float, compare_direct: bool = False) -> list[dict]:
    """One row per (n, k): its first seed's cell timed, each mode for a fraction of its steps."""
    rows = []
    seed = config["seeds"][0]
    n_seeds = len(config["seeds"])
    for n in config["dims"]["n"]:
        for k in config["dims"]["k"]:
            t0 = time.process_time()
            data = make_data_cell(config, n, k, seed)
            limits = predict_limits_cell(config, data)
            t_data = time.process_time() - t0
            row = {"n": n, "k": k, "make_data_s": t_data}
            for mode in MODES:
                if not config[mode]["enabled"]:
                    continue
                short = copy.deepcopy(config)
                full_steps = run_steps(config, mode, k)
                short[mode]["max_steps"] = max(10, int(full_steps * fraction))
                short[mode].pop("contraction_times", None)  # the cut step count, whatever the budget
                t0 = time.process_time()
                trained = train_cell(short, mode, data, limits, floor=False)
                elapsed = time.process_time() - t0
                floor_s = _floor_cost(config, mode, data, limits, trained["w_final"])
                # The floor prediction is a fixed cost per cell (timed apart): the steps scale, it does not.
                row[f"{mode}_s"] = elapsed * full_steps / short[mode]["max_steps"] + floor_s
                if floor_s:
                    row["floor_s"] = floor_s
                if mode == "empirical":
                    row["sampler"] = _sampler(config, n)
                    if compare_direct:
                        short["empirical"]["sampler"] = "direct"
                        t0 = time.process_time()
                        train_cell(short, mode, data, limits, floor=False)
                        direct_s = time.process_time() - t0
                        row["empirical_direct_s"] = direct_s * full_steps / short[mode]["max_steps"] + floor_s
            row["cell_s"] = row["make_data_s"] + sum(row.get(f"{m}_s", 0.0) for m in MODES)
            row["all_seeds_s"] = row["cell_s"] * n_seeds
            if "empirical_direct_s" in row:
                row["all_seeds_direct_s"] = (row["cell_s"] - row["empirical_s"] + row["empirical_direct_s"]) * n_seeds
            rows.append(row)
            direct = f" (direct {row['empirical_direct_s']:8.1f} s)" if "empirical_direct_s" in row else ""
            floor = f" (floor {row['floor_s']:.1f} s of it)" if "floor_s" in row else ""
            print(
                f"n={n:4d} k={k:3d}  make_data {row['make_data_s']:7.1f} s  "
                + "  ".join(f"{m} {row.get(f'{m}_s', 0.0):8.1f} s" for m in MODES)
                + (f" [{row['sampler']}]{direct}{floor}" if "sampler" in row else "")
                + f"  x{n_seeds} seeds = {row['all_seeds_s'] / 3600:6.2f} core-h",
                flush=True,
            )
    return rows


def _floor_cost(config: dict, mode: str, data: xr.Dataset, limits: xr.Dataset, finals: xr.DataArray) -> float:
    """CPU seconds of the cell's noise-floor prediction (what ``train_cell`` adds
    in empirical mode with fresh minibatches, whatever its step count; at the
    points nearest the timed runs' ``finals``, as there); 0 otherwise."""
    if mode != "empirical" or config["empirical"]["sampling"] != "fresh":
        return 0.0
    t0 = time.process_time()
    predict_floor_cell(config, data, limits, config["empirical"]["batch_size"], [0.0], finals=finals)
    return time.process_time() - t0


def jobs(config: dict) -> str:
    """Its jobs for the config, in words (study.plan's first line)."""
    cells_n = len(config["dims"]["n"]) * len(config["dims"]["k"]) * len(config["seeds"])
    modes = [m for m in MODES if config[m]["enabled"]]
    return (
        f"{cells_n} cells x {len(trained_runs(config, 1)[0])} runs each; jobs: {cells_n} prepare_gaussian, "
        f"{cells_n * len(modes)} train_gaussian, {len(modes)} aggregate_gaussian"
    )


def plan(config: dict, fraction: float, compare_direct: bool = False) -> dict:
    """Predicted core-seconds of the cells (data and training), the longest
    training job, and with ``compare_direct`` the total with ``sampler: direct``."""
    rows = plan_rows(config, fraction, compare_direct)
    out = {
        "core_s": sum(r["all_seeds_s"] for r in rows),
        "longest_s": max(max(r.get(f"{m}_s", 0.0) for m in MODES) for r in rows),
    }
    if compare_direct and config["empirical"]["enabled"]:
        out["direct_core_s"] = sum(r["all_seeds_direct_s"] for r in rows)
    return out
