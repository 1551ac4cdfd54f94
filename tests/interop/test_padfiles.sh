#!/bin/bash
# test_padfiles.sh -- BEP 47 pad files against libtorrent (lt_client.py, TCP only, no
# tracker) on loopback.  libtorrent's create_torrent makes v1 torrents of a
# multi-file folder whose files are aligned to pieces by pad files (attr "p",
# named .pad/N): with a pad after every file (canonical_files) and without the tail
# one (canonical_files_no_tail_padding); a third torrent is bencoded here by hand
# with BitComet-style pad names at the top of the folder.  Each torrent is checked
# in Python first (really v1, really padded, piece hashes over the files and the
# pads' zero bytes).  Then: libtorrent seeds -> `shoal get` downloads (files
# identical, no pad file on disk); and shoal seeds -> libtorrent downloads.
source "$(dirname "$0")/lib.sh"

need_client libtorrent || finish
echo "# $(client_version libtorrent); $(client_version shoal)"

read -r l1 g1 s1 l2 l3 g2 l4 g3 <<<"$(free_ports 8)"
check "the test data is there" make_album "" 32K
PIECE=32768

# A v1 torrent of SRC made by libtorrent's create_torrent with FLAGS (names of
# lt.create_torrent flags joined by "|").
lt_make() {  # output, flags
  "$LT_PYTHON" - "$SRC" "$1" "$2" <<'PY'
import os, sys
import libtorrent as lt
src, out, names = sys.argv[1:4]
flags = 0
for n in names.split("|"):
    flags |= getattr(lt.create_torrent, n)
fs = lt.file_storage()
lt.add_files(fs, src)
ct = lt.create_torrent(fs, 32768, flags=flags)
ct.set_creator("lt.create_torrent(%s)" % names)
lt.set_piece_hashes(ct, os.path.dirname(src))
open(out, "wb").write(lt.bencode(ct.generate()))
PY
}

