"""Rule fig_digits: accuracy versus filter sparsity on the digits, and learned filters.

Calls study.fig_digits.draw on the digits dataset; saves PNG + PDF with study.style.save.
"""

import sys
import time

sys.path.insert(0, snakemake.scriptdir)  # this checkout's library, even if another copy is installed

from study.io import open_checked, start_job  # noqa: E402

start_job(snakemake)  # log, one BLAS thread, mem_mb/runtime enforced

from study import fig_digits, style  # noqa: E402

ds = open_checked(snakemake.input.datasets[0], required_vars=("acc_u", "sparsity", "u"))
fig = fig_digits.draw({"digits": ds}, **snakemake.params.figure)
style.save(fig, snakemake.output.png, snakemake.output.pdf, dpi=snakemake.params.dpi)
print(f"cpu {time.process_time():.2f} s (this job's process, start-up included)", file=sys.stderr)
