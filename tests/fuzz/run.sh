#!/bin/bash
# run.sh -- replays every saved regression input, then fuzzes every libFuzzer target for
# FUZZ_SECONDS (default 60; 0 runs only the seeds and regressions once).  Per target it
# prints the executions and whether it crashed; a crashing input is left under
# build-fuzz/crashes/<target>/.  Closes with "N passed, N failed" (N counts targets) and
# exits 1 when any target failed.  Build the targets first: make fuzz-build.
set -u
cd "$(dirname "$0")/../.."
FUZZ_DIR=${FUZZ_DIR:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Largest input libFuzzer makes for each target.
max_len() {
  case "$1" in
    fuzz_wire) echo 40000 ;;
    fuzz_tracker_http) echo 12000 ;;
    fuzz_compact_url) echo 4096 ;;
    *) echo 16384 ;;
  esac
}

pass=0
fail=0
mkdir -p "$FUZZ_DIR/logs"
for src in tests/fuzz/fuzz_*.c; do
  t=$(basename "$src" .c)
  bin="$FUZZ_DIR/$t"
  log="$FUZZ_DIR/logs/$t.log"
  crashes="$FUZZ_DIR/crashes/$t"
  if [ ! -x "$bin" ]; then
    echo "$t: not built ($bin missing): FAILED"
    fail=$((fail + 1))
    continue
  fi
  mkdir -p "$crashes" "$FUZZ_DIR/corpus/$t"
  ok=1

  # 1. Every saved regression input must run clean.
  nreg=0
  for f in tests/fuzz/regress/"$t"/*; do
    [ -f "$f" ] || continue
    nreg=$((nreg + 1))
    if ! "$bin" -timeout=25 -rss_limit_mb=2048 "$f" >"$log.regress" 2>&1; then
      echo "$t: regression input $f crashes:"
      grep -E 'ERROR|runtime error|invariant failed|SUMMARY' "$log.regress" | head -n 5 | sed 's/^/    /'
      ok=0
    fi
  done

  # 2. Fuzz from the seeds plus what earlier runs found.
  dict=()
  [ -f "tests/fuzz/dict/$t.dict" ] && dict=(-dict="tests/fuzz/dict/$t.dict")
  if [ "$FUZZ_SECONDS" -gt 0 ] 2>/dev/null; then
    limit=(-max_total_time="$FUZZ_SECONDS")
  else
    limit=(-runs=0)
  fi
  marker=$(mktemp)
  "$bin" "${limit[@]}" -timeout=25 -rss_limit_mb=2048 -max_len="$(max_len "$t")" "${dict[@]}" \
    -print_final_stats=1 -artifact_prefix="$crashes/" \
    "$FUZZ_DIR/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  new=$(find "$crashes" -type f -newer "$marker" 2>/dev/null | head -n 1)
  rm -f "$marker"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
  [ -n "$execs" ] || execs=0
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  if [ $rc -ne 0 ] || [ -n "$new" ]; then
    ok=0
    echo "$t: $execs executions: CRASHED (exit $rc)${new:+, input left in $new}; log: $log"
    # the report and the stack frames in shoal's own code
    grep -E 'ERROR|runtime error|invariant failed|SUMMARY|^ +#[0-9]+ .* in [^ ]+ /.*/(common|peer|tracker|tests)/' "$log" |
      grep -v 'fuzzer::' | head -n 12 | sed 's/^/    /'
  else
    echo "$t: $execs executions in ${FUZZ_SECONDS} s (${rate:-?}/s), $nreg regression inputs: no crash"
  fi
  if [ $ok -eq 1 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
