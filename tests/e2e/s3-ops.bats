#!/usr/bin/env bats
# s3-ops.bats — maintenance commands on s3:// repositories against a real Ceph
# RADOS Gateway started once for the file (rgw.bash): the prune lease's
# renewal and loss, grace counted from publication, forget --prune, catalog
# rebuild, recover and tag --no-keep on s3://, and snapshots --host.

load lib
load rgw

bats_require_minimum_version 1.5.0

setup_file() {
        rgw_file_up
}

# Each test: its own bucket, host A's cache, the gateway's user keys.
setup() {
        rgw_test_up o fleet
        unset BERTH_TEST_LEASE_SECONDS BERTH_TEST_PAUSE_AT BERTH_TEST_PAUSE_FILE BERTH_TEST_CRASH_AT
        LEASE="$RGW_ENDPOINT/$BUCKET/fleet/locks/prune"
        cd "$T"
}

teardown_file() {
        rgw_file_down
}

b() { timeout -k 5 120 "$BERTH" "$@"; }
s3curl() { timeout -k 5 30 bash -c ". '$BATS_TEST_DIRNAME/rgw.bash'; rgw_curl \"\$@\"" s3curl "$@"; }
# keys PREFIX: the object names under fleet/PREFIX, one a line
keys() { s3curl -f "$RGW_ENDPOINT/$BUCKET?list-type=2&prefix=fleet%2F${1//\//%2F}" | grep -o '<Key>[^<]*' | sed 's/<Key>//' || true; }
# lease_field FIELD: a field of the lease object as it is now
lease_field() { s3curl -f "$LEASE" | json_get "[\"$1\"]"; }

rand_dirs() {
        local d
        for d in "$@"; do
                mkdir -p "$T/$d"
                head -c 2000000 /dev/urandom > "$T/$d/f"
        done
}

# two snapshots, keep and gone, each with a pack of its own; gone forgotten
keep_and_gone() {
        b init > /dev/null
        rand_dirs keep gone
        b backup --path "$T/keep" --name keep --host hostA > /dev/null
        GONE=$(b backup --path "$T/gone" --name gone --host hostA | tail -n 1)
        b forget "$GONE" > /dev/null
}

# prune_paused POINT [ARGS...]: prune on host A stopped at POINT, in the background
prune_paused() {
        local point=$1
        shift
        touch "$T/pause"
        rm -f "$T/pause.reached"
        BERTH_TEST_PAUSE_AT=$point BERTH_TEST_PAUSE_FILE="$T/pause" \
                timeout -k 5 120 "$BERTH" --json prune "$@" > "$T/prune.json" 2> "$T/prune.err" &
        PRUNE_PID=$!
        BG_PIDS=$PRUNE_PID
}

wait_reached() {
        for _ in $(seq 1 300); do [ -e "$T/pause.reached" ] && break; sleep 0.1; done
        [ -e "$T/pause.reached" ]
}

prune_wait() {
        rm -f "$T/pause"
        PRUNE_STATUS=0
        wait "$PRUNE_PID" || PRUNE_STATUS=$?
        BG_PIDS=
}

@test "s3-ops: a prune that runs longer than its lease renews it; another prune is refused meanwhile" {
        keep_and_gone
        export BERTH_TEST_LEASE_SECONDS=6
        start=$(date +%s)
        prune_paused after-scan --grace 1s
        wait_reached
        first=$(lease_field expires)
        [ "$first" -le $(( start + 8 )) ]
        # well past the first expiry: renewed by the running prune
        sleep 8
        now=$(date +%s)
        exp=$(lease_field expires)
        echo "# lease: first expiry $((first - start))s after start, now $((exp - now))s ahead after $((now - start))s" >&3
        [ "$exp" -gt $(( first + 2 )) ]
        [ "$exp" -gt "$now" ]
        [ "$exp" -le $(( now + 9 )) ]
        [ "$(lease_field host)" = "$(hostname)" ]
        # another host's prune: refused, the lease still the first prune's
        owner=$(lease_field owner)
        run --separate-stderr env BERTH_CACHE_DIR=$T/cacheB timeout -k 5 60 "$BERTH" prune --grace 1s
        [ "$status" -eq 4 ]
        [[ "$stderr" == *"another prune holds the lease"* ]]
        [ "$(lease_field owner)" = "$owner" ]
        prune_wait
        [ "$PRUNE_STATUS" -eq 0 ]
        # released at the end
        run s3curl -o /dev/null -w '%{http_code}' "$LEASE"
        [ "$output" = 404 ]
}

