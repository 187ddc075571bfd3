/* backup.c — walking a directory into a snapshot.
 *
 * The walk never leaves the tree: every step is openat() relative to an
 * open directory with O_NOFOLLOW, and what was opened is checked to be what
 * was listed (same device and inode).  Children are visited in bytewise
 * order, which is the manifest's order, so the previous snapshot's manifest
 * can be read in step: a file whose stat fields match its entry there is
 * reused without being read.  Metadata (xattrs, ACLs, file flags, sparse
 * map, owner names) comes from libarchive's disk reader, given the fd we
 * opened.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <linux/fs.h>
#include <sys/sysmacros.h>

#include "internal.h"

#define READ_BUFFER (4u << 20)
#define LIVE_RETRIES 3
#define PROGRESS_NS (250 * 1000 * 1000)
/* A file modified this close to the previous backup's start may have
 * changed again within the same timestamp: read it again. */
#define RACY_NS (1000 * 1000 * 1000)
#define USER_FFLAGS                                                                                  \
        (FS_APPEND_FL | FS_IMMUTABLE_FL | FS_NODUMP_FL | FS_NOATIME_FL | FS_SYNC_FL | FS_DIRSYNC_FL | \
         FS_NOCOW_FL | FS_COMPR_FL)

struct link_slot {
        dev_t dev;
        ino_t ino;
        char *path;
};

struct backup_run;

struct walker {
        struct repo *repo;
        struct store *store;
        const struct backup_options *o;
        struct backup_result *res;
        struct backup_run *run;
        struct archive *disk;
        struct archive_entry *ae;
        struct manifest_writer *mw;
        struct manifest_reader *prev;
        const struct entry *prev_e;
        int prev_state;                 /* 1: prev_e valid, 0: prev exhausted */
        int64_t prev_started;
        unsigned unchanged;
        dev_t root_dev;
        struct buf path;
        struct buf rbuf;
        /* per-entry scratch */
        struct entry e;
        struct chunk_ref *chunks;
        size_t nchunks, chunks_cap;
        struct sparse_region *sparse;
        size_t nsparse, sparse_cap;
        struct xattr *xattrs;
        size_t xattrs_cap;
        char *acl;
        struct buf strings;             /* copies of names kept from prev */
        /* hard links: (dev, ino) of files with more than one link */
        struct link_slot *links;
        size_t links_cap, nlinks;
        int64_t last_progress;
        uint64_t bytes_done;
        /* Chunks in flight: workers hash them, and their ids come back in
         * submission order; refs[] says which entry and which chunk each
         * belongs to.  Entries are numbered in walk order; the current
         * one (cur_entry) is still being read. */
        struct chunk_dest {
                uint64_t entry;
                uint32_t idx;
        } *refs;
        uint64_t refs_head, refs_tail;
        uint64_t cur_entry;
        size_t cur_missing;
        /* Entries encoded but still waiting for chunk ids, oldest first;
         * they reach the manifest in order. */
        struct queued {
                struct buf rec;
                size_t chunks_off, missing;
        } *q;
        size_t q_head, q_len, q_cap;
        size_t q_bytes;
};

/* Queued entries may hold this many bytes of records before the walk
 * waits for the workers. */
#define QUEUE_BYTES (8u << 20)

/* ---- small helpers ------------------------------------------------------------- */

static void warn(struct walker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct walker *w, const char *fmt, ...)
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

static void progress(struct walker *w, bool force)
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

static void parent_unusable(struct walker *w);

/* Stops comparing with the previous snapshot, whose manifest could not be
 * read (error_message() says why): the rest of the walk reads every file.
 * A damaged parent costs speed, never the backup. */
