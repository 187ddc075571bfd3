#!/usr/bin/env bats
# Issue 8, the repository side: references, locks, read-only media, what a
# writer indexes by itself, and catalog rebuild.

load lib

# --- item 8: names are not ids ---------------------------------------------

@test "a series named like an id prefix of another snapshot is ambiguous; NAME@latest picks the series" {
        mkdir "$T/a" "$T/b"
        echo a > "$T/a/f"
        echo b > "$T/b/f"
        berth init > /dev/null
        id=$(berth backup --path "$T/a" --name vol | tail -n 1)
        prefix=${id:0:6}
        bid=$(berth backup --path "$T/b" --name "$prefix" | tail -n 1)
        run berth cat "$prefix" f
        [ "$status" -eq 1 ]
        [[ "$output" == *"'$prefix' is both the name of a snapshot series"* ]]
        [[ "$output" == *"${id:0:12}"* ]]
        [[ "$output" == *"${bid:0:12}"* ]]
        [[ "$output" == *"$prefix@latest"* ]]
        [ "$(berth cat "$prefix@latest" f)" = b ]
        # more of the id is not a name: it resolves to the id
        [ "$(berth cat "${id:0:12}" f)" = a ]
        [ "$(berth cat vol f)" = a ]
}

# --- item 13: init --pack-size ---------------------------------------------

@test "init refuses a pack size that later commands would reject" {
        for s in 1K 512K 3G; do
                run berth init --pack-size "$s"
                [ "$status" -ne 0 ]
                [[ "$output" == *"pack size"*"out of range"* ]]
                [ ! -e "$BERTH_REPO/config" ]
        done
        run berth init --pack-size 1M
        [ "$status" -eq 0 ]
        run berth snapshots
        [ "$status" -eq 0 ]
}

# --- item 5: read-only repositories are readable -----------------------------

# ro_mount DIR MNT: a read-only bind mount of DIR at MNT
ro_mount() {
        mkdir -p "$2"
        mount --bind "$1" "$2"
        mount -o remount,ro,bind "$2"
}

@test "every reader works on a repository behind a read-only bind mount" {
        make_tree "$T/src"
        chattr -i "$T/src/immutable"
        rm "$T/src/immutable"
        berth init > /dev/null
        id=$(berth backup --path "$T/src" --name vol | tail -n 1)
        echo changed > "$T/src/seq.txt"
        berth backup --path "$T/src" --name vol > /dev/null
        # as a backup disk would be: no lock file, no WAL left
        rm -f "$BERTH_REPO/lock"
        ro_mount "$BERTH_REPO" "$T/ro"
        export BERTH_REPO="$T/ro"
        run berth snapshots
        [ "$status" -eq 0 ]
        [[ "$output" == *"${id:0:12}"*vol* ]]
        run berth ls vol sub
        [ "$status" -eq 0 ]
        [[ "$output" == *app* || "$output" == *copy.txt* ]]
        run berth find 'copy.txt'
        [ "$status" -eq 0 ]
        [[ "$output" == *"sub/copy.txt"* ]]
        run berth diff "$id" vol
        [ "$status" -eq 0 ]
        [[ "$output" == *seq.txt* ]]
        [ "$(berth cat vol seq.txt)" = changed ]
        berth export "$id" > "$T/x.tar"
        tar -tf "$T/x.tar" | grep -q 'sub/copy.txt'
        run berth check --read-data
        [ "$status" -eq 0 ]
        berth restore "$id" --target "$T/out"
        cmp "$T/src/rand.bin" "$T/out/rand.bin"
        [ "$(head -n 1 "$T/out/seq.txt")" = 1 ]
        # nothing was written on the way
        [ ! -e "$T/ro/lock" ]
        # a writer is refused with the reason
        mkdir "$T/other"
        run berth backup --path "$T/other" --name other
        [ "$status" -ne 0 ]
        [[ "$output" == *"Read-only file system"* ]]
}

