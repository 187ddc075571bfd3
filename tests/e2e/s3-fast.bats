#!/usr/bin/env bats
# s3-fast.bats — reading packs from S3 through the window cache
# (transport/window.c, transport/backend-s3.c): windows fetched once for
# all the readers that want them, read ahead along a pack, and what a
# reader sees when the gateway goes away mid-restore.  Against a real Ceph
# RADOS Gateway started once for the file (rgw.bash).

load lib
load rgw

bats_require_minimum_version 1.5.0

setup_file() {
        rgw_file_up
}

setup() {
        rgw_test_up f r
        cd "$T"
}

teardown() {
        local p
        for p in ${BG_PIDS:-}; do
                kill "$p" 2>/dev/null || true
                wait "$p" 2>/dev/null || true
        done
        BG_PIDS=
        [ -z "${T:-}" ] || rm -rf "$T"
}

teardown_file() {
        rgw_file_down
}

b() { timeout -k 5 180 "$BERTH" "$@"; }

# window_stats: "FETCHED MISSED AHEAD USED" from the s3 backend's debug line in $output
window_stats() {
        printf '%s\n' "$output" |
                sed -n 's/.* ranged reads, \([0-9]*\) windows fetched (\([0-9]*\) missed, \([0-9]*\) read ahead: \([0-9]*\) used.*/\1 \2 \3 \4/p' |
                tail -n 1
}

@test "s3-fast: restores needing many windows of several packs at once, in and out of order, are byte-identical" {
        b init
        mkdir -p "$T/src"
        # 40 MB of random bytes: three packs of many windows, records
        # crossing window boundaries
        head -c 40000000 /dev/urandom > "$T/src/a"
        # the same bytes in 1 MiB blocks, backwards and interleaved, plus
        # text: its chunks are a's, asked for out of pack order
        python3 - "$T/src/a" "$T/src/b" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
blocks = [d[i:i + (1 << 20)] for i in range(0, len(d), 1 << 20)]
order = blocks[::-2] + blocks[::2]
with open(sys.argv[2], "wb") as f:
    for i, blk in enumerate(order):
        f.write(blk)
        f.write(b"line %d of text between the blocks\n" % i * 50)
PY
        for i in $(seq 1 40); do head -c $((i * 7919)) "$T/src/a" > "$T/src/small$i"; done
        b backup --path "$T/src" --name data

        # a new host: every read goes to the gateway
        export BERTH_CACHE_DIR=$T/cacheB
        run --separate-stderr b -v -v restore data --target "$T/out"
        [ "$status" -eq 0 ]
        diff -r "$T/src" "$T/out"
        output=$stderr
        read -r fetched missed ahead used <<< "$(window_stats)"
        echo "# restore: $fetched windows fetched, $missed missed, $ahead read ahead, $used of them used" >&3
        [ -n "$fetched" ]
        # read ahead along the packs, and most windows did not keep a reader waiting
        [ "$ahead" -gt 0 ]
        [ "$used" -gt 0 ]
        [ "$missed" -lt "$fetched" ]

        run --separate-stderr b -v -v check --read-data
        [ "$status" -eq 0 ]
        output=$stderr
        read -r fetched missed ahead used <<< "$(window_stats)"
        echo "# check --read-data: $fetched windows fetched, $missed missed, $ahead read ahead, $used used" >&3
        [ "$ahead" -gt 0 ]
        [ "$used" -gt 0 ]
        # every pack read front to back: one miss per pack or so, and
        # no window fetched twice (about 45 MB of packs in 2 MiB windows,
        # and the ones read ahead past a pack's end cost nothing)
        [ "$missed" -lt 12 ]
        [ "$fetched" -le 40 ]
}

@test "s3-fast: the gateway killed mid-restore: a clear error and exit 1, no hang, nothing at the target" {
        b init
        mkdir -p "$T/src"
        head -c 120000000 /dev/urandom > "$T/src/big"
        b backup --path "$T/src" --name big
        export BERTH_CACHE_DIR=$T/cacheB
        b snapshots > /dev/null # the new host's cache, before the gateway goes

        timeout -k 5 120 "$BERTH" restore big --target "$T/out" > "$T/r.out" 2>&1 &
        pid=$!
        BG_PIDS=$pid
        # once it is writing: about 10 MB in the staging directory
        for _ in $(seq 1 600); do
                [ "$(du -sk "$T" --exclude=src --exclude=cacheA --exclude=cacheB | cut -f1)" -lt 10000 ] || break
                sleep 0.05
        done
        rgw_stop_pid "$RGW_PID"
        start=$(date +%s)
        rc=0
        wait $pid || rc=$?
        BG_PIDS=
        took=$(($(date +%s) - start))
        echo "# restore: exit $rc after $took s more: $(tail -n 1 "$T/r.out")" >&3
        rgw_start_gw
        echo "$RGW_PID" > "$RGW_TOP/rgw.pid"
        [ "$rc" -eq 1 ]
        [ "$took" -lt 60 ]
        [ "$(wc -l < "$T/r.out")" -le 2 ]
        grep -q "cannot read pack\|cannot reach" "$T/r.out"
        grep -q "Connection refused\|cannot reach\|connect" "$T/r.out"
        [ ! -e "$T/out/big" ]

        # back: the restore completes
        run b restore big --target "$T/out"
        [ "$status" -eq 0 ]
        cmp "$T/src/big" "$T/out/big"
}
