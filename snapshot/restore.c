/* restore.c — writing a snapshot back to disk.
 *
 * Every snapshot is treated as hostile: the manifest reader refuses
 * malformed, duplicate or out-of-order paths, entries whose parent is not a
 * directory of the snapshot, and hard links to anything but an earlier file
 * of it.  Entries go through libarchive's disk writer with its secure flags
 * into an empty staging directory next to the target (same filesystem),
 * which is renamed into place only when everything was written.
 */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <linux/fs.h>
#include <dirent.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "internal.h"

#define RESTORE_FLAGS                                                                                            \
        (ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR |           \
         ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_FFLAGS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |                        \
         ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS)

void entry_to_archive(const struct entry *e, const char *path, struct archive_entry *ae)
{
        static const mode_t types[] = {
                [ENTRY_DIR] = AE_IFDIR, [ENTRY_REG] = AE_IFREG, [ENTRY_SYMLINK] = AE_IFLNK,
                [ENTRY_HARDLINK] = AE_IFREG, [ENTRY_CHR] = AE_IFCHR, [ENTRY_BLK] = AE_IFBLK,
                [ENTRY_FIFO] = AE_IFIFO,
        };
        archive_entry_clear(ae);
        archive_entry_copy_pathname(ae, path);
        archive_entry_set_filetype(ae, types[e->type]);
        archive_entry_set_perm(ae, e->mode);
        archive_entry_set_uid(ae, e->uid);
        archive_entry_set_gid(ae, e->gid);
        if (e->uname && *e->uname)
                archive_entry_copy_uname(ae, e->uname);
        if (e->gname && *e->gname)
                archive_entry_copy_gname(ae, e->gname);
        archive_entry_set_mtime(ae, e->mtime_sec, e->mtime_nsec);
        switch (e->type) {
        case ENTRY_REG:
                archive_entry_set_size(ae, (la_int64_t)e->size);
                for (size_t i = 0; i < e->nsparse; i++)
                        archive_entry_sparse_add_entry(ae, (la_int64_t)e->sparse[i].offset,
                                                       (la_int64_t)e->sparse[i].length);
                break;
        case ENTRY_SYMLINK:
                archive_entry_copy_symlink(ae, e->link);
                break;
        case ENTRY_HARDLINK:
                archive_entry_copy_hardlink(ae, e->link);
                archive_entry_set_size(ae, 0);
                break;
        case ENTRY_CHR:
        case ENTRY_BLK:
                archive_entry_set_rdev(ae, (dev_t)e->rdev);
                break;
        default:
                break;
        }
        if (e->fflags_set || e->fflags_clear)
                archive_entry_set_fflags(ae, (unsigned long)e->fflags_set, (unsigned long)e->fflags_clear);
        for (size_t i = 0; i < e->nxattrs; i++)
                archive_entry_xattr_add_entry(ae, e->xattrs[i].name, e->xattrs[i].value, e->xattrs[i].len);
        if (!e->acl || !*e->acl)
                return;
        /* Snapshots store each named user's and group's numeric id beside
         * its name (ACL_STYLE_EXTRA_ID), and the disk writer, which has no
         * name lookup, uses the id.  Older snapshots and other tools' tars
         * have names only: those are looked up here; an unknown name keeps
         * id -1, and the writer warns about that entry as before. */
        archive_entry_acl_from_text(ae, e->acl, ARCHIVE_ENTRY_ACL_TYPE_POSIX1E);
        int n = archive_entry_acl_reset(ae, ARCHIVE_ENTRY_ACL_TYPE_POSIX1E);
        struct { int type, perm, tag, id; char *name; } *v = xcalloc(n > 0 ? (size_t)n : 1, sizeof *v);
        size_t nv = 0;
        bool resolved = false;
        int type, perm, tag, id;
        const char *name;
        while (nv < (size_t)MAX(n, 0) && archive_entry_acl_next(ae, ARCHIVE_ENTRY_ACL_TYPE_POSIX1E, &type, &perm,
                                                                &tag, &id, &name) == ARCHIVE_OK) {
                if ((tag == ARCHIVE_ENTRY_ACL_USER || tag == ARCHIVE_ENTRY_ACL_GROUP) && id < 0 && name) {
                        int64_t found = tag == ARCHIVE_ENTRY_ACL_USER ? user_id(name) : group_id(name);
                        if (found >= 0 && found <= INT32_MAX) {
                                id = (int)found;
                                resolved = true;
                        }
                }
                v[nv].type = type, v[nv].perm = perm, v[nv].tag = tag, v[nv].id = id;
                v[nv++].name = name ? xstrdup(name) : NULL;
        }
        if (resolved) {
                archive_entry_acl_clear(ae);
                for (size_t i = 0; i < nv; i++)
                        archive_entry_acl_add_entry(ae, v[i].type, v[i].perm, v[i].tag, v[i].id, v[i].name);
        }
        for (size_t i = 0; i < nv; i++)
                free(v[i].name);
        free(v);
}

