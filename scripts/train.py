"""Rule train_<name> (every experiment's training stage): one cell of experiment ``params.experiment``."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # this checkout's library, even if another copy is installed

from study.jobs import start_job  # noqa: E402
from study.ncio import open_checked, write_netcdf  # noqa: E402
from study.provenance import provenance  # noqa: E402

start_job(snakemake)  # log, one BLAS thread, mem_mb/runtime enforced

from study import experiments  # noqa: E402

experiment = experiments.load(snakemake.params.experiment)
wildcards = dict(snakemake.wildcards.items())
inputs = {
    kind: open_checked(path, *experiment.REQUIRED[kind]) for kind, path in snakemake.input.items() if kind != "code"
}
ds, lines = experiment.train(snakemake.config, wildcards, inputs, threads=snakemake.threads)
print(*lines, sep="\n", file=sys.stderr)
ds.attrs.update(provenance(snakemake.config, snakemake.rule, wildcards, snakemake.input.code))
write_netcdf(ds, snakemake.output[0])
