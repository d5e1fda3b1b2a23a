"""Rule fig_limit_distance: distance to the predicted limit versus step; empirical noise floor versus B.

Calls study.figures.limit_distance on the aggregated datasets; saves PNG + PDF with study.style.save.
"""

from study.io import log_to

log_to(snakemake.log[0])

from study import figures, style  # noqa: E402

fig = figures.limit_distance(figures.load(snakemake.input.datasets), **snakemake.params.figure)
style.save(fig, snakemake.output.png, snakemake.output.pdf, dpi=snakemake.params.dpi)
