#!/usr/bin/env bats
# The snapshot engine through the command line: fidelity, dedup, references,
# live files, crashes, locking and bad input.

load lib

@test "init creates a repository and refuses to overwrite one" {
        run berth init
        [ "$status" -eq 0 ]
        [ -f "$BERTH_REPO/config" ] && [ -f "$BERTH_REPO/catalog.db" ] && [ -d "$BERTH_REPO/packs" ]
        run berth init
        [ "$status" -eq 1 ]
        [[ "$output" == *"already holds a repository"* ]]
}

@test "a command on a missing repository says how to create one" {
        run berth -r "$T/nowhere" snapshots
        [ "$status" -eq 1 ]
        [[ "$output" == *"berth init"* ]]
}

@test "restore reproduces every kind of entry exactly" {
        make_tree "$T/src"
        berth init
        run berth backup --path "$T/src" --name fid
        [ "$status" -eq 0 ]
        id=$(last_line)
        [[ "$id" =~ ^[0-9a-f]{64}$ ]]
        run berth restore "$id" --target "$T/out"
        [ "$status" -eq 0 ]
        run python3 "$TREECMP" "$T/src" "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
        # restored as links, not copies
        [ "$(stat -c %i "$T/out/seq.txt")" = "$(stat -c %i "$T/out/hard.txt")" ]
        [ "$(stat -c %i "$T/out/seq.txt")" = "$(stat -c %i "$T/out/sub/hard2.txt")" ]
        [ "$(getfacl -cp "$T/out/sub/copy.txt" | grep -c 'user:4242:r--')" -eq 1 ]
        [ "$(getfacl -cp "$T/out/sub" | grep -c 'default:group:99:r-x')" -eq 1 ]
}

@test "a 4 GiB sparse file with 1 MiB of data stays small and is restored sparse" {
        mkdir "$T/src"
        truncate -s 4G "$T/src/big"
        head -c 1048576 /dev/urandom | dd of="$T/src/big" bs=1M seek=2000 conv=notrunc 2>/dev/null
        berth init
        run berth backup --path "$T/src" --name sparse
        [ "$status" -eq 0 ]
        [ "$(repo_bytes)" -lt 2000000 ]
        run berth restore sparse@latest --target "$T/out"
        [ "$status" -eq 0 ]
        [ "$(stat -c %s "$T/out/big")" -eq 4294967296 ]
        [ "$(du -k "$T/out/big" | cut -f1)" -lt 4096 ]
        cmp "$T/src/big" "$T/out/big"
}

@test "identical content is stored once, and an unchanged tree is not read again" {
        mkdir -p "$T/src/a" "$T/src/b"
        head -c 8000000 /dev/urandom > "$T/src/a/data"
        cp "$T/src/a/data" "$T/src/b/data"
        # Files modified within a second of a backup are read again by the
        # next one (their timestamps cannot prove they did not change).
        touch -d '1 minute ago' "$T/src/a/data" "$T/src/b/data"
        berth init
        run berth --json backup --path "$T/src" --name one
        [ "$status" -eq 0 ]
        added=$(echo "$output" | json_get '["bytes_added"]')
        # two 8 MB copies of incompressible data: stored once
        [ "$added" -lt 9000000 ]
        [ "$added" -gt 7900000 ]

        run berth --json backup --path "$T/src" --name one
        [ "$status" -eq 0 ]
        [ "$(echo "$output" | json_get '["files_read"]')" -eq 0 ]
        [ "$(echo "$output" | json_get '["files_reused"]')" -eq 2 ]
        [ "$(echo "$output" | json_get '["bytes_read"]')" -eq 0 ]
        [ "$(echo "$output" | json_get '["bytes_added"]')" -lt 20000 ]

        # the same bytes under another name: read, but nothing new stored
        run berth --json backup --path "$T/src" --name two
        [ "$status" -eq 0 ]
        [ "$(echo "$output" | json_get '["files_read"]')" -eq 2 ]
        [ "$(echo "$output" | json_get '["bytes_added"]')" -lt 20000 ]

        # a change in the middle of one file stores about the changed chunks
        printf 'CHANGED' | dd of="$T/src/a/data" bs=1 seek=4000000 conv=notrunc 2>/dev/null
        touch -d '30 seconds ago' "$T/src/a/data"
        run berth --json backup --path "$T/src" --name one
        [ "$status" -eq 0 ]
        [ "$(echo "$output" | json_get '["files_read"]')" -eq 1 ]
        [ "$(echo "$output" | json_get '["bytes_added"]')" -lt 400000 ]
}

