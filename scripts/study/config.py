"""The config gate: every config enters the study through ``load``.

``load(config, files)`` checks a config and fills in its defaults. The
workflow (workflow/rules/common.smk), the in-process helpers
(``study.inprocess.load_config``) and ``study.plan`` all call it, so a config
that one of them refuses, all refuse, with the same message. Every problem is
reported at once, each as ``key = value: what is wrong``, in a
``ConfigError``. Checked, in order (a stage runs only when the one before it
found nothing, since its checks assume what the earlier ones guarantee):

1. the files are plain YAML data (no templating, no Python tags);
2. the JSON schema (workflow/schemas/config.schema.yaml), integers written as
   integers, and no NaN or infinity anywhere;
3. with the schema's defaults filled in: what the schema cannot express
   (s <= n, a writable ``results_dir``, and each experiment's own checks:
   ``study.experiments.problems``, from its light ``<name>_checks`` module)
   and the figures' slices, lambdas, penalties and modes, which must be on
   the grid (or, for a figure an experiment checks itself, what its checks
   module says).

Stdlib, PyYAML and jsonschema only: cheap enough for Snakemake's parse time.
This module names no experiment: it loops over the registry.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path

import yaml

from . import experiments
from .grid import teacher_sparsity

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config the study refuses: ``problems`` lists every problem as
    ``key = value: what is wrong``; the message adds the files and where
    every key is described."""

    def __init__(self, problems: list[str], files=()):
        self.problems = list(problems)
        self.files = [str(f) for f in files]
        super().__init__(
            f"Invalid config (from {', '.join(self.files) or 'no config file'}); nothing was run:\n  "
            + "\n  ".join(self.problems)
            + "\nEvery key is described in config/README.md (schema: workflow/schemas/config.schema.yaml)."
        )


def load(config: dict, files=(), schema=SCHEMA) -> dict:
    """Check ``config`` (read from ``files``) and fill in the schema's defaults.

    Parameters
    ----------
    config : dict
        The config as read (Snakemake's merged ``config``, or a file's data).
        Defaults are filled in place, so Snakemake's global config gets them.
    files : sequence of path-like
        The config files it came from: checked to be plain data, and named
        in the message.
    schema : path-like
        The JSON schema (YAML).

    Returns
    -------
    dict
        ``config`` itself, with every default filled in.

    Raises
    ------
    ConfigError
        Listing every problem found, each naming the key and the value.
    """
    files = [str(f) for f in files]
    problems = not_plain_data(files)
    if not problems:
        schema = yaml.safe_load(Path(schema).read_text())
        problems = schema_problems(config, schema) + non_finite(config)
    if not problems:
        fill_defaults(config, schema)
        problems = semantic_problems(config) + figure_problems(config)
    if problems:
        raise ConfigError(problems, files)
    return config


def load_files(paths, schema=SCHEMA) -> dict:
    """Read config files safely (later files override earlier ones key by key,
    as Snakemake merges ``--configfile``), then ``load`` the result."""
    paths = [str(p) for p in paths]
    problems = not_plain_data(paths)
    config: dict = {}
    for path in paths if not problems else ():
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
        if data is None:
            continue
        if not isinstance(data, dict):
            problems.append(f"{path}: holds a {type(data).__name__}, not a mapping of config keys")
            continue
        _merge(config, data)
    if problems:
        raise ConfigError(problems, paths)
    return load(config, paths, schema)


def _merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def figure_params(figures_config: dict, name: str) -> dict:
    """Keyword parameters of figure ``name`` from ``config["figures"]`` (defaults
    filled in): its block without ``enabled``, its ``slice`` merged over
    ``figures.slice`` key by key (its non-null keys win). Sorted, so that the
    key order of the YAML never reruns a figure."""
    params = {key: value for key, value in figures_config[name].items() if key != "enabled"}
    if "slice" in params:
        merged = {k: v for k, v in figures_config.get("slice", {}).items() if v is not None}
        merged.update({k: v for k, v in params["slice"].items() if v is not None})
        params["slice"] = dict(sorted(merged.items()))
    return dict(sorted(params.items()))


