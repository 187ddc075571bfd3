#!/usr/bin/env bats
# s3.bats — repositories on S3-compatible object storage (transport/backend-s3.c),
# against a real Ceph RADOS Gateway started once for the file (rgw.bash).

load lib
load rgw

bats_require_minimum_version 1.5.0

setup_file() {
        rgw_file_up
}

# Each test: its own bucket, host A's cache, the gateway's user keys.
setup() {
        rgw_test_up t fleet
        TREECMP="$BATS_TEST_DIRNAME/treecmp.py"
        # a berth that takes s3://... for a directory makes it here
        cd "$T"
}

# b ARGS: berth under a timeout
b() { timeout -k 5 120 "$BERTH" "$@"; }
s3curl() { timeout -k 5 30 bash -c ". '$BATS_TEST_DIRNAME/rgw.bash'; rgw_curl \"\$@\"" s3curl "$@"; }

# rand_dirs NAME...: $T/NAME/f, 3 MB of random bytes each
rand_dirs() {
        local d
        for d in "$@"; do
                mkdir -p "$T/$d"
                head -c 3000000 /dev/urandom > "$T/$d/f"
        done
}

# new_host_checks SNAPSHOT DIR: a host with an empty cache finds nothing
# wrong and restores SNAPSHOT identical to DIR
new_host_checks() {
        export BERTH_CACHE_DIR=$T/cache-new
        run b check --read-data
        [ "$status" -eq 0 ]
        b restore "$1" --target "$T/restored"
        cmp "$2/f" "$T/restored/f"
}

teardown_file() {
        rgw_file_down
}

@test "rgw: the gateway stores and serves an object (curl, SigV4)" {
        run timeout -k 5 30 bash -c ". '$BATS_TEST_DIRNAME/rgw.bash'; rgw_mkbucket smoke"
        [ "$status" -eq 0 ]
        printf 'hello gateway' > "$T/obj"
        timeout -k 5 30 bash -c ". '$BATS_TEST_DIRNAME/rgw.bash'; rgw_curl -f -T '$T/obj' \$RGW_ENDPOINT/smoke/a/b"
        run timeout -k 5 30 bash -c ". '$BATS_TEST_DIRNAME/rgw.bash'; rgw_curl -f \$RGW_ENDPOINT/smoke/a/b"
        [ "$status" -eq 0 ]
        [ "$output" = "hello gateway" ]
}

@test "s3: init, backup, snapshots; a new host with an empty cache lists and restores byte-identical" {
        run b init
        [ "$status" -eq 0 ]
        [[ "$output" == "created repository at s3://$BUCKET/fleet"* ]]
        run b init
        [ "$status" -eq 1 ]
        [[ "$output" == *"already holds a repository"* ]]

        make_tree "$T/src"
        run b backup --path "$T/src" --name data --host hostA
        [ "$status" -eq 0 ]
        id=$(last_line)
        # the objects are in the bucket, under the prefix
        run s3curl -f "$RGW_ENDPOINT/$BUCKET?list-type=2&prefix=fleet%2Fsnapshots%2F"
        [[ "$output" == *"<Key>fleet/snapshots/$id</Key>"* ]]

        # host C: nothing cached
        export BERTH_CACHE_DIR=$T/cacheC
        run b snapshots
        [ "$status" -eq 0 ]
        [[ "$output" == *"${id:0:12}"*data*hostA* ]]
        run b restore data@latest --target "$T/out"
        [ "$status" -eq 0 ]
        python3 "$TREECMP" "$T/src" "$T/out"
        cmp "$T/src/rand.bin" "$T/out/rand.bin"
        run b check --read-data
        [ "$status" -eq 0 ]
}

