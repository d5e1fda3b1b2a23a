"""Provenance of every file the pipeline writes: config, code version and
package versions, without time or paths (same inputs, same file)."""

from __future__ import annotations

import hashlib
import json
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("numpy", "scipy", "xarray", "netCDF4", "pandas", "matplotlib", "seaborn", "snakemake")


def code_digest() -> str:
    """sha256 over the library's source (rvscgd and study), path-independent."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent.parent
    for pkg in ("rvscgd", "study"):
        for f in sorted((root / pkg).glob("*.py")):
            h.update(f"{pkg}/{f.name}".encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def provenance(config: dict) -> dict:
    """Global attributes: config, code version, package versions; no time, no
    paths, so the same inputs give the same file."""
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return {
        "config": json.dumps(config, sort_keys=True),
        "code_sha256": code_digest(),
        "python": sys.version.split()[0],
        "package_versions": json.dumps(versions, sort_keys=True),
        "complete": "yes",
    }
