#!/bin/bash
# run.sh — the end-to-end tests: bats files in this directory, against $BERTH.
# BERTH_TESTS="engine catalog" limits the run to those files.  Ends with one
# line "e2e: N passed, N failed, N skipped".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${BERTH:?set BERTH to the berth binary}"
export BERTH
files=()
if [ -n "${BERTH_TESTS:-}" ]; then
        for t in $BERTH_TESTS; do files+=("$here/$t.bats"); done
else
        files=("$here"/*.bats)
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
bats --timing "${files[@]}" | tee "$log" || rc=$?
skipped=$(grep -c '^ok .* # skip' "$log" || true)
passed=$(( $(grep -c '^ok ' "$log" || true) - skipped ))
failed=$(grep -c '^not ok ' "$log" || true)
echo "e2e: $passed passed, $failed failed, $skipped skipped"
exit "$rc"
