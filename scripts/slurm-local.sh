#!/usr/bin/env bash
# slurm-local.sh up|down|status — a real single-node Slurm on this machine, for the Slurm E2E
# test (host/e2e/slurm_test.go) and for trying `launch.launcher = "slurm"` by hand.
#
#   up      write a minimal slurm.conf (this machine's name and CPUs), create a munge key if
#           there is none, start munged, slurmctld and slurmd as root, and wait until the node
#           is idle. Idempotent: a cluster already up is left as it is.
#   down    stop the daemons this script started and remove its state directory.
#   status  exit 0 when the node answers and is idle or allocated.
#
# Needs root and Debian's slurm-wlm and munge packages (.ci/run installs them). Everything lives
# under $SLURM_LOCAL_DIR (default /var/tmp/lemctl-slurm); slurm.conf goes to /etc/slurm, where the
# Slurm commands look for it.
set -euo pipefail

dir=${SLURM_LOCAL_DIR:-/var/tmp/lemctl-slurm}
conf=/etc/slurm/slurm.conf
host=$(hostname -s)
cpus=$(nproc --all)
timeout_s=${SLURM_LOCAL_TIMEOUT_S:-120}

die() { echo "slurm-local: $*" >&2; exit 1; }

node_state() { sinfo -h -n "$host" -o '%T' 2>/dev/null | head -n1; }

up() {
  [ "$(id -u)" = 0 ] || die "must run as root (munged, slurmctld and slurmd run as root here)"
  for c in munged slurmctld slurmd sinfo scontrol; do
    command -v "$c" >/dev/null || die "$c not found: apt-get install slurm-wlm munge"
  done
  case "$(node_state)" in idle|allocated|mixed) echo "slurm-local: already up ($host)"; return 0 ;; esac
  mkdir -p "$dir"/{ctld,d,log} /etc/slurm /run/munge /var/log/munge /var/lib/munge
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key
  # munged as root: Debian's key is owned by the munge user; root may read it with --force.
  if ! pgrep -x munged >/dev/null; then
    munged --force --num-threads=2 --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log"
  fi
  cat >"$conf" <<EOF
# Written by lemctl scripts/slurm-local.sh: a single-node cluster for tests.
ClusterName=lemctl-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/d
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=${SLURM_LOCAL_CTLD_PORT:-6817}
SlurmdPort=${SLURM_LOCAL_D_PORT:-6818}
KillWait=5
InactiveLimit=0
MinJobAge=30
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  pgrep -f "slurmctld.*$conf" >/dev/null || slurmctld -f "$conf" -c
  pgrep -f "slurmd.*$conf" >/dev/null || slurmd -f "$conf" -c
  for _ in $(seq "$timeout_s"); do
    case "$(node_state)" in
      idle) echo "slurm-local: up ($host, $cpus CPUs, config $conf)"; return 0 ;;
      down*|drain*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 1
  done
  echo "slurm-local: the node is not idle after ${timeout_s}s (state: $(node_state)); logs:" >&2
  tail -n 20 "$dir"/log/*.log >&2 || true
  exit 1
}

stop_pid() { # pidfile name
  [ -s "$1" ] || return 0
  local pid; pid=$(cat "$1")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f "$1"
}

down() {
  stop_pid "$dir/slurmd.pid"
  stop_pid "$dir/slurmctld.pid"
  stop_pid "$dir/munged.pid"
  rm -rf "$dir"
  echo "slurm-local: down"
}

status() {
  case "$(node_state)" in idle|allocated|mixed) echo "slurm-local: $host $(node_state)"; return 0 ;; esac
  echo "slurm-local: not up" >&2
  return 1
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
