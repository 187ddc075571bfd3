#!/usr/bin/env bats
# restore --to-volume that fails part-way: nothing outside its staging
# directory changes, the old contents stay, the containers run again.

load lib
load docker
load harden

setup_file() {
        docker_up
}

teardown_file() {
        docker_down
}

@test "restore --to-volume failing on damaged data changes nothing in the working directory nor the old volume" {
        docker volume create hv-src > /dev/null
        d=$(mountpoint_of hv-src)
        mkdir -p "$d/a/b" "$d/etc"
        echo small > "$d/a/b/file"
        head -c 4000000 /dev/urandom > "$d/z-big"
        chmod 0700 "$d/a" && chmod 0750 "$d/a/b" "$d/etc"
        setfacl -d -m u:4242:rwx "$d/a"
        touch -d '2001-02-03 04:05:06' "$d/a/b" "$d/a" "$d/etc"
        berth init
        berth backup hv-src > /dev/null
        damage_in_packs "$d/z-big"
        make_cwd "$T/w"
        before=$(describe_dirs "$T/w")
        # into a new volume
        run sh -c "cd '$T/w' && exec timeout -k 5 120 '$BERTH' restore hv-src --to-volume hv-new"
        echo "$output"
        [ "$status" -ne 0 ]
        [[ "$output" == *"damaged"* ]]
        [ "$(describe_dirs "$T/w")" = "$before" ]
        if docker volume inspect hv-new > /dev/null 2>&1; then
                [ -z "$(ls -A "$(mountpoint_of hv-new)")" ]
        fi
        # over a volume in use, with --force: old contents kept, container running again
        docker volume create hv-old > /dev/null
        o=$(mountpoint_of hv-old)
        mkdir -p "$o/a/b"
        echo old > "$o/a/b/file"
        docker run -d --name hv-user -v hv-old:/data berth-test:latest idle > /dev/null
        wait_state hv-user running
        old=$(cd "$o" && find . -printf '%p %m %T@\n' | sort)
        run sh -c "cd '$T/w' && exec timeout -k 5 120 '$BERTH' restore hv-src --to-volume hv-old --force"
        echo "$output"
        [ "$status" -ne 0 ]
        [ "$(describe_dirs "$T/w")" = "$before" ]
        [ "$(cd "$o" && find . -printf '%p %m %T@\n' | sort)" = "$old" ]
        [ -z "$(ls -a "$(dirname "$o")" | grep '^\.berth-restore')" ]
        wait_state hv-user running
}

@test "restore --to-volume --force: the new tree is on disk before the swap, the old one removed only after" {
        docker volume create hv-f-src > /dev/null
        s=$(mountpoint_of hv-f-src)
        echo new > "$s/file"
        berth init
        berth backup hv-f-src > /dev/null
        docker volume create hv-f-dst > /dev/null
        d=$(mountpoint_of hv-f-dst)
        echo old > "$d/old-file"
        ASAN_OPTIONS=detect_leaks=0 timeout -k 5 120 strace -f -qq -e trace=syncfs,renameat2,unlink,unlinkat,rmdir \
                -o "$T/trace" "$BERTH" restore hv-f-src --to-volume hv-f-dst --force
        [ "$(cat "$d/file")" = new ]
        [ ! -e "$d/old-file" ]
        grep -n . "$T/trace" | grep -v ENOENT > "$T/calls"
        cat "$T/calls"
        sync_at=$(grep -m1 syncfs "$T/calls" | cut -d: -f1)
        swap_at=$(grep -m1 RENAME_EXCHANGE "$T/calls" | cut -d: -f1)
        old_gone_at=$(grep -m1 'old-file' "$T/calls" | cut -d: -f1)
        [ -n "$sync_at" ] && [ -n "$swap_at" ] && [ -n "$old_gone_at" ]
        [ "$sync_at" -lt "$swap_at" ]
        [ "$swap_at" -lt "$old_gone_at" ]
}
