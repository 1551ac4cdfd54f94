#!/bin/bash
# shellcheck disable=SC2086,SC2015  # word splitting of "N M" pairs and A && B || C are intended
# run.sh -- shoal's benchmark (`make bench`): loopback transfer of one random file
# from 1 seeder to 1 leecher for shoal, libtorrent and aria2 and across shoal and
# libtorrent (wall time, MB/s, CPU and peak memory of both sides), a swarm of 1
# seeder + 8 leechers for shoal and libtorrent (time until all are done, the
# seeder's upload / file size), piece hashing of `shoal create` against mktorrent
# and the OpenSSL SHA-1 limit, and the environment.  Figures, not pass/fail: it
# exits 1 only when a measurement could not be made.
#   BENCH_RUNS=3 BENCH_SIZE_MIB=1024 BENCH_TIMEOUT=120 BUILD=build tests/bench/run.sh
#   BENCH_CLIENTS="shoal libtorrent aria2"  BENCH_SECTIONS="env transfer cross swarm hash daemon"
#   BENCH_SWARM_MIB=256 BENCH_SWARM_LEECHERS=8
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/common.sh
source "$HERE/common.sh"

mkdir -p "$BENCH_DIR"
REPORT="$BENCH_DIR/report-latest.txt"
RUNS_TSV="$BENCH_DIR/runs-latest.tsv"
RESULTS="$BENCH_DIR/results-latest.txt"
: >"$REPORT"
printf 'client\trun\trc\tverified\twall_s\tleecher_cpu_s\tleecher_peak_rss_kib\tseeder_cpu_s\tseeder_peak_rss_kib\n' >"$RUNS_TSV"
rm -f "$BENCH_DIR/swarm-latest.tsv"    # written again if the swarm section runs
FAILURES=()

out() { printf '%s\n' "$*" | tee -a "$REPORT"; }
note() { printf '%s\n' "$*" >&2; }          # progress: on the terminal only
has_section() { case " $BENCH_SECTIONS " in *" $1 "*) return 0 ;; esac; return 1; }
has_client() { case " $BENCH_CLIENTS " in *" $1 "*) return 0 ;; esac; return 1; }

case "$BENCH_RUNS" in ''|*[!0-9]*|0) echo "BENCH_RUNS must be a positive integer"; exit 2 ;; esac
case "$BENCH_SIZE_MIB" in ''|*[!0-9]*|0) echo "BENCH_SIZE_MIB must be a positive integer"; exit 2 ;; esac
case "$BENCH_SWARM_MIB" in ''|*[!0-9]*|0) echo "BENCH_SWARM_MIB must be a positive integer"; exit 2 ;; esac
case "$BENCH_SWARM_LEECHERS" in ''|*[!0-9]*|0|1) echo "BENCH_SWARM_LEECHERS must be an integer >= 2"; exit 2 ;; esac
case "$BENCH_TIMEOUT" in ''|*[!0-9]*|0) echo "BENCH_TIMEOUT must be a positive integer"; exit 2 ;; esac
for b in "$SHOAL_BIN" "$TRACKER_BIN"; do
  [ -x "$b" ] || { echo "missing $b: build it first (make -j2 all)"; exit 2; }
done
[ -x "$TIME_BIN" ] || { echo "missing $TIME_BIN: tests/deps.sh bench"; exit 2; }

SIZE_BYTES=$((BENCH_SIZE_MIB * 1024 * 1024))
NPROC=$(nproc)
LT_PY=$(find_lt_python) || LT_PY=""
ARIA2=$(command -v aria2c || true)
MKTORRENT=$(command -v mktorrent || true)
HYPERFINE=$(command -v hyperfine || true)

version_of() {  # what, command producing one line
  local what=$1; shift
  local v
  v=$("$@" 2>&1 | head -n 1) || true
  printf '  %-14s %s\n' "$what" "${v:-not installed}"
}

