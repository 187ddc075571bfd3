/* restore.c — writing a snapshot back to disk.
 *
 * Every snapshot is treated as hostile: the manifest reader refuses
 * malformed, duplicate or out-of-order paths, entries whose parent is not a
 * directory of the snapshot, and hard links to anything but an earlier file
 * of it.  Entries go through libarchive's disk writer with its secure flags
 * into an empty staging directory next to the target (same filesystem),
 * which is renamed into place only when everything was written.
 *
 * This file turns entries into libarchive entries and writes them, with
 * their contents read ahead (readahead.c); checking the target, the
 * staging directory and putting the tree in place are stage.c's.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "restorer.h"

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

void restorer_warn(struct restorer *r, const char *path, const char *fmt, ...)
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
const char *restorer_disk_error(struct archive *a, char *buf, size_t size)
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

/* The disk itself failed (full, quota, I/O error, read-only): not a
 * per-entry problem to warn about and skip, the whole restore fails (and
 * the staging tree is removed), or the target would appear with files
 * missing. */
static bool disk_full_or_broken(struct archive *a)
{
        int e = archive_errno(a);
        return e == ENOSPC || e == EIO || e == EDQUOT || e == EROFS;
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
                                                       restorer_disk_error(r->disk, why, sizeof why));
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

/* Files at least this large start on their way to the disk as soon as
 * they are written, so the flush before the tree is put in place (see
 * stage.c) finds little left to do and the writing overlaps the reading. */
#define WRITEBACK_MIN (1u << 20)

static void start_writeback(const char *path)
{
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return;
        (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
        close(fd);
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
        if ((e->fflags_set || e->fflags_clear) && stage_moved_at_end(r, e)) {
                stage_defer_flags(r, e);
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
                                 restorer_disk_error(r->disk, why, sizeof why));
        if (k == ARCHIVE_FAILED && disk_full_or_broken(r->disk))
                return error_set(disk_errno(r->disk), "cannot restore '%s': %s", path,
                                 restorer_disk_error(r->disk, why, sizeof why));
        if (k == ARCHIVE_FAILED) {
                restorer_warn(r, e->path, "not restored: %s", restorer_disk_error(r->disk, why, sizeof why));
                return 0;
        }
        if (k == ARCHIVE_WARN)
                restorer_warn(r, e->path, "restored, but %s", restorer_disk_error(r->disk, why, sizeof why));
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
                        restorer_warn(r, e->path, "not restored: %s", msg);
                        return 0;
                }
                r->res->bytes += e->size;
        }
        k = archive_write_finish_entry(r->disk);
        if (k == ARCHIVE_FATAL)
                return error_set(disk_errno(r->disk), "cannot finish '%s': %s", path,
                                 restorer_disk_error(r->disk, why, sizeof why));
        if (k < ARCHIVE_WARN)
                restorer_warn(r, e->path, "not finished: %s", restorer_disk_error(r->disk, why, sizeof why));
        else if (k == ARCHIVE_WARN)
                restorer_warn(r, e->path, "restored, but %s", restorer_disk_error(r->disk, why, sizeof why));
        if (e->type == ENTRY_REG && e->size >= WRITEBACK_MIN)
                start_writeback(path);
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

int snapshot_restore(struct repo *repo, const char *id, const struct restore_options *o, struct restore_result *ret)
{
        struct restore_result res = { 0 };
        struct snapfile f = { 0 };
        _cleanup_(store_freep) struct store *s = NULL;
        _cleanup_(manifest_reader_freep) struct manifest_reader *mr = NULL;
        struct restorer r = { .o = o, .res = &res };
        struct stage st = STAGE_INIT;
        char **inc = NULL;
        int k;

        k = stage_check_target(o->target, o->replace, o->swap_empty, &r.kind);
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

        k = stage_open(&st, o->target, r.kind);
        if (k < 0)
                goto out;

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
                        restorer_warn(&r, "", "directory metadata not fully restored: %s",
                                      restorer_disk_error(r.disk, why, sizeof why));
                if (r.root_seen && entry_decode(r.root.data, r.root.len, &r.scratch) == 0) {
                        struct timespec ts[2] = { { r.scratch.e.mtime_sec, r.scratch.e.mtime_nsec },
                                                  { r.scratch.e.mtime_sec, r.scratch.e.mtime_nsec } };
                        if (utimensat(st.staging_fd, ".", ts, 0) < 0)
                                restorer_warn(&r, "", "cannot set the time of the top directory: %s", strerror(errno));
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
        k = stage_put_in_place(&r, &st, o->target);
        if (k < 0)
                goto out;
        st.placed = true;
        *ret = res;
        k = 0;
out:
        if (r.disk) {
                /* Failed part-way: free the writer where its fix-ups can
                 * only touch the staging tree, which goes next. */
                if (st.staging_fd >= 0 && fchdir(st.staging_fd) == 0)
                        archive_write_free(r.disk);
                else
                        log_debug("leaving a disk writer unfreed: cannot enter the staging directory");
        }
        k = stage_close(&st, r.kind, k);
        restorer_clear(&r);
        for (size_t i = 0; inc && i < o->ninclude; i++)
                free(inc[i]);
        free(inc);
        snapfile_clear(&f);
        return k;
}
