"""Every registered figure renders from a small in-process study (no workflow
run), the registry matches the figure sources, and the figures' own
computations hold: the exclusion and reporting of diverged runs, the statement
that multiple limits never happened, slices that are not on the grid, dataset
dimensions no figure knows yet. (The linear-rate theory is tested in
test_rates.py.)"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

import rvscgd
from study import style
from study.figures import registry, select, stats
from study.figures.registry import FIGURES, figure_params
from study.inprocess import build_datasets, load_config

PACKAGE = Path(registry.__file__).parent

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
    "two_layer": {
        "enabled": True,
        "n": [6],
        "k": [3],
        "seeds": [0, 1],
        "starts": {"random": 2, "near_spurious": 1},
        "grid": {"lam": [0, 0.05], "ste": ["relu", "identity"], "normalise": [True, False]},
        "max_steps": 60,
        "batch_size": 16,
    },
    # Two sigmas, two batch sizes, two penalties: every point of the noise_floor figure.
    "label_noise": {
        "enabled": True,
        "n": [6],
        "k": [2],
        "seeds": [0, 1],
        "sigma": [0.0, 0.2],
        "batch_size": [16, 64],
        "grid": {"penalty": ["l1", "tl1"], "lam": [0.05], "beta": [0.02]},
    },
    # Two betas (one per side of beta = c(3) = 0.066), both start kinds, both modes.
    "basins": {
        "enabled": True,
        "n": [6],
        "k": [3],
        "seeds": [0, 1],
        "starts": {"random": 3, "adversarial": 1},
        "grid": {"penalty": ["l0", "l1"], "lam": [0, 0.05], "beta": [0.02, 0.2]},
        "batch_size": [16],
    },
    # Two seeds, two penalties, two lambdas: every panel of the digits figure has a band.
    "digits": {
        "seeds": [0, 1],
        "filters": 4,
        "steps": 20,
        "batch_size": 64,
        "grid": {"penalty": ["l0", "l1"], "lam": [0, 0.004]},
        "finetune": {"steps": 5},
    },
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


def draw(name, datasets, **params):
    return importlib.import_module(f"study.figures.{name}").draw(datasets, **params)


def package_imports(module: str) -> set[str]:
    """The sibling modules of the package that ``module``'s source imports (ast)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("study.figures"):
            rest = node.module.split(".")[2:]
            out.update(rest[:1] if rest else [alias.name for alias in node.names])
    return out


def test_every_figure_module_is_registered():
    """A figure module the registry does not list (or an entry without a module) fails."""
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "registry", "catalog"} - set(registry.SHARED)
    assert modules == set(FIGURES)
    for name in FIGURES:
        assert (PACKAGE.parents[2] / "workflow" / FIGURES[name].caption(name)).is_file(), name


@pytest.mark.parametrize("name", [*FIGURES, *registry.SHARED])
def test_registry_lists_the_shared_modules_each_source_imports(name):
    declared = FIGURES[name].uses if name in FIGURES else registry.SHARED[name]
    assert package_imports(name) == set(declared), name


def test_registry_imports_without_plotting_libraries():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import study.figures.registry; "
        "bad = {'matplotlib', 'seaborn', 'xarray'} & set(sys.modules); assert not bad, bad"
    )
    import subprocess

    subprocess.run([sys.executable, "-c", code, str(PACKAGE.parents[1])], check=True)


@pytest.mark.parametrize("name", FIGURES)
def test_every_figure_renders_png_and_pdf(study, name, tmp_path):
    config, datasets = study
    fig = draw(name, datasets, **figure_params(config["figures"], name))
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
    assert set(FIGURES) <= set(config["figures"])


def test_figures_draw_from_one_mode_only(study):
    """With one mode disabled, every figure that reads that mode still draws
    (the workflow does not run a figure none of whose datasets exist)."""
    config, datasets = study
    for mode in ("population", "empirical"):
        only = {mode: datasets[mode]}
        for name in [f for f in FIGURES if mode in FIGURES[f].datasets]:
            params = figure_params(config["figures"], name)
            params.pop("mode", None)
            fig = draw(name, only, **params)
            assert fig.axes
            style.plt.close(fig)


