# lib.sh -- helpers for process-level tests: real shoal/shoal-tracker processes on
# loopback, bounded waits, every started process ended by its PID, a closing
# "N passed, N failed" line.  Source it from a test script.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
SHOAL_BIN="$BUILD/shoal"
TRACKER_BIN="$BUILD/shoal-tracker"
SHOAL_WRAP=${SHOAL_WRAP:-}         # e.g. "valgrind --error-exitcode=99" (run-all.sh sets it)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=98}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=97}
TMP=$(mktemp -d /tmp/shoal-test.XXXXXX)
PIDS=()
PASS=0
FAIL=0

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null
  done
  [ "${KEEP_TMP:-0}" = 1 ] || rm -rf "$TMP"
}
trap cleanup EXIT

pass() { PASS=$((PASS + 1)); echo "ok - $*"; }
fail() { FAIL=$((FAIL + 1)); echo "not ok - $*"; }
check() {  # description, command...
  local d=$1; shift
  if "$@"; then pass "$d"; else fail "$d"; fi
}
finish() {
  echo "$PASS passed, $FAIL failed"
  [ "$FAIL" -eq 0 ]
  exit $?
}

# A TCP port nobody listens on now (asked from the kernel).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Starts a command in the background with its output in $TMP/NAME.out;
# sets LAST_PID and remembers it for cleanup.
start() {  # name, command...
  local name=$1; shift
  "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
  eval "PID_$name=$LAST_PID"
}

# shoal with the optional wrapper (valgrind, ...).
shoal() { $SHOAL_WRAP "$SHOAL_BIN" "$@"; }
start_shoal() {  # name, args...
  local name=$1; shift
  start "$name" $SHOAL_WRAP "$SHOAL_BIN" "$@"
}
start_tracker() {  # name, port
  start "$1" "$TRACKER_BIN" --bind 127.0.0.1 --port "$2" --interval 2
  wait_for 20 "tracker $1 listening" port_open "$2"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Polls a command every 0.2 s for at most SECONDS seconds.
wait_for() {  # seconds, description, command...
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  while [ $SECONDS -lt $end ]; do
    "$@" && return 0
    sleep 0.2
  done
  echo "timed out after ${secs}s waiting for: $what"
  return 1
}

# Waits for a PID to exit (bounded); its exit code in WAIT_RC (124 on time-out).
wait_exit() {  # seconds, pid
  local end=$((SECONDS + $1))
  while kill -0 "$2" 2>/dev/null; do
    if [ $SECONDS -ge $end ]; then WAIT_RC=124; return 1; fi
    sleep 0.2
  done
  wait "$2"
  WAIT_RC=$?
  return 0
}

# The value of "key: value" on a process's stdout.
out_value() {  # name, key
  sed -n "s/^$2: //p" "$TMP/$1.out" | head -n 1
}

# Waits until a started shoal printed its port, and echoes it.
shoal_port() {  # name
  wait_for 60 "$1 to print its port" grep -qs '^port: ' "$TMP/$1.out" && out_value "$1" port
}

# Random file of N bytes (reproducible per seed).
make_file() {  # path, bytes, seed
  python3 - "$1" "$2" "${3:-1}" <<'PY'
import random, sys
path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
with open(path, "wb") as f:
    left = n
    while left:
        k = min(left, 1 << 20)
        f.write(r.randbytes(k))
        left -= k
PY
}

same_tree() { diff -r "$1" "$2" >/dev/null; }

# Runs a Python check script with args: the script gets ok(cond, what), which
# prints an "ok - "/"not ok - " line, and bdecode(bytes), a strict bencode
# decoder (sorted keys, whole strings, no trailing bytes; raises otherwise),
# defined ahead of its own code.  Its ok/not ok lines count here, and a crash
# or time-out of the script counts as one more failure.
run_py_checks() {  # name, script file, args...
  local name=$1 script=$2 line rc
  shift 2
  cat - "$script" >"$TMP/py-$name.py" <<'PY'
def ok(cond, what):
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    return cond

def bdecode(b):
    def dec(i):
        c = b[i:i+1]
        if c == b"i":
            j = b.index(b"e", i)
            return int(b[i+1:j]), j + 1
        if c == b"l":
            i += 1; out = []
            while b[i:i+1] != b"e":
                v, i = dec(i); out.append(v)
            return out, i + 1
        if c == b"d":
            i += 1; out = {}; last = None
            while b[i:i+1] != b"e":
                k, i = dec(i)
                assert isinstance(k, bytes) and (last is None or k > last), "dict keys unsorted"
                last = k
                v, i = dec(i); out[k] = v
            return out, i + 1
        j = b.index(b":", i)
        n = int(b[i:j])
        if j + 1 + n > len(b):
            raise ValueError("short string")
        return b[j+1:j+1+n], j + 1 + n
    v, i = dec(0)
    if i != len(b):
        raise ValueError("trailing data")
    return v

PY
  timeout 120 python3 "$TMP/py-$name.py" "$@" >"$TMP/py-$name.out" 2>&1
  rc=$?
  while IFS= read -r line; do
    echo "$line"
    case "$line" in
      "ok - "*) PASS=$((PASS + 1)) ;;
      "not ok - "*) FAIL=$((FAIL + 1)) ;;
    esac
  done <"$TMP/py-$name.out"
  check "python checks ($name) ran to the end (rc $rc)" test "$rc" -eq 0
}