@test "a repository whose directory is immutable is readable, a WAL left behind included" {
        mkdir "$T/src"
        echo one > "$T/src/f"
        berth init > /dev/null
        berth backup --path "$T/src" --name vol > /dev/null
        # a copy taken while a writer was running: its last commit is only in the WAL
        cp -a "$BERTH_REPO" "$T/copy"
        python3 - "$BERTH_REPO/catalog.db" "$T/copy" <<'PY'
import sqlite3, sys, shutil, os
c = sqlite3.connect(sys.argv[1])
c.execute("PRAGMA wal_autocheckpoint=0")
c.execute("PRAGMA journal_mode=WAL")
c.execute("CREATE TABLE IF NOT EXISTS marker (x)")
c.execute("INSERT INTO marker VALUES (1)")
c.commit()
d = os.path.dirname(sys.argv[1])
for s in ["", "-wal", "-shm"]:
    if os.path.exists(sys.argv[1] + s):
        shutil.copy(sys.argv[1] + s, os.path.join(sys.argv[2], "catalog.db" + s))
c.close()
PY
        [ -s "$T/copy/catalog.db-wal" ]
        chattr +i "$T/copy"
        run berth -r "$T/copy" snapshots
        chattr -i "$T/copy"
        [ "$status" -eq 0 ]
        [[ "$output" == *vol*complete* ]]
        chattr +i "$T/copy"
        [ "$(berth -r "$T/copy" cat vol f)" = one ]
        chattr -i "$T/copy"
        # read-only media with the WAL but no -shm: the checkpointed state is read
        rm -f "$T/copy/catalog.db-shm"
        ro_mount "$T/copy" "$T/ro"
        run berth -r "$T/ro" snapshots
        [ "$status" -eq 0 ]
        [[ "$output" == *vol*complete* ]]
}

# --- item 12: readers never stop backups --------------------------------------

# wait_lock PID: until process PID holds a lock on the repository's lock file
wait_lock() {
        local ino
        for i in $(seq 100); do
                ino=$(stat -c %i "$BERTH_REPO/lock" 2>/dev/null || true)
                if [ -n "$ino" ] && grep -q " $1 [0-9a-f]*:[0-9a-f]*:$ino " /proc/locks; then
                        return 0
                fi
                sleep 0.1
        done
        return 1
}

@test "a backup runs while a reader holds the repository; catalog rebuild is refused meanwhile" {
        mkdir "$T/src" "$T/more"
        head -c 20000000 /dev/urandom > "$T/src/big"
        echo more > "$T/more/f"
        berth init > /dev/null
        berth backup --path "$T/src" --name big > /dev/null
        # a reader stuck writing into a pipe nobody reads yet
        mkfifo "$T/fifo"
        timeout -k 5 60 "$BERTH" cat big big > "$T/fifo" &
        BG_PIDS="$!"
        exec 7<> "$T/fifo"      # open both ends: the reader starts and fills the pipe
        for i in $(seq 50); do
                reader=$(cat "/proc/$BG_PIDS/task/$BG_PIDS/children" 2>/dev/null | tr -d ' ')
                [ -n "$reader" ] && break
                sleep 0.1
        done
        wait_lock "$reader"
        run timeout -k 5 60 "$BERTH" backup --path "$T/more" --name more
        echo "$output"
        [ "$status" -eq 0 ]
        tar -C "$T/more" -cf "$T/more.tar" .
        run timeout -k 5 60 "$BERTH" import --name imp "$T/more.tar"
        [ "$status" -eq 0 ]
        run timeout -k 5 60 "$BERTH" catalog rebuild
        [ "$status" -eq 4 ]
        [[ "$output" == *"locked by pid $reader"* ]]
        # the reader still finishes with the right bytes
        timeout -k 5 60 head -c 20000000 <&7 > "$T/got"
        wait "$BG_PIDS"
        exec 7<&-
        cmp "$T/got" "$T/src/big"
        [ "$(berth cat more f)" = more ]
        run berth catalog rebuild
        [ "$status" -eq 0 ]
}

@test "a backup waits for a catalog rebuild, and a second writer for the first" {
        mkdir "$T/src" && echo x > "$T/src/f"
        berth init > /dev/null
        berth snapshots > /dev/null
        # hold the maintenance byte exclusively, as catalog rebuild does
        python3 -c '
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 1, 0)
print(os.getpid(), flush=True)
time.sleep(3)
' "$BERTH_REPO/lock" > "$T/holder" &
        BG_PIDS="$!"
        for i in $(seq 50); do [ -s "$T/holder" ] && break; sleep 0.1; done
        holder=$(cat "$T/holder")
        run berth backup --path "$T/src" --name l
        [ "$status" -eq 4 ]
        [[ "$output" == *"locked by pid $holder"*"rebuilt"* ]]
        run berth snapshots
        [ "$status" -eq 4 ]
        run berth --lock-wait 20 backup --path "$T/src" --name l
        [ "$status" -eq 0 ]
        # the writer byte: a second writer waits, a reader does not
        python3 -c '
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_SH, 1, 0)
fcntl.lockf(fd, fcntl.LOCK_EX, 1, 1)
print(os.getpid(), flush=True)
time.sleep(3)
' "$BERTH_REPO/lock" > "$T/holder2" &
        BG_PIDS="$BG_PIDS $!"
        for i in $(seq 50); do [ -s "$T/holder2" ] && break; sleep 0.1; done
        holder=$(cat "$T/holder2")
        run berth backup --path "$T/src" --name l
        [ "$status" -eq 4 ]
        [[ "$output" == *"locked by pid $holder"*"writing"* ]]
        run berth snapshots
        [ "$status" -eq 0 ]
        run berth --lock-wait 20 backup --path "$T/src" --name l
        [ "$status" -eq 0 ]
}

