#!/usr/bin/env bats
# Operating Berth: make install, the systemd units, the man pages, the job
# history and `berth metrics`.
#
# The install, unit and man page tests use the source tree $BERTH was built
# in ($BERTH is <tree>/build/berth), so that they test that tree's Makefile,
# units and pages along with its binary.

load lib
load docker

SRC=$(cd "$(dirname "$BERTH")/.." && pwd)
BUILD_DIR=$(basename "$(dirname "$BERTH")")
METRICS_PY="$BATS_TEST_DIRNAME/prom-parse.py"

# lib.bash's teardown, after stopping a Docker daemon a test started
eval "lib_$(declare -f teardown)"
teardown() {
        [ -z "${DOCKER_STARTED:-}" ] || docker_down
        lib_teardown
}

# metrics_get METRIC [VOLUME]: the value of one sample of `berth metrics`
# (parsed and checked by prom-parse.py) in $M, the parser's JSON output.
metrics_get() {
        python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d[sys.argv[2]][sys.argv[3]] if len(sys.argv) > 3 else d[sys.argv[2]][""])' \
                "$M" "$@"
}

# Runs berth metrics, checks its syntax and leaves the samples in $M.
scrape() {
        M=$T/metrics.json
        timeout -k 5 60 "$BERTH" metrics > "$T/metrics.txt"
        python3 "$METRICS_PY" < "$T/metrics.txt" > "$M"
}

@test "make install DESTDIR= puts the binary, man pages, units and config in place, @BINDIR@ substituted" {
        [ -f "$SRC/Makefile" ] || skip "no source tree next to $BERTH"
        root=$T/root
        run timeout -k 5 300 make -s -C "$SRC" BUILD="$BUILD_DIR" install DESTDIR="$root" PREFIX=/opt/b \
                SYSTEMDUNITDIR=/usr/lib/systemd/system
        echo "$output"
        [ "$status" -eq 0 ]
        [ -x "$root/opt/b/bin/berth" ]
        run "$root/opt/b/bin/berth" --version
        [ "$status" -eq 0 ]
        [[ "$output" == "berth "* ]]
        [ -f "$root/opt/b/share/man/man1/berth.1" ]
        [ -f "$root/opt/b/share/man/man5/berth.conf.5" ]
        [ -f "$root/etc/berth/berth.conf" ]
        for u in berth-agent.service berth-backup.service berth-backup.timer berth-backup@.service \
                berth-backup@.timer; do
                [ -f "$root/usr/lib/systemd/system/$u" ] || { echo "missing $u"; return 1; }
                [ "$(stat -c %a "$root/usr/lib/systemd/system/$u")" = 644 ]
        done
        run grep -r '@BINDIR@' "$root/usr/lib/systemd/system"
        [ "$status" -eq 1 ]
        grep -q '^ExecStart=/opt/b/bin/berth --no-progress agent$' "$root/usr/lib/systemd/system/berth-agent.service"
        grep -q '^ExecStart=/opt/b/bin/berth .*backup.* %I$' "$root/usr/lib/systemd/system/berth-backup@.service"

        # an existing configuration is kept; uninstall removes the rest
        echo "repo = /srv/mine" > "$root/etc/berth/berth.conf"
        timeout -k 5 300 make -s -C "$SRC" BUILD="$BUILD_DIR" install DESTDIR="$root" PREFIX=/opt/b \
                SYSTEMDUNITDIR=/usr/lib/systemd/system
        [ "$(cat "$root/etc/berth/berth.conf")" = "repo = /srv/mine" ]
        timeout -k 5 300 make -s -C "$SRC" BUILD="$BUILD_DIR" uninstall DESTDIR="$root" PREFIX=/opt/b \
                SYSTEMDUNITDIR=/usr/lib/systemd/system
        [ -z "$(find "$root" -type f ! -path "$root/etc/berth/berth.conf")" ]
}

@test "systemd-analyze verify passes on every unit, templates instantiated" {
        command -v systemd-analyze > /dev/null || skip "systemd-analyze is not installed (tests/deps.sh installs it)"
        mkdir -p "$T/units"
        for u in "$SRC"/systemd/*.service "$SRC"/systemd/*.timer; do
                n=${u##*/}
                # a template is verified as an instance; the binary must exist
                sed "s|@BINDIR@|$(dirname "$BERTH")|g" "$u" > "$T/units/${n/@./@pg-data.}"
        done
        ls "$T/units"
        for u in berth-agent.service berth-backup.service berth-backup.timer berth-backup@pg-data.service \
                berth-backup@pg-data.timer; do
                [ -f "$T/units/$u" ] || { echo "missing $u"; return 1; }
        done
        cd "$T/units"
        for u in *; do
                run timeout -k 5 60 systemd-analyze verify --man=no "$u"
                echo "$u: $output"
                [ "$status" -eq 0 ]
                [ -z "$output" ]
        done
        # the agent: notify, restarted, its socket directory, the network allowed
        a=berth-agent.service
        grep -qx 'Type=notify' $a
        grep -qx 'Restart=on-failure' $a
        grep -qx 'RuntimeDirectory=berth' $a
        grep -qx 'KillMode=mixed' $a
        grep -q '^RestrictAddressFamilies=.*AF_INET6' $a
        run grep '^PrivateNetwork=' $a
        [ "$status" -eq 1 ]
        grep -q '^ProtectSystem=strict' $a
        grep -q '^ReadWritePaths=.*/var/lib/berth' $a
}

