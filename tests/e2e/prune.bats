#!/usr/bin/env bats
# berth prune: reclaiming what no snapshot uses, safely beside a backup and
# across kill -9.  Garbage is made without `forget`: a snapshot file is
# removed from snapshots/ and the catalog rebuilt, or a backup is killed.

load lib

# small packs, so a few MB of data make several of them
init_small() { berth init --pack-size 1M > /dev/null; }

# snapshot id of the newest snapshot of series $1
snap_id() { berth --json snapshots "$1" | json_get '[-1]["id"]'; }

# drop_snapshot ID: the snapshot file goes, the catalog is rebuilt from what is left
drop_snapshot() {
        rm "$BERTH_REPO/snapshots/$1"
        berth catalog rebuild > /dev/null
}

# total size of the pack files
pack_bytes() { find "$BERTH_REPO/packs" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}'; }
pack_count() { find "$BERTH_REPO/packs" -type f | wc -l; }

# restores series $1 and compares it with directory $2
restores_same() {
        rm -rf "$T/out-$1"
        timeout -k 5 120 "$BERTH" restore "$1" --target "$T/out-$1" > /dev/null
        python3 "$TREECMP" "$2" "$T/out-$1"
}

# keep/drop data: "keep" and "drop" each with their own random files, plus
# "mixed": 100 small files in the same packs, a quarter of them kept
# (series "quarter") when the whole set (series "mixed") is dropped
make_garbage_repo() {
        init_small
        mkdir -p "$T/keep" "$T/drop" "$T/mixed" "$T/quarter"
        head -c 2500000 /dev/urandom > "$T/keep/k.bin"
        seq 1 100000 > "$T/keep/seq.txt"
        head -c 3000000 /dev/urandom > "$T/drop/d.bin"
        for i in $(seq 1 100); do head -c 20000 /dev/urandom > "$T/mixed/f$i"; done
        for i in $(seq 1 4 100); do cp -p "$T/mixed/f$i" "$T/quarter/"; done
        berth backup --path "$T/keep" --name keep > /dev/null
        berth backup --path "$T/drop" --name drop > /dev/null
        berth backup --path "$T/mixed" --name mixed > /dev/null
        berth backup --path "$T/quarter" --name quarter > /dev/null
        DROP_ID=$(snap_id drop)
        MIXED_ID=$(snap_id mixed)
}

all_survivors_restore() {
        restores_same keep "$T/keep"
        restores_same quarter "$T/quarter"
}

@test "prune after removing snapshots shrinks the repository by the bytes it reports, and what is left restores and checks" {
        make_garbage_repo
        drop_snapshot "$DROP_ID"
        drop_snapshot "$MIXED_ID"
        before=$(pack_bytes)
        run timeout -k 5 120 "$BERTH" --json prune
        [ "$status" -eq 0 ]
        json=$output
        after=$(pack_bytes)
        freed=$(json_get '["bytes_freed"]' <<< "$json")
        [ "$freed" -gt 3000000 ]
        [ $((before - after)) -eq "$freed" ]
        [ "$(json_get '["packs_unused"]' <<< "$json")" -ge 3 ]
        [ "$(json_get '["snapshots"]' <<< "$json")" -eq 2 ]
        [ "$(json_get '["chunks_removed"]' <<< "$json")" -gt 0 ]
        all_survivors_restore
        run timeout -k 5 120 "$BERTH" check --read-data
        [ "$status" -eq 0 ]
        [[ "$output" == *"no problems found"* ]]
        # a second prune has nothing left to do
        run timeout -k 5 60 "$BERTH" --json prune
        [ "$status" -eq 0 ]
        [ "$(json_get '["packs_deleted"]' <<< "$output")" -eq 0 ]
        [ "$(pack_bytes)" -eq "$after" ]
}