def test_diverged_runs_are_excluded_and_reported(study):
    config, datasets = study
    pop = datasets["population"].copy(deep=True)
    run = {"n": 8, "k": 2, "seed": 0, "penalty": "l1", "lam": 0.05, "beta": 0.02, "eta": 1.0, "ste": "relu"}
    for normalise in (True, False):
        pop["status"].loc[dict(run, normalise=normalise)] = stats.DIVERGED
    for var in ("angle_w", "angle_u", "loss", "sparsity_u", "dist_wbar"):
        pop[var].loc[dict(run, normalise=True)] = np.nan
    fig = draw("convergence", {"population": pop}, slice={"n": 8, "k": 2})
    assert "1 of 4 runs diverged, excluded" in figure_text(fig)  # 2 seeds x 2 lambdas of l1
    fig = draw("normalisation", {"population": pop}, slice={"n": 8, "k": 2}, lam=0.05, penalties=["l1"])
    assert "2 of 4 runs diverged, excluded" in figure_text(fig)  # 2 seeds x 2 normalise
    # the mean skips the diverged seed: it equals the other seed's trace
    both_seeds = {key: value for key, value in run.items() if key != "seed"}
    trace = pop["angle_w"].sel(dict(both_seeds, normalise=True))
    status = pop["status"].sel(dict(both_seeds, normalise=True))
    mean = stats.seed_stats(trace.where(status != stats.DIVERGED))[0]
    assert np.allclose(mean.values, trace.sel(seed=1).values)


def test_multiple_limits_says_when_it_never_happened(study):
    _, datasets = study
    pop = datasets["population"].copy(deep=True)
    pop["n_limits"] = pop["n_limits"].clip(max=1)
    fig = draw("multiple_limits", {"population": pop})
    assert "never happened" in figure_text(fig)


def test_multiple_limits_compares_theory_with_runs(study, tmp_path):
    """The figure counts the settings with several predicted stable fixed points
    and the runs per outcome (limit_kind), and the counts add up to the runs."""
    _, datasets = study
    pop = datasets["population"].copy(deep=True)
    pop["n_limits"] = xr.where(pop["n_limits"] > 0, 2, 0)  # every setting: two stable fixed points
    fig = draw("multiple_limits", {"population": pop})
    text = figure_text(fig)
    assert "theory predicts" in text
    lams = [x for x in pop["lam"].values if x > 0]
    kinds = pop["limit_kind"].sel(lam=lams, penalty=["l0", "tl1"])
    assert f"runs ({int((kinds >= 0).sum())})" in text
    style.save(fig, tmp_path / "m.png", tmp_path / "m.pdf", dpi=60)


def test_every_normalised_population_run_is_matched(study):
    """Every converged normalised population RVSCGD run (relu/identity) has a
    limit_kind, and one labelled isolated sits within the tolerance of a listed
    point; the baselines have none (the fixed points are RVSCGD's)."""
    _, datasets = study
    pop = datasets["population"]
    baselines = [m for m in pop["method"].values.tolist() if m != "rvscgd"]
    assert baselines and bool((pop["limit_kind"].sel({"method": baselines}) == -1).all())
    pop = pop.sel({"method": "rvscgd"})
    run = (pop["status"] == 0) & pop["normalise"]
    kind = pop["limit_kind"].where(run)
    assert int((kind == -1).sum()) == 0
    iso = pop["limit_distance"].where(kind == 0)
    assert float(iso.max()) <= pop["limit_kind"].attrs["match_tol"]


def test_slice_off_the_grid_is_an_error(study):
    _, datasets = study
    with pytest.raises(ValueError, match="beta=0.3"):
        draw("convergence", datasets, slice={"beta": 0.3})
    with pytest.raises(ValueError, match="unknown keys"):
        select.resolve(datasets["population"], {"beta_": 0.02})
    with pytest.raises(ValueError, match="lam=0.5"):
        draw("ste", datasets, lam=0.5)


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
    assert select.resolve(ds, None) == {
        "n": 16,
        "k": 2,
        "beta": 0.05,
        "ste": "relu",
        "normalise": True,
        "batch_size": 256,
    }
    assert select.resolve(ds, {"n": 8, "beta": 0.01})["beta"] == 0.01


