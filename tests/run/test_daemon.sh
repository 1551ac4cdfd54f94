#!/bin/bash
# test_daemon.sh -- `shoal daemon` driven through `shoal remote` and its control API:
#  a. a daemon on fresh folders (settings.json: 5 active downloads, 30 seeds, a
#     watch folder, peers on loopback only);
#  b. 20 torrents (14 .torrent files, 6 magnet links; single files and folders,
#     about 48 MiB in all), each fed by its own `shoal seed` named with add-peer,
#     all end up seeding with data identical to the source;
#  c. the control API refuses a wrong token (401) and a foreign Host (403)
#     without changing anything, and answers the right token and Host (200);
#  d. pause all / resume all / verify / remove --delete-data (data and the
#     torrent's config files gone);
#  e. SIGTERM saves and exits 0; a daemon started again on the same folders has
#     the 19 torrents seeding again without reading their data back (rchar of
#     /proc/PID/io far below the data size) and without downloading anything;
#  f. the watch folder: a .torrent moved in is added (renamed .torrent.added)
#     and completes; a garbage .torrent is renamed .torrent.invalid and not added;
#  g. SIGHUP reloads settings.json: the new rate_down shows in `stats`.
# SANITIZE_OK
source "$(dirname "$0")/lib.sh"

SLOW=1; [ -n "$SHOAL_WRAP" ] && SLOW=4
case "$BUILD" in *san*) SLOW=2 ;; esac
N=20
NMAG=6
SRC="$TMP/src"; CFG="$TMP/cfg"; DL="$TMP/dl"; WATCH="$TMP/watch"; TOR="$TMP/tor"
mkdir -p "$SRC" "$CFG" "$DL" "$WATCH" "$TOR"

# ---- helpers ----
remote() { "$SHOAL_BIN" remote --config-dir "$CFG" "$@"; }
rjson() { "$SHOAL_BIN" remote --config-dir "$CFG" --json "$@" 2>/dev/null; }
# Exit status of a Python expression over t = the `list` torrents.
listq() {  # expression
  rjson list | python3 -c '
import json, sys
t = json.load(sys.stdin)["torrents"]
sys.exit(0 if eval(sys.argv[1]) else 1)' "$1" 2>/dev/null
}
# Prints a Python expression over r = a method's --json result.
jget() {  # expression, remote args...
  local e=$1; shift
  rjson "$@" | python3 -c 'import json, sys; r = json.load(sys.stdin); print(eval(sys.argv[1]))' "$e" 2>/dev/null
}
all_seeding() {  # count
  listq "len(t) == $1 and all(x['state'] == 'seeding' and x['progress'] == 1 and x['error'] == '' for x in t)"
}
rchar() { sed -n 's/^rchar: //p' "/proc/$1/io" 2>/dev/null; }
# POSTs a body to the control API; prints the HTTP status.
http_post() {  # host header, token, body
  curl -s -o "$TMP/http.body" -w '%{http_code}' --max-time 10 \
    -H "Host: $1" -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
    --data "$3" "http://127.0.0.1:$RPC/rpc"
}
start_daemon() {  # name
  start_shoal "$1" daemon --config-dir "$CFG" --download-dir "$DL" --rpc-port "$RPC" --port "$PPORT" \
    --foreground --log-level info
  DPID=$LAST_PID
  wait_for $((30 * SLOW)) "daemon $1 ready" grep -q 'ready' "$TMP/$1.err"
}
write_settings() {  # rate_down
  cat >"$CFG/settings.json.tmp" <<EOF
{"max_active_downloads": 5, "max_active_seeds": 30, "bind": "127.0.0.1",
 "watch_dir": "$WATCH", "rate_down": $1}
EOF
  mv "$CFG/settings.json.tmp" "$CFG/settings.json"
}

# ---- the data: 20 items, every third a folder of three files ----
total=0
for i in $(seq 0 $((N - 1))); do
  size=$(( (1 << 20) + i * 150 * 1024 + i * 7 ))
  if [ $((i % 3)) -eq 0 ]; then
    name="dir$i"
    mkdir -p "$SRC/$name/sub"
    make_file "$SRC/$name/a.bin" $((size / 2)) $((100 + i))
    make_file "$SRC/$name/sub/b.bin" $((size - size / 2 - 1000 - i)) $((200 + i))
    make_file "$SRC/$name/c.txt" $((1000 + i)) $((300 + i))
  else
    name="file$i.bin"
    make_file "$SRC/$name" "$size" $((100 + i))
  fi
  total=$((total + size))
  NAMES[i]=$name
  SIZES[i]=$size
  "$SHOAL_BIN" create "$SRC/$name" -o "$TOR/$i.torrent" -q >/dev/null
  HEX[i]=$("$SHOAL_BIN" info --json "$TOR/$i.torrent" | python3 -c 'import json,sys; print(json.load(sys.stdin)["infohash"])')
  MAG[i]=$("$SHOAL_BIN" info --json "$TOR/$i.torrent" | python3 -c 'import json,sys; print(json.load(sys.stdin)["magnet"])')
