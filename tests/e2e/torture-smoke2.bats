#!/usr/bin/env bats
# torture-smoke2.bats — a few fixed-seed trials of tests/torture/restore-volume.sh
# (restore --to-volume --force under system-call faults and kill -9: the
# volume is old or new, never a mix; its container runs again) and of
# tests/torture/crash-remote.sh (kill -9 of migrate, both ends, and of the
# agent mid-job).  `make torture` runs them in full.

load lib
load docker

setup_file() {
        : "${FAULTFS:=$(cd "$(dirname "$BERTH")" && pwd)/tests/faultfs.so}"
        export FAULTFS
        command -v dockerd > /dev/null || return 0
        docker_up
}

teardown_file() {
        docker_down
}

@test "restore --to-volume: the staging directory of a killed restore into a new volume does not block the rerun" {
        command -v dockerd > /dev/null || skip "dockerd is not installed"
        berth init > /dev/null
        mkdir -p "$T/src"
        head -c 300000 /dev/urandom > "$T/src/a"
        echo b > "$T/src/b"
        id=$(berth backup --path "$T/src" --name s | tail -n 1)
        # what a restore killed by kill -9 leaves: the volume, with its staging directory (pid gone)
        docker volume create kv > /dev/null
        mp=$(mountpoint_of kv)
        mkdir -p "$mp/.berth-restore-999999999-0123456789ab/half"
        echo partial > "$mp/.berth-restore-999999999-0123456789ab/half/a"
        run timeout -k 5 60 "$BERTH" restore "$id" --to-volume kv
        echo "$output"
        [ "$status" -eq 0 ]
        python3 "$TREECMP" --no-root-times "$T/src" "$mp"
        # a directory of that name whose process lives is someone's: not empty
        docker volume create kv2 > /dev/null
        mp2=$(mountpoint_of kv2)
        mkdir "$mp2/.berth-restore-$$-0123456789ab"
        run timeout -k 5 60 "$BERTH" restore "$id" --to-volume kv2
        [ "$status" -ne 0 ]
        [[ "$output" == *"is not empty; pass --force"* ]]
        [ -d "$mp2/.berth-restore-$$-0123456789ab" ]
        docker volume rm -f kv kv2 > /dev/null
}

@test "restore --to-volume into a new volume, killed at every rename in turn and rerun: the volume is empty or the whole snapshot, never part of it" {
        command -v dockerd > /dev/null || skip "dockerd is not installed"
        [ -f "$FAULTFS" ] || skip "no faultfs shim at $FAULTFS"
        berth init > /dev/null
        mkdir -p "$T/src/d/e"
        for f in a b c; do echo "$f" > "$T/src/$f"; done
        head -c 200000 /dev/urandom > "$T/src/d/big"
        echo deep > "$T/src/d/e/f"
        id=$(berth backup --path "$T/src" --name s | tail -n 1)
        docker volume create probe > /dev/null
        vols=$(dirname "$(dirname "$(mountpoint_of probe)")")
        docker volume rm probe > /dev/null
        kills=0 done=0
        for n in $(seq 1 60); do
                # FAULT_ERRNO=KILL: SIGKILL at the nth rename under the volumes
                run env LD_PRELOAD="$FAULTFS" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
                        FAULT_CALLS=rename FAULT_ERRNO=KILL FAULT_AT=$n FAULT_PATH="$vols" \
                        timeout -k 5 60 "$BERTH" restore "$id" --to-volume nv
                mp=$(mountpoint_of nv)
                if [ "$status" -eq 0 ]; then
                        python3 "$TREECMP" --no-root-times "$T/src" "$mp"
                        done=1
                        break
                fi
                [ "$status" -eq 137 ] || { echo "run $n: exit $status: $output"; false; }
                kills=$((kills + 1))
                left=$(ls -A "$mp" | grep -v '^\.berth-restore-' || true)
                if [ -n "$left" ]; then
                        echo "killed at rename $n, the volume holds: $left"
                        python3 "$TREECMP" --no-root-times "$T/src" "$mp"
                fi
        done
        echo "# $kills kill(s), one at each rename, then a complete run" >&3
        # the killed runs' staging directories next to the volume's directory went with the rerun
        [ -z "$(ls -A "$(dirname "$mp")" | grep '^\.berth-restore-' || true)" ]
        [ "$done" -eq 1 ]
        [ "$kills" -ge 1 ]
        docker volume rm -f nv > /dev/null
}

@test "torture smoke: restore --to-volume --force under faults and kill -9 leaves the old contents or the snapshot" {
        command -v dockerd > /dev/null || skip "dockerd is not installed"
        run env TMPDIR="$T" TORTURE_SEED=7 RV_KILLS=1 RV_CALLS=rename NLINEAR=1 NMAX=2 RV_MB=1 timeout -k 5 300 \
                "$BATS_TEST_DIRNAME/../torture/restore-volume.sh"
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"kill -9 "* ]]
        [[ "$output" != *FAIL* ]]
}

@test "torture smoke: kill -9 of migrate (client, far side) and of the agent mid-job" {
        command -v dockerd > /dev/null || skip "dockerd is not installed"
        [ -x /usr/sbin/sshd ] || skip "openssh-server is not installed"
        run env TMPDIR="$T" TORTURE_SEED=11 MIGRATE_TRIALS=1 AGENT_TRIALS=1 CR_MB=2 timeout -k 5 300 \
                "$BATS_TEST_DIRNAME/../torture/crash-remote.sh"
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"agent+job"* ]]
        [[ "$output" != *FAIL* ]]
}
