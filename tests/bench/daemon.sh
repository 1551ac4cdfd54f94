#!/bin/bash
# shellcheck disable=SC2015,SC2016  # A && B || C, and sh -c '...$1', are intended
# daemon.sh -- the daemon section of shoal's benchmark: memory and CPU of an idle
# daemon with many seeding torrents against an empty one, memory and CPU with 200
# peer connections, and how closely the global download and upload limits hold.
# Figures, not pass/fail.  Sourced by run.sh (`make bench`; it runs when
# BENCH_SECTIONS names "daemon" or is left at its default), or on its own:
#   BUILD=build tests/bench/daemon.sh
#   BENCH_DAEMON_PARTS="idle peers rate" BENCH_DAEMON_TORRENTS=1000 BENCH_DAEMON_PEERS=200
#   BENCH_DAEMON_DOWN_RATES="5M 20M" BENCH_DAEMON_UP_RATE=10M BENCH_DAEMON_RATE_MIB=1024
# Everything is on 127.0.0.1; every wait is bounded; every process is started
# with start_bg and ended by its PID (common.sh), also by the EXIT trap.

DM_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DM_STANDALONE=0
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  DM_STANDALONE=1
  # shellcheck source=tests/bench/common.sh
  source "$DM_HERE/common.sh"
  mkdir -p "$BENCH_DIR"
  REPORT="$BENCH_DIR/daemon-report-latest.txt"
  RESULTS="$BENCH_DIR/daemon-results-latest.txt"
  : >"$REPORT"
  FAILURES=()
  out() { printf '%s\n' "$*" | tee -a "$REPORT"; }
  note() { printf '%s\n' "$*" >&2; }
  has_section() { case " $BENCH_SECTIONS " in *" $1 "*) return 0 ;; esac; return 1; }
  [ -x "$SHOAL_BIN" ] || { echo "missing $SHOAL_BIN: build it first (make)"; exit 2; }
fi

BENCH_DAEMON_PARTS=${BENCH_DAEMON_PARTS:-"idle peers rate"}
BENCH_DAEMON_TORRENTS=${BENCH_DAEMON_TORRENTS:-1000}
BENCH_DAEMON_PEERS=${BENCH_DAEMON_PEERS:-200}
BENCH_DAEMON_DOWN_RATES=${BENCH_DAEMON_DOWN_RATES:-"5M 20M"}
BENCH_DAEMON_UP_RATE=${BENCH_DAEMON_UP_RATE:-10M}
BENCH_DAEMON_RATE_MIB=${BENCH_DAEMON_RATE_MIB:-1024}
DM_SETTLE_S=10        # idle: wait after all torrents are seeding, before RSS
DM_IDLE_WINDOW_S=30   # idle: CPU window
DM_PEERS_WINDOW_S=20  # 200 peers: window
DM_PEERS_MIB=64       # 200 peers: size of the seeded file
DM_REQ_RATE=4194304   # 200 peers: block requests of all connections together, bytes/s
DM_WARMUP_S=3         # rate: after a limit is set and data flows
DM_RATE_WINDOW_S=30   # rate: window
DM_NPROC=$(nproc)

dm_has_part() { case " $BENCH_DAEMON_PARTS " in *" $1 "*) return 0 ;; esac; return 1; }

# ---------------------------------------------------------------- helpers
dm_remote() {  # config dir, remote args...  (bounded: 20 s)
  local cfg=$1; shift
  timeout -k 2 20 "$SHOAL_BIN" remote --config-dir "$cfg" "$@"
}

# One field of `remote --json stats` (NA when the call fails).
dm_stat() {  # config dir, key
  dm_remote "$1" --json stats 2>/dev/null |
    python3 -c 'import json, sys
try: print(json.load(sys.stdin)[sys.argv[1]])
except Exception: print("NA")' "$2"
}

# "SEEDING TOTAL ERRORS" of `remote --json list`.
dm_states() {  # config dir
  dm_remote "$1" --json list 2>/dev/null |
    python3 -c 'import json, sys
try:
    t = json.load(sys.stdin)["torrents"]
    print(sum(x["state"] == "seeding" for x in t), len(t), sum(x["state"] == "error" for x in t))
except Exception: print("0 0 0")'
}

