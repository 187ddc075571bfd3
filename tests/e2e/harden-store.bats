#!/usr/bin/env bats
# Issue 8, items 4 and 14: one damaged object never stops backups, and a
# backup of data the repository already holds stays within bounded memory.

load lib

# peak_kib CMD...: runs CMD under /usr/bin/time; prints its peak RSS in KiB
# on the last line of $output, keeps its exit status in $status.
peak_rss() {
        run timeout -k 5 300 /usr/bin/time -f 'PEAK_RSS_KIB %M' "$@"
        peak=$(printf '%s\n' "$output" | sed -n 's/^PEAK_RSS_KIB //p' | tail -n 1)
        echo "peak RSS ${peak} KiB: $*"
}

# ---- item 14 ------------------------------------------------------------------

@test "a backup of data already stored peaks under 40 MiB (second name, --force-read, touched file)" {
        # AddressSanitizer's quarantine and shadow memory are not Berth's
        if ldd "$BERTH" | grep -q libasan; then
                skip "peak RSS means nothing under AddressSanitizer"
        fi
        mkdir "$T/src"
        head -c 400000000 /dev/urandom > "$T/src/big"
        touch -d '-1 hour' "$T/src/big"
        berth init
        # issue 11: every queue of the backup is bounded in bytes (read buffer
        # 1 MiB, workers 8 MiB, ticket copies 4 MiB, queued records 4 MiB);
        # measured 23-26 MiB here, 29-32 MiB before
        peak_rss "$BERTH" backup --path "$T/src" --name first
        [ "$status" -eq 0 ]
        [ "$peak" -le 40960 ]
        peak_rss "$BERTH" backup --path "$T/src" --name first --force-read
        [ "$status" -eq 0 ]
        [ "$peak" -le 40960 ]
        peak_rss "$BERTH" backup --path "$T/src" --name second
        [ "$status" -eq 0 ]
        [ "$peak" -le 40960 ]
        touch -d '-30 min' "$T/src/big"
        peak_rss "$BERTH" backup --path "$T/src" --name first
        [ "$status" -eq 0 ]
        [ "$peak" -le 40960 ]
        # nothing new was stored, and the data is right
        [ "$(find "$BERTH_REPO/packs" -type f | wc -l)" -le 30 ]
        run timeout -k 5 300 "$BERTH" restore second@latest --target "$T/out"
        [ "$status" -eq 0 ]
        cmp "$T/src/big" "$T/out/big"
}

# ---- item 4 ------------------------------------------------------------------

# small_tree DIR: two files of random data and a text file, all an hour old
# (so that an unchanged file is reused, not re-read as racy).
small_tree() {
        mkdir -p "$1/sub"
        head -c 2000000 /dev/urandom > "$1/keep"
        head -c 1500000 /dev/urandom > "$1/sub/other"
        seq 1 100000 > "$1/sub/text"
        touch -d '-1 hour' "$1/keep" "$1/sub/other" "$1/sub/text" "$1/sub" "$1"
}

# newest_id NAME: the id of the newest snapshot of NAME
newest_id() {
        sqlite3 "$BERTH_REPO/catalog.db" \
                "select s.hash from snapshots s join names n on n.id = s.name where n.name = '$1' order by s.seq desc limit 1"
}

# pack_of CHUNK_HEX: packs/xx/<hash> of the pack the catalog lists for a chunk
pack_of() {
        local h
        h=$(sqlite3 "$BERTH_REPO/catalog.db" "select lower(hex(p.hash)) from chunks c join packs p on p.id = c.pack where c.hash = x'$1'")
        [ -n "$h" ] && echo "$BERTH_REPO/packs/${h:0:2}/$h"
}

# backup_restores_identical NAME: the newest snapshot of NAME restores to a
# tree identical to $T/src
restores_identical() {
        rm -rf "$T/out"
        run timeout -k 5 120 "$BERTH" restore "$1@latest" --target "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
        run python3 "$TREECMP" "$T/src" "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
}

