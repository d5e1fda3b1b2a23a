"""Label noise (model.md section 1: y = f(Z; w*) + sigma N(0, 1)) in the
engine's empirical modes and the study's label-noise slice (experiment label_noise):
sigma = 0 leaves every number as it was, sigma > 0 adds exactly sigma times
the noise stream's normals to the labels and leaves the input stream alone."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import rvscgd
from rvscgd.engine import noise_seed
from rvscgd.model import coarse_gradient
from rvscgd.sampling import standard_normal_f32

ROOT = Path(__file__).resolve().parents[2]


def _setup(n=6, k=3):
    rng = np.random.default_rng(0)
    w_star = rvscgd.make_teacher(n, 2, rng)
    w0 = rng.standard_normal(n)
    runs = rvscgd.make_runs(["l1", "l0"], [0.0, 0.002], 0.02, 0.5, ste=["relu", "identity"], normalise=[True, False])
    return w_star, w0, runs


@pytest.mark.parametrize("mode, precision", [("fresh", "float64"), ("fresh", "float32"), ("fixed", "float64")])
def test_zero_noise_is_bit_identical(mode, precision):
    w_star, w0, runs = _setup()
    kw = dict(max_steps=30, tol=0.0, batch_size=20, train_size=50, seed=np.random.SeedSequence(3), precision=precision)
    base = rvscgd.train(w_star, w0, 3, runs, mode, **kw)
    zero = rvscgd.train(w_star, w0, 3, runs, mode, label_noise=0.0, **kw)
    noisy = rvscgd.train(w_star, w0, 3, runs, mode, label_noise=0.3, **kw)
    for name in ("w_final", "angle_w", "loss", "status"):
        assert np.array_equal(getattr(base, name), getattr(zero, name), equal_nan=True), name
    assert not np.array_equal(base.w_final, noisy.w_final)


def _one_step(W0, G, runs):
    """One RVSCGD step from the common start with coarse gradient G (n, R)."""
    U = rvscgd.engine.prox_columns(W0, runs)
    W = W0 - runs.eta * (G + runs.beta * (W0 - U))
    W[:, runs.normalise] /= np.linalg.norm(W[:, runs.normalise], axis=0)
    return W


def test_noise_is_added_to_the_labels_from_its_own_stream():
    """Exact path, one step: the same inputs as without noise (the input
    stream untouched) and labels f(Z; w*) + sigma xi with xi the first B
    normals of noise_seed(seed)."""
    n, k, B, sigma = 6, 3, 40, 0.25
    w_star, w0, runs = _setup(n, k)
    seed = np.random.SeedSequence(11)
    res = rvscgd.train(
        w_star, w0, k, runs, "fresh", max_steps=1, tol=0.0, batch_size=B, seed=seed, label_noise=sigma, sampler="direct"
    )
    Z = np.random.Generator(np.random.PCG64(seed)).standard_normal((B * k, n)).reshape(B, k, n)
    xi = np.random.Generator(np.random.PCG64(noise_seed(seed))).standard_normal(B)
    W0 = np.repeat((w0 / np.linalg.norm(w0))[:, None], len(runs), 1)
    G = np.empty_like(W0)
    for r in range(len(runs)):
        # coarse_gradient with labels y: residual f(w) - y, y = f(w*) + sigma xi
        clean = coarse_gradient(Z, W0[:, r], w_star, runs.ste[r])
        mu = rvscgd.model.ste_derivative(Z @ W0[:, r], runs.ste[r])
        shift = np.einsum("b,bk,bkn->n", sigma * xi, mu, Z) / (k * B)
        G[:, r] = clean - shift
    assert np.max(np.abs(res.w_final.T - _one_step(W0, G, runs))) < 1e-13
    assert np.max(np.abs(shift)) > 1e-3  # the noise term is not negligible here


def test_fast_path_noise_matches_a_float64_recomputation():
    """float32 path, one step: inputs from the fast path's sub-streams (first
    minibatch), labels with the same noise normals; float32 rounding only."""
    n, k, B, sigma = 6, 3, 40, 0.25
    w_star, w0, runs = _setup(n, k)
    seed = np.random.SeedSequence(12)
    res = rvscgd.train(
        w_star, w0, k, runs, "fresh", max_steps=1, tol=0.0, batch_size=B, seed=seed, label_noise=sigma,
        precision="float32", sample_threads=0, sampler="direct",
    )  # fmt: skip
    Z = standard_normal_f32(seed, (B * k, n), rows_per_item=k).astype(float).reshape(B, k, n)
    xi = np.random.Generator(np.random.PCG64(noise_seed(seed))).standard_normal(B)
    W0 = np.repeat((w0 / np.linalg.norm(w0))[:, None], len(runs), 1)
    G = np.empty_like(W0)
    for r in range(len(runs)):
        pre = Z @ W0[:, r]
        resid = (pre > 0).mean(axis=1) - (Z @ w_star > 0).mean(axis=1) - sigma * xi
        mu = rvscgd.model.ste_derivative(pre, runs.ste[r])
        G[:, r] = np.einsum("b,bk,bkn->n", resid, mu, Z) / (k * B)
    assert np.max(np.abs(res.w_final.T - _one_step(W0, G, runs))) < 1e-5


def test_bad_label_noise():
    w_star, w0, runs = _setup()
    for bad in (-0.1, np.nan, np.inf):
        with pytest.raises(ValueError, match="^label_noise"):
            rvscgd.train(w_star, w0, 3, runs, "fresh", max_steps=2, label_noise=bad)


def _config(sigma):
    """The test config with the label-noise slice on one small cell."""
    from study.inprocess import load_config

    cfg = load_config(ROOT / ".test" / "config" / "config.yaml")
    cfg["dims"] = {"n": [8], "k": [4]}
    cfg["seeds"] = [0]
    cfg["empirical"]["max_steps"] = 60
    cfg["label_noise"].update(
        enabled=True,
        n=[8],
        k=[4],
        seeds=[0],
        sigma=sigma,
        batch_size=[16, 32],
        grid={"penalty": ["l0", "l1"], "lam": [0.01], "beta": [0.01], "eta": [1.0]},
    )
    return cfg


def test_study_label_noise_dimension_keeps_sigma_zero_bit_identical():
    """The one-layer training without label noise has no label_noise
    dimension; with levels it has one, and its sigma = 0 slice equals the
    noise-free training exactly."""
    from study.experiments.gaussian import make_data_cell, predict_limits_cell, train_cell

    cfg = _config([0.0])
    data = make_data_cell(cfg, 8, 4, 0)
    limits = predict_limits_cell(cfg, data)
    clean = train_cell(cfg, "empirical", data, limits)
    assert "label_noise" not in clean.dims
    noisy = train_cell(cfg, "empirical", data, limits, label_noise=[0.0, 0.2, 0.5])
    assert list(noisy["label_noise"].values) == [0.0, 0.2, 0.5]
    xr.testing.assert_identical(noisy.sel(label_noise=0.0, drop=True), clean)
    # noise moves the runs (same inputs, other labels)
    assert not np.array_equal(noisy["w_final"].sel(label_noise=0.5).values, clean["w_final"].values)
    # population mode ignores it
    pop = train_cell(cfg, "population", data, limits, label_noise=[0.0, 0.2])
    xr.testing.assert_identical(pop, train_cell(cfg, "population", data, limits))


def test_negative_label_noise_refused_naming_the_key():
    from study.config import ConfigError, load

    cfg = copy.deepcopy(_config([0.0, -0.1]))
    with pytest.raises(ConfigError) as err:
        load(cfg)
    assert any(p.startswith("label_noise.sigma[1]") for p in err.value.problems), err.value.problems


def test_the_old_empirical_label_noise_key_is_refused_naming_it():
    """Label noise moved to its own block: a config that still sets
    empirical.label_noise is refused, naming the key, not silently ignored."""
    from study.config import ConfigError, load

    cfg = copy.deepcopy(_config([0.0]))
    cfg["empirical"]["label_noise"] = [0.0, 0.1]
    with pytest.raises(ConfigError) as err:
        load(cfg)
    assert any("label_noise" in p and p.startswith("empirical") for p in err.value.problems), err.value.problems


def test_label_noise_slice_is_the_one_layer_training_on_its_grid():
    """The slice's cell is the one-layer empirical training of the same
    (n, k, seed) on the block's grid: its teacher is the main cell's, and its
    runs equal a one-layer training of that grid at each sigma, bit for bit."""
    from study.experiments import gaussian, label_noise

    cfg = _config([0.0, 0.3])
    cell = label_noise.train_cell(cfg, 8, 4, 0)
    grid = label_noise.as_grid(cfg)
    data = gaussian.make_data_cell(cfg, 8, 4, 0)
    np.testing.assert_array_equal(cell["w_star"].values.ravel(), data["w_star"].values)
    limits = gaussian.predict_limits_cell(grid, data)
    direct = gaussian.train_cell(grid, "empirical", data, limits, label_noise=[0.0, 0.3])
    assert list(cell["method"].values) == ["rvscgd"] and list(cell["ste"].values) == ["relu"]
    for name in ("dist_wbar", "angle_w", "status", "floor_mean_sq"):
        np.testing.assert_array_equal(cell[name].squeeze(["n", "k", "seed"]).values, direct[name].values)


def test_noise_floor_figure_renders_the_sigma_axis(tmp_path):
    """The label-noise dataset carries label_noise, and the noise_floor
    figure draws one point per sigma."""
    from study.experiments import label_noise
    from study.figures import noise_floor

    cfg = _config([0.0, 0.2, 0.5])
    cfg["label_noise"]["seeds"] = [0, 1]
    ds = label_noise.combine([label_noise.train_cell(cfg, 8, 4, s) for s in (0, 1)], cfg)
    assert list(ds["label_noise"].values) == [0.0, 0.2, 0.5]
    fig = noise_floor.draw({"label_noise": ds})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "0.2", "0.5"]
    assert len(ax.lines) >= 1 and len(ax.lines[0].get_xdata()) == 3


def test_slice_depends_on_the_empirical_block_only_through_its_keys():
    """The slice's cells read the one-layer `empirical` block only through
    `EMPIRICAL_KEYS`, the part its train rule depends on (DEPENDS_ON): a cell
    trained with every other key of that block changed is identical, and a
    change to a listed key changes the dependency (so it retrains)."""
    from study.experiments import DEPENDS_ON, label_noise
    from study.experiments.label_noise_checks import EMPIRICAL_KEYS

    cfg = _config([0.0, 0.3])
    other = copy.deepcopy(cfg)
    other["empirical"].update(enabled=False, sampling="fixed", batch_size=[7], train_size=3)
    assert set(other["empirical"]) - set(EMPIRICAL_KEYS) == {"enabled", "sampling", "batch_size", "train_size"}
    assert DEPENDS_ON["label_noise"](other) == DEPENDS_ON["label_noise"](cfg)
    xr.testing.assert_identical(label_noise.train_cell(other, 8, 4, 0), label_noise.train_cell(cfg, 8, 4, 0))
    for key in EMPIRICAL_KEYS:
        changed = copy.deepcopy(cfg)
        changed["empirical"][key] = "changed"
        assert DEPENDS_ON["label_noise"](changed) != DEPENDS_ON["label_noise"](cfg), key