@test "s3-ops: a prune whose lease another took over stops before deleting anything" {
        keep_and_gone
        b prune --grace 1s > /dev/null
        [ "$(keys condemned/ | wc -l)" -eq 1 ]
        npacks=$(keys packs/ | wc -l)
        sleep 2
        # the next prune would delete the condemned pack; it is stopped before
        # phase C while another prune takes its lease over
        export BERTH_TEST_LEASE_SECONDS=6
        prune_paused after-condemn --grace 1s
        wait_reached
        printf '{"owner":"x","host":"hostZ","pid":4242,"expires":%d}\n' $(( $(date +%s) + 3600 )) > "$T/other"
        s3curl -f -T "$T/other" "$LEASE"
        sleep 4
        prune_wait
        [ "$PRUNE_STATUS" -eq 4 ]
        grep -q "lost the prune lease.*hostZ, pid 4242.*before deleting anything" "$T/prune.err"
        # nothing deleted, and the other's lease left alone
        [ "$(keys packs/ | wc -l)" -eq "$npacks" ]
        [ "$(keys condemned/ | wc -l)" -eq 1 ]
        s3curl -f -o "$T/lease.now" "$LEASE"
        cmp "$T/other" "$T/lease.now"
        # once the other is done, a prune deletes it, and the rest checks
        s3curl -f -X DELETE "$LEASE"
        run b prune --grace 1s --json
        [ "$status" -eq 0 ]
        [ "$(printf '%s' "$output" | json_get '["packs_deleted"]')" -eq 1 ]
        BERTH_CACHE_DIR=$T/cacheC b check --read-data
}

@test "s3-ops: two hosts taking over an expired lease at once: one wins, the other is refused" {
        keep_and_gone
        printf '{"owner":"x","host":"hostZ","pid":4242,"expires":%d}\n' $(( $(date +%s) - 10 )) > "$T/old"
        s3curl -f -T "$T/old" "$LEASE"
        touch "$T/pause"
        for h in A B; do
                BERTH_CACHE_DIR=$T/cache$h BERTH_TEST_PAUSE_AT=after-scan BERTH_TEST_PAUSE_FILE="$T/pause" \
                        timeout -k 5 120 "$BERTH" prune --grace 1s > "$T/$h.out" 2> "$T/$h.err" &
                eval "pid$h=\$!"
        done
        BG_PIDS="$pidA $pidB"
        wait_reached
        # the loser gives up at once; the winner waits at the pause point
        for _ in $(seq 1 100); do
                if ! kill -0 "$pidA" 2>/dev/null || ! kill -0 "$pidB" 2>/dev/null; then break; fi
                sleep 0.1
        done
        if kill -0 "$pidA" 2>/dev/null; then win=A lose=B; else win=B lose=A; fi
        eval "wpid=\$pid$win lpid=\$pid$lose"
        kill -0 "$wpid"
        rc=0
        wait "$lpid" || rc=$?
        [ "$rc" -eq 4 ]
        grep -q "another prune holds the lease" "$T/$lose.err"
        rm "$T/pause"
        rc=0
        wait "$wpid" || rc=$?
        BG_PIDS=
        [ "$rc" -eq 0 ]
        grep -q "has expired: taking it over" "$T/$win.err"
}