@test "a damaged newest snapshot file does not stop the next backup: it warns, reads everything, succeeds" {
        small_tree "$T/src"
        berth init
        run berth backup --path "$T/src" --name vol
        [ "$status" -eq 0 ]
        old=$(newest_id vol)
        # truncated, then garbage: both are damage
        head -c 100 "$BERTH_REPO/snapshots/$old" > "$T/part"
        cat "$T/part" > "$BERTH_REPO/snapshots/$old"
        # a file removed meanwhile must not stay in the new snapshot's listing
        rm "$T/src/sub/other"
        touch -d '-1 hour' "$T/src/sub"
        run timeout -k 5 120 "$BERTH" backup --path "$T/src" --name vol
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(printf '%s\n' "$output" | grep -c "warning: .*previous snapshot ${old:0:12} cannot be read")" -eq 1 ]
        [[ "$output" == *"2 read, 0 reused"* ]]
        new=$(newest_id vol)
        [ "$new" != "$old" ]
        restores_identical vol
        # and the one after that is an ordinary incremental backup
        echo garbage > "$BERTH_REPO/snapshots/$old"
        run timeout -k 5 120 "$BERTH" backup --path "$T/src" --name vol
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"0 read, 2 reused"* ]]
        [[ "$output" != *"warning"* ]]
        restores_identical vol
        # the file index of the snapshot made without a parent is whole
        run berth ls "$new" sub
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$output" = "text" ]
        run berth ls "$new"
        [ "$status" -eq 0 ]
        [ "$(printf '%s\n' "$output" | sort | tr '\n' ' ')" = "keep sub/ " ]
        run berth ls "$old" sub
        [ "$status" -eq 0 ]
        [ "$(printf '%s\n' "$output" | sort | tr '\n' ' ')" = "other text " ]
}

@test "a lost pack holding the newest snapshot's file list does not stop the next backup" {
        small_tree "$T/src"
        berth init
        run berth backup --path "$T/src" --name vol
        [ "$status" -eq 0 ]
        old=$(newest_id vol)
        man=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifest"][0])' "$BERTH_REPO/snapshots/$old")
        pack=$(pack_of "$man")
        [ -f "$pack" ]
        rm "$pack"
        run timeout -k 5 120 "$BERTH" backup --path "$T/src" --name vol
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(printf '%s\n' "$output" | grep -c "warning: .*previous snapshot ${old:0:12} cannot be read")" -eq 1 ]
        [ "$(newest_id vol)" != "$old" ]
        restores_identical vol
        # a third backup compares with the new snapshot again
        run timeout -k 5 120 "$BERTH" backup --path "$T/src" --name vol
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"0 read, 3 reused"* ]]
        restores_identical vol
}