@test "snapshots lists; references by id prefix, NAME, NAME@latest and NAME@time" {
        mkdir "$T/src"
        echo one > "$T/src/f"
        berth init
        run berth backup --path "$T/src" --name pg
        id1=$(last_line)
        sleep 1.1
        t_between=$(date -u +%Y-%m-%dT%H:%M:%SZ)
        sleep 1.1
        echo two > "$T/src/f"
        run berth backup --path "$T/src" --name pg
        id2=$(last_line)

        run berth snapshots
        [ "$status" -eq 0 ]
        [[ "$output" == *"${id1:0:12}"*"${id2:0:12}"* ]]
        run berth --json snapshots pg
        [ "$(echo "$output" | json_get '[1]["id"]')" = "$id2" ]

        berth restore "${id1:0:8}" --target "$T/r1"
        [ "$(cat "$T/r1/f")" = one ]
        berth restore pg@latest --target "$T/r2"
        [ "$(cat "$T/r2/f")" = two ]
        berth restore "pg@$t_between" --target "$T/r3"
        [ "$(cat "$T/r3/f")" = one ]
        berth restore pg --target "$T/r4"
        [ "$(cat "$T/r4/f")" = two ]

        run berth restore nosuch@latest --target "$T/r5"
        [ "$status" -eq 1 ]
        [[ "$output" == *"no snapshot matches 'nosuch@latest'"*"pg"* ]]
        run berth restore "pg@1990-01-01" --target "$T/r5"
        [ "$status" -eq 1 ]
        [[ "$output" == *"no snapshot at or before"* ]]
        [ ! -e "$T/r5" ]
}

