#!/usr/bin/env bash
# Start a single-node Slurm (munge + slurmctld + slurmd) on localhost for tests and demos.
#
# Idempotent: installs the Debian packages when missing, writes /etc/slurm/slurm.conf, and
# (re)starts only what is not running or whose configuration changed. Runs as root, without
# systemd. Accounting is real: MariaDB + slurmdbd (database `slurm_acct_db`, cluster `dmhpc`,
# account `matsci-dm` with a CPU allocation of DM_SLURM_ALLOCATION_MIN core-minutes, user root
# in it), so `sacct`, `sshare` and `sacctmgr` answer as on a site; finished jobs also stay in
# `squeue -t all` for a day and in the job-completion log.
# Memory is not enforced: the container's cgroup controllers are read-only (ProctrackType
# linuxproc, TaskPlugin none); `sacct` still reports each step's MaxRSS (jobacct_gather/linux).
#
# Environment: DM_SLURM_CPUS (CPUs advertised, default 16: more than the machine has, so that
# throughput tests of many tiny tasks are not bound by 2 real cores); DM_SLURM_ALLOCATION_MIN
# (GrpTRESMins cpu of account matsci-dm, default 1200000 = 20,000 core-hours).
set -euo pipefail

CPUS="${DM_SLURM_CPUS:-16}"
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
MUNGE_SOCKET_DIR=/run/munge
MUNGE_SOCKET="$MUNGE_SOCKET_DIR/munge.socket.2"
LOG_DIR=/var/log/slurm
ALLOCATION_MIN="${DM_SLURM_ALLOCATION_MIN:-1200000}"
ACCOUNT=matsci-dm
DBD_CONF="$CONF_DIR/slurmdbd.conf"
MYSQL_SOCKET=/run/mysqld/mysqld.sock

log() { printf 'slurm-local: %s\n' "$*"; }

# 1. packages ------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
   || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
  log "installing slurm-wlm, munge, slurmdbd and mariadb-server (about a minute)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge slurmdbd mariadb-server >/dev/null
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

# 3. accounting: MariaDB, then slurmdbd ------------------------------------------------------
running() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop_pid() {
  if running "$1"; then kill "$(cat "$1")"; for _ in $(seq 100); do running "$1" || break; sleep 0.1; done; fi
}
mkdir -p /run/mysqld "$CONF_DIR" "$LOG_DIR"
if [[ ! -d /var/lib/mysql/mysql ]]; then
  log "initialising the MariaDB data folder"
  mariadb-install-db --user=root --datadir=/var/lib/mysql >/dev/null
fi
if ! mariadb-admin --socket="$MYSQL_SOCKET" ping >/dev/null 2>&1; then
  log "starting mariadbd"
  # setsid + nohup: the server outlives this script (no systemd here).
  setsid nohup mariadbd --user=root --datadir=/var/lib/mysql --socket="$MYSQL_SOCKET" \
    --pid-file=/run/mysqld/mysqld.pid --skip-networking=0 --bind-address=127.0.0.1 \
    --innodb-buffer-pool-size=64M >"$LOG_DIR/mariadb.log" 2>&1 < /dev/null &
  for _ in $(seq 200); do mariadb-admin --socket="$MYSQL_SOCKET" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
# slurmdbd logs in as root over the socket (MariaDB's unix_socket authentication: no password
# to keep anywhere); the database is created once.
mariadb --socket="$MYSQL_SOCKET" -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db"
NEW_DBD="$(cat <<CONF
# Written by dm-hpc slurm/start-local.sh: accounting daemon of the local test cluster.
AuthType=auth/munge
AuthInfo=socket=${MUNGE_SOCKET}
DbdHost=localhost
DbdPort=6819
SlurmUser=root
PidFile=/run/slurmdbd.pid
LogFile=${LOG_DIR}/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StoragePort=0
StorageLoc=slurm_acct_db
StorageUser=root
CONF
)"
DBD_CHANGED=0
if [[ ! -f "$DBD_CONF" ]] || [[ "$(cat "$DBD_CONF")" != "$NEW_DBD" ]]; then
  printf '%s\n' "$NEW_DBD" > "$DBD_CONF"
  DBD_CHANGED=1
fi
chmod 0600 "$DBD_CONF"   # slurmdbd refuses a readable configuration
if [[ $DBD_CHANGED == 1 ]]; then stop_pid /run/slurmdbd.pid; fi
if ! running /run/slurmdbd.pid; then
  log "starting slurmdbd"
  slurmdbd
fi
# 4. slurm.conf ----------------------------------------------------------------------------
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
# Finished jobs stay visible to squeue/scontrol for a day (and in sacct for good).
MinJobAge=86400
MaxJobCount=200000
MaxArraySize=100001
JobCompType=jobcomp/filetxt
JobCompLoc=${LOG_DIR}/jobcomp.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePass=${MUNGE_SOCKET}
# Each step's MaxRSS and CPU time reach sacct (sampled every 5 s); nothing is enforced.
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=5
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

# Accounting records: cluster, account (with its CPU allocation) and user, registered before
# slurmctld starts (sacctmgr reads slurm.conf to find slurmdbd).
for _ in $(seq 100); do sacctmgr -n show cluster >/dev/null 2>&1 && break; sleep 0.1; done
sacctmgr -n -P show cluster format=cluster 2>/dev/null | grep -qx dmhpc \
  || sacctmgr -i add cluster dmhpc >/dev/null
sacctmgr -n -P show account "$ACCOUNT" format=account 2>/dev/null | grep -qx "$ACCOUNT" \
  || sacctmgr -i add account "$ACCOUNT" cluster=dmhpc description=dm-hpc-tests organization=dm-hpc >/dev/null
sacctmgr -i modify account "$ACCOUNT" set GrpTRESMins=cpu="$ALLOCATION_MIN" >/dev/null 2>&1 || true
sacctmgr -n -P show assoc account="$ACCOUNT" user=root format=user 2>/dev/null | grep -qx root \
  || sacctmgr -i add user root account="$ACCOUNT" cluster=dmhpc >/dev/null

# 5. daemons -------------------------------------------------------------------------------
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
