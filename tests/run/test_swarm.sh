#!/bin/bash
# test_swarm.sh -- a tracker, one seeder and three leechers of a multi-file torrent
# with odd file sizes, all on loopback: every leecher finishes with files
# byte-identical to the source; then the same without a tracker (--peer only).
# SANITIZE_OK VALGRIND_OK
source "$(dirname "$0")/lib.sh"

SLOW=1; [ -n "$SHOAL_WRAP" ] && SLOW=4
src="$TMP/src/album"
mkdir -p "$src/disc 1" "$src/disc 2/deep/er"
make_file "$src/disc 1/a.bin" 1000001 1
make_file "$src/disc 1/b.bin" 17 2
make_file "$src/disc 2/c.bin" 2345678 3
make_file "$src/disc 2/deep/er/d.bin" 65536 4
: > "$src/empty.txt"
make_file "$src/z.bin" 777777 5

tport=$(free_port)
start_tracker tracker "$tport"
check "shoal create writes a torrent" \
  shoal create "$src" -o "$TMP/album.torrent" --piece-size 32K --announce "http://127.0.0.1:$tport/announce" -q
check "shoal info reads it back" bash -c "'$SHOAL_BIN' info '$TMP/album.torrent' | grep -q '^name: *album'"

start_shoal seeder seed "$src" "$TMP/album.torrent" --bind 127.0.0.1 --port "$(free_port)"
sport=$(shoal_port seeder)
check "seeder listens" test -n "$sport"

for i in 1 2 3; do
  mkdir -p "$TMP/l$i"
  start_shoal "leech$i" get "$TMP/album.torrent" -o "$TMP/l$i" --bind 127.0.0.1 --port "$(free_port)"
done
for i in 1 2 3; do
  eval pid=\$PID_leech$i
  wait_exit $((90 * SLOW)) "$pid"
  check "leecher $i exits 0 (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
  check "leecher $i has identical files" same_tree "$src" "$TMP/l$i/album"
done
check "leechers printed completion" grep -q '^complete: album' "$TMP/leech1.out"

kill -TERM "$PID_seeder"
wait_exit $((20 * SLOW)) "$PID_seeder"
check "seeder stops cleanly on SIGTERM (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
kill -TERM "$PID_tracker"; wait_exit 10 "$PID_tracker"

# No tracker at all: a seeder and a leecher told about each other by hand.
start_shoal seeder2 seed "$src" "$TMP/album.torrent" --bind 127.0.0.1 --port "$(free_port)"
sport=$(shoal_port seeder2)
mkdir -p "$TMP/np"
start_shoal np get "$TMP/album.torrent" -o "$TMP/np" --bind 127.0.0.1 --port "$(free_port)" --peer "127.0.0.1:$sport"
wait_exit $((60 * SLOW)) "$PID_np"
check "tracker-less leecher (--peer) completes (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
check "tracker-less leecher has identical files" same_tree "$src" "$TMP/np/album"
kill -TERM "$PID_seeder2"; wait_exit $((20 * SLOW)) "$PID_seeder2"
finish
