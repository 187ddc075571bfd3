#!/usr/bin/env bats
# Pack format 2: consecutive new chunks compressed together in records.
# OLD is the berth before format 2 (BERTH_OLD, only when set),
# used to make format-1 repositories and to compare repository sizes when it
# is there; without it (CI) the checked-in fixture fixtures/format1-repo.tar.gz,
# made by that berth, stands in, so no test here skips.

load lib
load fixtures/format1
bats_require_minimum_version 1.5.0

OLD=${BERTH_OLD:-}

# packinfo REPO: one line per pack: "<magic> <entries> <records> <largest record's chunk count>"
packinfo() {
        python3 - "$1" <<'EOF'
import os, struct, sys
for root, _, files in os.walk(os.path.join(sys.argv[1], "packs")):
    for f in files:
        b = open(os.path.join(root, f), "rb").read()
        magic = b[:8].decode()
        count, tlen = struct.unpack("<II", b[-24:-16])
        esize = tlen // count if count else 0
        recs = {}
        for i in range(count):
            e = b[len(b) - 24 - tlen + i * esize:][:esize]
            off = struct.unpack("<I", e[32:36])[0]
            recs[off] = recs.get(off, 0) + 1
        print(magic, count, len(recs), max(recs.values()) if recs else 0)
EOF
}

# flip_in_record REPO: flips a byte in the middle of a record holding
# several chunks; prints the pack path
flip_in_record() {
        python3 - "$1" <<'EOF'
import os, struct, sys
for root, _, files in os.walk(os.path.join(sys.argv[1], "packs")):
    for f in files:
        p = os.path.join(root, f)
        b = bytearray(open(p, "rb").read())
        count, tlen = struct.unpack("<II", b[-24:-16])
        if b[:8] != b"BERTHPK2" or count == 0:
            continue
        recs = {}
        for i in range(count):
            e = b[len(b) - 24 - tlen + i * 52:][:52]
            off, slen = struct.unpack("<II", e[32:40])
            recs.setdefault((off, slen), []).append(e[:32].hex())
        for (off, slen), ids in recs.items():
            if len(ids) >= 3:
                b[off] ^= 0x55  # the frame header: the whole record fails to decode
                open(p, "wb").write(b)
                print(p)
                sys.exit(0)
sys.exit(1)
EOF
}

# small_files DIR N: N small compressible text files
small_files() {
        mkdir -p "$1"
        python3 - "$1" "$2" <<'EOF'
import os, random, sys
random.seed(11)
words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
for i in range(int(sys.argv[2])):
    with open(os.path.join(sys.argv[1], "f%04d.txt" % i), "w") as f:
        for j in range(random.randint(20, 400)):
            f.write('{"id": %d, "name": "%s %s", "status": "active", "email": "user%d@example.com", "n": %d}\n'
                    % (j, random.choice(words), random.choice(words), random.randint(0, 999), random.randint(0, 99999)))
EOF
}

@test "frames: a mixed tree round-trips byte-identical through format-2 packs with multi-chunk records" {
        make_tree "$T/src"
        small_files "$T/src/small" 300
        berth init
        run berth backup --path "$T/src" --name m
        [ "$status" -eq 0 ]
        run packinfo "$BERTH_REPO"
        echo "$output"
        [[ "$output" == BERTHPK2* ]]
        [[ "$output" != *BERTHPK1* ]]
        # at least one record holds several chunks
        max=$(awk '{ if ($4 > m) m = $4 } END { print m }' <<<"$output")
        [ "$max" -ge 3 ]
        run berth restore m --target "$T/out"
        [ "$status" -eq 0 ]
        run python3 "$TREECMP" "$T/src" "$T/out"
        echo "$output"
        [ "$status" -eq 0 ]
        run berth check --read-data
        echo "$output"
        [ "$status" -eq 0 ]
        # catalog rebuild from the packs alone
        rm -f "$BERTH_REPO"/catalog.db*
        run berth catalog rebuild
        echo "$output"
        [ "$status" -eq 0 ]
        run berth check --read-data
        [ "$status" -eq 0 ]
        run berth restore m --target "$T/out2"
        [ "$status" -eq 0 ]
        run python3 "$TREECMP" "$T/src" "$T/out2"
        [ "$status" -eq 0 ]
}

@test "frames: compressible small-chunk data makes a smaller repository than format 1" {
        small_files "$T/src" 400
        for i in 1 2 3; do seq $((i * 1000)) $((i * 40000)) > "$T/src/seq$i"; done
        berth init --chunk-min 2K --chunk-avg 4K --chunk-max 16K
        berth backup --path "$T/src" --name s > /dev/null
        new=$(repo_bytes)
        # the same data into a format-1 repository with the same chunk
        # settings, made by the berth before format 2 (the fixture): this
        # berth writes it format-1 packs, one chunk per record
        format1_unpack empty "$T/f1"
        berth -r "$T/f1" backup --path "$T/src" --name s > /dev/null
        [ -z "$(packinfo "$T/f1" | grep -v '^BERTHPK1 ')" ]
        f1=$(du -sb "$T/f1/packs" | cut -f1)
        echo "# repository after a first backup: format 2 $new bytes, format 1 $f1 bytes" >&3
        [ "$new" -lt "$f1" ]
        # and by a clear margin: the chunks are compressed together
        [ $((new * 10)) -lt $((f1 * 9)) ]
        [ -x "$OLD" ] || return 0
        # and the berth before format 2 itself, when it is there
        "$OLD" -r "$T/old" init --chunk-min 2K --chunk-avg 4K --chunk-max 16K > /dev/null
        "$OLD" -r "$T/old" backup --path "$T/src" --name s > /dev/null
        old=$(du -sb "$T/old/packs" | cut -f1)
        echo "# format 1 by the berth before format 2 ($OLD): $old bytes" >&3
        [ $((new * 10)) -lt $((old * 9)) ]
}

