#!/bin/bash
# migrate-bench.sh — a repeat migration against rsync -a (make bench-migrate).
#
# Two private dockerds (the near and the far host) and a real sshd on
# loopback (tests/e2e/docker.bash, sshd.bash, throwaway keys).  A volume of
# SIZE MiB (default 1024; QUICK=1: 128) made of many files, half incompressible
# (random) and half log-like text, used by a paused-for-backup container
# (berth.quiesce=pause) that writes nothing.  berth migrate --live --force
# runs once, then 1% of the bytes are overwritten in place (64 KiB runs at
# seeded random offsets in random files), and it runs again.  rsync -a copies
# the same mountpoint over the same sshd to a far directory, once on the
# original data and once after the same change.  Prints, for the repeat: bytes
# on the wire (berth's bytes_sent, rsync's "Total bytes sent"), berth's
# quiesce window, the wall time of each and berth's peak RSS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${BERTH:?set BERTH}"
BERTH=$(readlink -f "$BERTH")
# shellcheck source=tests/e2e/docker.bash
. "$here/../e2e/docker.bash"
# shellcheck source=tests/e2e/sshd.bash
. "$here/../e2e/sshd.bash"

size_mib=${SIZE:-1024}
[ "${QUICK:-}" = 1 ] && size_mib=${SIZE:-128}
step=${STEP_TIMEOUT:-1800}      # seconds, for each step that can hang

for p in rsync time openssh-server openssh-client; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && continue
        echo "bench-migrate: installing $p"
        timeout -k 5 600 env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" > /dev/null ||
                { timeout -k 5 600 apt-get update -qq &&
                  timeout -k 5 600 env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" > /dev/null; }
done

work=$(mktemp -d /var/tmp/berth-migrate-bench.XXXXXX)
DK1="" DK2="" DH1="" DH2=""
cleanup() {
        set +e
        sshd_down
        [ -n "$DK2" ] && DK=$DK2 DOCKER_HOST=$DH2 docker_down
        [ -n "$DK1" ] && DK=$DK1 DOCKER_HOST=$DH1 docker_down
        rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export HOME=$work/home BERTH_CONFIG=/dev/null BERTH_LOG_LEVEL=warning
export BERTH_REPO=$work/repo BERTH_CACHE_DIR=$work/cache
unset SSH_AUTH_SOCK SSH_AGENT_PID BERTH_SSH_IDENTITY BERTH_SSH_KNOWN_HOSTS BERTH_REMOTE_BERTH SSHD_PORT SSHD_EXTRA
mkdir -p "$HOME"

timeout -k 5 120 true   # timeout(1) is there
docker_up; DK2=$DK DH2=$DOCKER_HOST
docker_up; DK1=$DK DH1=$DOCKER_HOST
export DK=$DK1 DOCKER_HOST=$DH1
sshd_up "$work/sshd"
KH=$work/known_hosts
sshd_known_line ed25519 > "$KH"
printf '#!/bin/sh\nexport DOCKER_HOST=%s BERTH_CONFIG=/dev/null\nexec %s "$@"\n' "$DH2" "$BERTH" > "$work/far-berth"
chmod 755 "$work/far-berth"

docker volume create bench > /dev/null
mp=$(docker volume inspect -f '{{.Mountpoint}}' bench)
echo "bench-migrate: writing a ${size_mib} MiB volume"
timeout -k 5 "$step" python3 - "$mp" "$size_mib" <<'PY'
import os, random, sys
root, total = sys.argv[1], int(sys.argv[2]) << 20
rng = random.Random(7)
levels = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]
paths = ["/api/v1/items", "/api/v1/users", "/login", "/static/app.js", "/healthz", "/api/v2/orders"]
done = n = 0
while done < total:
    n += 1
    d = "%s/d%02d" % (root, n % 16)
    os.makedirs(d, exist_ok=True)
    size = min(rng.randint(64 << 10, 4 << 20), total - done)
    with open("%s/f%05d.%s" % (d, n, "bin" if n % 2 else "log"), "wb") as f:
        if n % 2:
            f.write(rng.randbytes(size))
        else:
            out, got = [], 0
            while got < size:
                line = "2026-11-%02d %02d:%02d:%02d.%06d %s req=%016x %s/%d status=%d ms=%d user=u%05d\n" % (
                    rng.randint(1, 30), rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59),
                    rng.randint(0, 999999), rng.choice(levels), rng.getrandbits(64), rng.choice(paths),
                    rng.randint(1, 99999), rng.choice((200, 200, 200, 201, 304, 404, 500)),
                    rng.randint(1, 900), rng.randint(1, 20000))
                out.append(line)
                got += len(line)
            f.write("".join(out).encode()[:size])
    done += size
