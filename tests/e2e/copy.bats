#!/usr/bin/env bats
# copy.bats — berth copy: replicating snapshots into another repository,
# local or ssh:// (a real sshd on loopback, see sshd.bash), sending only
# the chunks the destination lacks.

load lib
load sshd

bats_require_minimum_version 1.5.0

setup() {
        T=$(mktemp -d "${TMPDIR:-/tmp}/berth-test.XXXXXX")
        export BERTH_REPO="$T/repo"
        export BERTH_CONFIG=/dev/null BERTH_LOG_LEVEL=notice
        unset BERTH_LEVEL BERTH_LOCK_WAIT BERTH_UNCHANGED
        unset SSH_AUTH_SOCK SSH_AGENT_PID BERTH_SSH_IDENTITY BERTH_SSH_KNOWN_HOSTS BERTH_REMOTE_BERTH
        export BERTH_CACHE_DIR=$T/cache
        TREECMP="$BATS_TEST_DIRNAME/treecmp.py"
        DST=$T/dst
        SSHD_STARTED=
        cd "$T"
}

teardown() {
        [ -z "$SSHD_STARTED" ] || sshd_down
        if [ -n "${BATS_TEST_COMPLETED:-}" ]; then
                chattr -R -i -a "$T" 2>/dev/null || true
                rm -rf "$T"
        else
                echo "# kept $T for inspection" >&3
        fi
}

b() { timeout -k 5 120 "$BERTH" "$@"; }

dst_bytes() { du -sb "$DST/packs" | cut -f1; }

@test "copy: local to local, restored identical; a repeat sends nothing; a changed snapshot sends a little" {
        make_tree "$T/src"
        run b backup --path "$T/src" -n data
        [ "$status" -eq 0 ]
        id=$(last_line)

        run --separate-stderr b copy data@latest --to "$DST" --json
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(json_get '["snapshots_copied"]' <<<"$output")" -eq 1 ]
        [ "$(json_get '["chunks_sent"]' <<<"$output")" -gt 0 ]
        [ "$(json_get '["bytes_sent"]' <<<"$output")" -gt 1000000 ]
        [ "$(json_get '["snapshots"][0]["id"]' <<<"$output")" = "$id" ]
        # the same id, the same bytes of the snapshot file
        cmp "$BERTH_REPO/snapshots/$id" "$DST/snapshots/$id"

        run b -r "$DST" snapshots
        [ "$status" -eq 0 ]
        [[ "$output" == *"${id:0:12}"*data* ]]
        run b -r "$DST" restore "$id" --target "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
        run python3 "$TREECMP" "$T/src" "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
        run b -r "$DST" check --read-data
        echo "$output"
        [ "$status" -eq 0 ]

        # again: already there, nothing sent, the destination unchanged
        size1=$(dst_bytes)
        run b copy "${id:0:10}" --to "$DST"
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"already in"*"skipped"* ]]
        run --separate-stderr b copy data --to "$DST" --json
        [ "$status" -eq 0 ]
        [ "$(json_get '["bytes_sent"]' <<<"$output")" -eq 0 ]
        [ "$(json_get '["snapshots_present"]' <<<"$output")" -eq 1 ]
        [ "$(dst_bytes)" -eq "$size1" ]

        # a small change, a second snapshot of the same name: only a little is sent
        printf 'CHANGED' | dd of="$T/src/rand.bin" bs=1 seek=1500000 conv=notrunc 2>/dev/null
        run b backup --path "$T/src" -n data
        [ "$status" -eq 0 ]
        id2=$(last_line)
        [ "$id2" != "$id" ]
        run --separate-stderr b copy --all-snapshots data --to "$DST" --json
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(json_get '["snapshots_copied"]' <<<"$output")" -eq 1 ]
        [ "$(json_get '["snapshots_present"]' <<<"$output")" -eq 1 ]
        sent=$(json_get '["bytes_sent"]' <<<"$output")
        echo "second snapshot: $sent bytes sent" >&3
        [ "$sent" -gt 0 ]
        [ "$sent" -lt 300000 ]
        [ "$(json_get '["bytes_skipped"]' <<<"$output")" -gt 1000000 ]
        [ $(( $(dst_bytes) - size1 )) -lt 400000 ]
        run b -r "$DST" restore data@latest --target "$T/out2"
        [ "$status" -eq 0 ]
        run python3 "$TREECMP" "$T/src" "$T/out2"
        echo "$output"
        [ "$status" -eq 0 ]
}

@test "copy: bad command lines" {
        run b copy data
        [ "$status" -eq 2 ]
        [[ "$output" == *"--to DEST"* ]]
        run b copy --to "$DST"
        [ "$status" -eq 2 ]
        run b copy --help
        [ "$status" -eq 0 ]
        [[ "$output" == *"Usage: berth [-r REPO] copy SNAPSHOT"* ]]
        mkdir "$T/s"
        echo x > "$T/s/x"
        b backup --path "$T/s" -n s >/dev/null
        run b copy s --to "$BERTH_REPO"
        [ "$status" -eq 2 ]
        run b copy nosuch --to "$DST"
        [ "$status" -eq 1 ]
        [[ "$output" == *nosuch* ]]
        [ ! -e "$DST/snapshots" ] || [ -z "$(ls "$DST/snapshots")" ]
}