/* Maps a position in a file's data stream to its offset in the file. */
uint64_t entry_stream_offset(const struct entry *e, uint64_t pos, uint64_t *ret_run)
{
        if (e->nsparse == 0) {
                *ret_run = UINT64_MAX;
                return pos;
        }
        for (size_t i = 0; i < e->nsparse; i++) {
                if (pos < e->sparse[i].length) {
                        *ret_run = e->sparse[i].length - pos;
                        return e->sparse[i].offset + pos;
                }
                pos -= e->sparse[i].length;
        }
        *ret_run = 0;
        return e->size;
}

char *snapshot_path_normalize(const char *p)
{
        while (*p == '/' || (p[0] == '.' && p[1] == '/'))
                p += *p == '/' ? 1 : 2;
        char *s = xstrdup(strcmp(p, ".") == 0 ? "" : p);
        size_t n = strlen(s);
        while (n > 0 && s[n - 1] == '/')
                s[--n] = 0;
        return s;
}

/* 2: the entry is an included path or below one; 1: it is a directory
 * above one (restored so the path has its parents); 0: neither. */
int include_match(const struct entry *e, char *const *inc, size_t ninc)
{
        if (ninc == 0)
                return 2;
        int best = 0;
        for (size_t i = 0; i < ninc; i++) {
                size_t n = strlen(inc[i]);
                if (n == 0)
                        return 2;
                if (e->path_len >= n && memcmp(e->path, inc[i], n) == 0 &&
                    (e->path_len == n || e->path[n] == '/'))
                        return 2;
                if (e->type == ENTRY_DIR && (e->path_len == 0 || (n > e->path_len &&
                                                                   memcmp(inc[i], e->path, e->path_len) == 0 &&
                                                                   inc[i][e->path_len] == '/')))
                        best = 1;
        }
        return best;
}

/* A linked file that --include left out, remembered in case one of its
 * hard links is included: the first such link gets the contents. */
struct held_link {
        char *path;            /* the left-out file */
        struct buf record;     /* its encoded entry */
        char *restored_as;     /* the included link that received the contents */
        struct held_link *next;
};

/* File flags (immutable, append-only) that would stop the staged tree from
 * being moved into place: set after the move instead. */
struct later_flags {
        char *path;            /* "" for the top directory */
        uint8_t type;
        uint64_t set, clear;
};

/* Where the staged tree goes at the end. */
enum target_kind {
        TARGET_NEW,     /* does not exist: the staging directory is renamed to it */
        TARGET_EMPTY,   /* an empty directory (or mount point): staged inside it, entries moved up */
        TARGET_REPLACE, /* a directory to replace: swapped with the staging directory */
};

struct restorer {
        struct readahead *ra;
        struct archive *disk;
        struct archive_entry *ae;
        const struct restore_options *o;
        struct restore_result *res;
        enum target_kind kind;
        int64_t last_progress;
        uint64_t bytes;
        bool root_seen;
        struct buf root;       /* the top directory's encoded entry */
        struct later_flags *later;
        size_t nlater, later_cap;
        struct held_link *held[256];
        struct entry_store scratch;
};

static struct held_link **held_slot(struct restorer *r, const char *path)
{
        uint8_t h[HASH_LEN];
        hash_sha256(path, strlen(path), h);
        struct held_link **p = &r->held[h[0]];
        while (*p && strcmp((*p)->path, path) != 0)
                p = &(*p)->next;
        return p;
}

