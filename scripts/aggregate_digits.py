"""Rule aggregate_digits: the seeds' digits cells as one labelled dataset."""

import sys
import time

sys.path.insert(0, snakemake.scriptdir)  # this checkout's library, even if another copy is installed

from study.jobs import start_job  # noqa: E402
from study.ncio import open_checked, write_netcdf  # noqa: E402
from study.provenance import provenance  # noqa: E402

start_job(snakemake)  # log, one BLAS thread, mem_mb/runtime enforced

from study.digits import combine  # noqa: E402

data = open_checked(snakemake.input.data, required_vars=("y_train", "y_test"))
cells = []
for path in snakemake.input.train:
    cell = open_checked(path, required_vars=("acc_u", "acc_w", "sparsity", "u", "acc_relu"))
    cell.attrs = {}
    cells.append(cell)
ds = combine(cells, snakemake.config, {"train": data.sizes["train_item"], "test": data.sizes["test_item"]})
ds.attrs.update(provenance(snakemake.config, snakemake.rule, dict(snakemake.wildcards.items()), snakemake.input.code))
mean = ds.mean("seed")
print(
    f"digits: {ds.sizes['seed']} seeds; float ReLU {float(mean['acc_relu']):.3f}, dense binary "
    f"{', '.join(f'{v:.3f}' for v in mean['acc_dense'].values)}",
    file=sys.stderr,
)
write_netcdf(ds, snakemake.output[0])
print(f"cpu {time.process_time():.2f} s (this job's process, start-up included)", file=sys.stderr)
