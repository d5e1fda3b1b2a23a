"""File I/O of the pipeline: atomic netCDF writes, checked reads, provenance.

Kept apart from the math (``rvscgd``), which never touches files.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from importlib import metadata
from pathlib import Path

import xarray as xr

PACKAGES = ("numpy", "scipy", "xarray", "netCDF4", "pandas", "matplotlib", "seaborn", "snakemake")


class CorruptFileError(RuntimeError):
    """An intermediate file cannot be read or lacks what its stage writes."""


def recovery_hint(path) -> str:
    return (
        f"delete it (rm {path}) and run snakemake again to recompute it, "
        f"or force it with: snakemake --cores N --forcerun {path}"
    )


def write_netcdf(ds: xr.Dataset, path) -> None:
    """Write ``ds`` to ``path`` through a temporary name and an atomic rename,
    so an interrupted job never leaves a half-written file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    encoding = {name: {"zlib": True, "complevel": 4} for name, var in ds.data_vars.items() if var.dtype.kind in "fiub"}
    try:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def open_checked(path, required_vars=(), required_dims=()) -> xr.Dataset:
    """Open (and load) a netCDF file the pipeline wrote, or raise
    ``CorruptFileError`` naming the file and how to recover."""
    path = Path(path)
    if not path.exists():
        raise CorruptFileError(f"missing intermediate file {path}: run snakemake to create it")
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            ds = ds.load()
    except Exception as err:  # netCDF4/HDF5 raise a zoo of types on garbage
        raise CorruptFileError(f"cannot read {path} ({type(err).__name__}: {err}); {recovery_hint(path)}") from err
    missing = [v for v in required_vars if v not in ds.variables] + [d for d in required_dims if d not in ds.dims]
    if missing:
        raise CorruptFileError(f"{path} lacks {missing}: it is not what this stage wrote; {recovery_hint(path)}")
    if ds.attrs.get("complete") != "yes":
        raise CorruptFileError(f"{path} is not marked complete; {recovery_hint(path)}")
    return ds


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


def log_to(log_path):
    """Send stderr (warnings, tracebacks) and our progress lines to the rule's log."""
    stream = open(log_path, "w", buffering=1)  # noqa: SIM115 - lives as long as the job
    sys.stderr = stream
    return stream