static void hold_link(struct restorer *r, const struct entry *e)
{
        struct held_link *l = xcalloc(1, sizeof *l);
        l->path = xstrdup(e->path);
        entry_encode(e, &l->record);
        struct held_link **slot = held_slot(r, e->path);
        l->next = *slot;
        *slot = l;
}

static void restorer_clear(struct restorer *r)
{
        for (size_t i = 0; i < ELEMENTSOF(r->held); i++)
                while (r->held[i]) {
                        struct held_link *l = r->held[i];
                        r->held[i] = l->next;
                        free(l->path);
                        free(l->restored_as);
                        buf_free(&l->record);
                        free(l);
                }
        for (size_t i = 0; i < r->nlater; i++)
                free(r->later[i].path);
        free(r->later);
        buf_free(&r->root);
        entry_store_free(&r->scratch);
        if (r->ae)
                archive_entry_free(r->ae);
        readahead_free(r->ra);
}

static void rwarn(struct restorer *r, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void rwarn(struct restorer *r, const char *path, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        r->res->errors++;
        if (r->o->events.warning)
                r->o->events.warning(r->o->events.ud, *path ? path : ".", msg);
}

/* libarchive's message for the last failure, with the system's reason
 * when libarchive's own text ("Write failed") does not give it. */
static const char *disk_error(struct archive *a, char *buf, size_t size)
{
        const char *msg = archive_error_string(a) ? archive_error_string(a) : "unknown error";
        int e = archive_errno(a);
        if (e > 0 && !strstr(msg, strerror(e)))
                snprintf(buf, size, "%s: %s", msg, strerror(e));
        else
                snprintf(buf, size, "%s", msg);
        return buf;
}

static int disk_errno(struct archive *a)
{
        return archive_errno(a) > 0 ? archive_errno(a) : EIO;
}

static int write_content(struct restorer *r, const struct entry *e)
{
        uint64_t pos = 0;
        size_t queued = 0;
        for (size_t i = 0; i < e->nchunks; i++) {
                if (r->o->events.cancel && *r->o->events.cancel) {
                        readahead_reset(r->ra);
                        return error_set(ECANCELED, "interrupted; the target was left untouched");
                }
                const struct buf *data;
                int k = readahead_chunk(r->ra, e->path, e->chunks, e->nchunks, i, &queued, &data);
                if (k < 0)
                        return k; /* the read-ahead is empty again */
                size_t done = 0;
                while (done < data->len) {
                        uint64_t run;
                        uint64_t off = entry_stream_offset(e, pos + done, &run);
                        size_t n = (size_t)MIN((uint64_t)(data->len - done), run);
                        la_ssize_t w = n == 0 ? -1 : archive_write_data_block(r->disk, data->data + done, n, (la_int64_t)off);
                        if (w < ARCHIVE_OK) {
                                char why[512];
                                k = n == 0 ? error_set(BERTH_ECORRUPT, "'%s' has more data than its sparse map", e->path)
                                           : error_set(disk_errno(r->disk), "cannot write '%s': %s", e->path,
                                                       disk_error(r->disk, why, sizeof why));
                                readahead_reset(r->ra);
                                return k;
                        }
                        done += n;
                }
                pos += data->len;
                r->bytes += data->len;
                if (r->o->events.progress && mono_ns() - r->last_progress > 250 * 1000 * 1000) {
                        r->last_progress = mono_ns();
                        struct snapshot_progress p = { .files = r->res->files + r->res->dirs, .bytes = r->bytes,
                                                       .path = e->path };
                        r->o->events.progress(r->o->events.ud, &p);
                }
        }
        return 0;
}

/* Whether e is moved (renamed) when the staged tree goes into place: the
 * top directory, or with TARGET_EMPTY the entries right under it.  The
 * kernel refuses to rename an immutable or append-only file, so their
 * flags are set after the move. */
static bool moved_at_end(const struct restorer *r, const struct entry *e)
{
        if (e->path_len == 0)
                return true;
        return r->kind == TARGET_EMPTY && !memchr(e->path, '/', e->path_len);
}

static void defer_flags(struct restorer *r, const struct entry *e)
{
        if (r->nlater == r->later_cap) {
                r->later_cap = r->later_cap ? 2 * r->later_cap : 8;
                r->later = xrealloc(r->later, r->later_cap * sizeof *r->later);
        }
        r->later[r->nlater++] = (struct later_flags){ .path = xstrdup(e->path), .type = e->type,
                                                      .set = e->fflags_set, .clear = e->fflags_clear };
}

static int restore_entry(struct restorer *r, const struct entry *e)
{
        const char *path = e->path_len ? e->path : ".";
        struct entry copy;
        if (e->type == ENTRY_HARDLINK) {
                struct held_link *l = *held_slot(r, e->link);
                if (l && l->restored_as) {
                        /* Link to the included path that got the contents. */
                        copy = *e;
                        copy.link = l->restored_as;
                        copy.link_len = strlen(l->restored_as);
                        e = &copy;
                } else if (l) {
                        /* The first included link of a left-out file gets
                         * its contents and metadata. */
                        if (entry_decode(l->record.data, l->record.len, &r->scratch) < 0)
                                return error_set(BERTH_ECORRUPT, "cannot decode a held entry");
                        struct entry full = r->scratch.e;
                        full.path = e->path;
                        full.path_len = e->path_len;
                        l->restored_as = xstrdup(e->path);
                        return restore_entry(r, &full);
                }
        }
        if ((e->fflags_set || e->fflags_clear) && moved_at_end(r, e)) {
                defer_flags(r, e);
                if (e != &copy)
                        copy = *e;
                copy.fflags_set = copy.fflags_clear = 0;
                e = &copy;
        }
        entry_to_archive(e, path, r->ae);
        char why[512];
        int k = archive_write_header(r->disk, r->ae);
        if (k == ARCHIVE_FATAL)
                return error_set(disk_errno(r->disk), "cannot restore '%s': %s", path,
                                 disk_error(r->disk, why, sizeof why));
        if (k == ARCHIVE_FAILED) {
                rwarn(r, e->path, "not restored: %s", disk_error(r->disk, why, sizeof why));
                return 0;
        }
        if (k == ARCHIVE_WARN)
                rwarn(r, e->path, "restored, but %s", disk_error(r->disk, why, sizeof why));
        if (e->type == ENTRY_REG) {
                error_clear();
                k = write_content(r, e);
                if (k < 0) {
                        if (!r->o->partial || k != -BERTH_ECORRUPT)
                                return k;
                        /* Never leave a file with silently wrong contents. */
                        char msg[1024];
                        snprintf(msg, sizeof msg, "%s", error_message() ? error_message() : berth_strerror(k));
                        archive_write_finish_entry(r->disk);
                        if (unlink(path) < 0 && errno != ENOENT)
                                return error_set(errno, "cannot remove the damaged '%s': %s", path, strerror(errno));
                        rwarn(r, e->path, "not restored: %s", msg);
                        return 0;
                }
                r->res->bytes += e->size;
        }
        k = archive_write_finish_entry(r->disk);
        if (k == ARCHIVE_FATAL)
                return error_set(disk_errno(r->disk), "cannot finish '%s': %s", path,
                                 disk_error(r->disk, why, sizeof why));
        if (k < ARCHIVE_WARN)
                rwarn(r, e->path, "not finished: %s", disk_error(r->disk, why, sizeof why));
        else if (k == ARCHIVE_WARN)
                rwarn(r, e->path, "restored, but %s", disk_error(r->disk, why, sizeof why));
        if (e->type == ENTRY_DIR)
                r->res->dirs++;
        else
                r->res->files++;
        if (e->path_len == 0) {
                /* libarchive sets the times of an existing directory at
                 * once, and every child written later bumps them: the top
                 * directory gets its metadata again at the end. */
                r->root_seen = true;
                buf_reset(&r->root);
                entry_encode(e, &r->root);
        }
        return 0;
}

/* Sets file flags (chattr) as libarchive would, on a directory or a
 * regular file only: anything else's ioctls belong to its driver. */
static int set_flags_at(int dirfd, const char *name, const struct later_flags *f)
{
        if (f->type != ENTRY_DIR && f->type != ENTRY_REG)
                return -EOPNOTSUPP;
        int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        struct stat st;
        int flags = 0, k = 0;
        if (fstat(fd, &st) < 0 || !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)))
                k = -EOPNOTSUPP;
        else if (ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0)
                k = -errno;
        else {
                flags = (int)(((unsigned)flags | (unsigned)f->set) & ~(unsigned)f->clear);
                if (ioctl(fd, FS_IOC_SETFLAGS, &flags) < 0)
                        k = -errno;
        }
        close(fd);
        return k;
}