@test "man pages render without warnings; berth(1) is current and has every command; berth.conf(5) every key" {
        command -v groff > /dev/null || skip "groff is not installed (tests/deps.sh installs it)"
        for p in "$SRC/man/berth.1" "$SRC/man/berth.conf.5"; do
                run groff -man -ww -z -Tutf8 "$p"
                echo "$output"
                [ "$status" -eq 0 ]
                [ -z "$output" ]
                run env MANWIDTH=80 man --warnings -l "$p"
                [ "$status" -eq 0 ]
                run sh -c 'MANWIDTH=80 man --warnings -l "$1" 2>&1 > /dev/null' sh "$p"
                echo "$output"
                [ -z "$output" ]
        done
        # generated from this binary's help texts: stale when they changed (make man)
        python3 "$SRC/man/gen-man.py" "$BERTH" > "$T/berth.1"
        diff -u "$SRC/man/berth.1" "$T/berth.1"
        for c in $(berth --help | awk '/^Commands:/ { on = 1; next } /^$/ { on = 0 } on { print $1 }'); do
                want=".SS berth ${c//-/\\-}"
                grep -qxF "$want" "$SRC/man/berth.1" || { echo "no section for $c"; return 1; }
        done
        grep -qx '.SS berth metrics' "$SRC/man/berth.1"
        # every key load_config_file() knows is documented
        keys=$(grep -o 'strcmp(k, "[a-z_]*")' "$SRC"/agent/main.c | sed 's/.*"\(.*\)".*/\1/' | sort -u)
        [ -n "$keys" ]
        for k in $keys schedule keep volumes prune_schedule metrics_file runtime_dir; do
                grep -q "^\\.BI \"$k = \"" "$SRC/man/berth.conf.5" || { echo "berth.conf(5) lacks $k"; return 1; }
        done
}

@test "backup records every attempt; metrics shows success times, failures and counts that match the catalog" {
        mkdir -p "$T/src"
        seq 1 100000 > "$T/src/data"
        t0=$(date +%s)
        berth backup --path "$T/src" --name src > /dev/null
        seq 1 200000 > "$T/src/data"
        berth backup --path "$T/src" --name src > /dev/null
        run berth backup --path "$T/missing" --name broken
        [ "$status" -eq 1 ]
        t1=$(date +%s)

        # the history: one row per attempt, the failure with its reason
        [ "$(sqlite3 "$BERTH_REPO/catalog.db" "SELECT count(*) FROM jobs WHERE kind = 'backup'")" -eq 3 ]
        [ "$(sqlite3 "$BERTH_REPO/catalog.db" "SELECT status FROM jobs WHERE name = 'broken'")" = failed ]
        [[ "$(sqlite3 "$BERTH_REPO/catalog.db" "SELECT error FROM jobs WHERE name = 'broken'")" == *missing* ]]
        newest=$(berth --json snapshots src | json_get '[-1]["id"]')
        [ "$(sqlite3 "$BERTH_REPO/catalog.db" \
                "SELECT snapshot FROM jobs WHERE name = 'src' ORDER BY started DESC LIMIT 1")" = "$newest" ]

        scrape
        cat "$T/metrics.txt"
        ts=$(metrics_get berth_last_success_timestamp_seconds src)
        python3 -c "import sys; assert $t0 <= $ts <= $t1 + 1, ($ts, $t0, $t1)"
        [ "$(metrics_get berth_failures_total src)" = 0 ]
        [ "$(metrics_get berth_failures_total broken)" = 1 ]
        [ "$(metrics_get berth_last_run_success src)" = 1 ]
        [ "$(metrics_get berth_last_run_success broken)" = 0 ]
        [ "$(metrics_get berth_last_success_timestamp_seconds broken)" = 0 ]
        [ "$(metrics_get berth_snapshots src)" = 2 ]
        [ "$(metrics_get berth_snapshots broken)" = 0 ]
        added=$(berth --json snapshots src | json_get '[-1]["bytes_added"]')
        [ "$(metrics_get berth_last_bytes_added src)" = "$added" ]
        python3 -c "import sys; assert 0 < $(metrics_get berth_last_duration_seconds src) < $t1 - $t0 + 1"
        # the repository: every pack file, counted and summed
        [ "$(metrics_get berth_repository_packs)" = "$(find "$BERTH_REPO/packs" -type f | wc -l)" ]
        [ "$(metrics_get berth_repository_size_bytes)" = \
                "$(find "$BERTH_REPO/packs" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')" ]

        # a failure after successes: the last success stays, the last run is 0
        run berth backup --path "$T/missing" --name src
        [ "$status" -eq 1 ]
        scrape
        [ "$(metrics_get berth_last_success_timestamp_seconds src)" = "$ts" ]
        [ "$(metrics_get berth_failures_total src)" = 1 ]
        [ "$(metrics_get berth_last_run_success src)" = 0 ]

        run berth --json metrics
        [ "$status" -eq 0 ]
        [ "$(echo "$output" | json_get '["volumes"][1]["name"]')" = src ]
        [ "$(echo "$output" | json_get '["volumes"][1]["failures"]')" = 1 ]
        [ "$(echo "$output" | json_get '["volumes"][1]["runs"]')" = 3 ]
}