@test "an ambiguous id prefix lists the candidates" {
        mkdir "$T/src"
        berth init
        # find two snapshots whose ids share a first hex digit
        declare -A seen
        prefix=""
        for i in $(seq 1 40); do
                echo "$i" > "$T/src/f"
                run berth backup --path "$T/src" --name amb
                id=$(last_line)
                p=${id:0:1}
                if [ -n "${seen[$p]:-}" ]; then prefix=$p; break; fi
                seen[$p]=1
        done
        [ -n "$prefix" ]
        run berth restore "${prefix}" --target "$T/x"
        # one hex digit is too short to be taken as an id: it is looked up as a name
        [ "$status" -eq 1 ]
        run berth restore "${prefix}${prefix}${prefix}${prefix}" --target "$T/x"
        [ "$status" -eq 1 ]
        # a 4-digit prefix matching two ids, if any, must list them; build one from the two ids
        ids=$(berth --json snapshots amb | python3 -c '
import json,sys,collections
ids=[s["id"] for s in json.load(sys.stdin)]
c=collections.Counter(i[:4] for i in ids)
print(" ".join(p for p,n in c.items() if n>1))')
        if [ -n "$ids" ]; then
                p=${ids%% *}
                run berth restore "$p" --target "$T/x"
                [ "$status" -eq 1 ]
                [[ "$output" == *"matches"*"snapshots"* ]]
        fi
}

@test "restore --include restores one file or one sub-tree with its parents" {
        make_tree "$T/src"
        berth init
        berth backup --path "$T/src" --name inc > /dev/null
        run berth restore inc --target "$T/one" --include sub/copy.txt
        [ "$status" -eq 0 ]
        cmp "$T/src/sub/copy.txt" "$T/one/sub/copy.txt"
        [ "$(ls "$T/one" | wc -l)" -eq 1 ]
        [ "$(stat -c %u "$T/one/sub")" -eq 777 ]
        run berth restore inc --target "$T/tree" --include /sub
        [ "$status" -eq 0 ]
        [ -d "$T/tree/sub/deeper" ]
        [ ! -e "$T/tree/seq.txt" ]
        # a hard link whose first path was left out gets the contents
        cmp "$T/src/seq.txt" "$T/tree/sub/hard2.txt"
        run berth restore inc --target "$T/none" --include no/such/path
        [ "$status" -eq 1 ]
        [[ "$output" == *"has no path 'no/such/path'"* ]]
        [ ! -e "$T/none" ]
}

@test "restore refuses a non-empty target and touches nothing" {
        mkdir "$T/src" "$T/busy"
        echo data > "$T/src/f"
        echo precious > "$T/busy/keep"
        berth init
        berth backup --path "$T/src" --name t > /dev/null
        run berth restore t --target "$T/busy"
        [ "$status" -eq 1 ]
        [[ "$output" == *"is not empty"* ]]
        [ "$(cat "$T/busy/keep")" = precious ]
        [ "$(ls -A "$T/busy")" = keep ]
        # an existing empty directory is fine
        mkdir "$T/empty"
        run berth restore t --target "$T/empty"
        [ "$status" -eq 0 ]
        [ "$(cat "$T/empty/f")" = data ]
}

@test "a file that keeps changing while read is stored, marked and reported" {
        mkdir "$T/src"
        head -c 200000000 /dev/zero > "$T/src/busy.db"
        echo calm > "$T/src/calm"
        # rewrite the first block every few milliseconds
        python3 -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY)
i = 0
while True:
    os.pwrite(fd, str(i).encode(), 0); i += 1; time.sleep(0.002)
' "$T/src/busy.db" &
        BG_PIDS="$!"
        sleep 0.3
        berth init
        run berth backup --path "$T/src" --name live
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"'busy.db': changed while being read"*"inconsistent"* ]]
        [[ "$output" == *"1 inconsistent"* ]]
        kill "$BG_PIDS"
        # the catalog marks it (flags bit 0)
        [ "$(sqlite3 "$BERTH_REPO/catalog.db" "select count(*) from files f join paths p on p.id=f.path where p.path=cast('busy.db' as blob) and (f.flags & 1)")" -eq 1 ]
        # and the snapshot restores
        run berth restore live --target "$T/out"
        [ "$status" -eq 0 ]
        [ "$(cat "$T/out/calm")" = calm ]
        [ "$(stat -c %s "$T/out/busy.db")" -eq 200000000 ]
}

@test "kill -9 at any moment leaves the repository consistent" {
        mkdir -p "$T/src"
        for i in $(seq 1 12); do head -c 12000000 /dev/urandom > "$T/src/f$i"; done
        berth init
        mkdir "$T/first" && echo first > "$T/first/f"
        first=$(berth backup --path "$T/first" --name first | tail -n 1)
        for delay in 0.05 0.2 0.4 0.7 1.0 1.5; do
                "$BERTH" backup --path "$T/src" --name big > /dev/null 2>&1 &
                pid=$!
                sleep "$delay"
                kill -9 "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
                run berth check
                echo "$output"
                [ "$status" -eq 0 ]
        done
        # the earlier snapshot restores
        berth restore "$first" --target "$T/r-first"
        [ "$(cat "$T/r-first/f")" = first ]
        # the next backup succeeds and cleans up what the dead ones left
        run berth backup --path "$T/src" --name big
        [ "$status" -eq 0 ]
        [ -z "$(ls -A "$BERTH_REPO/tmp")" ]
        run berth check --read-data
        [ "$status" -eq 0 ]
        berth restore big --target "$T/r-big"
        run python3 "$TREECMP" "$T/src" "$T/r-big"
        [ "$status" -eq 0 ]
}

@test "a second writer fails with the pid of the lock holder, or waits with --lock-wait" {
        mkdir "$T/src" && echo x > "$T/src/f"
        berth init
        berth snapshots > /dev/null
        # hold the repository's lock the way berth does (a POSIX record lock)
        python3 -c '
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)
print(os.getpid(), flush=True)
time.sleep(4)
' "$BERTH_REPO/lock" > "$T/holder" &
        BG_PIDS="$!"
        for i in $(seq 50); do [ -s "$T/holder" ] && break; sleep 0.1; done
        holder=$(cat "$T/holder")
        run berth backup --path "$T/src" --name l
        [ "$status" -eq 4 ]
        [[ "$output" == *"locked by pid $holder"* ]]
        run berth snapshots
        [ "$status" -eq 4 ]
        run berth --lock-wait 20 backup --path "$T/src" --name l
        [ "$status" -eq 0 ]
}

