#!/usr/bin/env bats
# Retention: berth forget (by id, by a keep policy), berth tag --keep, and
# what must stay true afterwards: the survivors restore byte-identical,
# every catalog query is right, check passes, catalog rebuild does not bring
# a forgotten snapshot back, and keep/ objects in a repository are data.
#
# Snapshot times come from BERTH_TEST_NOW (unix seconds, a test-only hook of
# backup) and the policy's periods are computed in TZ=UTC unless a test says
# otherwise.

load lib
load sshd

export TZ=UTC

# lib's teardown, and the sshd of the ssh:// test
eval "lib_$(declare -f teardown)"
teardown() {
        sshd_down
        lib_teardown
}

# snap NAME WHEN: backs up $T/src as NAME at WHEN (a date(1) string, UTC),
# keeps a copy of what it held in $T/exp/<id>, prints the id.
snap() {
        local when id
        when=$(date -u -d "$2" +%s)
        id=$(BERTH_TEST_NOW=$when berth backup --path "$T/src" --name "$1" | tail -n 1)
        mkdir -p "$T/exp"
        cp -a "$T/src" "$T/exp/$id"
        echo "$id"
}

# A small tree; each snapshot changes something in it.
make_src() {
        mkdir -p "$T/src/sub"
        head -c 1000000 /dev/urandom > "$T/src/shared.bin"
        echo base > "$T/src/sub/base.txt"
        ln -s sub/base.txt "$T/src/link"
}

# step N: the tree of the Nth snapshot
step() {
        echo "snapshot $1" > "$T/src/n.txt"
        head -c 20000 /dev/urandom > "$T/src/sub/data-$1.bin"
        rm -f "$T/src/sub/data-$(($1 - 2)).bin"
}

# ids of NAME's snapshots, oldest first, one per line
ids_of() {
        berth --json snapshots "$1" | python3 -c 'import json,sys; [print(s["id"]) for s in json.load(sys.stdin)]'
}

# the objects of the repository (what a dry run must not change)
objects() {
        (cd "$BERTH_REPO" && find . -path ./tmp -prune -o -type f ! -name 'catalog.db*' ! -name lock -print |
                sort | xargs sha256sum)
}

# A series "pg" of eight snapshots over two ISO weeks (S[1]..S[8]) and a
# series "web" of two.
#   S1 Thu 01-01 10:00  S2 Thu 01-01 20:00  S3 Sat 01-03 09:00  (ISO week 1)
#   S4 Tue 01-06 09:00  S5 Thu 01-08 09:00  S6 Thu 01-08 12:00
#   S7 Fri 01-09 09:00  S8 Fri 01-09 18:00                      (ISO week 2)
# --keep-last 2 --keep-daily 3 --keep-weekly 2 keeps
#   S8 (last, daily, weekly), S7 (last), S6 (daily), S4 (daily), S3 (weekly)
# and forgets S5, S2, S1.
series() {
        berth init > /dev/null
        make_src
        local when=("" "2026-01-01 10:00" "2026-01-01 20:00" "2026-01-03 09:00" "2026-01-06 09:00"
                "2026-01-08 09:00" "2026-01-08 12:00" "2026-01-09 09:00" "2026-01-09 18:00")
        S=("")
        for i in 1 2 3 4 5 6 7 8; do
                step "$i"
                S+=("$(snap pg "${when[$i]}")")
        done
        echo web > "$T/src/web.txt"
        W1=$(snap web "2026-01-02 10:00")
        W2=$(snap web "2026-01-05 10:00")
        [ "$(ids_of pg | wc -l)" -eq 8 ]
}

POLICY=(--keep-last 2 --keep-daily 3 --keep-weekly 2)

# restores each id given and compares it with the tree it was made from
restores_identical() {
        for id in "$@"; do
                rm -rf "$T/out"
                berth restore "$id" --target "$T/out" > /dev/null
                python3 "$TREECMP" --no-root-times "$T/exp/$id/" "$T/out/" ||
                        { echo "snapshot $id does not restore identical"; return 1; }
                diff -r "$T/exp/$id" "$T/out"
        done
}

@test "forget by policy removes exactly the expected snapshots; every survivor restores identical" {
        series
        run berth forget --name pg "${POLICY[@]}"
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"removed 3 snapshot(s), kept 5"* ]]
        [ "$(ids_of pg)" = "$(printf '%s\n' "${S[3]}" "${S[4]}" "${S[6]}" "${S[7]}" "${S[8]}")" ]
        # the other series was not touched
        [ "$(ids_of web)" = "$(printf '%s\n' "$W1" "$W2")" ]
        # the forgotten snapshot files are gone, the packs stay (prune's job)
        for i in 1 2 5; do [ ! -e "$BERTH_REPO/snapshots/${S[$i]}" ]; done
        restores_identical "${S[3]}" "${S[4]}" "${S[6]}" "${S[7]}" "${S[8]}" "$W1" "$W2"
        run berth check
        [ "$status" -eq 0 ]
        [[ "$output" == *"checked 7 snapshots"*"no problems found"* ]]
        [[ "$output" != *"not indexed"* ]]
}