# ---------------------------------------------------------------- environment
section_env() {
  local cpu kernel os mem
  cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  kernel=$(uname -srm)
  os=$( . /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-unknown}")
  mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
  out "== Environment"
  out "  nproc          $NPROC"
  out "  CPU            $cpu"
  out "  kernel         $kernel"
  out "  OS             $os"
  out "  memory         $mem"
  out "  /tmp on        $(df -PT "$TMP" | awk 'NR == 2 { print $2 " (" $1 ")" }')"
  out "  load           $(uptime | sed 's/^ *//')"
  out "$(version_of shoal "$SHOAL_BIN" --version)"
  if [ -n "$ARIA2" ]; then out "$(version_of aria2c aria2c --version)"; else out "  aria2c         not installed"; fi
  if [ -n "$LT_PY" ]; then
    out "$(version_of libtorrent "$LT_PY" -c 'import libtorrent; print("libtorrent", libtorrent.__version__, "(python3-libtorrent, '"$LT_PY"')")')"
  else
    out "  libtorrent     not installed (python3-libtorrent)"
  fi
  if [ -n "$MKTORRENT" ]; then out "$(version_of mktorrent sh -c 'mktorrent -h | head -n 1')"; else out "  mktorrent      not installed"; fi
  out "$(version_of openssl openssl version)"
  if [ -n "$HYPERFINE" ]; then out "$(version_of hyperfine hyperfine --version)"; else out "  hyperfine      not installed"; fi
  out "  settings       BENCH_SIZE_MIB=$BENCH_SIZE_MIB BENCH_RUNS=$BENCH_RUNS BENCH_TIMEOUT=$BENCH_TIMEOUT"
  out "                 BENCH_SWARM_MIB=$BENCH_SWARM_MIB BENCH_SWARM_LEECHERS=$BENCH_SWARM_LEECHERS BENCH_SECTIONS=\"$BENCH_SECTIONS\""
  out ""
  summary env.nproc "$NPROC"
  summary env.cpu "$cpu"
  summary env.kernel "$kernel"
  summary env.loadavg "$(cut -d' ' -f1-3 /proc/loadavg)"
  summary env.shoal "$("$SHOAL_BIN" --version 2>&1 | head -n 1)"
  [ -n "$ARIA2" ] && summary env.aria2 "$(aria2c --version | head -n 1)"
  [ -n "$LT_PY" ] && summary env.libtorrent "$("$LT_PY" -c 'import libtorrent; print(libtorrent.__version__)')"
  [ -n "$MKTORRENT" ] && summary env.mktorrent "$(mktorrent -h 2>&1 | head -n 1)"
  summary env.openssl "$(openssl version)"
}

# ---------------------------------------------------------------- test data
DATA_DIR="$TMP/seed"
DATA="$DATA_DIR/payload.bin"
TORRENT="$TMP/payload.torrent"
TPORT=$(free_port)
ANNOUNCE="http://127.0.0.1:$TPORT/announce"

# Free space for the sections asked for: the transfer file and one copy, the
# swarm file and one copy per leecher, 256 MiB to spare.
check_space() {
  local need=256 avail
  if has_section transfer || has_section cross || has_section hash; then need=$((need + BENCH_SIZE_MIB * 2)); fi
  has_section swarm && need=$((need + BENCH_SWARM_MIB * (BENCH_SWARM_LEECHERS + 1)))
  avail=$(df -Pm "$TMP" | awk 'NR == 2 { print $4 }')
  if [ "$avail" -lt "$need" ]; then
    echo "not enough space in $TMP: $avail MiB free, $need MiB needed"
    exit 2
  fi
}

make_data() {
  mkdir -p "$DATA_DIR"
  note "-- writing $BENCH_SIZE_MIB MiB of random data to $DATA"
  head -c "$SIZE_BYTES" /dev/urandom >"$DATA" || { echo "cannot write $DATA"; exit 2; }
  note "-- shoal create (1 MiB pieces, announce $ANNOUNCE)"
  if ! "$SHOAL_BIN" create "$DATA" -o "$TORRENT" --piece-size 1M --announce "$ANNOUNCE" -q >/dev/null; then
    echo "shoal create failed: no torrent, no benchmark"
    exit 1
  fi
  cat "$DATA" >/dev/null   # the seeders read it from the page cache
}

# ---------------------------------------------------------------- transfer
ARIA2_COMMON=(--no-conf=true --enable-dht=false --enable-dht6=false --bt-enable-lpd=false
  --enable-peer-exchange=false --disable-ipv6=true --interface=127.0.0.1 --bt-external-ip=127.0.0.1
  --summary-interval=0 --console-log-level=warn --file-allocation=none --allow-overwrite=true
  --auto-file-renaming=false --follow-torrent=false --stop-with-process=$$)

tracker_has_seeder() {
  curl -s --max-time 2 "http://127.0.0.1:$TPORT/scrape" 2>/dev/null | grep -aq '8:completei[1-9]'
}
seeder_ready() {  # client
  case $1 in
    shoal) grep -q 'pieces already here' "$TMP/seeder.err" ;;
    libtorrent) grep -qx ready "$TMP/seeder.out" ;;
    aria2) port_open "$SEED_PORT" && tracker_has_seeder ;;
  esac
}

