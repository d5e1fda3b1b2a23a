"""The study through SLURM: a real one-node cluster with accounting, the SLURM profile, identical results.

The test starts a local SLURM cluster (scripts/cluster/start-local-slurm.sh:
munged, MariaDB, slurmdbd, slurmctld, slurmd), runs the tiny `.test` config
through `workflow/profiles/slurm` in a copy of the project, checks that the jobs
went through SLURM (job ids in Snakemake's log, their `sacct` records), and that
the datasets equal those of a plain local run bit for bit.

Outside CI it skips, with the reason, where the cluster cannot start (not root,
packages missing). In CI (CI=true) it must run: .ci/run installs the packages
with scripts/cluster/install-slurm-deps.sh first.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from .conftest import IN_CI

pytestmark = [pytest.mark.slurm, pytest.mark.slow]  # whole workflow runs: also "slow"

REPO = Path(__file__).resolve().parents[2]
CLUSTER_DIR = REPO / "scripts" / "cluster"
PROFILE = "workflow/profiles/slurm"
TEST_CONFIG = ".test/config/config.yaml"
STATE = Path(os.environ.get("RVSCGD_SLURM_STATE", "/tmp/rvscgd-slurm"))
ETC = Path(os.environ.get("RVSCGD_SLURM_ETC", "/etc/slurm"))  # as scripts/cluster/slurm-common.sh
# Seconds allowed for each Snakemake run; `timeout -k 10` kills a Snakemake that
# ignores SIGTERM while it believes cluster jobs are running.
RUN_TIMEOUT = 900  # a hang guard, not a speed check: a busy machine runs the tiny study several times slower
# Both runs stop at the datasets.
UNTIL = ("--until", "aggregate_gaussian")
DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd", "sacctmgr", "sbatch", "sacct")


def _unavailable(reason):
    """Skip where a cluster cannot be had; in CI that is a failure."""
    if IN_CI:
        pytest.fail(f"SLURM test cannot run in CI: {reason}")
    pytest.skip(reason)


def _run(cmd, timeout, **kwargs):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


def _cluster_up():
    try:
        return _run(["scontrol", "ping"], timeout=10).stdout.count("UP") > 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running local cluster: yields its partition, account and node CPU count."""
    if os.geteuid() != 0:
        _unavailable("needs root to start the local SLURM cluster (munged, slurmd, /etc/slurm)")
    search_path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    missing = [tool for tool in DAEMONS if shutil.which(tool, path=search_path) is None]
    if missing:
        _unavailable(f"missing {', '.join(missing)}: run scripts/cluster/install-slurm-deps.sh")
    was_up = _cluster_up()
    t0 = time.monotonic()
    try:
        start = _run(["bash", str(CLUSTER_DIR / "start-local-slurm.sh")], timeout=240)
    except subprocess.TimeoutExpired as err:
        _unavailable(f"start-local-slurm.sh did not finish in 240 s:\n{err.stdout}\n{err.stderr}")
    print(start.stdout, start.stderr, sep="\n")
    if start.returncode != 0:
        _unavailable(f"start-local-slurm.sh failed (exit {start.returncode}):\n{start.stdout[-3000:]}{start.stderr}")
    print(f"cluster ready in {time.monotonic() - t0:.1f} s")
    env = dict(line.split("=", 1) for line in (STATE / "cluster.env").read_text().split())
    cpus = int(_run(["sinfo", "-h", "-o", "%c"], timeout=30).stdout.split()[0])
    yield {"partition": env["RVSCGD_SLURM_PARTITION"], "account": env["RVSCGD_SLURM_ACCOUNT"], "cpus": cpus}
    if not was_up:
        stop = _run(["bash", str(CLUSTER_DIR / "stop-local-slurm.sh")], timeout=240)
        print(stop.stdout, stop.stderr, sep="\n")
        # A slurm.conf left naming the stopped slurmctld makes every later Snakemake
        # start wait 9 s (the SLURM plugin's `scontrol show config` times out).
        assert stop.returncode == 0, stop.stderr
        assert f"removed {ETC / 'slurm.conf'}" in stop.stdout, stop.stdout


def _copy_project(dest):
    """The parts of the project a run needs, without results or Snakemake state."""
    ignore = shutil.ignore_patterns("results", ".snakemake", "__pycache__", "*.egg-info", ".pytest_cache")
    dest.mkdir(parents=True)
    for part in ("workflow", "scripts", "config", ".test"):
        shutil.copytree(REPO / part, dest / part, ignore=ignore)
    return dest


