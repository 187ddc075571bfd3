#!/usr/bin/env bats
# remote.bats — repositories on another host: -r ssh://USER@HOST:PORT/PATH,
# served by `berth serve --stdio` through a real sshd on loopback (the far
# side's berth is $BERTH too), with this host's cache in $BERTH_CACHE_DIR.

load lib
load sshd
load docker

bats_require_minimum_version 1.5.0

setup() {
        sshd_repo_setup
        TREECMP="$BATS_TEST_DIRNAME/treecmp.py"
}

teardown() {
        docker_down
        sshd_repo_teardown
}

# rb ARGS: berth on the ssh:// repository, with our key and known_hosts
rb() {
        timeout -k 5 120 "$BERTH" -r "$URL" -i "$SSHD_USER_KEY" --known-hosts "$KH" --remote-berth "$BERTH" "$@"
}

# bytes this berth sent over the channel (its debug line)
sent_bytes() { printf '%s\n' "$output" | sed -n 's/.*: sent \([0-9]*\) bytes, received.*/\1/p' | tail -n 1; }

packs_bytes() { du -sb "$REPO/packs" | cut -f1; }

@test "remote: backup over ssh://, snapshots, restore identical, a repeat sends almost nothing, check --read-data" {
        timeout -k 5 60 "$BERTH" init -r "$REPO"
        make_tree "$T/src"

        run rb backup --path "$T/src" -n data
        echo "$output"
        [ "$status" -eq 0 ]
        id=$(last_line)
        [ ${#id} -eq 64 ]
        [ -e "$REPO/snapshots/$id" ]
        size1=$(packs_bytes)

        # the far side's own catalog indexed it (ANNOUNCE): readable there directly
        run timeout -k 5 60 "$BERTH" -r "$REPO" snapshots
        [ "$status" -eq 0 ]
        [[ "$output" == *"${id:0:12}"* ]]

        run rb snapshots
        [ "$status" -eq 0 ]
        [[ "$output" == *"${id:0:12}"* ]]
        [[ "$output" == *data* ]]

        run rb restore data@latest --target "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
        run python3 "$TREECMP" "$T/src" "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]

        run rb ls data@latest sub
        [ "$status" -eq 0 ]
        [[ "$output" == *copy.txt* ]]
        run rb cat data@latest seq.txt
        [ "$status" -eq 0 ]
        [ "$output" = "$(cat "$T/src/seq.txt")" ]
        run rb find 'copy*'
        [ "$status" -eq 0 ]
        [[ "$output" == *sub/copy.txt* ]]

        # the unchanged tree again: a new snapshot, almost nothing sent
        run --separate-stderr rb -v -v backup --path "$T/src" -n data
        [ "$status" -eq 0 ]
        output=$stderr
        sent=$(sent_bytes)
        echo "repeat backup sent $sent bytes" >&3
        [ -n "$sent" ]
        [ "$sent" -lt 200000 ]
        size2=$(packs_bytes)
        [ $((size2 - size1)) -lt 100000 ]

        run rb check --read-data
        echo "$output"
        [ "$status" -eq 0 ]
}

@test "remote: BERTH_REPO=ssh:// and the SSH options after the command" {
        timeout -k 5 60 "$BERTH" init -r "$REPO"
        mkdir -p "$T/src" && seq 1 1000 > "$T/src/f"
        export BERTH_REPO=$URL BERTH_SSH_IDENTITY=$SSHD_USER_KEY BERTH_SSH_KNOWN_HOSTS=$KH BERTH_REMOTE_BERTH=$BERTH
        run timeout -k 5 60 "$BERTH" backup --path "$T/src" -n small
        echo "$output"
        [ "$status" -eq 0 ]
        unset BERTH_SSH_IDENTITY BERTH_SSH_KNOWN_HOSTS BERTH_REMOTE_BERTH
        run timeout -k 5 60 "$BERTH" restore small@latest --target "$T/out" --identity "$SSHD_USER_KEY" \
                --known-hosts "$KH" --remote-berth "$BERTH"
        echo "$output"
        [ "$status" -eq 0 ]
        cmp "$T/src/f" "$T/out/f"

        # -i is the key after restore too; -I is its --include
        echo other > "$T/src/g"
        run timeout -k 5 60 "$BERTH" backup --path "$T/src" -n small --identity "$SSHD_USER_KEY" \
                --known-hosts "$KH" --remote-berth "$BERTH"
        [ "$status" -eq 0 ]
        run timeout -k 5 60 "$BERTH" restore small@latest --target "$T/only-g" -I g -i "$SSHD_USER_KEY" \
                --known-hosts "$KH" --remote-berth "$BERTH"
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(cat "$T/only-g/g")" = other ]
        [ ! -e "$T/only-g/f" ]
}

@test "remote: an unknown host key is refused before anything is sent" {
        timeout -k 5 60 "$BERTH" init -r "$REPO"
        mkdir -p "$T/src" && echo x > "$T/src/f"
        : > "$KH"
        run rb backup --path "$T/src" -n data
        echo "$output"
        [ "$status" -ne 0 ]
        [[ "$output" == *SHA256:* ]]
        [[ "$output" == *--accept-new-host-key* ]]
        [ -z "$(ls "$REPO/snapshots")" ]
        [ ! -e "$BERTH_CACHE_DIR" ]
        [ ! -s "$KH" ]
        # nothing ran on the far side: no session was even authenticated
        ! grep -q "Accepted publickey" "$T/sshd/sshd.log"
        # --accept-new-host-key records it and goes on
        run rb --accept-new-host-key backup --path "$T/src" -n data
        echo "$output"
        [ "$status" -eq 0 ]
        grep -q "^\[127.0.0.1\]:$SSHD_PORT " "$KH"
        run rb snapshots
        [ "$status" -eq 0 ]
        [[ "$output" == *data* ]]
}

@test "remote: a wrong remote path and a missing remote berth are clear errors" {
        timeout -k 5 60 "$BERTH" init -r "$REPO"
        URL=ssh://root@127.0.0.1:$SSHD_PORT$T/nowhere
        run rb snapshots
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"$T/nowhere"* ]]
        [[ "$output" == *"No such file"* ]]

        URL=ssh://root@127.0.0.1:$SSHD_PORT$T
        run rb snapshots
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"not a Berth repository"* ]]

        URL=ssh://root@127.0.0.1:$SSHD_PORT$REPO
        cd "$T" # a berth that takes ssh:// for a local path creates nothing in the worktree
        run timeout -k 5 60 "$BERTH" -r "$URL" -i "$SSHD_USER_KEY" --known-hosts "$KH" \
                --remote-berth /nonexistent/berth snapshots
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"install berth there"* ]]
        [[ "$output" == *--remote-berth* ]]
}

