import json
import math
import os
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir).parent / "scripts"))

from study.grid import MODES, cells, teacher_sparsity  # noqa: E402
from study.locks import clear_stale_lock  # noqa: E402

# ---- config validation: a bad config stops the workflow before any job -------
# Every problem is reported at once, each as "key = value: what is wrong".

SCHEMA = Path(workflow.basedir) / "schemas" / "config.schema.yaml"


def _key(path):
    """A path into the config as it is written: grid.lam[1]."""
    out = ""
    for part in path:
        out += (
            f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        )
    return out or "(top level)"


def _schema_problems(config, schema):
    """Every schema violation, with the key and the value. Integers must be
    written as integers (JSON Schema alone would take 8.0 for 8)."""
    from jsonschema import Draft202012Validator, validators

    strict = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda checker, x: isinstance(x, int) and not isinstance(x, bool)
    )
    validator = validators.extend(Draft202012Validator, type_checker=strict)(schema)
    problems = []
    for err in sorted(
        validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path]
    ):
        path = list(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            allowed = sorted(err.schema.get("properties", {}))
            for extra in sorted(set(err.instance) - set(allowed), key=str):
                problems.append(
                    f"{_key([*path, extra])} = {err.instance[extra]!r}: unknown key "
                    f"(allowed here: {', '.join(allowed)})"
                )
        elif err.validator == "required" and isinstance(err.instance, dict):
            for name in err.validator_value:
                if name not in err.instance:
                    problems.append(f"{_key([*path, name])}: required key is missing")
        elif err.validator == "uniqueItems":
            seen, dups = [], []
            for item in err.instance:
                (dups if item in seen and item not in dups else seen).append(item)
            problems.append(f"{_key(path)} = {err.instance!r}: duplicate values {dups}")
        else:
            problems.append(f"{_key(path)} = {err.instance!r}: {err.message}")
    return problems


def _non_finite(value, path=()):
    """Keys holding NaN or infinity (a schema's minimum lets NaN through)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _non_finite(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _non_finite(v, (*path, i))]
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{_key(path)} = {value!r}: must be a finite number"]
    return []


def _not_plain_data(files):
    """Config files are data: each must load with yaml.safe_load, without templating.
    (Snakemake reads them with YTE, which evaluates Python when a file sets
    __use_yte__; such a file is refused here, after the fact.)"""
    problems = []
    for f in files:
        try:
            with open(f, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except (OSError, yaml.YAMLError) as err:
            problems.append(f"{f}: not plain YAML data ({' '.join(str(err).split())})")
            continue
        if isinstance(data, dict) and "__use_yte__" in data:
            problems.append(
                f"{f}: __use_yte__ = {data['__use_yte__']!r}: templating (code in the config) is refused"
            )
    return problems


def _check_config(config):
    """Checks a JSON schema cannot express; each names the offending key."""
    for n in config["dims"]["n"]:
        teacher_sparsity(config, n)  # raises if s > n
    sp = config["teacher"]["sparsity"]
    if sp >= 1 and sp != int(sp):
        raise ValueError(
            f"teacher.sparsity={sp!r}: give a count (integer >= 1) or a fraction (0 < x < 1)"
        )
    if not (config["population"]["enabled"] or config["empirical"]["enabled"]):
        raise ValueError(
            "population.enabled and empirical.enabled are both false: nothing to train"
        )
    results = Path(config["results_dir"])
    probe = results
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise ValueError(
            f"results_dir={str(results)!r} is not writable (checked {probe})"
        )


_CONFIG_FILES = list(dict.fromkeys(os.path.relpath(f) for f in workflow.configfiles))
_problems = _not_plain_data(_CONFIG_FILES)
if not _problems:
    _problems = _schema_problems(
        config, yaml.safe_load(SCHEMA.read_text())
    ) + _non_finite(config)
if not _problems:
    validate(config, schema="../schemas/config.schema.yaml")  # fills in the defaults
    try:
        _check_config(config)
    except ValueError as err:
        _problems = [str(err)]
if _problems:
    raise WorkflowError(
        f"Invalid config (from {', '.join(_CONFIG_FILES) or 'no config file'}); nothing was run:\n  "
        + "\n  ".join(_problems)
        + "\nEvery key is described in config/README.md (schema: workflow/schemas/config.schema.yaml)."
    )

# A run killed by SIGKILL leaves Snakemake's lock behind: clear it if provably stale.
if workflow.is_main_process:
    _stale = clear_stale_lock()
    if _stale:
        print(_stale, file=sys.stderr)


RESULTS = config["results_dir"]
LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"
CELL = "n{n}_k{k}_seed{seed}"


wildcard_constraints:
    n=r"\d+",
    k=r"\d+",
    seed=r"\d+",
    mode="|".join(MODES),


def canonical(*parts):
    """Config parts as one key-sorted JSON string: a rule's params, so that a
    real change reruns it and a mere reordering of YAML keys does not."""
    return json.dumps(parts, sort_keys=True)


def enabled_modes():
    return [m for m in MODES if config[m]["enabled"]]


def train_files(mode):
    return [
        f"{RESULTS}/train/{c['mode']}/n{c['n']}_k{c['k']}_seed{c['seed']}.nc"
        for c in cells(config, mode)
    ]


def cell_files(mode, kind):
    return [
        f"{RESULTS}/{kind}/n{c['n']}_k{c['k']}_seed{c['seed']}.nc"
        for c in cells(config, mode)
    ]


def datasets_all():
    return [f"{RESULTS}/datasets/{m}.nc" for m in enabled_modes()]


def train_params(wildcards):
    """What a training cell depends on: changing one mode's settings retrains only that mode."""
    return canonical(config["grid"], config[wildcards.mode], config["trace_points"])
