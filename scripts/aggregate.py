"""Rule aggregate: one labelled dataset per mode from all its cells."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # this checkout's library, even if another copy is installed

from study.jobs import start_job  # noqa: E402
from study.ncio import open_checked, write_netcdf  # noqa: E402
from study.provenance import provenance  # noqa: E402

start_job(snakemake)  # log, one BLAS thread, mem_mb/runtime enforced

import rvscgd  # noqa: E402
from study.aggregate import cell_dataset, combine  # noqa: E402

mode = snakemake.wildcards.mode
cells = []
for train_path, data_path, limit_path in zip(
    snakemake.input.train, snakemake.input.data, snakemake.input.limits, strict=True
):
    train = open_checked(train_path, required_vars=("angle_w", "w_final", "status"), required_dims=("step",))
    data = open_checked(data_path, required_vars=("w_star", "w0"))
    limits = open_checked(limit_path, required_vars=("w_bar", "u_bar"))
    cells.append(cell_dataset(train, data, limits, mode, snakemake.config["limit"]["match_tol"][mode]))
ds = combine(cells, snakemake.config, mode)
# Diverged runs stay in the dataset, flagged (status) and NaN (weights, traces after
# divergence): counted here so no reader can miss them.
diverged = int((ds["status"] == rvscgd.STATUS.index("diverged")).sum())
trained = int((ds["status"] >= 0).sum())  # not the baselines' untrained grid points (status -1)
ds.attrs.update(runs_total=trained, runs_diverged=diverged, runs_not_trained=int(ds["status"].size) - trained)
ds.attrs.update(provenance(snakemake.config, snakemake.rule, dict(snakemake.wildcards.items()), snakemake.input.code))
print(f"{mode}: {len(cells)} cells, dims {dict(ds.sizes)}", file=sys.stderr)
if diverged:
    print(
        f"WARNING: {diverged} of {trained} {mode} runs diverged (status 'diverged', NaN weights)",
        file=sys.stderr,
    )
write_netcdf(ds, snakemake.output[0])
