"""Rule fig_tradeoff: error versus sparsity through the lambdas: l0, l1 and TL1 at matched sparsity.

Calls study.figures.tradeoff on the aggregated datasets; saves PNG + PDF with study.style.save.
"""

from study.io import log_to

log_to(snakemake.log[0])

from study import figures, style  # noqa: E402

fig = figures.tradeoff(figures.load(snakemake.input.datasets), **snakemake.params.figure)
style.save(fig, snakemake.output.png, snakemake.output.pdf, dpi=snakemake.params.dpi)
