"""The cache follows the code (issue 20): each rule's code inputs are the
project modules its job imports, so an edit reruns exactly the jobs that run
the edited code, and what depends on their outputs. Snakemake 9 compares
content, so each case edits a file (a bare touch reruns nothing)."""

from __future__ import annotations

import pytest
import xarray as xr
import yaml

from .conftest import TINY, clone_study, copy_project, dry_run_jobs, run_snakemake

pytestmark = pytest.mark.slow

CFG = yaml.safe_load(TINY.read_text())
N_CELLS = len(CFG["dims"]["n"]) * len(CFG["dims"]["k"]) * len(CFG["seeds"])
N_BASIN_CELLS = len(CFG["basins"]["n"]) * len(CFG["basins"]["k"]) * len(CFG["basins"]["seeds"])


def edit(work, rel: str) -> None:
    """Change a source file's content (one comment line appended)."""
    path = work / "scripts" / rel
    path.write_text(path.read_text() + "\n# edited\n")


@pytest.fixture(scope="module")
def every_job(tmp_path_factory) -> dict[str, int]:
    """{rule: jobs} of the tiny study from scratch."""
    return dry_run_jobs(copy_project(tmp_path_factory.mktemp("fresh")))


def figures(jobs: dict[str, int]) -> dict[str, int]:
    return {rule: n for rule, n in jobs.items() if rule.startswith("fig_")}


def test_editing_the_engine_reruns_every_job(tiny_study, tmp_path, every_job):
    """Every job imports rvscgd, whose package runs engine.py: all of them rerun."""
    work = clone_study(tiny_study, tmp_path / "w")
    edit(work, "rvscgd/engine.py")
    jobs = dry_run_jobs(work)
    assert jobs == every_job
    assert jobs["train_gaussian"] == 2 * N_CELLS and jobs["prepare_gaussian"] == N_CELLS


def test_editing_the_theory_reruns_its_users_only(tiny_study, tmp_path, every_job):
    """rvscgd/theory.py: the basin study (it classifies limits by region) and
    the figures (stats computes the error bound while drawing); no training
    of the Gaussian grid, the two-layer model or the digits."""
    work = clone_study(tiny_study, tmp_path / "w")
    edit(work, "rvscgd/theory.py")
    jobs = dry_run_jobs(work)
    assert figures(jobs) == figures(every_job)
    assert {r: n for r, n in jobs.items() if not r.startswith("fig_")} == {
        "train_basins": N_BASIN_CELLS,
        "aggregate_basins": 1,
        "all": 1,
    }


def test_editing_an_experiment_reruns_its_jobs_and_its_users(tiny_study, tmp_path):
    work = clone_study(tiny_study, tmp_path / "w")
    edit(work, "study/experiments/gaussian.py")
    jobs = dry_run_jobs(work)
    assert {
        r: jobs.get(r)
        for r in ("prepare_gaussian", "train_gaussian", "aggregate_gaussian", "train_basins", "aggregate_basins")
    } == {
        "prepare_gaussian": N_CELLS,
        "train_gaussian": 2 * N_CELLS,
        "aggregate_gaussian": 2,
        "train_basins": N_BASIN_CELLS,
        "aggregate_basins": 1,
    }
    assert not {"train_two_layer", "aggregate_two_layer", "prepare_digits", "train_digits", "aggregate_digits"} & set(
        jobs
    )
    assert "fig_digits" not in jobs and "fig_two_layer" not in jobs and "fig_convergence" in jobs
    # (the basin study builds its cells' teacher and limits with the Gaussian experiment's functions)


def test_editing_the_two_layer_experiment_reruns_only_its_jobs_and_figure(tiny_study, tmp_path):
    work = clone_study(tiny_study, tmp_path / "w")
    edit(work, "study/experiments/two_layer.py")
    n_cells = len(CFG["two_layer"]["n"]) * len(CFG["two_layer"]["k"]) * len(CFG["two_layer"]["seeds"])
    assert dry_run_jobs(work) == {"train_two_layer": n_cells, "aggregate_two_layer": 1, "fig_two_layer": 1, "all": 1}


@pytest.mark.parametrize("rel", ["rvscgd/bench.py", "study/plan.py"])
def test_editing_a_module_no_job_imports_reruns_nothing(tiny_study, tmp_path, rel):
    work = clone_study(tiny_study, tmp_path / "w")
    edit(work, rel)
    proc = run_snakemake(work, "--dry-run", "--cores", "1")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_a_bare_touch_reruns_nothing(tiny_study, tmp_path):
    work = clone_study(tiny_study, tmp_path / "w")
    (work / "scripts" / "rvscgd" / "engine.py").touch()
    proc = run_snakemake(work, "--dry-run", "--cores", "1")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_touch_keeps_the_results_after_a_cosmetic_edit(tiny_study, tmp_path):
    """The documented way (docs/guarantees.md): `snakemake --touch` marks every
    output up to date without running a job, so a change known to be cosmetic
    does not recompute the study; the files keep their bytes."""
    work = clone_study(tiny_study, tmp_path / "w")
    datasets = sorted((work / "results" / "datasets").glob("*.nc"))
    before = {p.name: p.read_bytes() for p in datasets}
    edit(work, "rvscgd/engine.py")
    assert dry_run_jobs(work)["train_gaussian"] == 2 * N_CELLS
    run_snakemake(work, "--touch", "--cores", "1")
    proc = run_snakemake(work, "--dry-run", "--cores", "1")
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert {p.name: p.read_bytes() for p in datasets} == before


def test_the_code_digest_covers_the_code_the_job_ran(tiny_study):
    """code_sha256 of each dataset is the digest of its rule's code input: a
    digest per job, not one over the whole tree."""
    from study.sources import ROOT, code_digest, job_sources

    digests = {}
    for name, experiment in (
        ("population", "gaussian"),
        ("two_layer", "two_layer"),
        ("basins", "basins"),
        ("digits", "digits"),
    ):
        with xr.open_dataset(tiny_study / "results" / "datasets" / f"{name}.nc") as ds:
            digests[name] = ds.attrs["code_sha256"]
        sources = job_sources("aggregate.py", f"study.experiments.{experiment}")
        assert digests[name] == code_digest(ROOT / f for f in sources), name
    assert len(set(digests.values())) == len(digests)
    train = next((tiny_study / "results" / "gaussian" / "train" / "population").glob("*.nc"))
    with xr.open_dataset(train) as ds:
        sources = job_sources("train.py", "study.experiments.gaussian")
        assert ds.attrs["code_sha256"] == code_digest(ROOT / f for f in sources)
