/* walk.c — walking a directory tree into manifest entries.
 *
 * The walk never leaves the tree: every step is openat() relative to an
 * open directory with O_NOFOLLOW, and what was opened is checked to be what
 * was listed (same device and inode).  Children are visited in bytewise
 * order, which is the manifest's order, so the previous snapshot's manifest
 * can be read in step: a file whose stat fields match its entry there is
 * reused without being read.  Metadata (xattrs, ACLs, file flags, sparse
 * map, owner names) comes from libarchive's disk reader, given the fd we
 * opened.  Hard links are found by (device, inode) in a table of files
 * with more than one link.
 *
 * This file decides what each entry is and whether its contents must be
 * read; reading them and the chunks in flight are chunkq.c's, and turning
 * the walk into a snapshot is backup.c's.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <linux/fs.h>
#include <sys/sysmacros.h>

#include "walker.h"

#define LIVE_RETRIES 3
#define PROGRESS_NS (250 * 1000 * 1000)
/* A file modified this close to the previous backup's start may have
 * changed again within the same timestamp: read it again. */
#define RACY_NS (1000 * 1000 * 1000)
#define USER_FFLAGS                                                                                  \
        (FS_APPEND_FL | FS_IMMUTABLE_FL | FS_NODUMP_FL | FS_NOATIME_FL | FS_SYNC_FL | FS_DIRSYNC_FL | \
         FS_NOCOW_FL | FS_COMPR_FL)

/* ---- small helpers ------------------------------------------------------------- */

void walker_warn(struct walker *w, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        w->res->warnings++;
        if (w->o->events.warning)
                w->o->events.warning(w->o->events.ud, w->path.len ? (const char *)w->path.data : ".", msg);
}

void walker_progress(struct walker *w, bool force)
{
        if (!w->o->events.progress)
                return;
        int64_t now = mono_ns();
        if (!force && now - w->last_progress < PROGRESS_NS)
                return;
        w->last_progress = now;
        struct store_stats ss;
        store_get_stats(w->store, &ss);
        struct snapshot_progress p = {
                .files = w->res->files + w->res->dirs,
                .bytes = w->bytes_done,
                .bytes_read = w->res->bytes_read,
                .bytes_added = ss.bytes_added,
                .path = w->path.len ? (const char *)w->path.data : ".",
        };
        w->o->events.progress(w->o->events.ud, &p);
}

static size_t link_home(const struct walker *w, dev_t dev, ino_t ino)
{
        uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ULL ^ (uint64_t)dev;
        return (size_t)(h ^ (h >> 29)) & (w->links_cap - 1);
}

static const char *link_find(const struct walker *w, dev_t dev, ino_t ino)
{
        if (!w->links_cap)
                return NULL;
        for (size_t i = link_home(w, dev, ino);; i = (i + 1) & (w->links_cap - 1)) {
                if (!w->links[i].path)
                        return NULL;
                if (w->links[i].dev == dev && w->links[i].ino == ino)
                        return w->links[i].path;
        }
}

static void link_add(struct walker *w, dev_t dev, ino_t ino, const char *path)
{
        if ((w->nlinks + 1) * 2 > w->links_cap) {
                struct link_slot *old = w->links;
                size_t oldcap = w->links_cap;
                w->links_cap = oldcap ? oldcap * 2 : 64;
                w->links = xcalloc(w->links_cap, sizeof *w->links);
                for (size_t i = 0; i < oldcap; i++) {
                        if (!old[i].path)
                                continue;
                        size_t j = link_home(w, old[i].dev, old[i].ino);
                        while (w->links[j].path)
                                j = (j + 1) & (w->links_cap - 1);
                        w->links[j] = old[i];
                }
                free(old);
        }
        size_t j = link_home(w, dev, ino);
        while (w->links[j].path)
                j = (j + 1) & (w->links_cap - 1);
        w->links[j] = (struct link_slot){ dev, ino, xstrdup(path) };
        w->nlinks++;
}

static const char *cur_path(const struct walker *w)
{
        return w->path.len ? (const char *)w->path.data : "";
}

static void path_push(struct walker *w, const char *name, size_t *saved)
{
        *saved = w->path.len;
        if (w->path.len)
                buf_putc(&w->path, '/');
        buf_append(&w->path, name, strlen(name));
        buf_putc(&w->path, 0);
        w->path.len--;
}

