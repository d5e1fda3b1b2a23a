"""The empirical match by the predicted noise floor (issue 21 part 3; study.floor,
study.matching): the floor the study computes equals the library's, a run far
outside the predicted band is unpredicted and one inside it is matched, the
dataset carries the floor with units, the config key is checked."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

import rvscgd
from study.config import ConfigError, load
from study.experiments import gaussian as g
from study.floor import FLOOR_RULES, predict_floor_cell
from study.matching import LIMIT_KINDS, match_runs
from study.units import lam_effective

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / ".test" / "config" / "config.yaml"


@pytest.fixture(scope="module")
def cell():
    config = load(yaml.safe_load(TINY.read_text()))
    data = g.make_data_cell(config, 12, 4, 0)
    limits = g.predict_limits_cell(config, data)
    train = g.train_cell(config, "empirical", data, limits)
    return config, data, limits, train


def test_floor_equals_the_librarys(cell):
    config, data, limits, train = cell
    at = {"penalty": "l1", "lam": 0.01, "beta": 0.02, "eta": 1.0, "ste": "relu", "batch_size": 32}
    k = int(data.attrs["k"])
    nf = rvscgd.noise_floor(
        data["w_star"].values,
        k,
        lam_effective(config, 0.01, k, "l1", 0.02),
        0.02,
        "l1",
        1.0,
        32,
        w_bar=limits["w_bar"].sel({d: at[d] for d in ("penalty", "lam", "beta", "eta", "ste")}).values,
    )
    got = train.sel(at)
    # The study stops its solve at a relative change of 1e-3 (study.floor.SOLVE_RTOL), from warm starts.
    assert float(got["floor_mean_sq"]) == pytest.approx(nf.mean_sq, rel=5e-3)
    assert float(got["floor_state_independent"]) == pytest.approx(nf.state_independent, rel=5e-3)
    assert int(got["floor_hops"]) == int(nf.hops)
    # The match distance is at or above the setting's own simulated quantile (the tail factor is the heaviest),
    # up to the simulation's sampling error at q = 0.999 (a few per cent: 128 chains of 500 steps).
    q = float(config["limit"]["floor"]["quantile"])
    assert float(got["floor_match_distance"]) >= 0.95 * float(nf.distance_quantile(q))
    # A wrong floor (the textbook B^-1/2 from a floor at B = 1) is not what the study stores.
    assert float(got["floor_mean_sq"]) != pytest.approx(nf.mean_sq * 32 / 1, rel=0.5)


def test_far_outside_the_band_is_unpredicted_inside_is_matched(cell):
    config, data, limits, train = cell
    at = {"method": "rvscgd", "penalty": "l1", "lam": 0.01, "beta": 0.02, "eta": 1.0, "ste": "relu"}
    at.update(normalise=True, batch_size=32)
    w_bar = limits["w_bar"].sel({d: at[d] for d in ("penalty", "lam", "beta", "eta", "ste")}).values
    match = float(
        train["floor_match_distance"]
        .sel({d: at[d] for d in ("penalty", "lam", "beta", "eta", "ste")})
        .sel(batch_size=32)
    )
    assert np.isfinite(match) and match > 0
    # A direction in the tangent space at w_bar within the support of w* (the support does not change).
    direction = np.zeros_like(w_bar)
    on = np.flatnonzero(data["w_star"].values != 0)
    direction[on[0]], direction[on[1]] = 1.0, -1.0
    direction -= (direction @ w_bar) * w_bar
    direction /= np.linalg.norm(direction)

    def kind_at(distance, floor=True, tol=0.05):
        t = train.copy(deep=True)
        w = w_bar + distance * direction
        t["w_final"].loc[at] = w
        t["u_final"].loc[at] = rvscgd.prox(
            w, float(limits["threshold"].sel({d: at[d] for d in ("penalty", "lam", "beta", "eta", "ste")})), "l1"
        )
        fl = t["floor_match_distance"].where(t["floor_hops"] == 0) if floor else None
        m = match_runs(t, data, limits, tol, floor=fl)
        idx = tuple(t["w_final"].get_index(d).get_loc(at[d]) for d in m["dims"])
        return int(m["limit_kind"][idx]), int(m["limit_match_rule"][idx])

    assert kind_at(0.5 * match) == (LIMIT_KINDS["isolated"], FLOOR_RULES["predicted_floor"])
    assert kind_at(3.0 * match) == (LIMIT_KINDS["unpredicted"], FLOOR_RULES["predicted_floor"])
    # The same run matched by a tolerance the floor does not set: labelled so.
    assert kind_at(3.0 * match, floor=False, tol=10 * match) == (
        LIMIT_KINDS["isolated"],
        FLOOR_RULES["tolerance_no_prediction"],
    )


def test_the_dataset_carries_the_floor_with_units(cell):
    config, data, limits, train = cell
    ds = g.cell_dataset(train, data, limits, "empirical", **g.match_args(config, "empirical"))
    ds = g.combine([ds], config, "empirical")
    for name in (
        "floor_mean_sq",
        "floor_rms",
        "floor_state_independent",
        "floor_crossover_batch",
        "floor_hops",
        "floor_match_distance",
        "floor_quantile",
        "floor_measured_mean_sq",
        "fp_floor_match_distance",
        "fp_floor_hops",
    ):
        assert name in ds, name
        assert ds[name].attrs.get("units") == "1", name
        assert ds[name].attrs.get("long_name"), name
    assert ds["floor_quantile"].dims == ()
    assert "batch_size" in ds["floor_mean_sq"].dims and "seed" in ds["floor_mean_sq"].dims
    assert "batch_size" not in ds["floor_crossover_batch"].dims
    rule = ds["limit_match_rule"]
    assert rule.attrs["flag_meanings"].split() == list(FLOOR_RULES)
    # Every normalised relu rvscgd run of a stable setting is matched by its floor here (no hops on this cell).
    kind = ds["limit_kind"]
    assert set(np.unique(rule.where(kind >= 0).values[np.isfinite(rule.where(kind >= 0).values)])) <= {0, 1, 2}
    assert int((rule == FLOOR_RULES["predicted_floor"]).sum()) > 0
    assert ds["limit_kind"].attrs["floor_quantile"] == config["limit"]["floor"]["quantile"]


def test_population_matching_is_unchanged(cell):
    config, data, limits, _ = cell
    train = g.train_cell(config, "population", data, limits)
    ds = g.cell_dataset(train, data, limits, "population", **g.match_args(config, "population"))
    assert "limit_match_rule" not in ds and not any(v.startswith("floor_") for v in ds.data_vars)
    assert "floor_quantile" not in ds["limit_kind"].attrs


def test_floor_without_fresh_minibatches_is_not_predicted(cell):
    config, data, limits, _ = cell
    fixed = copy.deepcopy(config)
    fixed["empirical"]["sampling"] = "fixed"
    train = g.train_cell(fixed, "empirical", data, limits)
    assert "floor_mean_sq" not in train
    ds = g.cell_dataset(train, data, limits, "empirical", **g.match_args(fixed, "empirical"))
    rule = ds["limit_match_rule"].values
    assert set(np.unique(rule)) <= {FLOOR_RULES["not_applicable"], FLOOR_RULES["tolerance_no_prediction"]}


def test_predict_floor_cell_skips_settings_without_a_prediction(cell):
    config, data, limits, _ = cell
    fl = predict_floor_cell(config, data, limits, [32, 128], [0.0, 0.3])
    assert fl["floor_mean_sq"].dims == ("penalty", "lam", "beta", "eta", "ste", "batch_size", "label_noise")
    # label noise raises the floor, a larger B lowers it
    ms = fl["floor_mean_sq"].sel(penalty="l1", lam=0.01, beta=0.02, eta=1.0, ste="relu")
    assert float(ms.sel(batch_size=32, label_noise=0.3)) > float(ms.sel(batch_size=32, label_noise=0.0))
    assert float(ms.sel(batch_size=128, label_noise=0.0)) < float(ms.sel(batch_size=32, label_noise=0.0))
    # crossover: none in practice without a state-independent part (lam = 0: w_bar = w* up to rounding)
    assert 1e6 < (
        float(fl["floor_crossover_batch"].sel(penalty="l1", lam=0.0, beta=0.02, eta=1.0, ste="relu", label_noise=0.0))
    )


@pytest.mark.parametrize("value", [1.0, 0.3, "high"])
def test_bad_floor_quantile_is_refused_naming_it(tmp_path, monkeypatch, value):
    monkeypatch.chdir(tmp_path)
    config = yaml.safe_load(TINY.read_text())
    config["limit"]["floor"] = {"quantile": value}
    with pytest.raises(ConfigError) as err:
        load(config)
    (problem,) = err.value.problems
    assert problem.startswith(f"limit.floor.quantile = {value!r}:"), problem


def test_bad_floor_key_is_refused_naming_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = yaml.safe_load(TINY.read_text())
    config["limit"]["floor"] = {"enabled": "yes"}
    with pytest.raises(ConfigError) as err:
        load(config)
    (problem,) = err.value.problems
    assert problem.startswith("limit.floor.enabled = 'yes':"), problem


def test_floor_disabled_matches_by_the_tolerance_and_says_so(cell):
    config, data, limits, train = cell
    args = {**g.match_args(config, "empirical"), "floor_enabled": False}
    ds = g.cell_dataset(train, data, limits, "empirical", **args)
    rule = ds["limit_match_rule"].values
    applicable = ds["limit_kind"].values >= 0
    assert applicable.any()
    assert np.all(rule[applicable] == FLOOR_RULES["tolerance_no_prediction"])
    assert np.all(rule[~applicable] == FLOOR_RULES["not_applicable"])
    assert "floor_quantile" not in ds["limit_kind"].attrs
    assert "floor_mean_sq" in ds  # the floor variables are still written


def test_floors_only_at_the_nearest_points_give_the_same_matches():
    """With the runs' final weights, the floor of a listed point other than
    w_bar is predicted only where some run ended nearest it (the only floor
    the match reads, ``match_runs``): the matches, rules and distances are
    those of the full prediction, and there are fewer predicted points.
    Default grid's l0 at n = 32 (many listed points), one seed."""
    config = load(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    config["grid"].update(method=["rvscgd"], ste=["relu"], normalise=[True])
    config["empirical"]["batch_size"] = [64]
    data = g.make_data_cell(config, 32, 4, 0)
    limits = g.predict_limits_cell(config, data)
    train = g.train_cell(config, "empirical", data, limits, floor=False)
    full = predict_floor_cell(config, data, limits, [64], [0.0])
    near = predict_floor_cell(config, data, limits, [64], [0.0], finals=train["w_final"])
    full_pts = int(np.isfinite(full["fp_floor_match_distance"]).sum())
    near_pts = int(np.isfinite(near["fp_floor_match_distance"]).sum())
    assert near_pts < full_pts  # it saves work here...
    computed = np.isfinite(near["fp_floor_match_distance"])
    xr_equal = full["fp_floor_match_distance"].where(computed).equals(near["fp_floor_match_distance"])
    assert xr_equal  # ...and where it predicts, it predicts the same numbers
    matches = []
    for fl in (full, near):
        t = train.copy()
        for name, var in fl.isel(label_noise=0, drop=True).data_vars.items():
            t[name] = var
        floor = t["fp_floor_match_distance"].where(t["fp_floor_hops"] == 0)
        matches.append(match_runs(t, data, limits, 0.05, floor=floor))
    for key in ("limit_kind", "limit_index", "limit_match_rule", "limit_distance"):
        np.testing.assert_array_equal(matches[0][key], matches[1][key], err_msg=key)
