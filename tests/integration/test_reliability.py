"""The study's reliability guarantees (docs/guarantees.md), each proved on the
tiny config: bad configs, interruption, corruption, divergence,
reproducibility, concurrency and resource limits.

The finished tiny study of ``conftest.tiny_study`` is the uninterrupted
baseline every comparison uses; tests clone it, never modify it.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from .conftest import ROOT, SNAKEMAKE, TINY, copy_project, dry_run_jobs, local_env, run_snakemake

pytestmark = pytest.mark.slow

# This checkout's library, whatever copy of the project pip last installed.
sys.path.insert(0, str(ROOT / "scripts"))
LIBRARY_ENV = {"PYTHONPATH": str(ROOT / "scripts")}

DATASETS = ["results/datasets/population.nc", "results/datasets/empirical.nc"]
# Every dataset of the tiny study: the Gaussian ones, the two-layer model's, the digits part's (issue 12)
# and the basin study's (issue 10).
STUDY_DATASETS = [
    *DATASETS,
    "results/datasets/two_layer.nc",
    "results/datasets/digits.nc",
    "results/datasets/basins.nc",
    "results/datasets/label_noise.nc",
]


# ---- helpers -------------------------------------------------------------------


def clone_study(src: Path, dest: Path) -> Path:
    """Copy a finished study, keeping mtimes and Snakemake's metadata."""
    shutil.copytree(src, dest, symlinks=True)
    return dest