static void path_pop(struct walker *w, size_t saved)
{
        w->path.len = saved;
        if (w->path.data)
                w->path.data[saved] = 0;
}

void walker_drop_prev(struct walker *w)
{
        backup_parent_unusable(w);
        manifest_reader_free(w->prev);
        w->prev = NULL;
        w->prev_state = 0;
}

/* Moves the previous manifest forward to the current path; returns its
 * entry for this path or NULL. */
static int prev_lookup(struct walker *w, const struct entry **ret)
{
        *ret = NULL;
        while (w->prev_state > 0) {
                int c = path_cmp(w->prev_e->path, w->prev_e->path_len, cur_path(w), w->path.len);
                if (c == 0) {
                        *ret = w->prev_e;
                        return 0;
                }
                if (c > 0)
                        return 0;
                int k = manifest_reader_next(w->prev, &w->prev_e);
                if (k < 0) {
                        walker_drop_prev(w);
                        return 0;
                }
                w->prev_state = k;
        }
        return 0;
}

/* ---- metadata ------------------------------------------------------------------- */

static void entry_reset(struct walker *w)
{
        free(w->acl);
        w->acl = NULL;
        w->nchunks = w->nsparse = 0;
        buf_reset(&w->strings);
        w->e = (struct entry){ 0 };
}

static void entry_from_stat(struct walker *w, const struct stat *st, uint8_t type)
{
        struct entry *e = &w->e;
        e->type = type;
        e->path = cur_path(w);
        e->path_len = w->path.len;
        e->mode = st->st_mode & 07777;
        e->uid = st->st_uid;
        e->gid = st->st_gid;
        e->mtime_sec = st->st_mtim.tv_sec;
        e->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
        e->ctime_sec = st->st_ctim.tv_sec;
        e->ctime_nsec = (uint32_t)st->st_ctim.tv_nsec;
        e->ino = st->st_ino;
        e->size = type == ENTRY_REG ? (uint64_t)st->st_size : 0;
        e->rdev = (type == ENTRY_CHR || type == ENTRY_BLK) ? st->st_rdev : 0;
        e->acl = "";
}

/* Reads xattrs, ACLs, file flags, owner names, the symlink target and the
 * sparse map through libarchive.  fd is the object itself, or -1 for
 * objects that cannot be opened (symlinks, devices, fifos): then libarchive
 * reaches them by a /proc path through the open parent directory, so the
 * lookup cannot be redirected either. */
