#!/bin/bash
# test_magnet_lt.sh -- magnet links against libtorrent (BEP 9 ut_metadata): a
# libtorrent seeder (lt_client.py, TCP only, no DHT/LSD/UPnP, no tracker) of a
# multi-file torrent; `shoal get` is given only the magnet link (hex infohash, then
# its base32 form) with x.pe naming libtorrent's port.  shoal must fetch the info
# dict from libtorrent ("metadata received"), write byte-identical files, and keep a
# --save-torrent file with the same infohash.  Last, a hybrid v1+v2 torrent made by
# libtorrent (its info dict carries v2 keys and BEP 47 pad files) fetched through the
# magnet link libtorrent itself prints (btih and btmh).
source "$(dirname "$0")/lib.sh"

need_client libtorrent || finish
echo "# $(client_version libtorrent); $(client_version shoal)"

read -r lport g1 g2 lport3 g3 <<<"$(free_ports 5)"
check "shoal create makes the multi-file torrent" make_album "" 32K
size=$(cd "$SRC" && find . -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
ih=$("$SHOAL_BIN" info "$TORRENT" | sed -n 's/^infohash: *//p')
check "shoal info prints the infohash ($ih)" bash -c "[[ '$ih' =~ ^[0-9a-f]{40}$ ]]"
b32=$(python3 -c "import base64; print(base64.b32encode(bytes.fromhex('$ih')).decode())")

# The infohash of a .torrent file as `shoal info` prints it.
infohash_of() {  # torrent
  "$SHOAL_BIN" info "$1" 2>/dev/null | sed -n 's/^infohash: *//p'
}

# Starts a libtorrent seeder of the data in $TMP/lt-seed and checks that it seeds.
seed_lt() {  # name, torrent, port, time-out in seconds (times SLOW), description
  start_lt "$1" "$2" "$TMP/lt-seed" "$3" --seed --no-tracker --timeout $(($4 * SLOW))
  check "$5" wait_for $((20 * SLOW)) "libtorrent seeding" out_has "$1" "^seeding: $NAME"
}

# `shoal get` of a magnet link into $TMP/NAME, keeping $TMP/NAME.torrent; waits
# for its exit and sets GET_RC.
get_magnet() {  # name, link, port
  start_shoal "$1" get "$2" -o "$TMP/$1" --bind 127.0.0.1 --port "$3" --save-torrent "$TMP/$1.torrent" -vv
  wait_exit $((30 * SLOW)) "$LAST_PID"
  GET_RC=$WAIT_RC
}

copy_album "$TMP/lt-seed"
seed_lt lt_seed "$TORRENT" "$lport" 55 "libtorrent seeder checked its data and seeds"

# 1. hex infohash; shoal knows nothing but the link.
get_magnet m1 "magnet:?xt=urn:btih:$ih&x.pe=127.0.0.1:$lport" "$g1"
rc1=$GET_RC
check "shoal get of a hex magnet from libtorrent exits 0 (rc $rc1)" test "$rc1" -eq 0
check "shoal got the metadata from libtorrent (\"metadata received\")" grep -q "metadata received" "$TMP/m1.err"
check "the files are identical to the source" same_album "$TMP/m1"
check "shoal printed completion" grep -q "^complete: $NAME" "$TMP/m1.out"
check "--save-torrent wrote a torrent" test -s "$TMP/m1.torrent"
check "the saved torrent has the same infohash ($(infohash_of "$TMP/m1.torrent"))" \
  test "$(infohash_of "$TMP/m1.torrent")" = "$ih"
check "the saved torrent's info dict is the original's, byte for byte" python3 - "$TORRENT" "$TMP/m1.torrent" <<PY
$TRACKER_PY_PRELUDE
a, b = (info_span(open(p, "rb").read()) for p in sys.argv[1:3])
sys.exit(0 if a == b else 1)
PY
check "shoal get dropped no libtorrent connection as broken" test -z "$(shoal_dropped m1)"
[ "$rc1" -ne 0 ] && { show_logs m1; show_logs lt_seed 10; }
stop_pid "$PID_m1"

# 2. the same infohash in base32.
get_magnet m2 "magnet:?xt=urn:btih:$b32&x.pe=127.0.0.1:$lport" "$g2"
rc2=$GET_RC
check "shoal get of a base32 magnet ($b32) from libtorrent exits 0 (rc $rc2)" test "$rc2" -eq 0
check "shoal got the metadata from libtorrent again" grep -q "metadata received" "$TMP/m2.err"
check "the files are identical to the source" same_album "$TMP/m2"
check "the saved torrent has the same infohash" test "$(infohash_of "$TMP/m2.torrent")" = "$ih"
[ "$rc2" -ne 0 ] && { show_logs m2; show_logs lt_seed 10; }
stop_pid "$PID_m2"

stop_pid "$PID_lt_seed"
check "libtorrent seeder exits 0 on SIGTERM (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
sent=$(lt_bytes lt_seed sent "$SHOAL_PID_RE")
check "libtorrent uploaded the torrent twice to shoal peers ($sent >= 2 x $size)" test "$sent" -ge $((2 * size))
grep -E '^(uploaded|peer):' "$TMP/lt_seed.out" | sed 's/^/# /'

# 3. A hybrid torrent libtorrent creates by default (v1 + v2 keys, pad files after
#    each file but the last); shoal joins its v1 swarm from libtorrent's own magnet link.
HYB="$TMP/hybrid.torrent"
check "libtorrent creates a hybrid v1+v2 torrent of the same data" "$LT_PYTHON" - "$SRC" "$HYB" <<'PY'
import os, sys
import libtorrent as lt
src, out = sys.argv[1:3]
fs = lt.file_storage()
lt.add_files(fs, src)
ct = lt.create_torrent(fs, 32768)
lt.set_piece_hashes(ct, os.path.dirname(src))
open(out, "wb").write(lt.bencode(ct.generate()))
ti = lt.torrent_info(out)
sys.exit(0 if ti.info_hashes().has_v1() and ti.info_hashes().has_v2() else 1)
PY
hmag=$("$LT_PYTHON" -c 'import sys, libtorrent as lt; print(lt.make_magnet_uri(lt.torrent_info(sys.argv[1])))' "$HYB")
hih=$(infohash_of "$HYB")
echo "# libtorrent's magnet: $hmag"
check "libtorrent's magnet has the v1 infohash shoal computes ($hih) and a btmh" \
  bash -c "[[ '$hmag' == *xt=urn:btih:$hih* && '$hmag' == *xt=urn:btmh:1220* ]]"
seed_lt lt_hyb "$HYB" "$lport3" 40 "libtorrent seeds the hybrid torrent"
get_magnet m3 "$hmag&x.pe=127.0.0.1:$lport3" "$g3"
rc3=$GET_RC
check "shoal get of libtorrent's hybrid magnet exits 0 (rc $rc3)" test "$rc3" -eq 0
check "shoal got the hybrid metadata from libtorrent" grep -q "metadata received" "$TMP/m3.err"
check "the files are identical to the source" same_album "$TMP/m3"
check "no pad file was written" test -z "$(find "$TMP/m3" -path '*.pad*' -print -quit)"
check "the saved torrent has the hybrid's v1 infohash" test "$(infohash_of "$TMP/m3.torrent")" = "$hih"
check "shoal get dropped no libtorrent connection as broken" test -z "$(shoal_dropped m3)"
[ "$rc3" -ne 0 ] && { show_logs m3; show_logs lt_hyb 10; }
stop_pid "$PID_m3"
stop_pid "$PID_lt_hyb"
finish
