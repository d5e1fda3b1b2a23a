"""Checksummed, atomic netCDF files: how every stage writes its output and
reads its inputs (a half-written or garbled file is never used).

Kept apart from the math (``rvscgd``), which never touches files.
"""

from __future__ import annotations

import errno
import gc
import hashlib
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import xarray as xr

# Global attribute holding the sha256 of a file's decoded content (see content_digest).
DIGEST_ATTR = "content_sha256"
# Tests only: a directory that makes every write wait, its temporary file complete,
# before the rename into place, until the test creates `<key>.go` there, the
# key being the path from the working directory with `__` for `/` (see _hold).
# It freezes a run at a known point; nothing else should set it.
HOLD_ENV = "STUDY_HOLD_WRITES"
# Largest uncompressed chunk of a stored variable. Every stage reads its inputs
# whole, so a variable is one chunk up to this size; netCDF's own default cut
# the many-dimensional result variables into thousands of tiny chunks, which
# made reading a dataset 5-10 times slower than decompressing it. Half the
# netCDF library's default chunk cache (64 MiB), so a user's lazy slicing
# decompresses a chunk once, not on every access.
CHUNK_BYTES = 32 * 2**20


class DiskFullError(OSError):
    """A file could not be written because its file system is full (errno ENOSPC)."""


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


