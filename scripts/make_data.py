"""Rule make_data: teacher w* and start w0 of one (n, k, seed) cell."""

from study.cells import make_data_cell
from study.io import log_to, provenance, write_netcdf

log_to(snakemake.log[0])
wc = snakemake.wildcards
ds = make_data_cell(snakemake.config, int(wc.n), int(wc.k), int(wc.seed))
ds.attrs.update(provenance(snakemake.config))
write_netcdf(ds, snakemake.output[0])
