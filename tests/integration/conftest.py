"""Integration-test helpers: throwaway copies of the project, snakemake runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / ".test" / "config" / "config.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# In CI (CI=true, as .ci/run is run) a test whose system package is missing fails
# instead of skipping: .ci/run installs them (ncdump, SLURM).
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Every `snakemake` start imports the installed SLURM executor plugin, which
# runs `scontrol show config` when SLURM's client tools are on PATH. With no
# controller answering (CI and this machine install SLURM for
# test_slurm.py, whose controller runs only during that test) scontrol waits
# about 9 s before it gives up, in every start. The local runs below do not
# use SLURM, so they get an `scontrol` that fails at once; the plugin then
# falls back exactly as it does when the controller is down. test_slurm.py
# runs the real one.
_SHIMS = Path(__file__).resolve().parent / "shims"


def local_env(env: dict | None = None) -> dict:
    """os.environ plus ``env``, with the no-controller ``scontrol`` first on PATH."""
    full = {**os.environ, **(env or {})}
    full["PATH"] = f"{_SHIMS}{os.pathsep}{full.get('PATH', '')}"
    return full


def copy_project(dest: Path) -> Path:
    """Copy what a user's checkout holds (workflow, scripts, config, .test) to dest."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in ("workflow", "scripts", "config", ".test"):
        shutil.copytree(
            ROOT / part, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", ".snakemake")
        )
    return dest


def clone_study(src: Path, dest: Path) -> Path:
    """Copy a finished study, keeping mtimes and Snakemake's metadata."""
    shutil.copytree(src, dest, symlinks=True)
    return dest


def run_snakemake(workdir: Path, *args, configfile=TINY, check=True, timeout=600, env=None):
    """Run snakemake in workdir on the tiny config; return the CompletedProcess."""
    cmd = [*SNAKEMAKE, "--configfile", str(configfile), *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=local_env(env))
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def dry_run_jobs(workdir: Path, *args, configfile=TINY) -> dict[str, int]:
    """{rule: job count} that a dry run would execute."""
    proc = run_snakemake(workdir, "--dry-run", "--cores", "1", *args, configfile=configfile)
    counts: dict[str, int] = {}
    in_table = False
    for line in proc.stdout.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
            continue
        if in_table:
            if not parts or parts[0] == "total":
                break
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> Path:
    """A completed run of the tiny study (shared; tests must not modify it)."""
    work = copy_project(tmp_path_factory.mktemp("tiny_study"))
    run_snakemake(work, "--cores", "2")
    return work


@pytest.fixture
def project(tmp_path) -> Path:
    """A fresh copy of the project to run and modify."""
    return copy_project(tmp_path / "project")
