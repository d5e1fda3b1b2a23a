"""Rule fig_scaling: steps to converge versus n and k, measured and predicted from the linear rate.

Calls study.figures.scaling on the aggregated datasets; saves PNG + PDF with study.style.save.
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # this checkout's library, even if another copy is installed

from study.jobs import start_job  # noqa: E402

start_job(snakemake)  # log, one BLAS thread, mem_mb/runtime enforced

from study import figures, style  # noqa: E402

fig = figures.scaling(figures.load(snakemake.input.datasets), **snakemake.params.figure)
style.save(fig, snakemake.output.png, snakemake.output.pdf, dpi=snakemake.params.dpi)