def snapshot(workdir: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under results/: (size, mtime_ns, sha256)."""
    root = workdir / "results"
    if not root.exists():
        return {}
    out = {}
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        st = f.stat()
        out[str(f.relative_to(workdir))] = (st.st_size, st.st_mtime_ns, hashlib.sha256(f.read_bytes()).hexdigest())
    return out


def netcdf_files(workdir: Path) -> list[str]:
    return sorted(str(p.relative_to(workdir)) for p in (workdir / "results").rglob("*.nc"))


def assert_same_data(a: Path, b: Path, files=None) -> None:
    """The data variables (and coordinates) of every netCDF file are bit-identical."""
    files = netcdf_files(a) if files is None else files
    assert files, f"no netCDF files under {a}/results"
    assert set(files) <= set(netcdf_files(b)), sorted(set(files) - set(netcdf_files(b)))
    for rel in files:
        with xr.open_dataset(a / rel) as x, xr.open_dataset(b / rel) as y:
            assert set(x.variables) == set(y.variables), rel
            for name in x.variables:
                u, v = x[name].values, y[name].values
                assert u.dtype == v.dtype and u.shape == v.shape, (rel, name)
                if u.dtype.kind == "O":
                    assert u.tolist() == v.tolist(), (rel, name)
                else:
                    # bit-identical, NaN included (same bytes, not merely equal values)
                    assert np.ascontiguousarray(u).tobytes() == np.ascontiguousarray(v).tobytes(), (rel, name)
                assert str(x[name].attrs) == str(y[name].attrs), (rel, name)
            # Global attributes too, but for the code version (and the checksum covering it): the
            # library may be edited between two copies of the project, the numbers may not change.
            differ = sorted(
                k
                for k in set(x.attrs) | set(y.attrs)
                if k not in ("code_sha256", "content_sha256") and str(x.attrs.get(k)) != str(y.attrs.get(k))
            )
            assert not differ, (rel, {k: (str(x.attrs.get(k))[:300], str(y.attrs.get(k))[:300]) for k in differ})


def tiny_config() -> dict:
    return yaml.safe_load(TINY.read_text())


def output(proc) -> str:
    return proc.stdout + proc.stderr


def test_the_library_under_test_is_this_checkout():
    import rvscgd
    import study.jobs

    for module in (study.jobs, rvscgd):
        assert Path(module.__file__).resolve().is_relative_to(ROOT / "scripts"), module.__file__


# ---- 1. bad config -----------------------------------------------------------------


def _set(path, value):
    def mutate(cfg):
        *parents, last = path.split(".")
        node = cfg
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value

    return mutate


def _drop(path):
    def mutate(cfg):
        *parents, last = path.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        del node[last]

    return mutate


# id: (change to the tiny config, or raw file text; what the message must contain)
BAD_CONFIGS = {
    "unknown_penalty": (_set("grid.penalty", ["l0", "l2"]), ["grid.penalty[1]", "'l2'"]),
    "unknown_ste": (_set("grid.ste", ["relu", "sigmoid"]), ["grid.ste[1]", "'sigmoid'"]),
    "negative_lam": (_set("grid.lam", [0, -0.01]), ["grid.lam[1]", "-0.01"]),
    "zero_beta": (_set("grid.beta", [0]), ["grid.beta[0] = 0"]),
    "negative_beta": (_set("grid.beta", [0.02, -0.5]), ["grid.beta[1] = -0.5"]),
    "zero_eta": (_set("grid.eta", [0.0]), ["grid.eta[0] = 0.0"]),
    "negative_eta": (_set("grid.eta", [1.0, -1.0]), ["grid.eta[1] = -1.0"]),
    "nan_eta": (_set("grid.eta", [math.nan]), ["grid.eta[0] = nan"]),
    "infinite_lam": (_set("grid.lam", [0, math.inf]), ["grid.lam[1] = inf"]),
    "s_greater_than_n": (_set("teacher.sparsity", 20), ["teacher.sparsity = 20", "n = 8"]),
    "non_integer_sparsity": (_set("teacher.sparsity", 2.5), ["teacher.sparsity = 2.5"]),
    "empty_grid_list": (_set("grid.lam", []), ["grid.lam = []"]),
    "empty_grid": (_set("grid", {}), ["grid.penalty", "grid.lam", "grid.beta", "missing"]),
    "scalar_for_list": (_set("grid.lam", 0.01), ["grid.lam = 0.01", "array"]),
    "string_for_number": (_set("grid.beta", ["0.02"]), ["grid.beta[0] = '0.02'"]),
    "string_for_integer": (_set("population.max_steps", "500"), ["population.max_steps = '500'"]),
    "float_for_integer": (_set("dims.n", [8.0, 12]), ["dims.n[0] = 8.0"]),
    "string_for_boolean": (_set("grid.normalise", ["yes"]), ["grid.normalise[0] = 'yes'"]),
    "unknown_key": (_set("bogus", 1), ["bogus = 1", "unknown key"]),
    "misspelt_nested_key": (_set("grid.lamda", [0.01]), ["grid.lamda = [0.01]", "unknown key"]),
    "missing_required_key": (_drop("seeds"), ["seeds: required key is missing"]),
    "missing_nested_key": (_drop("dims.k"), ["dims.k: required key is missing"]),
    "duplicate_grid_values": (_set("grid.lam", [0, 0.01, 0.01]), ["grid.lam = [0, 0.01, 0.01]", "duplicate"]),
    "duplicate_penalty": (_set("grid.penalty", ["l1", "l1"]), ["grid.penalty", "duplicate values ['l1']"]),
    "zero_tl1_a": (_set("grid.tl1_a", 0), ["grid.tl1_a = 0"]),
    "digits_patch_not_dividing_8": (_set("digits.patch", 3), ["digits.patch = 3", "must divide the image side 8"]),
    "digits_zero_filters": (_set("digits.filters", 0), ["digits.filters = 0"]),
    "negative_tl1_a": (_set("grid.tl1_a", -1.0), ["grid.tl1_a = -1.0"]),
    "basins_angle_reversed": (
        _set("basins.adversarial_angle", [1.0, 0.9]),
        ["basins.adversarial_angle = [1.0, 0.9]", "low < high"],
    ),
    "basins_no_starts": (
        _set("basins.starts", {"random": 0, "adversarial": 0}),
        ["basins.starts = ", "'random': 0", "random + adversarial must be >= 1"],
    ),
    "basins_zero_batch": (_set("basins.batch_size", [0]), ["basins.batch_size[0] = 0"]),
    "nothing_to_train": (
        lambda c: (_set("population.enabled", False)(c), _set("empirical.enabled", False)(c)),
        ["population.enabled = False", "empirical.enabled = False"],
    ),
    "unwritable_results_dir": (
        _set("results_dir", "config/config.yaml/results"),
        ["results_dir = 'config/config.yaml/results'", "not writable"],
    ),
    "unknown_sampler": (_set("empirical.sampler", "exact"), ["empirical.sampler = 'exact'"]),
    "projected_sampler_small_n": (_set("empirical.sampler", "projected"), ["empirical.sampler = 'projected'", "[8]"]),
    "projected_sampler_fixed": (
        lambda c: (_set("empirical.sampler", "projected")(c), _set("empirical.sampling", "fixed")(c)),
        ["empirical.sampler = 'projected'", "empirical.sampling = fresh"],
    ),
    "figure_slice_off_grid": (_set("figures.slice.beta", 0.3), ["figures.slice.beta = 0.3", "grid.beta = [0.02]"]),
    "figure_slice_not_exactly_on_grid": (
        _set("figures.convergence.slice.beta", 0.02 + 1e-12),
        ["figures.convergence.slice.beta = 0.020000000001", "not in grid.beta"],
    ),
    "figure_lam_off_grid": (_set("figures.convergence.lam", [0, 0.02]), ["figures.convergence.lam[1] = 0.02"]),
    "figure_mode_disabled": (
        lambda c: (_set("empirical.enabled", False)(c), _set("figures.tradeoff.mode", "empirical")(c)),
        ["figures.tradeoff.mode = 'empirical'", "empirical.enabled is False"],
    ),
    "yte_template": ("__use_yte__: true\n", ["__use_yte__ = True", "refused"]),
    "python_tag": ("trace_points: !!python/tuple [12]\n", ["not plain YAML", "python/tuple"]),
}
YAML_SYNTAX_ERROR = "grid:\n  penalty: [l0, l1\n  lam: [0]\n"
# Each kind of malformed config the issue lists, and the cases that make it.
ISSUE_KINDS = {
    "unknown penalty or STE": ["unknown_penalty", "unknown_ste"],
    "lam < 0": ["negative_lam"],
    "beta <= 0": ["zero_beta"],
    "eta <= 0": ["zero_eta"],
    "s > n": ["s_greater_than_n"],
    "empty grid": ["empty_grid_list", "empty_grid"],
    "wrong types": ["scalar_for_list", "float_for_integer"],
    "unknown key": ["unknown_key"],
    "missing required key": ["missing_required_key"],
    "duplicate grid values": ["duplicate_grid_values"],
    "TL1 a <= 0": ["zero_tl1_a"],
    "digits block (issue 12)": ["digits_patch_not_dividing_8", "digits_zero_filters"],
    "unwritable results path": ["unwritable_results_dir"],
    "YAML syntax error": ["yaml_syntax_error"],
}
# Every case is checked in-process (the validation code of common.smk, fast); these also
# through a real `snakemake` run (about 2 s each): every kind of the issue, and more.
SNAKEMAKE_CASES = sorted({c for cases in ISSUE_KINDS.values() for c in cases} - {"yaml_syntax_error"}) + [
    "nan_eta",
    "yte_template",
    "figure_slice_off_grid",
]
# Cases also run in a fresh checkout, to prove no results/ folder appears.
FRESH = ("unknown_penalty", "unwritable_results_dir", "yaml_syntax_error")


def _bad_text(case: str) -> str:
    if case == "yaml_syntax_error":
        return YAML_SYNTAX_ERROR + yaml.safe_dump({k: v for k, v in tiny_config().items() if k != "grid"})
    change, _ = BAD_CONFIGS[case]
    if isinstance(change, str):
        return change + yaml.safe_dump(tiny_config())
    cfg = copy.deepcopy(tiny_config())
    change(cfg)
    return yaml.safe_dump(cfg)


def _run_bad(workdir: Path, case: str, via: str):
    """Write the bad config, run snakemake for real (no --dry-run), report
    (process, results/ before, results/ after).

    via "config": the bad file replaces config/config.yaml (the Snakefile's
    configfile; the only way a key can be missing), and is also passed as
    --configfile; via "cli": only passed with --configfile.
    """
    text = _bad_text(case)
    if via == "config":
        target = workdir / "config" / "config.yaml"
    else:
        target = workdir / "bad.yaml"
    target.write_text(text)
    before = snapshot(workdir)
    proc = run_snakemake(workdir, "--cores", "2", configfile=target, check=False, timeout=300)
    return proc, before, snapshot(workdir)


@pytest.fixture(scope="module")
def bad_config_runs(tiny_study, tmp_path_factory):
    """Every bad config, run in its own clone of the finished tiny study (and,
    for FRESH, in a fresh checkout), in parallel: {(case, where): result}."""
    base = tmp_path_factory.mktemp("bad_configs")
    jobs = {}
    for case in [*SNAKEMAKE_CASES, "yaml_syntax_error"]:
        jobs[(case, "study")] = (clone_study(tiny_study, base / f"study_{case}"), "config")
    jobs[("yaml_syntax_error", "cli")] = (clone_study(tiny_study, base / "cli_yaml_syntax_error"), "cli")
    for case in FRESH:
        jobs[(case, "fresh")] = (copy_project(base / f"fresh_{case}"), "config")
    # More runs than cores: a snakemake start also waits (e.g. on the SLURM plugin's probe).
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = {key: pool.submit(_run_bad, work, key[0], via) for key, (work, via) in jobs.items()}
        return {key: f.result() for key, f in futures.items()}


def test_every_kind_of_bad_config_is_run_through_snakemake():
    assert len(SNAKEMAKE_CASES) + 1 >= 15
    for kind, cases in ISSUE_KINDS.items():
        assert set(cases) <= {*SNAKEMAKE_CASES, "yaml_syntax_error"}, kind


@pytest.fixture(scope="module")
def in_process_project(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("in_process"))


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_explained(in_process_project, monkeypatch, case):
    """What common.smk does, in-process: read the file as Snakemake does, then pass it through the gate."""
    from snakemake.common.configfile import load_configfile

    from study.config import ConfigError, load

    monkeypatch.chdir(in_process_project)
    Path("config/config.yaml").write_text(_bad_text(case))
    schema = in_process_project / "workflow" / "schemas" / "config.schema.yaml"
    with pytest.raises(ConfigError) as refused:
        load(load_configfile("config/config.yaml"), ["config/config.yaml"], schema)
    message = str(refused.value)
    assert message.startswith("Invalid config (from config/config.yaml); nothing was run:"), message
    for needle in BAD_CONFIGS[case][1]:
        assert needle in message, f"message lacks {needle!r}:\n{message}"


def test_the_tiny_and_default_configs_are_valid(in_process_project, monkeypatch):
    from snakemake.common.configfile import load_configfile

    from study.config import load

    monkeypatch.chdir(in_process_project)
    schema = in_process_project / "workflow" / "schemas" / "config.schema.yaml"
    for f in (TINY, ROOT / "config" / "config.yaml", ROOT / "config" / "paper.yaml"):
        load(load_configfile(f), [f], schema)  # raises ConfigError if refused


# Refused by the workflow, by study.inprocess and by study.plan with one message:
# schema, semantic and figure checks, and a templated file.
GATE_CASES = [
    "unknown_penalty",
    "misspelt_nested_key",
    "s_greater_than_n",
    "nothing_to_train",
    "figure_slice_off_grid",
    "figure_lam_off_grid",
    "yte_template",
]


@pytest.mark.parametrize("case", GATE_CASES)
def test_a_config_the_workflow_refuses_is_refused_everywhere(tmp_path, monkeypatch, case):
    from study.config import ConfigError
    from study.inprocess import load_config

    work = copy_project(tmp_path / "project")
    (work / "config" / "config.yaml").write_text(_bad_text(case))
    workflow = output(run_snakemake(work, "--dry-run", configfile="config/config.yaml", check=False))
    plan = subprocess.run(
        [sys.executable, "-m", "study.plan", "config/config.yaml"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(work / "scripts")},
    )
    monkeypatch.chdir(work)
    with pytest.raises(ConfigError) as refused:
        load_config("config/config.yaml")
    message = str(refused.value)
    for needle in BAD_CONFIGS[case][1]:
        assert needle in message, f"message lacks {needle!r}:\n{message}"
    assert message in workflow, f"snakemake said otherwise:\n{workflow}\nin-process:\n{message}"
    assert "Building DAG" not in workflow, workflow
    assert plan.returncode != 0 and plan.stderr.strip() == message, plan.stdout + plan.stderr


@pytest.mark.parametrize("case", SNAKEMAKE_CASES)
def test_bad_config_stops_snakemake_before_any_job(bad_config_runs, case):
    proc, before, after = bad_config_runs[(case, "study")]
    out = output(proc)
    assert proc.returncode != 0, out
    assert "Invalid config" in out and "nothing was run" in out, out
    for needle in BAD_CONFIGS[case][1]:
        assert needle in out, f"message lacks {needle!r}:\n{out}"
    assert "Select jobs to execute" not in out and "Building DAG" not in out, out
    assert after == before, "a file under results/ was created or changed"


@pytest.mark.parametrize("case", FRESH)
def test_bad_config_creates_no_results_folder(bad_config_runs, case):
    proc, before, after = bad_config_runs[(case, "fresh")]
    assert proc.returncode != 0, output(proc)
    assert before == after == {}


@pytest.mark.parametrize("via", ["study", "cli"])
def test_yaml_syntax_error_stops_before_any_job(bad_config_runs, via):
    proc, before, after = bad_config_runs[("yaml_syntax_error", via)]
    out = output(proc)
    assert proc.returncode != 0, out
    assert "not valid JSON or YAML" in out, out
    assert "Select jobs to execute" not in out and "Building DAG" not in out, out
    assert after == before


@pytest.mark.xfail(
    strict=True,
    reason="Snakemake 9.27.1 parses config files itself, before any workflow code runs, and replaces "
    "the YAML error (which has the file, line and column) by 'Config file is not valid JSON or YAML'",
)
def test_yaml_syntax_error_message_names_the_file(bad_config_runs):
    proc, _, _ = bad_config_runs[("yaml_syntax_error", "cli")]
    out = output(proc)
    assert "bad.yaml" in out and "line 2" in out, out


# ---- config files are data -----------------------------------------------------------


def test_no_code_evaluates_config_text():
    """The workflow's own code reads YAML only with the safe loader and evaluates no string
    (templated or tagged config files are refused: see the yte_template and python_tag cases)."""
    root = Path(__file__).resolve().parents[2]
    sources = [*(root / "scripts").rglob("*.py"), *(root / "workflow").rglob("*.smk"), root / "workflow" / "Snakefile"]
    for f in sources:
        text = f.read_text()
        for banned in ("eval(", "exec(", "yaml.load(", "yaml.unsafe_load", "FullLoader", "UnsafeLoader"):
            assert banned not in text, f"{f.relative_to(root)} uses {banned}"


# ---- 2. interruption --------------------------------------------------------------


def as_at_a_terminal() -> None:
    """Give Ctrl-C's signals their default action, as they have for a command typed at a terminal.

    A shell without job control starts a background command with SIGINT and
    SIGQUIT ignored (POSIX), and an ignored signal stays ignored through every
    fork and exec. Under a runner that starts the suite so, Snakemake and its
    jobs would never see the test's SIGINT (they hung until the guard's end).
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def start_snakemake(workdir: Path, *args, configfile=TINY, env=None) -> subprocess.Popen:
    """Start snakemake in its own process group, as a shell runs a command typed at a terminal."""
    log = open(workdir / f"snakemake-{time.monotonic_ns()}.out", "w")  # noqa: SIM115 - closed by the OS
    return subprocess.Popen(
        [*SNAKEMAKE, "--configfile", str(configfile), *args],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=as_at_a_terminal,
        env=local_env(env),
    )


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"snakemake ended (code {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def train_outputs(workdir: Path) -> list[Path]:
    return sorted((workdir / "results" / "gaussian" / "train").glob("*/*.nc"))


