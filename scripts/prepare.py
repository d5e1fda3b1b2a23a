"""Rule prepare_<name> (every experiment with a data stage): the data of
experiment ``params.experiment`` for the rule's wildcards, one file per output."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # this checkout's library, even if another copy is installed

from study.jobs import start_job  # noqa: E402
from study.ncio import write_netcdf  # noqa: E402
from study.provenance import provenance  # noqa: E402

start_job(snakemake)  # log, one BLAS thread, mem_mb/runtime enforced

from study import experiments  # noqa: E402

wildcards = dict(snakemake.wildcards.items())
made, lines = experiments.load(snakemake.params.experiment).prepare(snakemake.config, wildcards)
print(*lines, sep="\n", file=sys.stderr)
for name, ds in made.items():
    ds.attrs.update(provenance(snakemake.config, snakemake.rule, wildcards, snakemake.input.code))
    write_netcdf(ds, snakemake.output[name])
