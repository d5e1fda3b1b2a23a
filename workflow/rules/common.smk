import json
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir).parent / "scripts"))

from study.grid import MODES, cells, teacher_sparsity  # noqa: E402

validate(config, schema="../schemas/config.schema.yaml")


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


try:
    _check_config(config)
except ValueError as err:
    raise WorkflowError(f"Invalid config: {err}") from None


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
