#!/usr/bin/env bats
# hostile-peer.bats — a hostile `serve` peer (issue 9): the far side of an
# ssh:// repository is tests/e2e/hostile-serve.py (named by --remote-berth),
# a proxy in front of the real `$BERTH serve --stdio` that alters its
# replies: flipped pack bytes, an oversized frame, a wrong tag, a wrong
# reply type, hostile names in a listing.  The client must refuse each one
# with a clear error, quickly, and write nothing outside its cache.

load lib
load sshd

bats_require_minimum_version 1.5.0

setup() {
        sshd_repo_setup
        # the repository, made by the real berth, locally
        timeout -k 5 60 "$BERTH" init -r "$REPO"
        mkdir -p "$T/src"
        head -c 3000000 /dev/urandom > "$T/src/blob"
        seq 1 20000 > "$T/src/seq.txt"
        timeout -k 5 60 "$BERTH" -r "$REPO" backup --path "$T/src" -n data
}

teardown() {
        sshd_repo_teardown
}

# far MODE: a far-side "berth" that is hostile-serve.py in MODE; prints its path
far() {
        local w=$T/far-$1
        printf '#!/bin/sh\nexec python3 %s %s %s "$@"\n' "$BATS_TEST_DIRNAME/hostile-serve.py" "$1" "$BERTH" > "$w"
        chmod +x "$w"
        echo "$w"
}

# hb MODE ARGS: berth on the ssh:// repository through a hostile far side
hb() {
        local mode=$1
        shift
        timeout -k 5 60 "$BERTH" -r "$URL" -i "$SSHD_USER_KEY" --known-hosts "$KH" --remote-berth "$(far "$mode")" "$@"
}

@test "hostile peer: the honest proxy works (restore identical)" {
        run hb honest restore data@latest --target "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
        cmp "$T/src/blob" "$T/out/blob"
}

@test "hostile peer: flipped pack bytes: restore and cat fail as damaged, no target left" {
        run hb flip restore data@latest --target "$T/out"
        echo "$output"
        [ "$status" -ne 0 ]
        [[ "$output" == *damaged* ]]
        [ ! -e "$T/out" ]
        run hb flip cat data@latest blob
        [ "$status" -ne 0 ]
        [[ "$output" == *damaged* ]]
}

@test "hostile peer: a frame longer than the maximum is a protocol error, at once" {
        start=$(date +%s)
        run hb biglen snapshots
        echo "$output"
        [ "$status" -ne 0 ]
        [ "$status" -ne 124 ] && [ "$status" -ne 137 ]
        [[ "$output" == *"frame length"*"out of bounds"* ]]
        [ $(($(date +%s) - start)) -lt 20 ]
}

@test "hostile peer: a reply with the wrong tag is a protocol error" {
        run hb wrongtag restore data@latest --target "$T/out"
        echo "$output"
        [ "$status" -ne 0 ]
        [ "$status" -ne 124 ] && [ "$status" -ne 137 ]
        [[ "$output" == *protocol* ]]
}

@test "hostile peer: a reply of an unexpected type is a protocol error" {
        run hb wrongtype restore data@latest --target "$T/out"
        echo "$output"
        [ "$status" -ne 0 ]
        [ "$status" -ne 124 ] && [ "$status" -ne 137 ]
        [[ "$output" == *protocol* ]]
}

@test "hostile peer: hostile names in a listing are refused, nothing written outside the cache" {
        before=$(cd "$T" && find . -path ./cache -prune -o -path ./repo -prune -o -path ./sshd -prune -o -print | grep -v '^./far-' | sort)
        for cmd in snapshots "restore data@latest --target $T/out"; do
                # shellcheck disable=SC2086
                run hb names $cmd
                echo "$output"
                [ "$status" -ne 0 ]
                [ "$status" -ne 124 ] && [ "$status" -ne 137 ]
                [[ "$output" == *"NAMES: name has a '..' component"* ]]
        done
        [ ! -e "$T/out" ]
        [ ! -e "$T/x" ] && [ ! -e "$T/cache/x" ]
        after=$(cd "$T" && find . -path ./cache -prune -o -path ./repo -prune -o -path ./sshd -prune -o -print | grep -v '^./far-' | sort)
        [ "$before" = "$after" ]
        run find "$T/cache" -name passwd
        [ -z "$output" ]
}
