#!/usr/bin/env bats
# catalog-durable.bats — a command that changes the catalog has it on disk
# when it reports success: a failed fsync of catalog.db (written back from
# its WAL when the repository is closed) fails forget, tag and prune, whose
# change stays made.  Faults come from the faultfs.so shim
# (tests/torture/faultfs.c), as in torture-more.bats.

load lib

setup_file() {
        : "${FAULTFS:=$(cd "$(dirname "$BERTH")" && pwd)/tests/faultfs.so}"
        export FAULTFS
}

# faulted CMD...: berth CMD with the first fsync of catalog.db failing with
# EIO.  Commits sync catalog.db-wal (not counted: another path); only a
# checkpoint syncs catalog.db, which SQLite does quietly at close unless
# berth asks.
faulted() {
        run env FAULT_AT=1 FAULT_CALLS=fsync FAULT_ERRNO=EIO FAULT_PATH="$BERTH_REPO/catalog.db" \
                FAULT_LOG="$T/faults" LD_PRELOAD="$FAULTFS" \
                ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
                timeout -k 5 120 "$BERTH" "$@"
        echo "$output"
        [ -s "$T/faults" ] # the fault did fire
}

# two snapshots of one tree; their ids in S[0] (older) and S[1]
two_snapshots() {
        berth init > /dev/null
        mkdir -p "$T/src"
        head -c 200000 /dev/urandom > "$T/src/a"
        S[0]=$(berth backup --path "$T/src" --name s | tail -n 1)
        echo more >> "$T/src/a"
        S[1]=$(berth backup --path "$T/src" --name s | tail -n 1)
}

@test "forget: a failed fsync of catalog.db fails the command; the snapshot is forgotten all the same" {
        [ -f "$FAULTFS" ] || skip "no $FAULTFS (make tests)"
        two_snapshots
        faulted forget "${S[0]}"
        [ "$status" -eq 1 ]
        [[ "$output" == *"error"*"forget removed 1 snapshot(s) from the repository, but the catalog could not record it on disk"*"check the disk"* ]]
        run berth snapshots
        [ "$status" -eq 0 ]
        [[ "$output" != *"${S[0]:0:12}"* ]]
        [[ "$output" == *"${S[1]:0:12}"* ]]
        berth check
}

@test "tag: a failed fsync of catalog.db fails the command; the protection is made all the same" {
        [ -f "$FAULTFS" ] || skip "no $FAULTFS (make tests)"
        two_snapshots
        faulted tag "${S[0]}" --keep
        [ "$status" -eq 1 ]
        [[ "$output" == *"error"*"tag made the snapshots protected in the repository, but the catalog could not record it on disk"*"check the disk"* ]]
        # the protection holds: forget refuses the snapshot
        run berth forget "${S[0]}"
        [ "$status" -ne 0 ]
        berth check
}

@test "prune: a failed fsync of catalog.db fails the command; the repository stays sound" {
        [ -f "$FAULTFS" ] || skip "no $FAULTFS (make tests)"
        two_snapshots
        # a snapshot whose pack nothing else uses: prune deletes it
        mkdir -p "$T/other"
        head -c 200000 /dev/urandom > "$T/other/b"
        other=$(berth backup --path "$T/other" --name other | tail -n 1)
        berth forget "$other" > /dev/null
        faulted prune
        [ "$status" -eq 1 ]
        [[ "$output" == *"error"*"prune changed the repository, but the catalog could not record it on disk"*"check the disk"* ]]
        # the forgotten snapshot's pack is gone, and the catalog says so
        run berth prune --dry-run
        [ "$status" -eq 0 ]
        [[ "$output" == *"would delete 0 pack(s)"* ]]
        berth check
        berth restore "${S[1]}" --target "$T/out"
        python3 "$TREECMP" "$T/src" "$T/out"
}