dm_all_seeding() {  # config dir, count
  local s n e
  read -r s n e < <(dm_states "$1")
  DM_SEEDING=$s
  [ "$e" = 0 ] || { echo "  ! $e torrent(s) in state error" >&2; return 1; }
  [ "$n" = "$2" ] && [ "$s" = "$2" ]
}

dm_field_kib() {  # pid, field of /proc/PID/status (VmRSS, RssAnon, VmHWM, ...)
  awk -v f="$2:" '$1 == f { print $2; ok = 1 } END { if (!ok) print "NA" }' "/proc/$1/status" 2>/dev/null || echo NA
}

dm_ticks() {  # pid: utime + stime in clock ticks, all threads
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo NA; return; }
  echo "${stat##*) }" | awk '{ print $12 + $13 }'
}

dm_now() { date +%s.%N; }

# CPU % of one core: ticks a..b over the seconds between times t0..t1
dm_cpu_pct() {  # ticks0, ticks1, t0, t1
  if [ "$1" = NA ] || [ "$2" = NA ]; then echo NA; return; fi
  awk -v a="$1" -v b="$2" -v t0="$3" -v t1="$4" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", 100 * (b - a) / hz / (t1 - t0) }'
}

# bytes/s from a RATE as `shoal remote limits` takes it (1024-based suffixes)
dm_rate_bytes() {  # 5M, 500k, 1.5M, 2G, 500000
  awk -v r="$1" 'BEGIN { m = 1; s = toupper(substr(r, length(r)))
    if (s == "K") m = 1024; else if (s == "M") m = 1048576; else if (s == "G") m = 1073741824
    if (m > 1) r = substr(r, 1, length(r) - 1)
    printf "%.0f", r * m }'
}

dm_infohash() {  # .torrent file
  "$SHOAL_BIN" info --json "$1" 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["infohash"])'
}

# Starts a daemon on loopback with settings JSON; sets DM_PID, DM_PORT.
# Fails (message on stderr) if it does not answer `stats` within 60 s.
dm_start_daemon() {  # name, config dir, download dir, settings JSON
  local name=$1 cfg=$2 dl=$3 rpc
  mkdir -p "$cfg" "$dl"
  printf '%s\n' "$4" >"$cfg/settings.json"
  DM_PORT=$(free_port)
  rpc=$(free_port)
  while [ "$rpc" = "$DM_PORT" ]; do rpc=$(free_port); done
  rm -f "$cfg/rpc-endpoint"
  start_bg "$name" "$SHOAL_BIN" daemon --config-dir "$cfg" --download-dir "$dl" \
    --rpc-port "$rpc" --port "$DM_PORT" --foreground --log-level warn
  DM_PID=$LAST_PID
  if ! wait_for 60 "$DM_PID" "daemon $name: control API" \
       sh -c '[ -s "$1/rpc-endpoint" ] && timeout 5 "$2" remote --config-dir "$1" stats >/dev/null 2>&1' _ "$cfg" "$SHOAL_BIN"; then
    tail -n 5 "$TMP/$name.err" >&2
    return 1
  fi
}

# Writes N files of 1-64 KiB of random bytes into DIR (f0001.bin ...).
dm_make_small_files() {  # dir, count
  python3 - "$1" "$2" <<'PY'
import os, random, sys
d, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(20240601)
for i in range(1, n + 1):
    with open(os.path.join(d, "f%04d.bin" % i), "wb") as f:
        f.write(os.urandom(rnd.randint(1024, 65536)))
PY
}

# Copies every .torrent of SRC into DST/<infohash>.torrent (the daemon's own
# layout); prints how many, and the first torrent with its infohash.
dm_install_torrents() {  # src dir, dst dir
  python3 - "$1" "$2" <<'PY'
import hashlib, os, shutil, sys
def end_of(b, i):   # index just after the bencoded value starting at i (our own files)
    c = b[i:i + 1]
    if c == b"i":
        return b.index(b"e", i) + 1
    if c in (b"l", b"d"):
        i += 1
        while b[i:i + 1] != b"e":
            i = end_of(b, i)
        return i + 1
    colon = b.index(b":", i)
    return colon + 1 + int(b[i:colon])
def infohash(b):
    i = 1
    while b[i:i + 1] != b"e":
        kend = end_of(b, i)
        key = b[b.index(b":", i) + 1:kend]
        vend = end_of(b, kend)
        if key == b"info":
            return hashlib.sha1(b[kend:vend]).hexdigest()
        i = vend
    raise ValueError("no info")
src, dst = sys.argv[1], sys.argv[2]
names = sorted(n for n in os.listdir(src) if n.endswith(".torrent"))
first = None
for n in names:
    b = open(os.path.join(src, n), "rb").read()
    h = infohash(b)
    shutil.copyfile(os.path.join(src, n), os.path.join(dst, h + ".torrent"))
    first = first or (n, h)
print(len(names), first[0] if first else "-", first[1] if first else "-")
PY
}

