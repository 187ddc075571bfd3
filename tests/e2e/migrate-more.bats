#!/usr/bin/env bats
# migrate-more.bats — berth restore --host and berth migrate --container, with
# the harness of migrate.bats: a real sshd on loopback (sshd.bash) and a
# second private dockerd standing for the other host (the far berth is a
# wrapper pointing DOCKER_HOST at it).

bats_require_minimum_version 1.5.0

load twohost

# restore --host with the SSH options of this test
rh() {
        timeout -k 5 180 "$BERTH" restore -i "$SSHD_USER_KEY" --known-hosts "$KH" --remote-berth "$T/far-berth" \
                --remote-repo "$FAR_REPO" "$@"
}

@test "restore --host: a local snapshot lands identical in a volume on the other Docker host" {
        make_volume rvol rctr
        run timeout -k 5 120 "$BERTH" backup rvol
        echo "$output"
        [ "$status" -eq 0 ]
        run --separate-stderr rh rvol@latest --host "$SSHD_DEST" --to-volume rvol-dr --json
        echo "$output"; echo "$stderr"
        [ "$status" -eq 0 ]
        [ "$(json_get '["repo_created"]' <<<"$output")" = True ]
        [ "$(json_get '["bytes_sent"]' <<<"$output")" -gt 1000000 ]
        [ "$(json_get '["volume"]' <<<"$output")" = rvol-dr ]
        id=$(json_get '["remote_snapshot"]' <<<"$output")
        [ -e "$FAR_REPO/snapshots/$id" ]
        [ "$(json_get '["restore"]["volume"]' <<<"$output")" = rvol-dr ]
        run python3 "$TREECMP" "$(mountpoint_of rvol)" "$(far_mountpoint rvol-dr)"
        echo "$output"
        [ "$status" -eq 0 ]

        # again into the same, now non-empty volume: refused without --force, nothing resent
        run rh rvol --host "$SSHD_DEST" --to-volume rvol-dr
        echo "$output"
        [ "$status" -ne 0 ]
        [[ "$output" == *"--force"* ]]
        run --separate-stderr rh rvol --host "$SSHD_DEST" --to-volume rvol-dr --force --json
        echo "$output"; echo "$stderr"
        [ "$status" -eq 0 ]
        [ "$(json_get '["bytes_sent"]' <<<"$output")" -eq 0 ]
        run python3 "$TREECMP" "$(mountpoint_of rvol)" "$(far_mountpoint rvol-dr)"
        [ "$status" -eq 0 ]
}

@test "restore --host: without --to-volume, or with --target, is a usage error" {
        run timeout -k 5 30 "$BERTH" restore x --host "$SSHD_DEST"
        echo "$output"
        [ "$status" -eq 2 ]
        [[ "$output" == *"--to-volume"* ]]
        run timeout -k 5 30 "$BERTH" restore x --host "$SSHD_DEST" --to-volume v --target "$T/t"
        echo "$output"
        [ "$status" -eq 2 ]
        run timeout -k 5 30 "$BERTH" restore x --target "$T/t" --remote-repo /srv
        echo "$output"
        [ "$status" -eq 2 ]
        [ ! -e "$FAR_REPO" ]
}

@test "migrate --container: both named volumes land identical, one quiesce window, the container runs on" {
        docker volume create cva > /dev/null
        docker volume create cvb > /dev/null
        make_tree "$T/tree"
        cp -a "$T/tree/." "$(mountpoint_of cva)/"
        mkdir -p "$(mountpoint_of cvb)/sub"
        head -c 300000 /dev/urandom > "$(mountpoint_of cvb)/sub/b.bin"
        echo hello > "$(mountpoint_of cvb)/hello.txt"
        docker run -d --name cctr -l berth.quiesce=pause -v cva:/a -v cvb:/b berth-test:latest idle > /dev/null
        wait_state cctr running
        run --separate-stderr mb --container cctr "$SSHD_DEST" --json
        echo "$output"; echo "$stderr"
        [ "$status" -eq 0 ]
        [ "$(json_get '["container"]' <<<"$output")" = cctr ]
        [ "$(json_get '["quiesced"]' <<<"$output")" = True ]
        [ "$(json_get '["quiesce_window_ns"]' <<<"$output")" -gt 0 ]
        [ "$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)["volumes"]))' <<<"$output")" -eq 2 ]
        a=$(json_get '["volumes"][0]["bytes_sent"]' <<<"$output")
        b=$(json_get '["volumes"][1]["bytes_sent"]' <<<"$output")
        [ "$(json_get '["bytes_sent"]' <<<"$output")" -eq $((a + b)) ]
        for v in cva cvb; do
                run python3 "$TREECMP" "$(mountpoint_of $v)" "$(far_mountpoint $v)"
                echo "$output"
                [ "$status" -eq 0 ]
        done
        [ "$(state cctr)" = running ]

        # text output: per volume and totals; the far volumes exist now, so --force
        run mb --container cctr "$SSHD_DEST"
        echo "$output"
        [ "$status" -ne 0 ]
        [[ "$output" == *"--force"* ]]
        [ "$(state cctr)" = running ]
        run mb --container cctr "$SSHD_DEST" --force --live
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"migrated 'cva'"* ]]
        [[ "$output" == *"migrated 'cvb'"* ]]
        [[ "$output" == *"migrated 2 volumes of container 'cctr'"*"quiesce window"* ]]
        [ "$(state cctr)" = running ]
}

@test "migrate --container: --as is a usage error" {
        run timeout -k 5 30 "$BERTH" migrate --container c "$SSHD_DEST" --as x
        echo "$output"
        [ "$status" -eq 2 ]
        run timeout -k 5 30 "$BERTH" migrate --container c vol "$SSHD_DEST"
        echo "$output"
        [ "$status" -eq 2 ]
}
