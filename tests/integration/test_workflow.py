"""The study end to end on the tiny config (issue: the Snakemake study)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
import yaml

from .conftest import IN_CI, ROOT, TINY, clone_study, dry_run_jobs, local_env, run_snakemake

pytestmark = pytest.mark.slow


def test_datasets_are_labelled_and_complete(tiny_study):
    cfg = yaml.safe_load(TINY.read_text())
    for mode in ("population", "empirical"):
        ds = xr.open_dataset(tiny_study / "results" / "datasets" / f"{mode}.nc")
        for dim in ("penalty", "lam", "beta", "n", "k", "seed", "step", "feature"):
            assert dim in ds.dims, dim
        traces = ("angle_w", "angle_u", "loss", "sparsity_u", "dist_wbar")
        for var in (*traces, "w_star", "angle_u_final", "sparsity_u_final"):
            assert var in ds, var
        # The final weights stay in the per-cell training files (docs/datasets.md), summaries come along.
        assert "w_final" not in ds and "u_final" not in ds and "fp_w_bar" not in ds
        assert ds["fp_count"].attrs["sample_dimension"] == "listed_point"
        assert int(ds["fp_count"].sum()) == ds.sizes["listed_point"]
        for var in ("w_bar", "u_bar", "status", "steps_run"):
            assert var in ds, var
        assert list(ds.penalty.values) == cfg["grid"]["penalty"]
        assert list(ds.lam.values) == cfg["grid"]["lam"]
        assert ds.lam.attrs["lam_units"] == "relative_to_c"
        assert ds.status.attrs["flag_meanings"] == "converged max_steps diverged"
        assert ds.angle_w.attrs["units"] == "rad"
        # Weights are NaN-padded beyond n, and finite within it.
        small = ds.w_star.sel(n=min(cfg["dims"]["n"]))
        assert small.isel(feature=slice(min(cfg["dims"]["n"]), None)).isnull().all()
        assert np.isfinite(small.isel(feature=slice(0, min(cfg["dims"]["n"])))).all()
        # The teacher is unit norm with the configured sparsity.
        norms = np.sqrt((ds.w_star**2).sum("feature"))
        np.testing.assert_allclose(norms, 1.0, rtol=1e-12)
        assert ((ds.w_star.fillna(0) != 0).sum("feature") == cfg["teacher"]["sparsity"]).all()
        assert "creation" not in " ".join(ds.attrs).lower()
        assert ds.attrs["code_sha256"]


def test_tiny_digits_part_runs_in_the_tiny_study(tiny_study):
    """Issue 12: the digits block of the tiny config gives its dataset, figure and logs."""
    cfg = yaml.safe_load(TINY.read_text())["digits"]
    ds = xr.open_dataset(tiny_study / "results" / "datasets" / "digits.nc")
    assert list(ds["seed"].values) == cfg["seeds"]
    assert list(ds["penalty"].values) == cfg["grid"]["penalty"] and list(ds["lam"].values) == cfg["grid"]["lam"]
    assert list(ds["ste"].values) == cfg["grid"]["ste"] and ds.sizes["filter"] == cfg["filters"]
    assert ds.attrs["Conventions"] == "CF-1.8" and ds.attrs["code_sha256"] and ds.attrs["complete"] == "yes"
    for var in ("acc_u", "acc_w", "acc_prune", "acc_u_finetuned", "sparsity", "acc_dense", "acc_relu"):
        assert bool(np.isfinite(ds[var]).all()) and ds[var].attrs["units"] == "1", var
    data = xr.open_dataset(tiny_study / "results" / "digits" / "data.nc")
    assert data.attrs["scikit_learn_version"]
    for ext in ("png", "pdf"):
        assert (tiny_study / "results" / "figures" / f"digits.{ext}").stat().st_size > 10_000
    for s in cfg["seeds"]:
        assert "openblas=1" in (tiny_study / "results" / "logs" / "train_digits" / f"seed{s}.log").read_text()


def test_population_runs_reach_a_fixed_point(tiny_study):
    ds = xr.open_dataset(tiny_study / "results" / "datasets" / "population.nc")
    ds = ds.sel({"method": "rvscgd"})  # the baselines have other fixed points
    conv = ds.status == 0
    assert conv.mean() > 0.5  # most runs converge within the tiny step limit
    # A converged run sits on a fixed point of model.md section 5: u = prox(w) and
    # w = normalise(c w* + beta u). Check the equation directly on the stored weights,
    # which are in the per-cell training files (the dataset holds summaries).
    c = float(ds.c.isel(k=0))
    lam = ds.lam_effective.isel(k=0)
    cells = sorted((tiny_study / "results" / "gaussian" / "train" / "population").glob("*.nc"))
    assert len(cells) == ds.sizes["n"] * ds.sizes["k"] * ds.sizes["seed"]
    for path in cells:
        train = xr.open_dataset(path).sel({"method": "rvscgd"})
        ws = xr.open_dataset(tiny_study / "results" / "gaussian" / "data" / path.name).w_star
        at = {d: int(train.attrs[d]) for d in ("n", "k", "seed")}
        ok = train.status == 0
        assert bool((ok == conv.sel(at)).all())
        w, u = train.w_final.where(ok), train.u_final.where(ok)
        rhs = c * ws + train.beta * u
        rhs = rhs / np.sqrt((rhs**2).sum("feature"))
        resid = np.sqrt(((w - rhs) ** 2).sum("feature")).where(ok)
        assert float(resid.max()) < 1e-9, (path.name, float(resid.max()))
    assert lam.sel(lam=0).item() == 0


def test_ncdump_reads_the_datasets(tiny_study):
    if shutil.which("ncdump") is None:
        if IN_CI:
            pytest.fail("ncdump (Debian netcdf-bin) missing: .ci/run must install it")
        pytest.skip("ncdump not installed (apt-get install netcdf-bin)")
    for mode in ("population", "empirical"):
        out = subprocess.run(
            ["ncdump", "-h", str(tiny_study / "results" / "datasets" / f"{mode}.nc")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "angle_w(" in out and ":long_name" in out


def test_second_run_does_nothing(tiny_study):
    proc = run_snakemake(tiny_study, "--dry-run", "--cores", "2")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_adding_a_seed_trains_only_new_cells(tiny_study, tmp_path):
    work = clone_study(tiny_study, tmp_path / "w")
    cfg = yaml.safe_load(TINY.read_text())
    cfg["seeds"] = cfg["seeds"] + [max(cfg["seeds"]) + 1]
    new_cfg = tmp_path / "more_seeds.yaml"
    new_cfg.write_text(yaml.safe_dump(cfg))
    jobs = dry_run_jobs(work, configfile=new_cfg)
    cells_per_seed = len(cfg["dims"]["n"]) * len(cfg["dims"]["k"])
    assert jobs.get("prepare_gaussian") == cells_per_seed
    assert jobs.get("train_gaussian") == 2 * cells_per_seed  # population + empirical
    assert jobs.get("aggregate_gaussian") == 2


def test_changing_empirical_settings_retrains_only_empirical(tiny_study, tmp_path):
    work = clone_study(tiny_study, tmp_path / "w")
    cfg = yaml.safe_load(TINY.read_text())
    cfg["empirical"]["max_steps"] = cfg["empirical"]["max_steps"] + 10
    new_cfg = tmp_path / "longer.yaml"
    new_cfg.write_text(yaml.safe_dump(cfg))
    jobs = dry_run_jobs(work, configfile=new_cfg)
    n_cells = len(cfg["dims"]["n"]) * len(cfg["dims"]["k"]) * len(cfg["seeds"])
    assert "prepare_gaussian" not in jobs
    assert jobs.get("train_gaussian") == n_cells
    assert jobs.get("aggregate_gaussian") == 1


def registry_of(work) -> dict[str, list[str]]:
    """{figure: the package modules it runs} from the figure registry of a
    copied study, read in a fresh interpreter (the registry imports its package's
    config module, so it is imported as part of that copy's ``study``)."""
    import json

    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); from study.figures import registry as r; "
        "print(json.dumps({name: r.modules(name) for name in r.FIGURES}))"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(work / "scripts")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def figure_jobs(work):
    jobs = dry_run_jobs(work)
    assert not {"prepare_gaussian", "train_gaussian", "aggregate_gaussian"} & set(jobs), jobs
    return {rule: n for rule, n in jobs.items() if rule.startswith("fig_")}


