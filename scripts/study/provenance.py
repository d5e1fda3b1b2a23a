"""Provenance of every file the pipeline writes: config, code version and
package versions, without time or paths (same inputs, same file)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from importlib import metadata

from .sources import code_digest

PACKAGES = ("numpy", "scipy", "xarray", "netCDF4", "pandas", "matplotlib", "seaborn", "snakemake")

# CF global attributes of every file (CF 1.8 section 2.6.2: `source` is how the
# data were made, `references` the publications describing them).
CONVENTIONS = "CF-1.8"
SOURCE = (
    "numerical simulation: relaxed variable splitting coarse gradient descent (RVSCGD) on a one-hidden-layer "
    "binary-activation convolutional network, synthetic Gaussian teacher-student data; rvscgd study workflow "
    "(Snakemake)"
)
REFERENCES = (
    "Dinh, T. and Xin, J. (2020): Convergence of a Relaxed Variable Splitting Coarse Gradient Descent Method "
    "for Learning Sparse Weight Binarized Activation Neural Networks. Front. Appl. Math. Stat. 6:13, "
    "doi:10.3389/fams.2020.00013; arXiv:1901.09731"
)


def provenance(config: dict, rule: str | None, wildcards: dict | None, code: Iterable) -> dict:
    """Global attributes: config, code version, package versions and the CF
    ones (``Conventions``, ``history``, ``source``, ``references``); no time,
    no paths, so the same inputs give the same file.

    Parameters
    ----------
    config : dict
        The study's config, as validated.
    rule, wildcards : str and dict, optional
        The Snakemake rule that writes the file and its wildcards, named in
        ``history`` (CF asks for how the file was made; a timestamp would
        break bit-identical files, the code hash takes its place).
    code : iterable of paths
        The source files the job ran (its rule's ``code`` input,
        ``study.sources.job_sources``): ``code_sha256`` is their digest.
    """
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    digest = code_digest(code)
    made_by = "rvscgd study workflow"
    if rule is not None:
        where = ", ".join(f"{k}={v}" for k, v in (wildcards or {}).items())
        made_by = f"rule {rule}" + (f" ({where})" if where else "") + f" of the {made_by}"
    return {
        "Conventions": CONVENTIONS,
        "history": f"{made_by}, code_sha256 {digest}",
        "source": SOURCE,
        "references": REFERENCES,
        "config": json.dumps(config, sort_keys=True),
        "code_sha256": digest,
        "python": sys.version.split()[0],
        "package_versions": json.dumps(versions, sort_keys=True),
        "complete": "yes",
    }
