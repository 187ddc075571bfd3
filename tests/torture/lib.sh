# shellcheck shell=bash disable=SC2034
# lib.sh — shared helpers of crash-remote.sh, restore-volume.sh and load.sh
# (source it).  Needs BERTH; sets HERE, TREECMP, SEED (TORTURE_SEED) and
# RANDOM from it; W is the work directory (made by tw_init).
#
# A private dockerd (tests/e2e/docker.bash) and sshd (tests/e2e/sshd.bash)
# are started by the caller through tw_docker_up / sshd_up; tw_cleanup
# stops whatever was started, by pid.
: "${BERTH:?set BERTH to the berth binary}"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TREECMP="$HERE/../e2e/treecmp.py"
SEED=${TORTURE_SEED:-$(( $(date +%s) % 100000 ))}
RANDOM=$SEED
TIMEOUT=${TORTURE_TIMEOUT:-300}
# shellcheck source=../e2e/docker.bash
. "$HERE/../e2e/docker.bash"
# shellcheck source=../e2e/sshd.bash
. "$HERE/../e2e/sshd.bash"

# tw_init NAME: the work directory, a repository in it, no outside settings
tw_init() {
        W=$(mktemp -d "${TMPDIR:-/tmp}/berth-torture-$1.XXXXXX")
        LOG="$W/log"
        export BERTH_REPO="$W/repo" BERTH_CONFIG=/dev/null BERTH_LOG_LEVEL=warning
        export BERTH_CACHE_DIR="$W/cache" HOME="$W/home"
        mkdir -p "$HOME"
        unset BERTH_LEVEL BERTH_LOCK_WAIT BERTH_UNCHANGED SSH_AUTH_SOCK BERTH_SSH_IDENTITY BERTH_REMOTE_BERTH
        export TW_TAG=$W
        DOCKERS=()
        trap tw_cleanup EXIT
}

b() { timeout -k 5 "$TIMEOUT" "$BERTH" "$@"; }

# listed [REPO]: snapshot ids, oldest first
listed() {
        # (sed, not python: a loaded machine starts python slowly; the
        # top-level objects' "id" is indented by exactly four spaces)
        "$BERTH" ${1:+-r "$1"} --json snapshots 2>/dev/null | sed -n 's/^    "id": *"\([0-9a-f]*\)",*$/\1/p'
}

# sleep_ms N
sleep_ms() { sleep "$(printf '%d.%03d' $(( $1 / 1000 )) $(( $1 % 1000 )))"; }
now_ms() { date +%s%3N; }
# rand_upto N: 0..N-1 (30 bits of RANDOM)
rand_upto() { echo $(( (RANDOM * 32768 + RANDOM) % $1 )); }

# tw_docker_up: one more private dockerd; its DK and DOCKER_HOST are exported
tw_docker_up() {
        docker_up || return 1
        DOCKERS+=("$DK")
}

tw_cleanup() {
        local dk
        [ -n "${SSHD_PID:-}" ] && sshd_down
        for dk in "${DOCKERS[@]}"; do DK=$dk DOCKER_HOST="unix://$dk/sock" docker_down; done
        DOCKERS=()
        if [ "${TW_KEEP:-0}" = 1 ]; then
                echo "kept $W (log: $LOG)"
        else
                chattr -R -i -a "$W" 2>/dev/null
                rm -rf "$W"
        fi
}

# tw_fail WHAT: records one failure (with the seed) and prints it
TW_FAILURES=0
tw_fail() {
        TW_FAILURES=$(( TW_FAILURES + 1 ))
        TW_KEEP=1
        echo "FAIL (TORTURE_SEED=$SEED): $*"
}

# spinning: pids of live berth processes (this BERTH binary) started by this
# run (TW_TAG in their environment) — what a killed or failed run left behind
spinning() {
        local p exe out="" me
        me=$(readlink -f "$BERTH")
        for p in /proc/[0-9]*; do
                exe=$(readlink "$p/exe" 2>/dev/null) || continue
                [ "$exe" = "$me" ] || continue
                tr '\0' '\n' 2>/dev/null < "$p/environ" | grep -qxF -- "TW_TAG=$TW_TAG" || continue
                out="$out ${p#/proc/}"
        done
        echo "${out# }"
}

# spinning_wait SECONDS: waits until nothing is spinning; prints what still is
spinning_wait() {
        local i s
        for i in $(seq 1 $(( $1 * 5 ))); do
                s=$(spinning); [ -z "$s" ] && return 0
                sleep 0.2
        done
        echo "$s"
}

# cstate NAME: a container's status (running, paused, exited, ...)
cstate() { docker inspect -f '{{.State.Status}}' "$1" 2>/dev/null; }
