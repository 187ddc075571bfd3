#!/usr/bin/env bats
# Page-aligned chunks: database files change in pages, so one changed page
# must cost about one chunk of two pages (the default) in the repository,
# while other files keep content-defined chunks.

load lib

PAGE=8192

# pg_tree DIR NFILES: a fake PostgreSQL data directory (PG_VERSION, base/,
# global/) with NFILES relation files of 128 random 8 KiB pages each, and a
# text file whose size is not a multiple of a page.
pg_tree() {
        local d=$1 n=$2
        mkdir -p "$d/base/1" "$d/global"
        echo 15 > "$d/PG_VERSION"
        for i in $(seq 1 "$n"); do
                head -c $((128 * PAGE)) /dev/urandom > "$d/base/1/1638$i"
        done
        head -c $((2 * PAGE)) /dev/urandom > "$d/global/1262"
        python3 - "$d/notes.txt" <<'EOF'
import random, sys
r = random.Random(7)
words = ["alpha", "beta", "gamma", "delta", "page", "chunk", "volume", "berth"]
with open(sys.argv[1], "w") as f:
    f.write(" ".join(r.choice(words) + str(r.randrange(10**6)) for _ in range(150000)) + "\n.")
EOF
        [ $(($(stat -c %s "$d/notes.txt") % PAGE)) -ne 0 ]
}

# change_page FILE N: overwrites page N of FILE with random bytes.
change_page() {
        head -c "$PAGE" /dev/urandom | dd of="$1" bs="$PAGE" seek="$2" conv=notrunc status=none
}

# eight_pages_added DIR SEED ARGS...: changes one page (SEED picks which) in
# each of the eight relation files of DIR, backs DIR up with ARGS and prints
# the new snapshot's bytes_added.
eight_pages_added() {
        local d=$1 seed=$2
        shift 2
        for i in $(seq 1 8); do change_page "$d/base/1/1638$i" $((i * 13 + seed)); done
        backup_json bytes_added --path "$d" "$@"
}

# The most eight chunks of two pages and eight files' manifest parts cost.
EIGHT=$((8 * (2 * PAGE + 4096)))

# backup_json FIELD ARGS...: runs a backup with --json and prints FIELD.
backup_json() {
        local field=$1
        shift
        local out
        out=$(berth --json backup "$@") || return 1
        printf '%s' "$out" | python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$field"
}

@test "one changed page of a PostgreSQL file costs about one page, and restores byte-identical" {
        pg_tree "$T/src" 1
        berth init
        backup_json bytes_added --path "$T/src" --name pg > /dev/null
        change_page "$T/src/base/1/16381" 77
        added=$(backup_json bytes_added --path "$T/src" --name pg)
        echo "bytes_added after one changed page: $added"
        # the chunk of two pages holding it, and the manifest's changed part
        [ "$added" -le $((2 * PAGE + 6144)) ]
        run berth restore pg@latest --target "$T/out"
        [ "$status" -eq 0 ]
        run python3 "$TREECMP" "$T/src" "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
}

@test "one changed page in each of eight files costs eight page-aligned chunks, not eight content-defined ones" {
        pg_tree "$T/src" 8
        berth init
        backup_json bytes_added --path "$T/src" --name pg > /dev/null
        added=$(eight_pages_added "$T/src" 0 --name pg)
        echo "bytes_added after 8 changed pages: $added"
        # each file's page, and each file's part of the manifest (its chunk
        # list: a tree chunk of hashes, a few KiB)
        [ "$added" -le "$EIGHT" ]
}

@test "a text file in a database tree keeps content-defined chunks" {
        pg_tree "$T/src" 1
        berth init
        backup_json bytes_added --path "$T/src" --name pg > /dev/null
        # insert 100 bytes in the middle: content-defined chunks shift, pages would not
        python3 - "$T/src/notes.txt" <<'EOF'
import sys
p = sys.argv[1]
b = open(p, "rb").read()
m = len(b) // 2
open(p, "wb").write(b[:m] + b"X" * 100 + b[m:])
EOF
        new=$(backup_json chunks_new --path "$T/src" --name pg)
        echo "chunks_new after an insertion: $new"
        # one or two data chunks, and the manifest's
        [ "$new" -le 5 ]
        run berth restore pg@latest --target "$T/out"
        [ "$status" -eq 0 ]
        cmp "$T/src/notes.txt" "$T/out/notes.txt"
}

