"""The basin study (study.experiments.basins, figure basins): its starts, its outcomes,
its counts and its config keys."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import xarray as xr
import yaml

import rvscgd
from rvscgd import theory
from study.config import ConfigError, load
from study.experiments import basins
from study.figures import basins as fig
from study.seeds import PURPOSE
from study.units import lam_effective

from .test_config import CONFIGS


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return load(yaml.safe_load(CONFIGS[0].read_text()))


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    import os

    old = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cfg"))
    try:
        config = load(yaml.safe_load(CONFIGS[0].read_text()))
    finally:
        os.chdir(old)
    # B = 8 as well: a noise floor above the hand tolerance, so some runs match by the floor alone
    config["basins"]["batch_size"] = [8, *config["basins"]["batch_size"]]
    return config, basins.train_cell(config, 8, 4, 0)


def refused(config) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load(config)
    return err.value.problems


def test_stream_id_is_new():
    assert PURPOSE["basin_starts"] not in [v for k, v in PURPOSE.items() if k != "basin_starts"]


def test_starts_are_reproducible_and_adversarial_ones_lie_in_the_angle_range(tiny):
    tiny["basins"]["starts"] = {"random": 5, "adversarial": 400}
    tiny["basins"]["adversarial_angle"] = [0.9, 0.95]
    w_star = rvscgd.make_teacher(8, 3, np.random.default_rng(0), 0.2)
    a = basins.starts(tiny, 8, 4, 0, w_star)
    b = basins.starts(copy.deepcopy(tiny), 8, 4, 0, w_star)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, basins.starts(tiny, 8, 4, 1, w_star))  # another cell, other starts
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0)
    theta = rvscgd.angle(a.T, w_star) / np.pi
    adv = theta[5:]
    assert adv.min() >= 0.9 - 1e-12 and adv.max() < 0.95
    # Uniform in the range: 400 draws, the mean within 4 standard errors of the middle.
    se = 0.05 / np.sqrt(12 * 400)
    assert abs(adv.mean() - 0.925) < 4 * se
    # The random starts are not confined there.
    assert theta[:5].min() < 0.9


def test_a_cell_is_bit_reproducible(cell):
    config, ds = cell
    again = basins.train_cell(copy.deepcopy(config), 8, 4, 0)
    assert again.identical(ds)


def test_cell_runs_from_its_starts_and_shares_the_stream(cell):
    config, ds = cell
    kinds = basins.start_kinds(config)
    assert ds["start_kind"].values.tolist() == kinds
    assert np.allclose(ds["theta0"].values, rvscgd.angle(ds["w0"].values.T, ds["w_star"].values))
    # A run from start j is the run of a single-start engine call from w0_j (batching does not change it).
    j, p, lam, beta = 1, "l1", 0.05, 0.1
    k = 4
    runs = rvscgd.make_runs(p, lam_effective(config, lam, k, p, beta), beta, 1.0)
    res = rvscgd.train(
        ds["w_star"].values,
        ds["w0"].values[j],
        k,
        runs,
        "population",
        max_steps=config["population"]["max_steps"],
        tol=config["population"]["tol"],
        record_steps=np.array([0]),
    )
    one = {"penalty": p, "lam": lam, "beta": beta, "eta": 1.0, "ste": "relu", "normalise": True}
    got = ds["w_final"].sel(setting="population", **one).isel(start=j).values
    assert np.allclose(got, res.w_final[0], atol=1e-12)
    # Empirical: the same run from the same start on the cell's stream, in a call of its own.
    from study.seeds import seed_sequence_key

    B = config["basins"]["batch_size"][0]
    res = rvscgd.train(
        ds["w_star"].values,
        ds["w0"].values[j],
        k,
        runs,
        "fresh",
        max_steps=config["empirical"]["max_steps"],
        tol=config["empirical"]["tol"],
        batch_size=B,
        record_steps=np.array([0]),
        seed=np.random.SeedSequence(**seed_sequence_key(config, 8, 4, 0, "stream")),
        precision=config["empirical"]["precision"],
        sample_threads=0,
        sampler="direct",
    )
    assert ds.attrs["sampler"] == "direct"  # auto, at 32 runs > n = 8
    got = ds["w_final"].sel(setting=f"empirical B={B}", **one).isel(start=j)
    # A different batch shape rounds differently (float32 products): equal to rounding, not bit for bit.
    assert np.allclose(got.values, res.w_final[0], atol=1e-4)


def test_engine_takes_one_start_per_run():
    w_star = rvscgd.make_teacher(10, 3, np.random.default_rng(1), 0.2)
    W0 = np.random.default_rng(2).standard_normal((3, 10))
    runs = rvscgd.make_runs(["l0", "l1", "tl1"], 0.002, 0.02, 1.0)
    both = rvscgd.train(w_star, W0, 4, runs, "population", max_steps=300, record_steps=np.array([0]))
    for i in range(3):
        one = rvscgd.train(w_star, W0[i], 4, runs.select([i]), "population", max_steps=300, record_steps=np.array([0]))
        assert np.allclose(both.w_final[i], one.w_final[0], atol=1e-12)
    assert np.allclose(both.angle_w[:, 0], rvscgd.angle(W0.T, w_star))
    with pytest.raises(ValueError, match="w0 must have shape"):
        rvscgd.train(w_star, W0[:2], 4, runs, "population", max_steps=3)


def test_best_fixed_point_is_the_stable_one_nearest_w_star_by_brute_force(cell):
    """reached_best == 1 exactly where the final w is (within its match
    distance, up to the orbit) the stable listed fixed point nearest w*, found
    here by enumerating every point's distance to w* and to the run's w
    directly. The match distance: the mode's tolerance, or for empirical runs
    the point's predicted noise-floor quantile where predicted (every point's,
    here), within which the support is not required; ``limit_match_rule`` says
    which, ``tolerance_hops`` where the nearest point's prediction hops."""
    config, ds = cell
    data = xr.Dataset({"w_star": ("feature", ds["w_star"].values)}, attrs={"n": 8, "k": 4, "seed": 0, "s": 3})
    from study.experiments.gaussian import predict_limits_cell

    limits = predict_limits_cell(config, data, {**basins.grid_coords(config), "ste": ["relu"]})
    w_star = ds["w_star"].values
    from study.floor import FLOOR_RULES, predict_floor_cell

    floors = predict_floor_cell(config, data, limits, config["basins"]["batch_size"], [0.0])
    checked, seen, by_floor, hops = 0, set(), 0, 0
    for setting in ds["setting"].values:
        mode = str(ds["mode"].sel(setting=setting).item())
        tol = config["limit"]["match_tol"][mode]
        for p in ds["penalty"].values:
            for lam in ds["lam"].values:
                for beta in ds["beta"].values:
                    lim = limits.sel(penalty=p, lam=lam, beta=beta, eta=1.0, ste="relu")
                    pts, st = lim["fp_w_bar"].values, lim["fp_stable"].values == 1
                    ok = np.all(np.isfinite(pts), axis=1) & st
                    if not ok.any():
                        continue
                    d_star = [
                        np.linalg.norm(rvscgd.orbit_distances(w_star, pts[[i]], w_star)[1][0] - w_star)
                        if ok[i]
                        else np.inf
                        for i in range(len(pts))
                    ]
                    best = int(np.argmin(d_star))
                    for s in ds["start"].values:
                        run = ds.sel(
                            setting=setting, penalty=p, lam=lam, beta=beta, eta=1.0, start=s, ste="relu", normalise=True
                        )
                        w = run["w_final"].values
                        d_best = rvscgd.orbit_distances(w_star, pts[[best]], w)[0][0]
                        d_all = [
                            rvscgd.orbit_distances(w_star, pts[[i]], w)[0][0] if np.isfinite(pts[i]).all() else np.inf
                            for i in range(len(pts))
                        ]
                        thr = float(lim["threshold"])
                        oriented = rvscgd.orbit_distances(w_star, pts[[best]], w)[1][0]
                        same = thr == 0 or np.array_equal(run["u_final"].values != 0, np.abs(oriented) > thr)
                        reach, floor = tol, False
                        if mode == "empirical":
                            fl = floors.sel(penalty=p, lam=lam, beta=beta, eta=1.0, ste="relu", label_noise=0.0).sel(
                                batch_size=int(ds["batch_size"].sel(setting=setting))
                            )
                            fb = fl.sel(fixed_point=best)
                            if int(fb["fp_floor_hops"]) == 0 and np.isfinite(float(fb["fp_floor_match_distance"])):
                                reach, floor = float(fb["fp_floor_match_distance"]), True
                        expect = d_best <= reach and int(np.argmin(d_all)) == best and (same or floor)
                        by_floor += bool(expect and floor and d_best > tol)
                        assert run["reached_best"].item() == float(expect), (setting, p, lam, beta, s)
                        # The rule: the nearest point's predicted floor, its hop flag, or no prediction.
                        rule = FLOOR_RULES["tolerance_no_prediction"]
                        if mode == "empirical":
                            near = fl.sel(fixed_point=int(np.argmin(d_all)))
                            if int(near["fp_floor_hops"]) == 0 and np.isfinite(float(near["fp_floor_match_distance"])):
                                rule = FLOOR_RULES["predicted_floor"]
                            elif int(near["fp_floor_hops"]) == 1:
                                rule = FLOOR_RULES["tolerance_hops"]
                                hops += 1
                        assert int(run["limit_match_rule"]) == rule, (setting, p, lam, beta, s)
                        checked += 1
                        seen.add(bool(expect))
    assert checked > 50
    assert seen == {True, False}  # the tiny cell has runs at the best point and runs elsewhere
    assert hops > 0  # a point whose floor prediction hops: matched by the tolerance, and labelled so
    assert by_floor > 0  # runs beyond the tolerance but within their predicted floor count as best


