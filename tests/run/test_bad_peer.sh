#!/bin/bash
# test_bad_peer.sh -- peers that break the protocol or send bad data, played by
# tests/run/evil_peer.py:
#  1. against a real seeder, each on a fresh connection: garbage instead of a
#     handshake, a wrong infohash, a 0x7fffffff length, requests out of range,
#     unasked-for PIECEs, a late BITFIELD with spare bits set, a BITFIELD with spare bits set, ...:
#     the seeder closes every one of those connections, keeps a well-behaved one
#     open, and still serves a normal `shoal get` afterwards;
#  2. a lying seeder (every block corrupted) next to an honest one from the start:
#     the leecher finishes with correct data, strikes and bans the liar, and
#     does not ban the honest seeder;
#  3. the liar alone first (banned), the honest seeder later: the download
#     completes and the liar is never dialled again.
# SANITIZE_OK VALGRIND_OK
source "$(dirname "$0")/lib.sh"

SLOW=1; [ -n "$SHOAL_WRAP" ] && SLOW=4
EVIL="$ROOT/tests/run/evil_peer.py"

# 46 pieces of 256 KiB (the last shorter): 16 blocks a piece, spare bits in the bitfield.
src="$TMP/src/data.bin"
mkdir -p "$TMP/src"
make_file "$src" 12000000 7
shoal create "$src" -o "$TMP/data.torrent" --piece-size 256K -q >/dev/null
check "torrent created" test -s "$TMP/data.torrent"
npieces=$(python3 -c "print((12000000 + 262143) // 262144)")
check "the torrent has spare bits in its bitfield ($npieces pieces)" test $((npieces % 8)) -ne 0

hport=$(free_port)
start_shoal honest seed "$src" "$TMP/data.torrent" --bind 127.0.0.1 --port "$hport" -vv
check "honest seeder listens" test -n "$(shoal_port honest)"

# ---- 1. protocol violations, each on its own connection ----
cases="garbage wrong_infohash huge_length huge_length_unknown_id request_bad_index request_past_piece
       request_huge_block unsolicited_piece late_bitfield bitfield_spare_bits have_bad_index request_flood"
nattacks=0
for c in $cases control; do
  out=$(timeout $((30 * SLOW)) python3 "$EVIL" attack "$TMP/data.torrent" "127.0.0.1:$hport" "$c" \
          --timeout $((5 * SLOW)) 2>&1)
  rc=$?
  [ "$c" != control ] && nattacks=$((nattacks + 1))
  if [ "$rc" -eq 0 ]; then pass "seeder: $out"; else fail "seeder: $c (rc $rc): $out"; fi
done
check "seeder survived every attack" kill -0 "$PID_honest"
closed=$(grep -c ': closed: ' "$TMP/honest.err")
check "seeder logged a reason for each closed connection ($closed >= $nattacks)" test "$closed" -ge "$nattacks"
check "seeder log names oversized and malformed messages" \
  bash -c "grep -q 'closed: oversized message' '$TMP/honest.err' && grep -q 'closed: malformed message' '$TMP/honest.err'"

mkdir -p "$TMP/after"
start_shoal after get "$TMP/data.torrent" -o "$TMP/after" --bind 127.0.0.1 --port "$(free_port)" \
  --peer "127.0.0.1:$hport"
wait_exit $((40 * SLOW)) "$PID_after"
check "after the attacks a normal leecher completes from the seeder (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
check "and its data is identical" cmp -s "$src" "$TMP/after/data.bin"

# Stats of an evil seeder: a JSON field.
stat_of() {  # file, key
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$1" "$2" 2>/dev/null
}
# "peer 127.0.0.1:PORT: banned: ..." or "peer 127.0.0.1:PORT: closed: ... banned"
banned_line() { grep -qE "peer 127\.0\.0\.1:$1: (banned|closed: .*banned)" "$2" 2>/dev/null; }
not_banned() { ! banned_line "$@"; }
struck_or_banned() { grep -qE "peer 127\.0\.0\.1:$1: (strike|banned|closed: .*banned)" "$2" 2>/dev/null; }

# ---- 2. a lying seeder next to an honest one from the start ----
eport=$(free_port)
start evil1 python3 "$EVIL" seed "$TMP/data.torrent" "$src" --port "$eport" --corrupt all --stats "$TMP/evil1.json"
wait_for 20 "evil seeder 1 listening" grep -qs '^port: ' "$TMP/evil1.out"
mkdir -p "$TMP/mixed"
start_shoal mixed get "$TMP/data.torrent" -o "$TMP/mixed" --bind 127.0.0.1 --port "$(free_port)" \
  --peer "127.0.0.1:$eport" --peer "127.0.0.1:$hport" -vv