# ---- the checks (each returns a list of problems; [] = fine) --------------------


def key_of(path) -> str:
    """A path into the config as it is written: grid.lam[1]."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def not_plain_data(files) -> list[str]:
    """Config files are data: each must load with yaml.safe_load, without templating.

    Snakemake reads config files with YTE, which evaluates Python when a file
    sets ``__use_yte__``; such a file (and one with Python tags) is refused
    here, after the fact.
    """
    problems = []
    for f in files:
        try:
            with open(f, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except (OSError, yaml.YAMLError) as err:
            problems.append(f"{f}: not plain YAML data ({' '.join(str(err).split())})")
            continue
        if isinstance(data, dict) and "__use_yte__" in data:
            problems.append(f"{f}: __use_yte__ = {data['__use_yte__']!r}: templating (code in the config) is refused")
    return problems


def schema_problems(config: dict, schema: dict) -> list[str]:
    """Every violation of the JSON schema, each with the key and the value.

    Integers must be written as integers (JSON Schema alone takes 8.0 for 8,
    which would then name files n8.0_...).
    """
    from jsonschema import Draft202012Validator, validators

    strict = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda checker, x: isinstance(x, int) and not isinstance(x, bool)
    )
    validator = validators.extend(Draft202012Validator, type_checker=strict)(schema)
    problems = []
    for err in sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path]):
        path = list(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            allowed = sorted(err.schema.get("properties", {}))
            for extra in sorted(set(err.instance) - set(allowed), key=str):
                problems.append(
                    f"{key_of([*path, extra])} = {err.instance[extra]!r}: unknown key "
                    f"(allowed here: {', '.join(allowed)})"
                )
        elif err.validator == "required" and isinstance(err.instance, dict):
            for name in err.validator_value:
                if name not in err.instance:
                    problems.append(f"{key_of([*path, name])}: required key is missing")
        elif err.validator == "uniqueItems":
            seen, dups = [], []
            for item in err.instance:
                (dups if item in seen and item not in dups else seen).append(item)
            problems.append(f"{key_of(path)} = {err.instance!r}: duplicate values {dups}")
        else:
            problems.append(f"{key_of(path)} = {err.instance!r}: {err.message}")
    return problems


def non_finite(value, path=()) -> list[str]:
    """Keys holding NaN or infinity (a schema's minimum lets NaN through)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in non_finite(v, (*path, i))]
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{key_of(path)} = {value!r}: must be a finite number"]
    return []


def fill_defaults(config: dict, schema: dict) -> None:
    """Set every missing key that has a schema default, recursively, on a
    schema-valid config: the same keys and values as Snakemake's
    ``validate(config, schema, set_default=True)`` (the schema's objects are
    plain ``properties``, without combinators), but each default a copy, so
    two figures never share one dict."""
    if not isinstance(config, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in config and "default" in sub:
            config[key] = copy.deepcopy(sub["default"])
        if key in config:
            fill_defaults(config[key], sub)


def semantic_problems(config: dict) -> list[str]:
    """Checks a JSON schema cannot express, on a config with its defaults
    filled in: the teacher's, every experiment's own (``study.experiments.problems``), the results folder's."""
    problems = []
    sp = config["teacher"]["sparsity"]
    too_small = too_small_for_teacher(config, config["dims"]["n"])
    if too_small:
        problems.append(
            f"teacher.sparsity = {sp!r}: more nonzeros than n = {min(too_small)} features "
            f"(dims.n = {config['dims']['n']}); s must be <= n"
        )
    if sp >= 1 and sp != int(sp):
        problems.append(f"teacher.sparsity = {sp!r}: give a count (integer >= 1) or a fraction (0 < x < 1)")
    problems += experiments.problems(config)
    results = Path(config["results_dir"])
    probe = results
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        problems.append(f"results_dir = {str(results)!r}: not writable (checked {probe})")
    return problems


def too_small_for_teacher(config: dict, ns) -> list[int]:
    """The dimensions of ``ns`` with fewer features than the teacher's nonzeros."""
    small = []
    for n in ns:
        try:
            teacher_sparsity(config, n)
        except ValueError:
            small.append(n)
    return small


def sparsity_fits(key: str, config: dict, ns) -> list[str]:
    """The problem, if any, of a block's dimensions ``ns`` (config ``key``) too
    small for the teacher's nonzeros."""
    small = too_small_for_teacher(config, ns)
    if not small:
        return []
    sp = config["teacher"]["sparsity"]
    return [f"{key} = {list(ns)!r}: teacher.sparsity = {sp!r} gives more nonzeros than n = {min(small)}"]


def cell_block_problems(config: dict, name: str, starts: tuple[str, ...]) -> list[str]:
    """The problems of an enabled experiment block ``name`` of (n, k, seed)
    cells ([] when it is off): dimensions too small for the teacher, and no
    start to train from (the counts of the kinds ``starts`` sum to zero)."""
    block = config.get(name, {})
    if not block.get("enabled"):
        return []
    problems = sparsity_fits(f"{name}.n", config, block["n"])
    if sum(block["starts"][kind] for kind in starts) < 1:
        problems.append(
            f"{name}.starts = {block['starts']!r}: {' + '.join(starts)} must be >= 1 (no start to train from)"
        )
    return problems


def slice_grid(config: dict, dim: str) -> tuple[str, list]:
    """(config key, values) of the grid a figure slice along ``dim`` picks from."""
    if dim == "batch_size":
        emp = config["empirical"]
        if emp["sampling"] == "fresh":
            return "empirical.batch_size", list(emp["batch_size"])
        return "empirical.train_size", [emp["train_size"]]
    section = "dims" if dim in ("n", "k") else "grid"
    return f"{section}.{dim}", list(config[section][dim])


# Its penalties not on grid.penalty are skipped, as the schema says, not refused.
_SKIPS_OFF_GRID_PENALTIES = ("multiple_limits",)


def figure_problems(config: dict) -> list[str]:
    """Each enabled figure's slice values, lambdas and penalties must be on the
    grid (compared with ``==``: the datasets' coordinates hold exactly the
    grid's values) and its ``mode`` enabled. A bad ``figures.slice`` value is
    reported once, however many figures use it."""
    figs = config["figures"]
    checked_by = experiments.figure_checks()  # figures whose keys refer to an experiment's own block
    problems = []
    for name, block in figs.items():
        if not (isinstance(block, dict) and block.get("enabled")):
            continue  # dpi, slice, and disabled figures
        params = figure_params(figs, name)
        if name in checked_by:
            problems += checked_by[name](config, name, params)
            continue
        for dim, value in params.get("slice", {}).items():
            key, grid = slice_grid(config, dim)
            if not any(value == g for g in grid):
                own = block["slice"].get(dim) is not None
                where = f"figures.{name}.slice.{dim}" if own else f"figures.slice.{dim}"
                problems.append(f"{where} = {value!r}: not in {key} = {grid}")
        lam = params.get("lam")
        if isinstance(lam, list):
            lams = [(f"[{i}]", value) for i, value in enumerate(lam)]
        else:
            lams = [] if lam is None else [("", lam)]
        for index, value in lams:
            if not any(value == g for g in config["grid"]["lam"]):
                problems.append(f"figures.{name}.lam{index} = {value!r}: not in grid.lam = {config['grid']['lam']}")
        if name not in _SKIPS_OFF_GRID_PENALTIES:
            for i, p in enumerate(params.get("penalties") or []):
                if p not in config["grid"]["penalty"]:
                    problems.append(
                        f"figures.{name}.penalties[{i}] = {p!r}: not in grid.penalty = {config['grid']['penalty']}"
                    )
        mode = params.get("mode")
        if mode is not None and not config[mode]["enabled"]:
            problems.append(f"figures.{name}.mode = {mode!r}: {mode}.enabled is False")
    return list(dict.fromkeys(problems))