done
echo "# $N torrents, $total bytes"
check "20 torrents created" test "$(ls "$TOR"/*.torrent | wc -l)" -eq $N

# ---- a. the daemon ----
RPC=$(free_port); PPORT=$(free_port)
write_settings 0
start_daemon d1
check "daemon ready (logged at warn level)" grep -q 'ready' "$TMP/d1.err"
check "rpc-token is 64 hex digits, mode 0600" \
  bash -c "grep -qxE '[0-9a-f]{64}' '$CFG/rpc-token' && [ \$(stat -c %a '$CFG/rpc-token') = 600 ]"
check "rpc-endpoint names the control port" grep -qx "127.0.0.1 $RPC" "$CFG/rpc-endpoint"
TOKEN=$(cat "$CFG/rpc-token")

# ---- b. 20 torrents, one seed each ----
for i in $(seq 0 $((N - 1))); do
  start_shoal "seed$i" seed "$SRC/${NAMES[i]}" "$TOR/$i.torrent" --bind 127.0.0.1 --port "$(free_port)" -q
done
ok=0
for i in $(seq 0 $((N - 1))); do
  SPORT[i]=$(shoal_port "seed$i")
  [ -n "${SPORT[i]}" ] && ok=$((ok + 1))
done
check "20 seeds listening" test $ok -eq $N

# Everything is added before any peer is known: the queue holds all but 5.
added=0
for i in $(seq 0 $((N - 1))); do
  if [ "$i" -lt $((N - NMAG)) ]; then
    remote add "$TOR/$i.torrent" >>"$TMP/add.out" 2>&1 && added=$((added + 1))
  else
    remote add "${MAG[i]}" >>"$TMP/add.out" 2>&1 && added=$((added + 1))
  fi
done
check "20 adds accepted (14 .torrent, 6 magnet)" test $added -eq $N
check "a second add of the same torrent is refused" bash -c "! '$SHOAL_BIN' remote --config-dir '$CFG' add '$TOR/0.torrent' >/dev/null 2>&1"
check "list has 20 torrents" listq "len(t) == $N"
rjson list | python3 -c 'import json,sys; print("# states:", " ".join(x["state"] for x in json.load(sys.stdin)["torrents"]))'
check "5 active, 15 queued (max_active_downloads 5)" wait_for $((10 * SLOW)) "5 active" \
  listq "sum(x['state'] in ('downloading', 'metadata', 'checking') for x in t) == 5 and sum(x['state'] == 'queued' for x in t) == 15"
check "config: a .torrent kept for each torrent file, a .magnet for each magnet link" \
  test "$(ls "$CFG/torrents" | grep -c '\.torrent$') $(ls "$CFG/torrents" | grep -c '\.magnet$')" = "$((N - NMAG)) $NMAG"
added=0
for i in $(seq 0 $((N - 1))); do
  remote add-peer "${HEX[i]:0:12}" "127.0.0.1:${SPORT[i]}" >>"$TMP/add.out" 2>&1 && added=$((added + 1))
done
check "add-peer accepted for each torrent" test $added -eq $N
t0=$SECONDS
check "all 20 torrents reach seeding with progress 1" wait_for $((120 * SLOW)) "20 seeding" all_seeding $N
echo "# all seeding after $((SECONDS - t0)) s"
same=0
for i in $(seq 0 $((N - 1))); do
  if same_tree "$SRC/${NAMES[i]}" "$DL/${NAMES[i]}"; then same=$((same + 1)); else echo "# differs: ${NAMES[i]}"; fi
done
check "all 20 downloads identical to the source ($same)" test $same -eq $N
check "magnet torrents know their metadata (torrents/HEX.torrent kept)" \
  test -s "$CFG/torrents/${HEX[N - 1]}.torrent"
check "stats: 20 torrents, 20 seeding" \
  test "$(jget "'%d %d' % (r['torrents'], r['seeding'])" stats)" = "20 20"
