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
python3 - "$mp" <<'PY'
import os, random, sys, time
rng = random.Random(5)
old = time.time() - 3600
for i in range(1, 1001):
    p = "%s/f%04d" % (sys.argv[1], i)
    with open(p, "wb") as f:
        f.write(rng.randbytes(1 << 20))
    os.utime(p, (old, old))
PY
docker run -d --name app -v win:/data berth-test:latest idle > /dev/null
change() { # 1% of the files: 64 KiB rewritten in each
        python3 - "$mp" <<'PY'
import os, random, sys
rng = random.Random()
for i in rng.sample(range(1, 1001), 10):
    with open("%s/f%04d" % (sys.argv[1], i), "r+b") as f:
        f.seek(3 << 16)
        f.write(os.urandom(1 << 16))
PY
}

for mode in --two-phase --no-two-phase; do
        repo="$work/repo$mode"
        first=$(window "$repo" win $mode)
        change
        later=$(window "$repo" win $mode)
        printf '%-15s first backup: window %6ss   later backup (1%% changed): window %6ss\n' "$mode" "$first" "$later"
done