@test "copy: to an ssh:// repository, restored identical there; a repeat sends nothing; and back from it" {
        command -v /usr/sbin/sshd >/dev/null || skip "openssh-server is not installed"
        export HOME=$T/home
        mkdir -p "$HOME"
        unset SSHD_PORT SSHD_EXTRA
        SSHD_STARTED=1
        sshd_up "$T/sshd"
        sshd_known_line ed25519 > "$T/known_hosts"
        URL=ssh://root@127.0.0.1:$SSHD_PORT$DST
        b init -r "$DST"

        make_tree "$T/src"
        run b backup --path "$T/src" -n data
        [ "$status" -eq 0 ]
        id=$(last_line)

        sshopts=(-i "$SSHD_USER_KEY" --known-hosts "$T/known_hosts" --remote-berth "$BERTH")
        run --separate-stderr b copy data --to "$URL" "${sshopts[@]}" --json
        echo "$output $stderr"
        [ "$status" -eq 0 ]
        [ "$(json_get '["snapshots_copied"]' <<<"$output")" -eq 1 ]
        cmp "$BERTH_REPO/snapshots/$id" "$DST/snapshots/$id"

        # the far side indexed it in its own catalog
        run b -r "$DST" snapshots
        [[ "$output" == *"${id:0:12}"* ]]
        run b -r "$DST" restore "$id" --target "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
        run python3 "$TREECMP" "$T/src" "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
        run b -r "$URL" "${sshopts[@]}" check --read-data
        echo "$output"
        [ "$status" -eq 0 ]

        size1=$(dst_bytes)
        run --separate-stderr b copy data --to "$URL" "${sshopts[@]}" --json
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(json_get '["bytes_sent"]' <<<"$output")" -eq 0 ]
        [ "$(json_get '["snapshots_present"]' <<<"$output")" -eq 1 ]
        [ "$(dst_bytes)" -eq "$size1" ]

        # and back: from the ssh:// repository into a new local one
        run --separate-stderr b -r "$URL" "${sshopts[@]}" copy data --to "$T/back" --json
        echo "$output $stderr"
        [ "$status" -eq 0 ]
        [ "$(json_get '["snapshots_copied"]' <<<"$output")" -eq 1 ]
        cmp "$BERTH_REPO/snapshots/$id" "$T/back/snapshots/$id"
        run b -r "$T/back" restore "$id" --target "$T/out2"
        [ "$status" -eq 0 ]
        run python3 "$TREECMP" "$T/src" "$T/out2"
        echo "$output"
        [ "$status" -eq 0 ]
}

@test "copy: a damaged chunk in the source fails the copy, the destination gets no snapshot; repaired, a rerun sends only the rest" {
        mkdir "$T/ok" "$T/src"
        echo fine > "$T/ok/fine"
        head -c 8000000 /dev/urandom > "$T/src/victim"
        echo fine > "$T/src/fine"
        # small packs in the destination: chunks before the damaged one are in finished packs
        b init -r "$DST" --pack-size 1M
        b -r "$DST" backup --path "$T/ok" -n ok >/dev/null
        run b backup --path "$T/src" -n c
        [ "$status" -eq 0 ]
        id=$(last_line)
        pack=$(find "$BERTH_REPO/packs" -type f | head -n 1)
        cp "$pack" "$T/pack.good"
        # flip bytes late in the pack: inside the victim's chunks, after several
        # destination packs' worth of them
        printf 'GARBAGE!' | dd of="$pack" bs=1 seek=6500000 conv=notrunc 2>/dev/null

        run b copy c --to "$DST"
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"cannot copy snapshot ${id:0:12}"* ]]
        [[ "$output" == *"damaged"* ]]
        [ ! -e "$DST/snapshots/$id" ]
        run b -r "$DST" snapshots
        [ "$status" -eq 0 ]
        [[ "$output" != *"${id:0:12}"* ]]
        run b -r "$DST" check --read-data
        echo "$output"
        [ "$status" -eq 0 ]

        # the source repaired: the rerun sends only what had not arrived
        cat "$T/pack.good" > "$pack"
        run --separate-stderr b copy c --to "$DST" --json
        echo "$output $stderr"
        [ "$status" -eq 0 ]
        sent=$(json_get '["bytes_sent"]' <<<"$output")
        skipped=$(json_get '["bytes_skipped"]' <<<"$output")
        echo "rerun after the failure: $sent bytes sent, $skipped skipped" >&3
        [ "$skipped" -gt 3000000 ]
        [ "$sent" -lt 5000000 ]
        run b -r "$DST" restore c --target "$T/out"
        [ "$status" -eq 0 ]
        cmp "$T/src/victim" "$T/out/victim"
        run b -r "$DST" check --read-data
        echo "$output"
        [ "$status" -eq 0 ]
}