@test "after forget, ls, find, diff and NAME@TIME answer for the snapshots that remain" {
        series
        berth forget --name pg "${POLICY[@]}" > /dev/null
        # S6's tree: n.txt says 6, data-5 and data-6 are there
        run berth cat "${S[6]}" n.txt
        [ "$output" = "snapshot 6" ]
        run berth ls "${S[6]}" sub
        [[ "$output" == *data-5.bin* ]] && [[ "$output" == *data-6.bin* ]] && [[ "$output" != *data-4.bin* ]]
        # find sees each remaining snapshot once per match, forgotten ones never
        run berth --json find n.txt --name pg
        [ "$(echo "$output" | wc -l)" -eq 5 ]
        for i in 1 2 5; do [[ "$output" != *"${S[$i]}"* ]]; done
        # data-4 was in S4 and S5 (forgotten): only S4 has it now
        run berth --json find data-4.bin
        [ "$(echo "$output" | wc -l)" -eq 1 ]
        [[ "$output" == *"${S[4]}"* ]]
        # diff across the gap S4 -> S6 (S5 is gone)
        run berth diff "${S[4]}" "${S[6]}"
        [ "$status" -eq 0 ]
        [[ "$output" == *data-3.bin* ]] && [[ "$output" == *data-4.bin* ]] && [[ "$output" == *data-5.bin* ]]
        [[ "$output" == *data-6.bin* ]] && [[ "$output" == *n.txt* ]] && [[ "$output" != *data-2.bin* ]]
        [[ "$output" == *"2 added, 2 removed"* ]]
        # NAME@TIME: the newest at or before 01-08 10:00 was S5, now S4
        rm -rf "$T/out"
        berth restore "pg@2026-01-08T10:00:00Z" --target "$T/out" > /dev/null
        diff -r "$T/exp/${S[4]}" "$T/out"
        run berth snapshots pg
        [[ "$output" == *"${S[8]:0:12}"* ]]
}

@test "forget --dry-run changes nothing and names the rules that keep each snapshot" {
        series
        before=$(objects)
        snaps_before=$(berth --json snapshots)
        run berth forget "${POLICY[@]}" --name pg --dry-run
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"would remove  ${S[5]:0:12}"* ]]
        [[ "$output" == *"would remove  ${S[1]:0:12}"* ]]
        [[ "$output" == *"keep          ${S[8]:0:12}  2026-01-09T18:00:00Z  (last, daily, weekly)"* ]]
        [[ "$output" == *"keep          ${S[7]:0:12}  2026-01-09T09:00:00Z  (last)"* ]]
        [[ "$output" == *"keep          ${S[3]:0:12}  2026-01-03T09:00:00Z  (weekly)"* ]]
        [[ "$output" == *"3 snapshot(s) would be removed, 5 kept; nothing changed"* ]]
        run berth --json forget "${POLICY[@]}" --name pg --dry-run
        [ "$status" -eq 0 ]
        python3 - "$output" "${S[@]}" <<'EOF'
import json, sys
r = json.loads(sys.argv[1]); S = sys.argv[2:]
assert r["dry_run"] is True and r["removed"] == [], r
g, = r["groups"]
assert g["name"] == "pg"
assert [e["id"] for e in g["forget"]] == [S[5], S[2], S[1]], g["forget"]
rules = {e["id"]: e["rules"] for e in g["keep"]}
assert rules == {S[8]: ["last", "daily", "weekly"], S[7]: ["last"], S[6]: ["daily"], S[4]: ["daily"],
                 S[3]: ["weekly"]}, rules
EOF
        [ "$(objects)" = "$before" ]
        [ "$(berth --json snapshots)" = "$snaps_before" ]
}

