"""Rule train: every run of the grid on one (mode, n, k, seed) cell."""

import sys

import numpy as np

from study.cells import train_cell
from study.io import log_to, open_checked, provenance, write_netcdf

log_to(snakemake.log[0])
wc = snakemake.wildcards
data = open_checked(snakemake.input.data, required_vars=("w_star", "w0"))
limits = open_checked(snakemake.input.limits, required_vars=("w_bar", "u_bar"))
ds = train_cell(snakemake.config, wc.mode, data, limits, threads=snakemake.threads)
status = ds["status"].values.ravel()
print(
    f"{wc.mode} n={wc.n} k={wc.k} seed={wc.seed}: {status.size} runs, "
    f"converged {np.sum(status == 0)}, max_steps {np.sum(status == 1)}, diverged {np.sum(status == 2)}",
    file=sys.stderr,
)
ds.attrs.update(provenance(snakemake.config))
write_netcdf(ds, snakemake.output[0])