# Starts the seeder of CLIENT (SEED_PID, SEED_PORT) and waits until it is ready;
# by default it shares the transfer file, or DATA_FILE of TORRENT_FILE.
start_seeder() {  # client [torrent data-file]
  local torrent=${2:-$TORRENT} data=${3:-$DATA}
  SEED_PORT=$(free_port)
  case $1 in
    shoal)
      # -v: it logs "N of N pieces already here" when its check of the data is done
      start_bg seeder "$SHOAL_BIN" seed "$data" "$torrent" --bind 127.0.0.1 --port "$SEED_PORT" -v ;;
    libtorrent)
      start_bg seeder "$LT_PY" "$HERE/lt_driver.py" seed "$torrent" "$(dirname "$data")" --port "$SEED_PORT" ;;
    aria2)
      start_bg seeder "$ARIA2" "${ARIA2_COMMON[@]}" --listen-port="$SEED_PORT" --dir="$(dirname "$data")" \
        --bt-seed-unverified=true --check-integrity=false --seed-ratio=0.0 --seed-time=100000 "$torrent" ;;
  esac
  SEED_PID=$LAST_PID
  wait_for 120 "$SEED_PID" "$1 seeder ready" seeder_ready "$1" || return 1
  if [ "$1" = shoal ]; then
    local n
    n=$(sed -n 's/.*: \([0-9]*\) of \([0-9]*\) pieces already here.*/\1 \2/p' "$TMP/seeder.err" | head -n 1)
    set -- $n
    [ "$#" = 2 ] && [ "$1" = "$2" ] || { echo "  ! shoal seeder has only ${1:-?} of ${2:-?} pieces" >&2; return 1; }
  fi
  # every seeder also announces: wait (briefly) until the tracker lists it, so no
  # leecher starts before the seeder can be found
  wait_for 15 "$SEED_PID" "the tracker to list the seeder" tracker_has_seeder >/dev/null 2>&1 || true
  return 0
}

leecher_cmd() {  # client, out dir -> LEECH_CMD array
  local lport
  lport=$(free_port)
  case $1 in
    shoal) LEECH_CMD=("$SHOAL_BIN" get "$TORRENT" -o "$2" --bind 127.0.0.1 --port "$lport"
                      --peer "127.0.0.1:$SEED_PORT" -q) ;;
    libtorrent) LEECH_CMD=("$LT_PY" "$HERE/lt_driver.py" get "$TORRENT" "$2" --port "$lport"
                           --peer "127.0.0.1:$SEED_PORT" --timeout $((BENCH_TIMEOUT + 30))) ;;
    aria2) LEECH_CMD=("$ARIA2" "${ARIA2_COMMON[@]}" --listen-port="$lport" --dir="$2" --seed-time=0 "$TORRENT") ;;
  esac
}

show_tail() {  # name
  local f
  for f in "$TMP/$1.out" "$TMP/$1.err"; do
    [ -s "$f" ] && { echo "    --- $(basename "$f") (last 8 lines)"; tail -n 8 "$f" | sed 's/^/    /'; }
  done
  return 0
}

# One measured transfer from a seeder of one client to a leecher of another (or
# the same); appends a row labelled LABEL to RUNS_TSV.
transfer_once() {  # seeder client, leecher client, run number, label
  local sclient=$1 lclient=$2 run=$3 client=$4 outdir="$TMP/out" rc=1 verified=no
  local wall=NA lcpu=NA lrss=NA scpu=NA srss=NA c0 c1 tline
  rm -rf "$outdir" "$TMP"/seeder.* "$TMP"/leecher.* "$TMP"/tracker.*
  mkdir -p "$outdir"
  sync
  sleep 1

  start_bg tracker "$TRACKER_BIN" --bind 127.0.0.1 --port "$TPORT" --interval 5 -q
  local tpid=$LAST_PID
  if wait_for 20 "$tpid" "tracker listening on $TPORT" port_open "$TPORT" && start_seeder "$sclient"; then
    leecher_cmd "$lclient" "$outdir"
    c0=$(proc_cpu "$SEED_PID")
    start_bg leecher "$TIME_BIN" -f '%e %U %S %M' -o "$TMP/leecher.time" \
      timeout -k 5 "$BENCH_TIMEOUT" "${LEECH_CMD[@]}"
    local lpid=$LAST_PID
    wait "$lpid"         # bounded: timeout ends the leecher after BENCH_TIMEOUT s
    rc=$?
    forget_pid "$lpid"
    c1=$(proc_cpu "$SEED_PID")
    srss=$(proc_hwm_kib "$SEED_PID")
    if kill -0 "$SEED_PID" 2>/dev/null; then
      scpu=$(calc 'a - b' "$c1" "$c0")
    else
      echo "  ! the seeder died during the transfer" >&2
      show_tail seeder >&2
      srss=NA
      [ "$rc" = 0 ] && rc=1
    fi
    tline=$(tail -n 1 "$TMP/leecher.time" 2>/dev/null)
    if [ -n "$tline" ] && set -- $tline && [ "$#" = 4 ]; then
      wall=$1 lcpu=$(calc 'a + b' "$2" "$3") lrss=$4
    fi
    if [ "$rc" = 0 ] && cmp -s "$DATA" "$outdir/payload.bin"; then
      verified=yes
    fi
  else
    show_tail seeder >&2
  fi
  [ -n "${SEED_PID:-}" ] && stop_bg "$SEED_PID"
  SEED_PID=""
  stop_bg "$tpid"

  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$client" "$run" "$rc" "$verified" "$wall" "$lcpu" "$lrss" \
    "$scpu" "$srss" >>"$RUNS_TSV"
  if [ "$verified" = yes ]; then
    note "   run $run: $(printf '%6.2f s  %7.1f MB/s' "$wall" "$(calc 'a / b / 1e6' "$SIZE_BYTES" "$wall")")  leecher CPU $lcpu s  seeder CPU $scpu s"
  else
    local why="exit $rc"
    [ "$rc" = 124 ] || [ "$rc" = 137 ] && why="no completion within ${BENCH_TIMEOUT}s"
    [ "$rc" = 0 ] && why="data differs from the source"
    note "   run $run: FAILED ($why)"
    show_tail leecher >&2
    FAILURES+=("$client run $run: $why")
  fi
  rm -rf "$outdir"
}

