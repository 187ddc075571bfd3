#!/bin/bash
# agent-enc.sh — what encryption costs a first backup (make bench-agent):
# the same volume backed up into a new plain and a new encrypted repository,
# alternately, ROUNDS times each, two ways:
#   command  `berth backup VOLUME`, a process of its own: it opens the key
#            (reads the password, scrypt) once, as every command does;
#   agent    a job of `berth agent` (run-now), which opened the key once at
#            start and hands it to its jobs: what a scheduled backup pays.
# Prints medians of wall, CPU and peak RSS per way and mode and the
# encrypted/plain ratios.  The volume holds a corpus of make bench
# (CORPUS=pg|pgheavy|files|rand, default pg: /var/tmp/berth-bench/pg-v1)
# when it is there, else 512 MiB of generated data.  Needs dockerd (a
# private one is started).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${BERTH:?set BERTH}"
ROUNDS=${ROUNDS:-5}
corpus=${BENCH_DIR:-/var/tmp/berth-bench}/${CORPUS:-pg}-v1
. "$here/../e2e/docker.bash"
work=$(mktemp -d /var/tmp/berth-agent-enc.XXXXXX)
agent_pid=
cleanup() {
        [ -z "$agent_pid" ] || { kill "$agent_pid" 2> /dev/null || true; wait "$agent_pid" 2> /dev/null || true; }
        docker_down
        rm -rf "$work"
}
trap cleanup EXIT
docker_up
export BERTH_CONFIG=/dev/null BERTH_RUNTIME_DIR="$work/run" BERTH_CACHE_DIR="$work/cache"
echo bench-password > "$work/pw"
chmod 600 "$work/pw"
export BERTH_PASSWORD_FILE="$work/pw"

docker volume create --label berth.schedule=daily benchvol > /dev/null
mp=$(docker volume inspect -f '{{.Mountpoint}}' benchvol)
if [ -d "$corpus" ]; then
        cp -a "$corpus/." "$mp/"
        what="the ${CORPUS:-pg} corpus of make bench"
else
        python3 - "$mp" <<'PY'
import os, random, sys
rng = random.Random(7)
for i in range(64):
    with open("%s/f%02d" % (sys.argv[1], i), "wb") as f:
        for _ in range(8):  # 8 MiB: half random, half repetitive text
            f.write(rng.randbytes(1 << 19))
            f.write((b"row %d of a table, with some text that repeats\n" % rng.randrange(1 << 20)) * 10922)
PY
        what="512 MiB of generated data (run make bench first for the pg corpus)"
fi
find "$mp" -type f -exec cat {} + > /dev/null
echo "volume: $(du -sh "$mp" | cut -f1), $what; $ROUNDS rounds"

fresh() { # mode: a new empty repository of that kind
        rm -rf "$work/repo" "$work/cache"
        if [ "$1" = enc ]; then "$BERTH" -r "$work/repo" init -q --encrypt; else "$BERTH" -r "$work/repo" init -q; fi > /dev/null
        sync
}

# one line per run: way mode wall_s cpu_s peak_kib
by_command() {
        fresh "$1"
        /usr/bin/time -f "command $1 %e %U %S %M" -o "$work/t" "$BERTH" -r "$work/repo" -q --no-progress backup benchvol > /dev/null
        awk '{ printf "%s %s %s %.2f %d\n", $1, $2, $3, $4 + $5, $6 }' "$work/t"
}

by_agent() {
        fresh "$1"
        BERTH_REPO="$work/repo" timeout -k 5 300 "$BERTH" agent 2> "$work/agent.log" &
        agent_pid=$!
        for _ in $(seq 1 100); do [ -S "$work/run/agent.sock" ] && break; sleep 0.1; done
        "$BERTH" run-now benchvol > /dev/null
        for _ in $(seq 1 600); do
                "$BERTH" --json status > "$work/status.json"
                python3 - "$work/status.json" "$1" <<'PY' && break
import json, sys
l = json.load(open(sys.argv[1]))["volumes"][0]["last"]
if not l:
    sys.exit(1)
assert l["status"] == "ok", l
print("agent %s %.2f %.2f %d" % (sys.argv[2], l["duration_ns"] / 1e9, l["cpu_ns"] / 1e9, l["peak_rss_bytes"] // 1024))
PY
                sleep 0.2
        done
        kill "$agent_pid"
        wait "$agent_pid" || true
        agent_pid=
}

for _ in $(seq 1 "$ROUNDS"); do
        for mode in plain enc; do
                by_command $mode
                by_agent $mode
        done
done > "$work/runs"

python3 - "$work/runs" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    way, mode, wall, cpu, kib = line.split()
    runs.setdefault((way, mode), []).append((float(wall), float(cpu), int(kib)))
med = lambda v, i: statistics.median(x[i] for x in v)
print("%-8s %-6s %9s %9s %11s" % ("way", "repo", "wall s", "CPU s", "peak MiB"))
for way in ("command", "agent"):
    for mode in ("plain", "enc"):
        v = runs[(way, mode)]
        print("%-8s %-6s %9.2f %9.2f %11.1f" % (way, mode, med(v, 0), med(v, 1), med(v, 2) / 1024))
for way in ("command", "agent"):
    p, e = runs[(way, "plain")], runs[(way, "enc")]
    print("encrypted/plain first backup, %-7s: wall %.2fx, CPU %.2fx (medians)" % (
        way, med(e, 0) / med(p, 0), med(e, 1) / med(p, 1)))
PY