/* The deferred flags, once the tree is in place: entries right under the
 * target first, the top directory last. */
static void apply_later_flags(struct restorer *r, int target_fd)
{
        for (size_t i = r->nlater; i-- > 0;) {
                const struct later_flags *f = &r->later[i];
                int k = set_flags_at(target_fd, *f->path ? f->path : ".", f);
                if (k < 0)
                        rwarn(r, f->path, "cannot set its file flags: %s", berth_strerror(k));
        }
}

/* Applies the top directory's metadata to the target itself (TARGET_EMPTY:
 * the target is kept, only its contents came from the staging directory).
 * Runs a second disk writer with the target as its working directory, and
 * frees it there, so its deferred fix-ups land on the target only. */
static int restore_root_into(struct restorer *r, int target_fd, int cwd)
{
        if (!r->root_seen)
                return 0;
        if (entry_decode(r->root.data, r->root.len, &r->scratch) < 0)
                return error_set(BERTH_ECORRUPT, "cannot decode the top directory's entry");
        struct entry e = r->scratch.e;
        e.fflags_set = e.fflags_clear = 0; /* set after, with the others */
        if (fchdir(target_fd) < 0)
                return error_set(errno, "cannot enter the target: %s", strerror(errno));
        struct archive *a = archive_write_disk_new();
        if (!a)
                abort();
        archive_write_disk_set_options(a, RESTORE_FLAGS | (geteuid() == 0 ? ARCHIVE_EXTRACT_OWNER : 0));
        entry_to_archive(&e, ".", r->ae);
        char why[512];
        int k = archive_write_header(a, r->ae);
        if (k >= ARCHIVE_WARN)
                k = archive_write_finish_entry(a);
        if (k >= ARCHIVE_WARN)
                k = archive_write_close(a);
        if (k < ARCHIVE_OK)
                rwarn(r, "", "the top directory's metadata is not fully restored: %s", disk_error(a, why, sizeof why));
        archive_write_free(a);
        struct timespec ts[2] = { { e.mtime_sec, e.mtime_nsec }, { e.mtime_sec, e.mtime_nsec } };
        if (utimensat(target_fd, ".", ts, 0) < 0)
                rwarn(r, "", "cannot set the time of the top directory: %s", strerror(errno));
        if (fchdir(cwd) < 0)
                return error_set(errno, "cannot return to the working directory: %s", strerror(errno));
        return 0;
}