static int read_metadata(struct walker *w, int dfd, const char *name, int fd, const struct stat *st)
{
        char src[64 + NAME_MAX];
        archive_entry_clear(w->ae);
        if (fd >= 0)
                snprintf(src, sizeof src, "/proc/self/fd/%d", fd);
        else
                snprintf(src, sizeof src, "/proc/self/fd/%d/%s", dfd, name);
        archive_entry_copy_sourcepath(w->ae, src);
        archive_entry_copy_pathname(w->ae, src);
        /* Only a file with fewer blocks than its size can have holes: skip
         * libarchive's hole probing (several lseeks) for all the others. */
        bool maybe_sparse = S_ISREG(st->st_mode) && (uint64_t)st->st_blocks * 512 < (uint64_t)st->st_size;
        archive_read_disk_set_behavior(w->disk, maybe_sparse ? 0 : ARCHIVE_READDISK_NO_SPARSE);
        int k = archive_read_disk_entry_from_file(w->disk, w->ae, fd, st);
        if (k < ARCHIVE_WARN)
                return -EIO;
        if (k == ARCHIVE_WARN)
                walker_warn(w, "some metadata could not be read: %s", archive_error_string(w->disk));

        struct entry *e = &w->e;
        e->uname = archive_entry_uname(w->ae);
        e->gname = archive_entry_gname(w->ae);
        unsigned long set = 0, clear = 0;
        archive_entry_fflags(w->ae, &set, &clear);
        /* Only flags a user sets with chattr; the rest (extents, inline
         * data, ...) describe one filesystem's layout and cannot be
         * restored elsewhere. */
        e->fflags_set = set & USER_FFLAGS;
        e->fflags_clear = clear & USER_FFLAGS;

        size_t n = (size_t)archive_entry_xattr_reset(w->ae);
        if (n > w->xattrs_cap) {
                w->xattrs_cap = n;
                w->xattrs = xrealloc(w->xattrs, n * sizeof *w->xattrs);
        }
        e->xattrs = w->xattrs;
        e->nxattrs = 0;
        const char *xname;
        const void *xval;
        size_t xlen;
        while (archive_entry_xattr_next(w->ae, &xname, &xval, &xlen) == ARCHIVE_OK && e->nxattrs < n)
                w->xattrs[e->nxattrs++] = (struct xattr){ xname, xval, xlen };

        if (archive_entry_acl_count(w->ae, ARCHIVE_ENTRY_ACL_TYPE_POSIX1E) > 0) {
                /* With each named user's and group's id: restore maps by id. */
                w->acl = archive_entry_acl_to_text(w->ae, NULL, ARCHIVE_ENTRY_ACL_TYPE_POSIX1E |
                                                                        ARCHIVE_ENTRY_ACL_STYLE_EXTRA_ID);
                e->acl = w->acl ? w->acl : "";
        }
        if (e->type == ENTRY_SYMLINK) {
                const char *t = archive_entry_symlink(w->ae);
                if (!t)
                        return -EIO;
                e->link = t;
                e->link_len = strlen(t);
        }
        if (e->type == ENTRY_REG) {
                int64_t off, len;
                int count = archive_entry_sparse_reset(w->ae);
                w->nsparse = 0;
                while (count > 0 && archive_entry_sparse_next(w->ae, &off, &len) == ARCHIVE_OK) {
                        if (w->nsparse == w->sparse_cap) {
                                w->sparse_cap = w->sparse_cap ? w->sparse_cap * 2 : 16;
                                w->sparse = xrealloc(w->sparse, w->sparse_cap * sizeof *w->sparse);
                        }
                        w->sparse[w->nsparse++] = (struct sparse_region){ (uint64_t)off, (uint64_t)len };
                }
                /* A file that is one hole has no data region at all;
                 * record that as an empty region at its end. */
                if (w->nsparse == 0 && st->st_size > 0 && lseek(fd, 0, SEEK_DATA) < 0 && errno == ENXIO) {
                        w->sparse = xrealloc(w->sparse, sizeof *w->sparse * (w->sparse_cap = MAX(w->sparse_cap, 1)));
                        w->sparse[w->nsparse++] = (struct sparse_region){ (uint64_t)st->st_size, 0 };
                }
                lseek(fd, 0, SEEK_SET);
                e->sparse = w->sparse;
                e->nsparse = w->nsparse;
        }
        return 0;
}

