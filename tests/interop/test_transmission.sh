#!/bin/bash
# test_transmission.sh -- shoal against transmission-cli (Debian package) on loopback.
# Transmission 3.00 does not dial 127.0.0.0/8 peers it learns from a tracker, so shoal
# dials it (--peer) both ways: (1) a shoal seeder and a Transmission leecher;
# (2) a Transmission seeder and a `shoal get`.  Files must come out byte-identical.
# Transmission runs with DHT, LPD, PEX, uTP and port mapping off, bound to 127.0.0.1.
source "$(dirname "$0")/lib.sh"

need_client transmission || finish
echo "# $(client_version transmission); $(client_version shoal)"

read -r tport sport xport xport2 gport <<<"$(free_ports 5)"
start_tracker tracker "$tport"
check "shoal create makes the multi-file torrent" make_album "http://127.0.0.1:$tport/announce"

# Transmission has the torrent running once its "State changed"/verify lines are out
# and its port is open; dialling it earlier gets the connection closed.
transmission_ready() {  # name, port
  port_open "$2" && transmission_log "$1" | grep -qE "Verifying torrent|Starting|State changed|Queued for verification"
}

# 1. Transmission downloads; the shoal seeder dials it.
start_transmission tr_leech "$TORRENT" "$TMP/tr-dl" "$xport"
check "transmission leecher listens" wait_for $((20 * SLOW)) "transmission ready" transmission_ready tr_leech "$xport"
start_shoal seeder seed "$SRC" "$TORRENT" --bind 127.0.0.1 --port "$sport" --peer "127.0.0.1:$xport" -vv
check "shoal seeder listens" test "$(shoal_port seeder)" = "$sport"
t0=$SECONDS
wait_for $((45 * SLOW)) "transmission's completion script" test -f "$TMP/tr_leech.done"
check "transmission downloads from a shoal seeder and runs its -f script ($((SECONDS - t0)) s)" \
  test -f "$TMP/tr_leech.done"
check "transmission's files are identical to the source (it makes no empty files)" \
  same_album_but_empty "$TMP/tr-dl"
check "the shoal seeder dialled transmission" grep -q "peer 127.0.0.1:$xport: connected (outgoing)" "$TMP/seeder.err"
check "the shoal seeder dropped no transmission connection as broken" test -z "$(shoal_dropped seeder)"
check "transmission logged the torrent complete" bash -c "grep -q 'to \"Complete\"' '$TMP/tr_leech.err'"
[ -f "$TMP/tr_leech.done" ] || { show_logs tr_leech; show_logs seeder; }
stop_pid "$PID_tr_leech"
stop_pid "$PID_seeder"
check "shoal seeder stops cleanly on SIGTERM (rc $WAIT_RC)" test "$WAIT_RC" -eq 0

# 2. Transmission seeds (it verifies the data first), shoal downloads, dialling it.
copy_album "$TMP/tr-seed"
start_transmission tr_seed "$TORRENT" "$TMP/tr-seed" "$xport2"
check "transmission seeder verified its data (-f script ran)" \
  wait_for $((30 * SLOW)) "transmission seeder's completion script" test -f "$TMP/tr_seed.done"
start_shoal getter get "$TORRENT" -o "$TMP/shoal-dl" --bind 127.0.0.1 --port "$gport" \
  --peer "127.0.0.1:$xport2" -vv
wait_exit $((45 * SLOW)) "$PID_getter"
rc2=$WAIT_RC
check "shoal get downloads from a transmission seeder (rc $rc2)" test "$rc2" -eq 0
check "shoal's files are identical to the source" same_album "$TMP/shoal-dl"
check "shoal printed completion" grep -q "^complete: $NAME" "$TMP/getter.out"
check "shoal get dropped no transmission connection as broken" test -z "$(shoal_dropped getter)"
[ "$rc2" -ne 0 ] && { show_logs getter; show_logs tr_seed; }
stop_pid "$PID_getter"
stop_pid "$PID_tr_seed"
stop_pid "$PID_tracker"
finish
