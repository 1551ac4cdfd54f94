# lib.sh -- helpers for interop tests of shoal against real BitTorrent clients from
# Debian packages (aria2, transmission-cli, python3-libtorrent), all on 127.0.0.1
# with DHT, LSD, PEX, UPnP/NAT-PMP off.  Sources tests/run/lib.sh (start, wait_for,
# wait_exit, check, finish, ...) and adds: installing a client when missing (a
# client that cannot be had makes the test fail), printing its version, the test
# data, and one start_* per client and role.  Every process is started through
# start() so that it is recorded and ended by its PID.
# shellcheck shell=bash
source "$(dirname "${BASH_SOURCE[0]}")/../run/lib.sh"
INTEROP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# python3-libtorrent is installed for Debian's own python3, not another one on PATH.
LT_PYTHON=${LT_PYTHON:-/usr/bin/python3}
LT_CLIENT="$INTEROP_DIR/lt_client.py"
SLOW=1; [ -n "$SHOAL_WRAP" ] && SLOW=4

# Runs apt-get (through sudo when not root); quiet, never interactive.
interop_apt_install() {  # package...
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo -n"
  DEBIAN_FRONTEND=noninteractive timeout 180 $sudo apt-get install -y -qq --no-install-recommends "$@" \
      >"$TMP/apt.out" 2>&1 && return 0
  timeout 120 $sudo apt-get update -qq >>"$TMP/apt.out" 2>&1
  DEBIAN_FRONTEND=noninteractive timeout 180 $sudo apt-get install -y -qq --no-install-recommends "$@" \
      >>"$TMP/apt.out" 2>&1
}

have_aria2() { command -v aria2c >/dev/null 2>&1; }
have_transmission() { command -v transmission-cli >/dev/null 2>&1; }
have_libtorrent() { "$LT_PYTHON" -c 'import libtorrent' >/dev/null 2>&1; }

# Makes sure a client is there, installing its Debian package when it is not;
# counts a failure (not a skip) when it still is not.  Returns 1 then.
need_client() {  # aria2|transmission|libtorrent
  local probe pkg
  case "$1" in
    aria2) probe=have_aria2 pkg=aria2 ;;
    transmission) probe=have_transmission pkg=transmission-cli ;;
    libtorrent) probe=have_libtorrent pkg=python3-libtorrent ;;
    *) echo "need_client: unknown client $1"; return 2 ;;
  esac
  $probe && return 0
  echo "# $1 missing: installing $pkg"
  interop_apt_install "$pkg"
  if $probe; then return 0; fi
  tail -n 5 "$TMP/apt.out" 2>/dev/null
  fail "$1 is installed (Debian package $pkg; add it to tests/deps.sh)"
  return 1
}

client_version() {  # aria2|transmission|libtorrent|shoal
  case "$1" in
    aria2) aria2c --version 2>/dev/null | head -n 1 ;;
    transmission) transmission-cli --version 2>&1 | head -n 1 ;;
    libtorrent) "$LT_PYTHON" -c 'import libtorrent as lt; print("libtorrent (python3-libtorrent)", lt.__version__)' 2>/dev/null ;;
    shoal) "$SHOAL_BIN" --version 2>/dev/null | head -n 1 ;;
  esac
}

# The test data: a multi-file torrent of a few MiB with odd file sizes, nested
# folders, a one-byte file and an empty one, split into 32 KiB pieces (or PIECE)
# so that pieces straddle file boundaries.  Sets SRC (the folder), NAME and TORRENT.
make_album() {  # announce URL (may be empty), piece size (default 32K)
  NAME=album
  SRC="$TMP/src/$NAME"
  mkdir -p "$SRC/disc 1" "$SRC/disc 2/deep"
  make_file "$SRC/disc 1/a.bin" 1000003 11
  make_file "$SRC/disc 1/b.bin" 1 12
  make_file "$SRC/disc 2/c.bin" 2345679 13
  make_file "$SRC/disc 2/deep/d.bin" 65537 14
  : >"$SRC/empty.txt"
  make_file "$SRC/z.bin" 777773 15
  TORRENT="$TMP/$NAME.torrent"
  make_torrent "$TORRENT" "${2:-32K}" "$1"
}

