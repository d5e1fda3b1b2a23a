"""Rule make_data: teacher w*, start w0 and predicted limits of one (n, k, seed) cell.

The fixed-point search (model.md section 5) runs here, not in a job of its
own: it takes about a second per cell, less than a job's start-up.
"""

import sys

from study.cells import make_data_cell, predict_limits_cell
from study.io import log_to, provenance, write_netcdf

log_to(snakemake.log[0])
wc = snakemake.wildcards
data = make_data_cell(snakemake.config, int(wc.n), int(wc.k), int(wc.seed))
limits = predict_limits_cell(snakemake.config, data)
print(f"distinct limits per grid point: max {int(limits.n_limits.max())}", file=sys.stderr)
for ds, path in ((data, snakemake.output.data), (limits, snakemake.output.limits)):
    ds.attrs.update(provenance(snakemake.config))
    write_netcdf(ds, path)
