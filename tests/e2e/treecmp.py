#!/usr/bin/env python3
"""treecmp.py A B [--no-root-times] [--no-fflags] [--ignore PATH]...

Compares two directory trees entry by entry and prints every difference:
type, permission bits (with setuid/setgid/sticky), numeric owner and group,
nanosecond mtime (directories included), size, contents, symlink targets,
device numbers, hard-link structure, xattrs (user.* and the POSIX ACL ones),
and sparseness (a file that is sparse in A must be sparse in B).
Exits 0 when the trees are the same, 1 otherwise.
"""
import array
import fcntl
import hashlib
import os
import stat
import sys


def walk(root, ignore):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root.encode(), followlinks=False):
        rel_dir = os.path.relpath(dirpath, root.encode())
        for name in [b"."] + dirnames + filenames:
            rel = os.path.normpath(os.path.join(rel_dir, name)) if name != b"." else rel_dir
            if rel == b"." and name != b".":
                continue
            if name == b"." and rel_dir != b".":
                continue
            if rel.decode("utf-8", "surrogateescape") in ignore:
                continue
            out[rel] = os.path.join(root.encode(), rel) if rel != b"." else root.encode()
    return out


def xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    res = {}
    for n in names:
        try:
            res[n] = os.getxattr(path, n, follow_symlinks=False)
        except OSError as e:
            res[n] = "error %s" % e.errno
    return res


WITH_FFLAGS = True
FS_IOC_GETFLAGS = 0x80086601
# chattr flags a user sets: a i d A S D C c
USER_FLAGS = 0x20 | 0x10 | 0x40 | 0x80 | 0x8 | 0x10000 | 0x800000 | 0x4


def fflags(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        buf = array.array("l", [0])
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf, True)
        return buf[0] & USER_FLAGS
    except OSError:
        return None
    finally:
        os.close(fd)


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def describe(path, root_times):
    st = os.lstat(path)
    d = {
        "type": stat.S_IFMT(st.st_mode),
        "mode": oct(stat.S_IMODE(st.st_mode)),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "xattrs": xattrs(path),
    }
    if not stat.S_ISLNK(st.st_mode) and (root_times or path is not None):
        d["mtime_ns"] = st.st_mtime_ns
    if WITH_FFLAGS and (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        d["fflags"] = fflags(path)
    if stat.S_ISREG(st.st_mode):
        d["size"] = st.st_size
        d["sha256"] = digest(path)
        d["sparse"] = st.st_blocks * 512 < st.st_size // 2 and st.st_size > 1 << 20
        d["nlink"] = st.st_nlink
    elif stat.S_ISLNK(st.st_mode):
        d["target"] = os.readlink(path)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        d["rdev"] = st.st_rdev
    return d, (st.st_dev, st.st_ino)


def main():
    args = sys.argv[1:]
    ignore = set()
    root_times = True
    pos = []
    i = 0
    while i < len(args):
        if args[i] == "--ignore":
            ignore.add(args[i + 1])
            i += 2
        elif args[i] == "--no-fflags":
            global WITH_FFLAGS
            WITH_FFLAGS = False
            i += 1
        elif args[i] == "--no-root-times":
            root_times = False
            i += 1
        else:
            pos.append(args[i])
            i += 1
    a_root, b_root = pos
    a, b = walk(a_root, ignore), walk(b_root, ignore)
    problems = []
    for p in sorted(set(a) | set(b)):
        name = p.decode("utf-8", "backslashreplace")
        if p not in a:
            problems.append("only in %s: %s" % (b_root, name))
            continue
        if p not in b:
            problems.append("only in %s: %s" % (a_root, name))
            continue
        da, _ = describe(a[p], True)
        db, _ = describe(b[p], True)
        if p == b"." and not root_times:
            da.pop("mtime_ns", None)
            db.pop("mtime_ns", None)
        for k in sorted(set(da) | set(db)):
            if da.get(k) != db.get(k):
                problems.append("%s: %s differs: %r != %r" % (name, k, da.get(k), db.get(k)))
    # Hard-link structure: paths sharing an inode in A share one in B.
    def groups(tree):
        inodes = {}
        for p, full in tree.items():
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                inodes.setdefault((st.st_dev, st.st_ino), []).append(p)
        return sorted(sorted(g) for g in inodes.values() if len(g) > 1)
    ga, gb = groups(a), groups(b)
    if ga != gb:
        problems.append("hard-link groups differ: %r != %r" % (ga, gb))
    for line in problems:
        print(line)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
