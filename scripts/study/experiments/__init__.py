"""The study's experiments, one module each, behind one contract.

The glue scripts (``scripts/prepare.py``, ``train.py``, ``aggregate.py``),
``study.inprocess`` and ``study.plan`` loop over ``NAMES`` and call the
module of an experiment by its name (``load``, ``build``, ``jobs``); none of them branches on an
experiment. This package imports no experiment, numpy or xarray itself, so
the workflow reads it at parse time and a job runs only its own
experiment's code (``study.sources``: editing one experiment reruns only
its jobs).

The contract: each module ``<name>.py`` here defines

``PURPOSE``
    its seed purposes (``study.seeds``): what each random stream is for.
``REQUIRED``
    ``{input kind: (variables, dimensions)}`` every file of that kind its
    jobs read must hold (``study.ncio.open_checked``).
``prepare(config, wildcards) -> {output name: Dataset}``
    its data stage (None if it has none).
``train(config, wildcards, inputs, threads) -> (Dataset, log lines)``
    one cell: ``inputs`` maps an input kind to its opened dataset.
``aggregate(config, dataset, inputs) -> (Dataset, log lines)``
    its cells as one labelled dataset ``dataset``: ``inputs`` maps an
    input kind to an iterator over its opened files, in the rule's order.
``build(config) -> {dataset: Dataset}``
    every dataset it makes, in one process (tests, notebooks); an
    experiment of ``CELL_BLOCKS`` may leave it to ``build`` below.
``jobs(config) -> str``
    its jobs in words; an experiment of ``CELL_BLOCKS`` may instead name
    itself in ``LABEL`` (``jobs`` below).
``plan(config, fraction, compare_direct) -> dict``
    its cost model: ``core_s`` (predicted core-seconds), printing a row per
    timed cell; optionally ``longest_s`` and ``direct_core_s``.

and ``DATASETS`` below says which datasets each makes for a config.

The config gate (``study.config``, at parse time) reads an experiment's
checks from a light module ``<name>_checks.py`` beside it (stdlib only, no
numpy or xarray; none needed if the schema says all), defining

``problems(config) -> list[str]``
    what the schema cannot say about its config blocks (defaults filled in),
    each ``key = value: what is wrong``.
``FIGURES``
    optional, ``{figure: check(config, figure, params) -> list[str]}``: the
    figures of its datasets whose keys refer to its own block, checked by
    ``check`` instead of against the one-layer grid.

An experiment with a config block of its own whose cells are (n, k, seed)
(``CELL_BLOCKS``) gets its rules generated (workflow/rules/experiments.smk):
``train_<name>`` (one job per cell, ``results/<name>/train/``) and
``aggregate_<name>`` (``results/datasets/<name>.nc``); ``DEPENDS_ON`` names
the config its cells depend on (the train rule's params: a change there
retrains, any other does not). Adding such an experiment: its module here,
its entry in ``NAMES``, ``CELL_BLOCKS`` and ``DEPENDS_ON``, its schema block.
The others' rules are written by hand (workflow/rules/<name>.smk) but named
alike: ``prepare_<name>`` (its data stage), ``train_<name>``,
``aggregate_<name>``; intermediates in ``results/<name>/``.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

NAMES = ("gaussian", "label_noise", "two_layer", "basins", "digits")


def _gaussian(config: dict) -> list[str]:
    return [m for m in ("population", "empirical") if config[m]["enabled"]]


def _enabled(name: str):
    return lambda config: [name] if config.get(name, {}).get("enabled", False) else []


# The datasets each experiment makes for a config (empty when it is off): cheap, read at parse time.
DATASETS = {"gaussian": _gaussian, **{name: _enabled(name) for name in NAMES[1:]}}


# Experiments whose rules are generated: (n, k, seed) cells from their own config block.
CELL_BLOCKS = ("label_noise", "two_layer", "basins")


def _shared(config: dict) -> tuple:
    """The config every generated experiment's cells depend on: the seed, the
    teacher (w* is the one-layer cell's of the same coordinates) and the
    lambda units."""
    return config["seed"], config["teacher"], config["grid"]["lam_units"], config["grid"]["tl1_a"]


# The config parts a generated experiment's training cells depend on (its train rule's params).
DEPENDS_ON = {
    "label_noise": lambda config: (
        *_shared(config),
        config["label_noise"],
        {key: config["empirical"][key] for key in checks("label_noise").EMPIRICAL_KEYS},
        config["limit"],
        config["trace_points"],
    ),
    "two_layer": lambda config: (*_shared(config), config["two_layer"], config["trace_points"]),
    "basins": lambda config: (
        *_shared(config),
        config["basins"],
        {m: config[m] for m in config["basins"]["modes"]},
        config["limit"],
    ),
}


def checks(name: str) -> ModuleType | None:
    """The light checks module of experiment ``name`` (``<name>_checks``), or None if it has none."""
    if name not in NAMES:
        raise ValueError(f"name must be one of {NAMES}, got {name!r}")
    if importlib.util.find_spec(f"{__name__}.{name}_checks") is None:
        return None
    return importlib.import_module(f"{__name__}.{name}_checks")


def problems(config: dict) -> list[str]:
    """Every experiment's config problems (its checks' ``problems``), in ``NAMES`` order."""
    return [p for name in NAMES if (module := checks(name)) is not None for p in module.problems(config)]


def figure_checks() -> dict:
    """{figure: check} of the figures whose keys an experiment checks itself (its checks' ``FIGURES``)."""
    return {fig: check for name in NAMES for fig, check in getattr(checks(name), "FIGURES", {}).items()}


def load(name: str) -> ModuleType:
    """The module of experiment ``name``."""
    if name not in NAMES:
        raise ValueError(f"name must be one of {NAMES}, got {name!r}")
    return importlib.import_module(f"{__name__}.{name}")


def datasets(config: dict) -> dict[str, str]:
    """{dataset: experiment} of every dataset the config makes, in ``NAMES`` order."""
    return {d: name for name in NAMES for d in DATASETS[name](config)}


# ---- what the loops call: the module's own, or for CELL_BLOCKS the shared default -------
def build(name: str, config: dict) -> dict:
    """Every dataset experiment ``name`` makes, in one process: its module's
    ``build``, or for an experiment of ``CELL_BLOCKS`` without one each cell
    trained in turn (``train_cell(config, n, k, seed)``), then stacked (``combine``)."""
    module = load(name)
    if hasattr(module, "build"):
        return module.build(config)
    parts = [module.train_cell(config, c["n"], c["k"], c["seed"]) for c in module.cells(config)]
    return {name: module.combine(parts, config)} if parts else {}


def jobs(name: str, config: dict) -> str:
    """Experiment ``name``'s jobs in words (study.plan's first line, "" when off):
    its module's ``jobs``, or for ``CELL_BLOCKS`` its cells' train jobs and one
    aggregate (``LABEL`` names it)."""
    module = load(name)
    if hasattr(module, "jobs"):
        return module.jobs(config)
    cells = module.cells(config)
    return f"{len(cells)} {module.LABEL} train + 1 aggregate" if cells else ""
