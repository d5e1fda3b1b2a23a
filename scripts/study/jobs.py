"""The start of every rule script: log, pinned BLAS threads, and the job's
declared resources (``mem_mb``, ``runtime``) enforced as hard limits."""

from __future__ import annotations

import atexit
import os
import resource
import signal
import sys
import threading
import time
import traceback

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


class ResourceLimitExceeded(BaseException):
    """A job went over its declared ``mem_mb`` or ``runtime``.

    A ``BaseException`` (like ``KeyboardInterrupt``): it interrupts the job
    asynchronously and must not be swallowed by an ``except Exception``.
    """


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

    threadpool_limits(limits=1)  # kept for the whole job: the limit is process-wide state
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
        f"`set-resources:` in the profile (workflow/profiles/<profile>/profile.yaml); the rule's default "
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