@test "prune repacks a mostly unused pack: the kept chunks move to a new pack and still restore" {
        make_garbage_repo
        drop_snapshot "$MIXED_ID"
        run timeout -k 5 120 "$BERTH" --json prune
        [ "$status" -eq 0 ]
        json=$output
        [ "$(json_get '["packs_repacked"]' <<< "$json")" -ge 1 ]
        [ "$(json_get '["packs_written"]' <<< "$json")" -ge 1 ]
        [ "$(json_get '["chunks_repacked"]' <<< "$json")" -ge 25 ]
        [ "$(json_get '["bytes_freed"]' <<< "$json")" -gt 1000000 ]
        all_survivors_restore
        restores_same drop "$T/drop"
        run timeout -k 5 120 "$BERTH" check --read-data
        [ "$status" -eq 0 ]
        # --max-unused 100 never repacks
        berth backup --path "$T/mixed" --name mixed > /dev/null
        drop_snapshot "$(snap_id mixed)"
        run timeout -k 5 120 "$BERTH" --json prune --max-unused 100
        [ "$status" -eq 0 ]
        [ "$(json_get '["packs_repacked"]' <<< "$output")" -eq 0 ]
        all_survivors_restore
}

# every file of the repository with its checksum, and the catalog's rows
repo_state() {
        (cd "$BERTH_REPO" && find . -path ./catalog.db-shm -prune -o -path ./catalog.db-wal -prune -o \
                -path ./catalog.db -prune -o -path ./lock -prune -o -type f -print0 | sort -z | xargs -0 -r sha256sum
         find . -printf '%p %y %s\n' | grep -v 'catalog.db-\|^./lock ' | sort)
        python3 - "$BERTH_REPO/catalog.db" <<'EOF'
import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
for line in db.iterdump():
    print(line)
EOF
}

@test "prune --dry-run shows the plan and changes nothing" {
        make_garbage_repo
        drop_snapshot "$DROP_ID"
        drop_snapshot "$MIXED_ID"
        repo_state > "$T/before"
        run timeout -k 5 120 "$BERTH" prune --dry-run
        [ "$status" -eq 0 ]
        [[ "$output" == *"would delete"* ]]
        run timeout -k 5 120 "$BERTH" --json prune --dry-run
        [ "$status" -eq 0 ]
        plan=$output
        repo_state > "$T/after"
        diff "$T/before" "$T/after"
        [ "$(json_get '["dry_run"]' <<< "$plan")" = True ]
        [ "$(json_get '["packs_unused"]' <<< "$plan")" -ge 3 ]
        [ "$(json_get '["packs_repacked"]' <<< "$plan")" -ge 1 ]
        # the real run does what the plan said
        run timeout -k 5 120 "$BERTH" --json prune
        [ "$status" -eq 0 ]
        [ "$(json_get '["packs_deleted"]' <<< "$output")" -eq "$(json_get '["packs_deleted"]' <<< "$plan")" ]
        [ "$(json_get '["chunks_removed"]' <<< "$output")" -eq "$(json_get '["chunks_removed"]' <<< "$plan")" ]
}

@test "a backup that deduplicates against unused chunks while prune marks keeps them" {
        make_garbage_repo
        drop_snapshot "$DROP_ID"
        # prune stops after its reading phase; the backup meanwhile stores
        # the dropped data again, deduplicating against the chunks prune
        # found unused
        touch "$T/pause"
        BERTH_TEST_PAUSE_AT=after-scan BERTH_TEST_PAUSE_FILE="$T/pause" \
                timeout -k 5 120 "$BERTH" --json --lock-wait 60 prune > "$T/prune.json" 2> "$T/prune.err" &
        pid=$!
        BG_PIDS=$pid
        for _ in $(seq 1 300); do [ -e "$T/pause.reached" ] && break; sleep 0.1; done
        [ -e "$T/pause.reached" ]
        run timeout -k 5 60 "$BERTH" --json backup --path "$T/drop" --name again
        [ "$status" -eq 0 ]
        [ "$(json_get '["bytes_added"]' <<< "$output")" -lt 100000 ]
        rm "$T/pause"
        wait "$pid"
        BG_PIDS=
        restores_same again "$T/drop"
        all_survivors_restore
        run timeout -k 5 120 "$BERTH" check --read-data
        [ "$status" -eq 0 ]
}

@test "a backup running while prune runs: prune waits for the writer lock, both finish, nothing is lost" {
        make_garbage_repo
        drop_snapshot "$DROP_ID"
        drop_snapshot "$MIXED_ID"
        mkdir -p "$T/big"
        for i in $(seq 1 12); do head -c 2000000 /dev/urandom > "$T/big/b$i"; done
        cp "$T/drop/d.bin" "$T/big/"
        timeout -k 5 120 "$BERTH" --lock-wait 100 backup --path "$T/big" --name big > "$T/backup.out" 2>&1 &
        bpid=$!
        BG_PIDS=$bpid
        run timeout -k 5 120 "$BERTH" --lock-wait 100 --json prune
        [ "$status" -eq 0 ]
        wait "$bpid"
        BG_PIDS=
        restores_same big "$T/big"
        all_survivors_restore
        run timeout -k 5 120 "$BERTH" check --read-data
        [ "$status" -eq 0 ]
        run timeout -k 5 60 "$BERTH" --json prune
        [ "$status" -eq 0 ]
        restores_same big "$T/big"
}

