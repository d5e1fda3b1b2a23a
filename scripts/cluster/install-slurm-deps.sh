#!/usr/bin/env bash
# Install Debian's packages for the local SLURM test cluster (idempotent).
#   slurm-wlm       slurmctld, slurmd and the client tools (sbatch, sacct, ...)
#   slurmdbd        the accounting daemon
#   munge           authentication between them
#   mariadb-server  the database behind slurmdbd
# Does nothing (and needs no network) when all are installed already.
# Needs root. Starts no service: scripts/cluster/start-local-slurm.sh does.
set -euo pipefail

PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]} == 0)); then
    echo "[install-slurm-deps] already installed: ${PACKAGES[*]}"
    exit 0
fi
[[ $(id -u) -eq 0 ]] || {
    echo "[install-slurm-deps] ERROR: must run as root to install ${missing[*]}" >&2
    exit 2
}
echo "[install-slurm-deps] installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# policy-rc.d-less images may try to start services: harmless, the start script
# owns the daemons.
apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "[install-slurm-deps] done"
