"""Rule fig_<name> (every figure): draw figure ``params.name`` from its datasets, save PNG + PDF.

The figure is ``study.figures.<name>.draw``; the rules are generated in
workflow/rules/figures.smk from ``study.figures.registry``.
"""

import importlib
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # this checkout's library, even if another copy is installed

from study.jobs import start_job  # noqa: E402
from study.ncio import open_checked  # noqa: E402

start_job(snakemake)  # log, one BLAS thread, mem_mb/runtime enforced

from study import style  # noqa: E402

datasets = {
    Path(path).stem: open_checked(path, required_vars=("status",), required_dims=("step",))
    for path in snakemake.input.datasets
}
figure = importlib.import_module(f"study.figures.{snakemake.params.name}")
fig = figure.draw(datasets, **snakemake.params.figure)
style.save(fig, snakemake.output.png, snakemake.output.pdf, dpi=snakemake.params.dpi)
