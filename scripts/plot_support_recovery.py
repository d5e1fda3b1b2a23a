"""Rule fig_support_recovery: probability of exact support recovery on (lambda, beta) and (lambda, s/n).

Calls study.figures.support_recovery on the aggregated datasets; saves PNG + PDF with study.style.save.
"""

from study.io import log_to

log_to(snakemake.log[0])

from study import figures, style  # noqa: E402

fig = figures.support_recovery(figures.load(snakemake.input.datasets), **snakemake.params.figure)
style.save(fig, snakemake.output.png, snakemake.output.pdf, dpi=snakemake.params.dpi)
