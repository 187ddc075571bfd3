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

struct restorer {
        struct store *store;
        struct store_prefetch *prefetch;
        struct archive *disk;
        struct archive_entry *ae;
        const struct restore_options *o;
        struct restore_result *res;
        int64_t last_progress;
        uint64_t bytes;
        bool root_seen;
        struct timespec root_mtime;
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

static void free_held(struct restorer *r)
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
        entry_store_free(&r->scratch);
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

/* Drains what is still queued, so an abandoned file leaves the read-ahead
 * empty for the next one. */
static void drain(struct store_prefetch *p, size_t n)
{
        const struct buf *b;
        while (n-- > 0)
                store_prefetch_next(p, &b);
        error_clear();
}

static int write_content(struct restorer *r, const struct entry *e)
{
        uint64_t pos = 0;
        size_t queued = 0;
        for (size_t i = 0; i < e->nchunks; i++) {
                const struct buf *data;
                int k = store_prefetch_chunk(r->prefetch, e->path, e->chunks, e->nchunks, i, &queued, &data);
                if (k < 0) {
                        char msg[1024];
                        snprintf(msg, sizeof msg, "%s", error_message() ? error_message() : berth_strerror(k));
                        drain(r->prefetch, queued - i - 1);
                        return error_set(k, "%s", msg);
                }
                size_t done = 0;
                while (done < data->len) {
                        uint64_t run;
                        uint64_t off = entry_stream_offset(e, pos + done, &run);
                        size_t n = (size_t)MIN((uint64_t)(data->len - done), run);
                        la_ssize_t w = n == 0 ? -1 : archive_write_data_block(r->disk, data->data + done, n, (la_int64_t)off);
                        if (w < ARCHIVE_OK) {
                                k = n == 0 ? error_set(BERTH_ECORRUPT, "'%s' has more data than its sparse map", e->path)
                                           : error_set(archive_errno(r->disk) > 0 ? archive_errno(r->disk) : EIO,
                                                       "cannot write '%s': %s", e->path, archive_error_string(r->disk));
                                char msg[1024];
                                snprintf(msg, sizeof msg, "%s", error_message());
                                drain(r->prefetch, queued - i - 1);
                                return error_set(k, "%s", msg);
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

static int restore_entry(struct restorer *r, const struct entry *e)
{
        const char *path = e->path_len ? e->path : ".";
        if (e->type == ENTRY_HARDLINK) {
                struct held_link *l = *held_slot(r, e->link);
                if (l && l->restored_as) {
                        /* Link to the included path that got the contents. */
                        struct entry copy = *e;
                        copy.link = l->restored_as;
                        copy.link_len = strlen(l->restored_as);
                        entry_to_archive(&copy, path, r->ae);
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
                } else
                        entry_to_archive(e, path, r->ae);
        } else
                entry_to_archive(e, path, r->ae);
        int k = archive_write_header(r->disk, r->ae);
        if (k == ARCHIVE_FATAL)
                return error_set(archive_errno(r->disk) > 0 ? archive_errno(r->disk) : EIO, "cannot restore '%s': %s",
                                 path, archive_error_string(r->disk));
        if (k == ARCHIVE_FAILED) {
                rwarn(r, e->path, "not restored: %s", archive_error_string(r->disk));
                return 0;
        }
        if (k == ARCHIVE_WARN)
                rwarn(r, e->path, "restored, but %s", archive_error_string(r->disk));
        if (e->type == ENTRY_REG) {
                error_clear();
                k = write_content(r, e);
                if (k < 0) {
                        if (!r->o->partial || k != -BERTH_ECORRUPT)
                                return k;
                        /* Never leave a file with silently wrong contents. */
                        archive_write_finish_entry(r->disk);
                        unlink(path);
                        rwarn(r, e->path, "not restored: %s", error_message());
                        return 0;
                }
                r->res->bytes += e->size;
        }
        k = archive_write_finish_entry(r->disk);
        if (k < ARCHIVE_WARN)
                rwarn(r, e->path, "not finished: %s", archive_error_string(r->disk));
        else if (k == ARCHIVE_WARN)
                rwarn(r, e->path, "restored, but %s", archive_error_string(r->disk));
        if (e->type == ENTRY_DIR)
                r->res->dirs++;
        else
                r->res->files++;
        if (e->path_len == 0) {
                /* libarchive sets the times of an existing directory at
                 * once, and every child written later bumps them: set the
                 * root's mtime again at the end. */
                r->root_seen = true;
                r->root_mtime = (struct timespec){ e->mtime_sec, e->mtime_nsec };
        }
        return 0;
}

/* 0 when target does not exist or is an empty directory (or, to be
 * replaced, any directory). */
static int check_target(const char *target, bool replace)
{
        struct stat st;
        if (lstat(target, &st) < 0)
                return errno == ENOENT ? 0 : error_set(errno, "cannot use target '%s': %s", target, strerror(errno));
        if (!S_ISDIR(st.st_mode))
                return error_set(EEXIST, "target '%s' exists and is not a directory", target);
        if (replace)
                return 0;
        int empty = dir_empty(target);
        if (empty < 0)
                return error_set(-empty, "cannot open target '%s': %s", target, strerror(-empty));
        if (!empty)
                return error_set(EEXIST,
                                 "target '%s' is not empty; restore into a new or empty directory (nothing was "
                                 "changed)",
                                 target);
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
        char *staging = NULL;
        _cleanup_free_ char *copy = NULL, *parent = NULL;
        int cwd = -1, k;

        k = check_target(o->target, o->replace);
        if (k < 0)
                return k;
        k = snapfile_read(repo, id, &f);
        if (k < 0)
                return k;
        k = store_open(repo, false, &s);
        if (k == 0)
                k = store_prefetch_new(s, 32, &r.prefetch);
        if (k < 0)
                goto out;
        r.store = s;
        k = manifest_reader_new(s, (const uint8_t(*)[HASH_LEN])f.manifest, f.nmanifest, &mr);
        if (k < 0)
                goto out;
        inc = xcalloc(o->ninclude + 1, sizeof *inc);
        for (size_t i = 0; i < o->ninclude; i++)
                inc[i] = snapshot_path_normalize(o->include[i]);

        /* Staging next to the target, so the final rename stays inside one
         * filesystem. */
        copy = xstrdup(o->target);
        parent = xstrdup(dirname(copy));
        k = mkdir_p(parent, 0755);
        if (k < 0) {
                k = error_set(k, "cannot create '%s': %s", parent, berth_strerror(k));
                goto out;
        }
        staging = xasprintf("%s/.berth-restore-XXXXXX", parent);
        if (!mkdtemp(staging)) {
                k = error_set(errno, "cannot create a staging directory in '%s': %s", parent, strerror(errno));
                free(staging);
                staging = NULL;
                goto out;
        }
        cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cwd < 0 || chdir(staging) < 0) {
                k = error_set(errno, "cannot enter '%s': %s", staging, strerror(errno));
                goto out;
        }

        r.disk = archive_write_disk_new();
        r.ae = archive_entry_new();
        if (!r.disk || !r.ae)
                abort();
        /* No user/group lookup: numeric ids are restored as they were, even
         * when this host has no such user. */
        /* Owners are restored by root only, as tar does: anyone else
         * cannot give files away. */
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
        if (k >= 0 && archive_write_close(r.disk) != ARCHIVE_OK)
                rwarn(&r, "", "directory metadata not fully restored: %s", archive_error_string(r.disk));
        if (k >= 0 && r.root_seen) {
                struct timespec ts[2] = { r.root_mtime, r.root_mtime };
                if (utimensat(AT_FDCWD, ".", ts, 0) < 0)
                        rwarn(&r, "", "cannot set the time of the top directory: %s", strerror(errno));
        }
        if (k >= 0 && !matched) {
                k = error_set(BERTH_ENOTFOUND, "snapshot %.12s has no path '%s'", id, inc[0]);
                goto out;
        }
        if (k < 0)
                goto out;
        if (fchdir(cwd) < 0) {
                k = error_set(errno, "cannot return to the working directory: %s", strerror(errno));
                goto out;
        }
        if (o->replace && access(o->target, F_OK) == 0) {
                /* Swap in one step, so the target is never half old, half new;
                 * the old contents end up in the staging path and go. */
                if (renameat2(AT_FDCWD, staging, AT_FDCWD, o->target, RENAME_EXCHANGE) < 0) {
                        k = error_set(errno, "cannot swap the restored tree into '%s': %s", o->target, strerror(errno));
                        goto out;
                }
                k = rm_rf_at(AT_FDCWD, staging);
                if (k < 0)
                        log_debug("cannot remove the old contents in %s: %s", staging, berth_strerror(k));
                free(staging);
                staging = NULL;
        } else if (rename(staging, o->target) < 0) {
                k = error_set(errno, "cannot move the restored tree to '%s': %s", o->target, strerror(errno));
                goto out;
        }
        free(staging);
        staging = NULL;
        *ret = res;
        k = 0;
out:
        if (cwd >= 0) {
                if (fchdir(cwd) < 0)
                        k = k < 0 ? k : -errno;
                close(cwd);
        }
        if (staging) {
                rm_rf_at(AT_FDCWD, staging);
                free(staging);
        }
        if (r.disk)
                archive_write_free(r.disk);
        if (r.ae)
                archive_entry_free(r.ae);
        store_prefetch_free(r.prefetch);
        free_held(&r);
        for (size_t i = 0; inc && i < o->ninclude; i++)
                free(inc[i]);
        free(inc);
        snapfile_clear(&f);
        return k;
}