@test "frames: a byte flipped inside a multi-chunk record: check --read-data names the chunks, files and snapshots; restore refuses" {
        small_files "$T/src" 300
        berth init
        run berth backup --path "$T/src" --name victim
        [ "$status" -eq 0 ]
        id=$(last_line)
        pack=$(flip_in_record "$BERTH_REPO")
        [ -n "$pack" ]
        run berth check --read-data
        echo "$output"
        [ "$status" -ne 0 ]
        # several chunks of the one record, each named
        [ "$(grep -c "is damaged" <<<"$output")" -ge 3 ]
        [[ "$output" == *"${id:0:12}"* ]]
        [[ "$output" == *"f0"*".txt"* ]]
        run berth restore victim --target "$T/out"
        echo "$output"
        [ "$status" -ne 0 ]
        [[ "$output" == *"damaged"* ]]
        # never wrong bytes: whatever was restored matches the source
        for f in $(cd "$T/out" 2>/dev/null && find . -type f); do
                cmp "$T/src/$f" "$T/out/$f"
        done
}

@test "frames: a format-1 repository restores, accepts new backups (format-1 packs, perf2.bats), checks and rebuilds" {
        if [ -x "$OLD" ]; then
                small_files "$T/src" 200
                "$OLD" init > /dev/null
                "$OLD" backup --path "$T/src" --name old > /dev/null
        else
                # the fixture: the same commands by that berth, on format1-tree.py's tree
                format1_unpack repo "$BERTH_REPO"
                format1_tree "$T/src"
        fi
        run packinfo "$BERTH_REPO"
        echo "$output"
        [ -n "$output" ]
        [ -z "$(printf '%s\n' "$output" | grep -v '^BERTHPK1 ')" ]
        run berth restore old --target "$T/out1"
        [ "$status" -eq 0 ]
        diff -r "$T/src" "$T/out1"
        small_files "$T/src/more" 100
        seq 1 100000 > "$T/src/big"
        run berth backup --path "$T/src" --name old
        [ "$status" -eq 0 ]
        run packinfo "$BERTH_REPO"
        echo "$output"
        [[ "$output" == *BERTHPK1* ]]
        [[ "$output" != *BERTHPK2* ]]
        run berth check --read-data
        echo "$output"
        [ "$status" -eq 0 ]
        run berth restore old --target "$T/out2"
        [ "$status" -eq 0 ]
        diff -r "$T/src" "$T/out2"
        rm -f "$BERTH_REPO"/catalog.db*
        run berth catalog rebuild
        [ "$status" -eq 0 ]
        run berth check --read-data
        [ "$status" -eq 0 ]
        run berth restore old --target "$T/out3"
        [ "$status" -eq 0 ]
        diff -r "$T/src" "$T/out3"
}

@test "frames: copy sends chunks of shared records alone, re-encoded, and the destination verifies" {
        small_files "$T/src" 200
        berth init
        berth backup --path "$T/src" --name c > /dev/null
        # the source's chunks share records
        max=$(packinfo "$BERTH_REPO" | awk '{ if ($4 > m) m = $4 } END { print m }')
        [ "$max" -ge 3 ]
        # the destination already has part of the data: only the rest travels
        mkdir "$T/part" && cp "$T/src"/f00[0-4]*.txt "$T/part/"
        berth -r "$T/dst" init
        berth -r "$T/dst" backup --path "$T/part" --name p > /dev/null
        run --separate-stderr berth copy c --to "$T/dst" --json
        echo "$output $stderr"
        [ "$status" -eq 0 ]
        run berth -r "$T/dst" check --read-data
        echo "$output"
        [ "$status" -eq 0 ]
        run berth -r "$T/dst" restore c --target "$T/out"
        [ "$status" -eq 0 ]
        diff -r "$T/src" "$T/out"
        # a third repository from the second: chunks that travelled alone travel on
        run berth -r "$T/dst" copy c --to "$T/third"
        echo "$output"
        [ "$status" -eq 0 ]
        run berth -r "$T/third" check --read-data
        [ "$status" -eq 0 ]
}

@test "frames: the record size is set at init and kept in the config" {
        berth init --record-size 64K
        run python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["record_size"])' "$BERTH_REPO/config"
        [ "$output" = 65536 ]
        run berth -r "$T/bad" init --record-size 1K
        [ "$status" -ne 0 ]
        [[ "$output" == *"record size"* ]]
        small_files "$T/src" 100
        berth backup --path "$T/src" --name r > /dev/null
        run berth restore r --target "$T/out"
        [ "$status" -eq 0 ]
        diff -r "$T/src" "$T/out"
}