def _snakemake(workdir, args, log_name):
    """Run Snakemake in workdir under `timeout -k 10`; its output goes to workdir/log_name."""
    cmd = ["timeout", "-k", "10", str(RUN_TIMEOUT), sys.executable, "-m", "snakemake", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    # The copy's own library, not an installed (possibly editable) one: Snakemake
    # runs scripts from .snakemake/scripts, so `import study` would otherwise
    # resolve through site-packages. sbatch passes the environment to the jobs.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(workdir / "scripts"), env.get("PYTHONPATH")]))
    t0 = time.monotonic()
    proc = subprocess.run(
        cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=RUN_TIMEOUT + 30
    )
    (workdir / log_name).write_text(proc.stdout)
    print(f"{' '.join(cmd)}\n  -> exit {proc.returncode} in {time.monotonic() - t0:.1f} s (log {workdir / log_name})")
    return proc


def _slurm_logs_report(workdir):
    """Paths and tails of the SLURM job logs kept by the plugin, for a failure message."""
    logdir = workdir / ".snakemake" / "slurm_logs"
    logs = sorted(logdir.rglob("*.log")) if logdir.is_dir() else []
    parts = [f"SLURM logs kept in {logdir} ({len(logs)} files)"]
    for path in logs[-5:]:
        tail = "\n".join(path.read_text(errors="replace").splitlines()[-30:])
        parts.append(f"--- {path}\n{tail}")
    return "\n".join(parts)


def _default_resources(cluster):
    """The profile's default resources plus this cluster's account and partition.

    `--default-resources` on the command line replaces the profile's whole
    list, so the profile's own entries are passed along with the two added.
    """
    profile = yaml.safe_load((REPO / PROFILE / "profile.yaml").read_text())
    resources = dict(profile.get("default-resources") or {})
    resources.update(slurm_account=cluster["account"], slurm_partition=cluster["partition"])
    return [f"{key}={value}" for key, value in resources.items()]


def _sacct(job_ids, wait_s=120):
    """sacct rows (JobIdRaw, JobName, Account, Partition, State) of the given jobs.

    slurmctld hands records to slurmdbd asynchronously, later on a busy machine:
    ask again until every job is there and completed, or ``wait_s`` have passed."""
    cmd = ["sacct", "-X", "-P", "-n", "-j", ",".join(job_ids), "--format=JobIdRaw,JobName%80,Account,Partition,State"]
    deadline = time.monotonic() + wait_s
    while True:
        out = _run(cmd, timeout=30).stdout
        rows = {r.split("|")[0]: r.split("|") for r in out.splitlines() if r.strip()}
        done = set(job_ids) <= set(rows) and all(r[4] == "COMPLETED" for r in rows.values())
        if done or time.monotonic() > deadline:
            return rows
        time.sleep(1)


def _compare_datasets(local_file, slurm_file):
    """Differences between two netCDF datasets (empty if bit-identical)."""
    import xarray as xr

    problems = []
    with xr.open_dataset(local_file) as a, xr.open_dataset(slurm_file) as b:
        a.load()
        b.load()
        names_a = set(a.data_vars) | set(a.coords)
        names_b = set(b.data_vars) | set(b.coords)
        if names_a != names_b:
            problems.append(f"variables differ: only local {names_a - names_b}, only slurm {names_b - names_a}")
        for name in sorted(names_a & names_b):
            x, y = a[name], b[name]
            if x.dims != y.dims or x.shape != y.shape or x.dtype != y.dtype:
                problems.append(f"{name}: dims/shape/dtype {x.dims}{x.shape}{x.dtype} vs {y.dims}{y.shape}{y.dtype}")
                continue
            equal_nan = x.dtype.kind in "fc"
            if not np.array_equal(x.values, y.values, equal_nan=equal_nan):
                problems.append(f"{name}: values differ")
        if not problems and not a.identical(b):
            problems.append("data equal, but attributes differ (xarray identical() is False)")
    return problems


def test_unknown_account_is_refused(slurm_cluster, tmp_path):
    """The plugin validates slurm_account against the accounting database, as on a site."""
    (tmp_path / "workflow").mkdir()
    shutil.copytree(REPO / PROFILE, tmp_path / PROFILE)
    (tmp_path / "workflow" / "Snakefile").write_text('rule one:\n    output: "one.txt"\n    shell: "touch {output}"\n')
    args = [
        "--workflow-profile", PROFILE,
        "--default-resources", "slurm_account=no_such_account", f"slurm_partition={slurm_cluster['partition']}",
        "--slurm-init-seconds-before-status-checks", "2",
        "--retries", "0",
    ]  # fmt: skip
    proc = _snakemake(tmp_path, args, "snakemake-bad-account.log")
    assert proc.returncode not in (0, 124), f"exit {proc.returncode}:\n{proc.stdout[-3000:]}"
    assert "no_such_account appears to be invalid" in proc.stdout, proc.stdout[-3000:]
    assert not (tmp_path / "one.txt").exists()


def test_study_runs_through_slurm_with_identical_results(slurm_cluster, tmp_path_factory):
    t0 = time.monotonic()
    if not (REPO / "workflow" / "Snakefile").is_file() or not (REPO / TEST_CONFIG).is_file():
        pytest.fail("workflow/Snakefile or .test/config/config.yaml is missing")
    base = tmp_path_factory.mktemp("slurm_study")
    local_dir = _copy_project(base / "local")
    slurm_dir = _copy_project(base / "slurm")

    # Reference: a plain local run of the same config, up to the datasets (the
    # figures are local rules in both runs: nothing of SLURM to test there).
    local = _snakemake(local_dir, ["--cores", "2", "--configfile", TEST_CONFIG, *UNTIL], "snakemake-local.log")
    rc = local.returncode
    assert rc == 0, f"local run failed (exit {rc}):\n{local.stdout[-4000:]}"

    # The same config through the SLURM profile. --cores caps a group job's
    # width (CPUs per SLURM job) at what the local node has; --retries 0 fails fast.
    slurm_args = [
        "--workflow-profile", PROFILE,
        "--configfile", TEST_CONFIG,
        "--default-resources", *_default_resources(slurm_cluster),
        "--cores", str(slurm_cluster["cpus"]),
        "--slurm-init-seconds-before-status-checks", "2",
        "--retries", "0",
        *UNTIL,
    ]  # fmt: skip
    slurm = _snakemake(slurm_dir, slurm_args, "snakemake-slurm.log")
    rc = slurm.returncode
    assert rc == 0, (
        f"SLURM run failed (exit {rc}; 124 = timeout after {RUN_TIMEOUT} s):\n"
        f"{slurm.stdout[-4000:]}\n{_slurm_logs_report(slurm_dir)}"
    )

    # The jobs went through SLURM: ids in the log, records in the accounting database.
    run_id = re.search(r"SLURM run ID: (\S+)", slurm.stdout)
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)", slurm.stdout)
    assert run_id and submitted, f"no SLURM submission in the log:\n{slurm.stdout[-4000:]}"
    job_ids = [jid for jid, _ in submitted]
    assert any("group_train" in log for _, log in submitted), (
        f"the train jobs were not submitted as a group job: {[log for _, log in submitted]}"
    )
    rows = _sacct(job_ids)
    assert set(job_ids) <= set(rows), f"sacct lacks jobs {set(job_ids) - set(rows)}: {rows}"
    for jid in job_ids:
        _, name, account, partition, state = rows[jid]
        assert state == "COMPLETED", f"SLURM job {jid} is {state}"
        assert name == run_id.group(1), f"SLURM job {jid} is named {name!r}, not the run ID"
        assert account == slurm_cluster["account"], f"SLURM job {jid} charged to {account!r}"
        assert partition == slurm_cluster["partition"], f"SLURM job {jid} ran in {partition!r}"
    print(f"{len(job_ids)} SLURM jobs, all COMPLETED in sacct: {', '.join(job_ids)}")

    # Bit-identical datasets.
    local_sets = sorted(p.name for p in (local_dir / "results" / "datasets").glob("*.nc"))
    slurm_sets = sorted(p.name for p in (slurm_dir / "results" / "datasets").glob("*.nc"))
    assert local_sets, "the local run wrote no results/datasets/*.nc"
    assert slurm_sets == local_sets, f"datasets differ: local {local_sets}, slurm {slurm_sets}"
    for name in local_sets:
        problems = _compare_datasets(local_dir / "results/datasets" / name, slurm_dir / "results/datasets" / name)
        assert not problems, f"{name}: SLURM and local results differ:\n" + "\n".join(problems)
    print(f"{len(local_sets)} datasets identical; test body {time.monotonic() - t0:.1f} s")
