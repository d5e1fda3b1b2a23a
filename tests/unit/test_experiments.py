"""The experiment registry (study.experiments): every experiment implements
the one contract, and the code that loops over the registry names none."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
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
    modules = {p.stem for p in package.glob("*.py")} - {"__init__"}
    assert {m for m in modules if not m.endswith("_checks")} == set(experiments.NAMES)
    assert {m.removesuffix("_checks") for m in modules if m.endswith("_checks")} <= set(experiments.NAMES)
    assert set(experiments.CELL_BLOCKS) <= set(experiments.NAMES)
    assert set(experiments.DEPENDS_ON) == set(experiments.CELL_BLOCKS)


def test_unknown_experiment_is_refused():
    with pytest.raises(ValueError, match="name must be one of"):
        experiments.load("gausian")


NAME = re.compile(r"\b(" + "|".join(("basin", *experiments.NAMES)) + r")s?\b")
# What loops over the registry: the glue scripts, the config gate, the
# in-process builder and the planner, the shared modules, the workflow's
# generic rule files.
GENERIC = [
    *sorted((ROOT / "scripts").glob("*.py")),
    *(
        ROOT / "scripts" / "study" / f"{m}.py"
        for m in ("config", "inprocess", "plan", "sources", "stacking", "matching", "labels", "units", "provenance")
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


def test_the_config_checks_are_light_and_the_gate_loops_over_them():
    """The gate imports every experiment's checks at parse time: no numpy, xarray or experiment module."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from study import config, experiments; "
        "[experiments.checks(n) for n in experiments.NAMES]; experiments.figure_checks(); "
        "heavy = {'numpy', 'xarray', *(f'study.experiments.{n}' for n in experiments.NAMES)} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code, str(ROOT / "scripts")], check=True)
    assert experiments.checks("gaussian") is not None
    from study.figures.registry import FIGURES

    # An experiment checks the keys of the figures that read its dataset, and only those.
    for name in experiments.NAMES:
        for fig in getattr(experiments.checks(name), "FIGURES", {}):
            assert FIGURES[fig].datasets == (name,), (name, fig)


RULE = re.compile(r"^rule (\w+):", re.MULTILINE)


def test_every_experiments_rules_follow_one_pattern():
    """prepare_<name>, train_<name>, aggregate_<name>: generated for CELL_BLOCKS
    (experiments.smk), by hand in workflow/rules/<name>.smk for the others;
    no other rule but the figures' (generated) and all."""
    rules = ROOT / "workflow" / "rules"
    named = {path.stem: RULE.findall(path.read_text()) for path in rules.glob("*.smk")}
    stages = ("prepare", "train", "aggregate")
    for name in experiments.NAMES:
        if name in experiments.CELL_BLOCKS:
            assert name not in named, f"{name} has its rules generated and a rule file too"
            continue
        assert {f"train_{name}", f"aggregate_{name}"} <= set(named[name]), (name, named[name])
        assert all(r in {f"{stage}_{name}" for stage in stages} for r in named[name]), (name, named[name])
    by_hand = {r for rs in named.values() for r in rs} - {"all"}
    assert all(r.split("_", 1)[0] in stages and r.split("_", 1)[1] in experiments.NAMES for r in by_hand), by_hand
    generated = (rules / "experiments.smk").read_text()
    assert all(f'f"{stage}_{{_name}}"' in generated for stage in stages[1:])
