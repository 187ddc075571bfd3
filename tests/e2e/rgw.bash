# rgw.bash — a real Ceph RADOS Gateway on 127.0.0.1 for the S3 tests.
#
# rgw_up DIR    builds a throwaway one-node Ceph cluster under DIR (Debian's
#               ceph-mon, ceph-osd, radosgw): one monitor, one BlueStore OSD
#               on a sparse file, pools of size 1, no mgr, no cephx (every
#               socket is on 127.0.0.1), and a radosgw (beast frontend) on a
#               free port, then an S3 user.  Sets RGW_DIR, RGW_PORT,
#               RGW_ENDPOINT (http://127.0.0.1:PORT), RGW_ACCESS_KEY,
#               RGW_SECRET_KEY, RGW_MON_PID, RGW_OSD_PID, RGW_PID.
#               Takes about 15 s; fails (with the daemons' logs) otherwise.
# rgw_down      stops the daemons by their pids (radosgw, osd, mon).
# rgw_restart_gw  stops the gateway alone and starts it again on its port.
# rgw_curl ARGS...   curl signed with the user's keys (--aws-sigv4).
# rgw_mkbucket NAME  creates a bucket.
# The daemons run in the foreground of background jobs (-f), as root.

rgw_free_port() {
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

rgw_log_tail() {
        local f
        for f in "$RGW_DIR"/log/*.log "$RGW_DIR"/*.out; do
                [ -e "$f" ] || continue
                echo "== $f" >&2
                tail -n 30 "$f" >&2
        done
}

# Waits up to $2 tenths of a second for command $1 to succeed.
rgw_wait() {
        local i
        for i in $(seq 1 "$2"); do
                if eval "$1" >/dev/null 2>&1; then
                        return 0
                fi
                sleep 0.1
        done
        return 1
}

rgw_ceph() {
        timeout -k 5 30 ceph -c "$RGW_DIR/ceph.conf" --connect-timeout 20 "$@"
}

rgw_start_gw() {
        radosgw -f -c "$RGW_DIR/ceph.conf" -n client.rgw >>"$RGW_DIR/rgw.out" 2>&1 &
        RGW_PID=$!
        if ! rgw_wait "curl -s -o /dev/null http://127.0.0.1:$RGW_PORT/" 600; then
                echo "radosgw did not listen on port $RGW_PORT" >&2
                rgw_log_tail
                return 1
        fi
}

rgw_up() {
        RGW_DIR=$1
        mkdir -p "$RGW_DIR/log" "$RGW_DIR/run" "$RGW_DIR/mon.a" "$RGW_DIR/osd.0"
        local mon_port fsid osd_uuid
        mon_port=$(rgw_free_port)
        RGW_PORT=${RGW_PORT:-$(rgw_free_port)}
        RGW_ENDPOINT=http://127.0.0.1:$RGW_PORT
        fsid=$(cat /proc/sys/kernel/random/uuid)
        osd_uuid=$(cat /proc/sys/kernel/random/uuid)
        cat > "$RGW_DIR/ceph.conf" <<CONF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_port]
mon initial members = a
public addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms mon service mode = crc
ms mon cluster mode = crc
ms client mode = crc
ms service mode = crc
ms cluster mode = crc
run dir = $RGW_DIR/run
admin socket = $RGW_DIR/run/\$name.asok
log file = $RGW_DIR/log/\$name.log
pid file = $RGW_DIR/run/\$name.pid
keyring = /dev/null
crash dir = $RGW_DIR/crash
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
mon data avail warn = 2
mon data avail crit = 1
osd crush chooseleaf type = 0
mon osd down out interval = 0
[mon]
mon data = $RGW_DIR/mon.\$id
[osd]
osd data = $RGW_DIR/osd.\$id
osd objectstore = bluestore
bluestore block create = true
bluestore block size = 10737418240
bluestore fsck on mount = false
bluestore cache autotune = false
bluestore cache size = 134217728
osd memory target = 939524096
osd op num shards = 1
osd op num threads per shard = 2
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw dns name = localhost
rgw gc obj min wait = 5
rgw gc processor period = 5
rgw gc processor max time = 5
CONF
        monmaptool --create --clobber --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$RGW_DIR/monmap" \
                >"$RGW_DIR/mkfs.out" 2>&1 &&
        ceph-mon -c "$RGW_DIR/ceph.conf" --mkfs -i a --monmap "$RGW_DIR/monmap" >>"$RGW_DIR/mkfs.out" 2>&1 || {
                cat "$RGW_DIR/mkfs.out" >&2
                return 1
        }
        ceph-mon -f -c "$RGW_DIR/ceph.conf" -i a >>"$RGW_DIR/mon.out" 2>&1 &
        RGW_MON_PID=$!
        if ! rgw_ceph osd new "$osd_uuid" 0 >>"$RGW_DIR/mkfs.out" 2>&1; then
                echo "ceph osd new failed" >&2
                cat "$RGW_DIR/mkfs.out" >&2
                rgw_log_tail
                return 1
        fi
        if ! ceph-osd -c "$RGW_DIR/ceph.conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$RGW_DIR/mkfs.out" 2>&1; then
                echo "ceph-osd --mkfs failed" >&2
                cat "$RGW_DIR/mkfs.out" >&2
                rgw_log_tail
                return 1
        fi
        ceph-osd -f -c "$RGW_DIR/ceph.conf" -i 0 >>"$RGW_DIR/osd.out" 2>&1 &
        RGW_OSD_PID=$!
        if ! rgw_wait "rgw_ceph osd dump | grep -q '^osd.0 up'" 600; then
                echo "the OSD did not come up" >&2
                rgw_log_tail
                return 1
        fi
        rgw_start_gw || return 1
        RGW_ACCESS_KEY=BERTHTESTACCESSKEY0
        RGW_SECRET_KEY=berthtestsecretkey0000000000000000000000
        if ! timeout -k 5 60 radosgw-admin -c "$RGW_DIR/ceph.conf" user create --uid berth --display-name berth \
                --access-key "$RGW_ACCESS_KEY" --secret-key "$RGW_SECRET_KEY" >>"$RGW_DIR/mkfs.out" 2>&1; then
                echo "radosgw-admin user create failed" >&2
                cat "$RGW_DIR/mkfs.out" >&2
                return 1
        fi
        export RGW_DIR RGW_PORT RGW_ENDPOINT RGW_ACCESS_KEY RGW_SECRET_KEY RGW_MON_PID RGW_OSD_PID RGW_PID
}

rgw_stop_pid() {
        local p=$1
        [ -n "$p" ] || return 0
        kill "$p" 2>/dev/null || true
        local i
        for i in $(seq 1 100); do
                kill -0 "$p" 2>/dev/null || break
                sleep 0.1
        done
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
}

rgw_down() {
        rgw_stop_pid "${RGW_PID:-}"
        rgw_stop_pid "${RGW_OSD_PID:-}"
        rgw_stop_pid "${RGW_MON_PID:-}"
        RGW_PID= RGW_OSD_PID= RGW_MON_PID=
}

rgw_restart_gw() {
        rgw_stop_pid "${RGW_PID:-}"
        rgw_start_gw
}

rgw_curl() {
        curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$RGW_ACCESS_KEY:$RGW_SECRET_KEY" \
                -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}

rgw_mkbucket() {
        rgw_curl -f -X PUT "$RGW_ENDPOINT/$1"
}

# For .bats files: the cluster once per file (setup_file/teardown_file) ...
rgw_file_up() {
        command -v radosgw >/dev/null || skip "radosgw is not installed"
        RGW_TOP=$(mktemp -d "${TMPDIR:-/tmp}/berth-rgw.XXXXXX")
        export RGW_TOP
        rgw_up "$RGW_TOP/ceph" >&3 2>&3 || { rgw_down; return 1; }
}

rgw_file_down() {
        # a test that restarted the gateway left its new pid here
        [ ! -s "$RGW_TOP/rgw.pid" ] || RGW_PID=$(cat "$RGW_TOP/rgw.pid")
        rgw_down
        [ -z "${RGW_TOP:-}" ] || rm -rf "$RGW_TOP"
}

# ... and per test (setup), rgw_test_up PREFIX PATH: its own directory $T,
# its own bucket PREFIX<test number>-<random>, the repository
# s3://BUCKET/PATH as $BERTH_REPO, host A's cache, the gateway user's keys.
rgw_test_up() {
        T=$(mktemp -d "${TMPDIR:-/tmp}/berth-test.XXXXXX")
        export BERTH_CONFIG=/dev/null BERTH_LOG_LEVEL=notice
        unset BERTH_LEVEL BERTH_LOCK_WAIT BERTH_UNCHANGED BERTH_S3_ACCESS_KEY_ID BERTH_S3_SECRET_ACCESS_KEY
        export AWS_ACCESS_KEY_ID=$RGW_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$RGW_SECRET_KEY
        BUCKET=$1$BATS_TEST_NUMBER-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
        timeout -k 5 30 bash -c ". '$BATS_TEST_DIRNAME/rgw.bash'; rgw_mkbucket $BUCKET"
        export BERTH_REPO="s3://$BUCKET/$2?endpoint=$RGW_ENDPOINT"
        export BERTH_CACHE_DIR=$T/cacheA
}
