#!/usr/bin/env bats
# Restores that fail touch nothing outside their staging directory; restore
# targets are what the user means; restores are durable before they are
# put in place.

load lib
load harden

# A snapshot whose directories have metadata worth stealing: modes, old
# times, a default ACL, an immutable directory, and a last file ("z-big")
# written after every directory.
make_victim() {
        local d=$1
        mkdir -p "$d/a/b" "$d/etc"
        echo small > "$d/a/b/file"
        echo conf > "$d/etc/conf"
        head -c "${2:-4000000}" /dev/urandom > "$d/z-big"
        chmod 0700 "$d" "$d/a"
        chmod 0750 "$d/a/b" "$d/etc"
        setfacl -d -m u:4242:rwx "$d/a"
        touch -d '2001-02-03 04:05:06' "$d/a/b" "$d/a" "$d/etc" "$d"
        chattr +i "$d/a/b"
}

no_staging_left() {
        ! ls -a "$@" | grep -q '^\.berth-restore'
}

@test "a restore failing on a damaged chunk changes nothing in the working directory or around the target" {
        make_victim "$T/src"
        berth init
        berth backup --path "$T/src" --name v > /dev/null
        damage_in_packs "$T/src/z-big"
        make_cwd "$T/w"
        make_cwd "$T/w/a"  # nested same names too
        before=$(describe_dirs "$T/w"; describe_dirs "$T/w/a")
        run sh -c "cd '$T/w' && exec timeout -k 5 60 '$BERTH' restore v --target '$T/out'"
        echo "$output"
        [ "$status" -ne 0 ]
        [[ "$output" == *"damaged"* ]]
        [ ! -e "$T/out" ]
        no_staging_left "$T"
        after=$(describe_dirs "$T/w"; describe_dirs "$T/w/a")
        diff <(echo "$before") <(echo "$after")
        # relative targets too: started from the directory the target goes
        # in (whose mtime the staging directory changes, nothing else)
        before=$(stat -c '%a %u %g' "$T/w"; describe_dirs "$T/w/a")
        run sh -c "cd '$T/w' && exec timeout -k 5 60 '$BERTH' restore v --target out"
        [ "$status" -ne 0 ]
        [ ! -e "$T/w/out" ]
        no_staging_left "$T/w"
        after=$(stat -c '%a %u %g' "$T/w"; describe_dirs "$T/w/a")
        diff <(echo "$before") <(echo "$after")
}

@test "a restore failing on a full disk changes nothing in the working directory, and says why" {
        make_victim "$T/src" 3000000
        berth init
        berth backup --path "$T/src" --name v > /dev/null
        mkdir "$T/small"
        mount -t tmpfs -o size=1m tmpfs "$T/small"
        make_cwd "$T/w"
        before=$(describe_dirs "$T/w")
        run sh -c "cd '$T/w' && exec timeout -k 5 60 '$BERTH' restore v --target '$T/small/out'"
        echo "$output"
        [ "$status" -ne 0 ]
        [[ "$output" == *"No space left on device"* ]]
        [ -z "$(ls -A "$T/small")" ]
        after=$(describe_dirs "$T/w")
        diff <(echo "$before") <(echo "$after")
        umount "$T/small"
}

# Starts a restore from $T/w, stops it once its staging tree holds a/b,
# sends it signal $1 and lets it go on.
restore_and_signal() {
        local sig=$1
        (cd "$T/w" && exec "$BERTH" restore v --target "$T/out") > "$T/restore.out" 2>&1 &
        local pid=$!
        for _ in $(seq 1 2000); do
                ls -d "$T"/.berth-restore-*/a/b > /dev/null 2>&1 && break
                sleep 0.005
        done
        kill -STOP "$pid"
        ls -d "$T"/.berth-restore-*/a/b
        kill "-$sig" "$pid"
        kill -CONT "$pid" 2>/dev/null || true
        local rc=0
        timeout -k 5 60 tail --pid="$pid" -f /dev/null || rc=$?
        wait "$pid" || rc=$?
        echo "$rc"
}

@test "SIGTERM and SIGINT part-way through a restore leave the working directory and target as they were" {
        make_victim "$T/src" 200000000
        berth init
        berth backup --path "$T/src" --name v > /dev/null
        make_cwd "$T/w"
        before=$(describe_dirs "$T/w")
        for sig in TERM INT; do
                rc=$(restore_and_signal $sig | tail -n 1)
                cat "$T/restore.out"
                [ "$rc" -ne 0 ]
                grep -q interrupted "$T/restore.out"
                [ ! -e "$T/out" ]
                no_staging_left "$T"
                after=$(describe_dirs "$T/w")
                diff <(echo "$before") <(echo "$after")
        done
}

