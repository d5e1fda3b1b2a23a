"""Checksummed, atomic netCDF files: how every stage writes its output and
reads its inputs (a half-written or garbled file is never used).

Kept apart from the math (``rvscgd``), which never touches files.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import xarray as xr

# Global attribute holding the sha256 of a file's decoded content (see content_digest).
DIGEST_ATTR = "content_sha256"


class CorruptFileError(RuntimeError):
    """An intermediate file cannot be read or lacks what its stage writes."""


def recovery_hint(path) -> str:
    return (
        f"recompute it and what depends on it with: snakemake --cores N --forcerun {path} "
        f"(or delete it, rm {path}, and snakemake recomputes it when it is next needed)"
    )


def _plain(value):
    """An attribute value as plain JSON data (numpy scalars and arrays as lists)."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _attrs_bytes(attrs: dict) -> bytes:
    plain = {str(k): _plain(v) for k, v in attrs.items() if k != DIGEST_ATTR}
    return json.dumps(plain, sort_keys=True, default=str).encode()


def content_digest(ds: xr.Dataset) -> str:
    """sha256 over every variable (name, dims, dtype, values, attributes) and the
    global attributes of ``ds`` as read back from disk, except ``DIGEST_ATTR``.

    Stored in each file by ``write_netcdf`` and checked by ``open_checked``:
    a garbled byte in data, coordinates or attributes changes it.
    """
    h = hashlib.sha256()
    for name in sorted(ds.variables, key=str):
        var = ds.variables[name]
        values = var.values
        h.update(json.dumps([str(name), list(var.dims), values.dtype.str, list(values.shape)]).encode())
        if values.dtype.kind == "O":
            h.update("\x1f".join(map(str, values.ravel().tolist())).encode())
        else:
            h.update(np.ascontiguousarray(values).tobytes())
        h.update(_attrs_bytes(var.attrs))
    h.update(_attrs_bytes(ds.attrs))
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_netcdf(ds: xr.Dataset, path) -> None:
    """Write ``ds`` to ``path`` through a temporary name and an atomic rename,
    so an interrupted job never leaves a half-written file under the final name.

    The file is read back before the rename and the sha256 of its decoded
    content stored in the global attribute ``content_sha256``
    (``open_checked`` verifies it), then flushed to disk (fsync) so a power
    loss cannot leave a renamed but empty file either.
    """
    import netCDF4

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        stale.unlink(missing_ok=True)  # left by a killed job (Snakemake's lock: one writer per output)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    encoding = {name: {"zlib": True, "complevel": 4} for name, var in ds.data_vars.items() if var.dtype.kind in "fiub"}
    try:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
        with xr.open_dataset(tmp, engine="netcdf4") as back:
            digest = content_digest(back.load())
        with netCDF4.Dataset(tmp, "a") as nc:
            nc.setncattr(DIGEST_ATTR, digest)
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def open_checked(path, required_vars=(), required_dims=()) -> xr.Dataset:
    """Open (and load) a netCDF file the pipeline wrote, or raise
    ``CorruptFileError`` naming the file and how to recover: unreadable
    (truncated, garbled headers), content not matching its stored checksum
    (garbled data), missing variables, or not marked complete."""
    path = Path(path)
    if not path.exists():
        raise CorruptFileError(f"missing intermediate file {path}: run snakemake to create it")
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            ds = ds.load()
    except MemoryError:
        raise  # not the file's fault: reported as a resource problem
    except Exception as err:  # netCDF4/HDF5 raise a zoo of types on garbage
        raise CorruptFileError(f"cannot read {path} ({type(err).__name__}: {err}); {recovery_hint(path)}") from err
    stored = ds.attrs.get(DIGEST_ATTR)
    if stored is None:
        raise CorruptFileError(
            f"{path} has no content checksum ({DIGEST_ATTR}): not written by this version of the "
            f"pipeline or damaged; {recovery_hint(path)}"
        )
    if content_digest(ds) != stored:
        raise CorruptFileError(f"{path} is corrupt: its content does not match its checksum; {recovery_hint(path)}")
    missing = [v for v in required_vars if v not in ds.variables] + [d for d in required_dims if d not in ds.dims]
    if missing:
        raise CorruptFileError(f"{path} lacks {missing}: it is not what this stage wrote; {recovery_hint(path)}")
    if ds.attrs.get("complete") != "yes":
        raise CorruptFileError(f"{path} is not marked complete; {recovery_hint(path)}")
    return ds
