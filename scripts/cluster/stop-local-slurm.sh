#!/usr/bin/env bash
# Stop the daemons that start-local-slurm.sh started, by the PIDs it recorded
# in $RVSCGD_SLURM_STATE/pids/. Nothing else is touched: a munged (or any
# daemon) that was already running before is left alone.
#
# It also removes the slurm.conf and slurmdbd.conf the start script wrote
# (the start script writes them again): a slurm.conf naming a stopped
# slurmctld makes every SLURM client wait 9 s for a timeout, and Snakemake's
# SLURM plugin runs `scontrol show config` each time Snakemake starts, local
# runs included.
#
# Usage:  scripts/cluster/stop-local-slurm.sh [--purge]
#   --purge  also delete the state directory (MariaDB data, logs, spool).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=slurm-common.sh
source "$HERE/slurm-common.sh"

purge=0
case ${1:-} in
--purge) purge=1 ;;
"") ;;
*) die "unknown argument '$1' (usage: $0 [--purge])" ;;
esac

# stop_one NAME: SIGTERM, wait up to 30 s, then SIGKILL.
stop_one() {
    local name=$1 pid
    pid=$(recorded_pid "$name")
    if [[ -z $pid ]]; then
        [[ -e $PIDDIR/$name.pid ]] && log "$name: recorded process no longer runs"
        rm -f "$PIDDIR/$name.pid"
        return 0
    fi
    log "$name: stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "$name: still running after 30 s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    rm -f "$PIDDIR/$name.pid"
}

if [[ ! -d $PIDDIR ]]; then
    log "no recorded daemons in $PIDDIR: nothing to stop"
else
    # Reverse order of start: the node first, the database and munge last.
    for name in slurmd slurmctld slurmdbd mariadbd munged; do
        stop_one "$name"
    done
fi

for f in "$RVSCGD_SLURM_ETC/slurm.conf" "$RVSCGD_SLURM_ETC/slurmdbd.conf"; do
    if [[ -e $f ]] && grep -qxF "$RVSCGD_SLURM_MARKER" "$f"; then
        rm -f "$f" && log "removed $f"
    fi
done
if ((purge)); then
    if [[ -d $RVSCGD_SLURM_STATE ]]; then
        rm -rf "$RVSCGD_SLURM_STATE" && log "removed $RVSCGD_SLURM_STATE"
    fi
fi
log "done"