def test_region_from_the_cell_is_phase_region(cell):
    config, ds = cell
    w_star = ds["w_star"].values
    for p in ds["penalty"].values:
        for lam in ds["lam"].values:
            for beta in ds["beta"].values:
                want = theory.phase_region(w_star, 4, lam_effective(config, float(lam), 4), float(beta), str(p)).code
                assert int(ds["region"].sel(penalty=p, lam=lam, beta=beta, eta=1.0)) == want


def test_spurious_and_support_by_hand():
    w_star = xr.DataArray([0.6, -0.8, 0.0, 0.0], dims="feature")
    u = xr.DataArray(
        [
            [0.5, -0.5, 0.0, 0.0],  # the support, pointing along w*
            [0.0, 0.0, 0.3, 0.0],  # disjoint support
            [0.0, 0.0, 0.0, 0.0],  # u = 0: disjoint (empty)
            [-0.6, 0.8, 0.0, 0.0],  # the support, against w*
            [0.5, 0.0, 0.2, 0.0],  # overlaps, wrong support, along w*
            [np.nan, 0.0, 0.0, 0.0],  # diverged
        ],
        dims=("run", "feature"),
    )
    assert np.array_equal(basins.spurious(u, w_star).values, [0, 1, 1, 1, 0, np.nan], equal_nan=True)
    from study.matching import support_metrics

    assert np.array_equal(support_metrics(u, w_star)["support_exact"].values, [1, 0, 0, 1, 0, np.nan], equal_nan=True)