# ---------------------------------------------------------------- 1. idle
dm_idle() {
  local n=$BENCH_DAEMON_TORRENTS d="$TMP/daemon-idle" count first fih ih
  local settings='{"bind": "127.0.0.1", "max_active_seeds": '"$n"'}'
  mkdir -p "$d/dl" "$d/t" "$d/cfg1/torrents" "$d/cfg0" "$d/dl0"
  note "-- daemon idle: $n files of 1-64 KiB, shoal create for each"
  dm_make_small_files "$d/dl" "$n"
  if ! (cd "$d/dl" && printf '%s\n' f*.bin | timeout 300 xargs -P "$DM_NPROC" -I{} "$SHOAL_BIN" create "$d/dl/{}" -o "$d/t/{}.torrent" -q >/dev/null); then
    FAILURES+=("daemon idle: shoal create failed"); return
  fi
  read -r count first fih < <(dm_install_torrents "$d/t" "$d/cfg1/torrents")
  ih=$(dm_infohash "$d/t/$first")
  if [ "$count" != "$n" ] || [ "$ih" != "$fih" ]; then
    FAILURES+=("daemon idle: $count torrents made, infohash check ${fih:-?} vs ${ih:-?}"); return
  fi
  note "-- daemon idle: starting an empty daemon and one with $n torrents"
  local p0 p1 t_start ready=NA
  dm_start_daemon dm-empty "$d/cfg0" "$d/dl0" "$settings" || { FAILURES+=("daemon idle: empty daemon did not start"); return; }
  p0=$DM_PID
  t_start=$(dm_now)
  dm_start_daemon dm-idle "$d/cfg1" "$d/dl" "$settings" || { FAILURES+=("daemon idle: daemon did not start"); stop_bg "$p0"; return; }
  p1=$DM_PID
  DM_SEEDING=0
  local end=$((SECONDS + 180))
  while [ $SECONDS -lt $end ]; do
    dm_all_seeding "$d/cfg1" "$n" && { ready=$(awk -v a="$t_start" -v b="$(dm_now)" 'BEGIN { printf "%.1f", b - a }'); break; }
    kill -0 "$p1" 2>/dev/null || break
    sleep 0.5
  done
  if [ "$ready" = NA ]; then
    note "  ! only $DM_SEEDING of $n torrents seeding after 180 s"
    FAILURES+=("daemon idle: only $DM_SEEDING of $n torrents seeding after 180 s")
    stop_bg "$p1"; stop_bg "$p0"; return
  fi
  note "-- daemon idle: all $n seeding after $ready s; waiting $DM_SETTLE_S s, then $DM_IDLE_WINDOW_S s of CPU"
  sleep "$DM_SETTLE_S"
  local rss0 rss1 anon0 anon1 files0 files1 c00 c10 c01 c11 t0 t1 cpu0 cpu1 per
  rss0=$(dm_field_kib "$p0" VmRSS); anon0=$(dm_field_kib "$p0" RssAnon)
  rss1=$(dm_field_kib "$p1" VmRSS); anon1=$(dm_field_kib "$p1" RssAnon)
  c00=$(dm_ticks "$p0"); c10=$(dm_ticks "$p1"); t0=$(dm_now)
  sleep "$DM_IDLE_WINDOW_S"
  c01=$(dm_ticks "$p0"); c11=$(dm_ticks "$p1"); t1=$(dm_now)
  cpu0=$(dm_cpu_pct "$c00" "$c01" "$t0" "$t1")
  cpu1=$(dm_cpu_pct "$c10" "$c11" "$t0" "$t1")
  files0=$(dm_stat "$d/cfg0" open_files); files1=$(dm_stat "$d/cfg1" open_files)
  dm_all_seeding "$d/cfg1" "$n" || note "  ! not all torrents seeding at the end of the window ($DM_SEEDING)"
  local seeding_end=$DM_SEEDING
  cp "$d/cfg1/settings.json" "$BENCH_DIR/daemon-idle-settings.json" 2>/dev/null
  grep -h '^\(Rss\|Pss_Anon\|Anonymous\)' "/proc/$p1/smaps_rollup" >"$BENCH_DIR/daemon-idle-smaps_rollup.txt" 2>/dev/null
  stop_bg "$p1"; stop_bg "$p0"
  per=$(awk -v a="$rss0" -v b="$rss1" -v n="$n" 'BEGIN { if (a == "NA" || b == "NA") print "NA"; else printf "%.1f", (b - a) / n }')
  local peranon
  peranon=$(awk -v a="$anon0" -v b="$anon1" -v n="$n" 'BEGIN { if (a == "NA" || b == "NA") print "NA"; else printf "%.1f", (b - a) / n }')

  out "== Daemon, idle: $n seeding torrents (one file of 1-64 KiB each) against an empty daemon, loopback"
  out "   settings {\"bind\": \"127.0.0.1\", \"max_active_seeds\": $n}, torrents in <config>/torrents before start;"
  out "   RSS = VmRSS (RssAnon: its anonymous part) $DM_SETTLE_S s after all are \"seeding\"; CPU = utime+stime"
  out "   from /proc/PID/stat over the next $DM_IDLE_WINDOW_S s, % of one core; both daemons measured side by side"
  out "$(printf '  %-16s %8s %8s %8s %10s %12s %9s %7s' daemon torrents seeding ready_s RSS_KiB RssAnon_KiB CPU_% files)"
  out "$(printf '  %-16s %8s %8s %8s %10s %12s %9s %7s' empty 0 0 - "$rss0" "$anon0" "$cpu0" "$files0")"
  out "$(printf '  %-16s %8s %8s %8s %10s %12s %9s %7s' "$n torrents" "$n" "$seeding_end" "$ready" "$rss1" "$anon1" "$cpu1" "$files1")"
  out "   RSS per torrent = (RSS_$n - RSS_0) / $n = $per KiB (target < 32 KiB; anonymous part $peranon KiB)"
  out "   idle CPU with $n torrents = $cpu1 % of one core over $DM_IDLE_WINDOW_S s (target < 1 %)"
  out "   ready_s: from the daemon's start to all \"seeding\" (loading and checking every torrent);"
  out "   files: \`stats\` open_files (ulimit -n here: $(ulimit -n))"
  out ""
  summary daemon.idle.torrents "$n"
  summary daemon.idle.ready_s "$ready"
  summary daemon.idle.rss_empty_kib "$rss0"
  summary daemon.idle.rss_kib "$rss1"
  summary daemon.idle.rss_anon_empty_kib "$anon0"
  summary daemon.idle.rss_anon_kib "$anon1"
  summary daemon.idle.rss_per_torrent_kib "$per"
  summary daemon.idle.rss_anon_per_torrent_kib "$peranon"
  summary daemon.idle.cpu_pct "$cpu1"
  summary daemon.idle.cpu_empty_pct "$cpu0"
  summary daemon.idle.open_files "$files1"
  rm -rf "$d"
}

