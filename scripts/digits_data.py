"""Rule digits_data: every seed's train/test split of the bundled 8x8 digits,
standardised with the training part's statistics (cached for the train jobs)."""

import sys
import time

sys.path.insert(0, snakemake.scriptdir)  # this checkout's library, even if another copy is installed

from study.jobs import start_job  # noqa: E402
from study.ncio import write_netcdf  # noqa: E402
from study.provenance import provenance  # noqa: E402

start_job(snakemake)  # log, one BLAS thread, mem_mb/runtime enforced

import sklearn  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from study.digits import make_data  # noqa: E402

digits = load_digits()  # bundled with scikit-learn: no download
ds = make_data(snakemake.config, digits.images, digits.target)
print(f"digits: {ds.sizes['train_item']} train / {ds.sizes['test_item']} test images per seed", file=sys.stderr)
ds.attrs.update(provenance(snakemake.config, snakemake.rule, dict(snakemake.wildcards.items()), snakemake.input.code))
ds.attrs["scikit_learn_version"] = sklearn.__version__  # the images come from its bundled copy
write_netcdf(ds, snakemake.output[0])
print(f"cpu {time.process_time():.2f} s (this job's process, start-up included)", file=sys.stderr)
