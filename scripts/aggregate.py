"""Rule aggregate_<name> (every experiment's last stage): dataset ``params.dataset`` of experiment
``params.experiment`` from all its cells."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # this checkout's library, even if another copy is installed

from study.jobs import start_job  # noqa: E402
from study.ncio import open_checked, write_netcdf  # noqa: E402
from study.provenance import provenance  # noqa: E402

start_job(snakemake)  # log, one BLAS thread, mem_mb/runtime enforced

from study import experiments  # noqa: E402

experiment = experiments.load(snakemake.params.experiment)


def opened(kind, paths):
    """The files of one input kind, opened (and checked) one at a time, as the experiment reads them."""
    for path in [paths] if isinstance(paths, str) else paths:
        yield open_checked(path, *experiment.REQUIRED[kind])


inputs = {kind: opened(kind, paths) for kind, paths in snakemake.input.items() if kind != "code"}
ds, lines = experiment.aggregate(snakemake.config, snakemake.params.dataset, inputs)
print(*lines, sep="\n", file=sys.stderr)
ds.attrs.update(provenance(snakemake.config, snakemake.rule, dict(snakemake.wildcards.items()), snakemake.input.code))
write_netcdf(ds, snakemake.output[0])
