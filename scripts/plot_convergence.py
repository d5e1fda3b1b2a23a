"""Rule fig_convergence: angles of w^t and u^t to w* versus step, per penalty and lambda, both modes.

Calls study.figures.convergence on the aggregated datasets; saves PNG + PDF with study.style.save.
"""

import sys

sys.path.insert(0, snakemake.scriptdir)  # this checkout's library, even if another copy is installed

from study.jobs import start_job  # noqa: E402

start_job(snakemake)  # log, one BLAS thread, mem_mb/runtime enforced

from study import figures, style  # noqa: E402

fig = figures.convergence(figures.load(snakemake.input.datasets), **snakemake.params.figure)
style.save(fig, snakemake.output.png, snakemake.output.pdf, dpi=snakemake.params.dpi)
