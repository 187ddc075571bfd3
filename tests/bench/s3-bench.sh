#!/bin/bash
# s3-bench.sh — backup and restore against a real Ceph RADOS Gateway
# (make bench-s3).
#
# Starts the one-node Ceph cluster of tests/e2e/rgw.bash, makes SIZE MiB of
# data (default 512; QUICK=1: 64) in many files, half random and half
# log-like text, and times, each once after a warm-up of the page cache:
#   berth backup into a local directory, then restore from it;
#   berth backup into s3://, then restore from it with an empty cache (a new
#   host), and with the backup host's cache (as restic's restore has its own);
#   restic backup into the same gateway (restic -r s3:), then restore;
#   two berth hosts backing up into one bucket at the same time (two caches,
#   two --host names), then a third backing up the first one's data: what
#   the third adds (cross-host dedup).
# Prints wall seconds, MiB/s, peak RSS, and the ratios s3/local and berth/restic.
# REPEAT=N runs each restore N times (a new target, and for s3 a new host's
# empty cache, each time) and reports the median: on a shared machine one
# run is noisy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${BERTH:?set BERTH}"
BERTH=$(readlink -f "$BERTH")
# shellcheck source=tests/e2e/rgw.bash
. "$here/../e2e/rgw.bash"

size_mib=${SIZE:-512}
[ "${QUICK:-}" = 1 ] && size_mib=${SIZE:-64}
for p in restic time ceph-mon ceph-osd radosgw ceph-common; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && continue
        echo "bench-s3: installing $p"
        timeout -k 5 900 env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" > /dev/null ||
                { timeout -k 5 600 apt-get update -qq &&
                  timeout -k 5 900 env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" > /dev/null; }
done

work=$(mktemp -d /var/tmp/berth-s3-bench.XXXXXX)
cleanup() {
        set +e
        rgw_down > /dev/null 2>&1
        rm -rf "$work"
}
trap cleanup EXIT
rgw_up "$work/ceph" > "$work/rgw.log" 2>&1 || { cat "$work/rgw.log" >&2; exit 1; }
export AWS_ACCESS_KEY_ID=$RGW_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$RGW_SECRET_KEY
rgw_mkbucket bench > /dev/null

src=$work/src
mkdir -p "$src"
python3 - "$src" "$size_mib" <<'PY'
import os, random, sys
root, mib = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
total, i = mib << 20, 0
while total > 0:
    d = os.path.join(root, "d%03d" % (i // 100))
    os.makedirs(d, exist_ok=True)
    n = min(total, rng.choice([4096, 65536, 1 << 20, 4 << 20]))
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        if i % 2:
            f.write(os.urandom(n))
        else:
            line = b"%d INFO request served path=/api/v1/items/%d status=200 ms=%d\n"
            out = bytearray()
            while len(out) < n:
                out += line % (rng.randrange(1 << 40), rng.randrange(100000), rng.randrange(500))
            f.write(out[:n])
    total -= n
    i += 1
PY
cat "$src"/*/* > /dev/null

repeat=${REPEAT:-1}
# run NAME CMD...: times CMD (its output in $work/NAME.out), sets SECS_<NAME> and RSS_<NAME> (KiB)
run() {
        local name=$1
        shift
        /usr/bin/time -f '%e %M' -o "$work/$name.time" timeout -k 5 3600 "$@" > "$work/$name.out" 2>&1 ||
                { echo "bench-s3: $name failed:" >&2; tail -20 "$work/$name.out" >&2; exit 1; }
        read -r s m < "$work/$name.time"
        printf -v "SECS_$name" '%s' "$s"
        printf -v "RSS_$name" '%s' "$m"
}
# run_restore NAME TARGET CMD...: run, REPEAT times, TARGET removed before
# each (CMD may name $n, expanded per run for a fresh cache); the median
# seconds and the largest RSS
run_restore() {
        local name=$1 target=$2 n s m secs=() rss=0
        shift 2
        for n in $(seq 1 "$repeat"); do
                rm -rf "$target" "$work/cache-$name"
                run "$name" "$@"
                s=SECS_$name m=RSS_$name
                secs+=("${!s}")
                [ "${!m}" -le "$rss" ] || rss=${!m}
        done
        printf -v "SECS_$name" '%s' "$(printf '%s\n' "${secs[@]}" | sort -n | sed -n "$(( (repeat + 1) / 2 ))p")"
        printf -v "RSS_$name" '%s' "$rss"
        [ "$repeat" -eq 1 ] || echo "bench-s3: $name: ${secs[*]} s" >&2
}
s3=s3://bench/berth?endpoint=$RGW_ENDPOINT
export BERTH_CONFIG=/dev/null
run local_backup env BERTH_REPO="$work/local" "$BERTH" --no-progress backup --path "$src" --name data
run_restore local_restore "$work/r1" env BERTH_REPO="$work/local" "$BERTH" --no-progress restore data --target "$work/r1"
BERTH_CACHE_DIR=$work/cache0 "$BERTH" -r "$s3" init > /dev/null
run s3_backup env BERTH_CACHE_DIR="$work/cacheA" "$BERTH" -r "$s3" --no-progress backup --path "$src" --name data --host hostA
run_restore s3_restore "$work/r2" env BERTH_CACHE_DIR="$work/cache-s3_restore" "$BERTH" -r "$s3" --no-progress restore data \
        --target "$work/r2"
diff -r "$src" "$work/r2" > /dev/null || { echo "bench-s3: the restore from s3:// differs" >&2; exit 1; }
# the backup host's own cache: like restic's restore below, whose cache its backup filled
run_restore s3_restore_warm "$work/r2" env BERTH_CACHE_DIR="$work/cacheA" "$BERTH" -r "$s3" --no-progress restore data \
        --target "$work/r2"
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$work/restic-cache
restic -q -r "s3:$RGW_ENDPOINT/bench/restic" init > /dev/null
run restic_backup restic -q -r "s3:$RGW_ENDPOINT/bench/restic" backup "$src"
run_restore restic_restore "$work/r3" restic -q -r "s3:$RGW_ENDPOINT/bench/restic" restore latest --target "$work/r3"

# two hosts at once into a fresh prefix (each its own data), then a third
# host backing up the first one's data: what it adds
s3b=s3://bench/fleet?endpoint=$RGW_ENDPOINT
BERTH_CACHE_DIR=$work/cache0 "$BERTH" -r "$s3b" init > /dev/null
cp -a "$src" "$work/src2"
echo "host C's own file" > "$work/src2/extra"
pids=
for h in B C; do
        d=$src
        [ $h = C ] && d=$work/src2
        BERTH_CACHE_DIR=$work/cache$h timeout -k 5 3600 "$BERTH" -r "$s3b" --json --no-progress backup \
                --path "$d" --name data --host host$h > "$work/fleet$h.json" 2> "$work/fleet$h.err" &
        pids="$pids $!"
done
for p in $pids; do wait "$p" || { echo "bench-s3: a concurrent backup failed:" >&2; cat "$work"/fleet?.err >&2; exit 1; }; done
BERTH_CACHE_DIR=$work/cacheD timeout -k 5 3600 "$BERTH" -r "$s3b" --json --no-progress backup \
        --path "$src" --name data --host hostD > "$work/fleetD.json" 2> "$work/fleetD.err"
added() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d=d[0] if isinstance(d,list) else d; print(d.get("bytes_added", 0))' "$1"; }
aB=$(added "$work/fleetB.json")
aC=$(added "$work/fleetC.json")
aD=$(added "$work/fleetD.json")

mibs() { python3 -c "print('%.1f' % ($size_mib / max(float('$1'), 0.001)))"; }
ratio() { python3 -c "print('%.2f' % (float('$1') / max(float('$2'), 0.001)))"; }
printf '\nbench-s3: %d MiB in %d files, one-node Ceph RGW on 127.0.0.1\n' "$size_mib" "$(find "$src" -type f | wc -l)"
printf '%-26s %8s %9s %10s\n' phase seconds MiB/s "peak RSS"
for p in local_backup local_restore s3_backup s3_restore s3_restore_warm restic_backup restic_restore; do
        s=SECS_$p m=RSS_$p
        printf '%-26s %8s %9s %7d MiB\n' "$p" "${!s}" "$(mibs "${!s}")" $(( ${!m} / 1024 ))
done
printf 'berth s3/local: backup %sx, restore %sx\n' "$(ratio "$SECS_s3_backup" "$SECS_local_backup")" \
        "$(ratio "$SECS_s3_restore" "$SECS_local_restore")"
printf 'berth/restic on the same gateway: backup %sx, restore %sx (a new host), %sx (the backup host'"'"'s cache)\n' \
        "$(ratio "$SECS_s3_backup" "$SECS_restic_backup")" "$(ratio "$SECS_s3_restore" "$SECS_restic_restore")" \
        "$(ratio "$SECS_s3_restore_warm" "$SECS_restic_restore")"
printf 'two hosts at once (nearly the same data): host B added %s bytes, host C %s bytes\n' "$aB" "$aC"
printf 'a third host backing up host B'"'"'s data afterwards added %s bytes (%s%% of what B added)\n' \
        "$aD" "$(python3 -c "print('%.2f' % (100*$aD/max($aB,1)))")"