#define STAGING_PREFIX ".berth-restore-"

/* Removes staging directories that a killed restore left in dirfd: their
 * names carry the pid that made them, and that process is gone. */
static void clean_stale_staging(int dirfd)
{
        int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return;
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strncmp(de->d_name, STAGING_PREFIX, strlen(STAGING_PREFIX)) != 0)
                        continue;
                char *end;
                long pid = strtol(de->d_name + strlen(STAGING_PREFIX), &end, 10);
                if (pid <= 0 || *end != '-' || pid == getpid())
                        continue;
                if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
                        continue;
                log_debug("removing %s, left by a restore that was killed", de->d_name);
                rm_rf_at(dirfd, de->d_name);
        }
        closedir(d);
}

/* Refuses targets that do not name a directory to create or fill: "", ".",
 * "..", "x/." and a symlink (even written "link/": Berth never writes
 * through one).  *ret_kind says what the target is. */
static int check_target(const char *target, bool replace, enum target_kind *ret_kind)
{
        size_t n = strlen(target);
        while (n > 1 && target[n - 1] == '/')
                n--;
        _cleanup_free_ char *t = xstrndup(target, n);
        const char *base = strrchr(t, '/') ? strrchr(t, '/') + 1 : t;
        if (!*t || strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || strcmp(t, "/") == 0)
                return error_set(EINVAL, "target '%s' does not name a directory to restore into; give a path such as "
                                         "/srv/restored (nothing was changed)",
                                 target);
        struct stat st;
        if (lstat(t, &st) < 0) {
                if (errno != ENOENT)
                        return error_set(errno, "cannot use target '%s': %s", target, strerror(errno));
                *ret_kind = TARGET_NEW;
                return 0;
        }
        if (S_ISLNK(st.st_mode))
                return error_set(EEXIST, "target '%s' is a symbolic link; Berth does not restore through links: give "
                                         "the directory it points to (nothing was changed)",
                                 target);
        if (!S_ISDIR(st.st_mode))
                return error_set(EEXIST, "target '%s' exists and is not a directory", target);
        _cleanup_close_ int fd = open(t, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0)
                clean_stale_staging(fd);
        int empty = dir_empty(t);
        if (empty < 0)
                return error_set(-empty, "cannot open target '%s': %s", target, strerror(-empty));
        if (!empty && !replace)
                return error_set(EEXIST,
                                 "target '%s' is not empty; restore into a new or empty directory (nothing was "
                                 "changed)",
                                 target);
        *ret_kind = empty ? TARGET_EMPTY : TARGET_REPLACE;
        return 0;
}