@test "--keep SPEC takes the label syntax and the --keep-* flags win per rule; bad policies are usage errors" {
        series
        # SPEC says last=5, the flag says last=2: last=2, daily=3, weekly=2 as POLICY
        run berth --json forget --name pg --keep "last=5, daily=3,weekly=2" --keep-last 2 --dry-run
        [ "$status" -eq 0 ]
        [ "$(echo "$output" | json_get '["groups"][0]["forget"][0]["id"]')" = "${S[5]}" ]
        [ "$(echo "$output" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["groups"][0]["keep"]))')" -eq 5 ]
        run berth forget --keep "last=1,fortnightly=2"
        [ "$status" -eq 2 ]
        [[ "$output" == *"unknown rule 'fortnightly'"* ]]
        run berth forget --keep "last=-1"
        [ "$status" -eq 2 ]
        run berth forget --keep "last=1,last=2"
        [ "$status" -eq 2 ]
        [[ "$output" == *"given twice"* ]]
        run berth forget --keep-daily x
        [ "$status" -eq 2 ]
        run berth forget --name pg
        [ "$status" -eq 2 ]
        [[ "$output" == *"at least one --keep-* rule"* ]]
        run berth forget
        [ "$status" -eq 2 ]
        run berth forget "${S[1]}" --keep-last 1
        [ "$status" -eq 2 ]
        [ "$(ids_of pg | wc -l)" -eq 8 ]
}

@test "a protected snapshot survives policies, forget by id refuses it, --no-keep lifts it" {
        series
        run berth tag "${S[1]:0:10}" --keep
        [ "$status" -eq 0 ]
        [[ "$output" == *"protected"* ]]
        [ -f "$BERTH_REPO/keep/${S[1]}" ]
        run berth snapshots pg
        [[ "$(echo "$output" | grep "${S[1]:0:12}")" == *keep ]]
        [[ "$(echo "$output" | grep "${S[2]:0:12}")" != *keep ]]
        [ "$(berth --json snapshots pg | json_get '[0]["protected"]')" = True ]
        [ "$(berth --json snapshots pg | json_get '[1]["protected"]')" = False ]
        # protected: kept, and counts for no rule (S8 still last, S7 too)
        run berth forget --name pg --keep-last 2
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"keep          ${S[1]:0:12}  2026-01-01T10:00:00Z  (protected)"* ]]
        [ "$(ids_of pg)" = "$(printf '%s\n' "${S[1]}" "${S[7]}" "${S[8]}")" ]
        # even --keep-last 0 leaves it
        berth forget --name pg --keep-last 0 > /dev/null
        [ "$(ids_of pg)" = "${S[1]}" ]
        run berth forget "${S[1]}"
        [ "$status" -eq 1 ]
        [[ "$output" == *"is protected"*"--no-keep"* ]]
        [ "$(ids_of pg)" = "${S[1]}" ]
        restores_identical "${S[1]}"
        run berth tag pg --no-keep
        [ "$status" -eq 0 ]
        [ ! -e "$BERTH_REPO/keep/${S[1]}" ]
        run berth forget pg
        [ "$status" -eq 0 ]
        [ -z "$(ids_of pg)" ]
        run berth tag "${S[2]}" --keep
        [ "$status" -eq 1 ]
        run berth tag "${S[7]}"
        [ "$status" -eq 2 ]
}

@test "the only snapshots of a name survive a policy unless --keep-last 0" {
        series
        # a policy that keeps none keeps the newest, saying why
        run berth forget --name web --keep-daily 0
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"keep          ${W2:0:12}  2026-01-05T10:00:00Z  (only-snapshot)"* ]]
        [ "$(ids_of web)" = "$W2" ]
        run berth forget --name web --keep-hourly 0 --keep-weekly 0
        [ "$(ids_of web)" = "$W2" ]
        run berth --json forget --name web --keep-monthly 0 --dry-run
        [ "$(echo "$output" | json_get '["groups"][0]["keep"][0]["rules"]')" = "['only-snapshot']" ]
        # --keep-last 0 is the way to let a whole series go
        run berth forget --name web --keep-last 0
        [ "$status" -eq 0 ]
        [ -z "$(ids_of web)" ]
        [ "$(ids_of pg | wc -l)" -eq 8 ]
        run berth check
        [ "$status" -eq 0 ]
}

