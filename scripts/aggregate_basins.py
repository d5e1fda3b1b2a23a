"""Rule aggregate_basins: one labelled dataset of every basin cell."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # this checkout's library, even if another copy is installed

from study.jobs import start_job  # noqa: E402
from study.ncio import open_checked, write_netcdf  # noqa: E402
from study.provenance import provenance  # noqa: E402

start_job(snakemake)  # log, one BLAS thread, mem_mb/runtime enforced

from rvscgd import STATUS  # noqa: E402
from study.basins import OUTCOMES, combine  # noqa: E402

parts = [
    open_checked(path, required_vars=("status", *OUTCOMES), required_dims=("start", "setting"))
    for path in snakemake.input.train
]
ds = combine(parts, snakemake.config)
diverged = int((ds["status"] == STATUS.index("diverged")).sum())
ds.attrs.update(runs_total=int(ds["status"].size), runs_diverged=diverged)
ds.attrs.update(provenance(snakemake.config, snakemake.rule, dict(snakemake.wildcards.items()), snakemake.input.code))
print(f"basins: {len(parts)} cells, dims {dict(ds.sizes)}, diverged {diverged}", file=sys.stderr)
if diverged:
    print(f"WARNING: {diverged} of {ds['status'].size} basin runs diverged (NaN weights)", file=sys.stderr)
write_netcdf(ds, snakemake.output[0])