# ---------------------------------------------------------------- 2. many peers
# One window of DM_PEERS_WINDOW_S over a daemon: appends a table row to
# DM_PEER_ROWS and summary keys daemon.peers.KEY.*.
DM_PEER_ROWS=()
dm_peers_window() {  # label/key, daemon pid, config dir, peers, RSS without peers
  local key=$1 pd=$2 cfg=$3 n=$4 rss_before=$5
  local c0 c1 t0 t1 up0 up1 pmin=999999 pmax=0 p rss hwm anon cpu uprate perconn _k
  c0=$(dm_ticks "$pd"); t0=$(dm_now); up0=$(dm_stat "$cfg" uploaded)
  for _k in $(seq $((DM_PEERS_WINDOW_S / 5))); do   # the window: 5 s steps
    sleep 5
    p=$(dm_stat "$cfg" peers)
    [ "$p" = NA ] && continue
    [ "$p" -lt "$pmin" ] && pmin=$p
    [ "$p" -gt "$pmax" ] && pmax=$p
  done
  c1=$(dm_ticks "$pd"); t1=$(dm_now); up1=$(dm_stat "$cfg" uploaded)
  rss=$(dm_field_kib "$pd" VmRSS); anon=$(dm_field_kib "$pd" RssAnon); hwm=$(dm_field_kib "$pd" VmHWM)
  cpu=$(dm_cpu_pct "$c0" "$c1" "$t0" "$t1")
  [ "$pmin" = 999999 ] && pmin=NA
  uprate=$(awk -v a="$up0" -v b="$up1" -v t0="$t0" -v t1="$t1" 'BEGIN { if (a == "NA" || b == "NA") print "NA"; else printf "%.2f", (b - a) / (t1 - t0) / 1048576 }')
  perconn=$(awk -v a="$rss_before" -v b="$rss" -v n="$n" 'BEGIN { if (a == "NA" || b == "NA") print "NA"; else printf "%.1f", (b - a) / n }')
  DM_PEER_ROWS+=("$(printf '  %-11s %9s %10s %11s %12s %10s %7s %9s' "$key" "$pmin..$pmax" "$rss" "$perconn" "$anon" "$hwm" "$cpu" "$uprate")")
  summary "daemon.peers.$key.connected_min" "$pmin"
  summary "daemon.peers.$key.connected_max" "$pmax"
  summary "daemon.peers.$key.rss_kib" "$rss"
  summary "daemon.peers.$key.rss_anon_kib" "$anon"
  summary "daemon.peers.$key.rss_per_connection_kib" "$perconn"
  summary "daemon.peers.$key.cpu_pct" "$cpu"
  summary "daemon.peers.$key.upload_mib_per_s" "$uprate"
  if [ "$pmin" = NA ] || [ "$pmin" -lt "$n" ]; then
    FAILURES+=("daemon peers: $key: only $pmin..$pmax of $n peers connected during the window")
  fi
}

