/* verify.c — checking a restored tree against its snapshot's manifest.
 *
 * Every entry of the manifest (those an include list selects) is looked up
 * under the restored directory without following any symlink (openat2
 * RESOLVE_NO_SYMLINKS for the parent, fstatat AT_SYMLINK_NOFOLLOW for the
 * entry) and compared: type, mode bits, size, mtime in nanoseconds, owner
 * (root only: anyone else restores files as itself), symlink target, hard
 * link identity, and a regular file's contents, chunk by chunk against the
 * manifest's chunk ids, data read where the sparse map puts it.
 */
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

void verify_result_clear(struct verify_result *v)
{
        for (size_t i = 0; i < ELEMENTSOF(v->paths); i++) {
                free(v->paths[i]);
                free(v->reasons[i]);
        }
        *v = (struct verify_result){ 0 };
}

static void mismatch(struct verify_result *v, const char *path, const char *fmt, ...)
{
        if (v->mismatches < ELEMENTSOF(v->paths)) {
                char msg[512];
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(msg, sizeof msg, fmt, ap);
                va_end(ap);
                v->paths[v->mismatches] = xstrdup(*path ? path : ".");
                v->reasons[v->mismatches] = xstrdup(msg);
        }
        v->mismatches++;
}

/* The directory that holds `path` (relative to top), reached without
 * following symlinks; *ret_name points at the last component. */
static int open_parent(int top, const char *path, const char **ret_name)
{
        const char *slash = strrchr(path, '/');
        *ret_name = slash ? slash + 1 : path;
        if (!slash)
                return fcntl(top, F_DUPFD_CLOEXEC, 3);
        _cleanup_free_ char *dir = xstrndup(path, (size_t)(slash - path));
        struct open_how how = { .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW,
                                .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
        long fd = syscall(SYS_openat2, top, dir, &how, sizeof how);
        return fd < 0 ? -1 : (int)fd;
}

/* Compares a regular file's data with the entry's chunks.  Returns 0 when
 * equal, 1 when not (with a mismatch recorded), -errno on failure to read. */
static int compare_content(const struct repo_keys *k, const struct entry *e, int fd, struct verify_result *v,
                           struct buf *b)
{
        uint64_t pos = 0;
        for (size_t i = 0; i < e->nchunks; i++) {
                buf_reset(b);
                buf_reserve(b, e->chunks[i].len);
                size_t done = 0;
                while (done < e->chunks[i].len) {
                        uint64_t run;
                        uint64_t off = entry_stream_offset(e, pos + done, &run);
                        size_t n = (size_t)MIN((uint64_t)(e->chunks[i].len - done), run);
                        if (n == 0) {
                                mismatch(v, e->path, "more data in the snapshot than its sparse map holds");
                                return 1;
                        }
                        ssize_t got = pread(fd, b->data + done, n, (off_t)off);
                        if (got < 0) {
                                if (errno == EINTR)
                                        continue;
                                mismatch(v, e->path, "cannot read: %s", strerror(errno));
                                return 1;
                        }
                        if (got == 0) {
                                mismatch(v, e->path, "shorter than in the snapshot");
                                return 1;
                        }
                        done += (size_t)got;
                }
                uint8_t h[HASH_LEN];
                chunk_id(k, b->data, e->chunks[i].len, h);
                if (memcmp(h, e->chunks[i].id, HASH_LEN) != 0) {
                        uint64_t run;
                        mismatch(v, e->path, "contents differ near offset %llu",
                                 (unsigned long long)entry_stream_offset(e, pos, &run));
                        return 1;
                }
                pos += e->chunks[i].len;
        }
        return 0;
}

static void verify_entry(const struct repo_keys *keys, const struct entry *e, int top, bool root,
                         struct verify_result *v, struct buf *b)
{
        static const mode_t types[] = {
                [ENTRY_DIR] = S_IFDIR, [ENTRY_REG] = S_IFREG, [ENTRY_SYMLINK] = S_IFLNK,
                [ENTRY_HARDLINK] = S_IFREG, [ENTRY_CHR] = S_IFCHR, [ENTRY_BLK] = S_IFBLK,
                [ENTRY_FIFO] = S_IFIFO,
        };
        const char *name;
        int dfd = e->path_len ? open_parent(top, e->path, &name) : -1;
        if (e->path_len && dfd < 0) {
                mismatch(v, e->path, "its directory cannot be opened: %s", strerror(errno));
                return;
        }
        struct stat st;
        int k = e->path_len ? fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) : fstat(top, &st);
        if (k < 0) {
                mismatch(v, e->path, errno == ENOENT ? "missing" : "cannot be examined: %s", strerror(errno));
                goto out;
        }
        v->checked++;
        if ((st.st_mode & S_IFMT) != types[e->type]) {
                mismatch(v, e->path, "not of the type the snapshot has");
                goto out;
        }
        if (e->type == ENTRY_HARDLINK) {
                struct stat first;
                const char *fname;
                int ffd = open_parent(top, e->link, &fname);
                if (ffd < 0 || fstatat(ffd, fname, &first, AT_SYMLINK_NOFOLLOW) < 0 || first.st_ino != st.st_ino ||
                    first.st_dev != st.st_dev)
                        mismatch(v, e->path, "not a hard link to the snapshot's first path of it");
                if (ffd >= 0)
                        close(ffd);
                goto out;
        }
        if ((st.st_mode & 07777) != (e->mode & 07777)) {
                mismatch(v, e->path, "mode %04o, the snapshot has %04o", (unsigned)(st.st_mode & 07777),
                         (unsigned)(e->mode & 07777));
                goto out;
        }
        if (root && (st.st_uid != e->uid || st.st_gid != e->gid)) {
                mismatch(v, e->path, "owner %u:%u, the snapshot has %u:%u", (unsigned)st.st_uid, (unsigned)st.st_gid,
                         (unsigned)e->uid, (unsigned)e->gid);
                goto out;
        }
        if (st.st_mtim.tv_sec != e->mtime_sec || (uint32_t)st.st_mtim.tv_nsec != e->mtime_nsec) {
                mismatch(v, e->path, "modification time differs");
                goto out;
        }
        if ((e->type == ENTRY_CHR || e->type == ENTRY_BLK) && st.st_rdev != (dev_t)e->rdev) {
                mismatch(v, e->path, "device number differs");
                goto out;
        }
        if (e->type == ENTRY_SYMLINK) {
                char t[PATH_MAX + 1];
                ssize_t n = readlinkat(dfd, name, t, sizeof t);
                if (n < 0 || (size_t)n != e->link_len || memcmp(t, e->link, (size_t)n) != 0)
                        mismatch(v, e->path, "symlink target differs");
                goto out;
        }
        if (e->type != ENTRY_REG)
                goto out;
        if ((uint64_t)st.st_size != e->size) {
                mismatch(v, e->path, "size %llu, the snapshot has %llu", (unsigned long long)st.st_size,
                         (unsigned long long)e->size);
                goto out;
        }
        int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                mismatch(v, e->path, "cannot be opened: %s", strerror(errno));
                goto out;
        }
        struct stat fst;
        if (fstat(fd, &fst) < 0 || fst.st_ino != st.st_ino || fst.st_dev != st.st_dev)
                mismatch(v, e->path, "changed while it was checked");
        else if (compare_content(keys, e, fd, v, b) == 0)
                v->bytes += e->size;
        close(fd);