check "stats: downloaded counts all payload bytes ($total)" \
  test "$(jget "r['downloaded'] >= $total" stats)" = True

# ---- c. the control API's guards ----
paused_none="not any(x['state'] == 'paused' for x in t)"
code=$(http_post "localhost:$RPC" "$(printf '%064d' 0)" '{"method":"pause","params":{"id":"all"}}')
check "wrong token: HTTP 401 (got $code)" test "$code" = 401
check "wrong token: the answer is a JSON error" python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["error"]' "$TMP/http.body"
code=$(http_post "localhost:$RPC" "" '{"method":"pause","params":{"id":"all"}}')
check "no token: HTTP 401 (got $code)" test "$code" = 401
check "after 401s nothing is paused" listq "len(t) == $N and $paused_none"
code=$(http_post "evil.example" "$TOKEN" '{"method":"pause","params":{"id":"all"}}')
check "foreign Host with the right token: HTTP 403 (got $code)" test "$code" = 403
code=$(http_post "evil.example:$RPC" "$TOKEN" '{"method":"pause","params":{"id":"all"}}')
check "foreign Host with a port: HTTP 403 (got $code)" test "$code" = 403
code=$(http_post "evil.example" "$(printf '%064d' 0)" '{"method":"pause","params":{"id":"all"}}')
check "foreign Host and a wrong token: the Host is checked first, HTTP 403 (got $code)" test "$code" = 403
check "after 403s nothing is paused" listq "len(t) == $N and $paused_none"
code=$(http_post "localhost:$RPC" "$TOKEN" '{"method":"list"}')
check "right token and Host localhost:PORT: HTTP 200 (got $code)" test "$code" = 200
code=$(http_post "LOCALHOST" "$TOKEN" '{"method":"stats"}')
check "Host compared case-insensitively, without a port: HTTP 200 (got $code)" test "$code" = 200
code=$(http_post "127.0.0.1:$RPC" "$TOKEN" '{"method":"list"}')
check "right token and Host 127.0.0.1:PORT: HTTP 200 (got $code)" test "$code" = 200
check "the 200 answer holds the list" \
  python3 -c 'import json,sys; assert len(json.load(open(sys.argv[1]))["result"]["torrents"]) == int(sys.argv[2])' "$TMP/http.body" $N

# ---- d. pause, resume, verify, remove ----
r0=$(rchar "$DPID")
check "pause all: count 20" test "$(jget "r['count']" pause all)" = $N
check "pause all: every torrent paused" listq "all(x['state'] == 'paused' for x in t)"
check "resume all: count 20" test "$(jget "r['count']" resume all)" = $N
check "resume all: every torrent seeding again" wait_for $((30 * SLOW)) "20 seeding" all_seeding $N
r1=$(rchar "$DPID")
echo "# pause all + resume all: the daemon read $((r1 - r0)) bytes"
check "resume all: the data is not read back ($((r1 - r0)) < 10% of $total)" test $((r1 - r0)) -lt $((total / 10))
V=3   # a folder torrent
check "verify accepted" test "$(jget "r['id']" verify "${HEX[V]:0:8}")" = "${HEX[V]}"
verified() { [ "$(grep -c "${NAMES[V]}: checking all data" "$TMP/d1.err")" -ge 2 ] && all_seeding $N; }
check "verify: checked (logged) and seeding again with everything" wait_for $((30 * SLOW)) "verified" verified
r2=$(rchar "$DPID")
check "verify: the torrent's data was read (${SIZES[V]} bytes; rchar grew by $((r2 - r1)))" test $((r2 - r1)) -ge "${SIZES[V]}"
check "verify: checked without downloading" \
  test "$(jget "r['downloaded'] >= $total and r['downloaded'] < $total + (4 << 20)" stats)" = True
R=6   # a folder torrent, removed with its data
check "remove --delete-data accepted" remote remove "${HEX[R]:0:8}" --delete-data >/dev/null
check "remove: list has 19" wait_for 10 "19 torrents" listq "len(t) == $((N - 1)) and not any(x['id'] == '${HEX[R]}' for x in t)"
check "remove: the data is gone" wait_for 10 "data deleted" test ! -e "$DL/${NAMES[R]}"
check "remove: its config files are gone" \
  bash -c "! ls '$CFG/torrents' '$CFG/resume' | grep -q '${HEX[R]}'"
