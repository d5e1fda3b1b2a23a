"""The three software descriptions pin the same versions: pyproject.toml (the
pip path CI runs), environment.yml (conda users) and workflow/envs/study.yaml
(the rules' environment under ``snakemake --sdm conda``)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# conda-forge names that differ from the PyPI ones (after lower-casing).
CONDA_TO_PYPI = {"matplotlib-base": "matplotlib"}
# conda packages with no PyPI counterpart in pyproject.toml: the interpreter,
# pip itself, and the C library's command-line tools (ncdump).
CONDA_ONLY = {"python", "pip", "libnetcdf"}
# Needed by the main Snakemake process only (parse time, scheduling), never
# inside a job: not in the rules' environment.
MAIN_PROCESS_ONLY = {"snakemake", "snakemake-executor-plugin-slurm", "jsonschema", "psutil"}


def _norm(name: str) -> str:
    name = name.strip().lower().replace("_", "-")
    return CONDA_TO_PYPI.get(name, name)


def _pyproject() -> tuple[dict[str, str], dict[str, str], str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def pins(specs):
        out = {}
        for spec in specs:
            m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", spec.strip())
            assert m, f"pyproject.toml: {spec!r} is not pinned exactly (name==version)"
            out[_norm(m.group(1))] = m.group(2)
        return out

    return pins(project["dependencies"]), pins(project["optional-dependencies"]["test"]), project["requires-python"]


def _conda(path: Path) -> tuple[dict[str, str | None], list]:
    env = yaml.safe_load(path.read_text())
    pins, pip_entries = {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_entries += dep.get("pip", [])
            continue
        name, _, version = dep.partition("=")
        pins[_norm(name)] = version.lstrip("=") or None
    return pins, pip_entries


def test_pyproject_pins_every_package_exactly():
    runtime, test, python = _pyproject()
    assert runtime and test
    assert python == ">=3.11,<3.12"


def test_environment_yml_pins_what_pyproject_pins():
    runtime, test, _ = _pyproject()
    conda, pip_entries = _conda(ROOT / "environment.yml")
    assert conda.pop("python") == "3.11"
    unpinned = sorted(n for n, v in conda.items() if v is None and n not in CONDA_ONLY)
    assert not unpinned, f"environment.yml: unpinned {unpinned}"
    pypi = {n: v for n, v in conda.items() if n not in CONDA_ONLY}
    expected = {**runtime, **test}
    assert sorted(set(expected) - set(pypi)) == [], "in pyproject.toml, missing from environment.yml"
    assert sorted(set(pypi) - set(expected)) == [], "in environment.yml, missing from pyproject.toml"
    differ = {n: (pypi[n], expected[n]) for n in expected if pypi[n] != expected[n]}
    assert not differ, f"versions differ (environment.yml, pyproject.toml): {differ}"
    assert pip_entries == ["--no-deps -e ."], pip_entries  # the project itself, nothing unpinned


def test_rule_environment_pins_what_the_jobs_import():
    runtime, _, _ = _pyproject()
    conda, pip_entries = _conda(ROOT / "workflow" / "envs" / "study.yaml")
    text = (ROOT / "workflow" / "envs" / "study.yaml").read_text()
    # Snakemake builds the env from a copy under .snakemake/conda/: a relative
    # path there would point elsewhere (or nowhere), so no pip section at all.
    assert pip_entries == [] and "pip" not in conda and "-e " not in text
    assert conda.pop("python") == "3.11"
    assert all(v is not None for v in conda.values()), conda
    expected = {n: v for n, v in runtime.items() if n not in MAIN_PROCESS_ONLY}
    assert set(conda) == set(expected), (sorted(set(conda) ^ set(expected)), "study.yaml vs pyproject.toml")
    differ = {n: (conda[n], expected[n]) for n in expected if conda[n] != expected[n]}
    assert not differ, f"versions differ (study.yaml, pyproject.toml): {differ}"
