#!/bin/bash
# test_churn.sh -- the seeder leaves: a tracker, one seeder and three leechers
# (`get --seed`, started together) of a 24 MiB multi-file torrent (64 KiB pieces).
#  round 1: a real `shoal seed` is stopped with SIGTERM as soon as the first
#           leecher completes; the other two must still complete (it is fast, so
#           they are often done already -- that is noted, not a failure);
#  round 2: the seeder is evil_peer.py in honest mode, announcing to the tracker,
#           capped at 6 MB/s, showing each leecher only its own third of the
#           pieces (--split 3, as BEP 16 super-seeding does), and leaving as soon
#           as it has sent every block once: at that moment no leecher can be
#           complete, so all three must finish by trading with each other.
# Files are compared byte for byte; every process ends cleanly on SIGTERM.
# CHURN_V=-vv passes -vv to the leechers (for debugging).
# SANITIZE_OK VALGRIND_OK
source "$(dirname "$0")/lib.sh"

SLOW=1; [ -n "$SHOAL_WRAP" ] && SLOW=4
EVIL="$ROOT/tests/run/evil_peer.py"
export SHOAL_ANNOUNCE_FLOOR=1

src="$TMP/src/album"
mkdir -p "$src/b"
make_file "$src/a.bin" $((10 * 1048576 + 123)) 21
make_file "$src/b/c.bin" $((9 * 1048576 + 7)) 22
make_file "$src/d.bin" $((5 * 1048576 - 1000)) 23
TOTAL=$((10 * 1048576 + 123 + 9 * 1048576 + 7 + 5 * 1048576 - 1000))

tport=$(free_port)
start_tracker tracker "$tport"
announce="http://127.0.0.1:$tport/announce"
shoal create "$src" -o "$TMP/album.torrent" --piece-size 64K --announce "$announce" -q >/dev/null
check "torrent created" test -s "$TMP/album.torrent"

on_disk() { du -sB1 "$1" 2>/dev/null | cut -f1; }
completed() { grep -q '^complete: album' "$TMP/$1.out"; }
all_completed() { completed "${1}_l1" && completed "${1}_l2" && completed "${1}_l3"; }
any_completed() {  # round; sets FIRST
  local i
  for i in 1 2 3; do
    if completed "${1}_l$i"; then FIRST=$i; return 0; fi
  done
  return 1
}
# "l1:done l2:87% l3:91%"
progress() {  # round
  local i s=""
  for i in 1 2 3; do
    if completed "${1}_l$i"; then s="$s l$i:done"
    else s="$s l$i:$(( $(on_disk "$TMP/${1}_l$i") * 100 / TOTAL ))%"; fi
  done
  echo "$s"
}
stat_of() {  # file, key
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$1" "$2" 2>/dev/null
}

start_leechers() {  # round
  local i
  for i in 1 2 3; do
    mkdir -p "$TMP/${1}_l$i"
    start_shoal "${1}_l$i" get "$TMP/album.torrent" -o "$TMP/${1}_l$i" --seed --bind 127.0.0.1 --port "$(free_port)" ${CHURN_V:-}
    eval "L$i=\$LAST_PID"
  done
}

finish_leechers() {  # round, seconds to wait for the remaining completions
  local r=$1 secs=$2 i pid
  for i in 1 2 3; do
    check "$r: leecher $i completes" wait_for "$secs" "leecher $i to complete" completed "${r}_l$i"
    completed "${r}_l$i" || secs=3     # a stuck swarm: do not wait the full time again
  done
  for i in 1 2 3; do
    check "$r: leecher $i has identical files" same_tree "$src" "$TMP/${r}_l$i/album"
  done
  for i in 1 2 3; do
    eval "pid=\$L$i"
    kill -TERM "$pid"
  done
  for i in 1 2 3; do
    eval "pid=\$L$i"
    wait_exit $((20 * SLOW)) "$pid"
    check "$r: leecher $i stops cleanly on SIGTERM (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
  done
}

