#!/bin/bash
# test_udp_tracker.sh -- UDP trackers (BEP 15) on loopback: shoal-tracker answers connect,
# announce, scrape and malformed requests over 127.0.0.1 and ::1 (a Python client), and
# shares its swarms with HTTP; a seeder and a leecher whose torrent lists only a udp://
# tracker find each other; a torrent whose first tier is dead (UDP and HTTP) falls back
# to its second tier.
# SANITIZE_OK
source "$(dirname "$0")/lib.sh"

SLOW=1; [ -n "$SHOAL_WRAP" ] && SLOW=4

# Python checks; their ok/not ok lines count here, and a crash of the checker
# counts as a failure.
run_py() {  # mode, args...
  run_py_checks "$1" "$TMP/udp_checks.py" "$@"
}

cat >"$TMP/udp_checks.py" <<'PY'
import random, socket, struct, sys, urllib.parse

mode = sys.argv[1]
MAGIC = 0x41727101980

def udp(host):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(2)
    return s

def ask(s, addr, pkt, wait=2.0):
    """Sends pkt, returns the reply (None after `wait` seconds)."""
    s.settimeout(wait)
    s.sendto(pkt, addr)
    try:
        while True:
            d, src = s.recvfrom(65536)
            if src[0] == addr[0] and src[1] == addr[1]:
                return d
    except (socket.timeout, TimeoutError):
        return None

def connect(s, addr):
    tid = random.getrandbits(32)
    d = ask(s, addr, struct.pack(">QII", MAGIC, 0, tid))
    if d is None or len(d) < 16:
        return None
    a, t, cid = struct.unpack(">IIQ", d[:16])
    return cid if a == 0 and t == tid else None

def announce_pkt(cid, tid, ih, pid, left, event, port, numwant=-1, ln=98):
    p = struct.pack(">QII20s20sQQQIIIiH", cid, 1, tid, ih, pid, 0, left, 0, event, 0x01020304, 7, numwant, port)
    return p[:ln]

