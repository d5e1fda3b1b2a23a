"""The experiment registry (study.experiments): every experiment implements
the one contract, and the code that loops over the registry names none."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from study import experiments

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ("train", "aggregate", "plan")


@pytest.mark.parametrize("name", experiments.NAMES)
def test_every_experiment_implements_the_contract(name):
    module = experiments.load(name)
    for member in CONTRACT:
        assert callable(getattr(module, member)), (name, member)
    assert module.prepare is None or callable(module.prepare), name
    assert isinstance(module.PURPOSE, dict) and len(set(module.PURPOSE.values())) == len(module.PURPOSE), name
    assert "train" in module.REQUIRED, name
    for kind, (variables, dims) in module.REQUIRED.items():
        assert isinstance(kind, str) and all(isinstance(v, str) for v in (*variables, *dims)), (name, kind)
    assert name in experiments.DATASETS, name
    if name in experiments.CELL_BLOCKS:  # build and jobs may come from the registry
        assert all(callable(getattr(module, f)) for f in ("cells", "train_cell", "combine")), name
        assert hasattr(module, "jobs") or isinstance(module.LABEL, str), name
    else:
        assert callable(module.build) and callable(module.jobs), name


def test_every_experiment_module_is_registered():
    package = ROOT / "scripts" / "study" / "experiments"
    assert {p.stem for p in package.glob("*.py")} - {"__init__"} == set(experiments.NAMES)
    assert set(experiments.CELL_BLOCKS) <= set(experiments.NAMES)
    assert set(experiments.DEPENDS_ON) == set(experiments.CELL_BLOCKS)


def test_unknown_experiment_is_refused():
    with pytest.raises(ValueError, match="name must be one of"):
        experiments.load("gausian")


NAME = re.compile(r"\b(" + "|".join(("basin", *experiments.NAMES)) + r")s?\b")
# What loops over the registry: the glue scripts, the in-process builder and
# the planner, the shared modules, the workflow's generic rule files. The
# config gate (study.config) still checks each experiment's block itself.
GENERIC = [
    *sorted((ROOT / "scripts").glob("*.py")),
    *(
        ROOT / "scripts" / "study" / f"{m}.py"
        for m in ("inprocess", "plan", "sources", "stacking", "matching", "labels", "units", "provenance")
    ),
]
GENERIC_RULES = [
    ROOT / "workflow" / "rules" / f for f in ("common.smk", "figures_common.smk", "figures.smk", "experiments.smk")
]


def code_words(path: Path) -> list[str]:
    """Names, attributes and strings of a Python source, docstrings and comments left out."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            out.append(node.id)
        elif isinstance(node, ast.Attribute):
            out.append(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            out.append(node.value)
    return out


@pytest.mark.parametrize("path", GENERIC, ids=lambda p: p.name)
def test_generic_code_names_no_experiment(path):
    found = [w for w in code_words(path) if NAME.search(w)]
    assert not found, f"{path.relative_to(ROOT)} names an experiment: {found}"


@pytest.mark.parametrize("path", GENERIC_RULES, ids=lambda p: p.name)
def test_generic_rules_name_no_experiment(path):
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    found = [line for line in lines if NAME.search(line)]
    assert not found, f"{path.relative_to(ROOT)} names an experiment: {found}"