static bool same_stat(const struct stat *a, const struct stat *b)
{
        return a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
               a->st_mtim.tv_nsec == b->st_mtim.tv_nsec && a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
               a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static bool reusable(const struct walker *w, const struct entry *p, const struct stat *st)
{
        if (!p || p->type != ENTRY_REG || (p->flags & ENTRY_F_INCONSISTENT) || w->o->force_read)
                return false;
        unsigned u = w->unchanged;
        if ((u & UNCHANGED_SIZE) && p->size != (uint64_t)st->st_size)
                return false;
        if ((u & UNCHANGED_MTIME) &&
            (p->mtime_sec != st->st_mtim.tv_sec || p->mtime_nsec != (uint32_t)st->st_mtim.tv_nsec))
                return false;
        if ((u & UNCHANGED_CTIME) &&
            (p->ctime_sec != st->st_ctim.tv_sec || p->ctime_nsec != (uint32_t)st->st_ctim.tv_nsec))
                return false;
        if ((u & UNCHANGED_INODE) && p->ino != (uint64_t)st->st_ino)
                return false;
        int64_t mtime = time_ns(p->mtime_sec, p->mtime_nsec);
        if (mtime >= w->prev_started - RACY_NS)
                return false;
        return true;
}

/* Copies what the entry keeps from the previous snapshot into scratch
 * storage of our own (the reader moves on before we are done). */
static void reuse_from(struct walker *w, const struct entry *p, bool metadata)
{
        for (size_t i = 0; i < p->nchunks; i++)
                chunk_refs_add(&w->chunks, &w->nchunks, &w->chunks_cap, p->chunks[i].id, p->chunks[i].len);
        if (p->nsparse > w->sparse_cap) {
                w->sparse_cap = p->nsparse;
                w->sparse = xrealloc(w->sparse, w->sparse_cap * sizeof *w->sparse);
        }
        if (p->nsparse)
                memcpy(w->sparse, p->sparse, p->nsparse * sizeof *p->sparse);
        w->nsparse = p->nsparse;
        w->e.sparse = w->sparse;
        w->e.nsparse = w->nsparse;
        w->e.size = p->size;
        if (!metadata)
                return;

        /* Unchanged ctime means unchanged xattrs, ACLs and flags too. */
        size_t need = strlen(p->uname) + strlen(p->gname) + strlen(p->acl) + 3;
        for (size_t i = 0; i < p->nxattrs; i++)
                need += strlen(p->xattrs[i].name) + 1 + p->xattrs[i].len;
        buf_reset(&w->strings);
        buf_reserve(&w->strings, need);
#define KEEP(dst, src, n)                                                    \
        do {                                                                 \
                char *_d = (char *)w->strings.data + w->strings.len;         \
                memcpy(_d, (src), (n));                                      \
                w->strings.len += (n);                                       \
                (dst) = _d;                                                  \
        } while (0)
        KEEP(w->e.uname, p->uname, strlen(p->uname) + 1);
        KEEP(w->e.gname, p->gname, strlen(p->gname) + 1);
        KEEP(w->e.acl, p->acl, strlen(p->acl) + 1);
        if (p->nxattrs > w->xattrs_cap) {
                w->xattrs_cap = p->nxattrs;
                w->xattrs = xrealloc(w->xattrs, w->xattrs_cap * sizeof *w->xattrs);
        }
        for (size_t i = 0; i < p->nxattrs; i++) {
                KEEP(w->xattrs[i].name, p->xattrs[i].name, strlen(p->xattrs[i].name) + 1);
                const char *v;
                KEEP(v, p->xattrs[i].value, p->xattrs[i].len);
                w->xattrs[i].value = (const uint8_t *)v;
                w->xattrs[i].len = p->xattrs[i].len;
        }
#undef KEEP
        w->e.xattrs = w->xattrs;
        w->e.nxattrs = p->nxattrs;
        w->e.fflags_set = p->fflags_set;
        w->e.fflags_clear = p->fflags_clear;
}

/* Opens name below dfd without following symlinks, and checks that it is
 * the object fstatat() listed. */
static int open_checked(struct walker *w, int dfd, const char *name, int flags, const struct stat *st,
                        struct stat *ret_st)
{
        int fd = openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NOATIME);
        if (fd < 0 && errno == EPERM)
                /* O_NOATIME needs ownership or CAP_FOWNER. */
                fd = openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, ret_st) < 0) {
                int k = -errno;
                close(fd);
                return k;
        }
        if (ret_st->st_dev != st->st_dev || ret_st->st_ino != st->st_ino ||
            (ret_st->st_mode & S_IFMT) != (st->st_mode & S_IFMT)) {
                close(fd);
                return -ESTALE;
        }
        return fd;
}

static void warn_open(struct walker *w, int k, const char *what)
{
        if (k == -ENOENT)
                return; /* deleted while we walked: a change like any other */
        if (k == -ESTALE)
                walker_warn(w, "skipped: it was replaced while being backed up");
        else
                walker_warn(w, "skipped: cannot %s: %s", what, berth_strerror(k));
        w->res->skipped++;
}

/* ---- the walk ------------------------------------------------------------------- */

