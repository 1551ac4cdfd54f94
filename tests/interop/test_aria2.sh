#!/bin/bash
# test_aria2.sh -- shoal against aria2 (Debian package) on loopback, with a
# shoal-tracker: (1) a shoal seeder and an aria2 leecher that learns of it only
# from the tracker; (2) an aria2 seeder and a `shoal get` told its port (--peer).
# Files must come out byte-identical; DHT, LPD and PEX are off.
source "$(dirname "$0")/lib.sh"

need_client aria2 || finish
echo "# $(client_version aria2); $(client_version shoal)"

read -r tport sport aport gport <<<"$(free_ports 4)"
start_tracker tracker "$tport"
check "shoal create makes the multi-file torrent" make_album "http://127.0.0.1:$tport/announce"

# 1. shoal seeds, aria2 downloads (aria2 has no way to be given a peer: the tracker).
start_shoal seeder seed "$SRC" "$TORRENT" --bind 127.0.0.1 --port "$sport" -vv
check "shoal seeder listens" test "$(shoal_port seeder)" = "$sport"
start_aria2_leech aria2_leech "$TORRENT" "$TMP/aria2-dl" "$aport"
wait_exit $((30 * SLOW)) "$PID_aria2_leech"
rc1=$WAIT_RC
check "aria2 downloads from a shoal seeder and exits 0 (rc $rc1)" test "$rc1" -eq 0
check "aria2 ran its completion hook" test -f "$TMP/aria2_leech.done"
check "aria2's files are identical to the source" same_album "$TMP/aria2-dl"
check "the shoal seeder saw aria2 connect" grep -q "peer 127.0.0.1:[0-9]*: connected" "$TMP/seeder.err"
check "the shoal seeder dropped no aria2 connection as broken" test -z "$(shoal_dropped seeder)"
if [ "$rc1" -ne 0 ]; then
  echo "# aria2 leecher did not finish. Why the shoal seeder closed its connections (count, reason):"
  sed -n 's/.*: closed: //p' "$TMP/seeder.err" | sort | uniq -c | head -n 5
  echo "# aria2's first connection to the seeder (without piece/request/allowed fast lines):"
  cuid=$(grep -m 1 -o "CUID#[0-9]* - To: 127.0.0.1:$sport handshake" "$TMP/aria2_leech.log" | cut -d' ' -f1)
  [ -n "$cuid" ] && grep -F "$cuid - " "$TMP/aria2_leech.log" | grep -E " (To|From): | aborted|Exception" \
    | grep -vE " (request|piece) index=| allowed fast " | head -n 14 | cut -c12-
fi
stop_pid "$PID_aria2_leech"
stop_pid "$PID_seeder"
check "shoal seeder stops cleanly on SIGTERM (rc $WAIT_RC)" test "$WAIT_RC" -eq 0

# 2. aria2 seeds (no re-hash), shoal downloads, dialling aria2's port itself.
copy_album "$TMP/aria2-seed"
read -r aport2 <<<"$(free_ports 1)"
start_aria2_seed aria2_seed "$TORRENT" "$TMP/aria2-seed" "$aport2"
check "aria2 seeder listens" wait_for 20 "aria2 listening" port_open "$aport2"
start_shoal getter get "$TORRENT" -o "$TMP/shoal-dl" --bind 127.0.0.1 --port "$gport" \
  --peer "127.0.0.1:$aport2" -vv
wait_exit $((30 * SLOW)) "$PID_getter"
rc2=$WAIT_RC
check "shoal get downloads from an aria2 seeder (rc $rc2)" test "$rc2" -eq 0
check "shoal's files are identical to the source" same_album "$TMP/shoal-dl"
check "shoal printed completion" grep -q "^complete: $NAME" "$TMP/getter.out"
check "shoal's peer was aria2's port" grep -q "peer 127.0.0.1:$aport2: connected (outgoing)" "$TMP/getter.err"
check "shoal get dropped no aria2 connection as broken" test -z "$(shoal_dropped getter)"
[ "$rc2" -ne 0 ] && { show_logs getter; show_logs aria2_seed 10; }
stop_pid "$PID_aria2_seed"
stop_pid "$PID_getter"
stop_pid "$PID_tracker"
finish