@test "s3-ops: the grace period counts from the condemnation's publication: a crash in between does not shorten it" {
        keep_and_gone
        # killed after condemning in its catalog, before publishing condemned/
        run env BERTH_TEST_CRASH_AT=before-publish timeout -k 5 60 "$BERTH" prune --grace 2s
        [ "$status" -ne 0 ]
        [ "$(keys condemned/ | wc -l)" -eq 0 ]
        s3curl -f -X DELETE "$LEASE" || true
        sleep 3
        # the next run publishes it now: the grace period starts now, even
        # though the condemnation is older than it
        run b prune --grace 2s --json
        [ "$status" -eq 0 ]
        [ "$(printf '%s' "$output" | json_get '["packs_deleted"]')" -eq 0 ]
        [ "$(printf '%s' "$output" | json_get '["packs_waiting"]')" -eq 1 ]
        [ "$(keys condemned/ | wc -l)" -eq 1 ]
        sleep 3
        run b prune --grace 2s --json
        [ "$status" -eq 0 ]
        [ "$(printf '%s' "$output" | json_get '["packs_deleted"]')" -eq 1 ]
        [ "$(keys condemned/ | wc -l)" -eq 0 ]
        BERTH_CACHE_DIR=$T/cacheC b check --read-data
}

@test "s3-ops: forget --prune on s3:// prunes with the lease and a day's grace" {
        b init > /dev/null
        rand_dirs v1 v2
        b backup --path "$T/v1" --name v --host hostA > /dev/null
        b backup --path "$T/v2" --name v --host hostA > /dev/null
        # a live lease of another prune: forget is done, its prune refused
        printf '{"owner":"x","host":"hostZ","pid":4242,"expires":%d}\n' $(( $(date +%s) + 3600 )) > "$T/other"
        s3curl -f -T "$T/other" "$LEASE"
        run --separate-stderr b forget --keep-last 1 --prune
        [ "$status" -eq 4 ]
        [[ "$stderr" == *"another prune holds the lease"*hostZ* ]]
        [[ "$output" == *"removed 1 snapshot(s)"* ]]
        s3curl -f -X DELETE "$LEASE"
        b backup --path "$T/v1" --name v --host hostA > /dev/null
        run --separate-stderr b forget --keep-last 1 --prune --json
        [ "$status" -eq 0 ]
        [ "$(printf '%s' "$output" | json_get '["removed"].__len__()')" -eq 1 ]
        # a day's grace: condemned and announced, not deleted
        [ "$(printf '%s' "$output" | json_get '["prune"]["packs_waiting"]')" -ge 1 ]
        [ "$(printf '%s' "$output" | json_get '["prune"]["packs_deleted"]')" -eq 0 ]
        [ "$(printf '%s' "$output" | json_get '["prune"]["space_reclaimed_later"]')" = True ]
        [ "$(keys condemned/ | wc -l)" -ge 1 ]
        run s3curl -o /dev/null -w '%{http_code}' "$LEASE"
        [ "$output" = 404 ]
        BERTH_CACHE_DIR=$T/cacheC b check --read-data
}