static void drop_prev(struct walker *w)
{
        parent_unusable(w);
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
                        drop_prev(w);
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
                warn(w, "some metadata could not be read: %s", archive_error_string(w->disk));

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

/* ---- file contents ------------------------------------------------------------- */

static void add_chunk(struct walker *w, const uint8_t id[HASH_LEN], size_t len)
{
        chunk_refs_add(&w->chunks, &w->nchunks, &w->chunks_cap, id, len);
}

/* Takes back the id of the oldest chunk in flight (waiting for it when
 * `wait`) and puts it where it belongs; 1 when one was resolved. */
static int resolve_one(struct walker *w, bool wait)
{
        uint8_t id[HASH_LEN];
        int k = store_resolve(w->store, wait, id);
        if (k <= 0)
                return k;
        size_t window = store_ticket_window();
        struct chunk_dest d = w->refs[w->refs_head++ % window];
        if (d.entry == w->cur_entry) {
                memcpy(w->chunks[d.idx].id, id, HASH_LEN);
                w->cur_missing--;
                return 1;
        }
        /* An entry already encoded: patch its record. */
        struct queued *qe = &w->q[(w->q_head + (size_t)(d.entry - (w->cur_entry - w->q_len))) % w->q_cap];
        memcpy(qe->rec.data + qe->chunks_off + (size_t)d.idx * ENTRY_CHUNK_REF_SIZE, id, HASH_LEN);
        qe->missing--;
        return 1;
}

/* Resolves what is ready (everything when `all`) and writes the complete
 * entries at the head of the queue to the manifest. */
static int pump(struct walker *w, bool all)
{
        while (w->refs_head < w->refs_tail) {
                int k = resolve_one(w, all);
                if (k < 0)
                        return k;
                if (k == 0)
                        break;
        }
        while (w->q_len > 0 && w->q[w->q_head].missing == 0) {
                struct queued *qe = &w->q[w->q_head];
                int k = manifest_writer_add_record(w->mw, qe->rec.data, qe->rec.len);
                w->q_bytes -= qe->rec.len;
                buf_free(&qe->rec);
                w->q_head = (w->q_head + 1) % w->q_cap;
                w->q_len--;
                if (k < 0)
                        return k;
        }
        return 0;
}

/* Forgets the chunks read for the current entry (a retry, or a file
 * skipped): they must be resolved first, since ids come back in order. */
static int drop_current(struct walker *w)
{
        int k = w->cur_missing ? pump(w, true) : 0;
        w->nchunks = 0;
        return k;
}

static int submit_chunk(struct walker *w, const uint8_t *p, size_t len)
{
        size_t window = store_ticket_window();
        while (!store_submit_ready(w->store, len)) {
                int k = resolve_one(w, true);
                if (k < 0)
                        return k;
        }
        int k = store_submit(w->store, p, len);
        if (k < 0)
                return k;
        static const uint8_t unknown[HASH_LEN];
        add_chunk(w, unknown, len);
        w->refs[w->refs_tail++ % window] = (struct chunk_dest){ w->cur_entry, (uint32_t)(w->nchunks - 1) };
        w->cur_missing++;
        w->bytes_done += len;
        progress(w, false);
        if (w->o->events.cancel && *w->o->events.cancel)
                return error_set(ECANCELED, "interrupted; no snapshot was written");
        return 0;
}

/* Reads the file's data regions (all of it when not sparse) as one stream,
 * cutting and storing chunks as the buffer fills.  A sparse file that
 * shrank under us has its map trimmed to what was read, so the map and the
 * chunks always agree. */
static int read_content(struct walker *w, int fd, uint64_t *ret_bytes)
{
        struct buf *b = &w->rbuf;
        uint64_t total = 0;
        size_t region = 0;
        uint64_t roff = w->nsparse ? w->sparse[0].offset : 0;
        bool eof = false;

        buf_reset(b);
        w->nchunks = 0;
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        for (;;) {
                while (!eof && b->len < b->cap) {
                        ssize_t k;
                        if (w->nsparse) {
                                if (region == w->nsparse) {
                                        eof = true;
                                        break;
                                }
                                uint64_t rend = w->sparse[region].offset + w->sparse[region].length;
                                if (roff >= rend) {
                                        if (++region < w->nsparse)
                                                roff = w->sparse[region].offset;
                                        continue;
                                }
                                k = pread(fd, b->data + b->len, (size_t)MIN((uint64_t)(b->cap - b->len), rend - roff),
                                          (off_t)roff);
                        } else
                                k = read(fd, b->data + b->len, b->cap - b->len);
                        if (k < 0) {
                                if (errno == EINTR)
                                        continue;
                                return -errno;
                        }
                        if (k == 0) {
                                eof = true;
                                break;
                        }
                        roff += (uint64_t)k;
                        b->len += (size_t)k;
                        total += (uint64_t)k;
                }
                size_t pos = 0;
                for (;;) {
                        size_t cut = chunker_cut(&w->repo->chunker, b->data + pos, b->len - pos, eof);
                        if (cut == 0)
                                break;
                        int k = submit_chunk(w, b->data + pos, cut);
                        if (k < 0)
                                return k;
                        pos += cut;
                }
                buf_consume(b, pos);
                if (eof && b->len == 0)
                        break;
        }
        if (w->nsparse) {
                uint64_t left = total;
                for (size_t i = 0; i < w->nsparse; i++) {
                        if (w->sparse[i].length > left) {
                                w->sparse[i].length = left;
                                w->nsparse = i + 1;
                                w->e.nsparse = w->nsparse;
                                break;
                        }
                        left -= w->sparse[i].length;
                }
        }
        *ret_bytes = total;
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
                add_chunk(w, p->chunks[i].id, p->chunks[i].len);
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

static int emit(struct walker *w)
{
        struct entry *e = &w->e;
        int k;
        e->chunks = w->chunks;
        e->nchunks = e->type == ENTRY_REG ? w->nchunks : 0;
        if (e->type == ENTRY_DIR)
                w->res->dirs++;
        else
                w->res->files++;
        if (e->type == ENTRY_REG)
                w->res->bytes += e->size;

        if (w->cur_missing == 0 && w->q_len == 0)
                k = manifest_writer_add(w->mw, e);
        else {
                /* Some ids are still being computed: queue the record, with
                 * room for them, behind the entries before it. */
                if (w->q_len == w->q_cap) {
                        size_t cap = w->q_cap ? w->q_cap * 2 : 64;
                        struct queued *q = xcalloc(cap, sizeof *q);
                        for (size_t i = 0; i < w->q_len; i++)
                                q[i] = w->q[(w->q_head + i) % w->q_cap];
                        free(w->q);
                        w->q = q;
                        w->q_cap = cap;
                        w->q_head = 0;
                }
                struct queued *qe = &w->q[(w->q_head + w->q_len) % w->q_cap];
                *qe = (struct queued){ .missing = w->cur_missing };
                entry_encode(e, &qe->rec);
                qe->chunks_off = qe->rec.len - e->nchunks * ENTRY_CHUNK_REF_SIZE;
                w->q_len++;
                w->q_bytes += qe->rec.len;
                k = 0;
        }
        w->cur_entry++;
        w->cur_missing = 0;
        if (k == 0)
                k = pump(w, w->q_bytes > QUEUE_BYTES);
        progress(w, false);
        return k;
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
                warn(w, "skipped: it was replaced while being backed up");
        else
                warn(w, "skipped: cannot %s: %s", what, berth_strerror(k));
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
                        return emit(w);
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
                                warn(w, "skipped: cannot read its metadata: %s", archive_error_string(w->disk));
                                w->res->skipped++;
                                return 0;
                        }
                        if (reuse) {
                                reuse_from(w, p, false);
                                break;
                        }
                        uint64_t n = 0;
                        error_clear();
                        k = read_content(w, fd, &n);
                        if (k < 0 && error_message())
                                return k; /* the repository failed, not the file */
                        if (k < 0) {
                                warn(w, "skipped: cannot read it: %s", berth_strerror(k));
                                w->res->skipped++;
                                return drop_current(w);
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
                                warn(w, "changed while being read (%d attempts); stored as last read and marked "
                                        "inconsistent",
                                     attempt + 1);
                                break;
                        }
                        fst = after;
                        if (lseek(fd, 0, SEEK_SET) < 0)
                                return -errno;
                        k = drop_current(w);
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
        return emit(w);
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
                        warn(w, "skipped: cannot read its metadata: %s", archive_error_string(w->disk));
                        w->res->skipped++;
                        return 0;
                }
                k = emit(w);
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
                        warn(w, "skipped: cannot read it: %s", archive_error_string(w->disk));
                        w->res->skipped++;
                        return 0;
                }
                return emit(w);
        }
        case S_IFSOCK:
                /* A socket is recreated by the program that listens on it. */
                log_debug("skipping socket '%s'", cur_path(w));
                return 0;
        default:
                warn(w, "skipped: unknown file type");
                w->res->skipped++;
                return 0;
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
                warn(w, "directory listing incomplete: %s", strerror(-k));
                w->res->skipped++;
                k = 0;
        }

        if (n > 1)
                qsort(names, n, sizeof *names, name_cmp);
        for (size_t i = 0; i < n && k >= 0; i++) {
                size_t saved;
                path_push(w, names[i], &saved);
                k = do_entry(w, dfd, names[i]);
                path_pop(w, saved);
        }
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        return k;
}

