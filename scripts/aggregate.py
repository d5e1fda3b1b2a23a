"""Rule aggregate: one labelled dataset per mode from all its cells."""

import sys

from study.aggregate import cell_dataset, combine
from study.io import log_to, open_checked, provenance, write_netcdf

log_to(snakemake.log[0])
mode = snakemake.wildcards.mode
cells = []
for train_path, data_path, limit_path in zip(
    snakemake.input.train, snakemake.input.data, snakemake.input.limits, strict=True
):
    train = open_checked(train_path, required_vars=("angle_w", "w_final", "status"), required_dims=("step",))
    data = open_checked(data_path, required_vars=("w_star", "w0"))
    limits = open_checked(limit_path, required_vars=("w_bar", "u_bar"))
    cells.append(cell_dataset(train, data, limits, mode))
ds = combine(cells, snakemake.config, mode)
ds.attrs.update(provenance(snakemake.config))
print(f"{mode}: {len(cells)} cells, dims {dict(ds.sizes)}", file=sys.stderr)
write_netcdf(ds, snakemake.output[0])
