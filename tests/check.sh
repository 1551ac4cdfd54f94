#!/bin/sh
# check.sh -- the test command: installs what is missing, builds, and runs every
# test (unit suites, process tests, the same under ASan+UBSan, one swarm under
# valgrind).  Closes with "N passed, N failed".
set -e
cd "$(dirname "$0")/.."
tests/deps.sh
make -j2 all build/unit-tests
make -j2 SANITIZE=1 all build-san/unit-tests
exec tests/run-all.sh
