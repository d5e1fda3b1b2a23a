"""File I/O and job hygiene of the pipeline: atomic checksummed netCDF writes,
checked reads, provenance, and the start of every rule script (log, pinned
threads, enforced resources).

Kept apart from the math (``rvscgd``), which never touches files.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import resource
import signal
import sys
import threading
import time
import traceback
from importlib import metadata
from pathlib import Path

import numpy as np
import xarray as xr

PACKAGES = ("numpy", "scipy", "xarray", "netCDF4", "pandas", "matplotlib", "seaborn", "snakemake")

# Global attribute holding the sha256 of a file's decoded content (see content_digest).
DIGEST_ATTR = "content_sha256"

# The address-space cap of a job is 2 x mem_mb + this (MB): room for what is
# mapped but never resident (shared libraries, thread stacks, allocator
# arenas: about 250-350 MB for these jobs). It only stops runaway allocations
# before they take the machine down; mem_mb itself is enforced on the resident
# memory by a watchdog thread (see enforce_resources).
MEM_HEADROOM_MB = 1024
# Seconds between two looks of the memory watchdog at the job's resident memory.
MEM_POLL_S = 0.05
# Snakemake's `runtime` is in minutes. Tests shorten a minute with this
# environment variable (seconds per runtime minute); nothing else should set it.
RUNTIME_UNIT_ENV = "STUDY_SECONDS_PER_RUNTIME_MINUTE"
# Seconds a stopped job has to unwind (finally blocks) before it is ended hard.
STOP_GRACE_S = 5


class CorruptFileError(RuntimeError):
    """An intermediate file cannot be read or lacks what its stage writes."""


class ResourceLimitExceeded(BaseException):
    """A job went over its declared ``mem_mb`` or ``runtime``.

    A ``BaseException`` (like ``KeyboardInterrupt``): it interrupts the job
    asynchronously and must not be swallowed by an ``except Exception``.
    """


def recovery_hint(path) -> str:
    return (
        f"recompute it and what depends on it with: snakemake --cores N --forcerun {path} "
        f"(or delete it, rm {path}, and snakemake recomputes it when it is next needed)"
    )


# ---- checksummed, atomic netCDF ---------------------------------------------


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


# ---- provenance ---------------------------------------------------------------


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


# ---- the start of every rule script -------------------------------------------


def log_to(log_path):
    """Send stderr (warnings, tracebacks) and our progress lines to the rule's log."""
    stream = open(log_path, "w", buffering=1)  # noqa: SIM115 - lives as long as the job
    sys.stderr = stream
    return stream


def start_job(smk) -> None:
    """First call of every rule script, given the ``snakemake`` object.

    1. stderr goes to the rule's log;
    2. the job's libraries are loaded, then every BLAS/OpenMP pool is pinned
       to one thread, so floating-point sums keep one order whatever the
       machine, the core count or ``--cores`` (the engine's sampling threads
       are separate and do not change the numbers);
    3. the job's ``mem_mb`` and ``runtime`` resources are enforced
       (``enforce_resources``): going over them stops the job with a message
       naming the rule, the limit and how to raise it.
    """
    log_to(smk.log[0])
    import scipy.linalg  # noqa: F401 - load every BLAS the job uses before pinning
    from threadpoolctl import threadpool_limits

    import rvscgd  # noqa: F401

    global _THREAD_LIMITS
    _THREAD_LIMITS = threadpool_limits(limits=1)
    from threadpoolctl import threadpool_info

    pools = ", ".join(f"{p['internal_api']}={p['num_threads']}" for p in threadpool_info()) or "none loaded"
    print(f"threads: BLAS/OpenMP pools pinned ({pools}); job threads {smk.threads}", file=sys.stderr)
    wildcards = {k: v for k, v in smk.wildcards.items()}
    res = smk.resources
    enforce_resources(
        smk.rule,
        wildcards,
        mem_mb=getattr(res, "mem_mb", None),
        runtime=getattr(res, "runtime", None),
    )


_THREAD_LIMITS = None


