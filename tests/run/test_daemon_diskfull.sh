#!/bin/bash
# test_daemon_diskfull.sh -- a full disk stops one torrent, not the daemon: torrent
# A (20 MiB) downloads into an 8 MiB tmpfs, torrent B (10 MiB) into a normal
# folder, both fed by `shoal seed`.  A ends in state "error" with a reason that
# names the lack of space (in `list` and `info`, text and JSON); every piece A
# counts as had verifies on the tmpfs; B completes and is identical.  Once the
# tmpfs is made bigger (remount, size=64m), `remote resume` retries A, which
# completes from the pieces it kept and is identical too.
# Needs root (mount); skipped otherwise.
# SANITIZE_OK
# VALGRIND_OK
source "$(dirname "$0")/lib.sh"

SLOW=1; [ -n "$SHOAL_WRAP" ] && SLOW=4
case "$BUILD" in *san*) SLOW=2 ;; esac
PIECES="$ROOT/tests/run/faults/pieces.py"
SRC="$TMP/src"; CFG="$TMP/cfg"; DL="$TMP/dl"; SMALL="$TMP/small"
mkdir -p "$SRC" "$CFG" "$DL" "$SMALL"

MOUNTED=0
diskfull_cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  [ "$MOUNTED" = 1 ] && umount "$SMALL" 2>/dev/null
  cleanup
}
trap diskfull_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

skip_all() {
  echo "skipped: $*"
  echo "0 passed, 0 failed, 1 skipped"
  exit 0
}
[ "$(id -u)" -eq 0 ] || skip_all "needs root to mount a tmpfs"
mount -t tmpfs -o size=8m shoal-diskfull "$SMALL" 2>/dev/null || skip_all "cannot mount a tmpfs"
MOUNTED=1

remote() { "$SHOAL_BIN" remote --config-dir "$CFG" "$@"; }
# Prints a Python expression over r = a method's --json result.
jget() {  # expression, remote args...
  local e=$1; shift
  "$SHOAL_BIN" remote --config-dir "$CFG" --json "$@" 2>/dev/null |
    python3 -c 'import json, sys; r = json.load(sys.stdin); print(eval(sys.argv[1]))' "$e" 2>/dev/null
}
state_is() {  # id, state, progress
  [ "$(jget "'%s %s' % (r['state'], r['progress'])" info "$1")" = "$2 $3" ]
}

make_file "$SRC/a.bin" $((20 << 20)) 31
make_file "$SRC/b.bin" $((10 << 20)) 32
for x in a b; do
  "$SHOAL_BIN" create "$SRC/$x.bin" -o "$TMP/$x.torrent" -q >/dev/null
  eval "HEX_$x=\$("$SHOAL_BIN" info --json "$TMP/$x.torrent" | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"infohash\"])')"
  start_shoal "seed$x" seed "$SRC/$x.bin" "$TMP/$x.torrent" --bind 127.0.0.1 --port "$(free_port)" -q
done
A=${HEX_a:0:10}; B=${HEX_b:0:10}
sport_a=$(shoal_port seeda); sport_b=$(shoal_port seedb)
check "two seeds listening" test -n "$sport_a" -a -n "$sport_b"

RPC=$(free_port); PPORT=$(free_port)
echo '{"bind": "127.0.0.1"}' >"$CFG/settings.json"
start_shoal d daemon --config-dir "$CFG" --download-dir "$DL" --rpc-port "$RPC" --port "$PPORT" \
  --foreground --log-level info
DPID=$LAST_PID
check "daemon ready" wait_for $((30 * SLOW)) "daemon ready" grep -q 'ready' "$TMP/d.err"
check "A added into the 8 MiB tmpfs" remote add "$TMP/a.torrent" -o "$SMALL" >/dev/null
check "B added into the normal folder" remote add "$TMP/b.torrent" >/dev/null
remote add-peer "$A" "127.0.0.1:$sport_a" >/dev/null
remote add-peer "$B" "127.0.0.1:$sport_b" >/dev/null

in_error() { [ "$(jget "r['state']" info "$1")" = error ]; }
check "A stops in state error" wait_for $((60 * SLOW)) "A in error" in_error "$A"
check "B completes" wait_for $((60 * SLOW)) "B seeding" state_is "$B" seeding 1.0
check "B is identical" cmp -s "$SRC/b.bin" "$DL/b.bin"
err=$(jget "r['error']" info "$A")
echo "# A: error '$err'"
check "info --json: A's error names the lack of space" grep -qi 'space' <<<"$err"
check "list --json: A in error, the same reason" \
  test "$(jget "[(x['state'], x['error']) for x in r['torrents'] if x['id'] == '$HEX_a'] == [('error', '''$err''')]" list)" = True
check "list (text): A's line says error" bash -c "'$SHOAL_BIN' remote --config-dir '$CFG' list | grep '${HEX_a:0:8}' | grep -q error"
check "info (text): shows the reason" bash -c "'$SHOAL_BIN' remote --config-dir '$CFG' info '$A' | grep -qi 'space'"
check "the daemon logged it" grep -qi 'space' "$TMP/d.err"
have_pieces=$(jget "r['have_pieces']" info "$A")
read -r good total <<<"$(python3 -B "$PIECES" count "$TMP/a.torrent" "$SMALL")"
echo "# A: have_pieces ${have_pieces:-?}; pieces that verify on the tmpfs: ${good:-?} of ${total:-?}"
check "A: not complete" test "${have_pieces:-0}" -lt "${total:-0}"
check "A: every piece counted as had verifies on the tmpfs (${good:-?} >= ${have_pieces:-?})" \
  test "${good:-0}" -ge "${have_pieces:-1}"
check "the daemon is still running" kill -0 "$DPID"

# ---- room again: resume retries A ----
mount -o remount,size=64m "$SMALL"
check "tmpfs made bigger" test "$(df -B1M --output=size "$SMALL" | tail -n 1 | tr -d ' ')" -ge 64
check "resume A accepted" test "$(jget "r['count']" resume "$A")" = 1
check "A completes after resume" wait_for $((60 * SLOW)) "A seeding" state_is "$A" seeding 1.0
check "A: the error is cleared" test "$(jget "r['error']" info "$A")" = ""
check "A is identical" cmp -s "$SRC/a.bin" "$SMALL/a.bin"
got=$(jget "r['downloaded']" info "$A")
echo "# A downloaded ${got:-?} bytes in all"
check "A: the pieces kept on the tmpfs were not fetched again (${got:-?} <= 20 MiB + 4 MiB)" \
  test "${got:-999999999}" -le $(((20 + 4) << 20))
check "B still seeding" state_is "$B" seeding 1.0

kill -TERM "$DPID"
wait_exit 20 "$DPID"
check "SIGTERM: the daemon exits 0 (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
finish