@test "staging left by a killed restore is removed by the next restore into the same place" {
        make_victim "$T/src" 200000000
        berth init
        berth backup --path "$T/src" --name v > /dev/null
        make_cwd "$T/w"
        before=$(describe_dirs "$T/w")
        restore_and_signal KILL
        # kill -9 leaves the staging tree (immutable directory included) ...
        ls -d "$T"/.berth-restore-*
        after=$(describe_dirs "$T/w")
        diff <(echo "$before") <(echo "$after")
        # ... which the next restore next to it removes
        berth restore v --target "$T/out"
        no_staging_left "$T"
        chattr -i "$T/src/a/b" "$T/out/a/b"
        run python3 "$TREECMP" "$T/src" "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
        # a staging directory whose process is alive is left alone
        sleep 30 &
        BG_PIDS=$!
        mkdir "$T/.berth-restore-$BG_PIDS-abcdef"
        berth restore v --target "$T/out2"
        [ -d "$T/.berth-restore-$BG_PIDS-abcdef" ]
}

@test "restore into an empty mount point fills it in place, with the snapshot's top-level metadata" {
        make_victim "$T/src" 100000
        berth init
        berth backup --path "$T/src" --name v > /dev/null
        mkdir "$T/mnt"
        mount -t tmpfs -o size=64m tmpfs "$T/mnt"
        run berth restore v --target "$T/mnt"
        echo "$output"
        [ "$status" -eq 0 ]
        mountpoint -q "$T/mnt"
        no_staging_left "$T" "$T/mnt"
        [ "$(stat -c %a "$T/mnt")" = 700 ]
        [ "$(stat -c %Y "$T/mnt")" = "$(stat -c %Y "$T/src")" ]
        cmp "$T/src/z-big" "$T/mnt/z-big"
        [ "$(stat -c %a "$T/mnt/a/b")" = 750 ]
        umount "$T/mnt"
        # an existing empty directory is filled the same way, and compares equal
        mkdir "$T/empty"
        berth restore v --target "$T/empty"
        chattr -i "$T/src/a/b" "$T/empty/a/b"
        run python3 "$TREECMP" "$T/src" "$T/empty"
        echo "$output"
        [ "$status" -eq 0 ]
}

@test "a snapshot with an immutable top directory restores, with the flag set at the end" {
        mkdir -p "$T/src/d"
        echo x > "$T/src/d/f"
        chattr +i "$T/src/d" "$T/src"
        berth init
        berth backup --path "$T/src" --name v > /dev/null
        run berth restore v --target "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
        no_staging_left "$T"
        lsattr -d "$T/out" | cut -d' ' -f1 | grep -q i
        lsattr -d "$T/out/d" | cut -d' ' -f1 | grep -q i
        [ "$(cat "$T/out/d/f")" = x ]
        # into an empty directory, entries right under it are immutable too
        mkdir "$T/empty"
        run berth restore v --target "$T/empty"
        echo "$output"
        [ "$status" -eq 0 ]
        no_staging_left "$T/empty"
        lsattr -d "$T/empty" | cut -d' ' -f1 | grep -q i
        lsattr -d "$T/empty/d" | cut -d' ' -f1 | grep -q i
        chattr -i "$T/src" "$T/src/d"
}

@test "targets that do not name a directory are refused before anything is written" {
        mkdir -p "$T/src/x" "$T/w/dir" "$T/real"
        echo x > "$T/src/x/f"
        berth init
        berth backup --path "$T/src" --name v > /dev/null
        ln -s "$T/real" "$T/w/link"
        cd "$T/w"
        for t in "" "." "dir/." "./" "dir/.." "link/" "link"; do
                run timeout -k 5 30 "$BERTH" restore v --target "$t"
                echo "target '$t': $output"
                [ "$status" -ne 0 ]
                [[ "$output" == *"target"* ]]
        done
        [ -z "$(ls -A "$T/real")" ]
        [ -z "$(ls -A "$T/w/dir")" ]
        [ "$(ls -A "$T/w" | sort | tr '\n' ' ')" = "dir link " ]
}

@test "a restore is flushed to disk before it is moved into place" {
        mkdir -p "$T/src"
        echo x > "$T/src/f"
        berth init
        berth backup --path "$T/src" --name v > /dev/null
        ASAN_OPTIONS=detect_leaks=0 strace -f -qq -e trace=syncfs,rename,renameat,renameat2 -o "$T/trace" "$BERTH" restore v --target "$T/out"
        cat "$T/trace"
        grep -n 'syncfs\|rename' "$T/trace" | grep -v ENOENT > "$T/calls"
        first_sync=$(grep -m1 -n syncfs "$T/calls" | cut -d: -f1)
        move=$(grep -n "berth-restore.*out" "$T/calls" | cut -d: -f1)
        [ -n "$first_sync" ] && [ -n "$move" ] && [ "$first_sync" -lt "$move" ]
}
