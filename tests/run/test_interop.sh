#!/bin/bash
# test_interop.sh -- runs every tests/interop/test_*.sh (shoal against aria2,
# libtorrent and Transmission from Debian packages, on loopback) and sums their
# "N passed, N failed" lines; prints each client's version first.  A script that
# prints no such line, or exits non-zero with none failed, counts one failure.
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
# The tests run on a copy of the binaries taken now, so that a rebuild of the tree
# during the run (a few minutes) cannot swap them under a running test.
BIN_COPY=$(mktemp -d /tmp/shoal-interop-bin.XXXXXX)
trap 'rm -rf "$BIN_COPY"' EXIT
for b in shoal shoal-tracker; do
  if [ -x "$BUILD/$b" ]; then
    cp "$BUILD/$b" "$BIN_COPY/$b"
  else
    echo "# $BUILD/$b is not built"
  fi
done
BUILD=$BIN_COPY
export BUILD
LT_PYTHON=${LT_PYTHON:-/usr/bin/python3}

version() {  # label, command...
  local label=$1 v
  shift
  v=$("$@" 2>&1 | head -n 1)
  [ -n "$v" ] || v="not installed"
  printf '# %-13s %s\n' "$label:" "$v"
}
v_aria2() { command -v aria2c >/dev/null && aria2c --version; }
v_transmission() { command -v transmission-cli >/dev/null && transmission-cli --version; }
v_libtorrent() { "$LT_PYTHON" -c 'import libtorrent as lt; print("python3-libtorrent", lt.__version__)'; }
v_shoal() { "$BUILD/shoal" --version; }
version aria2 v_aria2
version transmission v_transmission
version libtorrent v_libtorrent
version shoal v_shoal

total_pass=0 total_fail=0
failed=()
for t in tests/interop/test_*.sh; do
  name=$(basename "$t" .sh)
  out=$(mktemp /tmp/shoal-interop.XXXXXX)
  start=$SECONDS
  timeout -k 10 300 bash "$t" >"$out" 2>&1
  rc=$?
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
  if [ -n "$line" ]; then
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
  else
    p=0 f=1
  fi
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  total_pass=$((total_pass + p))
  total_fail=$((total_fail + f))
  printf '%-26s %s (%d s)\n' "$name" "${line:-no result line (exit $rc)}" $((SECONDS - start))
  if [ "$f" -ne 0 ]; then
    failed+=("$name")
    echo "---- $name ----"
    cat "$out"
    echo "----"
  fi
  rm -f "$out"
done
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