def test_predicted_steps_of_plain_cgd_match_the_runs(study):
    """Plain CGD in population mode (RVSCGD at lambda 0, and the prune
    baseline's training) stops within 2% of the predicted step count."""
    config, datasets = study
    grid = {"lam": 0.0, "beta": 0.02, "eta": 1.0, "ste": "relu", "normalise": True, "penalty": "l1"}
    pop = datasets["population"].sel({**grid, "method": ["rvscgd", "prune"]})
    tol = pop.attrs["tol"]
    assert tol == config["population"]["tol"]
    rho = 1 - pop["c"]  # eta = 1, relu
    theta0 = stats.vector_angle(pop["w0"], pop["w_star"])
    predicted = xr.apply_ufunc(rvscgd.predicted_steps, theta0, rho, kwargs={"tol": tol})
    converged = stats.converged(pop["status"])
    assert bool(converged.any())
    measured = pop["steps_run"].where(converged)
    err = np.abs(measured - predicted) / measured
    assert float(err.max()) < 0.02


def test_datasets_carry_the_facts_figures_need(study):
    config, datasets = study
    for mode in ("population", "empirical"):
        ds = datasets[mode]
        assert ds.attrs["tl1_a"] == config["grid"]["tl1_a"]
        assert ds.attrs["tol"] == config[mode]["tol"]
        assert ds["limit_kind"].attrs["match_tol"] == config["limit"]["match_tol"][mode]


@pytest.mark.parametrize("name", FIGURES)
def test_a_dimension_no_figure_knows_is_fixed_to_its_first_value(study, name):
    """A new dataset dimension (as ``method`` was) does not break a figure:
    it shows the first value, and says so where it lists its slice."""
    config, datasets = study
    import xarray as xr

    def with_variant(ds):
        other = ds.copy(deep=True)
        out = xr.concat([ds, other], dim=xr.DataArray(["first", "second"], dims="variant", name="variant"))
        out.attrs = ds.attrs
        return out

    fig = draw(name, {m: with_variant(ds) for m, ds in datasets.items()}, **figure_params(config["figures"], name))
    assert fig.axes
    style.plt.close(fig)


def test_log_axes_over_many_decades_get_fewer_minor_ticks_and_one_layout(tmp_path):
    """style.save thins minor ticks only where an axis spans MANY_DECADES or more,
    and lays the figure out once: the PDF keeps the PNG's axes positions."""
    import matplotlib.ticker

    fig, axes = style.subplots(1, 2)
    wide, narrow = axes[0]
    wide.loglog([1, 1e6], [1e-8, 1])
    narrow.semilogy([0, 1], [1, 5])
    style.save(fig, tmp_path / "f.png", tmp_path / "f.pdf")
    assert tuple(wide.yaxis.get_minor_locator()._subs) == style.MINOR_LOG_SUBS
    assert tuple(wide.xaxis.get_minor_locator()._subs) == style.MINOR_LOG_SUBS
    narrow_subs = narrow.yaxis.get_minor_locator()._subs
    assert isinstance(narrow.yaxis.get_minor_locator(), matplotlib.ticker.LogLocator)
    assert not (isinstance(narrow_subs, np.ndarray | tuple) and tuple(narrow_subs) == style.MINOR_LOG_SUBS)
    assert fig.get_layout_engine() is None or type(fig.get_layout_engine()).__name__ == "PlaceHolderLayoutEngine"
    assert (tmp_path / "f.png").stat().st_size > 0 and (tmp_path / "f.pdf").stat().st_size > 0


def _bound_counts(fig) -> list[tuple[object, str]]:
    """(axes, first line of its "above theory bound" note) per panel, in drawing order (one per n)."""
    return [
        (ax, t.get_text().split("\n")[0])
        for ax in fig.axes
        for t in ax.texts
        if t.get_text().startswith("above theory bound")
    ]


