"""Rule make_data: teacher w*, start w0 and predicted limits of one (n, k, seed) cell.

The fixed-point enumeration (rvscgd.fixed_points, docs/theory.md) runs here, not in a job of its
own: it takes about a second per cell, less than a job's start-up.
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # this checkout's library, even if another copy is installed

from study.jobs import start_job  # noqa: E402
from study.ncio import write_netcdf  # noqa: E402
from study.provenance import provenance  # noqa: E402

start_job(snakemake)  # log, one BLAS thread, mem_mb/runtime enforced

from study.cells import make_data_cell, predict_limits_cell  # noqa: E402

wc = snakemake.wildcards
data = make_data_cell(snakemake.config, int(wc.n), int(wc.k), int(wc.seed))
limits = predict_limits_cell(snakemake.config, data)
print(f"stable fixed points predicted per grid point: max {int(limits.n_limits.max())}", file=sys.stderr)
for ds, path in ((data, snakemake.output.data), (limits, snakemake.output.limits)):
    ds.attrs.update(
        provenance(snakemake.config, snakemake.rule, dict(snakemake.wildcards.items()), snakemake.input.code)
    )
    write_netcdf(ds, path)
