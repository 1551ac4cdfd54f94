#!/bin/bash
# test_bad_torrent.sh -- hostile .torrent files (tests/data/bad/*.torrent, made by
# tests/data/make_bad.py): `shoal info` and `shoal get` refuse each one with exit 2
# and a one-line message naming the fault (the keyword listed in
# tests/data/bad/EXPECT), and `get` leaves its download folder empty.  Then a good
# torrent whose download folder holds a folder where a file belongs: `get` fails
# with exit 1 and a message, and nothing outside the download folder is touched.
# SANITIZE_OK
source "$(dirname "$0")/lib.sh"

SLOW=1; [ -n "$SHOAL_WRAP" ] && SLOW=4
BAD="$ROOT/tests/data/bad"

# One line, ending with a newline, no sanitizer report.
one_line() { [ "$(wc -l <"$1")" -eq 1 ] && [ "$(wc -c <"$1")" -gt 8 ]; }
no_sanitizer() { ! grep -qE 'AddressSanitizer|LeakSanitizer|runtime error|Segmentation' "$1"; }
quiet() { "$@" >/dev/null; }

check "the fixture list exists" test -s "$BAD/EXPECT"
# The same torrent with nothing wrong is accepted (the fixtures differ from it in one thing).
check "control: the unbroken torrent is accepted by info" quiet shoal info "$BAD/control.good"

n=0
listed=" "
while IFS=$'\t' read -r file kw; do
  case "$file" in ''|'#'*) continue ;; esac
  n=$((n + 1))
  listed="$listed$file "
  t="$BAD/$file"
  if [ ! -f "$t" ]; then
    fail "$file: listed in EXPECT but missing"
    continue
  fi
  # info
  timeout $((10 * SLOW)) "$SHOAL_BIN" info "$t" >"$TMP/info.out" 2>"$TMP/info.err"
  rc=$?
  if [ "$rc" -eq 2 ] && one_line "$TMP/info.err" && grep -qF -- "$kw" "$TMP/info.err" &&
     [ ! -s "$TMP/info.out" ] && no_sanitizer "$TMP/info.err"; then
    pass "$file: info refuses it (exit 2, '$kw')"
  else
    fail "$file: info: exit $rc, stdout $(wc -c <"$TMP/info.out") bytes, stderr: $(head -c 400 "$TMP/info.err")"
  fi
  # get: refused before anything is created or any socket opened
  dir="$TMP/get-${file%.torrent}"
  mkdir -p "$dir"
  timeout $((10 * SLOW)) $SHOAL_WRAP "$SHOAL_BIN" get "$t" -o "$dir" --bind 127.0.0.1 --port "$(free_port)" \
    >"$TMP/get.out" 2>"$TMP/get.err"
  rc=$?
  if [ "$rc" -eq 2 ] && one_line "$TMP/get.err" && grep -qF -- "$kw" "$TMP/get.err" && no_sanitizer "$TMP/get.err" &&
     [ -z "$(ls -A "$dir")" ] && ! grep -q '^port: ' "$TMP/get.out"; then
    pass "$file: get refuses it (exit 2, nothing written)"
  else
    fail "$file: get: exit $rc, folder holds [$(ls -A "$dir" | head -c 200)], stderr: $(head -c 400 "$TMP/get.err")"
  fi