# --- item 2 (second half) and item 13: what a writer indexes by itself ---------

@test "a snapshot file planted in snapshots/ is not indexed by the next writer, only by catalog rebuild" {
        # a snapshot made elsewhere, with its packs
        mkdir "$T/evil" "$T/src"
        echo planted > "$T/evil/f"
        echo mine > "$T/src/f"
        berth -r "$T/other" init > /dev/null
        pid=$(berth -r "$T/other" backup --path "$T/evil" --name planted | tail -n 1)
        berth init > /dev/null
        berth backup --path "$T/src" --name mine > /dev/null
        cp -r "$T/other/packs/." "$BERTH_REPO/packs/"
        cp "$T/other/snapshots/$pid" "$BERTH_REPO/snapshots/"
        run berth backup --path "$T/src" --name mine
        [ "$status" -eq 0 ]
        [[ "$output" != *"1 snapshot"* ]]
        run berth snapshots
        [[ "$output" != *planted* ]]
        run berth cat "$pid" f
        [ "$status" -eq 1 ]
        run berth check
        [[ "$output" == *"not indexed"* ]]
        # it stays a file on disk, and an explicit rebuild takes it
        [ -e "$BERTH_REPO/snapshots/$pid" ]
        run berth catalog rebuild
        [ "$status" -eq 0 ]
        [ "$(berth cat planted f)" = planted ]
}

@test "a snapshot whose commit the catalog refuses leaves no file behind; a crashed writer's file is still indexed" {
        mkdir "$T/src"
        echo one > "$T/src/f"
        berth init > /dev/null
        berth backup --path "$T/src" --name vol > /dev/null
        # the catalog refuses the next snapshot row
        sqlite3 "$BERTH_REPO/catalog.db" \
                "CREATE TRIGGER refuse BEFORE INSERT ON snapshots BEGIN SELECT RAISE(ABORT, 'refused'); END;"
        echo two > "$T/src/f"
        run berth backup --path "$T/src" --name vol
        [ "$status" -ne 0 ]
        tar -C "$T/src" -cf "$T/src.tar" .
        run berth import --name imp "$T/src.tar"
        [ "$status" -ne 0 ]
        [ "$(ls "$BERTH_REPO/snapshots" | wc -l)" -eq 1 ]
        sqlite3 "$BERTH_REPO/catalog.db" "DROP TRIGGER refuse"
        run berth check
        [ "$status" -eq 0 ]
        [[ "$output" != *"not indexed"* ]]
        [ "$(berth --json snapshots | json_get '.__len__()')" -eq 1 ]
        # a writer killed between the snapshot file and its catalog row: the
        # file was announced, so the next writer indexes it
        id=$(berth backup --path "$T/src" --name vol | tail -n 1)
        [ "$(sqlite3 "$BERTH_REPO/catalog.db" "SELECT count(*) FROM snapshot_intents")" -eq 0 ]
        sqlite3 "$BERTH_REPO/catalog.db" "PRAGMA foreign_keys=OFF;
                DELETE FROM files WHERE since = (SELECT max(seq) FROM snapshots);
                UPDATE files SET until = NULL WHERE until = (SELECT max(seq) FROM snapshots);
                DELETE FROM snapshots WHERE hash = '$id';
                INSERT INTO snapshot_intents VALUES ('$id', 1);"
        run berth check
        [[ "$output" == *"not indexed"* ]]
        mkdir "$T/o" && echo o > "$T/o/f"
        run berth backup --path "$T/o" --name o
        [ "$status" -eq 0 ]
        [[ "$output" == *"indexed 0 pack(s) and 1 snapshot(s)"* ]]
        [ "$(berth cat vol f)" = two ]
        [ "$(sqlite3 "$BERTH_REPO/catalog.db" "SELECT count(*) FROM snapshot_intents")" -eq 0 ]
}

