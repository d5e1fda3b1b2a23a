"""Rule fig_limit_prediction: predicted versus measured angle and sparsity of u_bar over the whole grid.

Calls study.figures.limit_prediction on the aggregated datasets; saves PNG + PDF with study.style.save.
"""

from study.io import log_to

log_to(snakemake.log[0])

from study import figures, style  # noqa: E402

fig = figures.limit_prediction(figures.load(snakemake.input.datasets), **snakemake.params.figure)
style.save(fig, snakemake.output.png, snakemake.output.pdf, dpi=snakemake.params.dpi)
