"""Rule predict_limits: fixed points of model.md section 5 for one cell."""

import sys

from study.cells import predict_limits_cell
from study.io import log_to, open_checked, provenance, write_netcdf

log_to(snakemake.log[0])
data = open_checked(snakemake.input.data, required_vars=("w_star", "w0"))
ds = predict_limits_cell(snakemake.config, data)
print(f"distinct limits per grid point: max {int(ds.n_limits.max())}", file=sys.stderr)
ds.attrs.update(provenance(snakemake.config))
write_netcdf(ds, snakemake.output[0])
