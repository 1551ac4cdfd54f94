#!/bin/bash
# test_fuzz.sh -- builds the libFuzzer targets (if needed) and runs tests/fuzz/run.sh with
# FUZZ_SECONDS (default 10) per target: the regression inputs replay clean and short fuzzing
# finds no crash.  Skips (0 passed, 0 failed, 1 skipped) only when clang is not installed.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
if ! command -v clang >/dev/null 2>&1; then
  echo "skip - clang is not installed (tests/deps.sh installs it)"
  echo "0 passed, 0 failed, 1 skipped"
  exit 0
fi
mkdir -p build-fuzz
if ! make -s fuzz-build >build-fuzz/make.log 2>&1; then
  echo "not ok - make fuzz-build failed:"
  tail -n 30 build-fuzz/make.log
  echo "0 passed, 1 failed"
  exit 1
fi
FUZZ_SECONDS=${FUZZ_SECONDS:-10} exec bash tests/fuzz/run.sh
