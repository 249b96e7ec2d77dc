#!/usr/bin/env bash
# A single-node SLURM on this machine for the tests (Debian's slurm-wlm and munge): `tools/slurm_local.sh start`
# installs them if missing, writes a configuration for one node (this host, its CPUs and memory) under
# $SLURM_LOCAL (default /tmp/mas_nb_slurm), starts munged, slurmctld and slurmd, and waits until the node takes jobs.
# It prints the SLURM_CONF to export; `tools/slurm_local.sh stop` ends the daemons. Needs root (apt, daemons).
set -euo pipefail
dir=${SLURM_LOCAL:-/tmp/mas_nb_slurm}
conf=$dir/slurm.conf

start() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
  fi
  mkdir -p "$dir"/{spool,state,log} /run/munge /var/log/munge /var/lib/munge /etc/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
  [ -s /etc/munge/munge.key ] || { mungekey --create --force >/dev/null 2>&1 || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; }
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  pgrep -x munged >/dev/null || runuser -u munge -- munged
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  cat > "$conf" <<EOF
ClusterName=mas_nb_local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmdSpoolDir=$dir/spool
StateSaveLocation=$dir/state
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
  export SLURM_CONF=$conf
  pgrep -x slurmctld >/dev/null || slurmctld -f "$conf"
  pgrep -x slurmd >/dev/null || slurmd -f "$conf"
  for _ in $(seq 60); do
    if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then echo "SLURM_CONF=$conf"; return 0; fi
    sleep 1
  done
  echo "slurm did not come up within a minute; see $dir/log" >&2; return 1
}

stop() {
  pkill -x slurmd || true; pkill -x slurmctld || true
  for _ in $(seq 50); do pgrep -x 'slurmd|slurmctld' >/dev/null || return 0; sleep 0.2; done
}

"${1:-start}"