def chunk_shape(shape, itemsize: int, limit: int = CHUNK_BYTES) -> tuple[int, ...]:
    """The chunk of a stored variable: the whole ``shape`` if it holds at most
    ``limit`` bytes, else the leading dimensions cut down, first to last, until
    one chunk holds at most ``limit`` (or every dimension is down to 1)."""
    chunks = [int(d) for d in shape]
    for i in range(len(chunks)):
        size = math.prod(chunks) * itemsize
        if size <= limit:
            break
        chunks[i] = max(1, chunks[i] * limit // size)
    return tuple(chunks)


def cf_encoding(ds: xr.Dataset) -> dict:
    """The netCDF encoding of every variable of ``ds``, CF-1.8 clean whatever
    the dataset (checked by ``compliance-checker --test cf:1.8``, see
    docs/datasets.md):

    - numeric data variables compressed (zlib, level 4), each in one chunk of
      at most ``CHUNK_BYTES`` (``chunk_shape``);
    - 64-bit integers stored as 32-bit (CF 1.8 has no 64-bit integer type);
      a value outside the int32 range is a ValueError naming the variable;
    - dimension coordinates without ``_FillValue`` (a coordinate has no
      missing values);
    - flag variables turned float by NaN padding stored in their flags'
      integer type, the padding as ``_FillValue``;
    - string dimension coordinates (``penalty``, ``ste``) as character arrays:
      CF label variables, which xarray decodes back to a string index, so
      ``ds.sel(penalty="l1")`` works on the opened file.
    """
    encoding = {}
    for name, var in ds.variables.items():
        enc = {}
        if name in ds.data_vars and var.dtype.kind in "fiub":
            enc.update(zlib=True, complevel=4)
            if var.ndim and var.size:
                enc["chunksizes"] = chunk_shape(var.shape, var.dtype.itemsize)
        if var.dtype.kind in "iu" and var.dtype.itemsize == 8:
            info = np.iinfo(np.int32)
            values = var.values
            if values.size and (values.min() < info.min or values.max() > info.max):
                raise ValueError(f"variable {name!r}: values beyond the int32 range cannot be stored under CF 1.8")
            enc["dtype"] = "int32"
        flags = var.attrs.get("flag_masks", var.attrs.get("flag_values"))
        if var.dtype.kind == "f" and flags is not None:
            # A flag variable NaN-padded by a merge: stored in its flags' integer type
            # (CF bit fields), the padding as _FillValue; read back as before (NaN).
            int_type = np.asarray(flags).dtype
            enc.update(dtype=int_type.str, _FillValue=np.iinfo(int_type).min)
        if name in ds.dims:
            enc["_FillValue"] = None
            if var.dtype.kind in "OUS":
                enc["dtype"] = "S1"
        if enc:
            encoding[name] = enc
    return encoding


def _size(nbytes: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if nbytes < 1000 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    raise AssertionError("unreachable")


def _needed_bytes(ds: xr.Dataset, encoding: dict) -> int | None:
    """The size of the file ``ds`` makes, encoded in memory (None if that fails too)."""
    try:
        return len(ds.to_netcdf(engine="netcdf4", format="NETCDF4", encoding=encoding)) + 4096  # + checksum attr
    except Exception:  # memory: a report, not a second failure
        return None


def _disk_full(err: BaseException, path: Path, ds: xr.Dataset, encoding: dict) -> DiskFullError | None:
    """The error to raise instead of ``err`` if the file system of ``path`` is full.

    netCDF4 reports a full disk as "NetCDF: HDF error", without errno: the
    free space tells (measured after the partial file was removed).
    """
    needed = _needed_bytes(ds, encoding)
    free = shutil.disk_usage(path.parent).free
    enospc = isinstance(err, OSError) and err.errno == errno.ENOSPC
    if not enospc and (needed is None or free >= needed):
        return None
    need = f"needs about {_size(needed)}" if needed is not None else f"needs up to {_size(ds.nbytes)} (uncompressed)"
    return DiskFullError(
        errno.ENOSPC,
        f"no space left on device: cannot write {path}: the file {need}, {_size(free)} free on its file "
        f"system ({type(err).__name__}: {err}). No partial file was left; free space (or set results_dir "
        "elsewhere) and run snakemake again: what is already computed is kept",
    )


def _hold(path: Path) -> None:
    """Wait, if HOLD_ENV names a directory, until the test releases this write.

    The wait runs with the cyclic garbage collector off: a Ctrl-C (SIGINT)
    that lands while a finalizer runs (xarray's and netCDF4's file handles
    have them) is printed as "Exception ignored" and lost, and the job would
    wait here for ever. With no finalizer in the loop, the KeyboardInterrupt
    always reaches ``write_netcdf``, which removes the temporary file.
    """
    gate = os.environ.get(HOLD_ENV)
    if not gate:
        return
    key = "__".join(Path(os.path.relpath(path)).parts)  # the whole path: experiments share file names
    gc.collect()  # finalize what the write left behind now, not during the wait
    gc.disable()
    try:
        (Path(gate) / f"{key}.held").touch()
        while not (Path(gate) / f"{key}.go").exists():
            time.sleep(0.02)
    finally:
        gc.enable()


def write_netcdf(ds: xr.Dataset, path) -> None:
    """Write ``ds`` to ``path`` through a temporary name and an atomic rename,
    so an interrupted job never leaves a half-written file under the final name.

    Variables are encoded by ``cf_encoding``. The file is read back before
    the rename and the sha256 of its decoded content stored in the global
    attribute ``content_sha256`` (``open_checked`` verifies it), then flushed
    to disk (fsync) so a power loss cannot leave a renamed but empty file
    either. A full file system raises ``DiskFullError`` ("no space left on
    device", the file, the space it needs and the space free), leaving no
    partial file.
    """
    import netCDF4

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        stale.unlink(missing_ok=True)  # left by a killed job (Snakemake's lock: one writer per output)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    encoding = cf_encoding(ds)
    try:
        try:
            ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
            with xr.open_dataset(tmp, engine="netcdf4") as back:
                digest = content_digest(back.load())
            with netCDF4.Dataset(tmp, "a") as nc:
                nc.setncattr(DIGEST_ATTR, digest)
            _fsync(tmp)
        except Exception as err:
            tmp.unlink(missing_ok=True)
            full = _disk_full(err, path, ds, encoding)
            if full is not None:
                raise full from err
            raise
        _hold(path)
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
