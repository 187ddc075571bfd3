#!/usr/bin/env bats
# remote-maint.bats — forget, prune and tag --no-keep on an ssh:// repository:
# they run on the repository's host (its catalog and lock are there), the
# output comes back, and the local cache follows.  Real sshd on loopback
# (sshd.bash); the far side's berth is $BERTH too, its repository $REPO.

load lib
load sshd

bats_require_minimum_version 1.5.0

setup() {
        sshd_repo_setup
        timeout -k 5 60 "$BERTH" init -r "$REPO" >/dev/null
}

teardown() {
        sshd_repo_teardown
}

# rb ARGS: berth on the ssh:// repository, with our key and known_hosts
rb() {
        timeout -k 5 120 "$BERTH" -r "$URL" -i "$SSHD_USER_KEY" --known-hosts "$KH" --remote-berth "$BERTH" "$@"
}

# far ARGS: berth on the repository itself, as its host sees it
far() {
        timeout -k 5 120 "$BERTH" -r "$REPO" "$@"
}

# ids FILE: the snapshot ids in a `snapshots --json` output, sorted
ids() {
        python3 -c 'import json,sys; print("\n".join(sorted(s["id"] for s in json.load(open(sys.argv[1])))))' "$1"
}

# three snapshots of "data" with different contents, one of "other"
make_snapshots() {
        mkdir -p "$T/src" "$T/other"
        head -c 2000000 /dev/urandom > "$T/other/o"
        rb backup --path "$T/other" -n other >/dev/null
        for i in 1 2 3; do
                head -c 3000000 /dev/urandom > "$T/src/f"
                echo "version $i" > "$T/src/v"
                cp "$T/src/f" "$T/f.$i"
                rb backup --path "$T/src" -n data >/dev/null
                sleep 1
        done
}

@test "remote-maint: forget --keep-last 1 and prune over ssh:// run on the far side; the rest restores identical" {
        make_snapshots
        rb snapshots --json > "$T/before.json"      # the local cache lists all four
        [ "$(ids "$T/before.json" | wc -l)" -eq 4 ]

        run rb forget --name data --keep-last 1
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"removed 2 snapshot(s), kept 1"* ]]

        far snapshots --json > "$T/far.json"
        rb snapshots --json > "$T/client.json"
        [ "$(ids "$T/far.json" | wc -l)" -eq 2 ]
        [ "$(ids "$T/far.json")" = "$(ids "$T/client.json")" ]
        # the newest of data stays
        python3 - "$T/far.json" <<'PY'
import json, sys
names = sorted(s["name"] for s in json.load(open(sys.argv[1])))
assert names == ["data", "other"], names
PY

        before=$(du -sb "$REPO" | cut -f1)
        run rb prune
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"deleted "*"freed"* ]]
        after=$(du -sb "$REPO" | cut -f1)
        echo "du: $before -> $after"
        [ "$after" -lt $((before - 4000000)) ]

        run far check --read-data
        echo "$output"
        [ "$status" -eq 0 ]

        # the client's cache followed: both restore identical through ssh://
        rb restore data@latest --target "$T/out-data" >/dev/null
        rb restore other@latest --target "$T/out-other" >/dev/null
        cmp "$T/src/f" "$T/out-data/f"
        cmp "$T/src/v" "$T/out-data/v"
        cmp "$T/other/o" "$T/out-other/o"
        # a new backup through ssh:// of what only the pruned packs held sends
        # it again (a cache still listing those chunks would skip them)
        mkdir -p "$T/again" && cp "$T/f.1" "$T/again/f"
        rb backup --path "$T/again" -n again >/dev/null
        run far check --read-data
        echo "$output"
        [ "$status" -eq 0 ]
        rb restore again@latest --target "$T/out-again" >/dev/null
        cmp "$T/f.1" "$T/out-again/f"
}

@test "remote-maint: forget --json and prune --json over ssh:// print the far side's JSON" {
        make_snapshots
        run --separate-stderr rb forget --keep-last 1 --json
        [ "$status" -eq 0 ]
        echo "$output" > "$T/forget.json"
        python3 - "$T/forget.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["dry_run"] is False, j
assert len(j["removed"]) == 2, j
assert sorted(g["name"] for g in j["groups"]) == ["data", "other"], j
PY
        run --separate-stderr rb prune --json
        [ "$status" -eq 0 ]
        echo "$output" > "$T/prune.json"
        python3 - "$T/prune.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["dry_run"] is False and j["bytes_freed"] > 4000000 and j["snapshots"] == 2, j
PY
        # forget --prune runs both there
        rb backup --path "$T/src" -n data >/dev/null
        head -c 3000000 /dev/urandom > "$T/src/f"
        rb backup --path "$T/src" -n data >/dev/null
        run --separate-stderr rb forget --name data --keep-last 1 --prune --json
        [ "$status" -eq 0 ]
        echo "$output" > "$T/both.json"
        python3 - "$T/both.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert len(j["removed"]) == 2 and j["prune"]["snapshots"] == 2, j
PY
}

