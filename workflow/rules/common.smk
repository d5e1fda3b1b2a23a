import json
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(Path(workflow.basedir).parent / "scripts"))

from study import config as study_config  # noqa: E402
from study import experiments  # noqa: E402
from study.grid import MODES, block_cells, cells  # noqa: E402
from study.sources import job_sources  # noqa: E402
from study.locks import (  # noqa: E402
    clear_stale_lock,
    persistence_backend,
    record_lock_host,
    runs_jobs,
)

# ---- the config gate: a bad config stops the workflow before any job ----------
# study.config.load reports every problem at once, each as "key = value: what is
# wrong", and fills in the schema's defaults (in place, in Snakemake's config).

_CONFIG_FILES = list(dict.fromkeys(os.path.relpath(f) for f in workflow.configfiles))
try:
    study_config.load(config, _CONFIG_FILES)
except study_config.ConfigError as err:
    raise WorkflowError(str(err)) from None

# A run killed by SIGKILL leaves Snakemake's lock behind: clear it if provably
# stale. Dry runs, --lint and the other job-less modes leave the directory alone.
if workflow.is_main_process and runs_jobs(workflow):
    _stale = clear_stale_lock(backend=persistence_backend(workflow))
    if _stale:
        print(_stale, file=sys.stderr)


onstart:
    record_lock_host()


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


def cell_paths(folder, cells):
    """The files of (n, k, seed) cells (dicts with those keys) in ``folder``."""
    return [f"{folder}/n{c['n']}_k{c['k']}_seed{c['seed']}.nc" for c in cells]


def block_train_files(name):
    """The training files of a generated experiment (experiments.smk)."""
    return cell_paths(f"{RESULTS}/{name}/train", block_cells(config, name))


def available_datasets():
    """The datasets the config makes, every experiment's (study.experiments)."""
    return list(experiments.datasets(config))


def datasets_all():
    return [f"{RESULTS}/datasets/{d}.nc" for d in available_datasets()]


# ---- code inputs: the cache follows the code --------------------------------
# A rule's `code` input is the code its job runs: the glue script and every
# project module it imports, directly or not (study.sources reads the imports),
# so editing a module reruns exactly the jobs that run it, and nothing else.
# Relative to the working directory, as Snakemake records inputs: an absolute
# path would make a moved or copied study look changed and rerun everything.
SCRIPTS = Path(os.path.relpath(Path(workflow.basedir).parent / "scripts"))


def job_code(*entries):
    """The code a rule's job runs: its glue script and the modules it imports
    (entries: study.sources.job_sources), as paths for the rule's input."""
    return [str(SCRIPTS / f) for f in job_sources(*entries)]