@test "after a data pack is lost, an unchanged tree is stored again, not deduplicated against the lost chunks" {
        mkdir -p "$T/src/sub"
        head -c 600000 /dev/urandom > "$T/src/keep"
        head -c 600000 /dev/urandom > "$T/src/gone"
        seq 1 20000 > "$T/src/sub/text"
        touch -d '-1 hour' "$T/src/keep" "$T/src/gone" "$T/src/sub/text" "$T/src/sub" "$T/src"
        # The data first reaches the repository through another name, so
        # the pack that holds it holds none of vol's file list (every record
        # differs by its inode, and no chunk list is long enough to fill a
        # file-list chunk alone).
        cp -a "$T/src" "$T/seed"
        berth init
        run berth backup --path "$T/seed" --name seed
        [ "$status" -eq 0 ]
        data_pack=$(find "$BERTH_REPO/packs" -type f)
        [ "$(printf '%s\n' "$data_pack" | wc -l)" -eq 1 ]
        run berth backup --path "$T/src" --name vol
        [ "$status" -eq 0 ]
        damaged=$(newest_id vol)
        for m in $(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["manifest"]))' \
                "$BERTH_REPO/snapshots/$damaged"); do
                [ "$(pack_of "$m")" != "$data_pack" ]
        done
        rm "$data_pack"
        rm "$T/src/gone"
        touch -d '-1 hour' "$T/src"
        # the same tree minus one file, without --force-read
        run timeout -k 5 120 "$BERTH" backup --path "$T/src" --name vol
        echo "$output"
        [ "$status" -eq 0 ]
        backup_output=$output
        new=$(newest_id vol)
        restores_identical vol
        [[ "$backup_output" == *"pack(s) listed in the catalog are missing"* ]]
        [[ "$backup_output" == *"2 read, 0 reused"* ]]
        # check: the new snapshot is whole; the old one is named, with a hint
        run berth check
        echo "$output"
        [ "$status" -eq 5 ]
        [[ "$output" == *"snapshot ${damaged:0:12} (vol,"*"is damaged"*"'gone'"* ]]
        [[ "$output" != *"snapshot ${new:0:12}"* ]]
        [[ "$output" == *"is missing"* ]]
        [[ "$output" == *"back up each affected volume again"* ]]
        [[ "$output" == *"catalog rebuild"* ]]
        run berth check --read-data
        [[ "$output" != *"snapshot ${new:0:12}"* ]]
        # after a rebuild, only what is truly gone stays damaged
        run berth catalog rebuild
        [ "$status" -eq 0 ]
        run berth check
        echo "$output"
        [[ "$output" != *"snapshot ${new:0:12}"* ]]
        [[ "$output" == *"snapshot ${damaged:0:12}"*"'gone'"* ]]
        restores_identical vol
}

@test "a truncated data pack counts as lost: the next backup stores its chunks again" {
        small_tree "$T/src"
        berth init
        run berth backup --path "$T/src" --name vol
        [ "$status" -eq 0 ]
        pack=$(find "$BERTH_REPO/packs" -type f)
        truncate -s 1000 "$pack"
        run timeout -k 5 120 "$BERTH" backup --path "$T/src" --name other
        echo "$output"
        [ "$status" -eq 0 ]
        restores_identical other
}

# A lost pack written again byte for byte by the next backup.  When the
# backup stores the lost chunks in the same order, the new pack has the
# lost one's content hash, hence its name, and its records sit at the same
# offsets.  The previous snapshot's file list, read (and failed) from that
# name at the start of the backup, is read again from it when the new
# snapshot is indexed: the store's record cache kept the first read's
# "No such file or directory" under that name and offset, and the backup
# failed although the pack was there.  The test above saw it about 1 run in
# 30 (three files: two workers, whose order decides the pack's bytes); one
# small file packs the same way every time.
@test "a lost pack the next backup writes again byte for byte is read back from its new copy" {
        mkdir -p "$T/src"
        echo hello > "$T/src/a"
        touch -d '-1 hour' "$T/src/a" "$T/src"
        berth init
        run timeout -k 5 120 "$BERTH" backup --path "$T/src" --name vol
        [ "$status" -eq 0 ]
        old=$(newest_id vol)
        man=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifest"][0])' "$BERTH_REPO/snapshots/$old")
        pack=$(pack_of "$man")
        [ -f "$pack" ]
        cp "$pack" "$T/lost"
        rm "$pack"
        run timeout -k 5 120 "$BERTH" backup --path "$T/src" --name vol
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(printf '%s\n' "$output" | grep -c "warning: .*previous snapshot ${old:0:12} cannot be read")" -eq 1 ]
        [[ "$output" != *"error"* ]]
        # the case under test: the very same pack is back (same name, bytes)
        cmp "$T/lost" "$pack"
        [ "$(find "$BERTH_REPO/packs" -type f | wc -l)" -eq 1 ]
        new=$(newest_id vol)
        [ -n "$new" ] && [ "$new" != "$old" ]
        restores_identical vol
        # the next backup finds nothing missing and compares with the new one
        run timeout -k 5 120 "$BERTH" backup --path "$T/src" --name vol
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" != *"warning"* ]]
        [[ "$output" == *"0 read, 1 reused"* ]]
        restores_identical vol
        run timeout -k 5 300 "$BERTH" check --read-data
        echo "$output"
        [ "$status" -eq 0 ]
}