/* TARGET_EMPTY: moves every entry of the staging directory up into the
 * target.  On failure the entries moved so far are moved back, so the
 * target is as empty as it was. */
static int move_up(int staging_fd, int target_fd, const char *target)
{
        int fd = openat(staging_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd < 0 ? NULL : fdopendir(fd);
        if (!d) {
                if (fd >= 0)
                        close(fd);
                return error_set(errno, "cannot list the staging directory: %s", strerror(errno));
        }
        char **moved = NULL;
        size_t nmoved = 0, cap = 0;
        int k = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (renameat2(staging_fd, de->d_name, target_fd, de->d_name, RENAME_NOREPLACE) < 0) {
                        k = error_set(errno, "cannot move '%s' into '%s': %s", de->d_name, target, strerror(errno));
                        break;
                }
                if (nmoved == cap) {
                        cap = cap ? 2 * cap : 64;
                        moved = xrealloc(moved, cap * sizeof *moved);
                }
                moved[nmoved++] = xstrdup(de->d_name);
        }
        closedir(d);
        for (size_t i = 0; i < nmoved; i++) {
                if (k < 0 && renameat2(target_fd, moved[i], staging_fd, moved[i], RENAME_NOREPLACE) < 0)
                        log_debug("cannot move '%s' back: %s", moved[i], strerror(errno));
                free(moved[i]);
        }
        free(moved);
        return k;
}

/* Makes the staged tree durable, then puts it in place. */
static int put_in_place(struct restorer *r, int parent_fd, const char *staging_name, int staging_fd, int target_fd,
                        const char *target, const char *target_name, int cwd)
{
        /* Everything written must be on disk before it replaces or fills
         * the target: a power cut must not leave a half-written tree. */
        if (syncfs(staging_fd) < 0)
                return error_set(errno, "cannot flush the restored tree to disk: %s", strerror(errno));
        int k;
        switch (r->kind) {
        case TARGET_EMPTY:
                k = move_up(staging_fd, target_fd, target);
                if (k < 0)
                        return k;
                /* Empty now; gone before the target gets its own times and
                 * flags. */
                if (unlinkat(target_fd, staging_name, AT_REMOVEDIR) < 0)
                        log_debug("cannot remove %s: %s", staging_name, strerror(errno));
                if (fsync(target_fd) < 0)
                        log_debug("fsync of %s: %s", target, strerror(errno));
                k = restore_root_into(r, target_fd, cwd);
                if (k < 0)
                        return k;
                apply_later_flags(r, target_fd);
                return 0;
        case TARGET_NEW:
                if (renameat2(parent_fd, staging_name, parent_fd, target_name, RENAME_NOREPLACE) < 0)
                        return error_set(errno, "cannot move the restored tree to '%s': %s", target, strerror(errno));
                break;
        case TARGET_REPLACE:
                /* Swap in one step, so the target is never half old, half
                 * new; the old contents end up under the staging name. */
                if (renameat2(parent_fd, staging_name, parent_fd, target_name, RENAME_EXCHANGE) < 0)
                        return error_set(errno, "cannot swap the restored tree into '%s': %s", target, strerror(errno));
                break;
        }
        if (fsync(parent_fd) < 0)
                log_debug("fsync of the parent of %s: %s", target, strerror(errno));
        /* staging_fd is the restored tree, wherever its name is now. */
        apply_later_flags(r, staging_fd);
        return 0;
}

