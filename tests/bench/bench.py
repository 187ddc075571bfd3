#!/usr/bin/env python3
"""bench.py — Berth against restic, borg and tar|zstd on the same data, in one run.

Corpora (built deterministically under $BENCH_DIR, default /var/tmp/berth-bench):
  pg     a PostgreSQL data directory: initdb + pgbench -i (v1), then a bounded
         pgbench run and a CHECKPOINT (v2); the server listens on a unix socket
         only and is started and stopped with its own pg_ctl
  pgheavy  the same at a larger scale (pgbench -i -s 40) with heavier churn:
         v2 after thousands of transactions and a CHECKPOINT, so that about
         10% of the 8 KiB pages change.  The bench counts the changed pages
         (v1 and v2 compared page by page) and computes the limits for v2
         growth: those pages compressed one at a time (zstd -3 each, summed)
         and as one stream
  files  tens of thousands of small files copied from /usr; v2 has 1% of them
         modified, 0.5% deleted and a few added (seeded)
  rand   incompressible data; v2 has a few MB overwritten in the middle of one file

For each corpus and tool: backup of v1 (wall, CPU, peak RSS, repository size),
a rerun with nothing changed, a backup of v2 (wall, repository growth), and a
restore of v2 (wall), verified against the source.  Caches are warm: the data
is read once before each timed step.  Prints a table with the ratio
Berth/peer for each figure and writes a TSV.

Peak RSS is reported for every phase (v1, rerun, v2, restore).  With
$BERTH_OLD set to another berth binary, tool "berthold" runs it too (old vs new
in the same run); --page-table compares page-aligned chunking settings.

Tool "berthenc" is Berth on an encrypted repository (init --encrypt, the
password from BERTH_PASSWORD_FILE).  At the end, a GOAL TABLE: every goal of
the performance issue (and the encryption overhead goal) per corpus, with the
measured value and "met" or "missed by X%".

Usage: bench.py [--quick] [--corpora pg,pgheavy,files,rand]
                [--tools berth,berthenc,berthold,restic,borg,tarzstd]
                [--chunk-table] [--page-table] [--out FILE.tsv]
"""
import argparse
import ctypes
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

BERTH = os.environ.get("BERTH", "berth")
HERE = os.path.dirname(os.path.abspath(__file__))


