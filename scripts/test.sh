#!/bin/bash
# Installs what is missing, builds with -Werror and runs every test suite:
# unit (cmocka), guest (native micro-guest on this host's /dev/kvm) and e2e
# (real Linux on real KVM inside the nested test host). Ends with the line
# "N passed, N failed, N skipped" counted over individual test cases.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
scripts/setup.sh
scripts/build.sh "$BUILD"
status=0
meson test -C "$BUILD" --print-errorlogs --num-processes 1 "$@" || status=$?
python3 scripts/test-summary.py "$BUILD/meson-logs/testlog.json" || status=1
exit $status
