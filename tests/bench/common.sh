# common.sh -- helpers for the shoal benchmark (sourced by tests/bench/run.sh):
# shellcheck shell=bash disable=SC2034,SC2015
# a temporary directory /tmp/shoal-bench.* removed on exit, background processes
# remembered and ended by their PID (with their descendants), bounded waits,
# per-process CPU and memory figures from /proc, medians, and the summary file.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
SHOAL_BIN="$BUILD/shoal"
TRACKER_BIN="$BUILD/shoal-tracker"
BENCH_DIR="$BUILD/bench"                 # results (under the build tree: not committed)
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_SIZE_MIB=${BENCH_SIZE_MIB:-1024}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-120}      # seconds a transfer may take before it counts as failed
BENCH_CLIENTS=${BENCH_CLIENTS:-"shoal libtorrent aria2"}
BENCH_SECTIONS=${BENCH_SECTIONS:-"env transfer cross swarm hash daemon"}
BENCH_SWARM_MIB=${BENCH_SWARM_MIB:-256}  # swarm: file size
BENCH_SWARM_LEECHERS=${BENCH_SWARM_LEECHERS:-8}
TIME_BIN=/usr/bin/time
CLK_TCK=$(getconf CLK_TCK)

TMP=$(mktemp -d /tmp/shoal-bench.XXXXXX)
PIDS=()

# All descendants of a PID (children first found, deepest last), from /proc via ps.
descendants() {  # pid
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    echo "$c"
    descendants "$c"
  done
}

# Ends a process and everything it started: SIGTERM, up to 5 s, then SIGKILL.
kill_tree() {  # pid
  local pid=$1 all p i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
  all="$pid $(descendants "$pid")"
  for p in $all; do kill -TERM "$p" 2>/dev/null; done
  for i in $(seq 50); do
    local alive=0
    for p in $all; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in $all; do kill -KILL "$p" 2>/dev/null; done
  wait "$pid" 2>/dev/null
  return 0
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill_tree "$pid"; done
  PIDS=()
  [ "${KEEP_TMP:-0}" = 1 ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM HUP

forget_pid() {  # pid: drop it from PIDS once it has been ended
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# Starts a command in the background, output in $TMP/NAME.out / NAME.err; the
# PID is the command's own (bash execs it), in LAST_PID, remembered for cleanup.
start_bg() {  # name, command...
  local name=$1; shift
  : >"$TMP/$name.out"; : >"$TMP/$name.err"   # there before anyone polls them
  "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

stop_bg() {  # pid
  kill_tree "$1"
  forget_pid "$1"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Polls a command every 0.1 s for at most SECS seconds; fails if PID (when not
# empty) dies meanwhile.
wait_for() {  # secs, pid-or-empty, description, command...
  local secs=$1 pid=$2 what=$3; shift 3
  local end=$((SECONDS + secs))
  while [ $SECONDS -lt $end ]; do
    "$@" && return 0
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      echo "  ! process $pid ended while waiting for: $what" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "  ! timed out after ${secs}s waiting for: $what" >&2
  return 1
}

# User+system CPU seconds of a live process (all its threads), from /proc/PID/stat.
proc_cpu() {  # pid
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo "NA"; return; }
  # fields after the ")" that closes the command name: utime is the 12th, stime the 13th
  echo "${stat##*) }" | awk -v t="$CLK_TCK" '{ printf "%.2f", ($12 + $13) / t }'
}

# Peak resident set size of a live process in KiB (VmHWM).
proc_hwm_kib() {  # pid
  awk '/^VmHWM:/ { print $2; f = 1 } END { if (!f) print "NA" }' "/proc/$1/status" 2>/dev/null || echo NA
}

# Median of numbers on stdin ("NA" lines are ignored; prints NA if none).
median() {
  grep -v '^NA$' | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "NA"; exit }
    if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.3f\n", m }'
}

# Arithmetic with NA propagation: calc EXPR-with-a-and-b A B
calc() {  # awk-expression, a, b
  if [ "$2" = NA ] || [ "${3:-0}" = NA ]; then echo NA; return; fi
  awk -v a="$2" -v b="${3:-0}" "BEGIN { printf \"%.2f\", $1 }"
}

# The Python interpreter that can import libtorrent (the Debian package is built
# for /usr/bin/python3, which may not be the python3 first on PATH).
find_lt_python() {
  local py
  for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import libtorrent' 2>/dev/null; then
      command -v "$py"
      return 0
    fi
  done
  return 1
}

# Summary file: "key=value" lines (machine-readable), written at the end.
SUMMARY=()
summary() {  # key, value
  SUMMARY+=("$1=$2")
}

hr() { printf '%s\n' "------------------------------------------------------------------------------------------"; }