def n_train_jobs() -> int:
    cfg = tiny_config()
    return 2 * len(cfg["dims"]["n"]) * len(cfg["dims"]["k"]) * len(cfg["seeds"])


def interrupt_mid_training(workdir: Path, gate: Path, sig: int, *targets) -> None:
    """Start the study, freeze it at a known point mid-training, send ``sig``
    to snakemake's whole process group and wait for it to end.

    The point is set by the write gate of ``study.ncio`` (``HOLD_ENV``): every
    netCDF write waits, its temporary file complete, until the test releases
    it. The test releases every write but the one-layer training ones, and
    exactly one of those. It signals once that training output is in place
    and two more training jobs hold their finished temporary files. Those two
    fill the run's two cores (a train job takes one thread, and Snakemake
    counts it from submission), so no other job is running or about to start:
    nothing can race the signal, whatever the machine's speed or load. (A job
    submitted just before a Ctrl-C starts after it and never receives it; see
    docs/guarantees.md.) Writes other than training ones are released after
    the signal too, so no job that outlives it can wait at the gate for ever.
    """
    from study.ncio import HOLD_ENV

    gate.mkdir()
    proc = start_snakemake(workdir, "--cores", "2", *targets, env={HOLD_ENV: str(gate)})
    released_train = []

    def release() -> list[str]:
        """Release what may go through; return the training writes held back."""
        held = sorted(f.name.removesuffix(".held") for f in gate.glob("*.held"))
        for key in held:
            # Every write but the one-layer training ones goes through (data, limits, the
            # other experiments' parts), and of those exactly the first.
            if not key.startswith(TRAIN_PREFIX) or not released_train:
                if key.startswith(TRAIN_PREFIX):
                    released_train.append(key)
                (gate / f"{key}.go").touch()
        return [k for k in held if k.startswith(TRAIN_PREFIX) and k not in released_train]

    def frozen_mid_training() -> bool:
        return len(release()) == 2 and len(train_outputs(workdir)) == 1

    try:
        wait_for(frozen_mid_training, proc, "one training output and both cores' training jobs mid-write")
        assert len(list((workdir / "results" / "gaussian" / "train").glob("*/.*.nc.tmp-*"))) == 2, (
            "not two jobs mid-write"
        )
        os.killpg(proc.pid, sig)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            release()
            time.sleep(0.05)
        assert proc.poll() is not None, f"snakemake still running 120 s after {signal.Signals(sig).name}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert len(train_outputs(workdir)) == 1 < n_train_jobs()


