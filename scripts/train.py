"""Rule train: every run of the grid on one (mode, n, k, seed) cell."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # this checkout's library, even if another copy is installed

from study.jobs import start_job  # noqa: E402
from study.ncio import open_checked, write_netcdf  # noqa: E402
from study.provenance import provenance  # noqa: E402

start_job(snakemake)  # log, one BLAS thread, mem_mb/runtime enforced

import numpy as np  # noqa: E402

from rvscgd import STATUS  # noqa: E402
from study.cells import train_cell  # noqa: E402

wc = snakemake.wildcards
data = open_checked(snakemake.input.data, required_vars=("w_star", "w0"))
limits = open_checked(snakemake.input.limits, required_vars=("w_bar", "u_bar"))
ds = train_cell(snakemake.config, wc.mode, data, limits, threads=snakemake.threads)
status = ds["status"].values.ravel()
counts = ", ".join(f"{name} {int(np.sum(status == code))}" for code, name in enumerate(STATUS))
if np.any(status < 0):  # baselines off their slice (study.grid.BASELINE_SLICE)
    counts += f", not_trained {int(np.sum(status < 0))}"
print(f"{wc.mode} n={wc.n} k={wc.k} seed={wc.seed}: {status.size} runs, {counts}", file=sys.stderr)
ds.attrs.update(provenance(snakemake.config, snakemake.rule, dict(snakemake.wildcards.items()), snakemake.input.code))
write_netcdf(ds, snakemake.output[0])
