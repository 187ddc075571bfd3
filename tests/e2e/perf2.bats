#!/usr/bin/env bats
# Performance, round two: what the store's changes must keep true.
# OLD is a berth from before pack format 2 (BERTH_OLD, only when set:
# a baseline build): when it is there, it must still read what this berth writes into
# a format-1 repository.

load lib
load fixtures/format1
bats_require_minimum_version 1.5.0

OLD=${BERTH_OLD:-}

# pack_formats REPO: one line per pack: "<magic> <footer magic> <entries> <records> <entries with PACK_F_ALONE>"
pack_formats() {
        python3 - "$1" <<'EOF'
import os, struct, sys
for root, _, files in os.walk(os.path.join(sys.argv[1], "packs")):
    for f in files:
        b = open(os.path.join(root, f), "rb").read()
        count, tlen = struct.unpack("<II", b[-24:-16])
        esize = tlen // count if count else 0
        recs, alone = set(), 0
        for i in range(count):
            e = b[len(b) - 24 - tlen + i * esize:][:esize]
            recs.add(struct.unpack("<I", e[32:36])[0])
            alone += bool(e[48 if esize == 52 else 44] & 4)
        print(b[:8].decode(), b[-8:].decode(), count, len(recs), alone)
EOF
}

# format1_repo: an empty repository made by a berth from before pack format
# 2: OLD's own when it is there, else the checked-in fixture's (made by that
# berth, fixtures/make-format1.sh)
format1_repo() {
        if [ -x "$OLD" ]; then
                "$OLD" init > /dev/null
        else
                format1_unpack empty "$BERTH_REPO"
        fi
}

@test "perf2: a format-1 repository gets format-1 packs (one chunk per record), so the berths that made it read them" {
        format1_repo
        mkdir -p "$T/src"
        for i in $(seq 1 150); do seq "$i" $((i * 40)) > "$T/src/f$i.txt"; done
        seq 1 100000 > "$T/src/big"
        head -c 1000000 /dev/urandom > "$T/src/rand"
        run berth backup --path "$T/src" --name a
        [ "$status" -eq 0 ]
        run pack_formats "$BERTH_REPO"
        echo "$output"
        [ -n "$output" ]
        # every pack: format-1 magic and footer, as many records as chunks, no PACK_F_ALONE
        [ -z "$(printf '%s\n' "$output" | grep -v '^BERTHPK1 BPKTRL01 ')" ]
        printf '%s\n' "$output" | awk '{ if ($3 != $4 || $5 != 0) exit 1 }'
        # the config still says 1 and this berth reads its own packs
        run python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["format"])' "$BERTH_REPO/config"
        [ "$output" = 1 ]
        run berth check --read-data
        echo "$output"
        [ "$status" -eq 0 ]
        run berth restore a --target "$T/out1"
        [ "$status" -eq 0 ]
        diff -r "$T/src" "$T/out1"
        # a catalog rebuilt from the packs alone agrees
        rm -f "$BERTH_REPO"/catalog.db*
        run berth catalog rebuild
        [ "$status" -eq 0 ]
        run berth check --read-data
        [ "$status" -eq 0 ]
        # an incremental backup on top: still format 1
        seq 5 70000 > "$T/src/big"
        run berth backup --path "$T/src" --name a
        [ "$status" -eq 0 ]
        [ -z "$(pack_formats "$BERTH_REPO" | grep -v '^BERTHPK1 BPKTRL01 ')" ]
        # the older berth reads, checks and restores what this one wrote, and
        # backs up on top: only where it is (not in CI), and not a skip
        [ -x "$OLD" ] || return 0
        run "$OLD" check --read-data
        echo "$output"
        [ "$status" -eq 0 ]
        run "$OLD" restore a --target "$T/out2"
        [ "$status" -eq 0 ]
        diff -r "$T/src" "$T/out2"
        echo more > "$T/src/more"
        run "$OLD" backup --path "$T/src" --name a
        [ "$status" -eq 0 ]
        run berth check --read-data
        [ "$status" -eq 0 ]
}

@test "perf2: a new repository still gets format-2 packs with multi-chunk records" {
        berth init > /dev/null
        mkdir -p "$T/src"
        for i in $(seq 1 150); do seq "$i" $((i * 40)) > "$T/src/f$i.txt"; done
        run berth backup --path "$T/src" --name a
        [ "$status" -eq 0 ]
        run pack_formats "$BERTH_REPO"
        echo "$output"
        [ -z "$(printf '%s\n' "$output" | grep -v '^BERTHPK2 BPKTRL02 ')" ]
        # fewer records than chunks somewhere
        printf '%s\n' "$output" | awk '$4 < $3 { found = 1 } END { exit !found }'
}
