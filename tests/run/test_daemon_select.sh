#!/bin/bash
# test_daemon_select.sh -- choosing files in the daemon: a three-file torrent added
# with `--only 0` completes with only that file written; `set --priority 1-2=normal`
# then makes the seeding torrent download again and all three files end up
# identical (the pieces that span file boundaries are fetched again for the bytes
# that were left out).  Then the queue: with one download slot, the torrent moved
# to the top of the queue takes the slot.  Last, the control API on the Unix
# socket in the config dir: 0600, the token still required.
# SANITIZE_OK
# VALGRIND_OK
source "$(dirname "$0")/lib.sh"

SLOW=1; [ -n "$SHOAL_WRAP" ] && SLOW=4
SRC="$TMP/src"; CFG="$TMP/cfg"; DL="$TMP/dl"
mkdir -p "$SRC/album" "$CFG" "$DL"

remote() { "$SHOAL_BIN" remote --config-dir "$CFG" "$@"; }
jget() {  # python expression over r = the --json result, remote args...
  local e=$1; shift
  "$SHOAL_BIN" remote --config-dir "$CFG" --json "$@" 2>/dev/null |
    python3 -c 'import json, sys; r = json.load(sys.stdin); print(eval(sys.argv[1]))' "$e" 2>/dev/null
}
state_is() { [ "$(jget "'%s %s' % (r['state'], r['progress'])" info "$1")" = "$2 $3" ]; }

# 64 KiB pieces; file boundaries fall inside pieces
make_file "$SRC/album/0.bin" 100000 41
make_file "$SRC/album/1.bin" 150001 42
make_file "$SRC/album/2.bin" 300007 43
"$SHOAL_BIN" create "$SRC/album" -o "$TMP/album.torrent" --piece-size 65536 -q >/dev/null
HEX=$("$SHOAL_BIN" info --json "$TMP/album.torrent" | python3 -c 'import json,sys; print(json.load(sys.stdin)["infohash"])')
ID=${HEX:0:10}
start_shoal seed seed "$SRC/album" "$TMP/album.torrent" --bind 127.0.0.1 --port "$(free_port)" -q
SPORT=$(shoal_port seed)
check "seed listening" test -n "$SPORT"

RPC=$(free_port)
echo '{"bind": "127.0.0.1", "max_active_downloads": 1}' >"$CFG/settings.json"
start_shoal d daemon --config-dir "$CFG" --download-dir "$DL" --rpc-port "$RPC" --port 0 \
  --foreground --log-level info
DPID=$LAST_PID
check "daemon ready" wait_for $((30 * SLOW)) "daemon ready" grep -q 'ready' "$TMP/d.err"

check "added with --only 0" bash -c "'$SHOAL_BIN' remote --config-dir '$CFG' add '$TMP/album.torrent' --only 0 >/dev/null"
remote add-peer "$ID" "127.0.0.1:$SPORT" >/dev/null
check "file 0 done: the torrent seeds" wait_for $((60 * SLOW)) "seeding" state_is "$ID" seeding 1.0
check "file 0 is identical" cmp -s "$SRC/album/0.bin" "$DL/album/0.bin"
check "file 2 was never written" test ! -e "$DL/album/2.bin"
check "info: file 1 is skipped" test "$(jget "r['files'][1]['priority']" info "$ID")" = skip
check "size counts only the wanted file" test "$(jget "r['size']" info "$ID")" -lt 200000

check "set: files 1 and 2 wanted again" bash -c "'$SHOAL_BIN' remote --config-dir '$CFG' set '$ID' --priority 1-2=normal >/dev/null"
check "it downloads the rest and seeds again" wait_for $((60 * SLOW)) "seeding" state_is "$ID" seeding 1.0
for i in 0 1 2; do
  check "file $i is identical" cmp -s "$SRC/album/$i.bin" "$DL/album/$i.bin"
done
check "the log says more files are wanted" grep -q 'more files wanted' "$TMP/d.err"

# ---- the queue: one download slot ----
make_file "$SRC/q1.bin" 200000 44
make_file "$SRC/q2.bin" 200000 45
for q in q1 q2; do
  "$SHOAL_BIN" create "$SRC/$q.bin" -o "$TMP/$q.torrent" -q >/dev/null
  remote add "$TMP/$q.torrent" >/dev/null      # no peer: they stay downloading
done
Q1=$("$SHOAL_BIN" info --json "$TMP/q1.torrent" | python3 -c 'import json,sys; print(json.load(sys.stdin)["infohash"][:10])')
Q2=$("$SHOAL_BIN" info --json "$TMP/q2.torrent" | python3 -c 'import json,sys; print(json.load(sys.stdin)["infohash"][:10])')
st() { jget "r['state']" info "$1"; }
q1_runs() { [ "$(st "$Q1")" = downloading ] && [ "$(st "$Q2")" = queued ]; }
check "one slot: the first added downloads, the second is queued" wait_for $((20 * SLOW)) "q1 runs" q1_runs
check "set --queue top" bash -c "'$SHOAL_BIN' remote --config-dir '$CFG' set '$Q2' --queue top >/dev/null"
q2_runs() { [ "$(st "$Q2")" = downloading ] && [ "$(st "$Q1")" = queued ]; }
check "the torrent moved to the top takes the slot" wait_for $((20 * SLOW)) "q2 runs" q2_runs
check "list shows it first" test "$(jget "r['torrents'][0]['id'][:10]" list)" = "$Q2"

# ---- the control API on the Unix socket next to the token ----
SOCK="$CFG/rpc.sock"
check "rpc.sock is a socket only its owner may use" bash -c "test -S '$SOCK' && test \$(stat -c %a '$SOCK') = 600"
TOKEN=$(cat "$CFG/rpc-token")
code=$(curl -s -o "$TMP/sock.out" -w '%{http_code}' --unix-socket "$SOCK" -H "Authorization: Bearer $TOKEN" \
  -d '{"method":"list"}' http://localhost/rpc)
check "the socket answers list with the token (HTTP $code)" test "$code" = 200
check "... with the three torrents" test "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["result"]["torrents"]))' "$TMP/sock.out")" = 3
code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$SOCK" -d '{"method":"pause","params":{"id":"all"}}' http://localhost/rpc)
check "the socket refuses a call without the token (HTTP $code)" test "$code" = 401
check "... and nothing was paused" test "$(jget "sum(t['state'] == 'paused' for t in r['torrents'])" list)" = 0

kill -TERM "$DPID" 2>/dev/null
wait_exit $((20 * SLOW)) "$DPID"
check "SIGTERM: the daemon exits 0 (rc $WAIT_RC)" test "$WAIT_RC" = 0
check "the socket is gone after the exit" test ! -e "$SOCK"
finish
