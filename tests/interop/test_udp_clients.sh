#!/bin/bash
# test_udp_clients.sh -- real clients announce to shoal-tracker over UDP (BEP 15) and
# find each other through it alone, on loopback; the torrents name only
# udp://127.0.0.1:PORT/announce:  (1) aria2 seeds, libtorrent downloads;
# (2) libtorrent seeds, aria2 downloads.  Each pair has its own .torrent (another
# piece size: another infohash).  A scrape over UDP (connect + scrape, a small
# Python stdlib client) must count the seeders and the completed downloads.
# aria2 speaks UDP trackers only with its DHT on (it shares the DHT's UDP socket):
# the DHT is bound to 127.0.0.1 with no entry point and a routing table file of its
# own in $TMP, so it knows no node and can reach nothing but loopback.
source "$(dirname "$0")/lib.sh"

need_client aria2 || finish
need_client libtorrent || finish
echo "# $(client_version aria2); $(client_version libtorrent)"
echo "# $(client_version shoal) (shoal-tracker)"

read -r tport a1 d1 l1 l2 a2 d2 <<<"$(free_ports 7)"
start tracker "$TRACKER_BIN" --bind 127.0.0.1 --port "$tport" --interval 2 -vv
check "shoal-tracker listens on $tport" wait_for 20 "tracker listening" port_open "$tport"
announce="udp://127.0.0.1:$tport/announce"
check "shoal create makes the torrents (udp:// tracker only)" make_album "$announce" 32K
T1=$TORRENT
T2="$TMP/album-16k.torrent"; make_torrent "$T2" 16K "$announce"
check "the torrents name no tracker but $announce" python3 - "$T1" "$T2" "$announce" <<PY
$TRACKER_PY_PRELUDE
for p in sys.argv[1:3]:
    t, _ = dec(open(p, "rb").read(), 0)
    urls = [t.get(b"announce", b"")] + [u for tier in t.get(b"announce-list", []) for u in tier]
    if set(urls) != {sys.argv[3].encode()}:
        raise SystemExit("%s: %r" % (p, urls))
PY
copy_album "$TMP/seed"      # one copy of the data for every seeder

# aria2 options: its DHT (and so its UDP tracker client) on a UDP port of its own.
aria2_udp() {  # dht port
  printf '%s\n' --enable-dht=true --dht-listen-port="$1" --dht-file-path="$TMP/dht-$1.dat"
}
mapfile -t UDP1 < <(aria2_udp "$d1")
mapfile -t UDP2 < <(aria2_udp "$d2")

# BEP 15 scrape of a torrent over UDP: prints "complete incomplete downloaded"
# (the order tracker_scrape uses), or "-1 -1 -1" without an answer.
udp_scrape() {  # tracker port, torrent
  python3 - "$1" "$2" <<PY
$TRACKER_PY_PRELUDE
import random, socket, struct
port, path = int(sys.argv[1]), sys.argv[2]
ih = hashlib.sha1(info_span(open(path, "rb").read())).digest()
addr = ("127.0.0.1", port)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)

def ask(pkt, action, tid):
    for _ in range(3):
        s.sendto(pkt, addr)
        try:
            while True:
                d, src = s.recvfrom(2048)
                if src == addr and len(d) >= 8 and struct.unpack(">II", d[:8]) == (action, tid):
                    return d
        except (socket.timeout, TimeoutError):
            continue
    return None

tid = random.getrandbits(32)
d = ask(struct.pack(">QII", 0x41727101980, 0, tid), 0, tid)
if d is None or len(d) < 16:
    print(-1, -1, -1); sys.exit(0)
cid = struct.unpack(">Q", d[8:16])[0]
tid = random.getrandbits(32)
d = ask(struct.pack(">QII", cid, 2, tid) + ih, 2, tid)
if d is None or len(d) < 20:
    print(-1, -1, -1); sys.exit(0)
seeders, completed, leechers = struct.unpack(">III", d[8:20])
print(seeders, leechers, completed)
PY
}
scrape_has() {  # torrent, min complete, min downloaded: the UDP scrape reached both
  local c i d
  read -r c i d <<<"$(udp_scrape "$tport" "$1")"
  SCRAPE="complete=$c incomplete=$i downloaded=$d"
  [ "${c:--1}" -ge "$2" ] && [ "${d:--1}" -ge "$3" ]
}
# The tracker answered UDP announces (action 1) from that local port.
tracker_udp_from() {  # port
  grep -q "udp: [0-9]* bytes from 127.0.0.1:$1, action 1: answered" "$TMP/tracker.err"
}

