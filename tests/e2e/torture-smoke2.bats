#!/usr/bin/env bats
# torture-smoke2.bats — a few fixed-seed trials of tests/torture/restore-volume.sh
# (restore --to-volume --force under system-call faults and kill -9: the
# volume is old or new, never a mix; its container runs again) and of
# tests/torture/crash-remote.sh (kill -9 of migrate, both ends, and of the
# agent mid-job).  `make torture` runs them in full.

load lib

setup_file() {
        : "${FAULTFS:=$(cd "$(dirname "$BERTH")" && pwd)/tests/faultfs.so}"
        export FAULTFS
}

@test "torture smoke: restore --to-volume --force under faults and kill -9 leaves the old contents or the snapshot" {
        command -v dockerd > /dev/null || skip "dockerd is not installed"
        run env TMPDIR="$T" TORTURE_SEED=7 RV_KILLS=1 RV_CALLS="write rename" NLINEAR=1 NMAX=2 RV_MB=1 timeout -k 5 300 \
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
