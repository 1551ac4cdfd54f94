#!/usr/bin/env bash
# test_create_interop.sh -- `shoal create` must give the same infohash as mktorrent for the same data and piece size.
#
# Uses build/shoal (create, info) and mktorrent (Debian package).  The
# infohash of each .torrent is also computed independently here (SHA-1 of
# the info dict's bytes as found in the file), so three views must agree:
# mktorrent's file, shoal's file, and what `shoal info` prints.
# Prints "N passed, N failed"; exit status 0 only when nothing failed.
set -u

BUILD=${BUILD:-build}
SHOAL=${SHOAL:-$BUILD/shoal}
if [ ! -x "$SHOAL" ]; then
  echo "test_create_interop: $SHOAL not built, skipping"
  echo "0 passed, 0 failed, 1 skipped"
  exit 0
fi
SHOAL=$(cd "$(dirname "$SHOAL")" && pwd)/$(basename "$SHOAL")

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1${2:+: $2}"; }

if ! command -v mktorrent >/dev/null 2>&1; then
  fail "mktorrent" "not installed (apt-get install mktorrent)"
  echo "$passed passed, $failed failed"
  exit 1
fi
if ! command -v python3 >/dev/null 2>&1; then
  fail "python3" "not installed"
  echo "$passed passed, $failed failed"
  exit 1
fi

TMP=$(mktemp -d /tmp/shoal-create-interop.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# SHA-1 of the info dict's raw bytes in a .torrent (trusted input: our own test files).
infohash_of() {
  python3 - "$1" <<'EOF'
import hashlib, sys

def skip(b, i):
    c = b[i:i + 1]
    if c == b'i':
        return b.index(b'e', i) + 1
    if c in (b'l', b'd'):
        i += 1
        while b[i:i + 1] != b'e':
            i = skip(b, i)
        return i + 1
    colon = b.index(b':', i)
    return colon + 1 + int(b[i:colon])

data = open(sys.argv[1], 'rb').read()
assert data[:1] == b'd', 'not a dictionary'
i = 1
while data[i:i + 1] != b'e':
    key_end = skip(data, i)
    key = data[data.index(b':', i) + 1:key_end]
    value_end = skip(data, key_end)
    if key == b'info':
        print(hashlib.sha1(data[key_end:value_end]).hexdigest())
        sys.exit(0)
    i = value_end
sys.exit('no info dictionary')
EOF
}

# What `shoal info FILE` reports as the infohash.
shoal_infohash() {
  timeout 60 "$SHOAL" info "$1" 2>/dev/null | sed -n 's/^infohash:[[:space:]]*\([0-9a-f]\{40\}\)[[:space:]]*$/\1/p' | head -n 1
}

# compare NAME TARGET LOG2_PIECE [extra mktorrent flag] [extra shoal flag]
compare() {
  local name=$1 target=$2 log2=$3 mkflag=${4:-} shflag=${5:-}
  local out="$TMP/out-$name"
  mkdir -p "$out"
  if ! timeout 120 mktorrent -l "$log2" -d ${mkflag:+"$mkflag"} -o "$out/mk.torrent" "$target" \
       >"$out/mk.log" 2>&1; then
    fail "$name" "mktorrent failed: $(tail -n 1 "$out/mk.log")"
    return
  fi
  if ! timeout 120 "$SHOAL" create "$target" -o "$out/shoal.torrent" --piece-size $((1 << log2)) \
       ${shflag:+"$shflag"} >"$out/shoal.log" 2>&1; then
    fail "$name" "shoal create failed: $(tail -n 1 "$out/shoal.log")"
    return
  fi
  local want got printed read_back
  want=$(infohash_of "$out/mk.torrent")
  got=$(infohash_of "$out/shoal.torrent")
  printed=$(shoal_infohash "$out/shoal.torrent")
  read_back=$(shoal_infohash "$out/mk.torrent")
  if [ -z "$want" ]; then
    fail "$name" "no infohash in mktorrent's file"
  elif [ "$got" != "$want" ]; then
    fail "$name" "shoal $got, mktorrent $want"
  elif [ "$printed" != "$want" ]; then
    fail "$name" "'shoal info' printed '$printed', expected $want"
  elif [ "$read_back" != "$want" ]; then
    fail "$name" "'shoal info' on mktorrent's file printed '$read_back', expected $want"
  else
    pass "$name ($want)"
  fi
}

# A folder: nested folders, odd sizes, an empty file, a hidden file, names
# whose bytewise order differs from a per-folder order ("a-b" < "a.txt" < "a/x").
D="$TMP/data/folder"
mkdir -p "$D/a" "$D/sub/deeper" "$D/empty-dir"
head -c 1000 /dev/urandom >"$D/a.txt"
head -c 7 /dev/urandom >"$D/a-b"
head -c 5 /dev/urandom >"$D/a/x"
: >"$D/empty"
echo hidden >"$D/.hidden"
head -c 300001 /dev/urandom >"$D/sub/big.bin"
head -c 262144 /dev/urandom >"$D/sub/deeper/exact"
head -c 777777 /dev/urandom >"$D/sub/deeper/tail"
printf 'caf\xc3\xa9' >"$D/sub/caf$(printf '\xc3\xa9').txt"

compare folder-256k "$D" 18
compare folder-32k "$D" 15
compare folder-private "$D" 17 -p --private

# Single files: several pieces with a short last one, and smaller than one piece.
F="$TMP/data/single.bin"
head -c 1000003 /dev/urandom >"$F"
compare single-64k "$F" 16
S="$TMP/data/small.txt"
head -c 1234 /dev/urandom >"$S"
compare single-small "$S" 18

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
