"""Unit tests of the two-layer trainer (rvscgd.two_layer_train) and the
two-layer study glue (study.experiments.two_layer): batched equals one run at a time,
the sampled gradients equal the library's, the status rules, and the one-layer
datasets are untouched by the two-layer study."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from rvscgd import make_runs, make_teacher, prox
from rvscgd import two_layer as tl
from rvscgd import two_layer_train as tt
from rvscgd.model import STES

ROOT = Path(__file__).resolve().parents[2]


def _problem(n=8, k=3, seed=0):
    rng = np.random.default_rng(seed)
    w_star = make_teacher(n, 3, rng)
    v_star = tl.make_v_star(k, "normal", rng)
    return rng, w_star, v_star


def test_empirical_gradients_match_the_library():
    rng, w_star, v_star = _problem(6, 3)
    n, k, B, R = 6, 3, 40, 9
    W, V = rng.standard_normal((n, R)), rng.standard_normal((k, R))
    codes = np.arange(R) % 3
    Z = rng.standard_normal((B, k, n))
    y = tl.forward(Z, v_star, w_star)
    G_w, G_v = tt.empirical_gradients(Z.reshape(B * k, n), y, V, W, k, codes)
    for r in range(R):
        ref_w = tl.coarse_gradient(Z, V[:, r], W[:, r], v_star, w_star, STES[codes[r]])
        assert np.max(np.abs(G_w[:, r] - ref_w)) < 1e-13
        assert np.max(np.abs(G_v[:, r] - tl.gradient_v(Z, V[:, r], W[:, r], v_star, w_star))) < 1e-13
    assert np.max(np.abs(G_w)) > 0.01


def _reference_population(w_star, v_star, w0, v0, ste, lam, beta, eta, normalise, steps):
    """One run, written out from the library's formulas (not the trainer)."""
    w, v = w0.copy(), v0.copy()
    for _ in range(steps):
        u = prox(w, lam / beta, "l1")
        g_w = tl.expected_coarse_gradient(v, w, v_star, w_star, ste)
        g_v = tl.expected_gradient_v(v, w, v_star, w_star)
        w = w - eta * (g_w + beta * (w - u))
        if normalise:
            w = w / np.linalg.norm(w)
        v = v - eta * g_v
    return w, v


def test_population_batch_matches_one_run_at_a_time():
    rng, w_star, v_star = _problem()
    n, k = 8, 3
    grid = [(ste, lam, norm) for ste in STES for lam in (0.0, 0.002) for norm in (True, False)]
    w0 = rng.standard_normal(n)
    v0 = rng.standard_normal(k)
    runs = make_runs("l1", [g[1] for g in grid], 0.01, 0.2, ste=[g[0] for g in grid], normalise=[g[2] for g in grid])
    R = len(grid)
    res = tt.train(
        w_star, v_star, np.repeat(w0[:, None], R, 1), np.repeat(v0[:, None], R, 1), runs, max_steps=60, tol=0
    )
    for r, (ste, lam, norm) in enumerate(grid):
        w, v = _reference_population(w_star, v_star, w0, v0, ste, lam, 0.01, 0.2, norm, 60)
        assert np.max(np.abs(res.w_final[r] - w)) < 1e-10, (ste, lam, norm)
        assert np.max(np.abs(res.v_final[r] - v)) < 1e-10
        assert res.loss[r, -1] == pytest.approx(float(tl.population_loss(v, w, v_star, w_star)), abs=1e-10)
    assert np.all(res.status_names() == "max_steps")


def test_fresh_mode_batch_matches_single_runs_and_is_reproducible():
    rng, w_star, v_star = _problem()
    n, k = 8, 3
    R = 6
    W0, V0 = rng.standard_normal((n, R)), rng.standard_normal((k, R))
    runs = make_runs("l1", 0.001, 0.01, 0.2, ste=list(STES) * 2, normalise=[True] * 3 + [False] * 3)
    kw = dict(mode="fresh", max_steps=80, tol=0, batch_size=32, seed=np.random.SeedSequence(5))
    res = tt.train(w_star, v_star, W0, V0, runs, **kw)
    again = tt.train(w_star, v_star, W0, V0, runs, **kw)
    assert np.array_equal(res.w_final, again.w_final) and np.array_equal(res.loss, again.loss)
    for r in range(R):
        one = tt.train(w_star, v_star, W0[:, [r]], V0[:, [r]], runs.select([r]), **kw)
        assert np.max(np.abs(one.w_final[0] - res.w_final[r])) < 1e-10
        assert np.max(np.abs(one.v_final[0] - res.v_final[r])) < 1e-10
    other = tt.train(w_star, v_star, W0, V0, runs, **{**kw, "seed": np.random.SeedSequence(6)})
    assert not np.array_equal(other.w_final, res.w_final)


