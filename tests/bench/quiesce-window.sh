#!/bin/bash
# quiesce-window.sh — how long an application is quiesced, two-phase or not
# (make bench-window).  A 1 GiB volume of 1,000 files used by a container;
# 1% of the files change between backups.  Prints the quiesce window of a
# first and of a later backup, with and without the two-phase copy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${BERTH:?set BERTH}"
. "$here/../e2e/docker.bash"
work=$(mktemp -d /var/tmp/berth-window.XXXXXX)
cleanup() { docker_down; rm -rf "$work"; }
trap cleanup EXIT
docker_up
export BERTH_CONFIG=/dev/null

window() { # repo, then backup args; prints the window in seconds
        BERTH_REPO=$1 "$BERTH" --json backup "${@:2}" | python3 -c 'import json,sys; print("%.3f" % (json.load(sys.stdin)["quiesce_window_ns"] / 1e9))'
}

docker volume create win > /dev/null
mp=$(docker volume inspect -f '{{.Mountpoint}}' win)
for i in $(seq -w 1 1000); do
        openssl enc -aes-128-ctr -K 000102030405060708090a0b0c0d0e0f -iv "$i" -nosalt < /dev/zero 2>/dev/null |
                head -c 1048576 > "$mp/f$i"
done
touch -d '1 hour ago' "$mp"/f*
docker run -d --name app -v win:/data berth-test:latest idle > /dev/null
change() { # 1% of the files
        for i in $(shuf -i 1-1000 -n 10 --random-source=<(yes)); do
                printf -v n '%04d' "$i"
                head -c 65536 /dev/urandom | dd of="$mp/f$n" bs=65536 seek=3 conv=notrunc 2> /dev/null
        done
}

for mode in --two-phase --no-two-phase; do
        repo="$work/repo$mode"
        first=$(window "$repo" win $mode)
        change
        later=$(window "$repo" win $mode)
        printf '%-15s first backup: window %6ss   later backup (1%% changed): window %6ss\n' "$mode" "$first" "$later"
done
