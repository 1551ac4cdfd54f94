#!/bin/bash
# test_mixed.sh -- one swarm of mixed clients on loopback: a shoal seeder and, at the
# same time, leechers of shoal, aria2 and libtorrent, with a shoal-tracker.
# The seeder does not announce (its .torrent has no tracker: same infohash) and only
# the shoal leecher is told its address (libtorrent is told the shoal leecher's;
# aria2 only knows the tracker), so every byte the real clients get has
# passed through the shoal leecher first: aria2 and libtorrent must each receive
# data from the shoal leecher itself.  aria2 is rate-limited so that it cannot
# finish from libtorrent alone before its connection to shoal is up (aria2 tries an
# encrypted handshake first, which shoal refuses, and retries in plain ~1 s later).
# Every leecher must finish with byte-identical files.  libtorrent's per-peer block
# counts and aria2's log of PIECE messages are keyed by peer id; the shoal
# leecher's peer id is read back from the tracker (non-compact answer) by its port.
source "$(dirname "$0")/lib.sh"

need_client aria2 || finish
need_client libtorrent || finish
echo "# $(client_version aria2); $(client_version libtorrent); $(client_version shoal)"

read -r tport sport gport aport lport <<<"$(free_ports 5)"
start_tracker tracker "$tport"
check "shoal create makes the multi-file torrent" make_album "http://127.0.0.1:$tport/announce"
make_torrent "$TMP/hidden.torrent" 32K ""
ih() { "$SHOAL_BIN" info "$1" | sed -n 's/^infohash: *//p'; }
same_ih() { local a; a=$(ih "$TORRENT"); [ -n "$a" ] && [ "$a" = "$(ih "$TMP/hidden.torrent")" ]; }
check "the seeder's tracker-less .torrent has the same infohash" same_ih
size=$(cd "$SRC" && find . -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')

start_shoal seeder seed "$SRC" "$TMP/hidden.torrent" --bind 127.0.0.1 --port "$sport" -vv
check "shoal seeder listens" test "$(shoal_port seeder)" = "$sport"

# the three leechers at once
start_shoal leech get "$TORRENT" -o "$TMP/shoal-dl" --seed --bind 127.0.0.1 --port "$gport" \
  --peer "127.0.0.1:$sport" -vv
ARIA2_SEED_MINUTES=5 start_aria2_leech aria2 "$TORRENT" "$TMP/aria2-dl" "$aport" --max-download-limit=1M
start_lt lt "$TORRENT" "$TMP/lt-dl" "$lport" --peer "127.0.0.1:$gport" --linger 300 --timeout 300

done_shoal() { out_has leech "^complete: $NAME"; }
done_lt() { out_has lt "^complete: $NAME"; }
done_aria2() { test -f "$TMP/aria2.done"; }
all_done() { done_shoal && done_lt && done_aria2; }
wait_for $((45 * SLOW)) "every leecher to complete" all_done
check "shoal leecher completes" done_shoal
check "shoal leecher's files are identical" same_album "$TMP/shoal-dl"
check "libtorrent leecher completes, verified" done_lt
check "libtorrent leecher's files are identical" same_album "$TMP/lt-dl"
check "aria2 leecher completes" done_aria2
check "aria2 leecher's files are identical" same_album "$TMP/aria2-dl"

# Who gave what to whom.  The shoal leecher is still seeding (--seed), so the
# tracker still lists it.
tracker_peers "$tport" "$TORRENT" >"$TMP/swarm.txt"
sed 's/^/# tracker: /' "$TMP/swarm.txt"
leech_pid=$(awk -v p="$gport" '$1 == p { print $2 }' "$TMP/swarm.txt")
check "the tracker knows the shoal leecher's peer id" test -n "$leech_pid"
check "the seeder stayed hidden from the tracker" bash -c "! awk '\$1 == $sport' '$TMP/swarm.txt' | grep -q ."
stop_pid "$PID_lt"
grep -E '^(downloaded|uploaded|peer):' "$TMP/lt.out" | sed 's/^/# libtorrent /'
aria2_recv_by_peer "$TMP/aria2.log" >"$TMP/aria2-recv.txt"
sed 's/^/# aria2 received from: /' "$TMP/aria2-recv.txt"
lt_from_leech=$(lt_bytes lt recv "pid=${leech_pid:-none} ")
aria2_from_leech=$(awk -v p="${leech_pid:-none}" '$1 == p { s += $2 } END { print s + 0 }' "$TMP/aria2-recv.txt")
check "libtorrent received data from the shoal leecher ($lt_from_leech bytes)" test "$lt_from_leech" -gt 0
check "aria2 received data from the shoal leecher ($aria2_from_leech bytes)" test "$aria2_from_leech" -gt 0
dropped=$(shoal_dropped seeder; shoal_dropped leech)
[ -n "$dropped" ] && echo "$dropped" | sed 's/^/# dropped as broken: /'
check "no shoal node dropped a real client's connection as broken" test -z "$dropped"
lt_total=$(lt_bytes lt recv .)
check "libtorrent got at least the whole torrent in all ($lt_total of $size)" test "$lt_total" -ge "$size"

if ! all_done || [ "$aria2_from_leech" -eq 0 ] || [ "$lt_from_leech" -eq 0 ]; then
  echo "# how the shoal nodes' connections ended (count, reason):"
  sed -n 's/.*: closed: //p' "$TMP/seeder.err" "$TMP/leech.err" | sort | uniq -c | head
  show_logs leech 15; show_logs lt 15; show_logs aria2 10
fi
stop_pid "$PID_aria2"
stop_pid "$PID_leech"
check "shoal leecher (seeding on) stops cleanly on SIGTERM (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
stop_pid "$PID_seeder"
check "shoal seeder stops cleanly on SIGTERM (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
stop_pid "$PID_tracker"
finish