dm_peers() {
  local n=$BENCH_DAEMON_PEERS d="$TMP/daemon-peers" ih size plen
  local settings='{"bind": "127.0.0.1", "max_peers_per_torrent": 250, "max_peers_global": 300}'
  mkdir -p "$d/dl" "$d/cfg"
  note "-- daemon peers: $DM_PEERS_MIB MiB file, one seeding daemon, $n connections"
  head -c $((DM_PEERS_MIB * 1048576)) /dev/urandom >"$d/dl/peers.bin"
  "$SHOAL_BIN" create "$d/dl/peers.bin" -o "$d/peers.torrent" -q >/dev/null || { FAILURES+=("daemon peers: shoal create failed"); return; }
  read -r ih size plen < <("$SHOAL_BIN" info --json "$d/peers.torrent" |
    python3 -c 'import json, sys; j = json.load(sys.stdin); print(j["infohash"], j["total_size"], j["piece_size"])')
  dm_start_daemon dm-peers "$d/cfg" "$d/dl" "$settings" || { FAILURES+=("daemon peers: daemon did not start"); return; }
  local pd=$DM_PID port=$DM_PORT
  if ! dm_remote "$d/cfg" add "$d/peers.torrent" -o "$d/dl" >/dev/null ||
     ! wait_for 60 "$pd" "daemon peers: torrent seeding" dm_all_seeding "$d/cfg" 1; then
    FAILURES+=("daemon peers: torrent not seeding"); stop_bg "$pd"; return
  fi
  sleep 2
  local rss_before
  rss_before=$(dm_field_kib "$pd" VmRSS)
  # requests wait for SIGUSR1 (--paused): first a window with connections only
  start_bg dm-swarm python3 "$DM_HERE/peer_swarm.py" --port "$port" --infohash "$ih" --count "$n" \
    --duration $((60 + 2 * DM_PEERS_WINDOW_S + 60)) --request-rate "$DM_REQ_RATE" --size "$size" \
    --piece-length "$plen" --paused
  local ps=$LAST_PID t_swarm ramp=NA
  t_swarm=$(dm_now)
  DM_PEER_ROWS=()
  dm_peers_up() { local p; p=$(dm_stat "$1" peers); [ "$p" != NA ] && [ "$p" -ge "$2" ]; }
  if wait_for 60 "$ps" "daemon peers: $n peers connected" dm_peers_up "$d/cfg" "$n"; then
    ramp=$(awk -v a="$t_swarm" -v b="$(dm_now)" 'BEGIN { printf "%.1f", b - a }')
    note "-- daemon peers: $n connected after $ramp s; $DM_PEERS_WINDOW_S s with connections only"
    dm_peers_window connected "$pd" "$d/cfg" "$n" "$rss_before"
    local sw1
    sw1=$(grep '^status' "$TMP/dm-swarm.out" | tail -n 1 | sed 's/^status //')
    kill -USR1 "$ps" 2>/dev/null
    note "-- daemon peers: block requests on ($((DM_REQ_RATE / 1048576)) MiB/s), 3 s, then $DM_PEERS_WINDOW_S s"
    sleep 3
    dm_peers_window requesting "$pd" "$d/cfg" "$n" "$rss_before"
  else
    FAILURES+=("daemon peers: $(dm_stat "$d/cfg" peers) of $n peers connected after 60 s")
    tail -n 2 "$TMP/dm-swarm.out" >&2
  fi
  local sw
  sw=$(grep '^status' "$TMP/dm-swarm.out" | tail -n 1 | sed 's/^status //')
  stop_bg "$ps"
  stop_bg "$pd"

  out "== Daemon, $n peer connections: one daemon seeding one $DM_PEERS_MIB MiB torrent, loopback"
  out "   settings {\"max_peers_per_torrent\": 250, \"max_peers_global\": 300}, default upload slots;"
  out "   peer_swarm.py opens $n connections (handshake + interested) and reads everything; all $n were"
  out "   connected after $ramp s. Two windows of $DM_PEERS_WINDOW_S s: \"connected\": nothing more; \"requesting\": the"
  out "   unchoked ones request 16 KiB blocks, $((DM_REQ_RATE / 1048576)) MiB/s for all together. peers = \`stats\` peers (min..max"
  out "   of samples every 5 s); RSS at the end of the window; CPU over the window, % of one core"
  out "$(printf '  %-11s %9s %10s %11s %12s %10s %7s %9s' window peers RSS_KiB KiB/peer RssAnon_KiB HWM_KiB CPU_% up_MiB/s)"
  local row
  for row in "${DM_PEER_ROWS[@]}"; do out "$row"; done
  out "   KiB/peer = (RSS - RSS seeding with no peers, $rss_before KiB) / $n"
  out "   peer_swarm.py, end of \"connected\": ${sw1:-NA}"
  out "   peer_swarm.py, end of \"requesting\": $sw"
  out ""
  summary daemon.peers.count "$n"
  summary daemon.peers.connect_s "$ramp"
  summary daemon.peers.rss_no_peers_kib "$rss_before"
  rm -rf "$d"
}

