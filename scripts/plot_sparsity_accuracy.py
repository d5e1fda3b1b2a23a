"""Rule fig_sparsity_accuracy: sparsity of u and angle(u, w*) versus lambda, per penalty and n.

Calls study.figures.sparsity_accuracy on the aggregated datasets; saves PNG + PDF with study.style.save.
"""

from study.io import log_to

log_to(snakemake.log[0])

from study import figures, style  # noqa: E402

fig = figures.sparsity_accuracy(figures.load(snakemake.input.datasets), **snakemake.params.figure)
style.save(fig, snakemake.output.png, snakemake.output.pdf, dpi=snakemake.params.dpi)