@test "kill -9 of prune at any step loses nothing; check --read-data passes and the next prune finishes" {
        for point in after-scan after-mark after-condemn after-repack after-delete; do
                rm -rf "$T"/*
                make_garbage_repo
                drop_snapshot "$DROP_ID"
                drop_snapshot "$MIXED_ID"
                before=$(pack_bytes)
                run env BERTH_TEST_CRASH_AT=$point timeout -k 5 120 "$BERTH" prune
                echo "$point: status $status"
                [ "$status" -eq 137 ]
                run timeout -k 5 120 "$BERTH" check --read-data
                echo "$output"
                [ "$status" -eq 0 ]
                all_survivors_restore
                run timeout -k 5 120 "$BERTH" --json prune
                [ "$status" -eq 0 ]
                [ "$(pack_bytes)" -lt $((before - 3000000)) ]
                run timeout -k 5 120 "$BERTH" check --read-data
                [ "$status" -eq 0 ]
                all_survivors_restore
                # a catalog rebuild right after a crash treats condemned packs as garbage again
        done
}

@test "kill -9 during prune, then catalog rebuild: condemned packs are garbage again, nothing lost" {
        # Several rounds: the rebuild may record a kept chunk in the old pack
        # or in its copy, and the next repack may write the copy again byte
        # for byte (which must then stay, not be condemned as the old one).
        for round in 1 2 3 4; do
                rm -rf "$T"/*
                make_garbage_repo
                drop_snapshot "$DROP_ID"
                drop_snapshot "$MIXED_ID"
                run env BERTH_TEST_CRASH_AT=after-repack timeout -k 5 120 "$BERTH" prune
                [ "$status" -eq 137 ]
                berth catalog rebuild > /dev/null
                run timeout -k 5 120 "$BERTH" check --read-data
                [ "$status" -eq 0 ]
                before=$(pack_bytes)
                run timeout -k 5 120 "$BERTH" --json prune
                [ "$status" -eq 0 ]
                [ "$(json_get '["packs_deleted"]' <<< "$output")" -ge 3 ]
                [ "$(json_get '["bytes_freed"]' <<< "$output")" -eq $((before - $(pack_bytes))) ]
                all_survivors_restore
                run timeout -k 5 120 "$BERTH" check --read-data
                [ "$status" -eq 0 ]
        done
}

@test "a snapshot file the catalog does not list still protects its chunks" {
        make_garbage_repo
        # the catalog forgets "drop" while its file stays
        mv "$BERTH_REPO/snapshots/$DROP_ID" "$T/held"
        berth catalog rebuild > /dev/null
        cp "$T/held" "$BERTH_REPO/snapshots/$DROP_ID"
        run berth --json snapshots
        [[ "$output" != *"$DROP_ID"* ]]
        run timeout -k 5 120 "$BERTH" --json prune
        [ "$status" -eq 0 ]
        [ "$(json_get '["snapshots"]' <<< "$output")" -eq 4 ]
        [ "$(json_get '["packs_deleted"]' <<< "$output")" -eq 0 ]
        berth catalog rebuild > /dev/null
        restores_same drop "$T/drop"
        run timeout -k 5 120 "$BERTH" check --read-data
        [ "$status" -eq 0 ]
}

@test "a snapshot file that cannot be read makes prune refuse and delete nothing" {
        make_garbage_repo
        drop_snapshot "$MIXED_ID"
        # a snapshot file whose bytes no longer hash to its name
        printf 'garbage' >> "$BERTH_REPO/snapshots/$DROP_ID"
        before=$(find "$BERTH_REPO/packs" -type f | sort | xargs sha256sum)
        run timeout -k 5 120 "$BERTH" prune
        [ "$status" -eq 1 ]
        [[ "$output" == *"${DROP_ID:0:12}"* ]]
        [[ "$output" == *"catalog rebuild"* ]]
        [[ "$output" == *"check"* ]]
        [ "$(find "$BERTH_REPO/packs" -type f | sort | xargs sha256sum)" = "$before" ]
        run timeout -k 5 120 "$BERTH" --json prune --dry-run
        [ "$status" -eq 1 ]
}

@test "packs a killed backup left behind are reclaimed by prune" {
        init_small
        mkdir -p "$T/keep" "$T/big"
        head -c 1500000 /dev/urandom > "$T/keep/k.bin"
        berth backup --path "$T/keep" --name keep > /dev/null
        base=$(pack_count)
        head -c 120M /dev/urandom | (cd "$T/big" && split -b 1M)
        # not under timeout: the kill must reach berth itself (it is killed below)
        "$BERTH" backup --path "$T/big" --name big > /dev/null 2>&1 &
        bpid=$!
        BG_PIDS=$bpid
        # stopped as soon as some packs are written, then killed
        for _ in $(seq 1 3000); do [ "$(pack_count)" -ge $((base + 4)) ] && break; sleep 0.01; done
        kill -STOP "$bpid"
        kill -9 "$bpid"
        wait "$bpid" || true
        BG_PIDS=
        [ "$(pack_count)" -ge $((base + 4)) ]
        run berth --json snapshots big
        [ "$output" = "[]" ] || [[ "$output" != *'"big"'* ]]
        # (stderr says what recovery indexed)
        json=$(timeout -k 5 120 "$BERTH" --json prune 2> "$T/err")
        [ "$(json_get '["packs_deleted"]' <<< "$json")" -ge 4 ]
        [ "$(pack_count)" -eq "$base" ]
        [ -z "$(ls -A "$BERTH_REPO/tmp")" ]
        restores_same keep "$T/keep"
        run timeout -k 5 120 "$BERTH" check --read-data
        [ "$status" -eq 0 ]
}

@test "prune --help documents the phases, the grace period and the report; bad options are usage errors" {
        run berth prune --help
        [ "$status" -eq 0 ]
        [[ "$output" == *"--dry-run"* && "$output" == *"--max-unused"* && "$output" == *"--grace"* ]]
        [[ "$output" == *"two phases"* && "$output" == *"kill"* && "$output" == *"append-only"* ]]
        berth init > /dev/null
        run berth prune --max-unused 150
        [ "$status" -eq 2 ]
        run berth prune --grace soon
        [ "$status" -eq 2 ]
        run berth --json prune --grace 1h
        [ "$status" -eq 0 ]
}

@test "prune over ssh:// runs on the repository's host, so its catalog forgets the deleted packs" {
        command -v /usr/sbin/sshd > /dev/null || skip "openssh-server is not installed"
        load sshd
        export HOME=$T/home BERTH_CACHE_DIR=$T/cache
        mkdir -p "$HOME"
        unset SSH_AUTH_SOCK SSH_AGENT_PID
        unset SSHD_PORT SSHD_EXTRA
        sshd_up "$T/sshd"
        BG_PIDS=$SSHD_PID
        sshd_known_line ed25519 > "$T/known_hosts"
        make_garbage_repo
        drop_snapshot "$DROP_ID"
        before=$(find "$BERTH_REPO/packs" -type f | sort | xargs sha256sum)
        run timeout -k 5 120 "$BERTH" -r "ssh://root@127.0.0.1:$SSHD_PORT$BERTH_REPO" -i "$SSHD_USER_KEY" \
                --known-hosts "$T/known_hosts" --remote-berth "$BERTH" prune
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"deleted 3 pack(s)"* ]]
        [ "$(find "$BERTH_REPO/packs" -type f | sort | xargs sha256sum)" != "$before" ]
        # the repository's own catalog agrees: nothing left to do there
        run timeout -k 5 120 "$BERTH" --json prune
        [ "$status" -eq 0 ]
        [ "$(json_get '["packs_deleted"]' <<< "$output")" -eq 0 ]
        run timeout -k 5 120 "$BERTH" check --read-data
        [ "$status" -eq 0 ]
        restores_same keep "$T/keep"
}

@test "--grace keeps condemned packs; a backup meanwhile stores their data again; a later prune deletes them" {
        make_garbage_repo
        drop_snapshot "$DROP_ID"
        before=$(pack_bytes)
        run timeout -k 5 120 "$BERTH" --json prune --grace 1h
        [ "$status" -eq 0 ]
        [ "$(json_get '["packs_waiting"]' <<< "$output")" -ge 3 ]
        [ "$(json_get '["packs_deleted"]' <<< "$output")" -eq 0 ]
        [ "$(pack_bytes)" -eq "$before" ]
        run timeout -k 5 120 "$BERTH" check --read-data
        [ "$status" -eq 0 ]
        # condemned chunks are not deduplicated against: stored again
        run timeout -k 5 60 "$BERTH" --json backup --path "$T/drop" --name again
        [ "$status" -eq 0 ]
        [ "$(json_get '["bytes_added"]' <<< "$output")" -gt 2000000 ]
        run timeout -k 5 120 "$BERTH" --json prune
        [ "$status" -eq 0 ]
        [ "$(json_get '["packs_waiting"]' <<< "$output")" -eq 0 ]
        restores_same again "$T/drop"
        all_survivors_restore
        run timeout -k 5 120 "$BERTH" check --read-data
        [ "$status" -eq 0 ]
}

@test "a pack written again byte for byte after prune condemned it is live again: the later prune keeps it" {
        init_small
        mkdir -p "$T/tiny" "$T/keep"
        # no file data: its pack holds one chunk, the manifest, so a
        # backup of the same tree writes the very same pack
        ln -s "some/target-$RANDOM$RANDOM" "$T/tiny/link"
        : > "$T/tiny/empty"
        head -c 500000 /dev/urandom > "$T/keep/k.bin"
        berth backup --path "$T/keep" --name keep > /dev/null
        berth backup --path "$T/tiny" --name tiny > /dev/null
        drop_snapshot "$(snap_id tiny)"
        packs_before=$(find "$BERTH_REPO/packs" -type f | sort)
        run timeout -k 5 120 "$BERTH" --json prune --grace 1h
        [ "$status" -eq 0 ]
        [ "$(json_get '["packs_waiting"]' <<< "$output")" -eq 1 ]
        # the same data, stored again: the very same pack (name and bytes)
        berth backup --path "$T/tiny" --name tiny > /dev/null
        [ "$(find "$BERTH_REPO/packs" -type f | sort)" = "$packs_before" ]
        run timeout -k 5 120 "$BERTH" --json prune
        [ "$status" -eq 0 ]
        [ "$(json_get '["packs_deleted"]' <<< "$output")" -eq 0 ]
        [ "$(json_get '["packs_waiting"]' <<< "$output")" -eq 0 ]
        restores_same tiny "$T/tiny"
        restores_same keep "$T/keep"
        run timeout -k 5 120 "$BERTH" check --read-data
        [ "$status" -eq 0 ]
}

@test "forget --prune: a keep policy removes snapshots, then prune shrinks the repository and every survivor restores" {
        make_garbage_repo
        # a second version of keep, so the policy has something to drop there too
        head -c 2000000 /dev/urandom > "$T/keep/k2.bin"
        berth backup --path "$T/keep" --name keep > /dev/null
        before=$(pack_bytes)
        run timeout -k 5 120 "$BERTH" --json forget --keep-last 1 --name keep --name drop --name mixed --prune
        [ "$status" -eq 0 ]
        json=$output
        # only the older keep goes: drop and mixed have one snapshot each (only-snapshot guard)
        [ "$(json_get '["removed"].__len__()' <<< "$json")" -eq 1 ]
        freed=$(json_get '["prune"]["bytes_freed"]' <<< "$json")
        [ $((before - $(pack_bytes))) -eq "$freed" ]
        # now drop and mixed go entirely (--keep-last 0), and prune frees their packs
        before=$(pack_bytes)
        run timeout -k 5 120 "$BERTH" --json forget --keep-last 0 --name drop --name mixed --prune
        [ "$status" -eq 0 ]
        freed=$(json_get '["prune"]["bytes_freed"]' <<< "$output")
        [ "$freed" -gt 3000000 ]
        [ $((before - $(pack_bytes))) -eq "$freed" ]
        [ "$(berth --json snapshots | json_get '.__len__()')" -eq 2 ]
        all_survivors_restore
        run timeout -k 5 120 "$BERTH" check --read-data
        [ "$status" -eq 0 ]
        # --prune with --dry-run is refused
        run "$BERTH" forget --keep-last 1 --dry-run --prune
        [ "$status" -eq 2 ]
}
