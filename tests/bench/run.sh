#!/bin/sh
# run.sh — make bench: install the peers and PostgreSQL, then bench.py.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
missing=""
for p in restic borgbackup postgresql rsync time openssl zstd; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
        echo "bench: installing$missing"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing > /dev/null
fi
args=""
[ "${QUICK:-}" = 1 ] && args="--quick"
exec python3 "$here/bench.py" $args "$@"