@pytest.mark.parametrize("name", ["sparsity_accuracy", "tradeoff"])
def test_theory_bound_overlay_reports_a_planted_violation(study, name):
    """The explicit error bound is drawn, and a run planted far above its bound
    (u_final = -w*, angle pi) raises its panel's count by one and stays in view.
    The planted run is chosen with rvscgd.theory.error_bound called here, from
    the teacher and the grid, not through the figure's helper."""
    config, datasets = study
    params = figure_params(config["figures"], name)
    pop = datasets["population"].copy(deep=True)
    fig = draw(name, {"population": pop}, **params)
    assert fig.findobj(lambda a: a.get_gid() == "theory_bound"), "no theory-bound overlay"
    before = [text for _, text in _bound_counts(fig)]
    assert len(before) == pop.sizes["n"]
    style.plt.close(fig)
    sel = select.resolve(pop, params.get("slice"), shown=("penalty", "lam", "n"))
    c = rvscgd.coarse_constant(int(sel["k"]), sel["ste"])
    lam = max(float(x) for x in pop["lam"].values)
    lam_c = float(pop["lam_effective"].sel(lam=lam, k=sel["k"])) / c
    run = None
    for j, n in enumerate(pop["n"].values):
        for seed in pop["seed"].values:
            w = pop["w_star"].sel(n=n, k=sel["k"], seed=seed).values[: int(n)]
            s, w_min = int((w != 0).sum()), float(np.abs(w[w != 0]).min())
            for p in ("l1", "tl1", "l0"):
                b = rvscgd.theory.error_bound(s, lam_c, sel["beta"] / c, w_min, p, pop.attrs["tl1_a"])
                if run is None and b.valid:
                    run, panel = dict(sel, n=int(n), seed=int(seed), penalty=p, lam=lam), j
    assert run is not None, "no run of the tiny study has a valid bound: the test cannot plant a violation"
    pop["angle_u_final"].loc[run] = np.pi  # u_final = -w* (the datasets hold the angle, not the weights)
    fig = draw(name, {"population": pop}, **params)
    after = _bound_counts(fig)
    k0, total = (int(x) for x in before[panel].split(": ")[1].split(" runs")[0].split(" of "))
    assert after[panel][1] == f"above theory bound: {k0 + 1} of {total} runs"
    assert [t for j, (_, t) in enumerate(after) if j != panel] == [t for j, t in enumerate(before) if j != panel]
    assert after[panel][0].get_ylim()[1] >= 0.95 * np.pi / 2  # the planted point (mean with another seed) in view
    style.plt.close(fig)


def test_limit_prediction_shows_the_distance_to_the_predicted_limits(study):
    """Panel (c) draws every run's limit_distance with the dataset's own match
    tolerance (planted here at an odd value), and panel (b) fits its range to the
    sparsities drawn instead of the whole [0, 1]."""
    _, datasets = study
    pop = datasets["population"].copy(deep=True)
    pop["limit_kind"].attrs["match_tol"] = 0.0123
    fig = draw("limit_prediction", {"population": pop})
    titled = {a.get_title(loc="left").split("  ")[-1]: a for a in fig.axes}
    ax_b, ax_c = (
        titled["sparsity of the sparse limit"],
        titled["distance to the nearest predicted stable fixed point (per run)"],
    )
    segments = [
        seg for coll in ax_c.collections if coll.get_gid() is None for seg in getattr(coll, "get_segments", list)()
    ]
    assert any(np.allclose(seg[:, 0], 0.0123) for seg in segments), "match tolerance line missing"
    shown = ax_c.collections[0].get_offsets()
    assert len(shown) > 0 and np.all(np.asarray(shown)[:, 0] > 0)
    pts = np.ma.concatenate([c.get_offsets() for c in ax_b.collections if len(c.get_offsets())])
    lo, hi = ax_b.get_xlim()
    assert lo <= float(pts.min()) and hi >= float(pts.max())
    assert lo >= float(pts.min()) - max(0.1 * float(pts.max() - pts.min()), 0.03)
    style.plt.close(fig)


