#!/bin/bash
# valgrind-agent.sh — runs `berth agent` under valgrind against a private
# dockerd for about half a minute: scheduled backups from labels with
# retention, status, run-now, a volume created meanwhile, SIGHUP, SIGTERM.
# The jobs (backup, forget) run the same binary without valgrind
# (BERTH_JOB_EXE).  Exit 0 when valgrind found no error and no definite leak.
# ENCRYPT=1: an encrypted repository (a cheap scrypt, N=2^12), whose key the
# agent opens at start and hands to its jobs.
# Usage: [ENCRYPT=1] tests/tools/valgrind-agent.sh [BERTH]   (root; make valgrind-agent)
set -u
cd "$(dirname "$0")/../.."
B=$(realpath "${1:-build/berth}")
source tests/e2e/docker.bash
T=$(mktemp -d /tmp/berth-vg.XXXXXX)
trap 'docker_down; rm -rf "$T"' EXIT
docker_up || exit 1
mkdir -p "$T/run"
export BERTH_REPO=$T/repo BERTH_RUNTIME_DIR=$T/run BERTH_STATE_DIR=$T/state BERTH_CONFIG=/dev/null BERTH_JOB_EXE=$B
if [ "${ENCRYPT:-}" = 1 ]; then
        echo vg-password > "$T/pw"
        export BERTH_PASSWORD_FILE=$T/pw BERTH_CACHE_DIR=$T/cache
        BERTH_SCRYPT_N_LOG2=12 "$B" init --encrypt > /dev/null
else
        "$B" init > /dev/null
fi
docker volume create --label berth.schedule="every 2s" --label berth.keep="last=2" v1 > /dev/null
docker run -d --name c1 -l berth.quiesce=pause -v v1:/data berth-test:latest idle > /dev/null
docker exec c1 sh -c 'echo hello > /data/a; seq 1 10000 > /data/b'
timeout -k 5 120 valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite -q \
        "$B" agent 2> "$T/agent.log" &
VP=$!
sleep 12
agent=$(pgrep -P $VP)
"$B" status > /dev/null && "$B" --json status > /dev/null && "$B" run-now v1 > /dev/null || echo "status/run-now failed"
docker volume create --label berth.schedule="every 3s" v2 > /dev/null
sleep 10
kill -HUP "$agent"
sleep 4
kill -TERM "$agent"
wait $VP
st=$?
n1=$("$B" --json snapshots v1 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
n2=$("$B" --json snapshots v2 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
state=$(docker inspect -f '{{.State.Status}}' c1)
grep '==[0-9]*==' "$T/agent.log"
held=n/a
[ "${ENCRYPT:-}" != 1 ] || held=yes
[ "${ENCRYPT:-}" != 1 ] || grep -q "opened the key of encrypted repository" "$T/agent.log" || held=no
echo "valgrind-agent${ENCRYPT:+ (encrypted)}: key held $held, agent exit $st, v1 snapshots $n1 (keep last=2), v2 snapshots $n2, container $state"
# keep last=2, plus one when SIGTERM came between a backup and its forget
[ "$held" != no ] && [ "$st" -eq 0 ] && [ "$n1" -le 3 ] && [ "$n1" -ge 1 ] && [ "$n2" -ge 1 ] && [ "$state" = running ]