static int walk_dir(struct walker *w, int dfd);

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads (or reuses) one regular file and emits its entry. */
static int do_file(struct walker *w, int dfd, const char *name, const struct stat *st)
{
        const struct entry *p;
        int k = prev_lookup(w, &p);
        if (k < 0)
                return k;

        if (st->st_nlink > 1) {
                const char *first = link_find(w, st->st_dev, st->st_ino);
                if (first) {
                        entry_from_stat(w, st, ENTRY_HARDLINK);
                        w->e.link = first;
                        w->e.link_len = strlen(first);
                        return chunkq_emit(w);
                }
        }

        bool reuse = reusable(w, p, st);
        if (reuse) {
                /* Not when a pack holding some of its chunks is lost: read
                 * it, and the chunks are stored again. */
                k = store_chunks_usable(w->store, p->chunks, p->nchunks);
                if (k < 0)
                        return k;
                reuse = k > 0;
        }
        if (reuse && (w->unchanged & UNCHANGED_CTIME)) {
                /* Nothing about the file changed: do not even open it. */
                entry_from_stat(w, st, ENTRY_REG);
                reuse_from(w, p, true);
        } else {
                struct stat fst, after;
                _cleanup_close_ int fd = open_checked(w, dfd, name, O_RDONLY | O_NONBLOCK, st, &fst);
                if (fd < 0) {
                        warn_open(w, fd, "open it");
                        return 0;
                }
                for (int attempt = 0;; attempt++) {
                        entry_reset(w);
                        entry_from_stat(w, &fst, ENTRY_REG);
                        if (read_metadata(w, dfd, name, fd, &fst) < 0) {
                                walker_warn(w, "skipped: cannot read its metadata: %s", archive_error_string(w->disk));
                                w->res->skipped++;
                                return 0;
                        }
                        if (reuse) {
                                reuse_from(w, p, false);
                                break;
                        }
                        uint64_t n = 0;
                        error_clear();
                        k = chunkq_read_content(w, fd, &n);
                        if (k < 0 && error_message())
                                return k; /* the repository failed, not the file */
                        if (k < 0) {
                                walker_warn(w, "skipped: cannot read it: %s", berth_strerror(k));
                                w->res->skipped++;
                                return chunkq_drop_current(w);
                        }
                        w->res->bytes_read += n;
                        if (!w->nsparse)
                                w->e.size = n;
                        if (fstat(fd, &after) < 0)
                                return -errno;
                        if (same_stat(&fst, &after) && (w->nsparse || n == (uint64_t)fst.st_size))
                                break;
                        if (attempt == LIVE_RETRIES || w->o->first_pass) {
                                w->e.flags |= ENTRY_F_INCONSISTENT;
                                if (w->o->first_pass)
                                        break; /* the quiesced pass reads it again */
                                w->res->inconsistent++;
                                walker_warn(w,
                                            "changed while being read (%d attempts); stored as last read and "
                                            "marked inconsistent",
                                            attempt + 1);
                                break;
                        }
                        fst = after;
                        if (lseek(fd, 0, SEEK_SET) < 0)
                                return -errno;
                        k = chunkq_drop_current(w);
                        if (k < 0)
                                return k;
                }
        }
        if (reuse) {
                w->res->files_reused++;
                w->bytes_done += w->e.size;
        } else
                w->res->files_read++;
        if (st->st_nlink > 1) {
                w->e.flags |= ENTRY_F_LINKED;
                link_add(w, st->st_dev, st->st_ino, cur_path(w));
        }
        return chunkq_emit(w);
}

static int cancelled(const struct walker *w)
{
        if (w->o->events.cancel && *w->o->events.cancel)
                return error_set(ECANCELED, "interrupted; no snapshot was written");
        return 0;
}

static int do_entry(struct walker *w, int dfd, const char *name)
{
        struct stat st;
        int k = cancelled(w);
        if (k < 0)
                return k;

        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                        return 0;
                warn_open(w, -errno, "stat it");
                return 0;
        }
        entry_reset(w);
        switch (st.st_mode & S_IFMT) {
        case S_IFREG:
                return do_file(w, dfd, name, &st);
        case S_IFDIR: {
                struct stat fst;
                int fd = open_checked(w, dfd, name, O_RDONLY | O_DIRECTORY, &st, &fst);
                if (fd < 0) {
                        warn_open(w, fd, "open the directory");
                        return 0;
                }
                entry_from_stat(w, &fst, ENTRY_DIR);
                if (read_metadata(w, dfd, name, fd, &fst) < 0) {
                        close(fd);
                        walker_warn(w, "skipped: cannot read its metadata: %s", archive_error_string(w->disk));
                        w->res->skipped++;
                        return 0;
                }
                k = chunkq_emit(w);
                if (k == 0) {
                        if (w->o->one_file_system && fst.st_dev != w->root_dev)
                                log_debug("not descending into mount point '%s'", cur_path(w));
                        else
                                k = walk_dir(w, fd);
                }
                close(fd);
                return k;
        }
        case S_IFLNK:
        case S_IFCHR:
        case S_IFBLK:
        case S_IFIFO: {
                uint8_t type = S_ISLNK(st.st_mode)   ? ENTRY_SYMLINK
                               : S_ISCHR(st.st_mode) ? ENTRY_CHR
                               : S_ISBLK(st.st_mode) ? ENTRY_BLK
                                                     : ENTRY_FIFO;
                entry_from_stat(w, &st, type);
                if (read_metadata(w, dfd, name, -1, &st) < 0) {
                        if (errno == ENOENT)
                                return 0;
                        walker_warn(w, "skipped: cannot read it: %s", archive_error_string(w->disk));
                        w->res->skipped++;
                        return 0;
                }
                return chunkq_emit(w);
        }
        case S_IFSOCK:
                /* A socket is recreated by the program that listens on it. */
                log_debug("skipping socket '%s'", cur_path(w));
                return 0;
        default:
                walker_warn(w, "skipped: unknown file type");
                w->res->skipped++;
                return 0;
        }
}