int parse_unchanged_fields(const char *s, unsigned *ret)
{
        unsigned m = 0;
        _cleanup_free_ char *copy = xstrdup(s);
        char *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (strcmp(t, "size") == 0)
                        m |= UNCHANGED_SIZE;
                else if (strcmp(t, "mtime") == 0)
                        m |= UNCHANGED_MTIME;
                else if (strcmp(t, "ctime") == 0)
                        m |= UNCHANGED_CTIME;
                else if (strcmp(t, "inode") == 0)
                        m |= UNCHANGED_INODE;
                else
                        return -EINVAL;
        }
        if (!(m & UNCHANGED_SIZE) || !(m & UNCHANGED_MTIME))
                /* size and mtime are the least a change check can rest on */
                return -EINVAL;
        *ret = m;
        return 0;
}

static void walker_free(struct walker *w)
{
        /* On failure, ids still in flight must be taken back (into storage
         * that is still ours) so that the store's next user starts clean. */
        while (w->store && w->refs_head < w->refs_tail && resolve_one(w, true) > 0)
                ;
        if (w->disk)
                archive_read_free(w->disk);
        if (w->ae)
                archive_entry_free(w->ae);
        manifest_writer_free(w->mw);
        manifest_reader_free(w->prev);
        buf_free(&w->path);
        buf_free(&w->rbuf);
        buf_free(&w->strings);
        free(w->chunks);
        free(w->sparse);
        free(w->xattrs);
        free(w->acl);
        for (size_t i = 0; i < w->links_cap; i++)
                free(w->links[i].path);
        free(w->links);
        for (size_t i = 0; i < w->q_len; i++)
                buf_free(&w->q[(w->q_head + i) % w->q_cap].rec);
        free(w->q);
        free(w->refs);
}

