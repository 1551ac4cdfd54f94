#!/bin/bash
# test_libtorrent.sh -- shoal against libtorrent-rasterbar (python3-libtorrent, through
# lt_client.py) on loopback over TCP (uTP off), no tracker needed: (1) a shoal seeder
# and a libtorrent leecher that dials it (connect_peer); (2) a libtorrent seeder and a
# `shoal get` that dials it (--peer).  Files must come out byte-identical.
source "$(dirname "$0")/lib.sh"

need_client libtorrent || finish
echo "# $(client_version libtorrent); $(client_version shoal)"

read -r tport sport lport lport2 gport <<<"$(free_ports 5)"
start_tracker tracker "$tport"
check "shoal create makes the multi-file torrent" make_album "http://127.0.0.1:$tport/announce"
size=$(cd "$SRC" && find . -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')

# 1. shoal seeds, libtorrent downloads from it (told its address, tracker ignored).
start_shoal seeder seed "$SRC" "$TORRENT" --bind 127.0.0.1 --port "$sport" -vv
check "shoal seeder listens" test "$(shoal_port seeder)" = "$sport"
start_lt lt_leech "$TORRENT" "$TMP/lt-dl" "$lport" --peer "127.0.0.1:$sport" --no-tracker --timeout $((30 * SLOW))
wait_exit $((35 * SLOW)) "$PID_lt_leech"
rc1=$WAIT_RC
check "libtorrent downloads from a shoal seeder, verified (rc $rc1)" test "$rc1" -eq 0
check "libtorrent's files are identical to the source" same_album "$TMP/lt-dl"
check "libtorrent printed its version" grep -q "^version: libtorrent " "$TMP/lt_leech.out"
# every byte libtorrent kept came from the shoal seeder (its peer id starts -SH)
got=$(lt_bytes lt_leech recv "^peer: 127.0.0.1:$sport $SHOAL_PID_RE")
check "libtorrent received all $size bytes from the shoal seeder's port ($got)" test "$got" -ge "$size"
check "libtorrent reported no hash failure" bash -c "! grep -q '^hash-failed' '$TMP/lt_leech.out'"
grep -E '^(downloaded|uploaded|peer):' "$TMP/lt_leech.out" | sed 's/^/# /'
[ "$rc1" -ne 0 ] && { show_logs lt_leech; show_logs seeder; }
check "the shoal seeder dropped no libtorrent connection as broken" test -z "$(shoal_dropped seeder)"
stop_pid "$PID_seeder"
check "shoal seeder stops cleanly on SIGTERM (rc $WAIT_RC)" test "$WAIT_RC" -eq 0

# 2. libtorrent seeds (checks the data first), shoal downloads, dialling it.
copy_album "$TMP/lt-seed"
start_lt lt_seed "$TORRENT" "$TMP/lt-seed" "$lport2" --seed --no-tracker --timeout $((60 * SLOW))
check "libtorrent seeder checked its data and seeds" \
  wait_for $((20 * SLOW)) "libtorrent seeding" out_has lt_seed "^seeding: $NAME"
start_shoal getter get "$TORRENT" -o "$TMP/shoal-dl" --bind 127.0.0.1 --port "$gport" \
  --peer "127.0.0.1:$lport2" -vv
wait_exit $((30 * SLOW)) "$PID_getter"
rc2=$WAIT_RC
check "shoal get downloads from a libtorrent seeder (rc $rc2)" test "$rc2" -eq 0
check "shoal's files are identical to the source" same_album "$TMP/shoal-dl"
check "shoal printed completion" grep -q "^complete: $NAME" "$TMP/getter.out"
check "shoal get dropped no libtorrent connection as broken" test -z "$(shoal_dropped getter)"
stop_pid "$PID_lt_seed"
check "libtorrent seeder exits 0 on SIGTERM (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
sent=$(lt_bytes lt_seed sent "$SHOAL_PID_RE")
check "libtorrent uploaded the whole torrent to the shoal peer ($sent)" test "$sent" -ge "$size"
grep -E '^(downloaded|uploaded|peer):' "$TMP/lt_seed.out" | sed 's/^/# /'
[ "$rc2" -ne 0 ] && { show_logs getter; show_logs lt_seed; }
stop_pid "$PID_getter"
stop_pid "$PID_tracker"
finish
