"""The empirical step budget in units of the contraction time 1/(eta c(k))
(``empirical.contraction_times``): the step count it gives, the traces of
cells with different budgets stacked on one step axis, and a check that the
default budget outlasts the transient, so the measured noise floor (the time
average over the second half of a run) is not biased by it."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest

import rvscgd
from study.experiments import gaussian
from study.floor import predict_floor_cell
from study.inprocess import load_config
from study.stationary import mean_sq_floor
from study.units import empirical_steps

ROOT = Path(__file__).resolve().parents[2]


def _c(k: int) -> float:
    """c(k) = E[relu'(z)] phi(0) / k ... written out: 1 / (2 k sqrt(2 pi)) (model.md section 2)."""
    return 1.0 / (2.0 * k * math.sqrt(2.0 * math.pi))


def test_steps_are_contraction_times_over_eta_c():
    config = load_config(ROOT / "config" / "config.yaml")
    config["grid"]["eta"] = [1.0, 0.5]
    config["empirical"].update(contraction_times=12, max_steps=100_000)
    for k in (1, 4, 8, 16):
        assert empirical_steps(config, k) == math.ceil(12 / (0.5 * _c(k))), k  # the smallest eta sets it
    # Four times the patches, four times the steps (up to the rounding up).
    assert abs(empirical_steps(config, 16) / empirical_steps(config, 4) - 4) < 0.01
    config["empirical"]["max_steps"] = 500
    assert empirical_steps(config, 16) == 500  # the cap
    config["empirical"]["contraction_times"] = None
    assert empirical_steps(config, 4) == empirical_steps(config, 16) == 500  # off: every run takes max_steps


def test_a_bad_budget_is_refused_naming_the_key():
    from study.config import ConfigError, load

    config = load_config(ROOT / "config" / "config.yaml")
    for bad in (0, -3, "long"):
        cfg = copy.deepcopy(config)
        cfg["empirical"]["contraction_times"] = bad
        with pytest.raises(ConfigError) as err:
            load(cfg)
        assert any(p.startswith("empirical.contraction_times") for p in err.value.problems), err.value.problems


def test_cells_of_different_budgets_stack_on_one_step_axis():
    """Each k runs its own budget: its traces end at its last step (recorded),
    NaN beyond; every trained run took exactly its budget (tol 0)."""
    config = load_config(ROOT / ".test" / "config" / "config.yaml")
    config["dims"] = {"n": [8], "k": [2, 4]}
    config["seeds"] = [0]
    config["empirical"].update(contraction_times=3, max_steps=10_000, batch_size=[16])
    config["population"]["enabled"] = False
    parts = []
    for k in (2, 4):
        data = gaussian.make_data_cell(config, 8, k, 0)
        limits = gaussian.predict_limits_cell(config, data)
        train = gaussian.train_cell(config, "empirical", data, limits)
        parts.append(gaussian.cell_dataset(train, data, limits, "empirical"))
    steps = sorted(set(parts[0]["step"].values) | set(parts[1]["step"].values))
    step_attrs = parts[1]["step"].attrs
    ds = gaussian.combine(parts, config, "empirical")  # consumes parts
    # One step axis: the union of the cells' recorded steps, on the traces only.
    assert ds["step"].values.tolist() == steps
    assert "step" not in ds["status"].dims and "step" not in ds["steps_run"].dims
    assert ds["step"].attrs == step_attrs
    for k in (2, 4):
        budget = math.ceil(3 / _c(k))
        assert int(ds["steps_budget"].sel(k=k)) == budget
        sub = ds.sel(k=k)
        trained = sub["status"] >= 0
        assert (sub["steps_run"].where(trained) == budget).all()
        angle = sub["angle_w"].where(trained & (sub["status"] != rvscgd.STATUS.index("diverged")))
        assert angle.sel(step=budget).notnull().any()
        assert angle.sel(step=ds["step"] > budget).isnull().all()


@pytest.mark.parametrize("n, k", [(32, 4), (64, 8)])
def test_the_default_budget_outlasts_the_transient(n, k):
    """The measured floor is the average of ||w^t - w_bar||^2 over the
    recorded steps of a run's second half (``study.stationary.mean_sq_floor``). Its bias
    from the approach to the limit is that same average for the noise-free
    run (population mode: the deterministic part of the dynamics). At the
    default budget it must be below 5% of the smallest predicted floor
    (the largest B), for every setting whose noise-free run ends at w_bar and
    has a predicted floor: default grid (method, relu, normalised), seed 0.
    (The distance itself at half the budget is not enough: at lambda = 0 it is
    still a quarter of that floor at n = 32, k = 4; its average is not.)"""
    config = load_config(ROOT / "config" / "config.yaml")
    config["grid"].update(method=["rvscgd"], ste=["relu"], normalise=[True])
    budget = empirical_steps(config, k)
    data = gaussian.make_data_cell(config, n, k, 0)
    limits = gaussian.predict_limits_cell(config, data)
    B = max(config["empirical"]["batch_size"])
    floor = predict_floor_cell(config, data, limits, [B], [0.0])["floor_mean_sq"].isel(batch_size=0, label_noise=0)

    def population(steps, tol):
        short = copy.deepcopy(config)
        short["population"].update(max_steps=steps, tol=tol)
        ds = gaussian.train_cell(short, "population", data, limits)["dist_wbar"]
        return ds.squeeze(["method", "ste", "normalise"], drop=True)

    bias = mean_sq_floor(population(budget, 0.0), budget)
    at_w_bar = population(50 * budget, 1e-13).isel(step=-1) < 1e-6
    predicted = floor.squeeze("ste", drop=True)
    checked = predicted.notnull() & at_w_bar
    assert int(checked.sum()) >= 10  # enough settings to check
    ratio = (bias / predicted).where(checked)
    assert float(ratio.max()) < 0.05, ratio.where(ratio >= 0.05, drop=True).to_series().dropna()