# Another .torrent of the same data (another piece size: another infohash).
make_torrent() {  # output, piece size, announce URL (may be empty)
  local ann=()
  [ -n "$3" ] && ann=(--announce "$3")
  "$SHOAL_BIN" create "$SRC" -o "$1" --piece-size "$2" "${ann[@]}" -q >/dev/null
}

# A copy of the data for a client that seeds it.
copy_album() {  # dest dir (the torrent's folder goes inside)
  mkdir -p "$1" && cp -r "$SRC" "$1/"
}

# The files a client wrote match the source (empty files included).
same_album() {  # download dir
  [ -d "$1/$NAME" ] && diff -r "$SRC" "$1/$NAME" >/dev/null
}

# Like same_album, except that empty files may be missing: Transmission 3.00 does
# not create zero-length files.  Every other file must match byte for byte and
# nothing else may be there.
same_album_but_empty() {  # download dir
  local d="$1/$NAME" f
  [ -d "$d" ] || return 1
  while IFS= read -r -d '' f; do
    if [ -s "$SRC/$f" ]; then
      cmp -s "$SRC/$f" "$d/$f" || { echo "# differs or missing: $f"; return 1; }
    elif [ -e "$d/$f" ] && [ -s "$d/$f" ]; then
      echo "# not empty: $f"; return 1
    fi
  done < <(cd "$SRC" && find . -type f -print0)
  while IFS= read -r -d '' f; do
    [ -f "$SRC/$f" ] || { echo "# extra file: $f"; return 1; }
  done < <(cd "$d" && find . -type f -print0)
}

# ---- aria2 ----
ARIA2_COMMON=(--enable-dht=false --enable-dht6=false --bt-enable-lpd=false --enable-peer-exchange=false
              --disable-ipv6=true --interface=127.0.0.1 --bt-external-ip=127.0.0.1 --no-conf=true
              --console-log-level=warn --summary-interval=0 --file-allocation=none
              --bt-tracker-interval=2 --bt-stop-timeout=0
              --log-level=info --auto-save-interval=0 --rpc-save-upload-metadata=false
              --bt-save-metadata=false --enable-rpc=false --allow-overwrite=true)

# aria2 downloads TORRENT into DIR (peers only from the tracker); once complete (its
# hash checks passed) --on-bt-download-complete touches $TMP/NAME.done, and aria2
# exits, or seeds on for ARIA2_SEED_MINUTES (default 0) minutes.
start_aria2_leech() {  # name, torrent, dir, port, extra args...
  local name=$1 torrent=$2 dir=$3 port=$4; shift 4
  mkdir -p "$dir"
  printf '#!/bin/sh\ntouch "%s"\n' "$TMP/$name.done" >"$TMP/$name.hook"
  chmod +x "$TMP/$name.hook"
  start "$name" aria2c "${ARIA2_COMMON[@]}" --listen-port="$port" -d "$dir" \
    --seed-time="${ARIA2_SEED_MINUTES:-0}" --seed-ratio=0.0 \
    --on-bt-download-complete="$TMP/$name.hook" -l "$TMP/$name.log" "$@" "$torrent"
}

# aria2 seeds the data already in DIR (not re-hashed) until ended by its PID.
start_aria2_seed() {  # name, torrent, dir, port, extra args...
  local name=$1 torrent=$2 dir=$3 port=$4; shift 4
  start "$name" aria2c "${ARIA2_COMMON[@]}" --listen-port="$port" -d "$dir" --bt-seed-unverified=true \
    --seed-time=60 --seed-ratio=0.0 -l "$TMP/$name.log" "$@" "$torrent"
}

# ---- transmission-cli ----
# A settings dir for NAME: loopback only, DHT/LPD/PEX/uTP/port mapping off.
transmission_settings() {  # name, port, download dir
  local cfg="$TMP/$1.cfg"
  mkdir -p "$cfg"
  cat >"$cfg/settings.json" <<EOF
{
  "bind-address-ipv4": "127.0.0.1",
  "bind-address-ipv6": "::1",
  "blocklist-enabled": false,
  "dht-enabled": false,
  "lpd-enabled": false,
  "pex-enabled": false,
  "utp-enabled": false,
  "port-forwarding-enabled": false,
  "peer-port": $2,
  "peer-port-random-on-start": false,
  "rpc-enabled": false,
  "incomplete-dir-enabled": false,
  "download-dir": "$3",
  "speed-limit-down-enabled": false,
  "speed-limit-up-enabled": false,
  "ratio-limit-enabled": false,
  "idle-seeding-limit-enabled": false,
  "start-added-torrents": true,
  "message-level": ${TR_MSGLEVEL:-2}
}
EOF
  echo "$cfg"
}