# A v1 torrent bencoded here: the files of SRC in sorted order, each but the last
# followed by a pad file (attr "p") up to the next piece boundary, BitComet-style
# pad names in the torrent's top folder; pieces hashed over files and zero pads.
hand_make() {  # output
  python3 - "$SRC" "$1" "$PIECE" <<'PY'
import hashlib, os, sys
src, out, plen = sys.argv[1], sys.argv[2], int(sys.argv[3])

def benc(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(benc(x) for x in v) + b"e"
    return b"d" + b"".join(benc(k) + benc(v[k]) for k in sorted(v)) + b"e"

paths = []
for d, dirs, names in os.walk(src):
    dirs.sort()
    for n in names:
        paths.append(os.path.relpath(os.path.join(d, n), src))
paths.sort(key=lambda p: p.split(os.sep))
files, data = [], bytearray()
for i, p in enumerate(paths):
    blob = open(os.path.join(src, p), "rb").read()
    files.append({"length": len(blob), "path": p.split(os.sep)})
    data += blob
    pad = -len(data) % plen
    if pad and i + 1 < len(paths):
        files.append({"length": pad, "attr": "p",
                      "path": ["_____padding_file_%d_if you see this file, please update to BitComet 0.85 or above____" % i]})
        data += bytes(pad)
pieces = b"".join(hashlib.sha1(data[o:o + plen]).digest() for o in range(0, len(data), plen))
info = {"name": os.path.basename(src), "piece length": plen, "pieces": pieces, "files": files}
open(out, "wb").write(benc({"created by": "test_padfiles.sh", "info": info}))
PY
}

# Checks a torrent in Python: v1 only, N pad files (attr "p") or more, every real
# file but the last ones without data after them starting on a piece boundary,
# pads only where needed, and the piece hashes over the source files with the pads'
# zero bytes.  Prints "PADS REAL" (counts).
pad_check() {  # torrent
  python3 - "$1" "$SRC" <<PY
$TRACKER_PY_PRELUDE
import os
path, src = sys.argv[1], sys.argv[2]
t, _ = dec(open(path, "rb").read(), 0)
info = t[b"info"]
if b"meta version" in info or b"file tree" in info:
    raise SystemExit("not a v1-only torrent")
plen = info[b"piece length"]
data, pads, real, off = bytearray(), 0, 0, 0
for f in info[b"files"]:
    n = f[b"length"]
    if b"p" in f.get(b"attr", b""):
        pads += 1
        if n == 0 or (off + n) % plen:
            raise SystemExit("pad of %d at %d does not end on a piece boundary" % (n, off))
        data += bytes(n)
    else:
        real += 1
        if n and off % plen:
            raise SystemExit("file %r starts at %d, inside a piece" % (f[b"path"], off))
        blob = open(os.path.join(src, *[c.decode() for c in f[b"path"]]), "rb").read()
        if len(blob) != n:
            raise SystemExit("size of %r" % f[b"path"])
        data += blob
    off += n
want = b"".join(hashlib.sha1(data[o:o + plen]).digest() for o in range(0, len(data), plen))
if want != info[b"pieces"]:
    raise SystemExit("piece hashes are not over the files and zero pads")
print(pads, real)
PY
}

# No pad file anywhere under DIR (libtorrent's .pad/ folder, BitComet's names).
no_pads() {  # dir
  test -z "$(find "$1" \( -name .pad -o -name '_____padding_file_*' \) -print -quit)"
}

real_files=$(cd "$SRC" && find . -type f | wc -l)
T1="$TMP/pad-tail.torrent"
T2="$TMP/pad-notail.torrent"
T3="$TMP/pad-hand.torrent"
check "libtorrent creates a v1 torrent with canonical_files" lt_make "$T1" "v1_only|canonical_files"
check "libtorrent creates a v1 torrent with canonical_files_no_tail_padding" \
  lt_make "$T2" "v1_only|canonical_files_no_tail_padding"
check "a v1 torrent with BitComet-style pad names is bencoded by hand" hand_make "$T3"
for t in "$T1" "$T2" "$T3"; do
  counts=$(pad_check "$t")
  read -r pads real <<<"$counts"
  check "$(basename "$t"): v1, pad files align every file, hashes cover the zero pads ($counts)" \
    test "${pads:-0}" -ge 3 -a "${real:-0}" -eq "$real_files"
  echo "# $(basename "$t"): $("$LT_PYTHON" -c 'import sys, libtorrent as lt
fs = lt.torrent_info(sys.argv[1]).files()
print(" ".join("%s%s:%d" % ("[pad]" if fs.file_flags(i) & fs.flag_pad_file else "", fs.file_path(i), fs.file_size(i)) for i in range(fs.num_files())))' "$t")"
done
check "libtorrent sees the pad files in the canonical torrent" "$LT_PYTHON" -c 'import sys, libtorrent as lt
fs = lt.torrent_info(sys.argv[1]).files()
sys.exit(0 if sum(1 for i in range(fs.num_files()) if fs.file_flags(i) & fs.flag_pad_file) >= 3 else 1)' "$T1"
"$SHOAL_BIN" info "$T1" >"$TMP/info1.txt" 2>&1
sed 's/^/# shoal info: /' "$TMP/info1.txt"
check "shoal info lists the $real_files real files and hides the pads" \
  bash -c "! grep -q '\\.pad' '$TMP/info1.txt' && [ \$(grep -cE '^ +[0-9]+ ' '$TMP/info1.txt') -eq $real_files ]"

# libtorrent seeds TORRENT from a copy of the data (no pad file there); shoal gets it.
lt_to_shoal() {  # label, torrent, lt port, shoal port
  local label=$1 t=$2 lp=$3 gp=$4 rc pid_get pid_lt
  copy_album "$TMP/lt-seed-$label"
  start_lt "lt_$label" "$t" "$TMP/lt-seed-$label" "$lp" --seed --no-tracker --timeout $((40 * SLOW))
  check "$label: libtorrent checked its data and seeds" \
    wait_for $((20 * SLOW)) "libtorrent seeding" out_has "lt_$label" "^seeding: $NAME"
  start_shoal "get_$label" get "$t" -o "$TMP/get-$label" --bind 127.0.0.1 --port "$gp" \
    --peer "127.0.0.1:$lp" -vv
  pid_get=PID_get_$label pid_lt=PID_lt_$label
  wait_exit $((30 * SLOW)) "${!pid_get}"
  rc=$WAIT_RC
  check "$label: shoal get downloads the padded torrent from libtorrent (rc $rc)" test "$rc" -eq 0
  check "$label: shoal's files are identical to the source" same_album "$TMP/get-$label"
  check "$label: shoal wrote no pad file" no_pads "$TMP/get-$label"
  check "$label: shoal get dropped no libtorrent connection as broken" test -z "$(shoal_dropped "get_$label")"
  if [ "$rc" -ne 0 ]; then show_logs "get_$label"; show_logs "lt_$label" 10; fi
  stop_pid "${!pid_get}"
  stop_pid "${!pid_lt}"
  check "$label: libtorrent's seed folder has no pad file either" no_pads "$TMP/lt-seed-$label"
}

# 1. canonical_files (a pad after the last file too).
lt_to_shoal tail "$T1" "$l1" "$g1"

# 2. shoal seeds the same torrent from the source folder, libtorrent downloads it.
start_shoal seeder seed "$SRC" "$T1" --bind 127.0.0.1 --port "$s1" -vv
check "shoal seeds the padded torrent" test "$(shoal_port seeder)" = "$s1"
start_lt lt_leech "$T1" "$TMP/lt-dl" "$l2" --peer "127.0.0.1:$s1" --no-tracker --timeout $((30 * SLOW))
wait_exit $((35 * SLOW)) "$PID_lt_leech"
rc=$WAIT_RC
check "libtorrent downloads the padded torrent from shoal, verified (rc $rc)" test "$rc" -eq 0
check "libtorrent's files are identical to the source" same_album "$TMP/lt-dl"
check "libtorrent reported no hash failure" bash -c "! grep -q '^hash-failed' '$TMP/lt_leech.out'"
size=$(cd "$SRC" && find . -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
got=$(lt_bytes lt_leech recv "^peer: 127.0.0.1:$s1 $SHOAL_PID_RE")
check "libtorrent's data came from the shoal seeder ($got >= $size bytes)" test "$got" -ge "$size"
check "shoal did not create pad files in the folder it seeds" no_pads "$SRC"
check "the shoal seeder dropped no libtorrent connection as broken" test -z "$(shoal_dropped seeder)"
grep -E '^(downloaded|peer):' "$TMP/lt_leech.out" | sed 's/^/# /'
[ "$rc" -ne 0 ] && { show_logs lt_leech; show_logs seeder; }
stop_pid "$PID_seeder"
check "shoal seeder stops cleanly on SIGTERM (rc $WAIT_RC)" test "$WAIT_RC" -eq 0

# 3. canonical_files_no_tail_padding, and 4. the hand-made BitComet-style torrent.
lt_to_shoal notail "$T2" "$l3" "$g2"
lt_to_shoal hand "$T3" "$l4" "$g3"
finish