/* A directory that starts a database tree (page_tree_of()) makes its
 * files page-structured when their size fits; an InnoDB tree's page size
 * is its system tablespace's.  Best effort: what cannot be read keeps the
 * default. */
static void enter_page_tree(struct walker *w, int dfd, char *const *names, size_t n)
{
        uint8_t tree = page_tree_of(names, n);
        if (tree == PAGE_TREE_NONE)
                return;
        w->page_tree = tree;
        w->page_tree_page = 0;
        if (tree != PAGE_TREE_MYSQL)
                return;
        uint8_t head[64];
        struct stat st;
        _cleanup_close_ int fd = openat(dfd, "ibdata1", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                fd = openat(dfd, "mysql.ibd", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
                ssize_t got = pread(fd, head, sizeof head, 0);
                if (got > 0)
                        w->page_tree_page = innodb_page_size(head, (size_t)got);
        }
}

static int walk_dir(struct walker *w, int dfd)
{
        int fd = dup(dfd);
        if (fd < 0)
                return -errno;
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -errno;
        }
        char **names = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        errno = 0;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2])))
                        continue;
                if (n == cap) {
                        cap = cap ? cap * 2 : 64;
                        names = xrealloc(names, cap * sizeof *names);
                }
                names[n++] = xstrdup(de->d_name);
        }
        int k = errno ? -errno : 0;
        closedir(d);
        if (k < 0) {
                walker_warn(w, "directory listing incomplete: %s", strerror(-k));
                w->res->skipped++;
                k = 0;
        }

        if (n > 1)
                qsort(names, n, sizeof *names, name_cmp);
        uint8_t tree = w->page_tree;
        uint32_t tree_page = w->page_tree_page;
        if (w->pages == PAGES_AUTO)
                enter_page_tree(w, dfd, names, n);
        for (size_t i = 0; i < n && k >= 0; i++) {
                size_t saved;
                path_push(w, names[i], &saved);
                k = do_entry(w, dfd, names[i]);
                path_pop(w, saved);
        }
        w->page_tree = tree;
        w->page_tree_page = tree_page;
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        return k;
}

int walker_walk(struct walker *w, int root, const struct stat *rst)
{
        /* The root directory itself, then everything below it. */
        entry_reset(w);
        entry_from_stat(w, rst, ENTRY_DIR);
        if (read_metadata(w, root, ".", root, rst) < 0)
                return error_set(EIO, "cannot read the metadata of '%s': %s", w->o->path,
                                 archive_error_string(w->disk));
        int k = chunkq_emit(w);
        if (k == 0)
                k = walk_dir(w, root);
        return k;
}

void walker_free(struct walker *w)
{
        chunkq_release(w);
        if (w->disk)
                archive_read_free(w->disk);
        if (w->ae)
                archive_entry_free(w->ae);
        manifest_writer_free(w->mw);
        manifest_reader_free(w->prev);
        buf_free(&w->path);
        buf_free(&w->strings);
        free(w->chunks);
        free(w->sparse);
        free(w->xattrs);
        free(w->acl);
        for (size_t i = 0; i < w->links_cap; i++)
                free(w->links[i].path);
        free(w->links);
}
