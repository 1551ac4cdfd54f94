#!/bin/bash
# test_magnet.sh -- magnet links (BEP 9): the metadata is fetched from a peer named
# in x.pe, checked against the infohash and kept with --save-torrent; --only
# and --skip select files; malformed links are refused with exit 2.
# SANITIZE_OK VALGRIND_OK
source "$(dirname "$0")/lib.sh"

src="$TMP/src/set"
mkdir -p "$src/a" "$src/b"
make_file "$src/a/one.bin" 700001 11
make_file "$src/b/two.bin" 345678 12
make_file "$src/three.bin" 99999 13
shoal create "$src" -o "$TMP/set.torrent" --piece-size 16K -q >/dev/null
ih=$("$SHOAL_BIN" info "$TMP/set.torrent" | sed -n 's/^infohash: *//p')
check "info prints a magnet link" bash -c "'$SHOAL_BIN' info '$TMP/set.torrent' | grep -q '^magnet: *magnet:?xt=urn:btih:$ih'"

start_shoal seeder seed "$src" "$TMP/set.torrent" --bind 127.0.0.1 --port "$(free_port)"
sport=$(shoal_port seeder)
check "seed prints the magnet link" grep -q "^magnet: magnet:?xt=urn:btih:$ih" "$TMP/seeder.out"

start_shoal m1 get "magnet:?xt=urn:btih:$ih&dn=set&x.pe=127.0.0.1:$sport" -o "$TMP/m1" \
  --bind 127.0.0.1 --port "$(free_port)" --save-torrent "$TMP/saved.torrent" -v
wait_exit 60 "$PID_m1"
check "magnet download exits 0 (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
check "magnet download is identical" same_tree "$src" "$TMP/m1/set"
check "metadata was fetched from the peer" grep -q "metadata received" "$TMP/m1.err"
check "the saved torrent has the same infohash" \
  bash -c "'$SHOAL_BIN' info '$TMP/saved.torrent' | grep -q '^infohash: *$ih'"

# base32 form of the same infohash, and only file 1 (b/two.bin)
b32=$(python3 -c "import base64,sys; print(base64.b32encode(bytes.fromhex('$ih')).decode())")
start_shoal m2 get "magnet:?xt=urn:btih:$b32&x.pe=127.0.0.1:$sport" -o "$TMP/m2" \
  --bind 127.0.0.1 --port "$(free_port)" --only 1 -q
wait_exit 60 "$PID_m2"
check "base32 magnet with --only exits 0 (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
check "the selected file is identical" cmp -s "$src/b/two.bin" "$TMP/m2/set/b/two.bin"
check "files left out are not created" test ! -e "$TMP/m2/set/a/one.bin" -a ! -e "$TMP/m2/set/three.bin"

# --skip with a .torrent
start_shoal s1 get "$TMP/set.torrent" -o "$TMP/s1" --bind 127.0.0.1 --port "$(free_port)" \
  --peer "127.0.0.1:$sport" --skip 0,2 -q
wait_exit 60 "$PID_s1"
check "--skip 0,2 exits 0 (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
check "--skip keeps the other file" cmp -s "$src/b/two.bin" "$TMP/s1/set/b/two.bin"
check "--skip leaves the skipped files out" test ! -e "$TMP/s1/set/a/one.bin"

bad() {  # description, link or extra args..., expected stderr word
  local what=$1 word=$2; shift 2
  "$SHOAL_BIN" get "$@" -o "$TMP/bad" >"$TMP/bad.out" 2>"$TMP/bad.err"
  local rc=$?
  check "$what: exit 2 (rc $rc)" test "$rc" -eq 2
  check "$what: message names it" grep -qi -- "$word" "$TMP/bad.err"
}
bad "short infohash" "btih" "magnet:?xt=urn:btih:abcdef"
bad "no xt" "xt" "magnet:?dn=x"
bad "v2-only link" "v2" "magnet:?xt=urn:btmh:1220$(printf '%064d' 0)"
bad "bad x.pe" "x.pe" "magnet:?xt=urn:btih:$ih&x.pe=not-an-address"
bad "file index out of range" "out of range" "$TMP/set.torrent" --only 7
bad "bad file list" "file list" "$TMP/set.torrent" --only "1-"
check "nothing was created for bad input" test ! -e "$TMP/bad"

kill -TERM "$PID_seeder"; wait_exit 20 "$PID_seeder"
check "seeder stops cleanly (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
finish
