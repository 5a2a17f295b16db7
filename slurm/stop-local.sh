#!/usr/bin/env bash
# Stop the single-node Slurm started by slurm/start-local.sh (slurmd, slurmctld, slurmdbd,
# mariadbd, munged). Job state survives in /var/spool/slurmctld and the accounting database in
# /var/lib/mysql; start-local.sh brings both back.
set -uo pipefail
stop_pid() {
  local pidfile="$1"
  if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    local pid
    pid="$(cat "$pidfile")"
    kill "$pid"
    # the daemon removes its pid file on exit; a zombie left by a non-reaping parent is gone too
    for _ in $(seq 50); do [[ -f "$pidfile" ]] || break; kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
}
stop_pid /run/slurmd.pid
stop_pid /run/slurmctld.pid
stop_pid /run/slurmdbd.pid
stop_pid /run/mysqld/mysqld.pid
stop_pid /run/munge/munged.pid
echo "slurm-local: stopped"