@test "two backups at once on one repository both succeed with --lock-wait" {
        mkdir "$T/a" "$T/b"
        head -c 30000000 /dev/urandom > "$T/a/f"
        head -c 30000000 /dev/urandom > "$T/b/f"
        berth init
        berth --lock-wait 60 backup --path "$T/a" --name a > "$T/out-a" 2>&1 &
        p1=$!
        berth --lock-wait 60 backup --path "$T/b" --name b > "$T/out-b" 2>&1 &
        p2=$!
        wait $p1
        wait $p2
        run berth check --read-data
        [ "$status" -eq 0 ]
        [ "$(berth --json snapshots | json_get '.__len__()')" -eq 2 ]
}

@test "a missing source path is a clear error and writes nothing" {
        berth init
        run berth backup --path "$T/does-not-exist" --name x
        [ "$status" -eq 1 ]
        [[ "$output" == *"cannot back up"*"No such file or directory"* ]]
        [ -z "$(ls -A "$BERTH_REPO/snapshots")" ]
}

@test "an unreadable file is skipped with a warning and the snapshot is marked incomplete" {
        mkdir "$T/src"
        echo ok > "$T/src/readable"
        echo secret > "$T/src/locked"
        chmod 000 "$T/src/locked"
        mkdir "$T/nrepo" "$T/nhome"
        chown -R nobody "$T/src" "$T/nrepo" "$T/nhome"
        chmod 755 "$T"
        setpriv --reuid=nobody --regid=nogroup --clear-groups "$BERTH" -r "$T/nrepo" init
        run setpriv --reuid=nobody --regid=nogroup --clear-groups "$BERTH" -r "$T/nrepo" backup --path "$T/src" --name u
        echo "$output"
        [ "$status" -eq 3 ]
        [[ "$output" == *"'locked': skipped: cannot open it: Permission denied"* ]]
        [[ "$output" == *"(incomplete)"* ]]
        run setpriv --reuid=nobody --regid=nogroup --clear-groups "$BERTH" -r "$T/nrepo" --json snapshots
        [ "$(echo "$output" | json_get '[0]["status"]')" = incomplete ]
        setpriv --reuid=nobody --regid=nogroup --clear-groups "$BERTH" -r "$T/nrepo" restore u --target "$T/nhome/out"
        [ "$(cat "$T/nhome/out/readable")" = ok ]
        [ ! -e "$T/nhome/out/locked" ]
}

@test "a full disk fails cleanly: no snapshot, no temporary files, earlier data intact" {
        mkdir "$T/repo-fs" "$T/src" "$T/small"
        mount -t tmpfs -o size=6m tmpfs "$T/repo-fs"
        echo small > "$T/small/f"
        berth -r "$T/repo-fs/r" init
        berth -r "$T/repo-fs/r" backup --path "$T/small" --name small > /dev/null
        head -c 20000000 /dev/urandom > "$T/src/big"
        run berth -r "$T/repo-fs/r" backup --path "$T/src" --name big
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"No space left on device"* ]]
        run berth -r "$T/repo-fs/r" --json snapshots
        [ "$(echo "$output" | json_get '.__len__()')" -eq 1 ]
        [ -z "$(ls -A "$T/repo-fs/r/tmp")" ]
        run berth -r "$T/repo-fs/r" check --read-data
        [ "$status" -eq 0 ]
        berth -r "$T/repo-fs/r" restore small --target "$T/out"
        [ "$(cat "$T/out/f")" = small ]
        umount "$T/repo-fs"
}

