#!/bin/bash
# run-all.sh -- runs the unit suites and the process tests (tests/run/test_*.sh),
# normally, under ASan+UBSan (if build-san/ exists) and under valgrind for the
# tests that say they support it; sums their "N passed, N failed" lines.
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
total_pass=0 total_fail=0
failed_names=()

count() {  # name, output file, exit status
  local line p f
  line=$(grep -E '([0-9]+) passed, ([0-9]+) failed' "$2" | tail -n 1)
  p=$(echo "$line" | sed -E 's/^(.*[^0-9])?([0-9]+) passed.*/\2/')
  f=$(echo "$line" | sed -E 's/^(.*[^0-9])?([0-9]+) failed.*/\2/')
  [ -n "$line" ] || { p=0; f=1; }
  [ "$3" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
  [ "$f" -ne 0 ] && failed_names+=("$1")
  printf '%-44s %s\n' "$1" "${line:-no result line (exit $3)}"
}

run() {  # name, command...
  local name=$1; shift
  local out; out=$(mktemp)
  timeout 900 "$@" >"$out" 2>&1
  local rc=$?
  count "$name" "$out" $rc
  if [ $rc -ne 0 ]; then
    echo "---- output of $name (last 60 lines) ----"; tail -n 60 "$out"; echo "----"
  fi
  rm -f "$out"
}

run "unit" "$BUILD/unit-tests"
for t in tests/run/test_*.sh; do
  run "$(basename "$t" .sh)" env BUILD="$BUILD" bash "$t"
done
if [ -x build-san/unit-tests ] && [ "${SKIP_SANITIZE:-0}" != 1 ]; then
  run "unit (asan+ubsan)" build-san/unit-tests
  for t in tests/run/test_*.sh; do
    grep -q 'SANITIZE_OK' "$t" || continue
    run "$(basename "$t" .sh) (asan+ubsan)" env BUILD=build-san bash "$t"
  done
fi
if command -v valgrind >/dev/null && [ "${SKIP_VALGRIND:-0}" != 1 ]; then
  for t in tests/run/test_*.sh; do
    grep -q 'VALGRIND_OK' "$t" || continue
    run "$(basename "$t" .sh) (valgrind)" env BUILD="$BUILD" \
      SHOAL_WRAP="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --track-fds=no" bash "$t"
  done
fi
[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "all: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