# Median of one column of RUNS_TSV over the verified runs of a client.
col_median() {  # client, column number
  awk -F'\t' -v c="$1" -v k="$2" '$1 == c && $4 == "yes" { print $k }' "$RUNS_TSV" | median
}
mib() { [ "$1" = NA ] && echo NA || awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
fmt() { [ "$2" = NA ] && printf "%${1}s" NA || printf "%${1}.${3:-2}f" "$2"; }

# The table rows (medians over the verified runs) and their summary keys
# SECTION.KEY.*, where KEY is the label with "->" written "_to_".
transfer_table() {  # section, label width, label...
  local section=$1 w=$2; shift 2
  local c
  out "$(printf "  %-${w}s %5s %8s %8s %11s %11s %10s %10s" client ok wall_s MB/s leech_CPU leech_RSS seed_CPU seed_RSS)"
  for c in "$@"; do
    local ok wall mbps lcpu lrss scpu srss key=${c//->/_to_}
    ok=$(awk -F'\t' -v c="$c" '$1 == c && $4 == "yes"' "$RUNS_TSV" | wc -l)
    wall=$(col_median "$c" 5)
    mbps=$(calc 'a / b / 1e6' "$SIZE_BYTES" "$wall")
    lcpu=$(col_median "$c" 6)
    lrss=$(mib "$(col_median "$c" 7)")
    scpu=$(col_median "$c" 8)
    srss=$(mib "$(col_median "$c" 9)")
    out "$(printf "  %-${w}s %5s %8s %8s %11s %11s %10s %10s" "$c" "$ok/$BENCH_RUNS" "$(fmt 8 "$wall")" \
      "$(fmt 8 "$mbps" 1)" "$(fmt 11 "$lcpu")" "$lrss" "$(fmt 10 "$scpu")" "$srss")"
    summary "$section.$key.ok_runs" "$ok/$BENCH_RUNS"
    summary "$section.$key.wall_s" "$wall"
    summary "$section.$key.mb_per_s" "$mbps"
    summary "$section.$key.leecher_cpu_s" "$lcpu"
    summary "$section.$key.leecher_peak_rss_mib" "$lrss"
    summary "$section.$key.seeder_cpu_s" "$scpu"
    summary "$section.$key.seeder_peak_rss_mib" "$srss"
  done
}

section_transfer() {
  local clients=() c i
  has_client shoal && clients+=(shoal)
  if has_client libtorrent; then
    if [ -n "$LT_PY" ]; then clients+=(libtorrent); else note "-- libtorrent: python3-libtorrent missing, skipped (tests/deps.sh bench)"; fi
  fi
  if has_client aria2; then
    if [ -n "$ARIA2" ]; then clients+=(aria2); else note "-- aria2: aria2c missing, skipped (tests/deps.sh bench)"; fi
  fi
  for c in "${clients[@]}"; do
    note "-- transfer: $c -> $c, $BENCH_SIZE_MIB MiB, $BENCH_RUNS run(s)"
    for i in $(seq "$BENCH_RUNS"); do transfer_once "$c" "$c" "$i" "$c"; done
  done

  out "== Transfer: $BENCH_SIZE_MIB MiB random file, 1 MiB pieces, loopback, 1 seeder -> 1 leecher (median of $BENCH_RUNS)"
  out "   wall: leecher start to complete-and-verified (process exit); CPU = user+sys s; RSS = peak MiB;"
  out "   seeder CPU is what it spent during the transfer"
  transfer_table transfer 11 "${clients[@]}"
  if has_client aria2 && [ -n "$ARIA2" ]; then
    out "   aria2's wall time includes its ~2.3 s start-up wait (timers) before data flows;"
    out "   it finds the seeder through the local tracker (no add-peer option)."
  fi
  if has_client libtorrent && [ -n "$LT_PY" ]; then
    out "   libtorrent maps the file: its peak RSS counts the mapped file pages."
  fi
  out ""
}

# ---------------------------------------------------------------- cross-client
# shoal and libtorrent against each other, next to libtorrent -> libtorrent, on
# the transfer file; the runs of the three pairs alternate, so load on the
# machine hits all three alike.
CROSS_PAIRS=("shoal->libtorrent" "libtorrent->shoal" "libtorrent->libtorrent")

section_cross() {
  if [ -z "$LT_PY" ]; then
    note "-- cross-client: python3-libtorrent missing, skipped (tests/deps.sh bench)"
    out "== Cross-client: skipped (python3-libtorrent not installed)"
    out ""
    return 0
  fi
  local i p
  note "-- cross-client: ${CROSS_PAIRS[*]}, $BENCH_SIZE_MIB MiB, $BENCH_RUNS run(s) each, interleaved"
  for i in $(seq "$BENCH_RUNS"); do
    for p in "${CROSS_PAIRS[@]}"; do
      note "   $p"
      transfer_once "${p%%->*}" "${p##*->}" "$i" "$p"
    done
  done
  out "== Cross-client: $BENCH_SIZE_MIB MiB random file, 1 MiB pieces, loopback, 1 seeder -> 1 leecher (median of $BENCH_RUNS)"
  out "   same columns as the transfer table; libtorrent TCP only (uTP off), several connections per IP"
  transfer_table cross 22 "${CROSS_PAIRS[@]}"
  out ""
}

# ---------------------------------------------------------------- swarm
SWARM_DIR="$TMP/swarm"
SWARM_DATA="$SWARM_DIR/swarm.bin"
SWARM_TORRENT="$TMP/swarm.torrent"
SWARM_BYTES=$((BENCH_SWARM_MIB * 1024 * 1024))
SWARM_TSV="$BENCH_DIR/swarm-latest.tsv"

make_swarm_data() {
  mkdir -p "$SWARM_DIR"
  note "-- writing $BENCH_SWARM_MIB MiB of random data to $SWARM_DATA"
  head -c "$SWARM_BYTES" /dev/urandom >"$SWARM_DATA" || { echo "cannot write $SWARM_DATA"; exit 2; }
  if ! "$SHOAL_BIN" create "$SWARM_DATA" -o "$SWARM_TORRENT" --piece-size 1M --announce "$ANNOUNCE" -q >/dev/null; then
    echo "shoal create failed: no swarm torrent"
    exit 1
  fi
  cat "$SWARM_DATA" >/dev/null
}

# Bytes a live process has passed to write(2), writev(2) or sendfile(2), all its
# threads, from /proc/PID/io (send/sendto/sendmsg are not counted).
proc_wchar() {  # pid
  awk '$1 == "wchar:" { print $2; f = 1 } END { if (!f) print "NA" }' "/proc/$1/io" 2>/dev/null || echo NA
}
# Bytes in the files a process logs to (their growth is subtracted from wchar).
log_bytes() {  # file...
  local n=0 f s
  for f in "$@"; do s=$(stat -c %s "$f" 2>/dev/null) && n=$((n + s)); done
  echo "$n"
}
# Whether a file has a line starting with PREFIX (bash builtins only: no fork).
has_line() {  # file, prefix
  local line
  [ -s "$1" ] || return 1
  while IFS= read -r line; do
    case $line in "$2"*) return 0 ;; esac
  done <"$1"
  return 1
}
# Seconds between two $EPOCHREALTIME stamps.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# One swarm run: 1 seeder + BENCH_SWARM_LEECHERS leechers of CLIENT, all started
# at once, every leecher told about the seeder and about every other leecher
# (ports picked in advance); leechers keep sharing once complete.  Appends a row
# to SWARM_TSV.
swarm_once() {  # client, run number
  local client=$1 run=$2 n=$BENCH_SWARM_LEECHERS
  local -x SHOAL_ANNOUNCE_FLOOR=1          # shoal: re-announce as often as the tracker allows
  local ok=no why="" i j tpid t0 t_all="NA" t_first="NA" spread="NA"
  local w0 w1 l0 l1 c0 up=NA ratio=NA payload=NA pratio=NA scpu=NA lcpu=NA ndone=0
  local ports=() lpids=() starts=() dones=() peers=() logs
  rm -rf "$TMP"/sw-* "$TMP"/seeder.* "$TMP"/tracker.*
  sync
  sleep 1
  start_bg tracker "$TRACKER_BIN" --bind 127.0.0.1 --port "$TPORT" --interval 2 -q
  tpid=$LAST_PID
  SEED_PID=""
  if ! wait_for 20 "$tpid" "tracker listening on $TPORT" port_open "$TPORT" ||
     ! start_seeder "$client" "$SWARM_TORRENT" "$SWARM_DATA"; then
    show_tail seeder >&2
    why="no tracker or seeder"
  else
    for i in $(seq "$n"); do ports+=("$(free_port)"); done
    logs=("$TMP/seeder.out" "$TMP/seeder.err")
    w0=$(proc_wchar "$SEED_PID"); l0=$(log_bytes "${logs[@]}"); c0=$(proc_cpu "$SEED_PID")
    t0=$EPOCHREALTIME
    for i in $(seq 0 $((n - 1))); do
      peers=(--peer "127.0.0.1:$SEED_PORT")
      for j in $(seq 0 $((n - 1))); do [ "$j" = "$i" ] || peers+=(--peer "127.0.0.1:${ports[j]}"); done
      mkdir -p "$TMP/sw-out$i"
      case $client in
        shoal) start_bg "sw-leech$i" "$SHOAL_BIN" get "$SWARM_TORRENT" -o "$TMP/sw-out$i" --bind 127.0.0.1 \
                 --port "${ports[i]}" --seed -q "${peers[@]}" ;;
        libtorrent) start_bg "sw-leech$i" "$LT_PY" "$HERE/lt_driver.py" get "$SWARM_TORRENT" "$TMP/sw-out$i" \
                      --port "${ports[i]}" --seed --timeout $((BENCH_TIMEOUT + 30)) "${peers[@]}" ;;
      esac
      lpids+=("$LAST_PID")
      starts+=("$EPOCHREALTIME")
      dones+=("")
    done
    # wait (bounded) until every leecher has printed "complete:"; poll every 50 ms
    local end=$((SECONDS + BENCH_TIMEOUT))
    while [ "$ndone" -lt "$n" ] && [ $SECONDS -lt "$end" ]; do
      for i in $(seq 0 $((n - 1))); do
        [ -n "${dones[i]}" ] && continue
        if has_line "$TMP/sw-leech$i.out" "complete:"; then
          dones[i]=$EPOCHREALTIME
          ndone=$((ndone + 1))
        elif ! kill -0 "${lpids[i]}" 2>/dev/null; then
          why="leecher $i exited before it was complete"
          break 2
        fi
      done
      [ "$ndone" -lt "$n" ] && sleep 0.05
    done
    w1=$(proc_wchar "$SEED_PID"); l1=$(log_bytes "${logs[@]}")
    scpu=$(calc 'a - b' "$(proc_cpu "$SEED_PID")" "$c0")
    lcpu=0
    for i in $(seq 0 $((n - 1))); do lcpu=$(calc 'a + b' "$lcpu" "$(proc_cpu "${lpids[i]}")"); done
    if [ "$client" = libtorrent ] && kill -USR1 "$SEED_PID" 2>/dev/null; then
      wait_for 5 "$SEED_PID" "the seeder's stats" has_line "$TMP/seeder.out" "stats:" || true
      payload=$(sed -n 's/^stats: payload_upload=\([0-9]*\) .*/\1/p' "$TMP/seeder.out" | tail -n 1)
      payload=${payload:-NA}
    fi
    [ -z "$why" ] && [ "$ndone" -lt "$n" ] && why="only $ndone of $n leechers complete within ${BENCH_TIMEOUT}s"
    kill -0 "$SEED_PID" 2>/dev/null || { [ -z "$why" ] && why="the seeder died"; w1=NA; }
    # libtorrent sends with sendmsg(2), which /proc/PID/io does not count
    if [ "$client" = shoal ] && [ "$w0" != NA ] && [ "$w1" != NA ]; then
      up=$(( (w1 - w0) - (l1 - l0) ))
      ratio=$(awk -v u="$up" -v s="$SWARM_BYTES" 'BEGIN { printf "%.3f", u / s }')
    fi
    [ "$payload" != NA ] && pratio=$(awk -v u="$payload" -v s="$SWARM_BYTES" 'BEGIN { printf "%.3f", u / s }')
    local first_start=${starts[0]} last_start=${starts[n - 1]} d last="" firstd=""
    spread=$(elapsed "$first_start" "$last_start")
    for d in "${dones[@]}"; do
      [ -n "$d" ] || continue
      if [ -z "$last" ] || awk -v a="$d" -v b="$last" 'BEGIN { exit !(a > b) }'; then last=$d; fi
      if [ -z "$firstd" ] || awk -v a="$d" -v b="$firstd" 'BEGIN { exit !(a < b) }'; then firstd=$d; fi
    done
    [ -n "$firstd" ] && t_first=$(elapsed "$t0" "$firstd")
    [ "$ndone" = "$n" ] && t_all=$(elapsed "$t0" "$last")
    # stop the leechers (they close their files), then compare every copy
    for i in $(seq 0 $((n - 1))); do stop_bg "${lpids[i]}"; done
    if [ -z "$why" ]; then
      for i in $(seq 0 $((n - 1))); do
        cmp -s "$SWARM_DATA" "$TMP/sw-out$i/swarm.bin" || { why="leecher $i: data differs from the source"; break; }
      done
    fi
    [ -z "$why" ] && ok=yes
    if [ -n "$why" ]; then
      for i in $(seq 0 $((n - 1))); do [ -n "${dones[i]}" ] || show_tail "sw-leech$i" >&2; done
    fi
  fi
  [ -n "${SEED_PID:-}" ] && stop_bg "$SEED_PID"
  SEED_PID=""
  stop_bg "$tpid"
  rm -rf "$TMP"/sw-out*

  local per=""
  for i in $(seq 0 $((n - 1))); do
    if [ -n "${dones[i]:-}" ]; then per+="${per:+,}$(elapsed "$t0" "${dones[i]}")"; else per+="${per:+,}NA"; fi
  done
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$client" "$run" "$ok" "$t_all" "$t_first" \
    "$spread" "$up" "$ratio" "$payload" "$pratio" "$scpu" "$lcpu" "$per" >>"$SWARM_TSV"
  if [ "$ok" = yes ]; then
    local how="wchar $ratio"
    [ "$client" = libtorrent ] && how="payload $pratio"
    note "   run $run: all $n done in $t_all s (first $t_first s), seeder sent the file x $how"
  else
    note "   run $run: FAILED ($why)"
    FAILURES+=("swarm $client run $run: $why")
  fi
}