# ---- round 1: a real seeder, stopped when the first leecher completes ----
start_shoal r1_seed seed "$src" "$TMP/album.torrent" --bind 127.0.0.1 --port "$(free_port)"
check "r1: seeder listens" test -n "$(shoal_port r1_seed)"
start_leechers r1
FIRST=""
wait_for $((60 * SLOW)) "a first leecher to complete" any_completed r1
check "r1: a first leecher completes" test -n "$FIRST"
kill -TERM "$PID_r1_seed"
echo "# r1: seeder stopped when leecher ${FIRST:-?} completed; then:$(progress r1)"
case "$(progress r1)" in *%*) ;; *) echo "# NOTE r1: every leecher had completed before the seeder left" ;; esac
wait_exit $((20 * SLOW)) "$PID_r1_seed"
check "r1: seeder stops cleanly on SIGTERM (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
finish_leechers r1 $((60 * SLOW))

# ---- round 2: a seeder that leaves after one copy, split three ways ----
start r2_seed python3 "$EVIL" seed "$TMP/album.torrent" "$src" --port "$(free_port)" \
  --rate 6000000 --split 3 --leave-after-copy --announce "$announce" --stats "$TMP/r2_seed.json"
check "r2: the seeder listens and announces" \
  wait_for 20 "the seeder's announce" grep -qs '^announce started: ok' "$TMP/r2_seed.out"
start_leechers r2
# Until the seeder leaves no leecher can complete (the seeder holds a third of
# the pieces nobody else has until it sends them).  Completion is looked at
# before the seeder's "leaving" line, so a completion seen without that line
# really came first.
left() { grep -qs '^leaving: every block was sent once' "$TMP/r2_seed.out"; }
early=""
end=$((SECONDS + 60 * SLOW))
while [ $SECONDS -lt $end ]; do
  FIRST=""
  any_completed r2
  if left; then break; fi
  [ -n "$FIRST" ] && { early="l$FIRST"; break; }
  kill -0 "$PID_r2_seed" 2>/dev/null || break
  sleep 0.1
done
wait_exit 10 "$PID_r2_seed"
check "r2: the seeder left by itself after one copy (rc $WAIT_RC)" \
  test "$WAIT_RC" -eq 0 -a "$(stat_of "$TMP/r2_seed.json" left_after_copy)" = True
check "r2: no leecher completed while the seeder was sending (${early:-none})" test -z "$early"
if left; then finish_leechers r2 $((60 * SLOW)); else finish_leechers r2 5; fi

sent=$(stat_of "$TMP/r2_seed.json" bytes_sent)
echo "# r2: the seeder sent ${sent:-?} bytes; the three leechers hold $((3 * TOTAL))"
check "r2: the seeder sent about one copy (${sent:-?} bytes, $TOTAL in the torrent)" \
  test "${sent:-0}" -ge "$TOTAL" -a "${sent:-0}" -lt $((TOTAL + TOTAL / 10))
most=$(python3 -c 'import json,sys; print(max(json.load(open(sys.argv[1]))["conn_bytes"].values()))' "$TMP/r2_seed.json" 2>/dev/null)
echo "# r2: bytes sent per connection: $(stat_of "$TMP/r2_seed.json" conn_bytes)"
check "r2: no connection got more than its third from the seeder (${most:-?} bytes)" \
  test "${most:-$TOTAL}" -lt $((TOTAL * 36 / 100))
check "r2: so every leecher got two thirds from the other leechers" all_completed r2
check "r2: no leecher asked the seeder for a piece it did not announce ($(stat_of "$TMP/r2_seed.json" refused_requests))" \
  test "$(stat_of "$TMP/r2_seed.json" refused_requests)" = 0
check "r2: each leecher connected to the seeder once ($(stat_of "$TMP/r2_seed.json" handshakes) handshakes)" \
  test "$(stat_of "$TMP/r2_seed.json" handshakes)" -eq 3

kill -TERM "$PID_tracker"
wait_exit 10 "$PID_tracker"
check "tracker stops cleanly (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
finish