@test "remote-maint: hostile argument values reach the far side verbatim and run nothing" {
        mkdir -p "$T/src" && echo x > "$T/src/x"
        evil="it's \"q\" \$(touch $T/marker1) \`touch $T/marker2\`; touch $T/marker3 & | > $T/marker4
touch $T/marker5 \\' \$HOME *"
        rb backup --path "$T/src" -n "$evil" >/dev/null
        rb backup --path "$T/src" -n "$evil" >/dev/null
        rb backup --path "$T/src" -n plain >/dev/null
        rb backup --path "$T/src" -n plain >/dev/null

        run --separate-stderr rb forget --name "$evil" --keep-last 1 --dry-run --json
        [ "$status" -eq 0 ]
        echo "$output" > "$T/dry.json"
        EVIL=$evil python3 - "$T/dry.json" <<'PY'
import json, os, sys
j = json.load(open(sys.argv[1]))
assert [g["name"] for g in j["groups"]] == [os.environ["EVIL"]], j
assert len(j["groups"][0]["forget"]) == 1, j
PY
        run rb forget --name "$evil" --keep-last 1
        echo "$output"
        [ "$status" -eq 0 ]
        far snapshots --json > "$T/far.json"
        EVIL=$evil python3 - "$T/far.json" <<'PY'
import json, os, sys
names = sorted(s["name"] for s in json.load(open(sys.argv[1])))
assert names == sorted([os.environ["EVIL"], "plain", "plain"]), names
PY
        # a snapshot reference and a --host that are hostile too: refused there, as names
        run rb forget "x'; touch $T/marker6; '"
        echo "$output"
        [ "$status" -ne 0 ]
        run rb forget --host "\$(touch $T/marker7)" --keep-last 1
        [ "$status" -eq 0 ]
        run rb tag --no-keep "plain@latest; touch $T/marker8"
        [ "$status" -ne 0 ]
        for i in 1 2 3 4 5 6 7 8; do
                [ ! -e "$T/marker$i" ]
        done
        [ "$(ids "$T/far.json")" = "$(far snapshots --json > "$T/far2.json"; ids "$T/far2.json")" ]
}

@test "remote-maint: --dry-run over ssh:// changes nothing on the far side" {
        make_snapshots
        far snapshots --json > "$T/a.json"
        before=$(du -sb "$REPO" | cut -f1)
        (cd "$REPO" && find . -type f | sort | xargs sha256sum) > "$T/files.before"
        run rb forget --keep-last 1 --dry-run
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"would remove"* ]]
        [[ "$output" == *"nothing changed"* ]]
        run rb prune --dry-run
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"would delete"* ]]
        far snapshots --json > "$T/b.json"
        [ "$(ids "$T/a.json")" = "$(ids "$T/b.json")" ]
        [ "$(ids "$T/a.json" | wc -l)" -eq 4 ]
        (cd "$REPO" && find . -type f | sort | xargs sha256sum) > "$T/files.after"
        # the catalog is the far side's cache of the rest: only objects count
        diff <(grep -v 'catalog.db\|/lock$\|\./lock' "$T/files.before") \
             <(grep -v 'catalog.db\|/lock$\|\./lock' "$T/files.after")
}

@test "remote-maint: a key restricted to berth serve gets a clear error and nothing changes" {
        make_snapshots
        rb tag data@latest --keep >/dev/null
        far snapshots --json > "$T/a.json"
        (cd "$REPO" && find . -type f -not -name 'catalog.db*' | sort) > "$T/files.before"
        key=$(cat "$SSHD_DIR/user_key.pub")
        printf 'command="%s serve --stdio --restrict-to-path %s --append-only",restrict %s\n' "$BERTH" "$T" "$key" \
                > "$SSHD_DIR/authorized_keys"
        # reading through the forced serve still works
        run rb snapshots
        [ "$status" -eq 0 ]
        for cmd in "forget --keep-last 1" "forget --keep-last 1 --dry-run" "prune" "prune --dry-run" \
                   "tag data@latest --no-keep"; do
                run rb $cmd
                echo "$cmd: $output"
                [ "$status" -eq 1 ]
                [[ "$output" == *"is restricted to berth serve: run forget/prune on that host, or use a key that may run berth"* ]]
        done
        far snapshots --json > "$T/b.json"
        [ "$(ids "$T/a.json")" = "$(ids "$T/b.json")" ]
        (cd "$REPO" && find . -type f -not -name 'catalog.db*' | sort) > "$T/files.after"
        diff "$T/files.before" "$T/files.after"
}

@test "remote-maint: tag --no-keep over ssh:// lifts the protection on the far side" {
        make_snapshots
        rb tag data@latest --keep >/dev/null
        run rb forget data@latest
        [ "$status" -ne 0 ]
        run rb tag data@latest --no-keep
        echo "$output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"not protected"* ]]
        run rb forget data@latest
        echo "$output"
        [ "$status" -eq 0 ]
        far snapshots --json > "$T/far.json"
        [ "$(ids "$T/far.json" | wc -l)" -eq 3 ]
}

@test "remote-maint: a far side without berth is said as for other ssh:// commands" {
        run timeout -k 5 60 "$BERTH" -r "$URL" -i "$SSHD_USER_KEY" --known-hosts "$KH" --remote-berth /nonexistent/berth \
                forget --keep-last 1
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"cannot be run"*"--remote-berth"* ]]
}
