"""study.sources: the project code a job runs, read from the imports (the
rules' code inputs and the datasets' code_sha256)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from study import experiments, sources
from study.figures import registry
from study.sources import ROOT, code_digest, job_modules, job_sources

GLUE = sorted(p.name for p in ROOT.glob("*.py"))


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture
def tree(tmp_path):
    return write_tree(
        tmp_path,
        {
            "job.py": "import sys\nfrom study.a import f\nimport rvscgd\nx = rvscgd.lazy.g\n",
            "study/__init__.py": "",
            "study/a.py": "from .b import g\nfrom . import c\n\ndef h():\n    from .sub import d\n",
            "study/b.py": "import numpy\n",
            "study/c.py": "",
            "study/unused.py": "",
            "study/sub/__init__.py": "",
            "study/sub/d.py": "from ..b import g\nfrom rvscgd.core import k\n",
            "rvscgd/__init__.py": "from .core import k\n",
            "rvscgd/core.py": "",
            "rvscgd/lazy.py": "",
            "rvscgd/other.py": "",
        },
    )


def test_every_kind_of_import_is_followed(tree):
    assert job_modules("job.py", root=tree) == [
        "rvscgd",  # import rvscgd
        "rvscgd.core",  # imported by the package's __init__
        "rvscgd.lazy",  # rvscgd.lazy read as an attribute: loads on first use
        "study",  # the package a submodule's import runs first
        "study.a",
        "study.b",  # from .b (relative)
        "study.c",  # from . import c (a submodule by from-import)
        "study.sub",
        "study.sub.d",  # imported inside a function, then ..b (two levels up)
    ]
    assert job_sources("job.py", root=tree)[:2] == [Path("job.py"), Path("rvscgd/__init__.py")]


def test_a_module_entry_and_a_bad_entry(tree):
    assert job_modules("study.c", root=tree) == ["study", "study.c"]
    with pytest.raises(ValueError, match="entries"):
        job_modules("numpy", root=tree)


def real_imports(*modules: str) -> list[str]:
    """The project modules a fresh interpreter holds after importing ``modules``."""
    code = (
        "import importlib, json, sys; sys.path.insert(0, sys.argv[1]); "
        "[importlib.import_module(m) for m in sys.argv[2:]]; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('rvscgd', 'study'))))"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT), *modules], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


@pytest.mark.parametrize(
    "module",
    [
        "study.experiments.gaussian",
        "study.experiments.basins",
        "study.experiments.two_layer",
        "study.experiments.digits",
        "study.figures.stats",
        "study.inprocess",
        "study.plan",
    ],
)
def test_the_reading_finds_what_python_imports(module):
    """The modules found from the sources are exactly those a fresh
    interpreter holds after the import: none missed, none extra."""
    assert job_modules(module) == real_imports(module)


def test_training_does_not_run_the_theory_or_the_digits_classifier():
    """rvscgd loads theory and digits on first use: editing them leaves the Gaussian training cached."""
    for entries in (
        ("prepare.py", "study.experiments.gaussian"),
        ("train.py", "study.experiments.gaussian"),
        ("aggregate.py", "study.experiments.gaussian"),
        ("train.py", "study.experiments.two_layer"),
    ):
        mods = job_modules(*entries)
        assert "rvscgd.engine" in mods and "rvscgd.theory" not in mods and "rvscgd.digits" not in mods, entries
    assert "rvscgd.theory" in job_modules("train.py", "study.experiments.basins")
    assert "rvscgd.digits" in job_modules("train.py", "study.experiments.digits")
    every = {m for glue in GLUE for e in experiments.NAMES for m in job_modules(glue, f"study.experiments.{e}")}
    assert "rvscgd.bench" not in every and "study.plan" not in every


def test_a_job_runs_its_own_experiment_only():
    """The glue scripts import the registry, not an experiment: a job's code is its experiment's."""
    for glue in GLUE:
        assert not [m for m in job_modules(glue) if m.startswith("study.experiments.")], glue
    others = set(experiments.NAMES) - {"two_layer"}
    mods = job_modules("train.py", "study.experiments.two_layer")
    assert not {f"study.experiments.{e}" for e in others} & set(mods)


@pytest.mark.parametrize("name", registry.FIGURES)
def test_a_figure_runs_the_figure_modules_its_registry_entry_names(name):
    """The registry's claim (FIGURES[..].uses, SHARED) and the imports agree."""
    package = "study.figures."
    found = {m.removeprefix(package) for m in job_modules("plot_figure.py", package + name) if m.startswith(package)}
    assert found - {"registry"} == set(registry.modules(name))
    assert "study.style" in job_modules("plot_figure.py", package + name)


def test_the_digest_covers_every_file_and_only_those(tmp_path, monkeypatch):
    root = write_tree(tmp_path, {"a.py": "x = 1\n", "study/b.py": "y = 2\n", "study/c.py": ""})
    monkeypatch.setattr(sources, "ROOT", root)
    files = [root / "a.py", root / "study" / "b.py"]
    before = code_digest(files)
    assert code_digest(reversed(files)) == before  # order-free
    (root / "study" / "c.py").write_text("# not run by the job\n")
    assert code_digest(files) == before
    (root / "study" / "b.py").write_text("y = 2\n# edited\n")
    assert code_digest(files) != before