def sh(cmd, check=True, env=None, cwd=None, capture=False):
    r = subprocess.run(cmd, shell=isinstance(cmd, str), env=env, cwd=cwd,
                       stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    if check and r.returncode != 0:
        sys.stderr.write(r.stderr.decode(errors="replace"))
        raise SystemExit("bench: command failed (%d): %s" % (r.returncode, cmd))
    return r.stdout.decode(errors="replace") if capture else r.returncode


def discard(path):
    """Moves path into the trash instead of deleting it.  On ext4 without a
    journal (as here) the inode allocator skips inodes freed in the last
    minute (more while their table block is dirty), one by one: a step that
    creates many files right after a large tree was deleted pays for that
    (seen: a restore of the files corpus 2-6x slower), so whichever tool
    ran after another tool's clean-up lost.  The trash is emptied between
    corpora, followed by a pause (empty_trash)."""
    if not os.path.lexists(path):
        return
    trash = os.path.join(WORK, "trash")
    os.makedirs(trash, exist_ok=True)
    os.rename(path, os.path.join(trash, "%d-%s" % (len(os.listdir(trash)), os.path.basename(path))))


def empty_trash(pause=True):
    trash = os.path.join(WORK, "trash")
    if not os.path.exists(trash):
        return
    shutil.rmtree(trash)
    os.sync()
    if pause:
        # past the allocator's window for freed inodes (60 s once synced)
        time.sleep(65)


def timed(cmd, env=None, cwd=None):
    """Runs cmd under GNU time; returns (wall, cpu, max_rss_kib).  Writes
    the earlier steps left dirty (a restore just deleted, a repository) go to
    disk first, untimed, so that no step pays for the one before it."""
    tf = os.path.join(WORK, "time.out")
    os.sync()
    full = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", tf, "sh", "-c", cmd]
    r = subprocess.run(full, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode != 0:
        sys.stderr.write(r.stderr.decode(errors="replace")[-2000:])
        raise SystemExit("bench: command failed (%d): %s" % (r.returncode, cmd))
    wall, user, sys_, rss = open(tf).read().split()[-4:]
    return float(wall), float(user) + float(sys_), int(rss)


def du(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(d, f)).st_size
            except OSError:
                pass
    return total


def warm(path):
    sh("tar -C '%s' -cf - . > /dev/null" % path, check=False)


# ---- corpora -----------------------------------------------------------------

def seeded_bytes(seed, n):
    """Incompressible, reproducible bytes: AES-CTR keystream from openssl."""
    key = hashlib.sha256(str(seed).encode()).hexdigest()[:32]
    return subprocess.run("openssl enc -aes-128-ctr -K %s -iv 0 -nosalt < /dev/zero 2>/dev/null | head -c %d"
                          % (key, n), shell=True, stdout=subprocess.PIPE).stdout


def build_rand(base, quick):
    v1, v2 = base + "/rand-v1", base + "/rand-v2"
    if os.path.exists(v2 + "/.done"):
        return v1, v2
    shutil.rmtree(v1, ignore_errors=True)
    shutil.rmtree(v2, ignore_errors=True)
    os.makedirs(v1)
    sizes = [8 << 20] * 8 if quick else [96 << 20] * 5 + [16 << 20] * 5
    for i, n in enumerate(sizes):
        with open("%s/blob%02d" % (v1, i), "wb") as f:
            f.write(seeded_bytes(1000 + i, n))
    sh(["cp", "-a", v1, v2])
    # v2: a few MB overwritten in the middle of one file
    with open(v2 + "/blob01", "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(size // 2)
        f.write(seeded_bytes(77, min(4 << 20, size // 4)))
    open(v2 + "/.done", "w").close()
    return v1, v2


def build_files(base, quick):
    v1, v2 = base + "/files-v1", base + "/files-v2"
    if os.path.exists(v2 + "/.done"):
        return v1, v2
    shutil.rmtree(v1, ignore_errors=True)
    shutil.rmtree(v2, ignore_errors=True)
    want = 5000 if quick else 40000
    files = []
    for root in ["/usr/share", "/usr/include", "/usr/lib/python3", "/usr/lib/x86_64-linux-gnu"]:
        for d, dirs, names in os.walk(root):
            dirs.sort()
            for n in sorted(names):
                p = os.path.join(d, n)
                if os.path.isfile(p) and not os.path.islink(p) and os.path.getsize(p) < (4 << 20):
                    files.append(p)
    files = files[:want]
    for p in files:
        dst = v1 + p
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(p, dst)
    sh(["cp", "-a", v1, v2])
    rng = random.Random(42)
    rel = sorted(os.path.relpath(v2 + p, v2) for p in files)
    for r in rng.sample(rel, len(rel) // 100):          # 1% modified
        with open(os.path.join(v2, r), "ab") as f:
            f.write(("changed %d\n" % rng.randrange(1 << 30)).encode() * 4)
    for r in rng.sample(rel, len(rel) // 200):          # 0.5% deleted
        try:
            os.unlink(os.path.join(v2, r))
        except FileNotFoundError:
            pass
    os.makedirs(v2 + "/added", exist_ok=True)
    for i in range(20):                                  # a few added
        with open("%s/added/new%02d.txt" % (v2, i), "wb") as f:
            f.write(("new file %d %d\n" % (i, rng.randrange(1 << 30))).encode() * 200)
    open(v2 + "/.done", "w").close()
    return v1, v2


def pg_bin(name):
    for v in sorted(os.listdir("/usr/lib/postgresql"), reverse=True):
        p = "/usr/lib/postgresql/%s/bin/%s" % (v, name)
        if os.path.exists(p):
            return p
    raise SystemExit("bench: PostgreSQL is not installed (apt-get install postgresql)")


def build_pg(base, quick, heavy=False):
    """v1: pgbench -i; v2: a pgbench run and a CHECKPOINT.  heavy: a larger
    scale and thousands of transactions (about 10% of the pages change)."""
    tag = "pgheavy" if heavy else "pg"
    v1, v2 = base + "/%s-v1" % tag, base + "/%s-v2" % tag
    if os.path.exists(v2 + "/.done"):
        return v1, v2
    data, sock = base + "/%s-live" % tag, base + "/%s-sock" % tag
    for p in (v1, v2, data, sock):
        shutil.rmtree(p, ignore_errors=True)
    for d in (sock, data):
        os.makedirs(d)
        shutil.chown(d, "postgres", "postgres")
    os.chmod(data, 0o700)
    as_pg = ["runuser", "-u", "postgres", "--"]
    sh(as_pg + [pg_bin("initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"])
    port = os.environ.get("BENCH_PG_PORT", "54329")
    start = as_pg + [pg_bin("pg_ctl"), "-D", data, "-w", "-l", sock + "/pg.log", "-o",
                     "-k %s -p %s -c listen_addresses='' -c fsync=off" % (sock, port), "start"]
    stop = as_pg + [pg_bin("pg_ctl"), "-D", data, "-w", "-m", "fast", "stop"]
    conn = ["-h", sock, "-p", port, "-U", "postgres"]
    if heavy:
        scale, clients, txns = ("4", "2", "500") if quick else ("40", "2", "4000")
    else:
        scale, clients, txns = ("2", "2", "100") if quick else ("25", "2", "500")
    try:
        sh(start)
        sh(as_pg + [pg_bin("createdb")] + conn + ["bench"])
        sh(as_pg + [pg_bin("pgbench")] + conn + ["-i", "-s", scale, "bench"])
        sh(stop)
        sh(["cp", "-a", data, v1])
        sh(start)
        sh(as_pg + [pg_bin("pgbench")] + conn + ["-c", clients, "-j", clients, "-t", txns,
                                                 "--random-seed=7", "bench"])
        sh(as_pg + [pg_bin("psql")] + conn + ["-c", "CHECKPOINT", "bench"])
        sh(stop)
    except SystemExit:
        sh(stop, check=False)
        raise
    sh(["cp", "-a", data, v2])
    shutil.rmtree(data)
    open(v2 + "/.done", "w").close()
    return v1, v2


def build_pgheavy(base, quick):
    return build_pg(base, quick, heavy=True)


# ---- the limits for v2 growth ------------------------------------------------------

PAGE = 8192


class Zstd:
    """zstd -3 through libzstd (ctypes): one page at a time, or a stream."""

    def __init__(self):
        self.lib = ctypes.CDLL("libzstd.so.1")
        self.lib.ZSTD_compressBound.restype = ctypes.c_size_t
        self.lib.ZSTD_compressBound.argtypes = [ctypes.c_size_t]
        self.lib.ZSTD_compress.restype = ctypes.c_size_t
        self.lib.ZSTD_compress.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
                                           ctypes.c_int]
        self.lib.ZSTD_isError.argtypes = [ctypes.c_size_t]
        self.buf = ctypes.create_string_buffer(self.lib.ZSTD_compressBound(PAGE))

    def page(self, b):
        n = self.lib.ZSTD_compress(self.buf, len(self.buf), b, len(b), 3)
        if self.lib.ZSTD_isError(n):
            raise SystemExit("bench: zstd failed")
        return n


def changed_pages(v1, v2):
    """Compares every file of v2 with the same file in v1, 8 KiB page by
    page (a page past v1's end counts as changed).  Returns (pages in v2,
    changed pages, their zstd -3 size one page at a time, as one stream)."""
    z = Zstd()
    total = changed = per_page = 0
    stream = os.path.join(WORK, "changed-pages")
    with open(stream, "wb") as out:
        for d, dirs, files in os.walk(v2):
            dirs.sort()
            for name in sorted(files):
                p2 = os.path.join(d, name)
                if name == ".done" or not os.path.isfile(p2) or os.path.islink(p2):
                    continue
                p1 = os.path.join(v1, os.path.relpath(p2, v2))
                f1 = open(p1, "rb") if os.path.isfile(p1) else None
                with open(p2, "rb") as f2:
                    while True:
                        b2 = f2.read(PAGE)
                        if not b2:
                            break
                        b1 = f1.read(PAGE) if f1 else b""
                        total += 1
                        if b1 != b2:
                            changed += 1
                            per_page += z.page(b2)
                            out.write(b2)
                if f1:
                    f1.close()
    whole = int(sh("zstd -3 -T1 -q -c '%s' | wc -c" % stream, capture=True))
    os.unlink(stream)
    return total, changed, per_page, whole


# ---- tools ---------------------------------------------------------------------

class Tool:
    name = ""

    def __init__(self, work):
        self.work = work
        self.repo = os.path.join(work, "repo-" + self.name)
        self.env = dict(os.environ)

    def reset(self):
        discard(self.repo)

    def size(self):
        return du(self.repo)


class Berth(Tool):
    name = "berth"
    exe = BERTH

    def __init__(self, work, init_args="", backup_args=""):
        super().__init__(work)
        self.init_args = init_args
        self.backup_args = backup_args
        self.env["BERTH_REPO"] = self.repo
        self.env["BERTH_CONFIG"] = "/dev/null"
        self.last = {}

    def init(self):
        sh("%s init -q %s" % (self.exe, self.init_args), env=self.env)

    def backup(self, src):
        out = os.path.join(self.work, "berth.json")
        r = timed("%s --json --no-progress backup --path '%s' --name bench %s > '%s'"
                  % (self.exe, src, self.backup_args, out), env=self.env)
        self.last = json.load(open(out))
        return r

    def restore(self, dst):
        return timed("%s -q restore bench@latest --target '%s'" % (self.exe, dst), env=self.env)

    def catalog_size(self):
        return du(os.path.join(self.repo, "catalog.db"))


class BerthEnc(Berth):
    """berth init --encrypt: the same steps on an encrypted repository, the
    password from BERTH_PASSWORD_FILE, the catalog in a cache outside the
    repository (BERTH_CACHE_DIR, counted in neither the repository size nor
    its growth, as restic's and borg's caches are not)."""
    name = "berthenc"

    def __init__(self, work, init_args="", backup_args=""):
        super().__init__(work, ("--encrypt " + init_args).strip(), backup_args)
        pw = os.path.join(work, "berthenc-password")
        with open(pw, "w") as f:
            f.write("bench-password\n")
        os.chmod(pw, 0o600)
        self.env["BERTH_PASSWORD_FILE"] = pw
        self.cache = os.path.join(work, "berthenc-cache")
        self.env["BERTH_CACHE_DIR"] = self.cache

    def reset(self):
        super().reset()
        discard(self.cache)

    def open_cost(self):
        """The fixed cost of opening the key (scrypt, once per command):
        a command that does nothing else."""
        return timed("%s -q snapshots" % self.exe, env=self.env)

    def catalog_size(self):
        total = 0
        for d, _, files in os.walk(self.cache):
            total += sum(os.lstat(os.path.join(d, f)).st_size for f in files if f.startswith("catalog.db"))
        return total


class BerthOld(Berth):
    """$BERTH_OLD: the same steps with another build, for old vs new in one run."""
    name = "berthold"
    exe = os.environ.get("BERTH_OLD", "")


class Restic(Tool):
    name = "restic"

    def __init__(self, work):
        super().__init__(work)
        self.env["RESTIC_PASSWORD"] = "bench"
        self.env["RESTIC_REPOSITORY"] = self.repo
        self.env["RESTIC_CACHE_DIR"] = os.path.join(work, "restic-cache")

    def init(self):
        sh("restic init -q", env=self.env)

    def backup(self, src):
        return timed("restic backup -q --host bench '%s'" % src, env=self.env)

    def restore(self, dst):
        return timed("restic restore -q latest --target '%s'" % dst, env=self.env)

    def fix_restore(self, dst, src):
        # restic restores the absolute path below the target
        return dst + src


class Borg(Tool):
    name = "borg"

    def __init__(self, work):
        super().__init__(work)
        self.env["BORG_BASE_DIR"] = os.path.join(work, "borg-base")
        self.env["BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK"] = "yes"
        self.env["BORG_RELOCATED_REPO_ACCESS_IS_OK"] = "yes"
        self.n = 0

    def init(self):
        sh("borg init -e none '%s'" % self.repo, env=self.env)

    def backup(self, src):
        self.n += 1
        return timed("borg create --compression zstd,3 '%s::a%d' ." % (self.repo, self.n), env=self.env, cwd=src)

    def restore(self, dst):
        os.makedirs(dst, exist_ok=True)
        return timed("borg extract '%s::a%d'" % (self.repo, self.n), env=self.env, cwd=dst)


class TarZstd(Tool):
    name = "tarzstd"

    def init(self):
        os.makedirs(self.repo, exist_ok=True)
        self.n = 0

    def backup(self, src):
        self.n += 1
        return timed("tar -C '%s' -cf - . | zstd -3 -T0 -q -o '%s/a%d.tar.zst'" % (src, self.repo, self.n))

    def restore(self, dst):
        os.makedirs(dst, exist_ok=True)
        return timed("zstd -dc -q '%s/a%d.tar.zst' | tar -C '%s' -xf -" % (self.repo, self.n, dst))


def first_backup(tool, data):
    """A new, empty repository of tool's, then a timed backup of data into
    it (warm cache): (wall, cpu, max_rss_kib)."""
    tool.reset()
    tool.init()
    warm(data)
    return tool.backup(data)


def enc_pairs(v1, rounds=3):
    """Encryption's overhead on a first backup, less noisy than one run of
    each: `rounds` pairs of plain and encrypted first backups of v1 into new
    repositories, in turn, then as many commands that only open the key;
    medians."""
    data = os.path.join(WORK, "encdata")
    discard(data)
    sh(["cp", "-a", v1, data])
    runs = {"berth": [], "berthenc": []}
    enc = None
    for _ in range(rounds):
        for cls in (Berth, BerthEnc):
            t = cls(WORK)
            runs[t.name].append(first_backup(t, data))
            enc = t if cls is BerthEnc else enc
    opens = [enc.open_cost() for _ in range(rounds)]
    discard(data)

    def med(v, i):
        return statistics.median(x[i] for x in v)
    return {"b_wall": med(runs["berth"], 0), "b_cpu": med(runs["berth"], 1), "e_wall": med(runs["berthenc"], 0),
            "e_cpu": med(runs["berthenc"], 1), "open_wall": med(opens, 0), "open_cpu": med(opens, 1),
            "rounds": rounds}


def verify(src, dst):
    r = subprocess.run(["diff", "-r", "--no-dereference", "-q", src, dst], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise SystemExit("bench: a restore differs from its source:\n" + r.stdout.decode()[:2000])


def run_tool(tool, corpus, v1, v2):
    """The four steps on one corpus; returns a dict of figures."""
    data = os.path.join(WORK, "data")
    res = {}
    discard(data)
    sh(["cp", "-a", v1, data])
    res["v1_wall"], res["v1_cpu"], res["v1_rss_kib"] = first_backup(tool, data)
    res["v1_size"] = tool.size()
    if isinstance(tool, BerthEnc):
        res["open_wall"], res["open_cpu"], _ = tool.open_cost()
    if isinstance(tool, Berth):
        res["chunks"] = tool.last.get("index_chunks", 0)
        res["index_bytes"] = tool.last.get("index_bytes", 0)
    warm(data)
    res["rerun_wall"], _, res["rerun_rss_kib"] = tool.backup(data)
    size1 = tool.size()
    # v1 -> v2 in place, as the application changed it: rsync writes changed
    # files in place and leaves the others (and their inodes) alone
    sh("rsync -a --checksum --delete --inplace --exclude=.done '%s/' '%s/'" % (v2, data))
    warm(data)
    res["v2_wall"], _, res["v2_rss_kib"] = tool.backup(data)
    res["v2_growth"] = tool.size() - size1
    if isinstance(tool, Berth):
        res["v2_chunks"] = tool.last.get("index_chunks", 0)
        res["v2_index_bytes"] = tool.last.get("index_bytes", 0)
        res["v2_catalog_size"] = tool.catalog_size()
    dst = os.path.join(WORK, "restored")
    discard(dst)
    res["restore_wall"], _, res["restore_rss_kib"] = tool.restore(dst)
    got = tool.fix_restore(dst, data) if hasattr(tool, "fix_restore") else dst
    verify(data, got)
    discard(dst)
    return res


def human(v, metric):
    if metric.endswith("_size") or metric.endswith("growth") or metric.endswith("index_bytes"):
        for unit in ["B", "KiB", "MiB", "GiB"]:
            if abs(v) < 1024 or unit == "GiB":
                return "%.1f %s" % (v, unit) if unit != "B" else "%d B" % v
            v /= 1024.0
    if metric.endswith("_kib"):
        return "%.1f MiB" % (v / 1024.0)
    if metric.endswith("_wall") or metric.endswith("_cpu"):
        return "%.2fs" % v
    return str(v)


METRICS = ["v1_wall", "v1_cpu", "v1_rss_kib", "v1_size", "rerun_wall", "rerun_rss_kib", "v2_wall", "v2_rss_kib",
           "v2_growth", "restore_wall", "restore_rss_kib"]
RSS = ["v1_rss_kib", "rerun_rss_kib", "v2_rss_kib", "restore_rss_kib"]


def chunker_speed():
    exe = os.environ.get("CHUNKER_BENCH")
    if not exe or not os.path.exists(exe):
        return None
    out = sh([exe], capture=True)
    return out.strip()


def print_limits(corpus, lim):
    total, changed, per_page, whole = lim
    print("%s: %d of %d 8 KiB pages changed (%.1f%%): %s raw, %s compressed one page at a time (zstd -3), "
          "%s as one stream" % (corpus, changed, total, 100.0 * changed / max(total, 1),
                                human(changed * PAGE, "_size"), human(per_page, "_size"), human(whole, "_size")),
          flush=True)


def print_page_row(label, corpus, r, lim):
    extra = ""
    if lim:
        extra = "  growth/limit %.2f (per page) %.2f (stream)" % (r["v2_growth"] / max(lim[2], 1),
                                                                   r["v2_growth"] / max(lim[3], 1))
    print("%-10s %-8s v1 %6.2fs cpu %6.2fs %8s %10s  v2 %6.2fs %8s growth %10s  restore %6.2fs  chunks %8d  "
          "index %9s  catalog %9s%s" % (
              label, corpus, r["v1_wall"], r["v1_cpu"], human(r["v1_rss_kib"], "_kib"), human(r["v1_size"], "v1_size"),
              r["v2_wall"], human(r["v2_rss_kib"], "_kib"), human(r["v2_growth"], "v2_growth"),
              r["restore_wall"], r["v2_chunks"], human(r["v2_index_bytes"], "index_bytes"),
              human(r["v2_catalog_size"], "_size"), extra), flush=True)


# ---- the goal table ----------------------------------------------------------------

def goal_rows(c, results, lim):
    """The goals of the performance issue (round two), and encryption's
    overhead goal, for corpus c: (figure, value, unit, goal, note); value is
    None when a tool it needs did not run, goal None when the issue sets
    none for this corpus.  Ratios are Berth/peer of wall-clock seconds or
    bytes; the peak RSS is Berth's largest of every phase, in MiB."""
    def get(t, m):
        r = results.get((c, t))
        return r.get(m) if r else None

    def ratio(a, b):
        return a / b if a is not None and b else None

    def smaller(m):
        vals = [(get(t, m), t) for t in ("restic", "borg") if get(t, m) is not None]
        return min(vals) if vals else (None, None)

    pg = c.startswith("pg")

    def b(m):
        return get("berth", m)

    rows = [
        ("first backup vs restic", ratio(b("v1_wall"), get("restic", "v1_wall")), "x", 0.5, ""),
        ("first backup vs borg", ratio(b("v1_wall"), get("borg", "v1_wall")), "x", 0.7, ""),
        ("first backup vs tar|zstd -3 -T0", ratio(b("v1_wall"), get("tarzstd", "v1_wall")), "x",
         1.0 if pg else 1.3 if c == "files" else None, ""),
    ]
    size, peer = smaller("v1_size")
    rows.append(("repository after first backup vs smaller of restic/borg", ratio(b("v1_size"), size), "x", 1.0,
                 "%s vs %s (%s)" % (human(b("v1_size"), "_size"), human(size, "_size"), peer) if size else ""))
    rows.append(("backup of v2 vs restic", ratio(b("v2_wall"), get("restic", "v2_wall")), "x", 0.5, ""))
    growth, peer = smaller("v2_growth")
    note = "%s vs %s (%s)" % (human(b("v2_growth"), "_size"), human(growth, "_size"), peer) if growth else ""
    if pg and lim and b("v2_growth") is not None:
        note += "; " if note else ""
        note += "growth / limit %.2f (pages one at a time, %s), %.2f (one stream, %s)" % (
            b("v2_growth") / max(lim[2], 1), human(lim[2], "_size"), b("v2_growth") / max(lim[3], 1),
            human(lim[3], "_size"))
    rows.append(("repository growth for v2 vs smaller of restic/borg", ratio(b("v2_growth"), growth), "x",
                 0.5 if pg else 1.0, note))
    rows.append(("restore of v2 vs restic", ratio(b("restore_wall"), get("restic", "restore_wall")), "x", 0.5, ""))
    rows.append(("restore of v2 vs borg", ratio(b("restore_wall"), get("borg", "restore_wall")), "x", 0.7, ""))
    peak = None
    if results.get((c, "berth")):
        phase = max(RSS, key=lambda m: b(m))
        peak = b(phase) / 1024.0
        note = "largest in %s" % phase.replace("_rss_kib", "")
    rows.append(("peak RSS, any phase", peak, "MiB", 64.0, note if peak is not None else ""))
    # medians of alternating pairs (enc_pairs) when they ran, else the one run of each tool
    ep = results.get((c, "encpairs"))
    if ep:
        ew, bw, ec, bc, ow, oc = ep["e_wall"], ep["b_wall"], ep["e_cpu"], ep["b_cpu"], ep["open_wall"], ep["open_cpu"]
        how = "medians of %d pairs: " % ep["rounds"]
    else:
        ew, bw, ec, bc = get("berthenc", "v1_wall"), b("v1_wall"), get("berthenc", "v1_cpu"), b("v1_cpu")
        ow, oc = get("berthenc", "open_wall"), get("berthenc", "open_cpu")
        how = "one run each: "
    enc = ratio(ew, bw)
    note = ""
    if enc is not None:
        note = how + "%.2fs vs %.2fs wall; CPU %.2fs vs %.2fs (%.2fx)" % (ew, bw, ec, bc, ratio(ec, bc) or 0)
        if ow is not None:
            # Opening the key costs the same whatever the backup's size.
            note += "; opening the key alone (scrypt) %.2fs wall, %.2fs CPU" % (ow, oc)
    rows.append(("encrypted first backup / plain, as a command", enc, "x", 1.10, note))
    held = (ew - ow) / bw if enc is not None and ow is not None else None
    rows.append(("encrypted first backup / plain, key held (agent job)", held, "x", 1.10,
                 "the command's time less a command that only opens the key; measured as agent jobs by "
                 "make bench-agent (run by make bench after this table)" if held is not None else ""))
    return rows


def verdict(value, goal):
    if value is None:
        return "n/a (a tool it needs did not run)"
    if goal is None:
        return "no goal"
    if value <= goal:
        return "met"
    miss = 100.0 * (value / goal - 1)
    return "missed by %.*f%%" % (0 if miss >= 1 else 1, miss)


def print_goal_table(corpora, results, limits):
    print("\nGOAL TABLE (performance round two, encryption overhead): Berth/peer, wall-clock unless said; "
          "met when at or under the goal, else by how much the goal is missed")
    print("%-56s %-8s %10s %8s  %-22s %s" % ("figure", "corpus", "measured", "goal", "verdict", "note"))
    met = missed = 0
    per = {c: goal_rows(c, results, limits.get(c)) for c in corpora}
    figures = [row[0] for row in next(iter(per.values()))] if per else []
    for i, fig in enumerate(figures):
        for c in corpora:
            _, value, unit, goal, note = per[c][i]
            fmt = (lambda v: "%.1f MiB" % v) if unit == "MiB" else (lambda v: "%.2fx" % v)
            v = verdict(value, goal)
            met += v == "met"
            missed += v.startswith("missed")
            print("%-56s %-8s %10s %8s  %-22s %s" % (fig, c, fmt(value) if value is not None else "-",
                                                   ("<= " + fmt(goal)) if goal is not None else "-", v, note))
    print("goals met: %d, missed: %d" % (met, missed), flush=True)


def main():
    global WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--corpora", default="pg,pgheavy,files,rand")
    ap.add_argument("--tools", default="berth,berthenc,restic,borg,tarzstd" + (",berthold" if BerthOld.exe else ""))
    ap.add_argument("--chunk-table", action="store_true",
                    help="instead: Berth with several chunk sizes on every corpus")
    ap.add_argument("--page-table", action="store_true",
                    help="instead: Berth with page-aligned chunks off and 1, 2, 4 pages per chunk (and "
                         "$BERTH_OLD) on every corpus")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()

    base = os.environ.get("BENCH_DIR", "/var/tmp/berth-bench") + ("-quick" if a.quick else "")
    WORK = os.path.join(base, "work")
    os.makedirs(WORK, exist_ok=True)
    builders = {"pg": build_pg, "pgheavy": build_pgheavy, "files": build_files, "rand": build_rand}
    corpora = {}
    for c in a.corpora.split(","):
        print("building corpus %s ..." % c, flush=True)
        corpora[c] = builders[c](base, a.quick)
    limits = {}
    for c, (v1, v2) in corpora.items():
        if c.startswith("pg"):
            limits[c] = changed_pages(v1, v2)
            print_limits(c, limits[c])

    rows = []
    if a.page_table:
        print("\npage-aligned chunks: per corpus, v1 backup (wall, CPU, peak RSS, size), v2 backup (wall, peak RSS, "
              "growth), restore wall; after v2: chunks in the index, its lookup table, catalog.db")
        setups = [("off", "--page-size off"), ("1 page", "--page-chunk 1"), ("2 pages*", "--page-chunk 2"),
                  ("4 pages", "--page-chunk 4")]
        for label, init in setups:
            for c, (v1, v2) in corpora.items():
                r = run_tool(Berth(WORK, init), c, v1, v2)
                empty_trash()
                print_page_row(label, c, r, limits.get(c))
        if BerthOld.exe:
            for c, (v1, v2) in corpora.items():
                r = run_tool(BerthOld(WORK), c, v1, v2)
                empty_trash()
                print_page_row("old build", c, r, limits.get(c))
        return
    if a.chunk_table:
        sizes = [("2K", "8K", "32K"), ("4K", "16K", "64K"), ("8K", "32K", "128K"), ("16K", "64K", "256K"),
                 ("64K", "256K", "1M")]
        print("\nchunk sizes: min/avg/max; per corpus: v1 backup wall and size, v2 growth, chunks in the index")
        for mn, avg, mx in sizes:
            for c, (v1, v2) in corpora.items():
                t = Berth(WORK, "--chunk-min %s --chunk-avg %s --chunk-max %s" % (mn, avg, mx))
                r = run_tool(t, c, v1, v2)
                empty_trash()
                rows.append(("%s/%s/%s" % (mn, avg, mx), c, r))
                print("%-14s %-6s v1 %7.2fs %10s  v2 %6.2fs growth %10s  chunks %8d  index %s" % (
                    "%s/%s/%s" % (mn, avg, mx), c, r["v1_wall"], human(r["v1_size"], "v1_size"), r["v2_wall"],
                    human(r["v2_growth"], "v2_growth"), r["chunks"], human(r["index_bytes"], "index_bytes")),
                    flush=True)
        return

    tools = {"berth": Berth, "berthenc": BerthEnc, "berthold": BerthOld, "restic": Restic, "borg": Borg,
             "tarzstd": TarZstd}
    results = {}
    for i, (c, (v1, v2)) in enumerate(corpora.items()):
        for tname in a.tools.split(","):
            print("%s: %s ..." % (c, tname), flush=True)
            results[(c, tname)] = run_tool(tools[tname](WORK), c, v1, v2)
        if "berth" in a.tools.split(",") and "berthenc" in a.tools.split(","):
            print("%s: berth and berthenc first backups, in turn ..." % c, flush=True)
            results[(c, "encpairs")] = enc_pairs(v1, 1 if a.quick else 3)
        empty_trash(pause=i + 1 < len(corpora))

    out = a.out or os.path.join(base, "results.tsv")
    with open(out, "w") as f:
        f.write("corpus\ttool\tmetric\tvalue\n")
        for (c, t), r in sorted(results.items()):
            for m, v in sorted(r.items()):
                f.write("%s\t%s\t%s\t%s\n" % (c, t, m, v))

    peers = [t for t in a.tools.split(",") if t != "berth"]
    print("\nWarm cache (data read once before each step); machine: %d cores, %s" % (
        os.cpu_count(), open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": ")))
    for c in corpora:
        print("\n== %s (%s)" % (c, human(du(corpora[c][0]), "v1_size")))
        hdr = "%-14s" % "" + "".join("%14s" % t for t in a.tools.split(","))
        hdr += "".join("%14s" % ("berth/" + p) for p in peers if "berth" in a.tools)
        print(hdr)
        for m in METRICS:
            line = "%-14s" % m.replace("_kib", "")
            for t in a.tools.split(","):
                line += "%14s" % human(results[(c, t)][m], m)
            if "berth" in a.tools:
                b = results[(c, "berth")][m]
                for p in peers:
                    v = results[(c, p)][m]
                    line += "%14s" % ("%.2f" % (b / v) if v else "-")
            print(line)
        if "berth" in a.tools:
            r = results[(c, "berth")]
            if r.get("chunks"):
                print("%-14s %d chunks, lookup table %s (%.1f MiB per million chunks)" % (
                    "berth index", r["chunks"], human(r["index_bytes"], "index_bytes"),
                    r["index_bytes"] / r["chunks"] * 1e6 / 1048576))
                print("%-14s after v2: %d chunks, lookup table %s, catalog.db %s" % (
                    "", r["v2_chunks"], human(r["v2_index_bytes"], "index_bytes"),
                    human(r["v2_catalog_size"], "_size")))
            for t in a.tools.split(","):
                peak = max(results[(c, t)][m] for m in RSS)
                print("%-14s %s %s%s" % ("peak RSS" if t == a.tools.split(",")[0] else "", t,
                                         human(peak, "_kib"), "  (goal <= 64 MiB)" if t == "berth" else ""))
            if c in limits:
                print_limits(c, limits[c])
                lim = limits[c]
                print("%-14s berth v2 growth / limit: %.2f (pages one at a time), %.2f (one stream)" % (
                    "", r["v2_growth"] / max(lim[2], 1), r["v2_growth"] / max(lim[3], 1)))
    print_goal_table(list(corpora), results, limits)
    sp = chunker_speed()
    if sp:
        print("\n" + sp)
    print("\nTSV: %s" % out)


if __name__ == "__main__":
    main()
