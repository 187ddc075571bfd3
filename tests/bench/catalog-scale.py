#!/usr/bin/env python3
"""catalog-scale.py — the catalog with a long history (make bench-catalog).

Builds a tree of FILES small files (default 100,000), backs it up, then
SNAPSHOTS-1 more times (default 100 in all) with 1% of the files changed
before each, and reports: how many file-index rows the catalog holds
against files x snapshots, its size, how long find / ls / diff take on the
full history, and how long `catalog rebuild` takes.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import time

BERTH = os.environ.get("BERTH", "berth")
FILES = int(os.environ.get("FILES", "100000"))
SNAPS = int(os.environ.get("SNAPSHOTS", "100"))
BASE = os.environ.get("BENCH_DIR", "/var/tmp/berth-bench") + "/catalog-scale"


def berth(*args, capture=True):
    env = dict(os.environ, BERTH_REPO=BASE + "/repo", BERTH_CONFIG="/dev/null")
    t0 = time.monotonic()
    r = subprocess.run([BERTH, "--no-progress"] + list(args), env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        sys.stderr.write(r.stderr.decode())
        raise SystemExit("berth %s failed" % " ".join(args))
    return dt, r.stdout.decode()


def main():
    shutil.rmtree(BASE, ignore_errors=True)
    tree = BASE + "/tree"
    rng = random.Random(7)
    paths = []
    for i in range(FILES):
        d = "%s/dir%03d" % (tree, i % 1000)
        if i < 1000:
            os.makedirs(d)
        p = "%s/file-%06d.txt" % (d, i)
        with open(p, "w") as f:
            f.write("file %d version 0 %s\n" % (i, "x" * (i % 200)))
        paths.append(p)
    # old enough that a backup right after can trust their timestamps
    old = time.time() - 3600
    for p in paths:
        os.utime(p, (old, old))

    times = []
    for s in range(SNAPS):
        if s:
            for p in rng.sample(paths, FILES // 100):
                with open(p, "a") as f:
                    f.write("change %d\n" % s)
                t = time.time() - 600 + s
                os.utime(p, (t, t))
        dt, _ = berth("backup", "--path", tree, "--name", "big", "-q")
        times.append(dt)
        if s % 10 == 0:
            print("snapshot %d: %.2fs" % (s + 1, dt), flush=True)

    db = BASE + "/repo/catalog.db"
    rows = int(subprocess.run(["sqlite3", db, "SELECT count(*) FROM files"], stdout=subprocess.PIPE).stdout)
    paths_rows = int(subprocess.run(["sqlite3", db, "SELECT count(*) FROM paths"], stdout=subprocess.PIPE).stdout)
    size = os.path.getsize(db) + (os.path.getsize(db + "-wal") if os.path.exists(db + "-wal") else 0)
    _, out = berth("--json", "snapshots", "big")
    ids = [s["id"] for s in json.loads(out)]

    def best(*args):
        return min(berth(*args)[0] for _ in range(3))

    print("\n%d files x %d snapshots, 1%% changed between snapshots" % (FILES, SNAPS))
    print("backup: first %.2fs, later ones median %.2fs" % (times[0], sorted(times[1:])[len(times[1:]) // 2]))
    print("file index rows: %d (files x snapshots would be %d: %.1f%%); paths: %d" % (
        rows, FILES * SNAPS, 100.0 * rows / (FILES * SNAPS), paths_rows))
    print("catalog.db: %.1f MiB" % (size / 1048576))
    print("find 'file-012345.txt' (all snapshots): %.3fs" % best("find", "file-012345.txt"))
    print("find 'dir042/*' (all snapshots):        %.3fs" % best("find", "dir042/*"))
    print("find '*.conf' (no match):               %.3fs" % best("find", "*.conf"))
    print("ls newest dir042 (100 entries):         %.3fs" % best("ls", "big", "dir042", "--long"))
    print("ls oldest dir042:                       %.3fs" % best("ls", ids[0], "dir042"))
    print("diff oldest newest:                     %.3fs" % best("diff", ids[0], ids[-1]))
    os.unlink(db)
    for ext in ("-wal", "-shm"):
        if os.path.exists(db + ext):
            os.unlink(db + ext)
    dt, out = berth("catalog", "rebuild")
    print("catalog rebuild: %.2fs (%s)" % (dt, out.strip()))


if __name__ == "__main__":
    main()