@test "s3: two hosts back up into one bucket at once; both listed and restorable; identical data adds nothing" {
        b init
        mkdir -p "$T/a" "$T/b"
        head -c 8000000 /dev/urandom > "$T/a/a.bin"
        head -c 8000000 /dev/urandom > "$T/b/b.bin"
        BERTH_CACHE_DIR=$T/cacheA b backup --path "$T/a" --name va --host hostA > "$T/a.out" 2>&1 &
        pa=$!
        BERTH_CACHE_DIR=$T/cacheB b backup --path "$T/b" --name vb --host hostB > "$T/b.out" 2>&1 &
        pb=$!
        BG_PIDS="$pa $pb"
        wait $pa
        wait $pb
        BG_PIDS=
        # each host sees the other's snapshot after its cache syncs
        for c in cacheA cacheB cacheC; do
                run env BERTH_CACHE_DIR=$T/$c timeout -k 5 60 "$BERTH" snapshots --json
                [ "$status" -eq 0 ]
                [ "$(printf '%s' "$output" | python3 -c 'import json,sys; print(sorted(s["host"]+":"+s["name"] for s in json.load(sys.stdin)))')" = "['hostA:va', 'hostB:vb']" ]
        done
        BERTH_CACHE_DIR=$T/cacheC b restore va@latest --target "$T/ra"
        BERTH_CACHE_DIR=$T/cacheC b restore vb@latest --target "$T/rb"
        cmp "$T/a/a.bin" "$T/ra/a.bin"
        cmp "$T/b/b.bin" "$T/rb/b.bin"

        # host B backs up a volume with host A's content: chunks shared across hosts
        mkdir -p "$T/b2"
        cp "$T/a/a.bin" "$T/b2/"
        run env BERTH_CACHE_DIR=$T/cacheB timeout -k 5 60 "$BERTH" backup --path "$T/b2" --name vb2 --host hostB --json
        [ "$status" -eq 0 ]
        added=$(printf '%s' "$output" | json_get '["bytes_added"]')
        dup=$(printf '%s' "$output" | json_get '["chunks_dup"]')
        echo "# cross-host: bytes_added=$added chunks_dup=$dup" >&3
        [ "$added" -lt 100000 ]
        [ "$dup" -gt 100 ]
        BERTH_CACHE_DIR=$T/cacheC b check --read-data
}