swarm_median() {  # client, column number
  awk -F'\t' -v c="$1" -v k="$2" '$1 == c && $3 == "yes" { print $k }' "$SWARM_TSV" | median
}

section_swarm() {
  local clients=() c i
  has_client shoal && clients+=(shoal)
  if has_client libtorrent; then
    if [ -n "$LT_PY" ]; then clients+=(libtorrent); else note "-- swarm: python3-libtorrent missing, libtorrent skipped"; fi
  fi
  printf 'client\trun\tverified\tall_done_s\tfirst_done_s\tstart_spread_s\tseeder_up_bytes\tseeder_up_ratio\tseeder_payload_up_bytes\tseeder_payload_up_ratio\tseeder_cpu_s\tleechers_cpu_s\tdone_s_each\n' >"$SWARM_TSV"
  for c in "${clients[@]}"; do
    note "-- swarm: 1 $c seeder + $BENCH_SWARM_LEECHERS $c leechers, $BENCH_SWARM_MIB MiB, $BENCH_RUNS run(s)"
    for i in $(seq "$BENCH_RUNS"); do swarm_once "$c" "$i"; done
  done
  out "== Swarm: 1 seeder + $BENCH_SWARM_LEECHERS leechers, $BENCH_SWARM_MIB MiB random file, 1 MiB pieces, loopback (median of $BENCH_RUNS)"
  out "   all_done: first leecher's start to the last leecher's \"complete\" (50 ms polling); first_done likewise;"
  out "   seed_up: the seeder's upload / file size (ideal ~1: the leechers trade among themselves);"
  out "   shoal: growth of /proc/PID/io wchar (bytes passed to write/writev, which shoal sends with)"
  out "   minus its own log output, i.e. payload + ~0.1 % protocol; libtorrent: its total_payload_upload."
  out "   CPU = user+sys s during the swarm (leechers: all together); spread: start of the first to the"
  out "   start of the last leecher"
  out "$(printf '  %-11s %5s %10s %11s %8s %8s %9s %10s %7s' client ok all_done_s first_done_s MB/s seed_up seed_CPU leech_CPU spread)"
  for c in "${clients[@]}"; do
    local ok all first mbps up scpu lcpu spread
    ok=$(awk -F'\t' -v c="$c" '$1 == c && $3 == "yes"' "$SWARM_TSV" | wc -l)
    all=$(swarm_median "$c" 4)
    first=$(swarm_median "$c" 5)
    spread=$(swarm_median "$c" 6)
    if [ "$c" = libtorrent ]; then up=$(swarm_median "$c" 10); else up=$(swarm_median "$c" 8); fi
    scpu=$(swarm_median "$c" 11)
    lcpu=$(swarm_median "$c" 12)
    mbps=$(calc "a * $BENCH_SWARM_LEECHERS / b / 1e6" "$SWARM_BYTES" "$all")
    out "$(printf '  %-11s %5s %10s %11s %8s %8s %9s %10s %7s' "$c" "$ok/$BENCH_RUNS" "$(fmt 10 "$all")" \
      "$(fmt 11 "$first")" "$(fmt 8 "$mbps" 1)" "$(fmt 8 "$up")" "$(fmt 9 "$scpu")" \
      "$(fmt 10 "$lcpu")" "$(fmt 7 "$spread")")"
    summary "swarm.$c.ok_runs" "$ok/$BENCH_RUNS"
    summary "swarm.$c.all_done_s" "$all"
    summary "swarm.$c.first_done_s" "$first"
    summary "swarm.$c.mb_per_s" "$mbps"
    summary "swarm.$c.seeder_upload_ratio" "$up"
    summary "swarm.$c.seeder_upload_method" "$([ "$c" = libtorrent ] && echo total_payload_upload || echo proc_io_wchar)"
    summary "swarm.$c.seeder_cpu_s" "$scpu"
    summary "swarm.$c.leechers_cpu_s" "$lcpu"
    summary "swarm.$c.start_spread_s" "$spread"
  done
  out "   MB/s = $BENCH_SWARM_LEECHERS x file size / all_done_s.  Every leecher's copy is compared with the source."
  out ""
}

