#!/usr/bin/env bats
# remote-more.bats — more of remote repositories (-r ssh://…) and commands
# that reach a host: -i after any command, a damaged pack seen through the
# cache, a killed client's lock, what the far side lacks.  Real sshd on
# loopback (sshd.bash); the far side's berth is $BERTH too.

load lib
load sshd

bats_require_minimum_version 1.5.0

setup() {
        sshd_repo_setup
}

teardown() {
        sshd_repo_teardown
}

# rb ARGS: berth on the ssh:// repository, with our key and known_hosts
rb() {
        timeout -k 5 120 "$BERTH" -r "$URL" -i "$SSHD_USER_KEY" --known-hosts "$KH" --remote-berth "$BERTH" "$@"
}

# rba COMMAND ARGS: the same, the SSH options after the command
rba() {
        local cmd=$1
        shift
        timeout -k 5 120 "$BERTH" -r "$URL" "$cmd" -i "$SSHD_USER_KEY" --known-hosts "$KH" --remote-berth "$BERTH" "$@"
}

@test "remote-more: -i KEY after restore and export on an ssh:// repository; -I is --include" {
        timeout -k 5 60 "$BERTH" init -r "$REPO"
        mkdir -p "$T/src/d" && seq 1 1000 > "$T/src/f" && echo g > "$T/src/d/g"
        run rb backup --path "$T/src" -n small
        echo "$output"
        [ "$status" -eq 0 ]

        run rba restore small@latest --target "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
        cmp "$T/src/f" "$T/out/f"

        run rba restore small@latest --target "$T/only-d" -I d
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(cat "$T/only-d/d/g")" = g ]
        [ ! -e "$T/only-d/f" ]

        rba export small@latest -o "$T/all.tar" -I d
        tar -tf "$T/all.tar" > "$T/list"
        grep -q 'd/g' "$T/list"
        ! grep -q '^\./f$\|^f$' "$T/list"
}

@test "remote-more: -i with a name that is no file, after restore or export, says -i is --identity" {
        timeout -k 5 60 "$BERTH" init -r "$T/local"
        for cmd in restore export; do
                run timeout -k 5 30 "$BERTH" -r "$T/local" "$cmd" x -i sub/path
                echo "$output"
                [ "$status" -eq 2 ]
                [[ "$output" == *"-i is --identity (an SSH key file); for --include use -I"* ]]
        done
}

@test "remote-more: restore --host takes -i KEY after the command" {
        export BERTH_REPO=$T/local
        timeout -k 5 60 "$BERTH" init
        mkdir -p "$T/src" && seq 1 5000 > "$T/src/f"
        timeout -k 5 60 "$BERTH" backup --path "$T/src" -n small
        # the far side has no Docker here: the copy lands, its restore fails after
        printf '#!/bin/sh\nDOCKER_HOST=unix://%s/no-docker.sock exec %s "$@"\n' "$T" "$BERTH" > "$T/far-berth"
        chmod +x "$T/far-berth"
        run timeout -k 5 120 "$BERTH" restore small@latest --host "$SSHD_DEST" --to-volume v -i "$SSHD_USER_KEY" \
                --known-hosts "$KH" --remote-berth "$T/far-berth" --remote-repo "$T/far"
        echo "$output"
        [[ "$output" != *uthenticat* ]]
        ls "$T/far/snapshots" | grep -q .
}

# flip_trailers: one flipped byte near the end (the trailer) of every pack
flip_trailers() {
        local p size
        for p in $(find "$REPO/packs" -type f); do
                size=$(stat -c %s "$p")
                python3 - "$p" "$((size - 60))" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0x55]))
PY
        done
}

@test "remote-more: a pack whose trailer does not verify is named while the cache syncs; restore says damaged, exit 5" {
        timeout -k 5 60 "$BERTH" init -r "$REPO"
        mkdir -p "$T/src" && seq 1 20000 > "$T/src/f"
        run rb backup --path "$T/src" -n small
        echo "$output"
        [ "$status" -eq 0 ]
        flip_trailers
        rm -rf "$BERTH_CACHE_DIR"

        run rb restore small@latest --target "$T/out"
        echo "$output"
        [ "$status" -eq 5 ]
        [[ "$output" == *"pack packs/"*" on ssh://"*" is damaged: "*"; run berth check on the far side"* ]]
        [[ "$output" == *"the repository is damaged"* ]]
        [[ "$output" != *"no snapshots yet"* ]]
        [ ! -e "$T/out" ]

        # the same through the cache now built, and for snapshots' neighbour ls
        run rb ls small@latest
        echo "$output"
        [ "$status" -eq 5 ]
        [[ "$output" == *"is damaged"* ]]

        run timeout -k 5 60 "$BERTH" -r "$REPO" check
        [ "$status" -eq 5 ]
}