char *host_name(void)
{
        char h[256];
        if (gethostname(h, sizeof h) < 0)
                return xstrdup("localhost");
        h[sizeof h - 1] = 0;
        return xstrdup(h);
}

struct backup_run {
        struct backup_result res;
        uint8_t (*manifest)[HASH_LEN];
        size_t nmanifest;
        char *name, *host, *source, *parent;
        char *parent_problem;          /* why the newest snapshot could not be compared with */
        struct store_stats before;     /* store counters when the run (or its first phase) began */
};

void backup_run_free(struct backup_run *run)
{
        if (!run)
                return;
        free(run->manifest);
        free(run->name);
        free(run->host);
        free(run->source);
        free(run->parent);
        free(run->parent_problem);
        free(run);
}

/* Warns that the previous snapshot (run->parent, or the one named `id`)
 * cannot be compared with, and keeps the reason for a second phase (the
 * first one reports no warnings).  The new snapshot records no parent. */
static void parent_unusable_id(struct walker *w, const char *id)
{
        struct backup_run *run = w->run;
        const char *why = error_message() ? error_message() : "damaged";
        free(run->parent_problem);
        run->parent_problem = xasprintf("the previous snapshot %.12s cannot be read (%s); backing up as if it did "
                                        "not exist: every file is read",
                                        id, why);
        warn(w, "%s", run->parent_problem);
        error_clear();
        if (!w->o->parent_run) {
                free(run->parent);
                run->parent = NULL;
        }
}

static void parent_unusable(struct walker *w)
{
        _cleanup_free_ char *id = xstrdup(w->run->parent ? w->run->parent : "of this name");
        parent_unusable_id(w, id);
}

/* Opens the previous manifest to compare with: the parent run (second
 * phase), the given snapshot, or the newest snapshot of the name.  A
 * damaged parent (its snapshot file, or a lost pack holding its manifest)
 * costs speed and one warning, never the backup. */
