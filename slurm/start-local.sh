#!/usr/bin/env bash
# Start a single-node Slurm (munge + slurmctld + slurmd) on localhost for tests and demos.
#
# Idempotent: installs the Debian packages when missing, writes /etc/slurm/slurm.conf, and
# (re)starts only what is not running or whose configuration changed. Runs as root, without
# systemd. No accounting database: final job states come from `squeue -t all` (MinJobAge keeps
# finished jobs for a day) and from the job-completion log; this saves the ~4 s and the
# MariaDB/slurmdbd moving parts that accounting would add to every start. dm_hpc's SlurmRunner
# uses `sacct` automatically on sites where accounting is on.
#
# Environment: DM_SLURM_CPUS (CPUs advertised, default 16: more than the machine has, so that
# throughput tests of many tiny tasks are not bound by 2 real cores).
set -euo pipefail

CPUS="${DM_SLURM_CPUS:-16}"
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
MUNGE_SOCKET_DIR=/run/munge
MUNGE_SOCKET="$MUNGE_SOCKET_DIR/munge.socket.2"
LOG_DIR=/var/log/slurm

log() { printf 'slurm-local: %s\n' "$*"; }

# 1. packages ------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  log "installing slurm-wlm and munge (about a minute)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# 2. munge ---------------------------------------------------------------------------------
mkdir -p /etc/munge /var/lib/munge /var/log/munge "$MUNGE_SOCKET_DIR"
chmod 0755 "$MUNGE_SOCKET_DIR"    # "Socket is inaccessible" otherwise
if [[ ! -s /etc/munge/munge.key ]]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown root:root /etc/munge/munge.key /etc/munge /var/lib/munge /var/log/munge "$MUNGE_SOCKET_DIR"
chmod 0400 /etc/munge/munge.key
if ! munge -n -S "$MUNGE_SOCKET" >/dev/null 2>&1; then
  log "starting munged"
  munged --force --socket="$MUNGE_SOCKET"
  for _ in $(seq 50); do munge -n -S "$MUNGE_SOCKET" >/dev/null 2>&1 && break; sleep 0.1; done
fi

# 3. slurm.conf ----------------------------------------------------------------------------
HOST="$(hostname -s)"
MEM="$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1)"
MEM="${MEM:-1000}"
mkdir -p "$CONF_DIR" /var/spool/slurmctld /var/spool/slurmd "$LOG_DIR"
[[ -f "$CONF_DIR/plugstack.conf" ]] || : > "$CONF_DIR/plugstack.conf"
NEW_CONF="$(cat <<CONF
# Written by dm-hpc slurm/start-local.sh: single-node test cluster on localhost.
ClusterName=dmhpc
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=${MUNGE_SOCKET}
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
PlugStackConfig=${CONF_DIR}/plugstack.conf
MpiDefault=pmix
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Jobs start 0.1-0.9 s after submit instead of 2-3 s.
SchedulerParameters=batch_sched_delay=0
# Advertise more CPUs than the machine has (throughput tests of tiny tasks).
SlurmdParameters=config_overrides
# Finished jobs stay visible to squeue/scontrol for a day (no accounting database here).
MinJobAge=86400
MaxJobCount=200000
MaxArraySize=100001
JobCompType=jobcomp/filetxt
JobCompLoc=${LOG_DIR}/jobcomp.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=1
KillWait=5
InactiveLimit=0
SlurmdTimeout=300
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
)"
CHANGED=0
if [[ ! -f "$CONF" ]] || [[ "$(cat "$CONF")" != "$NEW_CONF" ]]; then
  printf '%s\n' "$NEW_CONF" > "$CONF"
  CHANGED=1
fi

# 4. daemons -------------------------------------------------------------------------------
running() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop_pid() {
  if running "$1"; then kill "$(cat "$1")"; for _ in $(seq 50); do running "$1" || break; sleep 0.1; done; fi
}
if [[ $CHANGED == 1 ]]; then
  log "configuration changed: (re)starting daemons"
  stop_pid /run/slurmd.pid
  stop_pid /run/slurmctld.pid
fi
if ! running /run/slurmctld.pid; then
  log "starting slurmctld"
  slurmctld
fi
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
if ! running /run/slurmd.pid; then
  log "starting slurmd"
  slurmd
fi
# Wait until the node accepts work; resume it if a test left it down or drained.
for _ in $(seq 100); do
  STATE="$(sinfo -h -N -n "$HOST" -o %T 2>/dev/null || true)"
  case "$STATE" in
    idle*|mixed*|allocated*|completing*) break ;;
    down*|drain*|fail*) scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
  esac
  sleep 0.1
done
log "up: node $HOST ($(sinfo -h -N -n "$HOST" -o '%T, %c CPUs'))"