@test "remote-more: a writer waits a few seconds, without --lock-wait, for a far lock about to be released" {
        timeout -k 5 60 "$BERTH" init -r "$REPO"
        mkdir -p "$T/src" && seq 1 1000 > "$T/src/f"
        # stands for the serve of a client that just died: it holds the
        # far side's writer byte a moment longer, then goes
        python3 - "$REPO/lock" 3 > "$T/holder.log" 2>&1 <<'PY' &
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 1)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
PY
        BG_PIDS=$!
        for _ in $(seq 1 100); do grep -q held "$T/holder.log" && break; sleep 0.05; done
        grep -q held "$T/holder.log"
        run rb backup --path "$T/src" -n small
        echo "$output"
        [ "$status" -eq 0 ]
        run timeout -k 5 60 "$BERTH" -r "$REPO" check
        [ "$status" -eq 0 ]
}

@test "remote-more: copy to ssh:// asks the far side what it lacks: chunks it got by another route are not sent" {
        export BERTH_REPO=$T/local
        timeout -k 5 60 "$BERTH" init
        mkdir -p "$T/src"
        head -c 3000000 /dev/urandom > "$T/src/a"
        timeout -k 5 60 "$BERTH" backup --path "$T/src" -n data
        head -c 2000000 /dev/urandom > "$T/src/b"
        timeout -k 5 60 "$BERTH" backup --path "$T/src" -n data
        id2=$(timeout -k 5 60 "$BERTH" snapshots --json | json_get '[-1]["id"]')

        # the far repository gets the first snapshot by another route (a
        # copy on that host), and this host's cache of it is gone
        timeout -k 5 60 "$BERTH" init -r "$REPO"
        run timeout -k 5 60 "$BERTH" -r "$T/local" copy "$(timeout -k 5 60 "$BERTH" snapshots --json | json_get '[0]["id"]')" --to "$REPO"
        [ "$status" -eq 0 ]
        rm -rf "$BERTH_CACHE_DIR"

        run --separate-stderr timeout -k 5 120 "$BERTH" -v -v copy "$id2" --to "$URL" -i "$SSHD_USER_KEY" \
                --known-hosts "$KH" --remote-berth "$BERTH" --json
        echo "$output"; printf '%s\n' "$stderr" | grep -E 'offered|sent [0-9]+ bytes' || true
        [ "$status" -eq 0 ]
        sent=$(json_get '["bytes_sent"]' <<<"$output")
        skipped=$(json_get '["bytes_skipped"]' <<<"$output")
        echo "sent $sent, skipped $skipped" >&3
        # b's bytes (random: stored as they are), not a's again
        [ "$sent" -ge 1900000 ]
        [ "$sent" -lt 2500000 ]
        [ "$skipped" -ge 2900000 ]
        # the far side said what it lacked
        [[ "$stderr" == *"offered "*" chunk ids, it lacks "* ]]

        run timeout -k 5 120 "$BERTH" -r "$REPO" check --read-data
        echo "$output"
        [ "$status" -eq 0 ]
        run timeout -k 5 60 "$BERTH" -r "$REPO" restore "$id2" --target "$T/out" --verify
        echo "$output"
        [ "$status" -eq 0 ]
        cmp "$T/src/b" "$T/out/b"
}

@test "remote-more: bringing the cache up to date takes one LIST" {
        timeout -k 5 60 "$BERTH" init -r "$REPO"
        mkdir -p "$T/src" && seq 1 1000 > "$T/src/f"
        printf '#!/bin/sh\nBERTH_LOG_LEVEL=debug exec %s "$@" 2>>%s/far.log\n' "$BERTH" "$T" > "$T/far-berth"
        chmod +x "$T/far-berth"
        run timeout -k 5 60 "$BERTH" -r "$URL" -i "$SSHD_USER_KEY" --known-hosts "$KH" --remote-berth "$T/far-berth" \
                backup --path "$T/src" -n small
        echo "$output"
        [ "$status" -eq 0 ]
        for cmd in snapshots "ls small@latest"; do
                : > "$T/far.log"
                run timeout -k 5 60 "$BERTH" -r "$URL" -i "$SSHD_USER_KEY" --known-hosts "$KH" \
                        --remote-berth "$T/far-berth" $cmd
                echo "$output"
                [ "$status" -eq 0 ]
                grep "serve: listing" "$T/far.log" || true
                # one listing of everything; packs/ and snapshots/ not again
                [ "$(grep -c "serve: listing ''" "$T/far.log")" -eq 1 ]
                ! grep -q "serve: listing 'packs/'\|serve: listing 'snapshots/'" "$T/far.log"
        done
}