static int open_parent(struct walker *w, struct backup_run *run)
{
        struct repo *r = w->repo;
        const struct backup_options *o = w->o;
        struct catalog_snapshot pinfo = { 0 };
        struct snapfile parent = { 0 };
        const uint8_t (*ids)[HASH_LEN] = NULL;
        size_t n = 0;
        int k;

        if (o->parent_run) {
                /* Its tree chunks must be readable: make them durable. */
                k = store_flush(w->store);
                if (k < 0)
                        return k;
                ids = (const uint8_t(*)[HASH_LEN])o->parent_run->manifest;
                n = o->parent_run->nmanifest;
                w->prev_started = o->parent_run->res.started;
                run->parent = o->parent_run->parent ? xstrdup(o->parent_run->parent) : NULL;
                run->before = o->parent_run->before;
                if (o->parent_run->parent_problem) {
                        run->parent_problem = xstrdup(o->parent_run->parent_problem);
                        warn(w, "%s", run->parent_problem);
                }
        } else {
                if (o->parent)
                        k = snapshot_resolve(r, o->parent, &pinfo) == 0 ? 1 : -1;
                else
                        k = catalog_snapshot_latest(r->catalog, o->name, INT64_MAX, &pinfo);
                if (k < 0)
                        return k;
                if (k > 0 && snapfile_read(r, pinfo.id, &parent) == 0) {
                        ids = (const uint8_t(*)[HASH_LEN])parent.manifest;
                        n = parent.nmanifest;
                        w->prev_started = parent.info.started;
                        run->parent = xstrdup(pinfo.id);
                } else if (k > 0)
                        parent_unusable_id(w, pinfo.id);
        }
        k = 0;
        if (ids) {
                k = manifest_reader_new(w->store, ids, n, &w->prev);
                if (k == 0) {
                        w->prev_state = manifest_reader_next(w->prev, &w->prev_e);
                        k = w->prev_state < 0 ? w->prev_state : 0;
                }
                if (k < 0) {
                        drop_prev(w);
                        k = 0;
                }
        }
        catalog_snapshot_clear(&pinfo);
        snapfile_clear(&parent);
        return k;
}

