"""The workflow meets the standards of its ecosystem, checked by their own
tools: the CF checker on the datasets, the catalog's lint and rule-graph
commands, the exploration notebook run end to end; and a full disk is
reported as such, leaving nothing half-written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr
import yaml

from .conftest import ROOT, SNAKEMAKE, local_env, run_snakemake

pytestmark = pytest.mark.slow

sys.path.insert(0, str(ROOT / "scripts"))  # this checkout's library
LIBRARY_ENV = {"PYTHONPATH": str(ROOT / "scripts")}
DATASET_NAMES = {"population.nc", "empirical.nc"}


def _datasets(study: Path) -> list[Path]:
    found = sorted((study / "results" / "datasets").glob("*.nc"))
    assert DATASET_NAMES <= {p.name for p in found}, found  # never a pass over nothing
    return found


# ---- CF conventions ------------------------------------------------------------


def test_datasets_pass_the_cf_checker(tiny_study, tmp_path):
    """compliance-checker --test cf:1.8: 0 errors, 0 warnings, no checker crash, on every dataset."""
    checker = shutil.which("compliance-checker") or str(Path(sys.executable).with_name("compliance-checker"))
    failed = []
    for nc in _datasets(tiny_study):
        proc = subprocess.run(
            [checker, "--test", "cf:1.8", "--criteria", "normal", str(nc)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
        report = proc.stdout + proc.stderr
        clean = proc.returncode == 0 and "All tests passed!" in report and "exceptions occurred" not in report
        if not clean:
            failed.append(f"==== {nc.name} (exit {proc.returncode})\n{report}")
    assert not failed, "\n".join(failed)


def test_string_coordinates_select_by_name_and_grid_is_increasing(tiny_study):
    for nc in _datasets(tiny_study):
        with xr.open_dataset(nc) as ds:
            penalties = ds["penalty"].values.tolist()
            assert penalties and set(penalties) <= {"l0", "l1", "tl1"}, (nc.name, penalties)
            assert ds.sel(penalty=penalties[-1], ste="relu").sizes["lam"] == ds.sizes["lam"]
            for dim in ("n", "k", "seed", "lam", "beta", "eta", "batch_size"):
                if dim in ds.dims and ds.sizes[dim] > 1:
                    assert bool((ds[dim].diff(dim) > 0).all()), (nc.name, dim)
            assert "doi:10.3389/fams.2020.00013" in ds.attrs["references"]
            assert "arXiv:1901.09731" in ds.attrs["references"]
            assert ds.attrs["history"].startswith("rule aggregate_"), (nc.name, ds.attrs["history"])
            assert ds.attrs["code_sha256"] in ds.attrs["history"]


def test_grid_is_sorted_whatever_the_config_order(tmp_path):
    """An unsorted config list gives an increasing coordinate (the aggregate, in-process)."""
    from study.inprocess import build_datasets, load_config

    base = yaml.safe_load((ROOT / ".test" / "config" / "config.yaml").read_text())
    base.update(dims={"n": [8], "k": [4]}, seeds=[0], empirical={"enabled": False})
    base["population"]["max_steps"] = 50
    base["grid"].update(lam=[0.05, 0, 0.01], beta=[0.05, 0.02])
    path = tmp_path / "unsorted.yaml"
    path.write_text(yaml.safe_dump(base))
    config = load_config(path)
    ds = build_datasets(config)["population"]
    assert ds["lam"].values.tolist() == [0, 0.01, 0.05]
    assert ds["beta"].values.tolist() == [0.02, 0.05]
    # Labels and values moved together: lam_effective follows its lam.
    c = float(ds["c"].values[0])
    assert ds["lam_effective"].sel(lam=0.05).values[0] == pytest.approx(0.05 * c)


# ---- the catalog's commands ----------------------------------------------------------


def _snakemake(workdir: Path, *args, timeout=300):
    return subprocess.run(
        [*SNAKEMAKE, *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=local_env(LIBRARY_ENV),
    )


def _study_files(workdir: Path) -> set[str]:
    """Files this workflow writes itself (not Snakemake's own .snakemake bookkeeping)."""
    found = {str(p.relative_to(workdir)) for p in workdir.rglob("study-lock-host")}
    for results in workdir.rglob("results"):
        found |= {str(p.relative_to(workdir)) for p in results.rglob("*") if p.is_file()}
    return found


def test_lint_passes_with_the_default_config_and_writes_nothing(project):
    """`snakemake --lint` as the catalog runs it (repository root, default config)."""
    proc = _snakemake(project, "--lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition" in proc.stdout + proc.stderr
    assert _study_files(project) == set()


def test_dry_run_writes_nothing(project):
    proc = _snakemake(project, "--dry-run", "--cores", "1", "--configfile", ".test/config/config.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "prepare_gaussian" in proc.stdout
    assert _study_files(project) == set()


def test_catalog_rulegraph_command(project):
    """The command the workflow catalog uses to draw the rule graph."""
    proc = _snakemake(project, "-s", "workflow/Snakefile", "-c", "1", "-d", ".test", "--forceall", "--rulegraph")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    graph = proc.stdout
    assert graph.lstrip().startswith("digraph")
    for rule in ("prepare_gaussian", "train_gaussian", "aggregate_gaussian", "all"):
        assert f'label = "{rule}"' in graph, rule
    assert _study_files(project) == set()


# ---- the exploration notebook --------------------------------------------------------


def test_notebook_runs_end_to_end(tiny_study, tmp_path, monkeypatch):
    """notebooks/explore.ipynb on the tiny study's datasets: every cell runs without error."""
    import nbclient
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / "explore.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    _datasets(tiny_study)
    monkeypatch.setenv("STUDY_DATASETS", str(tiny_study / "results" / "datasets"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "scripts"))
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell errors
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    tables = [o["data"]["text/plain"] for o in outputs if "data" in o and "text/plain" in o["data"]]
    assert any("recovery_rate" in t for t in tables), "the summary table was not shown"
    pngs = [o["data"]["image/png"] for o in outputs if "data" in o and "image/png" in o["data"]]
    assert pngs, "the figure was not shown"


# ---- a full disk -----------------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path):
    """Mount a 64 kB tmpfs at a path the test chooses (as root); unmount after."""

    def mount(where: Path, size="64k") -> Path:
        where.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root")
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
        if proc.returncode != 0:
            pytest.skip(f"mount -t tmpfs is not permitted here: {proc.stderr.decode().strip()}")
        mounted.append(where)
        return where

    mounted: list[Path] = []
    yield mount
    for where in mounted:
        # Lazily if busy: netCDF4/HDF5 may keep the failed file's handle open in this process.
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_full_disk_is_reported_and_leaves_no_file(tiny_study, small_fs, tmp_path):
    """write_netcdf on a full file system: "no space left on device", the file, the space needed."""
    from study.ncio import DiskFullError, write_netcdf

    with xr.open_dataset(tiny_study / "results" / "datasets" / "population.nc") as ds:
        ds = ds.load()
    target = small_fs(tmp_path / "small") / "population.nc"
    with pytest.raises(DiskFullError) as err:
        write_netcdf(ds, target)
    message = str(err.value)
    assert "no space left on device" in message and str(target) in message, message
    assert "needs about" in message and "kB" in message, message
    assert list(target.parent.iterdir()) == []  # no partial file, under any name


def test_aggregate_on_a_full_disk_fails_clearly_then_finishes(tiny_study, small_fs, tmp_path):
    work = tmp_path / "study"
    shutil.copytree(tiny_study, work, symlinks=True)
    datasets = work / "results" / "datasets"
    shutil.rmtree(datasets)
    small_fs(datasets)
    proc = run_snakemake(work, "--cores", "2", "results/datasets/population.nc", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "DiskFullError" in out and "no space left on device" in out, out
    assert "results/datasets/population.nc" in out and "needs about" in out, out
    assert list(datasets.iterdir()) == [], "a partial file was left"
    subprocess.run(["umount", str(datasets)], check=True)
    run_snakemake(work, "--cores", "2", "results/datasets/population.nc")  # space freed: it finishes
    with (
        xr.open_dataset(datasets / "population.nc") as new,
        xr.open_dataset(tiny_study / "results/datasets/population.nc") as old,
    ):
        for name in old.variables:
            assert new[name].equals(old[name]), name