@test "a SQLite database with 8 KiB pages is detected by its header anywhere" {
        mkdir -p "$T/src/app"
        python3 - "$T/src/app/data.db" <<'EOF'
import os, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("pragma page_size=8192")
c.execute("create table t(id integer primary key, v blob)")
c.executemany("insert into t values(?, ?)", [(i, os.urandom(600)) for i in range(3000)])
c.commit()
EOF
        berth init
        backup_json bytes_added --path "$T/src" --name app > /dev/null
        python3 - "$T/src/app/data.db" <<'EOF'
import os, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("update t set v = ? where id = 1500", (os.urandom(600),))
c.commit()
EOF
        added=$(backup_json bytes_added --path "$T/src" --name app)
        echo "bytes_added after one changed row: $added"
        # the chunks of the row's page and of page 1 (SQLite's change
        # counter), and the manifest
        [ "$added" -le $((4 * PAGE + 6144)) ]
        run berth restore app@latest --target "$T/out"
        [ "$status" -eq 0 ]
        cmp "$T/src/app/data.db" "$T/out/app/data.db"
}

@test "--page-size off keeps content-defined chunks, and an explicit size pages any tree" {
        pg_tree "$T/src" 8
        rm "$T/src/PG_VERSION" # no longer a PostgreSQL tree: auto finds nothing
        berth init
        backup_json bytes_added --path "$T/src" --name pg > /dev/null
        added=$(eight_pages_added "$T/src" 0 --name pg --page-size 8k)
        echo "bytes_added with --page-size 8k (first paged backup): $added"
        added=$(eight_pages_added "$T/src" 1 --name pg --page-size 8k)
        echo "bytes_added with --page-size 8k: $added"
        [ "$added" -le "$EIGHT" ]
        pg_tree "$T/src2" 8
        backup_json bytes_added --path "$T/src2" --name pg2 --page-size off > /dev/null
        added=$(eight_pages_added "$T/src2" 0 --name pg2 --page-size off)
        echo "bytes_added with --page-size off: $added"
        [ "$added" -gt "$EIGHT" ]
        run berth backup --path "$T/src" --page-size 3k
        [ "$status" -eq 2 ]
}

@test "a repository made with --page-size off does not page, and says so in its config" {
        pg_tree "$T/src" 8
        berth init --page-size off
        grep -q '"size":"off"' "$BERTH_REPO/config"
        backup_json bytes_added --path "$T/src" --name pg > /dev/null
        added=$(eight_pages_added "$T/src" 0 --name pg)
        echo "bytes_added: $added"
        [ "$added" -gt "$EIGHT" ]
}

@test "files named like database files with bogus sizes and headers back up and restore" {
        pg_tree "$T/src" 1
        head -c 12345 /dev/urandom > "$T/src/base/1/16999"
        head -c 100 /dev/urandom > "$T/src/t.ibd"
        : > "$T/src/empty.ibd"
        head -c 5000 /dev/urandom > "$T/src/collection-0.wt"
        mkdir "$T/src/mysql"
        head -c 70 /dev/urandom > "$T/src/mysql/ibdata1"
        head -c 40000 /dev/urandom > "$T/src/mysql/undo_001"
        # a SQLite header with page size 3 and one with 1 (65536) on a short file
        python3 - "$T/src" <<'EOF'
import os, sys
d = sys.argv[1]
for name, ps in (("bad.sqlite", 3), ("short.sqlite", 1)):
    with open(os.path.join(d, name), "wb") as f:
        f.write(b"SQLite format 3\0" + ps.to_bytes(2, "big") + os.urandom(24000))
EOF
        berth init
        run berth backup --path "$T/src" --name h
        [ "$status" -eq 0 ]
        run berth restore h@latest --target "$T/out"
        [ "$status" -eq 0 ]
        run python3 "$TREECMP" "$T/src" "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
}

@test "backing up a changed database tree peaks under 40 MiB" {
        # AddressSanitizer's quarantine and shadow memory are not Berth's
        if ldd "$BERTH" | grep -q libasan; then
                skip "peak RSS means nothing under AddressSanitizer"
        fi
        pg_tree "$T/src" 1
        head -c $((16384 * PAGE)) /dev/urandom > "$T/src/base/1/16400"
        berth init
        berth -q backup --path "$T/src" --name pg > /dev/null
        # about 10% of the pages change
        python3 - "$T/src/base/1/16400" <<'EOF'
import os, random, sys
r = random.Random(3)
with open(sys.argv[1], "r+b") as f:
    for n in r.sample(range(16384), 1638):
        f.seek(n * 8192)
        f.write(os.urandom(8192))
EOF
        run timeout -k 5 300 /usr/bin/time -f 'PEAK_RSS_KIB %M' "$BERTH" backup --path "$T/src" --name pg
        [ "$status" -eq 0 ]
        peak=$(printf '%s\n' "$output" | sed -n 's/^PEAK_RSS_KIB //p' | tail -n 1)
        echo "peak RSS $peak KiB"
        [ "$peak" -le 40960 ]
        run berth restore pg@latest --target "$T/out"
        [ "$status" -eq 0 ]
        cmp "$T/src/base/1/16400" "$T/out/base/1/16400"
}