def test_shares_count_a_hand_built_dataset():
    """Hits and trials per (setting, kind, penalty, lam, beta): pooled over
    seeds and starts of the kind, NaN (diverged) runs not counted."""
    rb = np.zeros((1, 1, 2, 1, 3, 1, 1, 1, 1))  # n, k, seed, setting, start, penalty, lam, beta, eta
    rb[0, 0, 0, 0, :, 0, 0, 0, 0] = [1, 0, 1]
    rb[0, 0, 1, 0, :, 0, 0, 0, 0] = [1, np.nan, 0]
    dims = ("n", "k", "seed", "setting", "start", "penalty", "lam", "beta", "eta")
    ds = xr.Dataset(
        {q: (dims, rb) for q in fig.QUANTITIES},
        coords={
            "n": [8],
            "k": [4],
            "seed": [0, 1],
            "setting": ["population"],
            "start": [0, 1, 2],
            "start_kind": ("start", ["random", "random", "adversarial"]),
            "penalty": ["l1"],
            "lam": [0.05],
            "beta": [0.01],
            "eta": [1.0],
        },
    )
    ds["beta_over_c"] = (("beta", "k"), [[0.2]])
    df = fig.shares(ds).set_index(["quantity", "start_kind"])
    r = df.loc[("reached_best", "random")]
    assert (int(r["hits"]), int(r["trials"])) == (2, 3)  # 1, 0 | 1, NaN
    a = df.loc[("reached_best", "adversarial")]
    assert (int(a["hits"]), int(a["trials"])) == (1, 2)
    lo, hi = fig.wilson_interval(2, 3)
    assert (r["low"], r["high"]) == pytest.approx((lo, hi))
    assert r["beta_c"] == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("key", "value", "start"),
    [
        ("starts", {"random": 0, "adversarial": 0}, "basins.starts = "),
        ("adversarial_angle", [0.95, 0.9], "basins.adversarial_angle = [0.95, 0.9]: needs low < high"),
        ("adversarial_angle", [0.9, 1.2], "basins.adversarial_angle[1] = 1.2"),
        ("batch_size", [0], "basins.batch_size[0] = 0"),
        ("modes", ["sgd"], "basins.modes[0] = 'sgd'"),
        ("n", [2], "basins.n = [2]: teacher.sparsity = 3"),
        ("startz", 3, "basins.startz = 3: unknown key"),
    ],
)
def test_bad_basin_keys_are_refused_naming_them(tmp_path, monkeypatch, key, value, start):
    monkeypatch.chdir(tmp_path)
    config = yaml.safe_load(CONFIGS[0].read_text())
    config["basins"][key] = value
    problems = refused(config)
    assert any(p.startswith(start) for p in problems), problems
