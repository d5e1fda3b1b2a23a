# shellcheck shell=bash
# Shared settings and helpers for start-local-slurm.sh and stop-local-slurm.sh.
# Sourced, not executed. Every setting can be overridden from the environment.

# Where the local cluster keeps its configuration copies, logs, spool
# directories, MariaDB data and the PIDs of the daemons this project started.
RVSCGD_SLURM_STATE=${RVSCGD_SLURM_STATE:-/tmp/rvscgd-slurm}
# The SLURM tools (sinfo, sbatch, sacct, sacctmgr) read their configuration
# from here; the start script writes slurm.conf and slurmdbd.conf into it.
RVSCGD_SLURM_ETC=${RVSCGD_SLURM_ETC:-/etc/slurm}
RVSCGD_SLURM_CLUSTER=${RVSCGD_SLURM_CLUSTER:-rvscgd}
RVSCGD_SLURM_PARTITION=${RVSCGD_SLURM_PARTITION:-local}
RVSCGD_SLURM_ACCOUNT=${RVSCGD_SLURM_ACCOUNT:-study}
# Wall-clock limit of the local partition (like a production partition has one).
RVSCGD_SLURM_MAXTIME=${RVSCGD_SLURM_MAXTIME:-12:00:00}
# Private MariaDB instance for slurmdbd: TCP port on 127.0.0.1 only.
RVSCGD_SLURM_DB_PORT=${RVSCGD_SLURM_DB_PORT:-3307}
# Seconds to wait for each daemon / for the node to become idle.
RVSCGD_SLURM_TIMEOUT=${RVSCGD_SLURM_TIMEOUT:-90}

# Marker written at the top of every configuration file the start script
# owns; a file without it is never overwritten.
RVSCGD_SLURM_MARKER="# Written by rvscgd scripts/cluster/start-local-slurm.sh"

PIDDIR="$RVSCGD_SLURM_STATE/pids"
# The daemons live in /usr/sbin, which a non-login shell's PATH may lack.
PATH="$PATH:/usr/sbin:/sbin"

log() { printf '[local-slurm %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() {
    printf '[local-slurm] ERROR: %s\n' "$*" >&2
    exit "${2:-1}"
}

# recorded_pid NAME -> prints the PID this project recorded for NAME if that
# process is still alive and still runs the expected program, else nothing.
recorded_pid() {
    local name=$1 file="$PIDDIR/$1.pid" pid comm
    [[ -s $file ]] || return 0
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
    # /proc/PID/comm is cut to 15 characters; compare prefixes both ways.
    if [[ $comm == "${name:0:15}" || $name == "$comm"* ]]; then
        echo "$pid"
    fi
}

record_pid() { mkdir -p "$PIDDIR" && echo "$2" >"$PIDDIR/$1.pid"; }

# wait_for SECONDS DESCRIPTION CMD... -> polls CMD every 0.5 s until it succeeds.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 0.5
    done
    log "$what: ok"
}