def test_late_extremes_and_classify():
    assert tt.late_extremes([3.0, 2.0, 1.0]) == (0.0, 2.0)
    assert tt.late_extremes([1.0, 2.0, 4.0]) == (3.0, 0.0)
    rise, fall = tt.late_extremes([1.0, 3.0, 0.5, 2.0])
    assert (rise, fall) == (2.0, 2.5)
    status = np.array([1, 1, 1, 1, 0, 2], dtype=np.int8)  # four at the step limit
    rise = np.array([2.0, 0.01, 0.0, 0.5, 5.0, np.nan])
    fall = np.array([2.0, 0.02, 3.0, 0.5, 5.0, np.nan])
    pop = tt.classify(status, rise, fall, 0.1, sampled=False)
    assert list(np.asarray(tt.STATUS)[pop]) == [
        "oscillating",
        "max_steps",
        "max_steps",
        "oscillating",
        "converged",
        "diverged",
    ]
    emp = tt.classify(status, rise, fall, 0.1, sampled=True)
    assert list(np.asarray(tt.STATUS)[emp])[:3] == ["oscillating", "converged", "max_steps"]


def test_online_rise_and_fall_equal_the_definition():
    """The trainer's online late-window extremes equal late_extremes of the
    loss after every step of the window (recorded here at every step)."""
    rng, w_star, v_star = _problem()
    n, k, T = 8, 3, 40
    W0, V0 = rng.standard_normal((n, 3)), rng.standard_normal((k, 3))
    runs = make_runs("l1", 0.0, 0.01, 0.5, ste=list(STES), normalise=False)
    res = tt.train(
        w_star,
        v_star,
        W0,
        V0,
        runs,
        "fresh",
        max_steps=T,
        tol=0,
        batch_size=16,
        seed=3,
        record_steps=np.arange(T + 1),
        window=0.5,
    )
    for r in range(3):
        rise, fall = tt.late_extremes(res.loss[r, T // 2 + 1 :])
        assert res.late_rise[r] == pytest.approx(rise, abs=1e-14)
        assert res.late_fall[r] == pytest.approx(fall, abs=1e-14)


def test_converged_and_diverged():
    """relu from a start on w*'s side converges to (v*, w*) (population,
    tol); a step size far beyond v's stability bound 8/(k+1) makes v blow
    up: diverged, NaN."""
    rng, w_star, v_star = _problem()
    n, k = 8, 3
    W0 = w_star[:, None] + 0.3 * rng.standard_normal((n, 2))
    V0 = v_star[:, None] + 0.3 * rng.standard_normal((k, 2))
    runs = make_runs("l1", 0.0, 0.01, [0.2, 3 * 8 / (k + 1)], ste="relu", normalise=True)
    res = tt.train(w_star, v_star, W0, V0, runs, max_steps=3000, tol=1e-10)
    assert list(res.status_names()) == ["converged", "diverged"]
    assert res.angle_w[0, -1] < 1e-6 and res.dist_v[0, -1] < 1e-6
    assert np.all(np.isnan(res.w_final[1])) and np.all(np.isnan(res.v_final[1]))
    assert res.steps_run[1] < 3000


def test_identity_radial_step_at_the_spurious_point():
    """docs/two_layer.md: at theta = pi, v = spurious_v(v*), relu's expected
    coarse gradient is 0 (the run stays put: converged at once) and
    identity's is radial, (||v||^2 + <v, v*>)/sqrt(2 pi) w-hat: one
    un-normalised step shrinks ||w|| by eta times that, v does not move."""
    rng = np.random.default_rng(1)
    n, k = 8, 4
    w_star = make_teacher(n, 3, rng)
    while True:
        v_star = tl.make_v_star(k, "normal", rng)
        if tl.spurious_minimum_exists(v_star):
            break
    v = tl.spurious_v(v_star)
    w0 = -w_star
    eta = 0.2
    runs = make_runs("l1", 0.0, 0.01, eta, ste=["relu", "identity"], normalise=False)
    W0, V0 = np.repeat(w0[:, None], 2, 1), np.repeat(v[:, None], 2, 1)
    res = tt.train(w_star, v_star, W0, V0, runs, max_steps=1, tol=1e-12)
    assert res.status_names()[0] == "converged"
    radial = (v @ v + v @ v_star) / np.sqrt(2 * np.pi)
    assert radial > 0
    assert np.linalg.norm(res.w_final[1]) == pytest.approx(1 - eta * radial, abs=1e-12)
    assert np.max(np.abs(res.v_final[1] - v)) < 1e-12


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(mode="fixed"), "^mode"),
        (dict(window=0.0), "^window"),
        (dict(amplitude=-1.0), "^amplitude"),
        (dict(max_steps=0), "^max_steps"),
        (dict(mode="fresh", batch_size=0), "^batch_size"),
    ],
)
def test_bad_arguments(kwargs, name):
    rng, w_star, v_star = _problem()
    runs = make_runs("l1", 0.0, 0.01, 0.2)
    with pytest.raises(ValueError, match=name):
        tt.train(w_star, v_star, rng.standard_normal((8, 1)), rng.standard_normal((3, 1)), runs, **kwargs)
    with pytest.raises(ValueError, match="^W0"):
        tt.train(w_star, v_star, rng.standard_normal((8, 2)), rng.standard_normal((3, 1)), runs)


