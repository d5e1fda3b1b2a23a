#!/usr/bin/env bash
# Start a one-node SLURM cluster on localhost, with real accounting.
#
# Daemons (all from Debian's packages, started directly: no systemd needed):
#   munged      authentication (reused if one already answers)
#   mariadbd    a private MariaDB instance on 127.0.0.1:$RVSCGD_SLURM_DB_PORT
#   slurmdbd    accounting, so `sacct` and account validation work as on a site
#   slurmctld   controller
#   slurmd      the single compute node (this host)
# Then: cluster, account and users registered with sacctmgr, and a wait until
# the node is idle. Idempotent: daemons this script started earlier and that
# still run are left alone. Their PIDs go to $RVSCGD_SLURM_STATE/pids/, which
# stop-local-slurm.sh reads.
#
# Usage:  sudo scripts/cluster/start-local-slurm.sh
# Needs:  root, and scripts/cluster/install-slurm-deps.sh run once.
# Prints at the end the partition and account to give Snakemake.
# Exit codes: 0 up, 1 failed to start, 2 not root, 3 packages missing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=slurm-common.sh
source "$HERE/slurm-common.sh"

T0=$SECONDS
STATE=$RVSCGD_SLURM_STATE
ETC=$RVSCGD_SLURM_ETC
CLUSTER=$RVSCGD_SLURM_CLUSTER
PARTITION=$RVSCGD_SLURM_PARTITION
ACCOUNT=$RVSCGD_SLURM_ACCOUNT
DB_PORT=$RVSCGD_SLURM_DB_PORT
TIMEOUT=$RVSCGD_SLURM_TIMEOUT
DB_SOCK=$STATE/mysql-run/mysqld.sock

# launch NAME PIDFILE CMD...: run CMD (a daemon that forks or is sent to the
# background), wait until PIDFILE names a live NAME process, record that PID.
# A stale PIDFILE (left by a killed daemon) is removed first.
launch() {
    local name=$1 pidfile=$2 pid="" deadline
    shift 2
    rm -f "$pidfile"
    log "$name: starting"
    "$@" || die "$name failed to start; see its log in $STATE/log"
    deadline=$((SECONDS + 30))
    while :; do
        pid=$(cat "$pidfile" 2>/dev/null || true)
        if [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == "${name:0:15}" ]]; then
            break
        fi
        ((SECONDS < deadline)) || die "$name did not come up (no live pid in $pidfile after 30 s); see its log in $STATE/log"
        sleep 0.2
    done
    record_pid "$name" "$pid"
}

# ---------------------------------------------------------------- preflight
[[ $(id -u) -eq 0 ]] || die "must run as root (it starts munged/slurmd and writes $ETC)" 2
missing=()
for tool in munged munge unmunge mungekey mariadbd mariadb mariadb-admin mariadb-install-db \
    slurmdbd slurmctld slurmd sacctmgr sinfo scontrol; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
