"""Snakemake's directory lock after a killed run (parse-time helper: stdlib only)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

LOCK_OWNER = Path(".snakemake") / "study-lock-host"


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the (command)
        except (OSError, ValueError, IndexError):
            break
    return pids


def _live_snakemake_here(workdir: Path) -> list[str]:
    """Other live processes on this host running Snakemake (or its jobs) in ``workdir``."""
    found = []
    mine = _ancestors()  # this process and the ones that started it (a wrapper script, a shell)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in mine:
            continue
        try:
            if Path(os.readlink(proc / "cwd")).resolve() != workdir:
                continue
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "snakemake" in cmdline:
            found.append(f"pid {proc.name}: {cmdline.strip()[:120]}")
    return found


def clear_stale_lock(workdir=".") -> str | None:
    """Remove Snakemake's directory lock if the run holding it is dead.

    Snakemake locks a working directory for the length of a run and unlocks it
    on exit, also on Ctrl-C; a run killed with SIGKILL (or a power loss)
    leaves the lock behind and every later run stops with a LockException
    until ``snakemake --unlock``. Called at parse time by the main Snakemake
    process, this removes the lock (what ``--unlock`` does) only when it is
    provably stale: the lock was taken on this host (``LOCK_OWNER``,
    recorded by this function) and no process on this host runs Snakemake
    or one of its jobs in this directory. Otherwise (a live run, another host,
    no /proc) the lock stays and Snakemake refuses to start, as it should.
    Returns a message saying what it did, or None.
    """
    workdir = Path(workdir).resolve()
    locks = workdir / ".snakemake" / "locks"
    owner = workdir / LOCK_OWNER
    host = socket.gethostname()
    held = sorted(locks.glob("*.lock")) if locks.is_dir() else []
    message = None
    if held:
        if not Path("/proc/self").exists():
            return None
        try:
            lock_host = owner.read_text().strip()
        except OSError:
            return None  # a lock we know nothing about: leave it to Snakemake (--unlock)
        if lock_host != host:
            return None
        live = _live_snakemake_here(workdir)
        if live:
            return None
        for f in held:
            f.unlink(missing_ok=True)
        message = (
            f"Removed a stale Snakemake lock in {workdir}: the run that took it on {host} is gone "
            f"(killed); its unfinished jobs run again."
        )
    owner.parent.mkdir(parents=True, exist_ok=True)
    owner.write_text(host + "\n")
    return message