# ---------------------------------------------------------------- 3. rate limits
# Measures a stats counter over the window, after data flows and a warm-up.
# Prints "BYTES SECONDS" (NA NA when a stats call fails).
dm_window() {  # config dir, stats key
  local a b t0 t1
  sleep "$DM_WARMUP_S"
  t0=$(dm_now); a=$(dm_stat "$1" "$2")
  sleep "$DM_RATE_WINDOW_S"
  t1=$(dm_now); b=$(dm_stat "$1" "$2")
  if [ "$a" = NA ] || [ "$b" = NA ]; then echo "NA NA"; return; fi
  awk -v a="$a" -v b="$b" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%d %.3f\n", b - a, t1 - t0 }'
}

dm_counter_moves() {  # config dir, key
  local v; v=$(dm_stat "$1" "$2"); [ "$v" != NA ] && [ "$v" -gt 0 ]
}

DM_RATE_ROWS=()
dm_rate_row() {  # direction, RATE, bytes, seconds, note
  local conf meas err
  conf=$(dm_rate_bytes "$2")
  meas=$(awk -v b="$3" -v s="$4" 'BEGIN { if (b == "NA") print "NA"; else printf "%.0f", b / s }')
  err=$(awk -v m="$meas" -v c="$conf" 'BEGIN { if (m == "NA") print "NA"; else printf "%+.2f", 100 * (m - c) / c }')
  DM_RATE_ROWS+=("$(printf '  %-9s %7s %12s %12s %11s %10s %8s' "$1" "$2" "$conf" "$meas" \
    "$(awk -v m="$meas" 'BEGIN { if (m == "NA") print "NA"; else printf "%.3f", m / 1048576 }')" "$4" "$err")${5:+  $5}")
  summary "daemon.rate.$1_$2.configured_bps" "$conf"
  summary "daemon.rate.$1_$2.measured_bps" "$meas"
  summary "daemon.rate.$1_$2.error_pct" "$err"
}