TRAIN_PREFIX = "results__gaussian__train__"  # the gate's keys of one-layer training outputs


def assert_no_half_written_outputs(workdir: Path) -> None:
    """Every netCDF file under its final name is complete: it opens and matches its checksum."""
    from study.ncio import open_checked

    for f in (workdir / "results").rglob("*.nc"):
        open_checked(f)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_interrupted_study_resumes_bit_identical(tiny_study, tmp_path, sig):
    work = copy_project(tmp_path / "study")
    targets = tuple(STUDY_DATASETS)  # the training stage and what depends on it (figures: guarantee 4)
    interrupt_mid_training(work, tmp_path / "gate", sig, *targets)
    assert_no_half_written_outputs(work)
    left = list((work / "results").rglob(".*.tmp-*"))
    if sig == signal.SIGINT:
        assert not left, left  # the interrupted job removed its temporary file
    proc = run_snakemake(work, "--cores", "2", *targets)  # the very next invocation finishes
    if sig == signal.SIGKILL:
        assert "Removed a stale Snakemake lock" in output(proc)
    assert not list((work / "results").rglob(".*.tmp-*")), "a temporary file survived the rerun"
    assert_same_data(tiny_study, work, files=netcdf_files(tiny_study))
    assert "Nothing to be done" in output(run_snakemake(work, "--dry-run", "--cores", "2", *targets))