def _rss_mb() -> float:
    """The process's current resident memory (MB); its peak where /proc is missing."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1e6 if sys.platform == "darwin" else peak / 1e3


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1e3


def _raise_advice(rule: str, key: str, unit: str) -> str:
    return (
        f"Raise it for this rule with `snakemake --set-resources {rule}:{key}=<{unit}>`, or under "
        f"`set-resources:` in the profile (workflow/profiles/<profile>/config.yaml); the rule's default "
        f"is its `resources:` in workflow/rules/. Measured peaks of earlier runs: its benchmark files "
        f"(<results_dir>/benchmarks/{rule}/, columns max_rss in MB and s in seconds)."
    )


def enforce_resources(rule: str, wildcards: dict, mem_mb=None, runtime=None) -> None:
    """Make the declared resources of a job hard limits inside the job.

    mem_mb : a watchdog thread looks at the resident memory every
        ``MEM_POLL_S`` seconds; above ``mem_mb`` it stops the job. The address
        space is capped at ``2 mem_mb + MEM_HEADROOM_MB`` (``RLIMIT_AS``) so a
        sudden huge allocation fails with ``MemoryError`` at once instead of
        pushing the machine into its OOM killer.
    runtime : minutes of wall time (Snakemake's unit); after it the same
        watchdog stops the job.

    Stopping raises ``ResourceLimitExceeded`` in the main thread (so
    ``finally`` blocks run and no temporary file survives). A stopped job
    never succeeds: if the exception is swallowed somewhere, the job ends
    with exit code 1 when it finishes, or with ``os._exit(1)`` after
    ``STOP_GRACE_S`` seconds if it is still running (or stuck in C code).
    Every stop, and any ``MemoryError``, reports the rule, its wildcards, the
    limit and how to raise it, in the log and on Snakemake's stderr. ``None``
    or a non-positive value means no limit.
    """
    where = f"rule {rule}" + (f" ({', '.join(f'{k}={v}' for k, v in wildcards.items())})" if wildcards else "")
    started = time.monotonic()
    mem_mb = int(mem_mb) if isinstance(mem_mb, int | float) and mem_mb > 0 else None
    runtime = int(runtime) if isinstance(runtime, int | float) and runtime > 0 else None
    cap_mb = None
    if mem_mb is not None:
        cap_mb = 2 * mem_mb + MEM_HEADROOM_MB
        cap = cap_mb * 1024 * 1024
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    deadline = None
    if runtime is not None:
        deadline = started + runtime * float(os.environ.get(RUNTIME_UNIT_ENV, 60))
    stop = {"reported": False}

    def report_stop(message: str) -> None:
        if not stop["reported"]:
            stop["reported"] = True
            for stream in dict.fromkeys((sys.stderr, sys.__stderr__)):
                try:
                    print(f"ResourceLimitExceeded: {message}", file=stream, flush=True)
                except (OSError, ValueError):
                    pass

    def on_signal(signum, frame):
        raise ResourceLimitExceeded(stop["message"])

    def watch():
        main = threading.main_thread().ident
        while True:
            if mem_mb is not None and (rss := _rss_mb()) > mem_mb:
                stop["message"] = (
                    f"{where} exceeded its memory limit: resident memory {rss:.0f} MB > mem_mb={mem_mb}. "
                    + _raise_advice(rule, "mem_mb", "MB")
                )
                break
            if deadline is not None and time.monotonic() >= deadline:
                stop["message"] = (
                    f"{where} exceeded its runtime limit: still running after {runtime} min (runtime={runtime}). "
                    + _raise_advice(rule, "runtime", "minutes")
                )
                break
            time.sleep(MEM_POLL_S if deadline is None else min(MEM_POLL_S, max(deadline - time.monotonic(), 0)))
        report_stop(stop["message"])
        signal.pthread_kill(main, signal.SIGUSR1)
        time.sleep(STOP_GRACE_S)
        print(f"(still running {STOP_GRACE_S} s after the stop: ended)", file=sys.stderr, flush=True)
        os._exit(1)

    if mem_mb is not None or deadline is not None:
        signal.signal(signal.SIGUSR1, on_signal)
        threading.Thread(target=watch, name="study-resource-watchdog", daemon=True).start()

    def excepthook(exc_type, exc, tb):
        print("".join(traceback.format_exception(exc_type, exc, tb)), end="", file=sys.stderr, flush=True)
        if issubclass(exc_type, ResourceLimitExceeded):
            report_stop(str(exc))
        elif issubclass(exc_type, MemoryError):
            report_stop(
                f"{where} ran out of memory: an allocation failed"
                + (
                    f" at its address-space cap of {cap_mb} MB (2 x mem_mb={mem_mb} + {MEM_HEADROOM_MB} MB "
                    "headroom). " + _raise_advice(rule, "mem_mb", "MB")
                    if cap_mb is not None
                    else " (no mem_mb declared: the machine itself is out of memory)."
                )
            )

    sys.excepthook = excepthook

    def report():
        wall = time.monotonic() - started
        print(
            f"resources: peak resident memory {_peak_rss_mb():.0f} MB (mem_mb={mem_mb}), "
            f"wall time {wall:.1f} s (runtime={runtime} min)",
            file=sys.stderr,
            flush=True,
        )
        if "message" in stop:
            # Stopped, but the exception was swallowed somewhere and the job ran on:
            # it still fails (Snakemake then discards its outputs).
            print("(stopped by its resource limit: the job fails)", file=sys.stderr, flush=True)
            os._exit(1)

    atexit.register(report)