print("bench-migrate: %d files" % n)
PY
docker run -d --name app -l berth.quiesce=pause -v bench:/data berth-test:latest idle > /dev/null
wait_state app running

change() { # 1% of the bytes, 64 KiB runs at seeded offsets in seeded files
        timeout -k 5 "$step" python3 - "$mp" <<'PY'
import os, random, sys
root = sys.argv[1]
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
sizes = {p: os.path.getsize(p) for p in files}
total = sum(sizes.values())
rng = random.Random(11)
left, run = total // 100, 64 << 10
while left > 0:
    p = rng.choice(files)
    n = min(run, left, sizes[p])
    with open(p, "r+b") as f:
        f.seek(rng.randint(0, sizes[p] - n))
        f.write(rng.randbytes(n))
    left -= n
PY
}

ms() { python3 -c 'import sys; print("%.0f" % ((float(sys.argv[2]) - float(sys.argv[1])) * 1000))' "$@"; }

migrate() { # $1: tag; writes $work/$1.json, $1.rss, $1.ms
        local t0 t1
        t0=$(date +%s.%N)
        timeout -k 5 "$step" /usr/bin/time -f %M -o "$work/$1.rss" \
                "$BERTH" migrate -i "$SSHD_USER_KEY" --known-hosts "$KH" --remote-berth "$work/far-berth" \
                --remote-repo "$work/far-repo" bench "$SSHD_DEST" --live --force --json > "$work/$1.json"
        t1=$(date +%s.%N)
        ms "$t0" "$t1" > "$work/$1.ms"
}

dst=$work/rsync-far
mkdir -p "$dst"
rsync_run() { # $1: tag; writes $work/$1.stats, $1.ms
        local t0 t1
        t0=$(date +%s.%N)
        timeout -k 5 "$step" rsync -a --stats \
                -e "ssh -p $SSHD_PORT -i $SSHD_USER_KEY -o UserKnownHostsFile=$KH -o StrictHostKeyChecking=yes -o BatchMode=yes" \
                "$mp/" "root@127.0.0.1:$dst/" > "$work/$1.stats"
        t1=$(date +%s.%N)
        ms "$t0" "$t1" > "$work/$1.ms"
}

echo "bench-migrate: first runs (berth migrate, rsync -a)"
migrate b1
rsync_run r1
change
echo "bench-migrate: repeat runs after 1% changed"
migrate b2
rsync_run r2
# both far copies equal the source
timeout -k 5 "$step" python3 "$here/../e2e/treecmp.py" "$mp" \
        "$(DOCKER_HOST=$DH2 docker volume inspect -f '{{.Mountpoint}}' bench)" > /dev/null
timeout -k 5 "$step" diff -r "$mp" "$dst" > /dev/null
[ "$(state app)" = running ]

python3 - "$work" "$size_mib" <<'PY'
import json, re, sys
w, size = sys.argv[1], int(sys.argv[2])
rd = lambda n: open("%s/%s" % (w, n)).read()
b1, b2 = json.loads(rd("b1.json")), json.loads(rd("b2.json"))
def rsent(tag):
    m = re.search(r"Total bytes sent: ([\d,.]+)", rd(tag + ".stats"))
    return int(re.sub(r"[,.]", "", m.group(1)))
r1, r2 = rsent("r1"), rsent("r2")
mib = lambda b: "%.2f MiB" % (b / 1048576)
vb = b2["volume_bytes"]
print()
print("repeat migration, %s volume (%d files), 1%% changed in place" % (mib(vb), b2["files"]))
print("%-34s %14s %14s" % ("", "berth migrate", "rsync -a"))
print("%-34s %14s %14s" % ("first run: bytes on the wire", mib(b1["bytes_sent"]), mib(r1)))
print("%-34s %14s %14s" % ("repeat: bytes on the wire", mib(b2["bytes_sent"]), mib(r2)))
print("%-34s %14s %14s" % ("repeat: % of the volume", "%.2f%%" % (100 * b2["bytes_sent"] / vb), "%.2f%%" % (100 * r2 / vb)))
print("%-34s %14s %14s" % ("repeat: wall time", "%.2f s" % (int(rd("b2.ms")) / 1000), "%.2f s" % (int(rd("r2.ms")) / 1000)))
print("%-34s %14s %14s" % ("repeat: quiesce window", "%.1f ms" % (b2["quiesce_window_ns"] / 1e6), "(none)"))
print("%-34s %14s %14s" % ("peak RSS (first / repeat)", "%d / %d MiB" % (int(rd("b1.rss")) // 1024, int(rd("b2.rss")) // 1024), ""))
print("berth/rsync repeat bytes on the wire: %.2f (two_phase=%s, quiesced=%s)" % (
    b2["bytes_sent"] / r2 if r2 else float("nan"), b2["two_phase"], b2["quiesced"]))
PY