@test "forget SNAPSHOT by id prefix and NAME@latest; the series goes on after its newest is forgotten" {
        berth init > /dev/null
        mkdir -p "$T/src"
        echo a > "$T/src/a"
        echo b > "$T/src/b"
        A=$(snap s "2026-02-01 10:00")
        mv "$T/src/b" "$T/b.away"           # B lacks b
        B=$(snap s "2026-02-02 10:00")
        run berth forget "s@latest"
        [ "$status" -eq 0 ]
        [[ "$output" == *"removed       ${B:0:12}"* ]]
        [ "$(ids_of s)" = "$A" ]
        # b comes back unchanged (same mtime): the next snapshot is indexed
        # against A, and must list b
        mv "$T/b.away" "$T/src/b"
        C=$(snap s "2026-02-03 10:00")
        run berth ls "$C"
        [[ "$output" == *b* ]]
        run berth --json find b --name s
        [ "$(echo "$output" | wc -l)" -eq 2 ]
        run berth diff "$A" "$C"
        [[ "$output" == *"0 added, 0 removed, 1 modified"* ]]   # the top directory's mtime
        ! echo "$output" | grep -q ' b$'
        # and the file index of C has no hole: ls of every snapshot matches its tree
        [ "$(berth ls "$C" | sort | tr '\n' ' ')" = "a b " ]
        restores_identical "$A" "$C"
        # by a unique id prefix
        run berth forget "${A:0:8}"
        [ "$status" -eq 0 ]
        [ "$(ids_of s)" = "$C" ]
        run berth forget "${A:0:8}"
        [ "$status" -eq 1 ]
        [[ "$output" == *"no snapshot"* ]]
        run berth check
        [ "$status" -eq 0 ]
}

@test "catalog rebuild after forget does not bring forgotten snapshots back and keeps protection" {
        series
        berth tag "${S[2]}" --keep > /dev/null
        berth forget --name pg "${POLICY[@]}" > /dev/null
        want=$(printf '%s\n' "${S[2]}" "${S[3]}" "${S[4]}" "${S[6]}" "${S[7]}" "${S[8]}")
        [ "$(ids_of pg)" = "$want" ]
        run berth catalog rebuild
        [ "$status" -eq 0 ]
        [ "$(ids_of pg)" = "$want" ]
        [ "$(berth --json snapshots pg | json_get '[0]["protected"]')" = True ]
        # also when the catalog is lost altogether
        rm "$BERTH_REPO"/catalog.db*
        berth catalog rebuild > /dev/null
        [ "$(ids_of pg)" = "$want" ]
        [ "$(berth --json snapshots pg | json_get '[0]["protected"]')" = True ]
        run berth forget "${S[2]}"
        [ "$status" -eq 1 ]
        run berth check
        [ "$status" -eq 0 ]
        restores_identical "${S[2]}" "${S[8]}"
}

@test "a forget interrupted after its catalog change passes check and is finished by the next writer" {
        series
        # the state a kill -9 between the two steps leaves: the catalog no
        # longer lists S5 and remembers it is being forgotten, the file is there
        cp "$BERTH_REPO/snapshots/${S[5]}" "$T/s5"
        berth forget "${S[5]}" > /dev/null
        cp "$T/s5" "$BERTH_REPO/snapshots/${S[5]}"
        sqlite3 "$BERTH_REPO/catalog.db" "INSERT INTO snapshot_forgets VALUES ('${S[5]}', 0)"
        run berth check
        [ "$status" -eq 0 ]
        [[ "$output" == *"no problems found"* ]]
        # a rebuild finishes it rather than indexing the file again
        run berth catalog rebuild
        [ "$status" -eq 0 ]
        [ ! -e "$BERTH_REPO/snapshots/${S[5]}" ]
        [ "$(ids_of pg | wc -l)" -eq 7 ]
        # and so does any writer (here: a backup)
        cp "$T/s5" "$BERTH_REPO/snapshots/${S[5]}"
        sqlite3 "$BERTH_REPO/catalog.db" "INSERT INTO snapshot_forgets VALUES ('${S[5]}', 0)"
        snap other "2026-03-01 10:00" > /dev/null
        [ ! -e "$BERTH_REPO/snapshots/${S[5]}" ]
        [ "$(sqlite3 "$BERTH_REPO/catalog.db" 'SELECT count(*) FROM snapshot_forgets')" -eq 0 ]
        [ "$(ids_of pg | wc -l)" -eq 7 ]
        run berth check
        [ "$status" -eq 0 ]
        [[ "$output" != *"not indexed"* ]]
}

@test "hostile keep/ objects are ignored with a warning, never acted on" {
        series
        mkdir -p "$BERTH_REPO/keep"
        echo junk > "$BERTH_REPO/keep/not-an-id"
        echo '{"snapshot":"x"}' > "$BERTH_REPO/keep/$(printf 'f%.0s' {1..64})"
        # a valid name with junk content: the name protects, the content is not read as anything
        head -c 300 /dev/urandom > "$BERTH_REPO/keep/${S[1]}"
        run berth forget --name pg --keep-last 1
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"warning"*"keep/not-an-id"*"ignored"* ]]
        [[ "$output" == *"keep/ffffffffffff"*"no such snapshot"*"ignored"* ]]
        [[ "$output" == *"keep/${S[1]}"*"content"* ]]
        [ "$(ids_of pg)" = "$(printf '%s\n' "${S[1]}" "${S[8]}")" ]
        # the bad objects are left alone, a rebuild is not disturbed by them
        [ -f "$BERTH_REPO/keep/not-an-id" ]
        run berth catalog rebuild
        [ "$status" -eq 0 ]
        [ "$(ids_of pg)" = "$(printf '%s\n' "${S[1]}" "${S[8]}")" ]
        [ "$(berth --json snapshots pg | json_get '[0]["protected"]')" = True ]
        run berth check
        [ "$status" -eq 0 ]
}