out:
        if (dfd >= 0)
                close(dfd);
}

int snapshot_verify_tree(struct repo *repo, const char *id, const char *dir, const char *const *include,
                         size_t ninclude, struct verify_result *ret)
{
        struct verify_result v = { 0 };
        struct snapfile f = { 0 };
        _cleanup_(store_freep) struct store *s = NULL;
        _cleanup_(manifest_reader_freep) struct manifest_reader *mr = NULL;
        struct buf b = { 0 };
        char **inc = xcalloc(ninclude + 1, sizeof *inc);
        for (size_t i = 0; i < ninclude; i++)
                inc[i] = snapshot_path_normalize(include[i]);
        int top = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int k = top < 0 ? error_set(errno, "cannot open '%s': %s", dir, strerror(errno)) : 0;
        if (k == 0)
                k = snapfile_read(repo, id, &f);
        if (k == 0)
                k = store_open(repo, false, &s);
        if (k == 0)
                k = manifest_reader_new(s, (const uint8_t(*)[HASH_LEN])f.manifest, f.nmanifest, &mr);
        bool root = geteuid() == 0;
        const struct entry *e;
        while (k == 0 && (k = manifest_reader_next(mr, &e)) > 0) {
                k = 0;
                int m = include_match(e, inc, ninclude);
                if (m == 0)
                        continue;
                if (m == 1 || (ninclude && e->path_len == 0)) {
                        /* A parent restored for an included path: its
                         * metadata is the snapshot's, its contents not all. */
                        continue;
                }
                if (e->type == ENTRY_HARDLINK && ninclude && include_match(&(struct entry){ .type = ENTRY_REG,
                                .path = e->link, .path_len = strlen(e->link) }, inc, ninclude) != 2)
                        continue; /* restored as the file itself: see restore.c */
                verify_entry(repo->keys, e, top, root, &v, &b);
        }
        if (top >= 0)
                close(top);
        buf_free(&b);
        for (size_t i = 0; i < ninclude; i++)
                free(inc[i]);
        free(inc);
        snapfile_clear(&f);
        if (k < 0) {
                verify_result_clear(&v);
                return k;
        }
        *ret = v;
        return 0;
}