@test "metrics escapes a hostile name's backslash, quote and newline in its label" {
        mkdir -p "$T/src"
        echo x > "$T/src/f"
        name=$(printf 'we"ird\\x\nline\xff}')
        berth backup --path "$T/src" --name "$name" > /dev/null
        berth backup --path "$T/missing" --name "$name" 2> /dev/null || true
        scrape
        cat "$T/metrics.txt"
        grep -qF 'berth_failures_total{volume="we\"ird\\x\nline'$'\xef\xbf\xbd''}"} 1' "$T/metrics.txt"
        # decoded, it is the name (the byte that is not UTF-8 replaced)
        python3 - "$M" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert list(d["berth_snapshots"]) == ['we"ird\\x\nline\ufffd}'], d["berth_snapshots"]
EOF
}

@test "metrics --output replaces the file atomically, mode 0644, no temporary file left" {
        mkdir -p "$T/src" "$T/tc"
        echo x > "$T/src/f"
        berth backup --path "$T/src" --name src > /dev/null
        echo "old" > "$T/tc/berth.prom"
        ln "$T/tc/berth.prom" "$T/old-link"
        (umask 077 && timeout -k 5 60 "$BERTH" metrics --output "$T/tc/berth.prom")
        [ "$(stat -c %a "$T/tc/berth.prom")" = 644 ]
        # renamed over, not rewritten: the old inode still has the old bytes
        [ "$(cat "$T/old-link")" = old ]
        [ "$(ls -A "$T/tc")" = berth.prom ]
        berth metrics > "$T/stdout.prom"
        cmp "$T/tc/berth.prom" "$T/stdout.prom"
        python3 "$METRICS_PY" < "$T/tc/berth.prom" > /dev/null

        run berth metrics --output "$T/nodir/berth.prom"
        [ "$status" -eq 1 ]
        [ ! -e "$T/nodir" ]
        run berth metrics --output "$T/tc/x.prom" --json
        [ "$status" -eq 2 ]
        [ "$(ls -A "$T/tc")" = berth.prom ]
}

@test "metrics reads a catalog without job history as it is: snapshots count as successes" {
        mkdir -p "$T/src"
        echo x > "$T/src/f"
        berth backup --path "$T/src" --name old > /dev/null
        # as a berth without the history left it
        sqlite3 "$BERTH_REPO/catalog.db" "DROP TABLE jobs"
        scrape
        [ "$(metrics_get berth_snapshots old)" = 1 ]
        [ "$(metrics_get berth_last_run_success old)" = 1 ]
        [ "$(metrics_get berth_failures_total old)" = 0 ]
        finished=$(berth --json snapshots old | json_get '[0]["finished_ns"]')
        python3 -c "assert abs($(metrics_get berth_last_success_timestamp_seconds old) - $finished / 1e9) < 0.01"
        # a reader: nothing was written
        [ -z "$(sqlite3 "$BERTH_REPO/catalog.db" "SELECT name FROM sqlite_master WHERE name = 'jobs'")" ]
}

@test "docker: backup records each volume's job, failures (a failing pre hook, a missing volume) included" {
        command -v dockerd > /dev/null || skip "no dockerd"
        docker_up
        DOCKER_STARTED=1
        docker volume create vok > /dev/null
        docker volume create vfail > /dev/null
        docker run -d --name failing -v vfail:/data --label berth.pre='echo no >&2; exit 3' \
                berth-test:latest idle > /dev/null
        wait_state failing running
        run berth backup --all
        echo "$output"
        [ "$status" -eq 1 ]
        run berth backup nosuchvolume
        [ "$status" -eq 1 ]
        [[ "$(sqlite3 "$BERTH_REPO/catalog.db" "SELECT error FROM jobs WHERE name = 'vfail'")" == *"exited with status 3"* ]]
        scrape
        cat "$T/metrics.txt"
        [ "$(metrics_get berth_last_run_success vok)" = 1 ]
        [ "$(metrics_get berth_snapshots vok)" = 1 ]
        [ "$(metrics_get berth_failures_total vfail)" = 1 ]
        [ "$(metrics_get berth_last_run_success vfail)" = 0 ]
        [ "$(metrics_get berth_failures_total nosuchvolume)" = 1 ]
        docker rm -f failing > /dev/null
}
