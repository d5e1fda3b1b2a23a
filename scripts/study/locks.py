"""Snakemake's directory lock after a killed run (parse-time helper: stdlib and psutil only)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import psutil

LOCK_OWNER = Path(".snakemake") / "study-lock-host"
# Persistence backends whose locks this module can read: Snakemake's `file`
# backend keeps them as files in .snakemake/locks/ (the only backend before
# Snakemake 9.17, and still the default).
KNOWN_BACKENDS = ("file",)
# Command-line flags with which Snakemake runs no job (so takes no lock): the
# lock is then left as it is and nothing is written.
NO_JOB_FLAGS = {
    "-n",
    "--dry-run",
    "--dryrun",
    "--lint",
    "--rulegraph",
    "--dag",
    "--filegraph",
    "--d3dag",
    "--summary",
    "-S",
    "--detailed-summary",
    "-D",
    "--list-rules",
    "--list",
    "-l",
    "--list-target-rules",
    "--lt",
    "--report",
    "--unlock",
    "--print-compilation",
}


def persistence_backend(workflow) -> str:
    """The name of the persistence backend of a Snakemake ``workflow`` object
    (``--persistence-backend``, Snakemake >= 9.17), ``"file"`` before that."""
    backend = getattr(getattr(workflow, "workflow_settings", None), "persistence_backend", None)
    if backend is None:
        return "file"
    return str(getattr(backend, "name", backend)).lower()


def runs_jobs(workflow, argv=None) -> bool:
    """False if this Snakemake invocation runs no job: a dry run, ``--lint``
    (Snakemake builds the linted workflow without its environment checks),
    or a flag of ``NO_JOB_FLAGS``. Those must leave the directory as it is."""
    output = getattr(workflow, "output_settings", None)
    if output is not None and getattr(output, "dryrun", False):
        return False
    if getattr(workflow, "check_envvars", True) is False:  # how Snakemake 9's lint builds the workflow
        return False
    argv = sys.argv[1:] if argv is None else argv
    return not any(arg.split("=", 1)[0] in NO_JOB_FLAGS for arg in argv)


def _ancestors() -> set[int]:
    me = psutil.Process()
    return {me.pid, *(p.pid for p in me.parents())}


def _live_snakemake_here(workdir: Path) -> list[str]:
    """Other live processes on this host running Snakemake (or its jobs) in ``workdir``."""
    found = []
    mine = _ancestors()  # this process and the ones that started it (a wrapper script, a shell)
    for proc in psutil.process_iter(["pid", "cwd", "cmdline"]):
        info = proc.info
        if info["pid"] in mine or not info["cwd"] or not info["cmdline"]:
            continue  # ours, or another user's process we may not inspect (not in our directory)
        try:
            if Path(info["cwd"]).resolve() != workdir:
                continue
        except OSError:
            continue
        cmdline = " ".join(info["cmdline"])
        if "snakemake" in cmdline:
            found.append(f"pid {info['pid']}: {cmdline.strip()[:120]}")
    return found


def clear_stale_lock(workdir=".", backend: str = "file") -> str | None:
    """Remove Snakemake's directory lock if the run holding it is dead.

    Snakemake locks a working directory for the length of a run and unlocks it
    on exit, also on Ctrl-C; a run killed with SIGKILL (or a power loss)
    leaves the lock behind and every later run stops with a LockException
    until ``snakemake --unlock``. Called at parse time by the main Snakemake
    process of a run that executes jobs, this removes the lock (what
    ``--unlock`` does) only when it is provably stale: the lock was taken on
    this host (``LOCK_OWNER``, written by ``record_lock_host`` when a run
    starts) and no process on this host runs Snakemake or one of its jobs in
    this directory (psutil: Linux, macOS, Windows). Otherwise (a live run,
    another host) the lock stays and Snakemake refuses to start, as it should.
    With a persistence backend other than ``file`` (``--persistence-backend
    db``) the locks live where this function does not look: it touches
    nothing and says so. Reads only; writes nothing but the removal.

    Returns a message saying what it did, or None.
    """
    workdir = Path(workdir).resolve()
    if backend not in KNOWN_BACKENDS:
        return (
            f"Note: Snakemake's persistence backend is {backend!r} (--persistence-backend), whose locks this "
            "workflow does not read: a lock left by a killed run is not cleared automatically. If Snakemake "
            "reports a locked directory and no run is alive, clear it with `snakemake --unlock`."
        )
    locks = workdir / ".snakemake" / "locks"
    held = sorted(locks.glob("*.lock")) if locks.is_dir() else []
    if not held:
        return None
    host = socket.gethostname()
    try:
        lock_host = (workdir / LOCK_OWNER).read_text().strip()
    except OSError:
        return None  # a lock we know nothing about: leave it to Snakemake (--unlock)
    if lock_host != host or _live_snakemake_here(workdir):
        return None
    for f in held:
        f.unlink(missing_ok=True)
    return (
        f"Removed a stale Snakemake lock in {workdir}: the run that took it on {host} is gone "
        f"(killed); its unfinished jobs run again."
    )


def record_lock_host(workdir=".") -> None:
    """Record this host as the one whose run holds the directory's lock
    (called when a run starts its jobs, Snakemake's ``onstart``)."""
    owner = Path(workdir).resolve() / LOCK_OWNER
    owner.parent.mkdir(parents=True, exist_ok=True)
    owner.write_text(socket.gethostname() + "\n")
