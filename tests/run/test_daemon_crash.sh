#!/bin/bash
# test_daemon_crash.sh -- a daemon killed with SIGKILL mid-download loses no
# verified data: a 256 MiB file from a `shoal seed` is fetched under a global
# download limit (settings rate_down 30 MiB/s); once `info` shows between 30 %
# and 70 % the daemon gets SIGKILL; started again on the same folders without
# a limit, it checks what is on disk (and says so), downloads only what was
# missing at the kill (plus at most 8 MiB in flight, per `stats` "downloaded")
# and ends with a file identical to the source.
# SANITIZE_OK
# VALGRIND_OK
source "$(dirname "$0")/lib.sh"

SLOW=1; [ -n "$SHOAL_WRAP" ] && SLOW=4
case "$BUILD" in *san*) SLOW=2 ;; esac
SIZE=$((256 << 20))
RATE=$((30 << 20))
MARGIN=$((8 << 20))
SRC="$TMP/src"; CFG="$TMP/cfg"; DL="$TMP/dl"
mkdir -p "$SRC" "$CFG" "$DL"

remote() { "$SHOAL_BIN" remote --config-dir "$CFG" "$@"; }
# Prints a Python expression over r = a method's --json result.
jget() {  # expression, remote args...
  local e=$1; shift
  "$SHOAL_BIN" remote --config-dir "$CFG" --json "$@" 2>/dev/null |
    python3 -c 'import json, sys; r = json.load(sys.stdin); print(eval(sys.argv[1]))' "$e" 2>/dev/null
}
write_settings() {  # rate_down
  printf '{"bind": "127.0.0.1", "rate_down": %s}\n' "$1" >"$CFG/settings.json.tmp"
  mv "$CFG/settings.json.tmp" "$CFG/settings.json"
}
start_daemon() {  # name
  start_shoal "$1" daemon --config-dir "$CFG" --download-dir "$DL" --rpc-port "$RPC" --port "$PPORT" \
    --foreground --log-level info
  DPID=$LAST_PID
  wait_for $((30 * SLOW)) "daemon $1 ready" grep -q 'ready' "$TMP/$1.err"
}

make_file "$SRC/big.bin" "$SIZE" 21
"$SHOAL_BIN" create "$SRC/big.bin" -o "$TMP/big.torrent" -q >/dev/null
HEX=$("$SHOAL_BIN" info --json "$TMP/big.torrent" | python3 -c 'import json,sys; print(json.load(sys.stdin)["infohash"])')
ID=${HEX:0:10}
check "torrent created" test -n "$HEX"
start_shoal seed seed "$SRC/big.bin" "$TMP/big.torrent" --bind 127.0.0.1 --port "$(free_port)" -q
sport=$(shoal_port seed)
check "seed listening" test -n "$sport"

# ---- first daemon: rate-limited, killed part-way ----
RPC=$(free_port); PPORT=$(free_port)
write_settings "$RATE"
start_daemon d1
check "daemon ready" grep -q 'ready' "$TMP/d1.err"
check "the global limit is in force" test "$(jget "r['rate_down_limit']" stats)" = "$RATE"
remote add "$TMP/big.torrent" >/dev/null
remote add-peer "$ID" "127.0.0.1:$sport" >/dev/null
t0=$(date +%s.%N)
# Reads `info` until progress is between 30 % and 70 %; HAVE = its have.
HAVE=0
mid_way() {
  local v
  v=$(jget "'%d %d' % (r['have'], 30 <= r['progress'] * 100 <= 70)" info "$ID") || return 1
  HAVE=${v% *}
  [ "${v#* }" = 1 ]
}
check "progress reaches 30..70 %" wait_for $((60 * SLOW)) "progress 30..70 %" mid_way
kill -KILL "$DPID"
{ wait_exit 10 "$DPID"; } 2>/dev/null
t1=$(date +%s.%N)
echo "# killed after $(python3 -c "print('%.1f' % ($t1 - $t0))") s with have $HAVE of $SIZE ($((HAVE * 100 / SIZE)) %)"
check "SIGKILL ended the daemon (rc $WAIT_RC)" test "$WAIT_RC" -eq 137
check "it was part-way: 30..70 % ($HAVE bytes)" test "$HAVE" -ge $((SIZE * 30 / 100)) -a "$HAVE" -le $((SIZE * 70 / 100))
check "the limit held: at most 30 MiB/s plus a 1 s burst" \
  python3 -c "import sys; sys.exit(0 if $HAVE <= $RATE * ($t1 - $t0 + 1) else 1)"

# ---- second daemon: no limit, resumes ----
write_settings 0
start_daemon d2
check "restarted daemon ready" grep -q 'ready' "$TMP/d2.err"
check "the restarted daemon has the torrent" test "$(jget "len(r['torrents'])" list)" = 1
# The seed named with add-peer is in the resume record: not named again here.
done_() { [ "$(jget "'%s %s' % (r['state'], r['progress'])" info "$ID")" = "seeding 1.0" ]; }
check "the download completes" wait_for $((90 * SLOW)) "seeding" done_
got=$(jget "r['downloaded']" stats)
missing=$((SIZE - HAVE))
echo "# downloaded after the restart: ${got:-?} bytes; missing at the kill: $missing bytes"
check "only what was missing was fetched again (${got:-?} <= $missing + 8 MiB)" \
  test "${got:-$SIZE}" -le $((missing + MARGIN))
# "big.bin: K of M pieces already here": every piece `info` counted before the
# kill was on disk.
PL=$(jget "r['piece_length']" info "$ID")
kept=$(sed -n 's/^.*big.bin: \([0-9]*\) of [0-9]* pieces already here.*$/\1/p' "$TMP/d2.err" | head -n 1)
echo "# the recheck kept ${kept:-?} pieces of ${PL:-?} bytes"
check "the recheck kept every piece counted before the kill (${kept:-?} x ${PL:-?} >= $HAVE)" \
  test $(( ${kept:-0} * ${PL:-0} )) -ge "$HAVE"
check "what was fetched and what was kept make the file" test $(( ${kept:-0} * ${PL:-0} + ${got:-0} )) -ge "$SIZE"
check "the file is identical to the source" cmp -s "$SRC/big.bin" "$DL/big.bin"
check "the restart checked the data on disk (logged)" grep -q 'pieces to check\|checking all data' "$TMP/d2.err"
grep 'pieces to check\|checking all data\|pieces already here' "$TMP/d2.err" | sed 's/^/# /'

kill -TERM "$DPID"
wait_exit 20 "$DPID"
check "SIGTERM: the daemon exits 0 (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
kill -TERM "$PID_seed"
wait_exit 20 "$PID_seed"
finish