def test_lbeta_counts_the_rises_of_the_traces(study):
    """The figure's count of runs whose L_beta rises, per penalty, equals a brute
    force over the recorded L_beta traces (a value above the smallest one before
    it, by more than 1e-12 of the trace's scale); a planted change of the
    dataset's flags moves it."""
    _, datasets = study
    pop = datasets["population"].copy(deep=True)
    text = figure_text(draw("lbeta", {"population": pop}))
    lams = [x for x in pop["lam"].values if x > 0]
    sub = pop.sel({"method": "rvscgd"}).sel(normalise=True, lam=lams)  # the figure's RVSCGD runs
    for p in pop["penalty"].values:
        runs = sub.sel(penalty=p)
        lb = runs["lbeta"].transpose(..., "step").values.reshape(-1, runs.sizes["step"])
        ok = (runs["status"].values != stats.DIVERGED).reshape(-1)
        rose = 0
        for trace, good in zip(lb, ok, strict=True):
            if good:
                scale = np.nanmax(np.abs(trace))
                rose += any(trace[t] - np.nanmin(trace[:t]) > 1e-12 * scale for t in range(1, trace.size))
        assert f"{rose}/{int(ok.sum())}" in text, p
    pop["lbeta_rises"].loc[{"penalty": "l1"}] = 0
    n_l1 = int((sub.sel(penalty="l1")["status"] != stats.DIVERGED).sum())
    assert f"0/{n_l1}" in figure_text(draw("lbeta", {"population": pop}))


def _phase_slice(datasets):
    from study.figures import phase_diagram

    ds = datasets["population"]
    sel = select.resolve(ds, None, shown=("penalty", "lam", "beta", *phase_diagram.POOLED))
    return phase_diagram, ds, sel, phase_diagram.fixed_points(ds, sel)


def test_phase_diagram_theory_at_grid_is_phase_region(study):
    """The figure's theory at the grid points (from the stored fixed points)
    is rvscgd.theory.phase_region on each seed's teacher (a separate call)."""
    from rvscgd.theory import phase_region

    pd_mod, ds, sel, sub = _phase_slice(study[1])
    codes = pd_mod.theory_at_grid(sub)
    n, k = int(sel["n"]), int(sel["k"])
    lam_eff = ds["lam_effective"].sel(k=k)
    seen = set()
    for si, seed in enumerate(sub["seed"].values):
        w = sub["w_star"].sel(seed=seed).values[:n]
        for pi, pen in enumerate(sub["penalty"].values):
            for li, lam in enumerate(sub["lam"].values):
                for bi, beta in enumerate(sub["beta"].values):
                    ph = phase_region(w, k, float(lam_eff.sel(lam=lam)), float(beta), str(pen), ds.attrs["tl1_a"])
                    assert codes[si, pi, li, bi] == ph.code, (seed, pen, lam, beta, ph)
                    seen.add(ph.region)
    assert "recovers" in seen


def test_phase_diagram_runs_classes_and_verdicts(study):
    """Each label of a run maps to its class, and a class the theory does not
    predict is counted as a contradiction on the figure."""
    pd_mod, ds, sel, sub = _phase_slice(study[1])
    at = {"seed": sub["seed"].values[0], "penalty": "l1", "beta": sub["beta"].values[0]}
    lam = float(sub["lam"].values[-1])
    base = pd_mod.runs_at_grid(sub)
    theory = pd_mod.theory_at_grid(sub)
    idx = (0, list(sub["penalty"].values).index("l1"), sub.sizes["lam"] - 1, 0)
    assert base[idx] == pd_mod.CODE["recovers"] == theory[idx]  # a clean l1 point of the tiny study
    cases = [
        ({"limit_kind": 1}, "continuum"),
        ({"limit_kind": 2}, "unmatched"),
        ({"support_exact": 0.0}, "spurious"),
        ({"limit_best": 0}, "hysteresis"),
    ]
    for change, expected in cases:
        mod = sub.copy(deep=True)
        for var, value in change.items():
            mod[var].loc[dict(at, lam=lam)] = value
        runs = pd_mod.runs_at_grid(mod)
        assert runs[idx] == pd_mod.CODE[expected], (change, runs[idx])
        assert pd_mod.compare(theory, runs)[idx] == 2
    pop = ds.copy(deep=True)
    run = {"n": int(sel["n"]), "k": int(sel["k"]), "eta": sel["eta"], "ste": sel["ste"], "normalise": True}
    before = figure_text(draw("phase_diagram", {"population": pop}, resolution=4))
    pop["limit_kind"].loc[dict(run, **at, lam=lam)] = 2
    after = figure_text(draw("phase_diagram", {"population": pop}, resolution=4))
    assert "0 contradict" in before and "1 contradict" in after


def test_phase_diagram_refuses_a_bad_resolution(study):
    with pytest.raises(ValueError, match="resolution"):
        draw("phase_diagram", study[1], resolution=1)
