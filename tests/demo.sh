#!/bin/bash
# demo.sh — Berth on a machine where no Docker daemon runs (make demo).
#
# Starts a throwaway private dockerd, creates a sample volume with a
# container writing to it, backs it up with quiescing, restores it into a
# new volume, shows the catalog, and removes everything it made.  Root only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${BERTH:=$here/../build/berth}"
[ "$(id -u)" -eq 0 ] || { echo "demo.sh: run as root (it starts a private dockerd)" >&2; exit 1; }
"$here/deps.sh"
# shellcheck source=e2e/docker.bash
. "$here/e2e/docker.bash"

export BERTH_REPO
demo_dir=$(mktemp -d /tmp/berth-demo.XXXXXX)
BERTH_REPO=$demo_dir/repo
cleanup() { docker_down; rm -rf "$demo_dir"; }
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "starting a private Docker daemon (its own data-root and socket)"
docker_up
echo "DOCKER_HOST=$DOCKER_HOST"

step "a volume, and an application writing to it all the time (label berth.quiesce=pause)"
show docker volume create demo-data
show docker run -d --name demo-app --label berth.quiesce=pause \
        --label 'berth.pre=echo "checkpoint at $(date)" > /data/CHECKPOINT' -v demo-data:/data berth-test:latest \
        sh -c 'trap "exit 0" TERM; i=0; while true; do i=$((i+1)); echo "record $i" >> /data/journal; done'
sleep 1

step "berth volumes"
show "$BERTH" volumes

step "berth backup demo-data: first pass live, then paused for the changes only"
show "$BERTH" backup demo-data
echo "demo-app is $(docker inspect -f '{{.State.Status}}' demo-app)"

step "a second backup reads only what changed"
show "$BERTH" backup demo-data

step "restore into a new volume, created like the original"
show "$BERTH" restore demo-data@latest --to-volume demo-restored
mp=$(docker volume inspect -f '{{.Mountpoint}}' demo-restored)
echo "restored journal: $(wc -l < "$mp/journal") records, last: $(tail -n 1 "$mp/journal")"
echo "pre hook left: $(cat "$mp/CHECKPOINT")"

step "the catalog"
show "$BERTH" snapshots
show "$BERTH" ls demo-data --long
show "$BERTH" find 'CHECK*'
show "$BERTH" check --read-data

step "done; removing the daemon, the volumes and the repository"