# ---- 3. corruption -----------------------------------------------------------------


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garble(path: Path) -> None:
    """Overwrite 64 bytes in the middle of the file with random ones."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = np.random.default_rng(0).integers(0, 256, 64, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def edit_value_keep_mtime(path: Path) -> None:
    """A valid netCDF file with one wrong number, and its old mtime: only a
    checksum can tell (Snakemake sees nothing to do)."""
    import netCDF4

    st = path.stat()
    with netCDF4.Dataset(path, "a") as nc:
        var = nc.variables["w_bar"]
        values = var[:]
        values.flat[0] = values.flat[0] + 1e-9
        var[:] = values
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


# id: (file, how, extra snakemake arguments that make the next run read it)
CORRUPTIONS = {
    "truncated_train": ("results/gaussian/train/population/n8_k4_seed0.nc", truncate, ()),
    "garbled_data": ("results/gaussian/data/n12_k4_seed1.nc", garble, ()),
    "edited_limits_old_mtime": (
        "results/gaussian/limits/n8_k4_seed1.nc",
        edit_value_keep_mtime,
        ("--forcerun", "aggregate_gaussian"),
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupt_intermediate_is_caught_never_used(tiny_study, tmp_path, case):
    rel, corrupt, extra = CORRUPTIONS[case]
    work = clone_study(tiny_study, tmp_path / "study")
    corrupt(work / rel)
    if extra:  # unchanged mtime: Snakemake itself sees nothing to do, the old outputs stay valid
        assert not {"prepare_gaussian", "train_gaussian", "aggregate_gaussian"} & set(dry_run_jobs(work))
    proc = run_snakemake(work, "--cores", "2", *extra, check=False)
    out = output(proc)
    assert proc.returncode != 0, out
    assert "CorruptFileError" in out, out
    # The message names the file and how to recover.
    assert f"rm {rel}" in out and f"--forcerun {rel}" in out, out
    # Never a result from garbage: every dataset and figure is the baseline's, or gone.
    for f in [*(work / "results" / "datasets").glob("*"), *(work / "results" / "figures").glob("*")]:
        base = tiny_study / f.relative_to(work)
        assert base.exists() and base.read_bytes() == f.read_bytes(), f"{f} made after the corruption"
    # The advice works: force the file, get the uninterrupted results back.
    run_snakemake(work, "--cores", "2", f"--forcerun={rel}", *DATASETS)
    assert_same_data(tiny_study, work)


# ---- 4. divergence -----------------------------------------------------------------

BLOW_UP_ETA = 1.0e200  # the first step overflows: every run with this eta diverges


def divergence_config() -> dict:
    cfg = tiny_config()
    cfg["grid"]["eta"] = [1.0, BLOW_UP_ETA]
    cfg["grid"]["normalise"] = [True, False]
    return cfg


def pdf_text(path: Path) -> str:
    """The text shown in a PDF, by a real PDF reader (TrueType text is glyph codes, not plain strings)."""
    from pypdf import PdfReader

    return " ".join(page.extract_text() or "" for page in PdfReader(path).pages)


def registered_figures() -> list[str]:
    """The figures the workflow must draw (every one is enabled by default)."""
    from study.figures.registry import FIGURES

    return list(FIGURES)


@pytest.fixture(scope="module")
def diverged_study(tmp_path_factory) -> Path:
    """The tiny study with a blow-up step size in the grid, run to the end."""
    work = copy_project(tmp_path_factory.mktemp("diverged"))
    cfg = work / "diverge.yaml"
    cfg.write_text(yaml.safe_dump(divergence_config()))
    run_snakemake(work, "--cores", "2", configfile=cfg)
    return work


def test_blow_up_limit_search_is_quick():
    """The fixed-point search gives up on a start that blows up (it used to run to max_iter)."""
    import rvscgd

    w_star = rvscgd.make_teacher(8, 3, np.random.default_rng(0))
    t = time.monotonic()
    with np.errstate(over="ignore"):
        search = rvscgd.predicted_limit(w_star, 4, 0.01, 0.02, "l1", starts=8, eta=BLOW_UP_ETA)
    assert time.monotonic() - t < 2
    assert len(search) == 0 and (search.start_limit == -1).all()


def test_diverged_runs_are_flagged_in_the_datasets(diverged_study):
    from study.ncio import open_checked

    for rel in DATASETS:
        ds = open_checked(diverged_study / rel)
        flags = ds["status"].attrs
        meaning = dict(zip(np.atleast_1d(flags["flag_values"]).tolist(), flags["flag_meanings"].split(), strict=True))
        assert meaning[2] == "diverged"
        diverged = ds["status"] == 2
        # The baselines' untrained grid points (status -1) are no runs.
        trained = ds["status"] != -1
        assert meaning.get(-1, "not_trained") == "not_trained"
        # Every trained run with the blow-up eta diverged, and only those.
        assert bool(diverged.where(trained, True).sel(eta=BLOW_UP_ETA).all()) and not bool(diverged.sel(eta=1.0).any())
        assert ds.attrs["runs_diverged"] == int(diverged.sum()) > 0
        assert ds.attrs["runs_total"] == int(trained.sum())
        assert ds.attrs["runs_not_trained"] == ds["status"].size - int(trained.sum())
        # Their weights and metrics are NaN: no number from garbage...
        summaries = ("angle_u_final", "sparsity_u_final", "nonzeros_u_final")
        for name in (*summaries, "support_precision", "support_recall", "support_exact"):
            assert bool(ds[name].where(diverged).isnull().all()), name
        assert bool(ds["angle_w"].isel(step=-1).where(diverged).isnull().all())
        # ...and the other runs are untouched by them: finite, as in a study without the blow-up eta.
        run = trained.sel(eta=1.0)
        for name in ("sparsity_u_final", "nonzeros_u_final"):
            assert bool((np.isfinite(ds[name].sel(eta=1.0)) | ~run).all()), name
        # The weights themselves (per-cell training files, docs/datasets.md): NaN exactly where diverged.
        mode = ds.attrs["mode"]
        for path in sorted((diverged_study / "results" / "gaussian" / "train" / mode).glob("*.nc")):
            train = open_checked(path)
            at = {d: int(train.attrs[d]) for d in ("n", "k", "seed")}
            nan = train["w_final"].isnull().any("feature")
            assert bool((nan == diverged.sel(at)).where(trained.sel(at), True).all()), path.name
        log = (
            diverged_study / "results" / "logs" / "aggregate_gaussian" / Path(rel).with_suffix(".log").name
        ).read_text()
        assert f"WARNING: {int(diverged.sum())} of {int(trained.sum())}" in log


def test_study_with_diverged_runs_completes_and_figures_say_so(diverged_study):
    assert "Nothing to be done" in output(
        run_snakemake(diverged_study, "--dry-run", "--cores", "2", configfile=diverged_study / "diverge.yaml")
    )
    figures = sorted((diverged_study / "results" / "figures").glob("*.pdf"))
    assert [p.stem for p in figures] == sorted(registered_figures()), "a registered figure was not drawn"
    for pdf in figures:
        assert pdf.read_bytes()[:5] == b"%PDF-"
        assert pdf.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A figure over the whole grid shows diverged runs: it excludes them and says so.
    assert any("diverged" in pdf_text(pdf) for pdf in figures), [p.name for p in figures]


def test_figures_of_a_slice_where_every_run_diverged_render(diverged_study, tmp_path):
    work = clone_study(diverged_study, tmp_path / "study")
    cfg = divergence_config()
    cfg.setdefault("figures", {})["slice"] = {"eta": BLOW_UP_ETA}  # the tiny config's figure switches stay
    (work / "all_diverged.yaml").write_text(yaml.safe_dump(cfg))
    shutil.rmtree(work / "results" / "figures")  # every figure must be drawn again from this slice, none left over
    proc = run_snakemake(work, "--cores", "2", configfile=work / "all_diverged.yaml", check=False)
    assert proc.returncode == 0, output(proc)[-3000:]
    figures = sorted((work / "results" / "figures").glob("*.pdf"))
    assert [p.stem for p in figures] == sorted(registered_figures()), "a registered figure was not drawn"
    from study.figures.registry import FIGURES

    # The slice is of the one-layer grid: every figure drawn from those datasets says its runs diverged
    # (the two-layer and digits parts have grids of their own, untouched by figures.slice).
    one_layer = [p for p in figures if {"population", "empirical"} & set(FIGURES[p.stem].datasets)]
    for pdf in one_layer:
        assert "diverged" in pdf_text(pdf), pdf.name


# ---- 5. reproducibility ------------------------------------------------------------


def test_cores_and_directory_do_not_change_a_bit(tiny_study, tmp_path):
    """The baseline ran with --cores 2; this run with --cores 1, elsewhere, deeper."""
    work = copy_project(tmp_path / "elsewhere" / "deeper" / "study")
    run_snakemake(work, "--cores", "1", *STUDY_DATASETS)
    files = netcdf_files(tiny_study)
    assert {Path(f).parts[1] for f in files} == {"gaussian", "datasets", "two_layer", "digits", "basins", "label_noise"}
    assert_same_data(tiny_study, work, files=files)
    # No path of either directory in any file (provenance holds none), and BLAS ran on one thread.
    for rel in files:
        raw = (work / rel).read_bytes()
        assert str(work).encode() not in raw and str(tiny_study).encode() not in raw, rel
    for log in (work / "results" / "logs" / "train_gaussian").rglob("*.log"):
        assert "openblas=1" in log.read_text(), log


# ---- 6. concurrency ----------------------------------------------------------------


def test_second_snakemake_is_refused_and_harms_nothing(tiny_study, tmp_path):
    work = clone_study(tiny_study, tmp_path / "study")
    for f in [*train_outputs(work), *(work / d for d in DATASETS)]:
        f.unlink()  # run A retrains every cell: long enough to start B meanwhile
    locks = work / ".snakemake" / "locks"
    a = start_snakemake(work, "--cores", "1", *STUDY_DATASETS)
    try:
        wait_for(
            lambda: any(locks.glob("*.lock")) and any((work / "results" / "gaussian" / "train").glob("*/*.nc")),
            a,
            "run A",
        )
        # Freeze run A (and its jobs) mid-training, so it is still running whatever B's start-up costs.
        os.killpg(a.pid, signal.SIGSTOP)
        try:
            b = run_snakemake(work, "--cores", "2", *STUDY_DATASETS, check=False, timeout=300)
        finally:
            os.killpg(a.pid, signal.SIGCONT)
        assert b.returncode != 0, output(b)
        assert "LockException" in output(b) and "Directory cannot be locked" in output(b), output(b)
        assert "Removed a stale Snakemake lock" not in output(b)
        assert any(locks.glob("*.lock")), "run B removed run A's lock"
        assert a.wait(timeout=600) == 0, "run A failed"
    finally:
        if a.poll() is None:
            os.killpg(a.pid, signal.SIGKILL)
            a.wait()
    assert not any(locks.glob("*.lock"))
    assert_same_data(tiny_study, work, files=netcdf_files(tiny_study))
    assert "Nothing to be done" in output(run_snakemake(work, "--dry-run", "--cores", "2", *STUDY_DATASETS))


# ---- 7. resource limits ------------------------------------------------------------

ONE_TRAIN = "results/gaussian/train/population/n8_k4_seed0.nc"
LIMIT_WHERE = "rule train_gaussian (mode=population, n=8, k=4, seed=0)"


@pytest.mark.parametrize(
    "resource, env, expected",
    [
        ("mem_mb=50", {}, ["exceeded its memory limit", "> mem_mb=50", "--set-resources train_gaussian:mem_mb="]),
        (
            "runtime=1",
            {"STUDY_SECONDS_PER_RUNTIME_MINUTE": "0.02"},  # a runtime minute lasts 20 ms
            ["exceeded its runtime limit", "(runtime=1)", "--set-resources train_gaussian:runtime="],
        ),
    ],
    ids=["mem_mb", "runtime"],
)
def test_job_over_its_resources_fails_clearly(tiny_study, tmp_path, resource, env, expected):
    work = clone_study(tiny_study, tmp_path / "study")
    proc = run_snakemake(
        work,
        *("--cores", "2", f"--forcerun={ONE_TRAIN}", f"--set-resources=train_gaussian:{resource}", ONE_TRAIN),
        check=False,
        env=env,
    )
    out = output(proc)
    assert proc.returncode != 0, out
    assert f"ResourceLimitExceeded: {LIMIT_WHERE}" in out, out
    for needle in expected:
        assert needle in out, f"message lacks {needle!r}:\n{out}"
    assert not (work / ONE_TRAIN).exists()  # no output from a stopped job


def test_runaway_allocation_fails_at_once_not_the_machine(tmp_path):
    """A job asking for far more than mem_mb gets a MemoryError from its
    address-space cap at once, reported like the other limits."""
    script = tmp_path / "job.py"
    script.write_text(
        "import numpy as np\n"
        "from study.jobs import enforce_resources\n"
        "enforce_resources('train_gaussian', {'n': 8}, mem_mb=200, runtime=1)\n"
        "x = np.ones(10**12)  # 8 TB\n"
    )
    t = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env={**os.environ, **LIBRARY_ENV}
    )
    assert time.monotonic() - t < 60
    assert proc.returncode == 1, proc.stderr
    assert "ResourceLimitExceeded: rule train_gaussian (n=8) ran out of memory" in proc.stderr, proc.stderr
    assert "address-space cap of 1424 MB" in proc.stderr and "--set-resources train_gaussian:mem_mb=" in proc.stderr


def test_memory_watchdog_stops_a_growing_job(tmp_path):
    """Resident memory creeping over mem_mb (below the address-space cap) is caught too."""
    script = tmp_path / "job.py"
    script.write_text(
        "import numpy as np\n"
        "from study.jobs import enforce_resources\n"
        "enforce_resources('prepare_gaussian', {}, mem_mb=300)\n"
        "import time\n"
        "blocks = []\n"
        "for _ in range(50):\n"
        "    blocks.append(np.ones(10**6))  # 8 MB more each time, touched: 400 MB in all\n"
        "    time.sleep(0.01)\n"
        "while True:  # over mem_mb, under the address-space cap: only the watchdog can end it\n"
        "    time.sleep(0.01)\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env={**os.environ, **LIBRARY_ENV}
    )
    assert proc.returncode == 1, proc.stderr
    assert "ResourceLimitExceeded: rule prepare_gaussian exceeded its memory limit" in proc.stderr, proc.stderr


@pytest.mark.parametrize("runs_on", [True, False], ids=["runs_on", "finishes"])
def test_a_job_that_swallows_the_stop_still_fails(tmp_path, runs_on):
    """An exception swallowed by a careless `except BaseException` does not save the job:
    it is ended 5 s later if it runs on, and exits with 1 if it finishes first.

    The job swallows the stop whenever the watchdog sends it; "finishes" ends
    right after (so before the 5 s), however late a loaded machine runs the
    watchdog."""
    script = tmp_path / "job.py"
    script.write_text(
        "import time\n"
        "from study.jobs import enforce_resources\n"
        "enforce_resources('train_gaussian', {}, runtime=1)\n"
        "stopped = False\n"
        "for _ in range(600):  # 60 s at most\n"
        "    try:\n"
        "        time.sleep(0.1)\n"
        "    except BaseException:\n"
        "        stopped = True\n"
        f"    if stopped and {not runs_on}:\n"
        "        break\n"
    )
    env = {**os.environ, **LIBRARY_ENV, "STUDY_SECONDS_PER_RUNTIME_MINUTE": "0.05"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1, proc.stderr
    assert "ResourceLimitExceeded: rule train_gaussian exceeded its runtime limit" in proc.stderr, proc.stderr
    assert ("ended" if runs_on else "the job fails") in proc.stderr, proc.stderr
