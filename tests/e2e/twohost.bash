# twohost.bash — the harness of migrate.bats and migrate-more.bats: a real
# sshd on loopback (sshd.bash) and two private dockerds, the second standing
# for the other host (the far side's berth is a wrapper pointing DOCKER_HOST
# at it).  Load it instead of lib/sshd/docker.

load lib
load sshd
load docker

setup_file() {
        command -v dockerd >/dev/null || return 0
        docker_up
        export DK2=$DK DH2=$DOCKER_HOST
        docker_up
        export DK1=$DK DH1=$DOCKER_HOST
}

teardown_file() {
        [ -n "${DK2:-}" ] && DK=$DK2 DOCKER_HOST=$DH2 docker_down
        [ -n "${DK1:-}" ] && DK=$DK1 DOCKER_HOST=$DH1 docker_down
        true
}

setup() {
        command -v /usr/sbin/sshd >/dev/null || skip "openssh-server is not installed"
        command -v dockerd >/dev/null || skip "dockerd is not installed"
        T=$(mktemp -d "${TMPDIR:-/tmp}/berth-test.XXXXXX")
        export HOME=$T/home
        mkdir -p "$HOME"
        unset SSH_AUTH_SOCK SSH_AGENT_PID BERTH_LEVEL BERTH_LOCK_WAIT BERTH_UNCHANGED
        unset BERTH_SSH_IDENTITY BERTH_SSH_KNOWN_HOSTS BERTH_REMOTE_BERTH
        export BERTH_CONFIG=/dev/null BERTH_LOG_LEVEL=notice
        export BERTH_CACHE_DIR=$T/cache BERTH_REPO=$T/repo
        export DK=$DK1 DOCKER_HOST=$DH1
        TREECMP="$BATS_TEST_DIRNAME/treecmp.py"
        KH=$T/known_hosts
        unset SSHD_PORT SSHD_EXTRA
        sshd_up "$T/sshd"
        sshd_known_line ed25519 > "$KH"
        FAR_REPO=$T/far-repo
        # the far side's berth: the same binary, talking to the second dockerd
        printf '#!/bin/sh\nexport DOCKER_HOST=%s BERTH_CONFIG=/dev/null\nexec %s "$@"\n' "$DH2" "$BERTH" > "$T/far-berth"
        chmod 755 "$T/far-berth"
        cd "$T"
}

teardown() {
        sshd_down
        for c in $(docker ps -aq 2>/dev/null); do docker rm -f "$c" > /dev/null 2>&1 || true; done
        if [ -n "${BATS_TEST_COMPLETED:-}" ]; then
                chattr -R -i -a "$T" 2>/dev/null || true
                rm -rf "$T"
        else
                echo "# kept $T for inspection" >&3
                [ ! -e "$T/sshd/sshd.log" ] || sed 's/^/# sshd: /' "$T/sshd/sshd.log" | tail -n 20 >&3
        fi
}

# migrate with the SSH options of this test
mb() {
        timeout -k 5 180 "$BERTH" migrate -i "$SSHD_USER_KEY" --known-hosts "$KH" --remote-berth "$T/far-berth" \
                --remote-repo "$FAR_REPO" "$@"
}
far() { DOCKER_HOST=$DH2 timeout -k 5 60 docker "$@"; }
far_mountpoint() { far volume inspect -f '{{.Mountpoint}}' "$1"; }

# A volume with files, used by a running container that asks to be paused.
make_volume() {
        local vol=$1 ctr=$2
        docker volume create "$vol" > /dev/null
        make_tree "$T/tree"
        cp -a "$T/tree/." "$(mountpoint_of "$vol")/"
        docker run -d --name "$ctr" -l berth.quiesce=pause -v "$vol:/data" berth-test:latest idle > /dev/null
        wait_state "$ctr" running
}
