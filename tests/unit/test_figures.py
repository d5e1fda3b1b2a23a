"""Every figure renders from a small in-process study (no workflow run), and
the figures' own computations hold: the linear-rate prediction of the
scaling figure, the exclusion and reporting of diverged runs, the statement
that multiple limits never happened, and slices that are not on the grid."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import yaml

import rvscgd
from study import figures, style
from study.inprocess import build_datasets, load_config

# Small but complete: every dimension a figure facets over has two values
# where the figure needs them (two n, two k, two seeds, two STEs, with and
# without normalisation, two batch sizes), so no code path is skipped.
TINY = {
    "seed": 11,
    "teacher": {"sparsity": 2, "min_abs": 0.2},
    "dims": {"n": [6, 8], "k": [2, 3]},
    "seeds": [0, 1],
    "grid": {
        "penalty": ["l0", "l1", "tl1"],
        "lam": [0, 0.05],
        "lam_units": "relative_to_c",
        "beta": [0.02, 0.05],
        "eta": [1.0],
        "ste": ["relu", "identity"],
        "normalise": [True, False],
    },
    "population": {"max_steps": 300},
    "empirical": {"batch_size": [16, 64], "max_steps": 60},
    "trace_points": 10,
    "limit": {"starts": 4},
}

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "config.yaml"
    path.write_text(yaml.safe_dump(TINY))
    config = load_config(path)
    return config, build_datasets(config)


def figure_text(fig) -> str:
    """All text drawn on a figure (titles, labels, notes, legends)."""
    return "\n".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))


@pytest.mark.parametrize("name", figures.FIGURES)
def test_every_figure_renders_png_and_pdf(study, name, tmp_path):
    config, datasets = study
    params = figures.figure_params(config["figures"], name)
    fig = getattr(figures, name)(datasets, **params)
    png, pdf = tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"
    style.save(fig, png, pdf, dpi=config["figures"]["dpi"])
    data = png.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 20_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert 600 <= width <= 2000 and 200 <= height <= 2000  # two-column sizes at ~200 dpi
    pdf_bytes = pdf.read_bytes()
    assert pdf_bytes[:5] == b"%PDF-"
    assert len(pdf_bytes) > 5_000


def test_config_lists_every_figure(study):
    config, _ = study
    assert set(figures.FIGURES) <= set(config["figures"])


def test_figures_draw_from_one_mode_only(study):
    """With one mode disabled, every figure still draws (from the other mode)."""
    config, datasets = study
    for mode in ("population", "empirical"):
        only = {mode: datasets[mode]}
        for name in figures.FIGURES:
            params = figures.figure_params(config["figures"], name)
            params.pop("mode", None)
            fig = getattr(figures, name)(only, **params)
            assert fig.axes
            style.plt.close(fig)


def test_diverged_runs_are_excluded_and_reported(study):
    config, datasets = study
    pop = datasets["population"].copy(deep=True)
    run = {"n": 8, "k": 2, "seed": 0, "penalty": "l1", "lam": 0.05, "beta": 0.02, "eta": 1.0, "ste": "relu"}
    for normalise in (True, False):
        pop["status"].loc[dict(run, normalise=normalise)] = figures.DIVERGED
    for var in ("angle_w", "angle_u", "loss", "sparsity_u", "dist_wbar"):
        pop[var].loc[dict(run, normalise=True)] = np.nan
    fig = figures.convergence({"population": pop}, slice={"n": 8, "k": 2})
    assert "1 of 4 runs diverged, excluded" in figure_text(fig)  # 2 seeds x 2 lambdas of l1
    fig = figures.normalisation({"population": pop}, slice={"n": 8, "k": 2}, lam=0.05, penalties=["l1"])
    assert "2 of 4 runs diverged, excluded" in figure_text(fig)  # 2 seeds x 2 normalise
    # the mean skips the diverged seed: it equals the other seed's trace
    both_seeds = {key: value for key, value in run.items() if key != "seed"}
    trace = pop["angle_w"].sel(dict(both_seeds, normalise=True))
    status = pop["status"].sel(dict(both_seeds, normalise=True))
    mean = figures.seed_stats(trace.where(status != figures.DIVERGED))[0]
    assert np.allclose(mean.values, trace.sel(seed=1).values)


def test_multiple_limits_says_when_it_never_happened(study):
    _, datasets = study
    pop = datasets["population"].copy(deep=True)
    pop["n_limits"] = pop["n_limits"].clip(max=1)
    fig = figures.multiple_limits({"population": pop})
    assert "never happened" in figure_text(fig)


def test_multiple_limits_draws_the_share_of_every_limit(study, tmp_path):
    """With per-limit counts in the dataset (``limit_counts``), the figure
    stacks the share of the starts reaching each fixed point."""
    _, datasets = study
    pop = datasets["population"].drop_vars("limit_counts").copy(deep=True)
    starts = 1 + TINY["limit"]["starts"]
    first = (pop["limit_share"].fillna(1) * starts).round()
    counts = xr.concat([first, starts - first, xr.zeros_like(first)], dim="limit")
    pop["limit_counts"] = counts.where(pop["n_limits"] > 0, 0).astype(int)
    pop["n_limits"] = xr.where(pop["n_limits"] > 0, 2, 0)  # every search: two fixed points
    fig = figures.multiple_limits({"population": pop})
    assert "share of starts reaching each fixed point" in figure_text(fig)
    style.save(fig, tmp_path / "m.png", tmp_path / "m.pdf", dpi=60)


def test_aggregated_limit_counts_cover_every_start(study):
    """The datasets' own limit_counts: each search's counts add up to its starts."""
    _, datasets = study
    counts = datasets["population"]["limit_counts"]
    assert counts.attrs["n_starts"] == 1 + TINY["limit"]["starts"] == counts.sizes["limit"]
    searched = datasets["population"]["n_limits"] > 0
    total = counts.sum("limit").where(searched)
    assert float(total.max()) <= counts.attrs["n_starts"]
    assert float(total.min()) >= 1


def test_slice_off_the_grid_is_an_error(study):
    _, datasets = study
    with pytest.raises(ValueError, match="beta=0.3"):
        figures.convergence(datasets, slice={"beta": 0.3})
    with pytest.raises(ValueError, match="unknown keys"):
        figures.resolve(datasets["population"], {"beta_": 0.02})
    with pytest.raises(ValueError, match="lam=0.5"):
        figures.ste(datasets, lam=0.5)


def test_default_slice():
    ds = xr.Dataset(
        coords={
            "n": [8, 16],
            "k": [4, 2],
            "beta": [0.05, 0.01],
            "ste": ["identity", "relu"],
            "normalise": [False, True],
            "batch_size": [64, 256],
        }
    )
    assert figures.resolve(ds, None) == {
        "n": 16,
        "k": 2,
        "beta": 0.05,
        "ste": "relu",
        "normalise": True,
        "batch_size": 256,
    }
    assert figures.resolve(ds, {"n": 8, "beta": 0.01})["beta"] == 0.01


def _limit_of_run(penalty, lam_rel, n=10, k=3, beta=0.04, eta=1.0):
    rng = np.random.default_rng(3)
    w_star = rvscgd.make_teacher(n, 3, rng, 0.2)
    w0 = rng.standard_normal(n)
    c = rvscgd.coarse_constant(k)
    runs = rvscgd.make_runs(penalty, lam_rel * c, beta, eta)
    # the limit this run reaches (to machine precision after 3000 steps)
    w_bar = rvscgd.train(w_star, w0, k, runs, "population", max_steps=3000, tol=0.0).w_final[0]
    return w_star, w0, k, c, runs, w_bar, beta, eta


@pytest.mark.parametrize("penalty,lam", [("l1", 0.0), ("l1", 0.05), ("l0", 0.05), ("tl1", 0.05), ("l1", 0.5)])
def test_linear_rate_is_the_spectral_radius_of_one_step(penalty, lam):
    """linear_rate equals the spectral radius of the Jacobian of one population
    step of the engine at the limit, by central differences on the tangent space."""
    w_star, _, k, c, runs, w_bar, beta, eta = _limit_of_run(penalty, lam)
    n = w_bar.size
    q, _ = np.linalg.qr(np.column_stack([w_bar, np.eye(n)]))
    Q = q[:, 1:n]
    h = 1e-6

    def step(w):
        return rvscgd.train(w_star, w, k, runs, "population", max_steps=1, tol=0.0).w_final[0]

    J = np.column_stack([Q.T @ (step(w_bar + h * Q[:, i]) - step(w_bar - h * Q[:, i])) / (2 * h) for i in range(n - 1)])
    expected = np.max(np.abs(np.linalg.eigvals(J)))
    assert figures.linear_rate(w_bar, w_star, c, lam * c, beta, eta, penalty) == pytest.approx(expected, abs=1e-6)
    if lam == 0:
        assert expected == pytest.approx(1 - eta * c, abs=1e-6)


@pytest.mark.parametrize("penalty,lam", [("l1", 0.0), ("l1", 0.05)])
def test_linear_rate_matches_the_population_dynamics(penalty, lam):
    """Where the slowest mode dominates, ||w^t - w_bar|| shrinks by the predicted rate per step."""
    w_star, w0, k, c, runs, w_bar, beta, eta = _limit_of_run(penalty, lam)
    rho = figures.linear_rate(w_bar, w_star, c, lam * c, beta, eta, penalty)
    steps = np.arange(3001)
    d = rvscgd.train(
        w_star, w0, k, runs, "population", max_steps=3000, tol=0.0, record_steps=steps, w_ref=w_bar[None, :]
    ).dist_ref[0]
    window = np.flatnonzero((d > 1e-10) & (d < 1e-4))
    assert window.size > 20
    measured = np.exp(np.polyfit(window, np.log(d[window]), 1)[0])
    assert measured == pytest.approx(rho, abs=2e-4)


def test_predicted_steps_of_plain_cgd_match_the_runs(study):
    """Plain CGD in population mode stops within 2% of the predicted step count."""
    config, datasets = study
    pop = datasets["population"].sel(lam=0.0, beta=0.02, eta=1.0, ste="relu", normalise=True, penalty="l1")
    tol = config["population"]["tol"]
    rho = 1 - pop["c"]  # eta = 1, relu
    theta0 = figures.vector_angle(pop["w0"], pop["w_star"])
    predicted = xr.apply_ufunc(figures.predicted_steps, theta0, rho, kwargs={"tol": tol})
    converged = pop["status"] == 0
    assert bool(converged.any())
    measured = pop["steps_run"].where(converged)
    err = np.abs(measured - predicted) / measured
    assert float(err.max()) < 0.02