done <"$BAD/EXPECT"
check "at least 25 fixtures are listed ($n)" test "$n" -ge 25
unlisted=""
for t in "$BAD"/*.torrent; do
  case "$listed" in *" $(basename "$t") "*) ;; *) unlisted="$unlisted $(basename "$t")" ;; esac
done
check "every fixture is listed in EXPECT${unlisted:+ (not listed:$unlisted)}" test -z "$unlisted"
# The generator still produces exactly the checked-in files.
mkdir -p "$TMP/regen/bad"
cp "$ROOT/tests/data/make_bad.py" "$TMP/regen/"
python3 "$TMP/regen/make_bad.py" >/dev/null
check "make_bad.py reproduces the checked-in fixtures" diff -r "$TMP/regen/bad" "$BAD"

# A file that is missing is a usage error too, with a message.
"$SHOAL_BIN" info "$TMP/no-such.torrent" >/dev/null 2>"$TMP/nf.err"
rc=$?
check "info of a missing file: exit 2 with a message (rc $rc)" \
  bash -c "[ $rc -eq 2 ] && grep -q 'no-such.torrent' '$TMP/nf.err'"
mkdir -p "$TMP/adir.torrent"
"$SHOAL_BIN" info "$TMP/adir.torrent" >/dev/null 2>"$TMP/ad.err"
rc=$?
check "info of a folder: exit 2 with a message (rc $rc)" \
  bash -c "[ $rc -eq 2 ] && grep -q 'not a regular file' '$TMP/ad.err'"

# ---- a good torrent, but a folder sits where one of its files belongs ----
src="$TMP/src/album"
mkdir -p "$src/sub"
make_file "$src/sub/a.bin" 300001 1
make_file "$src/b.bin" 1000 2
check "create the good torrent" quiet shoal create "$src" -o "$TMP/album.torrent" --piece-size 16K -q
start_shoal seeder seed "$src" "$TMP/album.torrent" --bind 127.0.0.1 --port "$(free_port)"
sport=$(shoal_port seeder)
check "seeder listens" test -n "$sport"

dl="$TMP/dl"
mkdir -p "$dl/album/sub/a.bin/keep"
echo "precious" >"$dl/album/sub/a.bin/keep/note.txt"
start_shoal blocked get "$TMP/album.torrent" -o "$dl" --bind 127.0.0.1 --port "$(free_port)" --peer "127.0.0.1:$sport"
wait_exit $((30 * SLOW)) "$PID_blocked"
rc=$WAIT_RC
check "get with a folder in a file's place exits 1 (rc $rc)" test "$rc" -eq 1
check "it says why on stderr" grep -qE 'cannot (write|check)|not a regular file|folder|directory|unsafe' "$TMP/blocked.err"
check "no crash or sanitizer report" no_sanitizer "$TMP/blocked.err"
check "the folder in the way and its content are untouched" \
  bash -c "[ -d '$dl/album/sub/a.bin' ] && [ \"\$(cat '$dl/album/sub/a.bin/keep/note.txt')\" = precious ]"
check "the message names the path in the way (sub/a.bin)" grep -q 'sub/a\.bin' "$TMP/blocked.err"

# Single-file torrent whose name is taken by a folder.
make_file "$TMP/src/one.bin" 70000 3
check "create a single-file torrent" quiet shoal create "$TMP/src/one.bin" -o "$TMP/one.torrent" --piece-size 16K -q
start_shoal seeder1 seed "$TMP/src/one.bin" "$TMP/one.torrent" --bind 127.0.0.1 --port "$(free_port)"
s1port=$(shoal_port seeder1)
mkdir -p "$TMP/dl1/one.bin"
start_shoal blocked1 get "$TMP/one.torrent" -o "$TMP/dl1" --bind 127.0.0.1 --port "$(free_port)" --peer "127.0.0.1:$s1port"
wait_exit $((30 * SLOW)) "$PID_blocked1"
rc=$WAIT_RC
check "single file: a folder in its place makes get exit 1 (rc $rc)" test "$rc" -eq 1
check "single file: the message names the file (one.bin)" grep -q 'one\.bin' "$TMP/blocked1.err"
check "single file: the folder is still there and empty" \
  bash -c "[ -d '$TMP/dl1/one.bin' ] && [ -z \"\$(ls -A '$TMP/dl1/one.bin')\" ]"

# After the obstacle is removed the same command completes.
rm -rf "$dl/album/sub/a.bin"
start_shoal retry get "$TMP/album.torrent" -o "$dl" --bind 127.0.0.1 --port "$(free_port)" --peer "127.0.0.1:$sport"
wait_exit $((30 * SLOW)) "$PID_retry"
check "with the folder removed, get completes (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
check "and the files are identical" same_tree "$src" "$dl/album"

kill -TERM "$PID_seeder" "$PID_seeder1"
wait_exit $((20 * SLOW)) "$PID_seeder"
check "seeder stops cleanly (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
wait_exit $((20 * SLOW)) "$PID_seeder1"
check "single-file seeder stops cleanly (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
finish
