#!/bin/bash
# test_resume.sh -- a download killed with SIGKILL part-way resumes: a leecher of a
# 40 MiB file (256 KiB pieces) fed by a rate-limited seeder (evil_peer.py in honest
# mode) is killed once about a third of the data is on disk; one piece on disk is
# then damaged; `shoal get` run again on the same folder reports exactly the pieces
# that verify ("N of M pieces already here"), downloads only the rest from a real
# shoal seeder, and ends with an identical file.  A third run finds everything
# already there and needs no peer at all.
# SANITIZE_OK VALGRIND_OK
source "$(dirname "$0")/lib.sh"

SLOW=1; [ -n "$SHOAL_WRAP" ] && SLOW=4
EVIL="$ROOT/tests/run/evil_peer.py"
SIZE=$((40 << 20))
PIECE=$((256 << 10))
NPIECES=$(( (SIZE + PIECE - 1) / PIECE ))

src="$TMP/src/big.bin"
mkdir -p "$TMP/src" "$TMP/dl"
make_file "$src" "$SIZE" 11
shoal create "$src" -o "$TMP/big.torrent" --piece-size 256K -q >/dev/null
check "torrent created" test -s "$TMP/big.torrent"

# Bytes of a file actually on disk (the partial file is sparse: pieces are
# written at their offsets as they arrive).
allocated() { local b; b=$(stat -c '%b*%B' "$1" 2>/dev/null) && echo $((b)) || echo 0; }
past_third() { [ "$(allocated "$TMP/dl/big.bin")" -ge $((SIZE * 30 / 100)) ]; }
# Pieces of the file on disk whose SHA-1 matches the torrent; with a second
# argument, also damages one byte of the first such piece (and says which).
verified_pieces() {  # path [damage]
  python3 - "$TMP/big.torrent" "$1" "${2:-}" <<'PY'
import hashlib, os, sys
sys.dont_write_bytecode = True        # nothing written next to evil_peer.py
sys.path.insert(0, os.environ["EVIL_DIR"])
from evil_peer import Torrent
tor = Torrent(sys.argv[1])
good = []
with open(sys.argv[2], "r+b") as f:
    for i in range(tor.num_pieces):
        f.seek(i * tor.piece_length)
        if hashlib.sha1(f.read(tor.piece_size(i))).digest() == tor.hashes[i]:
            good.append(i)
    if sys.argv[3] and good:
        at = good[0] * tor.piece_length + tor.piece_length // 2
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0xFF]))
        print(len(good), good[0])
    else:
        print(len(good))
PY
}
export EVIL_DIR="$ROOT/tests/run"

# ---- first run: a slow seeder, killed part-way ----
start slow python3 "$EVIL" seed "$TMP/big.torrent" "$src" --port "$(free_port)" --rate 8000000 \
  --stats "$TMP/slow.json"
wait_for 20 "slow seeder listening" grep -q '^port: ' "$TMP/slow.out"
slowport=$(out_value slow port)
start_shoal first get "$TMP/big.torrent" -o "$TMP/dl" --bind 127.0.0.1 --port "$(free_port)" \
  --peer "127.0.0.1:$slowport" -v
check "first run: a third of the data reaches the disk" wait_for $((40 * SLOW)) "30% on disk" past_third
kill -KILL "$PID_first"
{ wait_exit 10 "$PID_first"; } 2>/dev/null
at_kill=$(allocated "$TMP/dl/big.bin")
echo "# killed with $at_kill of $SIZE bytes on disk"
check "first run: killed by SIGKILL (rc $WAIT_RC)" test "$WAIT_RC" -eq 137
check "first run: it had not completed" bash -c "! grep -q '^complete:' '$TMP/first.out' && [ $at_kill -lt $SIZE ]"
kill -TERM "$PID_slow"; wait_exit 10 "$PID_slow"

read -r good damaged <<<"$(verified_pieces "$TMP/dl/big.bin" damage)"
check "pieces that verify after the kill: $good of $NPIECES" test "${good:-0}" -gt 1 -a "${good:-0}" -lt "$NPIECES"
# At most one piece per threadpool thread can have been half written.
check "what is on disk is verified pieces (but for writes cut short by the kill)" \
  test $(( (good + 8) * PIECE )) -ge "$at_kill"
expect=$((good - 1))
echo "# damaged one byte of piece $damaged: $expect pieces should still verify"
check "the damaged piece no longer verifies" test "$(verified_pieces "$TMP/dl/big.bin")" -eq "$expect"

# ---- second run: resumes from what is there, the rest from a real seeder ----
start_shoal seeder seed "$src" "$TMP/big.torrent" --bind 127.0.0.1 --port "$(free_port)"
sport=$(shoal_port seeder)
check "seeder listens" test -n "$sport"
start_shoal second get "$TMP/big.torrent" -o "$TMP/dl" --bind 127.0.0.1 --port "$(free_port)" \
  --peer "127.0.0.1:$sport" -v
wait_exit $((60 * SLOW)) "$PID_second"
check "second run: completes (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
line=$(grep -o '[0-9]* of [0-9]* pieces already here' "$TMP/second.err" | head -n 1)
echo "# second run: '$line'"
check "second run: reports the pieces already here" test -n "$line"
check "second run: exactly the $expect verified pieces are kept" test "$line" = "$expect of $NPIECES pieces already here"
check "second run: the file is identical" cmp -s "$src" "$TMP/dl/big.bin"
check "second run: prints its completion" grep -q '^complete: big.bin' "$TMP/second.out"
# "complete: big.bin (9.8 MiB in 0.1 s, ...)": only the missing pieces were fetched.
got_mib=$(sed -n 's/^complete: big.bin (\([0-9.]*\) MiB in.*/\1/p' "$TMP/second.out")
need_mib=$(python3 -c "print('%.1f' % (($NPIECES - $expect) * $PIECE / 1048576))")
echo "# second run downloaded ${got_mib:-?} MiB; $need_mib MiB were missing"
check "second run: downloaded only what was missing (${got_mib:-?} MiB, needed $need_mib MiB)" \
  python3 -c "import sys; g=float(sys.argv[1] or 'nan'); n=float(sys.argv[2]); sys.exit(0 if n - 0.1 <= g <= n + 2 else 1)" \
  "${got_mib:-}" "$need_mib"
kill -TERM "$PID_seeder"
wait_exit $((20 * SLOW)) "$PID_seeder"
check "seeder stops cleanly (rc $WAIT_RC)" test "$WAIT_RC" -eq 0

# ---- third run: nothing to do, no peer needed ----
start_shoal third get "$TMP/big.torrent" -o "$TMP/dl" --bind 127.0.0.1 --port "$(free_port)" -v
wait_exit $((30 * SLOW)) "$PID_third"
check "third run: completes without any peer (rc $WAIT_RC)" test "$WAIT_RC" -eq 0
check "third run: all $NPIECES pieces already here" grep -q "$NPIECES of $NPIECES pieces already here" "$TMP/third.err"
check "third run: says all data was already there" grep -q '^complete: big.bin (all data was already here)' "$TMP/third.out"
check "third run: the file is unchanged" cmp -s "$src" "$TMP/dl/big.bin"
finish