@test "a repository of another format version is refused with a clear message" {
        berth init
        grep -q '"format": *3' "$BERTH_REPO/config"
        cp "$BERTH_REPO/config" "$T/config.orig"
        sed -i 's/"format": *3/"format":7/' "$BERTH_REPO/config"
        run berth snapshots
        [ "$status" -eq 1 ]
        [[ "$output" == *"format version 7"*"newer berth"* ]]
        # format 2 (encryption over format-1 packs, a development format)
        sed 's/"format": *3/"format":2/' "$T/config.orig" > "$BERTH_REPO/config"
        run berth snapshots
        [ "$status" -eq 1 ]
        [[ "$output" == *"format version 2"*"does not read"* ]]
}

@test "a corrupted pack is named by check, refused by restore, and --partial saves the rest" {
        mkdir "$T/src"
        head -c 3000000 /dev/urandom > "$T/src/victim"
        echo fine > "$T/src/fine"
        berth init
        id=$(berth backup --path "$T/src" --name c | tail -n 1)
        pack=$(find "$BERTH_REPO/packs" -type f | head -n 1)
        # flip bytes in the middle of the pack: inside the victim's chunks
        printf 'GARBAGE!' | dd of="$pack" bs=1 seek=1500000 conv=notrunc 2>/dev/null
        run berth check --read-data
        echo "$output"
        [ "$status" -eq 5 ]
        [[ "$output" == *"$(basename "$pack")"* ]]
        [[ "$output" == *"snapshot ${id:0:12} (c, "*"is damaged"*"'victim'"* ]]
        run berth restore c --target "$T/out"
        [ "$status" -eq 1 ]
        [[ "$output" == *"$(basename "$pack")"* ]]
        [[ "$output" == *"is damaged"* ]]
        [ ! -e "$T/out" ]
        [ -z "$(ls -A "$T" | grep berth-restore)" ]
        run berth restore c --target "$T/out" --partial
        [ "$status" -eq 3 ]
        [ "$(cat "$T/out/fine")" = fine ]
        [ ! -e "$T/out/victim" ]
}

@test "the catalog is rebuilt from the packs when catalog.db is lost" {
        make_tree "$T/src"
        berth init
        id=$(berth backup --path "$T/src" --name lost | tail -n 1)
        rm -f "$BERTH_REPO"/catalog.db*
        run berth snapshots
        [ "$status" -eq 1 ]
        [[ "$output" == *"catalog rebuild"* ]]
        # a writer recreates it
        mkdir "$T/other" && echo o > "$T/other/f"
        run berth backup --path "$T/other" --name other
        [ "$status" -eq 0 ]
        [[ "$output" == *"indexed"*"1 snapshot"* ]]
        berth restore "$id" --target "$T/out"
        run python3 "$TREECMP" "$T/src" "$T/out"
        [ "$status" -eq 0 ]
}

@test "every command has --help and bad usage exits 2" {
        for c in init backup snapshots restore check; do
                run berth "$c" --help
                [ "$status" -eq 0 ]
                [[ "$output" == Usage:* ]]
        done
        run berth --help
        [ "$status" -eq 0 ]
        [[ "$output" == *"Exit status"* ]]
        run berth frobnicate
        [ "$status" -eq 2 ]
        run berth backup
        [ "$status" -eq 2 ]
        run berth restore onlyone
        [ "$status" -eq 2 ]
        run berth --version
        [ "$status" -eq 0 ]
}

@test "compression level and unchanged-field settings are honoured" {
        mkdir "$T/src"
        seq 1 300000 > "$T/src/text"
        touch -d '1 minute ago' "$T/src/text"
        berth init
        run berth --json backup --path "$T/src" --name lvl --level 19
        [ "$status" -eq 0 ]
        # touching ctime only (chmod to the same mode) re-reads by default...
        chmod 644 "$T/src/text"
        run berth --json backup --path "$T/src" --name lvl
        [ "$(echo "$output" | json_get '["files_read"]')" -eq 1 ]
        chmod 644 "$T/src/text"
        run berth --json backup --path "$T/src" --name lvl --unchanged size,mtime
        [ "$(echo "$output" | json_get '["files_read"]')" -eq 0 ]
        run berth backup --path "$T/src" --name lvl --unchanged size
        [ "$status" -eq 2 ]
}