@test "s3: wrong credentials: one line, exit 1" {
        b init
        run --separate-stderr env AWS_SECRET_ACCESS_KEY=not-the-secret timeout -k 5 30 "$BERTH" snapshots
        [ "$status" -eq 1 ]
        [ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
        [[ "$stderr" == *"refused the credentials"* ]]
        [[ "$stderr" != *not-the-secret* ]]
        run --separate-stderr env AWS_ACCESS_KEY_ID=NOSUCHKEY timeout -k 5 30 "$BERTH" snapshots
        [ "$status" -eq 1 ]
        [[ "$stderr" == *"refused the credentials (InvalidAccessKeyId)"* ]]
        run --separate-stderr env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY timeout -k 5 30 "$BERTH" snapshots
        [ "$status" -eq 1 ]
        [[ "$stderr" == *"no S3 credentials"* ]]
        # BERTH_S3_* and key files work too
        run env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY BERTH_S3_ACCESS_KEY_ID=$RGW_ACCESS_KEY \
                BERTH_S3_SECRET_ACCESS_KEY=$RGW_SECRET_KEY timeout -k 5 30 "$BERTH" snapshots
        [ "$status" -eq 0 ]
        echo "$RGW_ACCESS_KEY" > "$T/ak"
        echo "$RGW_SECRET_KEY" > "$T/sk"
        printf 's3_access_key_file = %s\ns3_secret_key_file = %s\n' "$T/ak" "$T/sk" > "$T/berth.conf"
        run env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY BERTH_CONFIG=$T/berth.conf timeout -k 5 30 "$BERTH" snapshots
        [ "$status" -eq 0 ]
}

@test "s3: a missing bucket and an unreachable endpoint: clear errors, no hang" {
        run --separate-stderr b -r "s3://no-such-bucket/x?endpoint=$RGW_ENDPOINT" snapshots
        [ "$status" -eq 1 ]
        [ "$stderr" = "berth: error: bucket 'no-such-bucket' does not exist at $RGW_ENDPOINT" ]
        port=$(rgw_free_port)
        start=$(date +%s)
        run --separate-stderr timeout -k 5 30 "$BERTH" -r "s3://$BUCKET/x?endpoint=http://127.0.0.1:$port" snapshots
        [ "$status" -eq 1 ]
        [[ "$stderr" == "berth: error: cannot reach http://127.0.0.1:$port: "* ]]
        [ $(( $(date +%s) - start )) -lt 10 ]
        # plain http leaves this host only when asked to
        run --separate-stderr b -r "s3://$BUCKET/x?endpoint=http://192.0.2.1:80" snapshots
        [ "$status" -eq 1 ]
        [[ "$stderr" == *"plain http to a host that is not this one"* ]]
        run --separate-stderr b -r "s3://$BUCKET/x?endpoint=$RGW_ENDPOINT&style=sideways" snapshots
        [ "$status" -eq 1 ]
        [[ "$stderr" == *"invalid style 'sideways'"* ]]
}

@test "s3: a corrupted pack object in the bucket: check --read-data reports it" {
        b init
        mkdir -p "$T/src"
        head -c 3000000 /dev/urandom > "$T/src/f"
        b backup --path "$T/src" --name c
        run s3curl -f "$RGW_ENDPOINT/$BUCKET?list-type=2&prefix=fleet%2Fpacks%2F"
        key=$(printf '%s' "$output" | grep -o '<Key>fleet/packs/[^<]*' | head -n 1 | sed 's/<Key>//')
        [ -n "$key" ]
        s3curl -f -o "$T/pack" "$RGW_ENDPOINT/$BUCKET/$key"
        python3 -c 'import sys; p=sys.argv[1]; d=bytearray(open(p,"rb").read()); d[len(d)//3]^=0xff; open(p,"wb").write(d)' "$T/pack"
        s3curl -f -T "$T/pack" "$RGW_ENDPOINT/$BUCKET/$key"
        export BERTH_CACHE_DIR=$T/cacheC
        run b check --read-data
        [ "$status" -eq 5 ]
        [[ "$output" == *"${key#fleet/}"* ]] || [[ "$output" == *"corrupt"* ]] || [[ "$output" == *damaged* ]]
}

@test "s3: prune: a live lease refuses, an expired one is taken over, the lease is released" {
        b init
        mkdir -p "$T/src"
        head -c 1000000 /dev/urandom > "$T/src/f"
        b backup --path "$T/src" --name p
        exp=$(( $(date +%s) + 3600 ))
        printf '{"owner":"x","host":"hostZ","pid":4242,"expires":%d}\n' "$exp" > "$T/lease"
        s3curl -f -T "$T/lease" "$RGW_ENDPOINT/$BUCKET/fleet/locks/prune"
        run --separate-stderr b prune --grace 1s
        [ "$status" -eq 4 ]
        [[ "$stderr" == *"another prune holds the lease"*"host hostZ, pid 4242"* ]]
        # the lease is another's: left alone
        s3curl -f -o "$T/lease.now" "$RGW_ENDPOINT/$BUCKET/fleet/locks/prune"
        cmp "$T/lease" "$T/lease.now"

        printf '{"owner":"x","host":"hostZ","pid":4242,"expires":%d}\n' $(( $(date +%s) - 10 )) > "$T/lease"
        s3curl -f -T "$T/lease" "$RGW_ENDPOINT/$BUCKET/fleet/locks/prune"
        run b prune --grace 1s
        [ "$status" -eq 0 ]
        [[ "$output" == *"has expired: taking it over"* ]]
        run s3curl -o /dev/null -w '%{http_code}' "$RGW_ENDPOINT/$BUCKET/fleet/locks/prune"
        [ "$output" = 404 ]
        # no grace on shared storage is refused
        run --separate-stderr b prune --grace 0
        [ "$status" -eq 1 ]
        [[ "$stderr" == *"needs a grace period"* ]]
}

@test "s3: prune condemns, other hosts stop deduplicating, a later prune deletes after the grace period" {
        b init
        rand_dirs keep gone
        b backup --path "$T/keep" --name keep --host hostA
        id=$(b backup --path "$T/gone" --name gone --host hostA | tail -n 1)
        # forget, as another tool would: the snapshot object goes
        s3curl -f -X DELETE "$RGW_ENDPOINT/$BUCKET/fleet/snapshots/$id"
        run b prune --grace 2s --json
        [ "$status" -eq 0 ]
        [ "$(printf '%s' "$output" | json_get '["packs_waiting"]')" -eq 1 ]
        [ "$(printf '%s' "$output" | json_get '["packs_deleted"]')" -eq 0 ]
        run s3curl -f "$RGW_ENDPOINT/$BUCKET?list-type=2&prefix=fleet%2Fcondemned%2F"
        [[ "$output" == *"<Key>fleet/condemned/"* ]]

        # host B, fresh cache: the condemned pack is not deduplicated against
        run env BERTH_CACHE_DIR=$T/cacheB timeout -k 5 60 "$BERTH" backup --path "$T/gone" --name again --host hostB --json
        [ "$status" -eq 0 ]
        [ "$(printf '%s' "$output" | json_get '["chunks_dup"]')" -eq 0 ]

        sleep 3
        run b prune --grace 2s
        [ "$status" -eq 0 ]
        [[ "$output" == *"deleted 1 pack(s)"* ]]
        [[ "$output" == *"garbage collector"* ]]
        new_host_checks again@latest "$T/gone"
}

@test "s3: a condemned pack a host deduplicated against before it knew is kept, not deleted" {
        b init
        rand_dirs keep gone
        b backup --path "$T/keep" --name keep --host hostA
        # host B's cache knows the pack before it is condemned
        BERTH_CACHE_DIR=$T/cacheB b snapshots > /dev/null
        id=$(b backup --path "$T/gone" --name gone --host hostA | tail -n 1)
        BERTH_CACHE_DIR=$T/cacheB b snapshots > /dev/null
        s3curl -f -X DELETE "$RGW_ENDPOINT/$BUCKET/fleet/snapshots/$id"
        b prune --grace 2s
        # a backup that started before the condemnation was published: its
        # cache still lists the pack (the marker hidden from it)
        key=$(s3curl -f "$RGW_ENDPOINT/$BUCKET?list-type=2&prefix=fleet%2Fcondemned%2F" | grep -o '<Key>[^<]*' | sed 's/<Key>//')
        [ -n "$key" ]
        s3curl -f -X DELETE "$RGW_ENDPOINT/$BUCKET/$key"
        run env BERTH_CACHE_DIR=$T/cacheB timeout -k 5 60 "$BERTH" backup --path "$T/gone" --name again --host hostB --json
        [ "$status" -eq 0 ]
        [ "$(printf '%s' "$output" | json_get '["bytes_added"]')" -lt 100000 ]
        sleep 3
        run --separate-stderr b prune --grace 2s --json
        [ "$status" -eq 0 ]
        [[ "$stderr" == *"revived 1 condemned pack(s)"* || "$stderr" == *"is used by a snapshot written since: kept"* ]]
        [ "$(printf '%s' "$output" | json_get '["packs_revived"]')" -eq 1 ]
        [ "$(printf '%s' "$output" | json_get '["packs_deleted"]')" -eq 0 ]
        new_host_checks again@latest "$T/gone"
}

@test "s3: virtual-host style and path style; listings of many pages" {
        b init
        mkdir -p "$T/src"
        head -c 2000000 /dev/urandom > "$T/src/f"
        b backup --path "$T/src" --name one
        b backup --path "$T/src" --name two
        b backup --path "$T/src" --name three
        # bucket.localhost: the gateway's rgw_dns_name is localhost
        export BERTH_CACHE_DIR=$T/cacheV
        run b -r "s3://$BUCKET/fleet?endpoint=http://localhost:$RGW_PORT&style=virtual" snapshots
        [ "$status" -eq 0 ]
        [[ "$output" == *one*two*three* ]] || [[ "$output" == *three* ]]
        [ "$(printf '%s\n' "$output" | grep -c complete)" -eq 3 ]
        # one key per page: continuation tokens, signed
        export BERTH_CACHE_DIR=$T/cacheP BERTH_S3_LIST_PAGE=1
        run b -r "s3://$BUCKET/fleet?endpoint=$RGW_ENDPOINT&style=path" snapshots
        [ "$status" -eq 0 ]
        [ "$(printf '%s\n' "$output" | grep -c complete)" -eq 3 ]
        run b restore two@latest --target "$T/out"
        [ "$status" -eq 0 ]
        cmp "$T/src/f" "$T/out/f"
}

@test "s3: the gateway killed during a backup: a clear error; after it is back the backup completes and checks" {
        b init
        mkdir -p "$T/src"
        head -c 60000000 /dev/urandom > "$T/src/big"
        b backup --path "$T/src" --name big > "$T/b1.out" 2>&1 &
        pid=$!
        BG_PIDS=$pid
        sleep 0.5
        rgw_stop_pid "$RGW_PID"
        rc=0
        wait $pid || rc=$?
        BG_PIDS=
        echo "# first backup: exit $rc: $(tail -n 1 "$T/b1.out")" >&3
        if [ "$rc" -ne 0 ]; then
                [ "$rc" -eq 1 ]
                grep -q "cannot reach\|$RGW_ENDPOINT\|connection\|Connection" "$T/b1.out"
        fi
        # while it is down: a clear error, no hang
        run --separate-stderr timeout -k 5 60 "$BERTH" snapshots
        [ "$status" -eq 1 ]
        [[ "$stderr" == *"cannot reach $RGW_ENDPOINT"* ]]
        rgw_start_gw
        echo "$RGW_PID" > "$RGW_TOP/rgw.pid"
        run b backup --path "$T/src" --name big
        [ "$status" -eq 0 ]
        export BERTH_CACHE_DIR=$T/cacheC
        run b check --read-data
        [ "$status" -eq 0 ]
        b restore big@latest --target "$T/out"
        cmp "$T/src/big" "$T/out/big"
}

@test "s3: forget on one host, the others see it; prune after the grace period reclaims and the rest checks" {
        b init
        rand_dirs v1 v2
        b backup --path "$T/v1" --name v --host hostA
        b backup --path "$T/v2" --name v --host hostA
        BERTH_CACHE_DIR=$T/cacheB b snapshots > /dev/null
        run b forget --keep-last 1
        [ "$status" -eq 0 ]
        run env BERTH_CACHE_DIR=$T/cacheB timeout -k 5 60 "$BERTH" snapshots --json
        [ "$(printf '%s' "$output" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" -eq 1 ]
        b prune --grace 1s
        sleep 2
        run b prune --grace 1s --json
        [ "$status" -eq 0 ]
        [ "$(printf '%s' "$output" | json_get '["packs_deleted"]')" -eq 1 ]
        [ "$(printf '%s' "$output" | json_get '["space_reclaimed_later"]')" = True ]
        new_host_checks v@latest "$T/v2"
}

# prune_paused POINT: prune --grace 2s on host A stopped at POINT (in the background)
prune_paused() {
        touch "$T/pause"
        rm -f "$T/pause.reached"
        BERTH_TEST_PAUSE_AT=$1 BERTH_TEST_PAUSE_FILE="$T/pause" \
                timeout -k 5 120 "$BERTH" --json prune --grace 2s > "$T/prune.json" 2> "$T/prune.err" &
        PRUNE_PID=$!
        BG_PIDS=$PRUNE_PID
        for _ in $(seq 1 300); do [ -e "$T/pause.reached" ] && break; sleep 0.1; done
        [ -e "$T/pause.reached" ]
}

prune_resume() {
        rm "$T/pause"
        wait "$PRUNE_PID"
        BG_PIDS=
}

@test "s3: hosts back up while prune runs on another: nothing is lost" {
        b init
        rand_dirs keep gone other
        b backup --path "$T/keep" --name keep --host hostA
        id=$(b backup --path "$T/gone" --name gone --host hostA | tail -n 1)
        BERTH_CACHE_DIR=$T/cacheB b snapshots > /dev/null
        s3curl -f -X DELETE "$RGW_ENDPOINT/$BUCKET/fleet/snapshots/$id"

        # while prune reads: host B deduplicates against the chunks prune found unused
        prune_paused after-scan
        run env BERTH_CACHE_DIR=$T/cacheB timeout -k 5 60 "$BERTH" --json backup --path "$T/gone" --name b1 --host hostB
        [ "$status" -eq 0 ]
        [ "$(printf '%s' "$output" | json_get '["bytes_added"]')" -lt 100000 ]
        prune_resume
        # phase B saw host B's snapshot: nothing condemned
        [ "$(json_get '["packs_waiting"]' < "$T/prune.json")" -eq 0 ]

        # forget b1 too; while prune has just condemned: host B stores anew
        run env BERTH_CACHE_DIR=$T/cacheB timeout -k 5 60 "$BERTH" forget --name b1 --keep-last 0
        [ "$status" -eq 0 ]
        prune_paused after-condemn
        run env BERTH_CACHE_DIR=$T/cacheB timeout -k 5 60 "$BERTH" --json backup --path "$T/gone" --name b2 --host hostB
        [ "$status" -eq 0 ]
        [ "$(printf '%s' "$output" | json_get '["chunks_dup"]')" -eq 0 ]
        BERTH_CACHE_DIR=$T/cacheB b backup --path "$T/other" --name b3 --host hostB
        prune_resume
        waiting=$(json_get '["packs_waiting"]' < "$T/prune.json")
        [ "$waiting" -ge 1 ]
        sleep 3
        run b prune --grace 2s --json
        [ "$status" -eq 0 ]
        [ "$(printf '%s' "$output" | json_get '["packs_deleted"]')" -eq "$waiting" ]
        new_host_checks b2@latest "$T/gone"
        b restore b3@latest --target "$T/r3"
        cmp "$T/other/f" "$T/r3/f"
        b restore keep@latest --target "$T/rk"
        cmp "$T/keep/f" "$T/rk/f"
}