@test "remote: the local cache can be deleted and is rebuilt on the next command" {
        timeout -k 5 60 "$BERTH" init -r "$REPO"
        mkdir -p "$T/src" && seq 1 50000 > "$T/src/f"
        run rb backup --path "$T/src" -n one
        [ "$status" -eq 0 ]
        id=$(last_line)
        [ -n "$(ls "$BERTH_CACHE_DIR")" ]
        [ -e "$BERTH_CACHE_DIR"/*/catalog.db ]

        rm -rf "$BERTH_CACHE_DIR"
        run rb snapshots
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"${id:0:12}"* ]]
        [ -e "$BERTH_CACHE_DIR"/*/catalog.db ]
        run rb cat one@latest f
        [ "$status" -eq 0 ]
        [ "$output" = "$(cat "$T/src/f")" ]

        # a snapshot written by another client appears in the cache too
        timeout -k 5 60 "$BERTH" -r "$REPO" backup --path "$T/src" -n two
        run rb snapshots
        [ "$status" -eq 0 ]
        [[ "$output" == *two* ]]

        # one removed over there (and its catalog rebuilt) is dropped here
        rm "$REPO/snapshots/$id"
        timeout -k 5 60 "$BERTH" -r "$REPO" catalog rebuild
        run rb snapshots
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" != *"${id:0:12}"* ]]
        [[ "$output" == *two* ]]
}