dm_rate() {
  local d="$TMP/daemon-rate" mib=$BENCH_DAEMON_RATE_MIB
  local settings='{"bind": "127.0.0.1"}'
  local avail need=$((mib * 2 + 512))
  avail=$(df -Pm "$TMP" | awk 'NR == 2 { print $4 }')
  if [ "$avail" -lt "$need" ]; then
    FAILURES+=("daemon rate: $avail MiB free in $TMP, $need MiB needed"); return
  fi
  mkdir -p "$d/src" "$d/get"
  note "-- daemon rate: $mib MiB of random data, shoal create --piece-size 1M"
  head -c $((mib * 1048576)) /dev/urandom >"$d/src/rate.bin"
  "$SHOAL_BIN" create "$d/src/rate.bin" -o "$d/rate.torrent" --piece-size 1M -q >/dev/null ||
    { FAILURES+=("daemon rate: shoal create failed"); return; }
  DM_RATE_ROWS=()

  # download: shoal seed -> daemon with a global download limit
  local sport r bytes secs first=1 why
  sport=$(free_port)
  start_bg dm-rseed "$SHOAL_BIN" seed "$d/src/rate.bin" "$d/rate.torrent" --bind 127.0.0.1 --port "$sport" -v
  local spid=$LAST_PID
  if ! wait_for 120 "$spid" "daemon rate: shoal seed ready" grep -q 'pieces already here' "$TMP/dm-rseed.err"; then
    FAILURES+=("daemon rate: seeder not ready"); stop_bg "$spid"; return
  fi
  if dm_start_daemon dm-rdown "$d/cfg-down" "$d/down" "$settings"; then
    local pd=$DM_PID
    if dm_remote "$d/cfg-down" limits --down "${BENCH_DAEMON_DOWN_RATES%% *}" >/dev/null &&
       dm_remote "$d/cfg-down" add "$d/rate.torrent" -o "$d/down" >/dev/null &&
       dm_remote "$d/cfg-down" add-peer all "127.0.0.1:$sport" >/dev/null; then
      for r in $BENCH_DAEMON_DOWN_RATES; do
        why=""
        dm_remote "$d/cfg-down" limits --down "$r" >/dev/null || why="limits --down $r failed"
        if [ -z "$why" ] && [ $first = 1 ] &&
           ! wait_for 30 "$pd" "daemon rate: download starts" dm_counter_moves "$d/cfg-down" downloaded; then
          why="no download within 30 s"
        fi
        first=0
        note "-- daemon rate: download limit $r, ${DM_WARMUP_S} s warm-up + ${DM_RATE_WINDOW_S} s"
        if [ -z "$why" ]; then read -r bytes secs < <(dm_window "$d/cfg-down" downloaded); else bytes=NA secs=NA; fi
        local have size
        read -r have size < <(dm_remote "$d/cfg-down" --json list 2>/dev/null |
          python3 -c 'import json, sys
try: t = json.load(sys.stdin)["torrents"][0]; print(t["have"], t["size"])
except Exception: print("NA NA")')
        [ "$have" != NA ] && [ "$have" = "$size" ] && why="download complete before the window ended: figure too low"
        [ -n "$why" ] && FAILURES+=("daemon rate: down $r: $why")
        dm_rate_row down "$r" "$bytes" "$secs" "$why"
      done
    else
      FAILURES+=("daemon rate: could not set up the download")
    fi
    stop_bg "$pd"
  else
    FAILURES+=("daemon rate: download daemon did not start")
  fi
  stop_bg "$spid"
  rm -rf "$d/down"

  # upload: daemon seeding -> shoal get, with a global upload limit
  r=$BENCH_DAEMON_UP_RATE
  if dm_start_daemon dm-rup "$d/cfg-up" "$d/src" "$settings"; then
    local pu=$DM_PID uport=$DM_PORT gport
    why=""
    if dm_remote "$d/cfg-up" limits --up "$r" >/dev/null &&
       dm_remote "$d/cfg-up" add "$d/rate.torrent" -o "$d/src" >/dev/null &&
       wait_for 120 "$pu" "daemon rate: upload daemon seeding" dm_all_seeding "$d/cfg-up" 1; then
      gport=$(free_port)
      start_bg dm-rget "$SHOAL_BIN" get "$d/rate.torrent" -o "$d/get" --bind 127.0.0.1 --port "$gport" \
        --peer "127.0.0.1:$uport" -q
      local gpid=$LAST_PID
      note "-- daemon rate: upload limit $r, ${DM_WARMUP_S} s warm-up + ${DM_RATE_WINDOW_S} s"
      if wait_for 30 "$gpid" "daemon rate: upload starts" dm_counter_moves "$d/cfg-up" uploaded; then
        read -r bytes secs < <(dm_window "$d/cfg-up" uploaded)
        kill -0 "$gpid" 2>/dev/null || why="the leecher ended before the window did: figure too low"
      else
        why="no upload within 30 s"; bytes=NA; secs=NA
      fi
      stop_bg "$gpid"
    else
      why="could not set up the seeding daemon"; bytes=NA; secs=NA
    fi
    [ -n "$why" ] && FAILURES+=("daemon rate: up $r: $why")
    dm_rate_row up "$r" "$bytes" "$secs" "$why"
    stop_bg "$pu"
  else
    FAILURES+=("daemon rate: upload daemon did not start")
  fi

  out "== Daemon, global rate limits: $mib MiB random file, 1 MiB pieces, loopback"
  out "   down: a daemon downloads from \`shoal seed\` with \`shoal remote limits --down RATE\`; up: a daemon"
  out "   seeds to \`shoal get\` with \`limits --up RATE\`. measured = growth of \`stats\` downloaded/uploaded"
  out "   (payload bytes) over ${DM_RATE_WINDOW_S} s, after data flows and a ${DM_WARMUP_S} s warm-up; RATE is 1024-based (5M = 5 MiB/s)"
  out "$(printf '  %-9s %7s %12s %12s %11s %10s %8s' direction limit config_B/s measured_B/s meas_MiB/s window_s error_%)"
  local row
  for row in "${DM_RATE_ROWS[@]}"; do out "$row"; done
  out ""
  rm -rf "$d"
}

# ---------------------------------------------------------------- main
dm_main() {
  local part
  for part in $BENCH_DAEMON_PARTS; do
    case $part in idle|peers|rate) ;; *) echo "BENCH_DAEMON_PARTS: unknown part $part (idle peers rate)" >&2; return 2 ;; esac
  done
  case "$BENCH_DAEMON_TORRENTS" in ''|*[!0-9]*|0) echo "BENCH_DAEMON_TORRENTS must be a positive integer" >&2; return 2 ;; esac
  case "$BENCH_DAEMON_PEERS" in ''|*[!0-9]*|0) echo "BENCH_DAEMON_PEERS must be a positive integer" >&2; return 2 ;; esac
  case "$BENCH_DAEMON_RATE_MIB" in ''|*[!0-9]*|0) echo "BENCH_DAEMON_RATE_MIB must be a positive integer" >&2; return 2 ;; esac
  local t_begin=$SECONDS
  if [ "$DM_STANDALONE" = 1 ]; then
    out "== Daemon benchmark: $("$SHOAL_BIN" --version 2>&1 | head -n 1), nproc $DM_NPROC, load $(cut -d' ' -f1-3 /proc/loadavg)"
    out ""
  fi
  dm_has_part idle && dm_idle
  dm_has_part peers && dm_peers
  dm_has_part rate && dm_rate
  note "-- daemon section: $((SECONDS - t_begin)) s"
  summary daemon.section_s "$((SECONDS - t_begin))"
}

if [ "$DM_STANDALONE" = 1 ]; then
  dm_main || exit $?
  summary date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  summary loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
  summary failures "${#FAILURES[@]}"
  printf '%s\n' "${SUMMARY[@]}" >"$RESULTS"
  if [ "${#FAILURES[@]}" -gt 0 ]; then
    out "FAILED measurements:"
    for f in "${FAILURES[@]}"; do out "  $f"; done
  fi
  out "results: $RESULTS (key=value), report: $REPORT"
  [ "${#FAILURES[@]}" -eq 0 ]
  exit $?
elif has_section daemon; then
  # from run.sh: asked for by name, or no sections chosen (common.sh's default list)
  dm_main || FAILURES+=("daemon: bad settings")
fi