# Ends early when the honest seeder gets banned: the download can then never finish.
wait_for $((40 * SLOW)) "the leecher to finish (or to ban the honest seeder)" \
  bash -c "! kill -0 $PID_mixed 2>/dev/null || grep -qE '127\.0\.0\.1:$hport: (banned|closed: .*banned)' '$TMP/mixed.err'"
if kill -0 "$PID_mixed" 2>/dev/null; then
  kill -KILL "$PID_mixed"; wait "$PID_mixed" 2>/dev/null
  fail "mixed: the leecher did not finish (killed); $(grep -cE 'strike|banned' "$TMP/mixed.err") strikes/bans logged"
else
  wait_exit 5 "$PID_mixed"
  check "mixed: the leecher completes (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
fi
check "mixed: its data is identical" cmp -s "$src" "$TMP/mixed/data.bin"
check "mixed: the liar was blamed (strike or ban)" struck_or_banned "$eport" "$TMP/mixed.err"
check "mixed: the liar was banned" banned_line "$eport" "$TMP/mixed.err"
check "mixed: the honest seeder was not banned" not_banned "$hport" "$TMP/mixed.err"
hstrikes=$(grep -c "peer 127.0.0.1:$hport: strike" "$TMP/mixed.err")
echo "# mixed: the honest seeder got $hstrikes strike(s) for pieces the liar also sent blocks of"
kill -TERM "$PID_evil1"; wait_exit 10 "$PID_evil1"
check "mixed: the liar sent corrupt blocks ($(stat_of "$TMP/evil1.json" corrupt_blocks))" \
  test "$(stat_of "$TMP/evil1.json" corrupt_blocks)" -gt 0
check "mixed: the liar's connection was closed by the leecher" test "$(stat_of "$TMP/evil1.json" closed_by_remote)" -ge 1
check "mixed: the liar was not dialled again ($(stat_of "$TMP/evil1.json" connections) connection(s))" \
  test "$(stat_of "$TMP/evil1.json" connections)" -eq 1

# ---- 3. the liar alone first, the honest seeder later ----
eport2=$(free_port)
hport2=$(free_port)
start evil2 python3 "$EVIL" seed "$TMP/data.torrent" "$src" --port "$eport2" --corrupt all --stats "$TMP/evil2.json"
wait_for 20 "evil seeder 2 listening" grep -qs '^port: ' "$TMP/evil2.out"
mkdir -p "$TMP/late"
start_shoal late get "$TMP/data.torrent" -o "$TMP/late" --bind 127.0.0.1 --port "$(free_port)" \
  --peer "127.0.0.1:$eport2" --peer "127.0.0.1:$hport2" -vv
check "late: the liar alone is banned" \
  wait_for $((30 * SLOW)) "the liar to be banned" banned_line "$eport2" "$TMP/late.err"
check "late: nothing was completed from the liar alone" kill -0 "$PID_late"
start_shoal honest2 seed "$src" "$TMP/data.torrent" --bind 127.0.0.1 --port "$hport2"
wait_for $((40 * SLOW)) "the leecher to finish (or to ban the honest seeder)" \
  bash -c "! kill -0 $PID_late 2>/dev/null || grep -qE '127\.0\.0\.1:$hport2: (banned|closed: .*banned)' '$TMP/late.err'"
if kill -0 "$PID_late" 2>/dev/null; then
  kill -KILL "$PID_late"; wait "$PID_late" 2>/dev/null
  fail "late: the leecher did not finish once the honest seeder was up (killed)"
else
  wait_exit 5 "$PID_late"
  check "late: the leecher completes once the honest seeder is up (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
fi
check "late: its data is identical" cmp -s "$src" "$TMP/late/data.bin"
check "late: the honest seeder was not banned" not_banned "$hport2" "$TMP/late.err"
hstrikes=$(grep -c "peer 127.0.0.1:$hport2: strike" "$TMP/late.err")
echo "# late: the honest seeder got $hstrikes strike(s) for blocks the banned liar had sent"
kill -TERM "$PID_evil2"; wait_exit 10 "$PID_evil2"
check "late: the liar was dialled once ($(stat_of "$TMP/evil2.json" connections))" \
  test "$(stat_of "$TMP/evil2.json" connections)" -eq 1
check "late: the liar's connection was closed by the leecher" test "$(stat_of "$TMP/evil2.json" closed_by_remote)" -ge 1

kill -TERM "$PID_honest" "$PID_honest2"
wait_exit $((20 * SLOW)) "$PID_honest"
check "honest seeder stops cleanly (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
check "no sanitizer report from the seeder" bash -c "! grep -qE 'Sanitizer|runtime error' '$TMP/honest.err'"
wait_exit $((20 * SLOW)) "$PID_honest2"
check "second honest seeder stops cleanly (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
finish
