"""Rule digits_train: one seed's whole penalty x lam x ste grid (batched) and
its baselines on the digits, evaluated on the held-out part."""

import sys
import time

sys.path.insert(0, snakemake.scriptdir)  # this checkout's library, even if another copy is installed

from study.jobs import start_job  # noqa: E402
from study.ncio import open_checked, write_netcdf  # noqa: E402
from study.provenance import provenance  # noqa: E402

start_job(snakemake)  # log, one BLAS thread, mem_mb/runtime enforced

from study.digits import train_cell  # noqa: E402

seed = int(snakemake.wildcards.seed)
data = open_checked(snakemake.input.data, required_vars=("x_train", "y_train", "x_test", "y_test"))
if seed not in data["seed"].values:
    raise ValueError(f"{snakemake.input.data} has no split for digits seed {seed}; rerun rule digits_data")
ds = train_cell(snakemake.config, data.sel(seed=seed))
print(
    f"digits seed {seed}: float ReLU {float(ds['acc_relu'].squeeze()):.3f}, dense binary "
    f"{', '.join(f'{v:.3f}' for v in ds['acc_dense'].values.ravel())}",
    file=sys.stderr,
)
ds.attrs.update(provenance(snakemake.config, snakemake.rule, dict(snakemake.wildcards.items()), snakemake.input.code))
ds.attrs["seed"] = seed
write_netcdf(ds, snakemake.output[0])
print(f"cpu {time.process_time():.2f} s (this job's process, start-up included)", file=sys.stderr)
