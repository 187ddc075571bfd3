#!/bin/sh
# run.sh — the end-to-end tests: bats files in this directory, against $BERTH.
# BERTH_TESTS="engine catalog" limits the run to those files.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${BERTH:?set BERTH to the berth binary}"
export BERTH
files=""
if [ -n "${BERTH_TESTS:-}" ]; then
        for t in $BERTH_TESTS; do files="$files $here/$t.bats"; done
else
        files=$(ls "$here"/*.bats)
fi
# shellcheck disable=SC2086
exec bats --timing $files