def test_every_registered_figure_is_drawn(tiny_study):
    names = registry_of(tiny_study)
    assert len(names) == 17
    for name in names:
        for ext in ("png", "pdf"):
            assert (tiny_study / "results" / "figures" / f"{name}.{ext}").stat().st_size > 5_000, (name, ext)


def test_editing_a_figure_module_rerenders_only_that_figure(tiny_study, tmp_path):
    work = clone_study(tiny_study, tmp_path / "w")
    target = work / "scripts" / "study" / "figures" / "convergence.py"
    target.write_text(target.read_text() + "\n# restyled\n")
    assert figure_jobs(work) == {"fig_convergence": 1}


def test_editing_a_shared_module_rerenders_exactly_its_users(tiny_study, tmp_path):
    work = clone_study(tiny_study, tmp_path / "w")
    reg = registry_of(work)
    users = {f"fig_{name}": 1 for name, modules in reg.items() if "compare" in modules}
    assert users == {"fig_ste": 1, "fig_normalisation": 1}  # the registry's own claim, checked by the unit test
    target = work / "scripts" / "study" / "figures" / "compare.py"
    target.write_text(target.read_text() + "\n# restyled\n")
    assert figure_jobs(work) == users
    # Restyling re-renders every figure.
    style = work / "scripts" / "study" / "style.py"
    style.write_text(style.read_text() + "\n# restyled\n")
    assert figure_jobs(work) == {f"fig_{name}": 1 for name in reg}


def test_a_copied_study_does_not_rerender(tiny_study, tmp_path):
    """Code inputs are recorded by relative path: a study moved elsewhere is up to date."""
    work = clone_study(tiny_study, tmp_path / "elsewhere" / "deeper")
    proc = run_snakemake(work, "--dry-run", "--cores", "1")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_lint_and_format():
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "--configfile", str(TINY)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=local_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run(["snakefmt", "--check", "workflow"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for args in (["check", "."], ["format", "--check", "."]):
        proc = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