int snapshot_restore(struct repo *repo, const char *id, const struct restore_options *o, struct restore_result *ret)
{
        struct restore_result res = { 0 };
        struct snapfile f = { 0 };
        _cleanup_(store_freep) struct store *s = NULL;
        _cleanup_(manifest_reader_freep) struct manifest_reader *mr = NULL;
        struct restorer r = { .o = o, .res = &res };
        char **inc = NULL;
        _cleanup_free_ char *tpath = NULL, *parent = NULL, *target_name = NULL;
        char staging_name[64] = "";
        int cwd = -1, parent_fd = -1, staging_fd = -1, target_fd = -1, k;
        bool placed = false;

        k = check_target(o->target, o->replace, &r.kind);
        if (k < 0)
                return k;
        k = snapfile_read(repo, id, &f);
        if (k < 0)
                return k;
        k = store_open(repo, false, &s);
        if (k == 0)
                k = readahead_new(repo, 32, &r.ra);
        if (k == 0)
                k = manifest_reader_new(s, (const uint8_t(*)[HASH_LEN])f.manifest, f.nmanifest, &mr);
        if (k < 0)
                goto out;
        inc = xcalloc(o->ninclude + 1, sizeof *inc);
        for (size_t i = 0; i < o->ninclude; i++)
                inc[i] = snapshot_path_normalize(o->include[i]);

        /* The staging directory is on the target's filesystem: next to a
         * new target or one to replace, inside an empty one (a mount point
         * cannot be renamed over). */
        tpath = xstrdup(o->target);
        for (size_t n = strlen(tpath); n > 1 && tpath[n - 1] == '/'; n--)
                tpath[n - 1] = 0;
        {
                _cleanup_free_ char *c1 = xstrdup(tpath), *c2 = xstrdup(tpath);
                parent = xstrdup(dirname(c1));
                target_name = xstrdup(basename(c2));
        }
        if (r.kind == TARGET_NEW) {
                k = mkdir_p(parent, 0755);
                if (k < 0) {
                        k = error_set(k, "cannot create '%s': %s", parent, berth_strerror(k));
                        goto out;
                }
        }
        parent_fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (parent_fd < 0) {
                k = error_set(errno, "cannot open '%s': %s", parent, strerror(errno));
                goto out;
        }
        if (r.kind == TARGET_EMPTY) {
                target_fd = openat(parent_fd, target_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (target_fd < 0) {
                        k = error_set(errno, "cannot open target '%s': %s", o->target, strerror(errno));
                        goto out;
                }
        } else
                clean_stale_staging(parent_fd);
        int home = r.kind == TARGET_EMPTY ? target_fd : parent_fd;
        for (int tries = 0;; tries++) {
                uint8_t rnd[6];
                char hex[13];
                if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
                        memset(rnd, tries, sizeof rnd);
                hex_encode(rnd, sizeof rnd, hex);
                snprintf(staging_name, sizeof staging_name, STAGING_PREFIX "%ld-%s", (long)getpid(), hex);
                if (mkdirat(home, staging_name, 0700) == 0)
                        break;
                if (errno != EEXIST || tries > 100) {
                        k = error_set(errno, "cannot create a staging directory in '%s': %s",
                                      r.kind == TARGET_EMPTY ? o->target : parent, strerror(errno));
                        staging_name[0] = 0;
                        goto out;
                }
        }
        staging_fd = openat(home, staging_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (staging_fd < 0 || cwd < 0 || fchdir(staging_fd) < 0) {
                k = error_set(errno, "cannot enter the staging directory: %s", strerror(errno));
                goto out;
        }

        /* The disk writer works relative to the working directory, which is
         * the staging directory from here until it is freed: its deferred
         * directory fix-ups (modes, times, ACLs, flags) can land nowhere
         * else, whatever happens. */
        r.disk = archive_write_disk_new();
        r.ae = archive_entry_new();
        if (!r.disk || !r.ae)
                abort();
        /* No user/group lookup: numeric ids are restored as they were, even
         * when this host has no such user.  Owners are restored by root
         * only, as tar does: anyone else cannot give files away. */
        archive_write_disk_set_options(r.disk, RESTORE_FLAGS | (geteuid() == 0 ? ARCHIVE_EXTRACT_OWNER : 0));

        const struct entry *e;
        bool matched = o->ninclude == 0;
        while ((k = manifest_reader_next(mr, &e)) > 0) {
                if (o->events.cancel && *o->events.cancel) {
                        k = error_set(ECANCELED, "interrupted; the target was left untouched");
                        break;
                }
                int m = include_match(e, inc, o->ninclude);
                if (m == 0) {
                        if (e->type == ENTRY_REG && (e->flags & ENTRY_F_LINKED))
                                hold_link(&r, e);
                        continue;
                }
                if (m == 2)
                        matched = true;
                k = restore_entry(&r, e);
                if (k < 0)
                        break;
        }
        if (k >= 0) {
                char why[512];
                if (archive_write_close(r.disk) != ARCHIVE_OK)
                        rwarn(&r, "", "directory metadata not fully restored: %s", disk_error(r.disk, why, sizeof why));
                if (r.root_seen && entry_decode(r.root.data, r.root.len, &r.scratch) == 0) {
                        struct timespec ts[2] = { { r.scratch.e.mtime_sec, r.scratch.e.mtime_nsec },
                                                  { r.scratch.e.mtime_sec, r.scratch.e.mtime_nsec } };
                        if (utimensat(staging_fd, ".", ts, 0) < 0)
                                rwarn(&r, "", "cannot set the time of the top directory: %s", strerror(errno));
                }
        }
        if (k >= 0 && !matched)
                k = error_set(BERTH_ENOTFOUND, "snapshot %.12s has no path '%s'", id, inc[0]);
        if (k >= 0 && o->events.cancel && *o->events.cancel)
                k = error_set(ECANCELED, "interrupted; the target was left untouched");
        if (k < 0)
                goto out;
        archive_write_free(r.disk); /* closed above, still in the staging directory */
        r.disk = NULL;
        k = put_in_place(&r, parent_fd, staging_name, staging_fd, target_fd, o->target, target_name, cwd);
        if (k < 0)
                goto out;
        placed = true;
        *ret = res;
        k = 0;
out:
        if (r.disk) {
                /* Failed part-way: free the writer where its fix-ups can
                 * only touch the staging tree, which goes next. */
                if (staging_fd >= 0 && fchdir(staging_fd) == 0)
                        archive_write_free(r.disk);
                else
                        log_debug("leaving a disk writer unfreed: cannot enter the staging directory");
        }
        if (cwd >= 0) {
                if (fchdir(cwd) < 0 && k >= 0)
                        k = error_set(errno, "cannot return to the working directory: %s", strerror(errno));
                close(cwd);
        }
        if (staging_name[0]) {
                int home_fd = r.kind == TARGET_EMPTY ? target_fd : parent_fd;
                /* Placed: the staging name is empty (TARGET_EMPTY), gone
                 * (TARGET_NEW) or holds the old tree (TARGET_REPLACE), which
                 * goes only now that the new one is durable. */
                if (!(placed && r.kind == TARGET_NEW)) {
                        int q = rm_rf_at(home_fd, staging_name);
                        if (q < 0)
                                log_debug("cannot remove %s: %s", staging_name, berth_strerror(q));
                }
        }
        if (staging_fd >= 0)
                close(staging_fd);
        if (target_fd >= 0)
                close(target_fd);
        if (parent_fd >= 0)
                close(parent_fd);
        restorer_clear(&r);
        for (size_t i = 0; inc && i < o->ninclude; i++)
                free(inc[i]);
        free(inc);
        snapfile_clear(&f);
        return k;
}