@test "remote-more: copy to ssh:// sends again what this host's cache wrongly places on the far side" {
        export BERTH_REPO=$T/local
        timeout -k 5 60 "$BERTH" init
        mkdir -p "$T/src"
        head -c 3000000 /dev/urandom > "$T/src/a"
        timeout -k 5 60 "$BERTH" backup --path "$T/src" -n data
        timeout -k 5 60 "$BERTH" init -r "$REPO"
        sshopts=(-i "$SSHD_USER_KEY" --known-hosts "$KH" --remote-berth "$BERTH")
        run timeout -k 5 120 "$BERTH" copy data --to "$URL" "${sshopts[@]}"
        echo "$output"
        [ "$status" -eq 0 ]
        head -c 1000000 /dev/urandom > "$T/src/b"
        timeout -k 5 60 "$BERTH" backup --path "$T/src" -n data
        id2=$(timeout -k 5 60 "$BERTH" snapshots --json | json_get '[-1]["id"]')

        # the far side's packs lose their trailers and its catalog is rebuilt
        # without them; this host's cache still places a's chunks there
        flip_trailers
        run timeout -k 5 60 "$BERTH" -r "$REPO" catalog rebuild
        echo "$output"

        run --separate-stderr timeout -k 5 120 "$BERTH" copy "$id2" --to "$URL" "${sshopts[@]}" --json
        echo "$output"; echo "$stderr"
        [ "$status" -eq 0 ]
        sent=$(json_get '["bytes_sent"]' <<<"$output")
        echo "sent $sent" >&3
        [ "$sent" -ge 3900000 ]
        run timeout -k 5 60 "$BERTH" -r "$REPO" restore "$id2" --target "$T/out" --verify
        echo "$output"
        [ "$status" -eq 0 ]
        cmp "$T/src/a" "$T/out/a"
        cmp "$T/src/b" "$T/out/b"
}

@test "remote-more: copy to ssh:// does not send what the far side holds in packs this host's cache cannot index" {
        export BERTH_REPO=$T/local
        timeout -k 5 60 "$BERTH" init
        mkdir -p "$T/src"
        head -c 3000000 /dev/urandom > "$T/src/a"
        timeout -k 5 60 "$BERTH" backup --path "$T/src" -n data
        timeout -k 5 60 "$BERTH" init -r "$REPO"
        sshopts=(-i "$SSHD_USER_KEY" --known-hosts "$KH" --remote-berth "$BERTH")
        run timeout -k 5 120 "$BERTH" copy data --to "$URL" "${sshopts[@]}"
        [ "$status" -eq 0 ]
        head -c 1000000 /dev/urandom > "$T/src/b"
        timeout -k 5 60 "$BERTH" backup --path "$T/src" -n data
        id2=$(timeout -k 5 60 "$BERTH" snapshots --json | json_get '[-1]["id"]')

        # the far packs' trailers are damaged (their chunks are whole, and
        # the far catalog still lists them); this host's cache is gone, so
        # the rebuilt one cannot know them
        flip_trailers
        rm -rf "$BERTH_CACHE_DIR"

        run --separate-stderr timeout -k 5 120 "$BERTH" copy "$id2" --to "$URL" "${sshopts[@]}" --json
        echo "$output"; echo "$stderr"
        [ "$status" -eq 0 ]
        sent=$(json_get '["bytes_sent"]' <<<"$output")
        echo "sent $sent" >&3
        # b only: a's chunks are there
        [ "$sent" -ge 900000 ]
        [ "$sent" -lt 1500000 ]
        [[ "$stderr" == *"pack packs/"*" is damaged"* ]]
        run timeout -k 5 60 "$BERTH" -r "$REPO" restore "$id2" --target "$T/out" --verify
        echo "$output"
        [ "$status" -eq 0 ]
        cmp "$T/src/a" "$T/out/a"
        cmp "$T/src/b" "$T/out/b"
}
