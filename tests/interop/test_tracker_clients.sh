#!/bin/bash
# test_tracker_clients.sh -- real clients announce to shoal-tracker over HTTP and find
# each other through it alone (no peer given by hand), on loopback:
#   (1) aria2 seeds, libtorrent downloads;  (2) libtorrent seeds, aria2 downloads;
#   (3) Transmission seeds and announces, libtorrent downloads (Transmission itself
#       will not dial 127.x peers from a tracker, but it accepts them).
# Each pair gets its own .torrent (another piece size: another infohash) so the
# swarms do not mix.  The tracker's scrape must count the completed downloads.
source "$(dirname "$0")/lib.sh"

need_client aria2 || finish
need_client libtorrent || finish
need_client transmission || finish
echo "# $(client_version aria2); $(client_version libtorrent); $(client_version transmission)"
echo "# $(client_version shoal) (shoal-tracker)"

read -r tport a1 l1 l2 a2 x3 l3 <<<"$(free_ports 7)"
start_tracker tracker "$tport"
announce="http://127.0.0.1:$tport/announce"
check "shoal create makes the torrents" make_album "$announce" 32K
T1=$TORRENT
T2="$TMP/album-16k.torrent"; make_torrent "$T2" 16K "$announce"
T3="$TMP/album-64k.torrent"; make_torrent "$T3" 64K "$announce"
copy_album "$TMP/seed"      # one copy of the data for every seeder

scrape_done() {  # torrent, count: the scrape's "downloaded" reached count
  local c i d
  read -r c i d <<<"$(tracker_scrape "$tport" "$1")"
  SCRAPE="$c $i $d"
  [ "${d:--1}" -ge "$2" ]
}
in_swarm() {  # torrent, port: the tracker lists that port in the torrent's swarm
  tracker_peers "$tport" "$1" | awk -v p="$2" '$1 == p { f = 1 } END { exit !f }'
}

# 1. aria2 seeds, libtorrent downloads: both only know the tracker.
start_aria2_seed aria2_seed "$T1" "$TMP/seed" "$a1"
check "aria2 seeder listens" wait_for $((20 * SLOW)) "aria2 listening" port_open "$a1"
start_lt lt1 "$T1" "$TMP/lt1" "$l1" --timeout $((30 * SLOW))
wait_exit $((35 * SLOW)) "$PID_lt1"
check "libtorrent finds the aria2 seeder through shoal-tracker and completes (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
check "libtorrent's files are identical" same_album "$TMP/lt1"
check "libtorrent's data came from aria2" test "$(lt_bytes lt1 recv "client=aria2")" -gt 0
[ "$WAIT_RC" -eq 0 ] || { show_logs lt1; show_logs aria2_seed 10; show_logs tracker 10; }
check "scrape counts libtorrent's event=completed" wait_for $((10 * SLOW)) "completed announce" scrape_done "$T1" 1
echo "# scrape (complete incomplete downloaded): $SCRAPE"
stop_pid "$PID_aria2_seed"

# 2. libtorrent seeds, aria2 downloads.
start_lt lt2 "$T2" "$TMP/seed" "$l2" --seed --timeout $((60 * SLOW))
check "libtorrent seeder checked its data" \
  wait_for $((20 * SLOW)) "libtorrent seeding" out_has lt2 "^seeding: $NAME"
# (aria2 seeds on after completing: one that stops at once announces "stopped"
# with left=0 and never "completed")
ARIA2_SEED_MINUTES=5 start_aria2_leech aria2_leech "$T2" "$TMP/aria2" "$a2"
wait_for $((30 * SLOW)) "aria2's completion hook" test -f "$TMP/aria2_leech.done"
check "aria2 finds the libtorrent seeder through shoal-tracker and completes" test -f "$TMP/aria2_leech.done"
check "aria2's files are identical" same_album "$TMP/aria2"
check "aria2's data came from libtorrent" \
  bash -c "grep -q 'From: 127.0.0.1:$l2 piece index=' '$TMP/aria2_leech.log'"
[ -f "$TMP/aria2_leech.done" ] || { show_logs aria2_leech; show_logs lt2 10; }
check "scrape counts aria2's event=completed" wait_for $((10 * SLOW)) "aria2's completed announce" scrape_done "$T2" 1
echo "# scrape (complete incomplete downloaded): $SCRAPE"
stop_pid "$PID_aria2_leech"
stop_pid "$PID_lt2"

# 3. Transmission seeds (verifies the data, announces), libtorrent dials it from the
#    tracker's list.
start_transmission tr_seed "$T3" "$TMP/seed" "$x3"
check "transmission seeder verified its data" \
  wait_for $((30 * SLOW)) "transmission seeder's completion script" test -f "$TMP/tr_seed.done"
check "transmission announced itself to shoal-tracker (its port is listed)" \
  wait_for $((20 * SLOW)) "transmission in the swarm" in_swarm "$T3" "$x3"
start_lt lt3 "$T3" "$TMP/lt3" "$l3" --timeout $((40 * SLOW))
wait_exit $((45 * SLOW)) "$PID_lt3"
check "libtorrent finds the transmission seeder through shoal-tracker and completes (rc $WAIT_RC)" \
  test "$WAIT_RC" -eq 0
check "libtorrent's files are identical" same_album "$TMP/lt3"
check "libtorrent's data came from transmission" test "$(lt_bytes lt3 recv "client=Transmission")" -gt 0
[ "$WAIT_RC" -eq 0 ] || { show_logs lt3; show_logs tr_seed 10; }
stop_pid "$PID_tr_seed"
stop_pid "$PID_tracker"
check "shoal-tracker stops cleanly on SIGTERM (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
finish
