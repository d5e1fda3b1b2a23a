"""Rule train_two_layer: every run of the two-layer grid on one (n, k, seed) cell."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # this checkout's library, even if another copy is installed

from study.jobs import start_job  # noqa: E402
from study.ncio import write_netcdf  # noqa: E402
from study.provenance import provenance  # noqa: E402

start_job(snakemake)  # log, one BLAS thread, mem_mb/runtime enforced

import numpy as np  # noqa: E402

from rvscgd.two_layer_train import STATUS  # noqa: E402
from study.two_layer import train_cell  # noqa: E402

wc = snakemake.wildcards
ds = train_cell(snakemake.config, int(wc.n), int(wc.k), int(wc.seed))
for mode in ds["mode"].values:
    status = ds["status"].sel(mode=mode).values.ravel()
    counts = ", ".join(f"{name} {int(np.sum(status == i))}" for i, name in enumerate(STATUS))
    print(f"two_layer {mode} n={wc.n} k={wc.k} seed={wc.seed}: {status.size} runs, {counts}", file=sys.stderr)
ds.attrs.update(provenance(snakemake.config, snakemake.rule, dict(snakemake.wildcards.items()), snakemake.input.code))
write_netcdf(ds, snakemake.output[0])
