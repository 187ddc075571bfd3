#!/usr/bin/env bats
# torture-more.bats — failures the torture suite found: a failed fsync must
# fail the command (restore, backup), and check must notice a damaged
# catalog.db.  Faults come from the faultfs.so shim (tests/torture/faultfs.c).

load lib

setup_file() {
        : "${FAULTFS:=$(cd "$(dirname "$BERTH")" && pwd)/tests/faultfs.so}"
        export FAULTFS
}

# faulted CALLS N PATH CMD...: berth CMD with the Nth CALLS under PATH failing with EIO
faulted() {
        local calls=$1 n=$2 path=$3; shift 3
        run env FAULT_AT="$n" FAULT_CALLS="$calls" FAULT_ERRNO=EIO FAULT_PATH="$path" FAULT_LOG="$T/faults" \
                LD_PRELOAD="$FAULTFS" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
                timeout -k 5 120 "$BERTH" "$@"
        echo "$output"
        [ -s "$T/faults" ] # the fault did fire
}

@test "restore: a failed fsync of the target's directory fails the restore, and the target does not appear" {
        [ -f "$FAULTFS" ] || skip "no $FAULTFS (make tests)"
        berth init > /dev/null
        mkdir -p "$T/src" "$T/rt"
        head -c 300000 /dev/urandom > "$T/src/a"
        echo keep > "$T/rt/neighbour"
        id=$(berth backup --path "$T/src" --name s | tail -n 1)
        # syncfs of the tree is not counted: the first fsync under rt/ is
        # that of rt/ itself, after the tree was renamed into place
        faulted fsync 1 "$T/rt" restore "$id" --target "$T/rt/out"
        [ "$status" -ne 0 ]
        [ "$status" -lt 124 ]
        [[ "$output" == *"error"*"cannot flush"*"undone"* ]]
        [ ! -e "$T/rt/out" ]
        [ "$(ls -A "$T/rt")" = neighbour ]
        [ "$(cat "$T/rt/neighbour")" = keep ]
        # into an existing empty directory: moved back out, still empty
        mkdir "$T/rt/empty"
        rm -f "$T/faults"
        faulted fsync 1 "$T/rt/empty" restore "$id" --target "$T/rt/empty"
        [ "$status" -ne 0 ]
        [[ "$output" == *"cannot flush"* ]]
        [ -z "$(ls -A "$T/rt/empty")" ]
        # without the fault it restores whole
        berth restore "$id" --target "$T/rt/out"
        python3 "$TREECMP" "$T/src" "$T/rt/out"
}

@test "backup: a failed fsync of catalog.db (written back from its WAL) fails the backup; the snapshot is kept" {
        [ -f "$FAULTFS" ] || skip "no $FAULTFS (make tests)"
        berth init > /dev/null
        mkdir -p "$T/src"
        head -c 300000 /dev/urandom > "$T/src/a"
        berth backup --path "$T/src" --name s > /dev/null
        echo more >> "$T/src/a"
        # commits sync catalog.db-wal; only a checkpoint syncs catalog.db,
        # which SQLite does quietly (at close) unless berth asks
        faulted fsync 1 "$BERTH_REPO/catalog.db" backup --path "$T/src" --name s
        [ "$status" -ne 0 ]
        [ "$status" -lt 124 ]
        [[ "$output" == *"error"*"is saved"*"check the disk"* ]]
        id=$(printf '%s\n' "$output" | grep -o 'snapshot [0-9a-f]\{64\} is saved' | cut -d' ' -f2)
        [ -n "$id" ]
        berth check
        berth restore "$id" --target "$T/out"
        python3 "$TREECMP" "$T/src" "$T/out"
}

# flip_in_page TABLE-OR-INDEX end|head: flips a bit of the last byte of its
# root page (the end of its cell content) or of its first (the page type)
flip_in_page() {
        python3 - "$BERTH_REPO/catalog.db" "$1" "$2" <<'EOF'
import sqlite3, sys
db, name, where = sys.argv[1], sys.argv[2], sys.argv[3]
c = sqlite3.connect(db)
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
psize = c.execute("PRAGMA page_size").fetchone()[0]
root = c.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]
c.close()
with open(db, "r+b") as f:
    off = root * psize - 1 if where == "end" else (root - 1) * psize
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0x01]))
EOF
}

@test "check: a flipped byte in a used page of catalog.db (an index, a table) is reported with the fix" {
        berth init > /dev/null
        mkdir -p "$T/src/sub"
        head -c 300000 /dev/urandom > "$T/src/a"
        for i in 1 2 3 4 5; do echo "$i" > "$T/src/sub/f$i"; done
        berth backup --path "$T/src" --name s > /dev/null
        cp "$BERTH_REPO/catalog.db" "$T/catalog.good"
        berth check
        # an index entry: the table it indexes still reads, nothing but a
        # full integrity check looks at it
        flip_in_page files_by_path end
        run berth check
        echo "$output"
        [ "$status" -ne 0 ]
        [[ "$output" == *"catalog"*"files_by_path"* ]]
        [[ "$output" == *"catalog"*"damaged"*"berth catalog rebuild"* ]]
        berth catalog rebuild
        berth check
        # a table's page header
        rm -f "$BERTH_REPO"/catalog.db*
        cp "$T/catalog.good" "$BERTH_REPO/catalog.db"
        flip_in_page files head
        run berth check
        echo "$output"
        [ "$status" -ne 0 ]
        [[ "$output" == *"berth catalog rebuild"* ]]
}

@test "check: a pack's catalog rows that disagree with its trailer in number are reported" {
        berth init > /dev/null
        mkdir -p "$T/src"
        head -c 300000 /dev/urandom > "$T/src/a"
        berth backup --path "$T/src" --name s > /dev/null
        python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("UPDATE packs SET chunks = chunks + 1"); c.commit()' \
                "$BERTH_REPO/catalog.db"
        run berth check
        echo "$output"
        [ "$status" -ne 0 ]
        [[ "$output" == *"the catalog says"*"berth catalog rebuild"* ]]
}