# transmission-cli downloads (or, with the data already in DIR, verifies and seeds)
# (TR_MSGLEVEL=3 in the environment: its debug log, in $TMP/NAME.err)
# TORRENT; its -f script touches $TMP/NAME.done when the torrent is complete.
# It keeps running (seeding) until ended by its PID.
start_transmission() {  # name, torrent, dir, port
  local name=$1 torrent=$2 dir=$3 port=$4 cfg
  mkdir -p "$dir"
  cfg=$(transmission_settings "$name" "$port" "$dir")
  printf '#!/bin/sh\ntouch "%s"\n' "$TMP/$name.done" >"$TMP/$name.hook"
  chmod +x "$TMP/$name.hook"
  start "$name" transmission-cli -g "$cfg" -w "$dir" -p "$port" -M -f "$TMP/$name.hook" "$torrent"
}

# transmission-cli's log (it goes to stderr; progress lines to stdout).
transmission_log() {  # name
  tr '\r' '\n' <"$TMP/$1.err" | grep -v '^Progress:\|^Seeding,\|^ *$'
}

# ---- libtorrent (lt_client.py) ----
start_lt() {  # name, torrent, dir, port, lt_client args...
  local name=$1 torrent=$2 dir=$3 port=$4; shift 4
  mkdir -p "$dir"
  start "$name" "$LT_PYTHON" "$LT_CLIENT" "$torrent" --dir "$dir" --port "$port" "$@"
}