@test "s3-ops: catalog rebuild rebuilds this host's cache from the bucket" {
        b init > /dev/null
        rand_dirs a b
        b backup --path "$T/a" --name va --host hostA > /dev/null
        BERTH_CACHE_DIR=$T/cacheB b backup --path "$T/b" --name vb --host hostB > /dev/null
        db=$(ls "$T"/cacheA/*/catalog.db)
        head -c 4096 /dev/urandom > "$db"
        rm -f "$db-wal" "$db-shm"
        run --separate-stderr b catalog rebuild --json
        [ "$status" -eq 0 ]
        [ "$(printf '%s' "$output" | json_get '["snapshots"]')" -eq 2 ]
        [ "$(printf '%s' "$output" | json_get '["packs"]')" -ge 2 ]
        run b snapshots --json
        [ "$status" -eq 0 ]
        [ "$(printf '%s' "$output" | python3 -c 'import json,sys; print(sorted(s["name"] for s in json.load(sys.stdin)))')" = "['va', 'vb']" ]
        run b check --read-data
        [ "$status" -eq 0 ]
        b restore vb@latest --target "$T/out"
        cmp "$T/b/f" "$T/out/f"
        # a host with no cache yet gets one
        run env BERTH_CACHE_DIR=$T/cacheN timeout -k 5 60 "$BERTH" catalog rebuild
        [ "$status" -eq 0 ]
        [[ "$output" == "rebuilt the catalog from "*" and 2 snapshots in "* ]]
}

@test "s3-ops: recover on s3:// puts back what this host's runs left, from its cache" {
        b init > /dev/null
        run --separate-stderr b recover
        [ "$status" -eq 0 ]
        [ "$output" = "no container needed putting back" ]
        run --separate-stderr b recover --json
        [ "$status" -eq 0 ]
        [ "$(printf '%s' "$output" | json_get '["resumed"]')" -eq 0 ]
        # this host's cache held by a running prune: recover does not wait
        mkdir -p "$T/a"
        b backup --path "$T/a" --name a > /dev/null
        prune_paused after-condemn --grace 1s
        wait_reached
        run --separate-stderr timeout -k 5 30 "$BERTH" --lock-wait 0 recover
        [ "$status" -eq 0 ]
        [ "$output" = "no container needed putting back" ]
        [[ "$stderr" == *"without waiting"* ]]
        prune_wait
        [ "$PRUNE_STATUS" -eq 0 ]
}

@test "s3-ops: tag --no-keep on another host lifts the protection for every host (keep/ objects)" {
        b init > /dev/null
        rand_dirs a
        id=$(b backup --path "$T/a" --name va --host hostA | tail -n 1)
        run b tag va --keep
        [ "$status" -eq 0 ]
        [ "$(keys keep/)" = "fleet/keep/$id" ]
        run env BERTH_CACHE_DIR=$T/cacheB timeout -k 5 60 "$BERTH" snapshots
        [[ "$output" == *"${id:0:12}"*keep* ]]
        run env BERTH_CACHE_DIR=$T/cacheB timeout -k 5 60 "$BERTH" tag va --no-keep
        [ "$status" -eq 0 ]
        [ "$output" = "${id:0:12} (va): not protected" ]
        [ -z "$(keys keep/)" ]
        run b snapshots
        [[ "$output" != *keep* ]]
        run b forget "$id"
        [ "$status" -eq 0 ]
}

@test "s3-ops: snapshots --host lists the snapshots one host took (two hosts, two caches)" {
        b init > /dev/null
        rand_dirs a b
        BERTH_CACHE_DIR=$T/cacheA b backup --path "$T/a" --name data --host hostA > /dev/null
        BERTH_CACHE_DIR=$T/cacheB b backup --path "$T/b" --name data --host hostB > /dev/null
        BERTH_CACHE_DIR=$T/cacheB b backup --path "$T/a" --name other --host hostB > /dev/null
        export BERTH_CACHE_DIR=$T/cacheC
        run b snapshots --host hostA
        [ "$status" -eq 0 ]
        [ "$(printf '%s\n' "$output" | grep -c complete)" -eq 1 ]
        [[ "$output" == *data*hostA* ]]
        [[ "$output" != *hostB* ]]
        run b snapshots --host hostB --json
        [ "$status" -eq 0 ]
        [ "$(printf '%s' "$output" | python3 -c 'import json,sys; print(sorted(s["host"]+":"+s["name"] for s in json.load(sys.stdin)))')" = "['hostB:data', 'hostB:other']" ]
        run b snapshots data --host hostB --json
        [ "$(printf '%s' "$output" | python3 -c 'import json,sys; print([s["host"]+":"+s["name"] for s in json.load(sys.stdin)])')" = "['hostB:data']" ]
        run b snapshots --host hostZ
        [ "$status" -eq 0 ]
        [ "$output" = "no snapshots taken on host 'hostZ'" ]
        run b snapshots --host hostZ --json
        [ "$(printf '%s' "$output" | python3 -c 'import json,sys; print(json.load(sys.stdin))')" = "[]" ]
}

@test "s3-ops: snapshots --host on a local repository; --help names it" {
        export BERTH_REPO=$T/repo
        mkdir -p "$T/a"
        echo x > "$T/a/f"
        b backup --path "$T/a" --name one --host h1 > /dev/null
        b backup --path "$T/a" --name two --host h2 > /dev/null
        run b snapshots --host h2 --json
        [ "$status" -eq 0 ]
        [ "$(printf '%s' "$output" | python3 -c 'import json,sys; print([s["name"] for s in json.load(sys.stdin)])')" = "['two']" ]
        run b snapshots --host
        [ "$status" -eq 2 ]
        run b snapshots --help
        [[ "$output" == *"--host HOST"* ]]
}