((${#missing[@]} == 0)) ||
    die "missing programs: ${missing[*]}; run scripts/cluster/install-slurm-deps.sh first" 3

mkdir -p "$STATE"/{etc,log,pids,spool/slurmctld,spool/slurmd}
chmod 755 "$STATE"

# ------------------------------------------------------------ host and node
NODE=$(hostname -s)
if ! getent hosts "$NODE" >/dev/null 2>&1; then
    log "host name '$NODE' does not resolve: adding it to /etc/hosts"
    echo "127.0.0.1 $NODE" >>/etc/hosts
fi
# CPUs, sockets, cores, threads and RealMemory as slurmd itself detects them.
# `slurmd -C` needs no slurm.conf (unlike sinfo, which dies on a DNS lookup).
NODE_HW=$(slurmd -C | head -n 1 | sed -e 's/^NodeName=[^ ]* //')
[[ $NODE_HW == *CPUs=* && $NODE_HW == *RealMemory=* ]] ||
    die "could not read the node's hardware from 'slurmd -C': $NODE_HW"
CPUS=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$NODE_HW")
REALMEM=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$NODE_HW")
# Memory a job gets per CPU when it asks for none (otherwise it takes the node).
DEF_MEM_PER_CPU=$((REALMEM / CPUS < 1024 ? REALMEM / CPUS : 1024))
log "node $NODE: $NODE_HW"

# --------------------------------------------------------------- munge
munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
if munge_ok; then
    pid=$(recorded_pid munged)
    log "munged: already answering${pid:+ (pid $pid, started by this script)}"
else
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "munged: creating /etc/munge/munge.key"
        install -d -o munge -g munge -m 700 /etc/munge
        runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
    fi
    install -d -o munge -g munge -m 755 /run/munge
    install -d -o munge -g munge -m 700 /var/log/munge /var/lib/munge
    launch munged /run/munge/munged.pid runuser -u munge -- munged --pid-file=/run/munge/munged.pid
    wait_for "$TIMEOUT" "munged" munge_ok ||
        die "munged did not answer within ${TIMEOUT}s; see /var/log/munge/munged.log"
fi

# ------------------------------------------------------------- MariaDB
db() { mariadb --no-defaults --socket="$DB_SOCK" -u root "$@"; }
db_ok() { mariadb-admin --no-defaults --socket="$DB_SOCK" -u root ping; }
if pid=$(recorded_pid mariadbd) && [[ -n $pid ]]; then
    log "mariadbd: already running (pid $pid)"
else
    if [[ ! -d $STATE/mysql/mysql ]]; then
        log "mariadbd: initialising a private data directory in $STATE/mysql"
        install -d -o mysql -g mysql -m 750 "$STATE/mysql"
        mariadb-install-db --no-defaults --datadir="$STATE/mysql" --user=mysql \
            --auth-root-authentication-method=socket --skip-test-db \
            >"$STATE/log/mariadb-install.log" 2>&1 ||
            die "mariadb-install-db failed; see $STATE/log/mariadb-install.log"
    fi
    install -d -o mysql -g mysql -m 755 "$STATE/mysql-run"
    if (exec 3<>"/dev/tcp/127.0.0.1/$DB_PORT") 2>/dev/null; then
        die "port $DB_PORT is taken by another program; set RVSCGD_SLURM_DB_PORT to a free port"
    fi
    # mariadbd does not daemonise itself: detach it from this shell.
    # Buffer pool and lock wait timeout as the SLURM accounting guide asks.
    start_mariadbd() {
        setsid mariadbd --no-defaults --user=mysql --datadir="$STATE/mysql" \
            --socket="$DB_SOCK" --pid-file="$STATE/mysql-run/mariadbd.pid" \
            --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
            --innodb-buffer-pool-size=1G --innodb-lock-wait-timeout=900 \
            --log-error="$STATE/log/mariadb.log" </dev/null >/dev/null 2>&1 &
    }
    launch mariadbd "$STATE/mysql-run/mariadbd.pid" start_mariadbd
fi
wait_for "$TIMEOUT" "mariadbd on 127.0.0.1:$DB_PORT" db_ok ||
    die "mariadbd did not answer within ${TIMEOUT}s; see $STATE/log/mariadb.log"
# The database user of slurmdbd: password made once, kept in the state dir.
if [[ ! -s $STATE/etc/db.pass ]]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$STATE/etc/db.pass")
fi
DB_PASS=$(<"$STATE/etc/db.pass")
db <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL

# ------------------------------------------------------ configuration files
# install_conf SRC DEST MODE: copy our generated file into $ETC, refusing to
# overwrite a file that this script did not write.
install_conf() {
    local src=$1 dest=$2 mode=$3
    if [[ -e $dest ]] && ! grep -qxF "$RVSCGD_SLURM_MARKER" "$dest"; then
        die "$dest exists and was not written by this script; move it away (or set RVSCGD_SLURM_ETC) and retry"
    fi
    if ! cmp -s "$src" "$dest"; then
        install -m "$mode" -o root -g root "$src" "$dest"
        log "wrote $dest"
        CONF_CHANGED=1
    fi
}
CONF_CHANGED=0
mkdir -p "$ETC"

cat >"$STATE/etc/slurmdbd.conf" <<EOF
$RVSCGD_SLURM_MARKER
# Accounting daemon of the local test cluster; state in $STATE.
AuthType=auth/munge
DbdAddr=127.0.0.1
DbdHost=$NODE
DbdPort=6819
SlurmUser=root
LogFile=$STATE/log/slurmdbd.log
PidFile=$STATE/spool/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
chmod 600 "$STATE/etc/slurmdbd.conf"

cat >"$STATE/etc/slurm.conf" <<EOF
$RVSCGD_SLURM_MARKER
# One-node test cluster on localhost; state, logs and spool in $STATE.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/spool/slurmctld
SlurmdSpoolDir=$STATE/spool/slurmd
SlurmctldPidFile=$STATE/spool/slurmctld.pid
SlurmdPidFile=$STATE/spool/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
MpiDefault=none
MailProg=/bin/true
# No cgroups and no systemd here: plain process tracking, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job that asks for no memory gets the whole node.
DefMemPerCPU=$DEF_MEM_PER_CPU
# A node that was down comes back by itself once slurmd registers.
ReturnToService=2
# Reject at submission (not pend forever) a job over the partition's limits,
# e.g. a job group whose summed runtime exceeds MaxTime.
EnforcePartLimits=ALL
# Real accounting: sacct answers from slurmdbd, accounts are enforced.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStorageEnforce=associations
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
SlurmctldTimeout=60
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 $NODE_HW State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=$RVSCGD_SLURM_MAXTIME State=UP
EOF

install_conf "$STATE/etc/slurmdbd.conf" "$ETC/slurmdbd.conf" 600
install_conf "$STATE/etc/slurm.conf" "$ETC/slurm.conf" 644

# ------------------------------------------------------------- slurmdbd
sacctmgr_ok() { sacctmgr -n -P show cluster format=cluster; }
if pid=$(recorded_pid slurmdbd) && [[ -n $pid ]]; then
    log "slurmdbd: already running (pid $pid)"
else
    if pgrep -x slurmdbd >/dev/null; then
        die "a slurmdbd not started by this script is running (pid $(pgrep -x slurmdbd | head -1)); stop it first"
    fi
    launch slurmdbd "$STATE/spool/slurmdbd.pid" slurmdbd
fi
wait_for "$TIMEOUT" "slurmdbd answers sacctmgr" sacctmgr_ok ||
    die "slurmdbd did not answer within ${TIMEOUT}s; see $STATE/log/slurmdbd.log"

# ------------------------------------------ cluster, account, users (sacctmgr)
if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
    log "sacctmgr: added cluster $CLUSTER"
fi
if ! sacctmgr -n -P show account "$ACCOUNT" format=account | grep -qx "$ACCOUNT"; then
    sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" \
        Description="rvscgd study" Organization=rvscgd >/dev/null
    log "sacctmgr: added account $ACCOUNT"
fi
users=(root)
for u in "${SUDO_USER:-}" "$(id -un)"; do
    [[ -n $u && " ${users[*]} " != *" $u "* ]] && users+=("$u")
done
for u in "${users[@]}"; do
    if ! sacctmgr -n -P show assoc where cluster="$CLUSTER" account="$ACCOUNT" user="$u" \
        format=user | grep -qx "$u"; then
        sacctmgr -i add user "$u" Account="$ACCOUNT" DefaultAccount="$ACCOUNT" \
            Cluster="$CLUSTER" >/dev/null
        log "sacctmgr: added user $u to account $ACCOUNT"
    fi
done

# ------------------------------------------------------------ slurmctld
if pid=$(recorded_pid slurmctld) && [[ -n $pid ]]; then
    if ((CONF_CHANGED)); then
        log "slurmctld: running (pid $pid); configuration changed: scontrol reconfigure"
        scontrol reconfigure || true
    else
        log "slurmctld: already running (pid $pid)"
    fi
else
    if pgrep -x slurmctld >/dev/null; then
        die "a slurmctld not started by this script is running; stop it first"
    fi
    launch slurmctld "$STATE/spool/slurmctld.pid" slurmctld
fi
ctld_ok() { scontrol ping | grep -q UP; }
wait_for "$TIMEOUT" "slurmctld answers" ctld_ok ||
    die "slurmctld did not answer within ${TIMEOUT}s; see $STATE/log/slurmctld.log"

# --------------------------------------------------------------- slurmd
if pid=$(recorded_pid slurmd) && [[ -n $pid ]]; then
    log "slurmd: already running (pid $pid)"
else
    if pgrep -x slurmd >/dev/null; then
        die "a slurmd not started by this script is running; stop it first"
    fi
    launch slurmd "$STATE/spool/slurmd.pid" slurmd
fi

# ---------------------------------------------------- wait for an idle node
node_state() { sinfo -h -N -n "$NODE" -p "$PARTITION" -o '%t' 2>/dev/null | head -n 1; }
deadline=$((SECONDS + TIMEOUT))
while :; do
    st=$(node_state)
    # idle, or mix/alloc on a re-run while jobs are running: the node is up.
    case $st in
    idle | mix | alloc | comp) break ;;
    down* | drain* | drng*) scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    if ((SECONDS >= deadline)); then
        reason=$(sinfo -h -N -n "$NODE" -o '%E' 2>/dev/null || true)
        die "node $NODE is not idle after ${TIMEOUT}s (state '${st:-unknown}', reason '${reason:-none}'); see $STATE/log/slurmd.log and $STATE/log/slurmctld.log"
    fi
    sleep 0.5
done
log "node $NODE: $st"

cat >"$STATE/cluster.env" <<EOF
RVSCGD_SLURM_CLUSTER=$CLUSTER
RVSCGD_SLURM_PARTITION=$PARTITION
RVSCGD_SLURM_ACCOUNT=$ACCOUNT
EOF
log "cluster $CLUSTER up in $((SECONDS - T0)) s: partition '$PARTITION', account '$ACCOUNT'"
log "run Snakemake with: --workflow-profile workflow/profiles/slurm --default-resources slurm_account=$ACCOUNT slurm_partition=$PARTITION runtime=30 mem_mb=1000 --cores $CPUS"
log "stop with: scripts/cluster/stop-local-slurm.sh (state and logs in $STATE)"