# ---- common ----
# Several free ports at once, all different, picked at random below the kernel's
# range for outgoing connections' ports (so that no client's outgoing connection
# can take one before the client meant to listen on it does).
free_ports() {  # count
  python3 - "$1" <<'PY'
import random, socket, sys
lo = 32768
try:
    lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    pass
lo = max(lo, 12000)
socks = []
tries = 0
while len(socks) < int(sys.argv[1]) and tries < 10000:
    tries += 1
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", random.randrange(10000, lo)))
        socks.append(s)
    except OSError:
        s.close()
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

# Ends a started process by its PID (TERM, then KILL after a bounded wait).
stop_pid() {  # pid, seconds (default 10)
  kill -TERM "$1" 2>/dev/null || return 0
  wait_exit "${2:-10}" "$1" || { kill -KILL "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
}

# Shows the end of a process's output files after a failure.
show_logs() {  # name, lines (default 25)
  local f n=${2:-25}
  for f in "$TMP/$1.out" "$TMP/$1.err" "$TMP/$1.log"; do
    [ -s "$f" ] || continue
    echo "---- $(basename "$f") (last $n lines) ----"
    tr '\r' '\n' <"$f" | grep -v '^Progress:\|^ *$' | tail -n "$n"
  done
}

# Python shared by the tracker helpers: a small bencode decoder and the infohash
# of a .torrent (the SHA-1 of its info dict's bytes).
TRACKER_PY_PRELUDE=$(cat <<'PY'
import hashlib, sys, urllib.parse, urllib.request

def dec(b, i):
    c = b[i:i+1]
    if c == b"i":
        j = b.index(b"e", i); return int(b[i+1:j]), j + 1
    if c in (b"l", b"d"):
        i += 1; out = [] if c == b"l" else {}
        while b[i:i+1] != b"e":
            if c == b"l":
                v, i = dec(b, i); out.append(v)
            else:
                k, i = dec(b, i); v, i = dec(b, i); out[k] = v
        return out, i + 1
    j = b.index(b":", i); n = int(b[i:j]); return b[j+1:j+1+n], j + 1 + n

def info_span(b):
    # the raw bytes of the "info" value in the torrent's top dict
    i = 1
    while b[i:i+1] != b"e":
        k, i = dec(b, i)
        start = i
        _, i = dec(b, i)
        if k == b"info":
            return b[start:i]
    raise SystemExit("no info dict")

PY
)

# Peer ids by listen port, as the tracker knows them (non-compact announce answer):
# prints "PORT PEERID_HEX" lines for the torrent's swarm.  Call it once the
# clients are done: the query itself is an announce (of port 9, then "stopped").
tracker_peers() {  # tracker port, torrent
  python3 - "$1" "$2" <<PY
$TRACKER_PY_PRELUDE
port, path = int(sys.argv[1]), sys.argv[2]
ih = hashlib.sha1(info_span(open(path, "rb").read())).digest()

def announce(event):
    q = {"info_hash": ih, "peer_id": b"-QQ0000-observer0000", "port": 9, "uploaded": 0,
         "downloaded": 0, "left": 1, "compact": 0, "numwant": 50}
    if event:
        q["event"] = event
    url = "http://127.0.0.1:%d/announce?%s" % (port, urllib.parse.urlencode(q))
    with urllib.request.urlopen(url, timeout=5) as r:
        return dec(r.read(), 0)[0]

d = announce(None)      # a leecher asking (seeds get only leechers): listed for a moment
announce("stopped")
for p in d.get(b"peers", []):
    print(p[b"port"], p.get(b"peer id", b"").hex())
PY
}

# Sum of lt_client's per-peer byte counts (recv or sent) over its "peer:" lines
# matching an extended regex (e.g. a pid prefix, "pid=2d5348" for shoal nodes).
lt_bytes() {  # name, recv|sent, regex
  grep -E "^peer: " "$TMP/$1.out" | grep -E -- "$3" |
    sed -n "s/.* $2=\([0-9][0-9]*\).*/\1/p" | awk '{ s += $1 } END { print s + 0 }'
}
# shoal's peer ids start with "-SH" (hex 2d5348).
SHOAL_PID_RE='pid=2d5348'

# Bytes of PIECE messages aria2 received, per remote peer id, from its log
# (--log-level=info): prints "PEERID_HEX BYTES" lines.
aria2_recv_by_peer() {  # log file
  python3 - "$1" <<'PY'
import re, sys, urllib.parse
pid_of, got = {}, {}
hs = re.compile(r"(CUID#\d+) - From: \S+ handshake peerId=([^,]*),")
pc = re.compile(r"(CUID#\d+) - From: \S+ piece index=\d+, begin=\d+, length=(\d+)")
for line in open(sys.argv[1], errors="replace"):
    m = hs.search(line)
    if m:
        pid_of[m.group(1)] = urllib.parse.unquote_to_bytes(m.group(2)).hex()
        continue
    m = pc.search(line)
    if m:
        pid = pid_of.get(m.group(1), "unknown")
        got[pid] = got.get(pid, 0) + int(m.group(2))
for pid, n in sorted(got.items()):
    print(pid, n)
PY
}

# The tracker's scrape of a torrent: prints "complete incomplete downloaded".
tracker_scrape() {  # tracker port, torrent
  python3 - "$1" "$2" <<PY
$TRACKER_PY_PRELUDE
port, path = int(sys.argv[1]), sys.argv[2]
ih = hashlib.sha1(info_span(open(path, "rb").read())).digest()
url = "http://127.0.0.1:%d/scrape?%s" % (port, urllib.parse.urlencode({"info_hash": ih}))
with urllib.request.urlopen(url, timeout=5) as r:
    d, _ = dec(r.read(), 0)
f = d.get(b"files", {}).get(ih, {})
print(f.get(b"complete", -1), f.get(b"incomplete", -1), f.get(b"downloaded", -1))
PY
}

# A started process's stdout has a line matching REGEX (quiet while the file is
# not there yet).
out_has() {  # name, regex
  grep -Eq -- "$2" "$TMP/$1.out" 2>/dev/null
}

# Peers a shoal node (run with -vv) dropped as broken after their handshake:
# prints "ADDR: REASON" for each connection that logged "connected" and then
# closed for a protocol error or a malformed/oversized message.  (A refused
# encrypted handshake, which aria2 and libtorrent try first, closes before any
# "connected" line and is not counted.)
shoal_dropped() {  # name
  awk '
    / connected \((incoming|outgoing)\)$/ { a = $4; sub(/:$/, "", a); up[a] = 1; next }
    /: closed: (protocol error|malformed message|oversized message)$/ {
      a = $4; sub(/:$/, "", a)
      if (a in up) { r = $0; sub(/.*: closed: /, "", r); print a ": " r }
      delete up[a]; next
    }
    /: closed: / { a = $4; sub(/:$/, "", a); delete up[a] }
  ' "$TMP/$1.err"
}