@test "remote: init, catalog rebuild and recover refuse ssh:// and create nothing here" {
        cd "$T"
        run timeout -k 5 30 "$BERTH" init -r "$URL"
        echo "$output"
        [ "$status" -eq 2 ]
        [[ "$output" == *"run 'berth init' there"* ]]
        run timeout -k 5 30 "$BERTH" -r "$URL" catalog rebuild
        [ "$status" -eq 2 ]
        run timeout -k 5 30 "$BERTH" -r "$URL" recover
        [ "$status" -eq 2 ]
        [ ! -e "$T/ssh:" ]
        [ ! -e "$REPO" ]
}

@test "remote: backup VOLUME of a Docker volume into an ssh:// repository, restored identical" {
        command -v dockerd >/dev/null || skip "dockerd is not installed"
        timeout -k 5 60 "$BERTH" init -r "$REPO"
        docker_up
        docker volume create rvol > /dev/null
        docker run --rm -v rvol:/data berth-test:latest sh -c 'seq 1 20000 > /data/seq; mkdir /data/d; echo hi > /data/d/x'
        run rb backup rvol
        echo "$output"
        [ "$status" -eq 0 ]
        run rb snapshots
        [[ "$output" == *rvol* ]]
        run rb restore rvol@latest --target "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
        run python3 "$TREECMP" "$(mountpoint_of rvol)" "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
        # and into a new volume on this host, from the repository over there
        run rb restore rvol@latest --to-volume rvol2
        echo "$output"
        [ "$status" -eq 0 ]
        run python3 "$TREECMP" "$(mountpoint_of rvol)" "$(mountpoint_of rvol2)"
        echo "$output"
        [ "$status" -eq 0 ]
}

@test "remote: a far side that does not speak the protocol is refused cleanly" {
        timeout -k 5 60 "$BERTH" init -r "$REPO"
        # garbage instead of WELCOME
        printf '#!/bin/sh\nprintf "HTTP/1.0 200 OK\\r\\n\\r\\n"; cat > /dev/null\n' > "$T/junk"
        # a frame length far past the bound
        printf '#!/bin/sh\nprintf "\\377\\377\\377\\177"; head -c 100000000 /dev/zero\n' > "$T/huge"
        chmod +x "$T/junk" "$T/huge"
        for fake in junk huge; do
                run timeout -k 5 30 "$BERTH" -r "$URL" -i "$SSHD_USER_KEY" --known-hosts "$KH" \
                        --remote-berth "$T/$fake" snapshots
                echo "$output"
                [ "$status" -eq 1 ]
                [[ "$output" == *"protocol"* || "$output" == *"frame"* ]]
        done
        [ ! -e "$BERTH_CACHE_DIR" ]
}

@test "remote: a backup killed part-way is resumed at once (no --lock-wait) without sending again what had arrived" {
        timeout -k 5 60 "$BERTH" init -r "$REPO" --pack-size 1M
        mkdir -p "$T/src"
        head -c 150000000 /dev/urandom > "$T/src/big"
        # berth itself in the background (its pid, to kill it), bounded by the loop below
        "$BERTH" -r "$URL" -i "$SSHD_USER_KEY" --known-hosts "$KH" --remote-berth "$BERTH" \
                backup --path "$T/src" -n big > "$T/first.log" 2>&1 &
        pid=$!
        BG_PIDS=$pid
        for _ in $(seq 1 300); do
                [ "$(find "$REPO/packs" -type f | wc -l)" -ge 30 ] && break
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.05
        done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        BG_PIDS=
        [ ! -s "$T/first.log" ] || ! grep -q "^[0-9a-f]\{64\}$" "$T/first.log" # it did not finish
        arrived=$(du -sb "$REPO/packs" | cut -f1)
        echo "arrived before the kill: $arrived bytes" >&3
        [ "$arrived" -gt 20000000 ]

        # at once, without --lock-wait: the far lock its serve held is waited for
        run --separate-stderr rb -v -v backup --path "$T/src" -n big
        [ "$status" -eq 0 ]
        output=$stderr
        sent=$(sent_bytes)
        echo "the rerun sent $sent bytes" >&3
        [ $((sent + arrived)) -lt 160000000 ]
        run rb restore big@latest --target "$T/out"
        [ "$status" -eq 0 ]
        cmp "$T/src/big" "$T/out/big"
        run timeout -k 5 120 "$BERTH" -r "$REPO" check
        echo "$output"
        [ "$status" -eq 0 ]
}