# ---------------------------------------------------------------- hashing
section_hash() {
  local per_core limit hjson="$BENCH_DIR/hash-latest.json"
  out "== Hashing: $BENCH_SIZE_MIB MiB file, 1 MiB pieces, file in page cache"
  per_core=$(openssl speed -evp sha1 -bytes 1048576 -seconds 3 2>/dev/null |
             awk '$1 == "sha1" || $1 == "SHA1" { v = $2 } END { if (v == "") print "NA"; else { sub(/k$/, "", v); printf "%.1f", v / 1000 } }')
  limit=$(calc "a * $NPROC" "$per_core")
  cat "$DATA" >/dev/null
  if [ -z "$HYPERFINE" ]; then
    out "   hyperfine missing (tests/deps.sh bench): timing skipped"
    FAILURES+=("hashing: hyperfine missing")
  else
    local cmds=(-n "shoal create" --prepare "rm -f $TMP/h-shoal.torrent"
                "$SHOAL_BIN create $DATA -o $TMP/h-shoal.torrent --piece-size 1M -q")
    if [ -n "$MKTORRENT" ]; then
      cmds+=(-n "mktorrent -t 2" --prepare "rm -f $TMP/h-mk.torrent"
             "$MKTORRENT -t 2 -l 20 -a http://127.0.0.1:1/announce -o $TMP/h-mk.torrent $DATA")
    else
      note "-- mktorrent missing: only shoal create is timed"
    fi
    note "-- hashing: hyperfine --warmup 1 --runs 5"
    if ! timeout 600 "$HYPERFINE" -N --warmup 1 --runs 5 --style basic --export-json "$hjson" "${cmds[@]}" \
         >"$BENCH_DIR/hyperfine-latest.log" 2>&1; then
      out "   hyperfine failed: see $BENCH_DIR/hyperfine-latest.log"
      tail -n 8 "$BENCH_DIR/hyperfine-latest.log" | sed 's/^/    /'
      FAILURES+=("hashing: hyperfine failed")
    else
      out "$(printf '  %-22s %9s %16s %9s %10s %9s' tool median_s 'mean +- sd' MB/s CPU_s '% limit')"
      local rows="$TMP/hash-rows.tsv"
      python3 - "$hjson" "$SIZE_BYTES" "$limit" >"$rows" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
size = int(sys.argv[2])
limit = float(sys.argv[3]) if sys.argv[3] != "NA" else None
for r in d["results"]:
    med = r["median"]
    mbps = size / med / 1e6
    cpu = r["user"] + r["system"]
    pct = "%.0f" % (100 * mbps / limit) if limit else "NA"
    print("\t".join([r["command"], "%.3f" % med, "%.3f" % r["mean"], "%.3f" % r["stddev"],
                     "%.0f" % mbps, "%.2f" % cpu, pct]))
PY
      local name med mean sd mbps cpu pct key
      while IFS=$'\t' read -r name med mean sd mbps cpu pct; do
        out "$(printf '  %-22s %9s %16s %9s %10s %9s' "$name" "$med" "$mean +- $sd" "$mbps" "$cpu" "$pct")"
        case $name in "shoal create") key=shoal_create ;; mktorrent*) key=mktorrent ;; *) key=${name// /_} ;; esac
        summary "hash.$key.median_s" "$med"
        summary "hash.$key.mb_per_s" "$mbps"
        summary "hash.$key.cpu_s" "$cpu"
      done <"$rows"
      if [ -n "$MKTORRENT" ] && [ -s "$TMP/h-mk.torrent" ] && [ -s "$TMP/h-shoal.torrent" ]; then
        local a b
        a=$("$SHOAL_BIN" info "$TMP/h-shoal.torrent" 2>/dev/null | awk '/^infohash:/ { print $2 }')
        b=$("$SHOAL_BIN" info "$TMP/h-mk.torrent" 2>/dev/null | awk '/^infohash:/ { print $2 }')
        if [ -n "$a" ] && [ "$a" = "$b" ]; then
          out "   shoal create and mktorrent give the same info-hash ($a)"
        else
          out "   note: info-hashes differ (shoal ${a:-?}, mktorrent ${b:-?})"
        fi
      fi
    fi
  fi
  out "$(printf '  %-22s %9s %16s %9s %10s %9s' "SHA-1 limit (OpenSSL)" "$(calc 'a / (b * 1e6)' "$SIZE_BYTES" "$limit")" "" "$(fmt 9 "$limit" 0)" "" 100)"
  out "   openssl speed -evp sha1, 1 MiB blocks: $per_core MB/s per core x $NPROC cores"
  summary hash.sha1_limit.mb_per_s_per_core "$per_core"
  summary hash.sha1_limit.mb_per_s "$limit"
  out ""
}

# ---------------------------------------------------------------- main
START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
has_section env && section_env
check_space
if has_section transfer || has_section cross || has_section hash; then make_data; fi
has_section swarm && make_swarm_data
has_section transfer && section_transfer
has_section cross && section_cross
has_section swarm && section_swarm
has_section hash && section_hash
source "$HERE/daemon.sh"   # the daemon section (tests/bench/daemon.sh), when BENCH_SECTIONS names "daemon"

END_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
out "load average at start: $START_LOAD, at end: $END_LOAD (other work on the machine skews the figures)"
summary size_mib "$BENCH_SIZE_MIB"
summary runs "$BENCH_RUNS"
summary date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
summary loadavg_end "$END_LOAD"
summary failures "${#FAILURES[@]}"
printf '%s\n' "${SUMMARY[@]}" >"$RESULTS"
if [ "${#FAILURES[@]}" -gt 0 ]; then
  out "FAILED measurements:"
  for f in "${FAILURES[@]}"; do out "  $f"; done
fi
out "results: $RESULTS (key=value), per run: $RUNS_TSV, report: $REPORT"
[ "${#FAILURES[@]}" -eq 0 ]