# ------------------------------------------------------------------ study glue


def _tiny_config():
    from study.inprocess import load_config

    cfg = load_config(ROOT / ".test" / "config" / "config.yaml")
    cfg["dims"] = {"n": [8], "k": [4]}
    cfg["seeds"] = [0]
    cfg["population"]["max_steps"] = 60
    cfg["empirical"]["max_steps"] = 40
    cfg["digits"]["enabled"] = False  # its own part, with its own test
    cfg["basins"]["enabled"] = False  # likewise (tests/unit/test_basins.py)
    cfg["two_layer"].update(
        enabled=True, n=[8], k=[3], seeds=[0, 1], max_steps=40, batch_size=16, starts={**cfg["two_layer"]["starts"]}
    )
    cfg["two_layer"]["starts"].update(random=2, near_spurious=1)
    return cfg


def test_one_layer_datasets_identical_with_and_without_two_layer():
    """Adding the two-layer study or the basin study changes no one-layer number (bit for bit)."""
    from study.inprocess import build_datasets

    on = _tiny_config()
    on["label_noise"]["enabled"] = False  # its own slice and dataset; the two are compared here
    off = copy.deepcopy(on)
    off["two_layer"]["enabled"] = False
    with_two = build_datasets(on)
    without = build_datasets(off)
    assert set(with_two) == {"population", "empirical", "two_layer"}
    assert set(without) == {"population", "empirical"}
    for mode in ("population", "empirical"):
        xr.testing.assert_identical(with_two[mode], without[mode])
    # The basin study, too, changes no one-layer number (its starts have their own stream).
    basins = copy.deepcopy(off)
    basins["basins"]["enabled"] = True
    with_basins = build_datasets(basins)
    assert set(with_basins) == {"population", "empirical", "basins"}
    for mode in ("population", "empirical"):
        xr.testing.assert_identical(with_basins[mode], without[mode])
    two = with_two["two_layer"]
    assert two.sizes["seed"] == 2 and two.sizes["start"] == 3 and two.sizes["mode"] == 2
    assert list(two["start_kind"].values) == ["random", "random", "near_spurious"]
    # w* of a two-layer cell is the one-layer cell's of the same (n, k, seed) key
    from study.experiments.gaussian import make_data_cell
    from study.experiments.two_layer import teacher

    assert np.array_equal(teacher(on, 8, 4, 0)[0], make_data_cell(on, 8, 4, 0)["w_star"].values)
    assert two.attrs["Conventions"] == "CF-1.8"
    for name in ("loss", "angle_w", "dist_v", "status", "late_rise"):
        assert "long_name" in two[name].attrs
    # near-spurious starts are at angle pi - spurious_angle from w*
    theta0 = two["theta0"].isel(n=0, k=0).sel(start=2).values
    assert np.allclose(theta0, np.pi - on["two_layer"]["starts"]["spurious_angle"], atol=1e-12)


def test_two_layer_cell_reproducible():
    from study.experiments.two_layer import train_cell

    cfg = _tiny_config()
    a = train_cell(cfg, 8, 3, 1)
    b = train_cell(copy.deepcopy(cfg), 8, 3, 1)
    xr.testing.assert_identical(a, b)


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda c: c["two_layer"]["grid"].update(ste=["sign"]), "two_layer.grid.ste[0]"),
        (lambda c: c["two_layer"]["v_star"].update(rule="uniform"), "two_layer.v_star.rule"),
        (lambda c: c["two_layer"]["oscillation"].update(window=0.0), "two_layer.oscillation.window"),
        (lambda c: c["two_layer"].update(n=[2]), "two_layer.n"),
        (lambda c: c["two_layer"]["starts"].update(random=0, near_spurious=0), "two_layer.starts"),
        (lambda c: c["two_layer"].update(modes=["fixed"]), "two_layer.modes[0]"),
    ],
)
def test_bad_two_layer_config_is_refused_naming_the_key(edit, key):
    from study.config import ConfigError, load
    from study.inprocess import load_config

    cfg = load_config(ROOT / "config" / "config.yaml")
    edit(cfg)
    with pytest.raises(ConfigError) as err:
        load(cfg)
    assert any(p.startswith(key) for p in err.value.problems), err.value.problems