@test "over ssh://: tag --keep marks the repository and every reader sees it; forget and tag --no-keep run on its host" {
        command -v /usr/sbin/sshd >/dev/null || skip "openssh-server is not installed"
        series
        export HOME=$T/home BERTH_CACHE_DIR=$T/cache
        mkdir -p "$HOME"
        sshd_up "$T/sshd"
        sshd_known_line ed25519 > "$T/known_hosts"
        URL=ssh://root@127.0.0.1:$SSHD_PORT$BERTH_REPO
        rb() {
                timeout -k 5 120 "$BERTH" -r "$URL" -i "$SSHD_USER_KEY" --known-hosts "$T/known_hosts" \
                        --remote-berth "$BERTH" "$@"
        }
        run rb tag "${S[2]}" --keep
        echo "$output"
        [ "$status" -eq 0 ]
        [ -f "$BERTH_REPO/keep/${S[2]}" ]
        # the client sees it, and so does the repository's host
        [ "$(rb --json snapshots pg | json_get '[1]["protected"]')" = True ]
        [ "$(berth --json snapshots pg | json_get '[1]["protected"]')" = True ]
        run rb forget --name pg "${POLICY[@]}" --dry-run
        [ "$status" -eq 0 ]
        [[ "$output" == *"keep          ${S[2]:0:12}  2026-01-01T20:00:00Z  (protected)"* ]]
        # forget runs on the repository's host, and honours the mark made remotely
        run rb forget --name pg "${POLICY[@]}"
        echo "$output"
        [ "$status" -eq 0 ]
        [ "$(ids_of pg)" = "$(printf '%s\n' "${S[2]}" "${S[3]}" "${S[4]}" "${S[6]}" "${S[7]}" "${S[8]}")" ]
        # and the client's cache follows
        [ "$(rb --json snapshots pg | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" -eq 6 ]
        # lifting the mark deletes an object: that runs there too
        run rb tag "${S[2]}" --no-keep
        echo "$output"
        [ "$status" -eq 0 ]
        [ ! -e "$BERTH_REPO/keep/${S[2]}" ]
        [ "$(rb --json snapshots pg | python3 -c 'import json,sys; print(any(x["protected"] for x in json.load(sys.stdin)))')" = False ]
}

@test "kill -9 during a policy forget: check passes, the survivors restore, the next forget finishes" {
        berth init > /dev/null
        mkdir -p "$T/src"
        head -c 200000 /dev/urandom > "$T/src/big"
        n=0
        # a forget of a few snapshots takes some tens of milliseconds: the
        # kills land at different points of it (or after it)
        for delay in 0.015 0.02 0.025 0.03 0.04; do
                for i in 1 2 3 4 5 6; do
                        n=$((n + 1))
                        echo "$n" > "$T/src/n"
                        snap k "@$((1775001600 + n * 3600))" > /dev/null
                done
                "$BERTH" forget --name k --keep-last 2 > /dev/null 2>&1 &
                pid=$!
                sleep "$delay"
                kill -9 "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
                echo "after ${delay}s: $(ids_of k | wc -l) listed, $(ls "$BERTH_REPO/snapshots" | wc -l) files"
                run berth check
                echo "$output"
                [ "$status" -eq 0 ]
                [[ "$output" == *"no problems found"* ]]
                # whatever the catalog lists is whole
                for id in $(ids_of k | tail -n 3); do
                        rm -rf "$T/out"
                        berth restore "$id" --target "$T/out" > /dev/null
                        diff -r "$T/exp/$id" "$T/out"
                done
        done
        run berth forget --name k --keep-last 2
        [ "$status" -eq 0 ]
        [ "$(ids_of k | wc -l)" -eq 2 ]
        [ "$(ls "$BERTH_REPO/snapshots" | wc -l)" -eq 2 ]
        [ "$(sqlite3 "$BERTH_REPO/catalog.db" 'SELECT count(*) FROM snapshot_forgets')" -eq 0 ]
        run berth check
        [ "$status" -eq 0 ]
        [[ "$output" != *"not indexed"* ]]
}