# 1. aria2 seeds, libtorrent downloads: both know only the UDP tracker.
start_aria2_seed aria2_seed "$T1" "$TMP/seed" "$a1" "${UDP1[@]}"
check "aria2 seeder listens" wait_for $((20 * SLOW)) "aria2 listening" port_open "$a1"
check "aria2 announced over UDP and got an answer" wait_for $((10 * SLOW)) "aria2's UDP announce" \
  grep -q "UDPT received ANNOUNCE reply from 127.0.0.1:$tport" "$TMP/aria2_seed.log"
check "aria2's DHT has no entry point (loopback only)" grep -q "No DHT entry point specified" "$TMP/aria2_seed.log"
check "shoal-tracker answered aria2's UDP announces (from its DHT port $d1)" tracker_udp_from "$d1"
check "the UDP scrape counts the aria2 seeder" wait_for $((10 * SLOW)) "1 seeder" scrape_has "$T1" 1 0
echo "# UDP scrape: $SCRAPE"
start_lt lt1 "$T1" "$TMP/lt1" "$l1" --timeout $((30 * SLOW))
wait_exit $((35 * SLOW)) "$PID_lt1"
rc=$WAIT_RC
check "libtorrent finds the aria2 seeder through the UDP tracker and completes (rc $rc)" test "$rc" -eq 0
check "libtorrent's files are identical" same_album "$TMP/lt1"
check "libtorrent's data came from aria2" test "$(lt_bytes lt1 recv "client=aria2")" -gt 0
check "libtorrent's tracker replies came from the UDP tracker" grep -q "^tracker-reply: $announce peers=" "$TMP/lt1.out"
check "libtorrent reported no tracker error" bash -c "! grep -q '^tracker-error' '$TMP/lt1.out'"
check "shoal-tracker answered libtorrent's UDP announces (from its port $l1)" tracker_udp_from "$l1"
[ "$rc" -eq 0 ] || { show_logs lt1; show_logs aria2_seed 10; show_logs tracker 10; }
check "the UDP scrape counts libtorrent's completed download" \
  wait_for $((10 * SLOW)) "completed announce" scrape_has "$T1" 1 1
echo "# UDP scrape: $SCRAPE"
stop_pid "$PID_aria2_seed"

# 2. libtorrent seeds, aria2 downloads.
start_lt lt2 "$T2" "$TMP/seed" "$l2" --seed --timeout $((60 * SLOW))
check "libtorrent seeder checked its data" \
  wait_for $((20 * SLOW)) "libtorrent seeding" out_has lt2 "^seeding: $NAME"
check "libtorrent seeder announced over UDP" \
  wait_for $((10 * SLOW)) "libtorrent's UDP announce" out_has lt2 "^tracker-reply: $announce"
check "the UDP scrape counts the libtorrent seeder" wait_for $((10 * SLOW)) "1 seeder" scrape_has "$T2" 1 0
echo "# UDP scrape: $SCRAPE"
# (aria2 seeds on after completing: one that stops at once announces "stopped"
# with left=0 and never "completed")
ARIA2_SEED_MINUTES=5 start_aria2_leech aria2_leech "$T2" "$TMP/aria2" "$a2" "${UDP2[@]}"
wait_for $((30 * SLOW)) "aria2's completion hook" test -f "$TMP/aria2_leech.done"
check "aria2 finds the libtorrent seeder through the UDP tracker and completes" test -f "$TMP/aria2_leech.done"
check "aria2's files are identical" same_album "$TMP/aria2"
check "aria2's data came from libtorrent" \
  bash -c "grep -q 'From: 127.0.0.1:$l2 piece index=' '$TMP/aria2_leech.log'"
check "aria2 announced over UDP" grep -q "UDPT received ANNOUNCE reply from 127.0.0.1:$tport" "$TMP/aria2_leech.log"
[ -f "$TMP/aria2_leech.done" ] || { show_logs aria2_leech; show_logs lt2 10; }
check "the UDP scrape counts aria2's completed download (2 seeders)" \
  wait_for $((10 * SLOW)) "aria2's completed announce" scrape_has "$T2" 2 1
echo "# UDP scrape: $SCRAPE"
stop_pid "$PID_aria2_leech"
stop_pid "$PID_lt2"
check "shoal-tracker logged no HTTP request, only UDP ones (it logs each as \"STATUS /PATH\")" \
  bash -c "! grep -qE 'debug: [0-9]{3} /' '$TMP/tracker.err' && grep -q 'udp: .* action 2: answered' '$TMP/tracker.err'"
stop_pid "$PID_tracker"
check "shoal-tracker stops cleanly on SIGTERM (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
finish
