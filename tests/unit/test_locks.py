"""study.locks: a stale Snakemake lock is cleared only when provably stale,
for the file backend only, and never by a run that runs no job."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from study import locks  # noqa: E402


def _workflow(dryrun=False, lint=False, backend=None):
    settings = SimpleNamespace(persistence_backend=backend) if backend is not None else SimpleNamespace()
    return SimpleNamespace(
        output_settings=SimpleNamespace(dryrun=dryrun), check_envvars=not lint, workflow_settings=settings
    )


def _locked(tmp_path: Path, host: str | None) -> Path:
    lockdir = tmp_path / ".snakemake" / "locks"
    lockdir.mkdir(parents=True)
    (lockdir / "0.input.lock").write_text("x")
    if host is not None:
        (tmp_path / locks.LOCK_OWNER).write_text(host + "\n")
    return lockdir


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_runs_jobs_is_false_for_dry_runs_lint_and_graphs():
    assert locks.runs_jobs(_workflow(), argv=["--cores", "2"])
    assert not locks.runs_jobs(_workflow(dryrun=True), argv=[])
    assert not locks.runs_jobs(_workflow(lint=True), argv=[])
    for flag in ("--lint", "-n", "--dry-run", "--rulegraph", "--dag", "--summary", "--unlock", "--report=r.html"):
        assert not locks.runs_jobs(_workflow(), argv=["--cores", "1", flag]), flag


def test_persistence_backend_names():
    class Backend:  # Snakemake's enum has .name
        name = "DB"

    assert locks.persistence_backend(_workflow()) == "file"  # Snakemake < 9.17: no such setting
    assert locks.persistence_backend(_workflow(backend=Backend())) == "db"


def test_unknown_backend_is_left_to_unlock_and_said(tmp_path):
    _locked(tmp_path, socket.gethostname())
    before = _tree(tmp_path)
    message = locks.clear_stale_lock(tmp_path, backend="db")
    assert "'db'" in message and "snakemake --unlock" in message
    assert _tree(tmp_path) == before


def test_stale_lock_of_this_host_is_removed(tmp_path):
    lockdir = _locked(tmp_path, socket.gethostname())
    message = locks.clear_stale_lock(tmp_path)
    assert message and "Removed a stale Snakemake lock" in message
    assert not any(lockdir.glob("*.lock"))


@pytest.mark.parametrize("host", [None, "another-host.example"], ids=["no_record", "other_host"])
def test_lock_not_provably_ours_stays(tmp_path, host):
    lockdir = _locked(tmp_path, host)
    before = _tree(tmp_path)
    assert locks.clear_stale_lock(tmp_path) is None
    assert any(lockdir.glob("*.lock")) and _tree(tmp_path) == before


def test_lock_of_a_live_run_stays(tmp_path):
    """A process whose command line says snakemake, in this directory, holds the lock (psutil sees it)."""
    lockdir = _locked(tmp_path, socket.gethostname())
    live = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "snakemake", "--cores", "1"], cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 30
        while not locks._live_snakemake_here(tmp_path.resolve()):
            assert time.monotonic() < deadline, "psutil never saw the live process"
            time.sleep(0.05)
        assert locks.clear_stale_lock(tmp_path) is None
        assert any(lockdir.glob("*.lock"))
    finally:
        live.kill()
        live.wait()


def test_record_lock_host(tmp_path):
    locks.record_lock_host(tmp_path)
    assert (tmp_path / locks.LOCK_OWNER).read_text() == socket.gethostname() + "\n"
    assert os.path.isdir(tmp_path / ".snakemake")