int snapshot_backup_walk(struct repo *r, const struct backup_options *o, struct backup_run **ret)
{
        struct backup_run *run = xcalloc(1, sizeof *run);
        struct walker w = { .repo = r, .o = o, .res = &run->res, .run = run };
        int k;

        run->res.started = now_ns();
        w.unchanged = o->unchanged ? o->unchanged : UNCHANGED_DEFAULT;
        _cleanup_close_ int root = open(o->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct stat rst;
        if (root < 0 || fstat(root, &rst) < 0) {
                k = error_set(errno, "cannot back up '%s': %s", o->path, strerror(errno));
                goto out;
        }
        w.root_dev = rst.st_dev;
        k = repo_store(r, &w.store);
        if (k < 0)
                goto out;
        if (store_outstanding(w.store) != 0) {
                k = error_set(EBUSY, "another backup's chunks are still in flight");
                goto out;
        }
        w.refs = xcalloc(store_ticket_window(), sizeof *w.refs);
        store_get_stats(w.store, &run->before);
        if (store_missing_packs(w.store))
                warn(&w, "%zu pack(s) listed in the catalog are missing or truncated: data they held is stored "
                         "again where this backup finds it; run 'berth check' to see which snapshots are damaged",
                     store_missing_packs(w.store));
        k = open_parent(&w, run);
        if (k < 0)
                goto out;

        w.disk = archive_read_disk_new();
        w.ae = archive_entry_new();
        if (!w.disk || !w.ae)
                abort();
        archive_read_disk_set_standard_lookup(w.disk);
        archive_read_disk_set_symlink_physical(w.disk);
        buf_reserve(&w.rbuf, MAX(READ_BUFFER, 2 * r->cfg.max));
        k = manifest_writer_new(w.store, &r->tree_chunker, &w.mw);
        if (k < 0)
                goto out;

        /* The root directory itself, then everything below it. */
        entry_reset(&w);
        entry_from_stat(&w, &rst, ENTRY_DIR);
        if (read_metadata(&w, root, ".", root, &rst) < 0) {
                k = error_set(EIO, "cannot read the metadata of '%s': %s", o->path, archive_error_string(w.disk));
                goto out;
        }
        k = emit(&w);
        if (k == 0)
                k = walk_dir(&w, root);
        if (k == 0)
                k = pump(&w, true);
        if (k == 0 && w.q_len != 0)
                k = error_set(EIO, "internal error: entries left without chunk ids");
        if (k == 0)
                k = manifest_writer_finish(w.mw, &run->manifest, &run->nmanifest);
        if (k < 0)
                goto out;
        progress(&w, true);
        log_debug("walk of '%s' took %.3fs", o->path, (double)(now_ns() - run->res.started) / 1e9);
        run->res.complete = run->res.skipped == 0;
        run->name = xstrdup(o->name);
        run->host = o->host ? xstrdup(o->host) : host_name();
        run->source = realpath(o->path, NULL);
        if (!run->source)
                run->source = xstrdup(o->path);
        *ret = TAKE_PTR(run);
out:
        walker_free(&w);
        backup_run_free(run);
        return k;
}

int snapshot_backup_commit(struct repo *r, struct backup_run *run, const char *meta, int64_t quiesce_ns,
                           struct backup_result *ret)
{
        struct snapfile f = { 0 };
        struct store *s;
        struct backup_result *res = &run->res;
        int k = repo_store(r, &s);
        if (k < 0)
                return k;
        f.info = (struct catalog_snapshot){
                .name = xstrdup(run->name),
                .host = xstrdup(run->host),
                .source = xstrdup(run->source),
                .started = res->started,
                .status = xstrdup(res->complete ? "complete" : "incomplete"),
                .files = res->files,
                .dirs = res->dirs,
                .bytes = res->bytes,
                .files_read = res->files_read,
                .files_reused = res->files_reused,
                .bytes_read = res->bytes_read,
                .warnings = res->warnings,
                .parent = run->parent ? xstrdup(run->parent) : NULL,
                .meta = meta ? xstrdup(meta) : NULL,
        };
        f.manifest = xmalloc(run->nmanifest * HASH_LEN);
        memcpy(f.manifest, run->manifest, run->nmanifest * HASH_LEN);
        f.nmanifest = run->nmanifest;
        f.quiesce_ns = quiesce_ns;
        k = snapshot_commit(r, s, &f, &run->before);
        if (k == 0) {
                struct store_stats ss;
                store_get_stats(s, &ss);
                res->chunks_new = ss.chunks_new - run->before.chunks_new;
                res->chunks_dup = ss.chunks_dup - run->before.chunks_dup;
                res->finished = f.info.finished;
                res->bytes_added = f.info.bytes_added;
                memcpy(res->id, f.info.id, sizeof res->id);
                res->index_bytes = store_index_bytes(s);
                res->index_chunks = (uint64_t)catalog_chunk_count(r->catalog);
                *ret = *res;
        }
        snapfile_clear(&f);
        return k;
}

int snapshot_backup(struct repo *r, const struct backup_options *o, struct backup_result *ret)
{
        struct backup_run *run;
        int k = snapshot_backup_walk(r, o, &run);
        if (k < 0)
                return k;
        k = snapshot_backup_commit(r, run, o->meta, o->quiesce_ns, ret);
        backup_run_free(run);
        return k;
}

int snapshot_commit(struct repo *r, struct store *s, struct snapfile *f, const struct store_stats *before)
{
        int64_t t0 = mono_ns();
        int k = store_flush(s);
        if (k < 0)
                return k;
        int64_t t1 = mono_ns();
        struct store_stats ss;
        store_get_stats(s, &ss);
        f->info.bytes_added = ss.bytes_added - before->bytes_added;
        f->info.finished = now_ns();
        /* The packs are durable (store_flush); now the snapshot file, then
         * the catalog row that makes it visible. */
        k = snapfile_commit(r, s, f);
        log_debug("commit: flush %.3fs, snapshot file and index %.3fs", (double)(t1 - t0) / 1e9,
                  (double)(mono_ns() - t1) / 1e9);
        return k;
}
