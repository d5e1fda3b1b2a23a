"""Rule train_basins: every basin run (starts x grid slice x settings) of one (n, k, seed) cell."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # this checkout's library, even if another copy is installed

from study.jobs import start_job  # noqa: E402
from study.ncio import write_netcdf  # noqa: E402
from study.provenance import provenance  # noqa: E402

start_job(snakemake)  # log, one BLAS thread, mem_mb/runtime enforced

from study.basins import OUTCOMES, train_cell  # noqa: E402

wc = snakemake.wildcards
ds = train_cell(snakemake.config, int(wc.n), int(wc.k), int(wc.seed), threads=snakemake.threads)
for setting in ds["setting"].values:
    sub = ds.sel(setting=setting)
    shares = ", ".join(f"{q} {float(sub[q].mean()):.2f}" for q in OUTCOMES)
    print(f"basins {setting} n={wc.n} k={wc.k} seed={wc.seed}: {sub['status'].size} runs, {shares}", file=sys.stderr)
ds.attrs.update(provenance(snakemake.config, snakemake.rule, dict(snakemake.wildcards.items()), snakemake.input.code))
write_netcdf(ds, snakemake.output[0])