# --- items 13 and 11: catalog rebuild ---------------------------------------------

@test "catalog rebuild killed part-way leaves the old catalog to readers" {
        python3 -c '
import os, sys
for d in range(100):
    os.makedirs(f"{sys.argv[1]}/d{d}")
    for f in range(200):
        open(f"{sys.argv[1]}/d{d}/f{f}", "w").write(f"{d}-{f}")
' "$T/src"
        berth init > /dev/null
        for i in 1 2 3; do
                echo "$i" > "$T/src/d1/f1"
                berth backup --path "$T/src" --name "v$i" > /dev/null
        done
        berth --json snapshots > "$T/before"
        for delay in 0.3 0.6 0.9; do
                run timeout -s KILL "$delay" "$BERTH" catalog rebuild
                run berth --json snapshots
                [ "$status" -eq 0 ]
                [ "$output" = "$(cat "$T/before")" ]
                [ "$(berth cat v3 d1/f1)" = 3 ]
        done
        run berth catalog rebuild
        [ "$status" -eq 0 ]
        [ "$(berth --json snapshots)" = "$(cat "$T/before")" ]
        [ -z "$(ls -A "$BERTH_REPO/tmp")" ]
        [ ! -e "$BERTH_REPO/catalog.db-wal" ] || [ ! -s "$BERTH_REPO/catalog.db-wal" ]
}

@test "catalog rebuild keeps the quiesce journal, whatever columns it has" {
        mkdir "$T/src" && echo x > "$T/src/f"
        berth init > /dev/null
        berth backup --path "$T/src" --name vol > /dev/null
        sqlite3 "$BERTH_REPO/catalog.db" "
                INSERT INTO quiesce_journal (container, container_name, project, service, action, host,
                        owner_pid, owner_start, started)
                VALUES ('c0ffee', 'db', 'proj', 'svc', 'pause', 'otherhost', 4242, 99, 1234);
                INSERT INTO quiesce_journal (container, container_name, action, host, owner_pid, owner_start,
                        started, ended)
                VALUES ('beef', 'web', 'stop', 'otherhost', 1, 2, 3, 4);
                ALTER TABLE quiesce_journal ADD COLUMN only_in_old TEXT;"
        before=$(sqlite3 "$BERTH_REPO/catalog.db" "SELECT id, container, container_name, project, service, action,
                host, owner_pid, owner_start, started, ended FROM quiesce_journal ORDER BY id")
        run berth catalog rebuild
        [ "$status" -eq 0 ]
        after=$(sqlite3 "$BERTH_REPO/catalog.db" "SELECT id, container, container_name, project, service, action,
                host, owner_pid, owner_start, started, ended FROM quiesce_journal ORDER BY id")
        [ "$after" = "$before" ]
        [ "$(echo "$after" | wc -l)" -eq 2 ]
        # a lost catalog has no journal to keep, and the rebuild still works
        rm -f "$BERTH_REPO"/catalog.db*
        run berth catalog rebuild
        [ "$status" -eq 0 ]
        [ "$(berth cat vol f)" = x ]
}

# --- item 13: catalog errors say what to do -------------------------------------

@test "a damaged catalog is reported as damaged with the way out, not as SQL" {
        mkdir "$T/src" && echo x > "$T/src/f"
        berth init > /dev/null
        berth backup --path "$T/src" --name vol > /dev/null
        echo garbage > "$BERTH_REPO/catalog.db"
        rm -f "$BERTH_REPO"/catalog.db-*
        for cmd in "snapshots" "backup --path $T/src --name vol"; do
                run berth $cmd
                [ "$status" -ne 0 ]
                [[ "$output" == *"catalog $BERTH_REPO/catalog.db is damaged"* ]]
                [[ "$output" == *"berth catalog rebuild"* ]]
                [[ "$output" != *PRAGMA* ]]
                [[ "$output" != *"not a database"* ]]
        done
        # the SQLite words are still there for whoever debugs it
        run env BERTH_LOG_LEVEL=debug "$BERTH" snapshots
        [[ "$output" == *"file is not a database"* ]]
        run berth catalog rebuild
        [ "$status" -eq 0 ]
        [ "$(berth cat vol f)" = x ]
}
