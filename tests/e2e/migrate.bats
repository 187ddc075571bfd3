#!/usr/bin/env bats
# migrate.bats — berth migrate VOLUME HOST: back up here, copy over SSH (a
# real sshd on loopback, see sshd.bash), restore on the far side.  A second
# private dockerd stands for the other host: the far side's berth is a
# wrapper that points DOCKER_HOST at it.

bats_require_minimum_version 1.5.0

load twohost

@test "migrate: a volume lands identical on the other Docker host; its container runs on; a repeat sends little" {
        make_volume mvol mctr
        run --separate-stderr mb mvol "$SSHD_DEST" --json
        echo "$output"; echo "$stderr"
        [ "$status" -eq 0 ]
        [ "$(json_get '["repo_created"]' <<<"$output")" = True ]
        [ "$(json_get '["quiesced"]' <<<"$output")" = True ]
        [ "$(json_get '["quiesce_window_ns"]' <<<"$output")" -gt 0 ]
        [ "$(json_get '["volume_bytes"]' <<<"$output")" -gt 3000000 ]
        [ "$(json_get '["bytes_sent"]' <<<"$output")" -gt 1000000 ]
        id=$(json_get '["remote_snapshot"]' <<<"$output")
        [ "$(json_get '["snapshot"]' <<<"$output")" = "$id" ]
        # the far side verified the restored tree against the snapshot
        [ "$(json_get '["restore"]["verified"]' <<<"$output")" = True ]
        [ -e "$FAR_REPO/snapshots/$id" ]
        run python3 "$TREECMP" "$(mountpoint_of mvol)" "$(far_mountpoint mvol)"
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(state mctr)" = running ]
        # the source was only read
        [ "$(docker volume ls -q | grep -c '^mvol$')" -eq 1 ]

        # a small change; again, replacing the far volume: only a little is sent
        printf 'CHANGED' | dd of="$(mountpoint_of mvol)/rand.bin" bs=1 seek=1500000 conv=notrunc 2>/dev/null
        run --separate-stderr mb mvol "$SSHD_DEST" --force --live --json
        echo "$output"; echo "$stderr"
        [ "$status" -eq 0 ]
        sent=$(json_get '["bytes_sent"]' <<<"$output")
        echo "# repeat migration: $sent bytes sent, quiesce window $(json_get '["quiesce_window_ns"]' <<<"$output") ns" >&3
        [ "$(json_get '["repo_created"]' <<<"$output")" = False ]
        [ "$(json_get '["two_phase"]' <<<"$output")" = True ]
        [ "$sent" -gt 0 ]
        [ "$sent" -lt 200000 ]
        run python3 "$TREECMP" "$(mountpoint_of mvol)" "$(far_mountpoint mvol)"
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(state mctr)" = running ]
}

@test "migrate: an existing target volume is refused without --force; --as NAME" {
        make_volume avol actr
        far volume create avol > /dev/null
        far run --rm -v avol:/data berth-test:latest sh -c 'echo keep > /data/mine'
        run mb avol "$SSHD_DEST"
        echo "$output"
        [ "$status" -ne 0 ]
        [[ "$output" == *"--force"* ]]
        # the far volume is untouched, the source container runs
        [ "$(cat "$(far_mountpoint avol)/mine")" = keep ]
        [ "$(state actr)" = running ]

        run mb avol "$SSHD_DEST" --as avol-new
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"migrated 'avol'"*"as 'avol-new'"* ]]
        [[ "$output" == *"quiesce window"* ]]
        run python3 "$TREECMP" "$(mountpoint_of avol)" "$(far_mountpoint avol-new)"
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(cat "$(far_mountpoint avol)/mine")" = keep ]
}

@test "migrate: an unknown host key is refused before anything is read or sent" {
        make_volume uvol uctr
        : > "$KH"
        run mb uvol "$SSHD_DEST"
        echo "$output"
        [ "$status" -ne 0 ]
        [[ "$output" == *"SHA256:"* ]]
        [[ "$output" == *"--accept-new-host-key"* ]]
        [ ! -e "$FAR_REPO" ]
        [ ! -e "$BERTH_REPO" ]
        ! far volume inspect uvol > /dev/null 2>&1
        [ "$(state uctr)" = running ]
}

@test "migrate: bad command lines" {
        run timeout -k 5 30 "$BERTH" migrate onlyvolume
        [ "$status" -eq 2 ]
        run timeout -k 5 30 "$BERTH" migrate v host --remote-repo relative/path
        [ "$status" -eq 2 ]
        run timeout -k 5 30 "$BERTH" migrate --help
        [ "$status" -eq 0 ]
        [[ "$output" == *"--remote-repo"* ]]
}

@test "migrate: killed (-9) part-way through the copy, a rerun resumes: sends less than the volume, lands identical" {
        docker volume create kvol > /dev/null
        mp=$(mountpoint_of kvol)
        mkdir -p "$mp/d"
        for i in 1 2 3 4 5; do head -c 30000000 /dev/urandom > "$mp/d/r$i.bin"; done
        seq 1 100000 > "$mp/seq.txt"
        docker run -d --name kctr -l berth.quiesce=pause -v kvol:/data berth-test:latest idle > /dev/null
        wait_state kctr running
        size=$(du -sb "$mp" | cut -f1)

        # not through mb: $! must be timeout's pid, berth its only child
        timeout -k 5 180 "$BERTH" migrate -i "$SSHD_USER_KEY" --known-hosts "$KH" --remote-berth "$T/far-berth" \
                --remote-repo "$FAR_REPO" kvol "$SSHD_DEST" > "$T/first.log" 2>&1 &
        pid=$!
        killed=
        for _ in $(seq 1 3000); do
                kill -0 "$pid" 2>/dev/null || break
                have=$(du -sb "$FAR_REPO/packs" 2>/dev/null | cut -f1)
                if [ "${have:-0}" -gt 20000000 ]; then
                        # berth itself (timeout's child), then timeout
                        pkill -9 -P "$pid" 2>/dev/null || true
                        kill -9 "$pid" 2>/dev/null || true
                        killed=$have
                        break
                fi
                sleep 0.05
        done
        wait "$pid" 2>/dev/null || true
        cat "$T/first.log"
        [[ "$(cat "$T/first.log")" != *migrated* ]]
        echo "# killed with $killed bytes of packs on the far side" >&3
        [ -n "$killed" ]
        [ "$killed" -lt "$size" ]
        ! far volume inspect kvol > /dev/null 2>&1 || [ -z "$(ls -A "$(far_mountpoint kvol)")" ]

        # the far serve notices the dropped connection a moment later and
        # lets go of its lock: wait for that, not fail on it
        BERTH_LOCK_WAIT=30 run --separate-stderr mb kvol "$SSHD_DEST" --json
        echo "$output"; echo "$stderr"
        [ "$status" -eq 0 ]
        sent=$(json_get '["bytes_sent"]' <<<"$output")
        echo "# rerun sent $sent of $size bytes" >&3
        [ "$sent" -lt $((size - killed / 2)) ]
        run python3 "$TREECMP" "$mp" "$(far_mountpoint kvol)"
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(state kctr)" = running ]
}
