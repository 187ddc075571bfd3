#!/usr/bin/env bats
# torture-smoke.bats — a few seeded trials of each part of `make torture`
# (tests/torture/): kill -9, system-call faults through faultfs.so, corruption.
# Seeds are fixed; the limits are generous, for a loaded machine.

load lib

setup_file() {
        # the shim is built beside berth (make tests); FAULTFS= overrides
        : "${FAULTFS:=$(cd "$(dirname "$BERTH")" && pwd)/tests/faultfs.so}"
        export FAULTFS
}

@test "torture smoke: kill -9 of backup, forget, prune, catalog rebuild (seeded)" {
        run env TMPDIR="$T" TRIALS=5 TORTURE_SEED=7 TORTURE_MB=4 timeout -k 5 600 \
                "$BATS_TEST_DIRNAME/../torture/crash.sh"
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"catalog rebuild"* ]]
}

@test "torture smoke: write/fsync/rename failing at the Nth call in backup and restore" {
        [ -f "$FAULTFS" ] || skip "no $FAULTFS (make tests)"
        run env TMPDIR="$T" TORTURE_SEED=7 NLINEAR=3 NMAX=12 timeout -k 5 600 \
                "$BATS_TEST_DIRNAME/../torture/faultfs.sh"
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"restore/rename"* ]]
}

@test "torture smoke: flipped, truncated and deleted packs, snapshot files, catalog.db" {
        run env TMPDIR="$T" CORRUPT_TRIALS=6 TORTURE_SEED=7 timeout -k 5 600 \
                "$BATS_TEST_DIRNAME/../torture/corrupt.sh"
        echo "$output"
        [ "$status" -eq 0 ]
}

@test "restore: ENOSPC while creating an entry fails the restore, and the target does not appear" {
        [ -f "$FAULTFS" ] || skip "no $FAULTFS (make tests)"
        berth init > /dev/null
        mkdir -p "$T/src" "$T/rt"
        head -c 300000 /dev/urandom > "$T/src/a"
        head -c 300000 /dev/urandom > "$T/src/b"
        ln "$T/src/b" "$T/src/hard"
        echo keep > "$T/rt/neighbour"
        id=$(berth backup --path "$T/src" --name s | tail -n 1)
        # the first rename (libarchive's temporary -> the file) fails with ENOSPC
        run env FAULT_AT=1 FAULT_CALLS=rename FAULT_ERRNO=ENOSPC FAULT_PATH="$T/rt" LD_PRELOAD="$FAULTFS" \
                ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" timeout -k 5 120 "$BERTH" restore "$id" --target "$T/rt/out"
        echo "$output"
        [ "$status" -ne 0 ]
        [ "$status" -ne 3 ]
        [[ "$output" == *"error"* ]]
        [ ! -e "$T/rt/out" ]
        [ "$(ls -A "$T/rt")" = neighbour ]
        [ "$(cat "$T/rt/neighbour")" = keep ]
        # without the fault it restores whole
        berth restore "$id" --target "$T/rt/out"
        python3 "$TREECMP" "$T/src" "$T/rt/out"
}
