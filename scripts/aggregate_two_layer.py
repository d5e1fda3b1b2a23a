"""Rule aggregate_two_layer: one labelled dataset of every two-layer cell."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # this checkout's library, even if another copy is installed

from study.jobs import start_job  # noqa: E402
from study.ncio import open_checked, write_netcdf  # noqa: E402
from study.provenance import provenance  # noqa: E402

start_job(snakemake)  # log, one BLAS thread, mem_mb/runtime enforced

from rvscgd.two_layer_train import STATUS  # noqa: E402
from study.two_layer import combine  # noqa: E402

parts = [
    open_checked(path, required_vars=("loss", "status", "w_final", "v_final"), required_dims=("step", "mode"))
    for path in snakemake.input.train
]
ds = combine(parts, snakemake.config)
counts = {name: int((ds["status"] == i).sum()) for i, name in enumerate(STATUS)}
ds.attrs.update(runs_total=int(ds["status"].size), **{f"runs_{name}": c for name, c in counts.items()})
ds.attrs.update(provenance(snakemake.config, snakemake.rule, dict(snakemake.wildcards.items()), snakemake.input.code))
print(f"two_layer: {len(parts)} cells, dims {dict(ds.sizes)}, status {counts}", file=sys.stderr)
if counts["diverged"]:
    total = ds["status"].size
    print(f"WARNING: {counts['diverged']} of {total} two-layer runs diverged (NaN weights)", file=sys.stderr)
write_netcdf(ds, snakemake.output[0])
