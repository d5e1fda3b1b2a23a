"""Config validation with messages that name the key and the value.

Used by workflow/rules/common.smk before anything else (a bad config stops
the workflow before any job) and by the tests. Pure functions of the config
dict and the schema; stdlib, PyYAML and jsonschema only (cheap at parse time).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import yaml

from .grid import teacher_sparsity


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


def semantic_problems(config: dict) -> list[str]:
    """Checks a JSON schema cannot express, on a config with its defaults filled in."""
    problems = []
    for n in config["dims"]["n"]:
        try:
            teacher_sparsity(config, n)  # s > n
        except ValueError as err:
            problems.append(str(err))
            break
    sp = config["teacher"]["sparsity"]
    if sp >= 1 and sp != int(sp):
        problems.append(f"teacher.sparsity = {sp!r}: give a count (integer >= 1) or a fraction (0 < x < 1)")
    two = config.get("two_layer", {})
    if two.get("enabled"):
        for n in two["n"]:
            try:
                teacher_sparsity(config, n)
            except ValueError as err:
                problems.append(f"two_layer.n = {two['n']!r}: {err}")
                break
        if two["starts"]["random"] + two["starts"]["near_spurious"] < 1:
            problems.append(
                f"two_layer.starts = {two['starts']!r}: random + near_spurious must be >= 1 (no start to train from)"
            )
    if not (config["population"]["enabled"] or config["empirical"]["enabled"]):
        problems.append("population.enabled = False and empirical.enabled = False: nothing to train")
    results = Path(config["results_dir"])
    probe = results
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        problems.append(f"results_dir = {str(results)!r}: not writable (checked {probe})")
    return problems


def config_problems(config: dict, schema_path, files=(), fill_defaults=None) -> list[str]:
    """Everything wrong with ``config`` (read from ``files``), as
    ``key = value: what is wrong`` lines; [] for a valid config.

    ``fill_defaults(config)`` sets the schema's defaults (in the workflow,
    Snakemake's ``validate``) before the checks that need them.
    """
    problems = not_plain_data(files)
    if problems:
        return problems
    schema = yaml.safe_load(Path(schema_path).read_text())
    problems = schema_problems(config, schema) + non_finite(config)
    if problems:
        return problems
    if fill_defaults is not None:
        fill_defaults(config)
    return semantic_problems(config)


def problems_message(problems, files) -> str:
    return (
        f"Invalid config (from {', '.join(files) or 'no config file'}); nothing was run:\n  "
        + "\n  ".join(problems)
        + "\nEvery key is described in config/README.md (schema: workflow/schemas/config.schema.yaml)."
    )