def http_announce(host, port, ih, pid, pport, left):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    q = "info_hash=%s&peer_id=%s&port=%d&uploaded=0&downloaded=0&left=%d" % (
        urllib.parse.quote_from_bytes(ih, safe=""), urllib.parse.quote_from_bytes(pid, safe=""), pport, left)
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect((host, port))
    s.sendall(("GET /announce?%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % q).encode())
    data = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        data += c
    s.close()
    return bdecode(data.split(b"\r\n\r\n", 1)[1])

if mode == "protocol":
    host, port = sys.argv[2], int(sys.argv[3])
    v6 = ":" in host
    tag = "[%s] " % host
    esz = 18 if v6 else 6
    me = socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, host)
    addr = (host, port)
    s = udp(host)
    ih = bytes([0xaa if v6 else 0xbb]) * 20

    tid = 0x01020304
    d = ask(s, addr, struct.pack(">QII", MAGIC, 0, tid))
    ok(d is not None and len(d) == 16 and struct.unpack(">II", d[:8]) == (0, tid), tag + "connect: 16 bytes, action 0, transaction id echoed")
    cid = struct.unpack(">Q", d[8:16])[0] if d else 0
    ok(ask(s, addr, struct.pack(">QII", MAGIC + 1, 0, 5), 0.5) is None, tag + "connect with a wrong protocol id: ignored")
    ok(ask(s, addr, struct.pack(">QII", MAGIC, 0, 5)[:15], 0.5) is None, tag + "15-byte packet: ignored")
    ok(ask(s, addr, announce_pkt(cid ^ 1, 6, ih, b"A" * 20, 100, 2, 6001), 0.5) is None, tag + "announce with a wrong connection id: ignored")
    s2 = udp(host)
    ok(ask(s2, addr, announce_pkt(cid, 6, ih, b"A" * 20, 100, 2, 6001), 0.5) is None, tag + "connection id from another socket (port): ignored")

    d = ask(s, addr, announce_pkt(cid, 7, ih, b"A" * 20, 100, 2, 6001))
    ok(d is not None and len(d) == 20 and struct.unpack(">IIIII", d[:20]) == (1, 7, 2, 1, 0),
       tag + "announce: action 1, interval 2, 1 leecher, 0 seeders, no peers")
    cid2 = connect(s2, addr)
    d = ask(s2, addr, announce_pkt(cid2, 8, ih, b"B" * 20, 0, 2, 6002))
    ok(d is not None and struct.unpack(">IIIII", d[:20]) == (1, 8, 2, 1, 1) and d[20:] == me + struct.pack(">H", 6001),
       tag + "second peer (seed): gets the first as one %d-byte entry (source IP, announced port)" % esz)
    d = ask(s, addr, announce_pkt(cid, 9, ih, b"A" * 20, 100, 0, 6001, numwant=0))
    ok(d is not None and len(d) == 20, tag + "num_want 0: no peers")

    d = ask(s, addr, struct.pack(">QII", cid, 2, 10) + ih + b"\x01" * 20)
    ok(d is not None and d == struct.pack(">IIIIIIII", 2, 10, 1, 0, 1, 0, 0, 0),
       tag + "scrape: (1 seeder, 0 completed, 1 leecher) and zeros for an unknown infohash")
    d = ask(s, addr, announce_pkt(cid, 11, ih, b"A" * 20, 0, 1, 6001))
    d = ask(s, addr, struct.pack(">QII", cid, 2, 12) + ih)
    ok(d is not None and d == struct.pack(">IIIII", 2, 12, 2, 1, 0), tag + "completed counts in the scrape")

    d = ask(s, addr, announce_pkt(cid, 13, ih, b"A" * 20, 0, 0, 6001, ln=60))
    ok(d is not None and d[:8] == struct.pack(">II", 3, 13) and d[8:] == b"announce too short", tag + "short announce: error packet")
    d = ask(s, addr, announce_pkt(cid, 14, ih, b"A" * 20, 0, 9, 6001))
    ok(d is not None and d[:8] == struct.pack(">II", 3, 14) and d[8:] == b"invalid event", tag + "event 9: error packet")
    d = ask(s, addr, struct.pack(">QII", cid, 2, 15) + ih[:19])
    ok(d is not None and d[:8] == struct.pack(">II", 3, 15), tag + "scrape without a whole infohash: error packet")
    d = ask(s, addr, struct.pack(">QII", cid, 42, 16))
    ok(d is not None and d[:8] == struct.pack(">II", 3, 16) and d[8:] == b"unknown action", tag + "unknown action: error packet")

    # One table for HTTP and UDP.
    h = http_announce(host, port, ih, b"C" * 20, 6003, 5)
    peers = h.get(b"peers6" if v6 else b"peers", b"")
    got = {peers[i:i+esz] for i in range(0, len(peers), esz)}
    ok(me + struct.pack(">H", 6001) in got and me + struct.pack(">H", 6002) in got and h.get(b"complete") == 2,
       tag + "an HTTP announcer on the same port sees both UDP peers")
    d = ask(s, addr, announce_pkt(cid, 17, ih, b"A" * 20, 0, 0, 6001))
    ok(d is not None and me + struct.pack(">H", 6003) in [d[i:i+esz] for i in range(20, len(d), esz)],
       tag + "a UDP announcer sees the HTTP peer")
    d = ask(s, addr, announce_pkt(cid, 18, ih, b"A" * 20, 0, 3, 6001))
    d = ask(s, addr, struct.pack(">QII", cid, 2, 19) + ih)
    ok(d is not None and struct.unpack(">III", d[8:20]) == (1, 1, 1), tag + "stopped removes the peer")

elif mode == "scrape":
    host, port, ihhex = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    addr = (host, port)
    s = udp(host)
    cid = connect(s, addr)
    d = ask(s, addr, struct.pack(">QII", cid or 0, 2, 77) + bytes.fromhex(ihhex))
    st = struct.unpack(">III", d[8:20]) if d and len(d) == 20 else None
    # The seeder stays; the leecher's event=stopped (sent over UDP as it exits) removed it.
    ok(st is not None and st[0] == 1 and st[2] == 0, "after the leecher left: 1 seeder, 0 leechers (scrape %r)" % (st,))

elif mode == "tiers":
    # Rewrites a torrent's announce-list, keeping the info dictionary's bytes.
    src, dst = sys.argv[2], sys.argv[3]
    tiers = [t.split(",") for t in sys.argv[4:]]
    b = open(src, "rb").read()
    def span(i):
        c = b[i:i+1]
        if c == b"i":
            return b.index(b"e", i) + 1
        if c in (b"l", b"d"):
            i += 1
            while b[i:i+1] != b"e":
                i = span(i)
            return i + 1
        j = b.index(b":", i)
        return j + 1 + int(b[i:j])
    def enc(v):
        if isinstance(v, list):
            return b"l" + b"".join(enc(x) for x in v) + b"e"
        v = v.encode() if isinstance(v, str) else v
        return b"%d:%s" % (len(v), v)
    i, items = 1, {}
    while b[i:i+1] != b"e":
        kend = span(i)
        k = bdecode(b[i:kend])
        vend = span(kend)
        items[k] = b[kend:vend]
        i = vend
    items[b"announce"] = enc(tiers[0][0])
    items[b"announce-list"] = enc(tiers)
    out = b"d" + b"".join(enc(k) + items[k] for k in sorted(items)) + b"e"
    open(dst, "wb").write(out)
    ok(True, "torrent with tiers %r written" % (tiers,))
PY

check "tracker binary exists" test -x "$TRACKER_BIN"
check "shoal binary exists" test -x "$SHOAL_BIN"

have_v6=0
python3 -c 'import socket; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("::1", 0))' 2>/dev/null && have_v6=1

# (a) The tracker's UDP side, on 127.0.0.1 and ::1 at the port of its HTTP side.
binds=(--bind 127.0.0.1)
[ "$have_v6" = 1 ] && binds+=(--bind ::1)
start tr "$TRACKER_BIN" "${binds[@]}" --port 0 --interval 2 -v
TPORT=""
if wait_for 20 "tracker to print its address" grep -q 'listening on 127.0.0.1:' "$TMP/tr.err"; then
  TPORT=$(sed -n 's/^shoal-tracker: listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$TMP/tr.err" | head -n 1)
fi
check "tracker listens on 127.0.0.1 (port ${TPORT:-none})" test -n "$TPORT"
if [ "$have_v6" = 1 ]; then
  check "tracker listens on [::1] at the same port" grep -q "listening on \[::1\]:$TPORT\$" "$TMP/tr.err"
else
  echo "# no IPv6 loopback here: ::1 checks skipped"
fi
[ -n "$TPORT" ] && run_py protocol 127.0.0.1 "$TPORT"
[ -n "$TPORT" ] && [ "$have_v6" = 1 ] && run_py protocol ::1 "$TPORT"

# A port taken for UDP but free for TCP: the tracker refuses to start (exit 1).
busy=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
python3 -c "import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1',$busy)); time.sleep(8)" &
holder=$!
PIDS+=("$holder")
wait_for 10 "the UDP port to be held" bash -c "ss -Hunl 'sport = :$busy' | grep -q ."
timeout 10 "$TRACKER_BIN" --bind 127.0.0.1 --port "$busy" >/dev/null 2>"$TMP/busy.err"
rc=$?
check "UDP port in use: exit 1 (rc $rc)" test "$rc" -eq 1
# (it says udp; tcp if another process took the same TCP port meanwhile)
check "UDP port in use: says so" grep -qE 'cannot listen on 127.0.0.1:.*\((udp|tcp)\)' "$TMP/busy.err"
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null

# (b) A torrent whose only tracker is udp://: seeder and leecher find each other.
src="$TMP/src/data"
mkdir -p "$src/sub"
make_file "$src/a.bin" 1500001 7
make_file "$src/sub/b.bin" 333333 8
export SHOAL_ANNOUNCE_FLOOR=1
check "shoal create with a udp:// tracker" \
  shoal create "$src" -o "$TMP/u.torrent" --piece-size 32K --announce "udp://127.0.0.1:$TPORT/announce" -q
start_shoal seeder seed "$src" "$TMP/u.torrent" --bind 127.0.0.1 --port "$(free_port)" -v
sport=$(shoal_port seeder)
check "seeder listens" test -n "$sport"
ih=$(out_value seeder infohash)
mkdir -p "$TMP/l1"
start_shoal leech1 get "$TMP/u.torrent" -o "$TMP/l1" --bind 127.0.0.1 --port "$(free_port)" -v
wait_exit $((90 * SLOW)) "$PID_leech1"
check "udp-only leecher exits 0 (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
check "udp-only leecher has identical files" same_tree "$src" "$TMP/l1/data"
check "leecher heard from the UDP tracker" grep -q "tracker udp://127.0.0.1:$TPORT/announce: ok" "$TMP/leech1.err"
[ -n "$ih" ] && run_py scrape 127.0.0.1 "$TPORT" "$ih"

# (c) First tier dead (UDP and HTTP), second tier live: the download still completes.
dead_udp=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
dead_http=$(free_port)
run_py tiers "$TMP/u.torrent" "$TMP/t.torrent" \
  "udp://127.0.0.1:$dead_udp,http://127.0.0.1:$dead_http/announce" "udp://127.0.0.1:$TPORT/announce"
check "rewritten torrent keeps the infohash" \
  bash -c "'$SHOAL_BIN' info '$TMP/t.torrent' | grep -q '$ih'"
mkdir -p "$TMP/l2"
start_shoal leech2 get "$TMP/t.torrent" -o "$TMP/l2" --bind 127.0.0.1 --port "$(free_port)" -v
wait_exit $((120 * SLOW)) "$PID_leech2"
check "tiered leecher exits 0 (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
check "tiered leecher has identical files" same_tree "$src" "$TMP/l2/data"
check "dead UDP tracker given up (time-out reported)" grep -q "tracker udp://127.0.0.1:$dead_udp: no answer" "$TMP/leech2.err"
check "live tracker of the second tier answered" grep -q "tracker udp://127.0.0.1:$TPORT/announce: ok" "$TMP/leech2.err"

kill -TERM "$PID_seeder"
wait_exit $((20 * SLOW)) "$PID_seeder"
check "seeder stops cleanly (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
kill -TERM "$PID_tr"
wait_exit 10 "$PID_tr"
check "tracker exits 0 on SIGTERM (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
finish
