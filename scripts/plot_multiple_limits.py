"""Rule fig_multiple_limits: how often several fixed points exist and the share of starts reaching each.

Calls study.figures.multiple_limits on the aggregated datasets; saves PNG + PDF with study.style.save.
"""

from study.io import log_to

log_to(snakemake.log[0])

from study import figures, style  # noqa: E402

fig = figures.multiple_limits(figures.load(snakemake.input.datasets), **snakemake.params.figure)
style.save(fig, snakemake.output.png, snakemake.output.pdf, dpi=snakemake.params.dpi)