check "remove: the other torrents' data is still there" same_tree "$SRC/${NAMES[R + 1]}" "$DL/${NAMES[R + 1]}"
check "remove: an unknown id is an error" bash -c "! '$SHOAL_BIN' remote --config-dir '$CFG' info '${HEX[R]:0:8}' >/dev/null 2>&1"

# ---- e. a clean restart: nothing read back, nothing downloaded ----
kill -TERM "$DPID"
wait_exit 10 "$DPID"
check "SIGTERM: the daemon exits 0 within 10 s (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
check "SIGTERM: it logged that it saved and stopped" grep -q 'stopped' "$TMP/d1.err"
kept=$((total - SIZES[R]))
start_daemon d2
check "restarted daemon ready" grep -q 'ready' "$TMP/d2.err"
check "restart: all 19 torrents seeding again" wait_for $((30 * SLOW)) "19 seeding" all_seeding $((N - 1))
rc2=$(rchar "$DPID")
echo "# restarted daemon read ${rc2:-?} bytes (data: $kept bytes)"
check "restart: data not read back (rchar ${rc2:-?} < 10% of $kept)" test "${rc2:-$kept}" -lt $((kept / 10))
check "restart: nothing downloaded" test "$(jget "r['downloaded']" stats)" = 0
check "restart: the queue order is kept" \
  listq "[x['id'] for x in t] == '$(printf '%s ' "${HEX[@]:0:R}" "${HEX[@]:R+1}")'.split()"
check "restart: no recheck was logged" bash -c "! grep -q 'pieces to check\|checking all data' '$TMP/d2.err'"

# ---- f. the watch folder ----
W=watched
make_file "$SRC/$W.bin" $((3 << 20)) 999
"$SHOAL_BIN" create "$SRC/$W.bin" -o "$TMP/$W.torrent" -q >/dev/null
WHEX=$("$SHOAL_BIN" info --json "$TMP/$W.torrent" | python3 -c 'import json,sys; print(json.load(sys.stdin)["infohash"])')
start_shoal seedw seed "$SRC/$W.bin" "$TMP/$W.torrent" --bind 127.0.0.1 --port "$(free_port)" -q
wport=$(shoal_port seedw)
cp "$TMP/$W.torrent" "$WATCH/.$W.part"
mv "$WATCH/.$W.part" "$WATCH/$W.torrent"
check "watch: the .torrent is renamed .torrent.added" \
  wait_for $((20 * SLOW)) "$W.torrent.added" test -e "$WATCH/$W.torrent.added" -a ! -e "$WATCH/$W.torrent"
check "watch: the torrent is in the list" listq "len(t) == $N and t[-1]['id'] == '$WHEX'"
remote add-peer "${WHEX:0:8}" "127.0.0.1:$wport" >/dev/null 2>&1
check "watch: it completes" wait_for $((60 * SLOW)) "20 seeding" all_seeding $N
check "watch: its data is identical" cmp -s "$SRC/$W.bin" "$DL/$W.bin"
head -c 3000 /dev/urandom >"$WATCH/.x.part"
mv "$WATCH/.x.part" "$WATCH/x.torrent"
check "watch: a garbage .torrent is renamed .torrent.invalid" \
  wait_for $((20 * SLOW)) "x.torrent.invalid" test -e "$WATCH/x.torrent.invalid" -a ! -e "$WATCH/x.torrent"
check "watch: the garbage is not in the list" listq "len(t) == $N"
check "watch: the refusal is logged" grep -q 'x.torrent' "$TMP/d2.err"

# ---- g. SIGHUP reloads settings.json ----
check "stats: no download limit yet" test "$(jget "r['rate_down_limit']" stats)" = 0
write_settings 1234567
kill -HUP "$DPID"
check "SIGHUP: stats shows rate_down_limit 1234567" \
  wait_for 10 "new limit" bash -c "[ \"\$('$SHOAL_BIN' remote --config-dir '$CFG' --json stats | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"rate_down_limit\"])')\" = 1234567 ]"
check "SIGHUP: limits shows it too" test "$(jget "r['down']" limits)" = 1234567
check "SIGHUP: the daemon is still running with its torrents" listq "len(t) == $N"

kill -TERM "$DPID"
wait_exit 10 "$DPID"
check "second SIGTERM: exits 0 (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
check "no sanitizer report from the daemon" bash -c "! grep -q 'Sanitizer\|runtime error' '$TMP/d1.err' '$TMP/d2.err'"
for i in $(seq 0 $((N - 1))); do eval "kill -TERM \$PID_seed$i" 2>/dev/null; done
kill -TERM "$PID_seedw" 2>/dev/null
finish
