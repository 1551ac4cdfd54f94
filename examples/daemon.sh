#!/bin/bash
# daemon.sh -- starts a shoal daemon, adds torrents to it with `shoal remote`, shows the list until all seed.
#
#   examples/daemon.sh [-c CONFIG_DIR] [-d DOWNLOAD_DIR] [-r RPC_PORT] [-t TIMEOUT_S] FILE.torrent|MAGNET...
#
# Without -c / -d the daemon runs on temporary folders, removed at the end.
# The daemon is stopped (SIGTERM, then SIGKILL after 30 s) when the script
# ends, however it ends.  Exit status: 0 when every torrent seeds (or is
# complete and stopped), 1 on an error or the timeout (default 600 s).
# SHOAL=path/to/shoal picks the binary (default build/shoal, relative to
# the repository root).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHOAL=${SHOAL:-build/shoal}
case $SHOAL in
  /*) ;;
  */*) SHOAL=$ROOT/$SHOAL ;;
esac

usage() {
  echo "usage: $0 [-c CONFIG_DIR] [-d DOWNLOAD_DIR] [-r RPC_PORT] [-t TIMEOUT_S] FILE.torrent|MAGNET..." >&2
  exit 2
}

CONF=
DL=
RPC_PORT=
TIMEOUT=600
while getopts 'c:d:r:t:h' opt; do
  case $opt in
    c) CONF=$OPTARG ;;
    d) DL=$OPTARG ;;
    r) RPC_PORT=$OPTARG ;;
    t) TIMEOUT=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[[ $# -ge 1 ]] || usage
[[ $TIMEOUT =~ ^[0-9]+$ ]] || usage
[[ -z $RPC_PORT || $RPC_PORT =~ ^[0-9]+$ ]] || usage
[[ -x $SHOAL ]] || command -v "$SHOAL" >/dev/null || { echo "no shoal binary at $SHOAL (run make, or set SHOAL)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/shoal-daemon.XXXXXX")
DAEMON_PID=
cleanup() {
  local status=$?
  if [[ -n $DAEMON_PID ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    echo "== stopping the daemon (pid $DAEMON_PID)"
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 150; i++)); do
      kill -0 "$DAEMON_PID" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$DAEMON_PID" 2>/dev/null; then
      echo "the daemon did not stop in 30 s: killing it" >&2
      kill -KILL "$DAEMON_PID" 2>/dev/null || true
    fi
    wait "$DAEMON_PID" 2>/dev/null || true
  fi
  if ((status != 0)) && [[ -s $WORK/daemon.log ]]; then
    echo "== the daemon's log (last lines)" >&2
    tail -n 20 "$WORK/daemon.log" >&2
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[[ -n $CONF ]] || CONF=$WORK/config
[[ -n $DL ]] || DL=$WORK/downloads
mkdir -p "$CONF" "$DL"
CONF=$(cd "$CONF" && pwd)
DL=$(cd "$DL" && pwd)

# A control port nobody listens on (the default 6880 may be taken by a
# daemon already running).
port_free() { ! (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [[ -z $RPC_PORT ]]; then
  for _ in $(seq 50); do
    RPC_PORT=$((20000 + RANDOM % 40000))
    port_free "$RPC_PORT" && break
  done
fi

echo "== starting the daemon: config $CONF, downloads $DL, control port $RPC_PORT"
# rpc-endpoint is rewritten at each start: wait for one newer than this mark.
touch -d "@$(($(date +%s) - 1))" "$WORK/mark"
"$SHOAL" daemon --config-dir "$CONF" --download-dir "$DL" --rpc-port "$RPC_PORT" --port 0 \
  --foreground --log-level info 2>"$WORK/daemon.log" &
DAEMON_PID=$!

for ((i = 0; i < 100; i++)); do   # 20 s at most
  [[ -s $CONF/rpc-endpoint && $CONF/rpc-endpoint -nt $WORK/mark ]] && break
  kill -0 "$DAEMON_PID" 2>/dev/null || { echo "the daemon exited at start" >&2; exit 1; }
  sleep 0.2
done
[[ -s $CONF/rpc-endpoint && $CONF/rpc-endpoint -nt $WORK/mark ]] || { echo "no rpc-endpoint after 20 s" >&2; exit 1; }
read -r RPC_HOST RPC_PORT_REAL <"$CONF/rpc-endpoint"
echo "== control API on $RPC_HOST port $RPC_PORT_REAL (pid $DAEMON_PID)"

remote() { "$SHOAL" remote --config-dir "$CONF" "$@"; }

for t in "$@"; do
  echo "== adding $t"
  # (an error, "already added" included, is shown and the rest go on)
  remote add "$t" || echo "== not added: $t" >&2
done

# The torrents' states, from the JSON form of the list.
states() {
  remote --json list | grep -o '"state" *: *"[a-z]*"' | sed 's/.*"\([a-z]*\)"$/\1/'
}

deadline=$((SECONDS + TIMEOUT))
while :; do
  echo "== $(date +%T)"
  mapfile -t st < <(states || true)
  remote list || true
  done_n=0 error_n=0
  for s in "${st[@]}"; do
    case $s in
      seeding | stopped) done_n=$((done_n + 1)) ;;
      error) error_n=$((error_n + 1)) ;;
    esac
  done
  if ((error_n > 0)); then
    echo "$error_n torrent(s) stopped on an error" >&2
    exit 1
  fi
  if ((${#st[@]} > 0 && done_n == ${#st[@]})); then
    echo "== all ${#st[@]} torrent(s) complete"
    exit 0
  fi
  if ((SECONDS >= deadline)); then
    echo "timeout: $done_n of ${#st[@]} torrent(s) complete after ${TIMEOUT} s" >&2
    exit 1
  fi
  kill -0 "$DAEMON_PID" 2>/dev/null || { echo "the daemon exited" >&2; exit 1; }
  sleep 2
done
