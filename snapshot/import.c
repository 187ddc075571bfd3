/* import.c — a tar from any tool into a snapshot.
 *
 * A tar's entries come in whatever order its writer chose and may lack
 * their parent directories, so each entry's data is chunked and stored as
 * it streams past, its record kept in memory, and the manifest written at
 * the end in manifest order, with missing directories added.  Every entry
 * is treated as hostile: see snapshot_import() in snapshot.h.
 */
#include <archive.h>
#include <archive_entry.h>
#include <string.h>

#include "internal.h"

struct rec {
        size_t path_off, path_len;   /* in imp->paths */
        size_t rec_off, rec_len;     /* in imp->recs */
        size_t seq;                  /* position in the archive */
};

struct importer {
        struct repo *repo;
        struct store *store;
        const struct import_options *o;
        struct backup_result *res;
        struct buf recs, paths;
        struct rec *index;
        size_t n, cap;
        struct idset regular;        /* hashes of regular-file paths seen */
        struct chunk_ref *chunks;
        size_t nchunks, chunks_cap;
        struct sparse_region *sparse;
        size_t nsparse, sparse_cap;
        struct xattr *xattrs;
        size_t xattrs_cap;
        struct buf data;
        int64_t last_progress;
};

static void path_hash(const char *p, size_t n, uint8_t out[HASH_LEN]) { hash_sha256(p, n, out); }

static int hostile(const char *name, const char *why)
{
        return error_set(BERTH_EHOSTILE, "refusing archive entry '%s': %s; nothing was imported", name, why);
}

/* Cleans a member name into a relative path: "./" and empty components
 * dropped, trailing '/' removed.  Absolute names and ".." are refused. */
static int clean_path(const char *name, struct buf *out)
{
        buf_reset(out);
        if (name[0] == '/')
                return hostile(name, "absolute path");
        const char *p = name;
        while (*p) {
                const char *slash = strchr(p, '/');
                size_t len = slash ? (size_t)(slash - p) : strlen(p);
                if (len == 2 && p[0] == '.' && p[1] == '.')
                        return hostile(name, "'..' in the path");
                if (len > 0 && !(len == 1 && p[0] == '.')) {
                        if (out->len)
                                buf_putc(out, '/');
                        buf_append(out, p, len);
                }
                p += len + (slash ? 1 : 0);
        }
        buf_putc(out, 0);
        out->len--;
        return 0;
}

static int take_chunk(void *ud, const uint8_t id[HASH_LEN], size_t len)
{
        struct importer *imp = ud;
        chunk_refs_add(&imp->chunks, &imp->nchunks, &imp->chunks_cap, id, len);
        return 0;
}

static void add_region(struct importer *imp, uint64_t off, uint64_t len)
{
        if (imp->nsparse && imp->sparse[imp->nsparse - 1].offset + imp->sparse[imp->nsparse - 1].length == off) {
                imp->sparse[imp->nsparse - 1].length += len;
                return;
        }
        if (imp->nsparse == imp->sparse_cap) {
                imp->sparse_cap = imp->sparse_cap ? imp->sparse_cap * 2 : 16;
                imp->sparse = xrealloc(imp->sparse, imp->sparse_cap * sizeof *imp->sparse);
        }
        imp->sparse[imp->nsparse++] = (struct sparse_region){ off, len };
}

/* Reads a regular file's data blocks, chunking them as one stream; the
 * block offsets give the sparse map. */
static int read_data(struct importer *imp, struct archive *a, struct entry *e, const char *name)
{
        const void *p;
        size_t size;
        la_int64_t offset;
        uint64_t total = 0;
        int k;

        imp->nchunks = imp->nsparse = 0;
        buf_reset(&imp->data);
        while ((k = archive_read_data_block(a, &p, &size, &offset)) == ARCHIVE_OK) {
                if (size == 0)
                        continue;
                if (offset < 0 || (imp->nsparse && (uint64_t)offset < imp->sparse[imp->nsparse - 1].offset +
                                                                         imp->sparse[imp->nsparse - 1].length))
                        return hostile(name, "overlapping data blocks");
                add_region(imp, (uint64_t)offset, size);
                buf_append(&imp->data, p, size);
                total += size;
                if (imp->data.len >= (4u << 20)) {
                        k = store_put_stream(imp->store, &imp->repo->chunker, &imp->data, false, take_chunk, imp);
                        if (k < 0)
                                return k;
                }
        }
        if (k != ARCHIVE_EOF)
                return error_set(archive_errno(a) > 0 ? archive_errno(a) : EIO, "cannot read '%s' from the archive: %s",
                                 name, archive_error_string(a));
        k = store_put_stream(imp->store, &imp->repo->chunker, &imp->data, true, take_chunk, imp);
        if (k < 0)
                return k;

        uint64_t end = imp->nsparse ? imp->sparse[imp->nsparse - 1].offset + imp->sparse[imp->nsparse - 1].length : 0;
        if (end > e->size)
                e->size = end;
        if (imp->nsparse == 1 && imp->sparse[0].offset == 0 && imp->sparse[0].length == e->size)
                imp->nsparse = 0; /* one run from 0 to the end: not sparse */
        else if (imp->nsparse == 0 && e->size > 0)
                add_region(imp, e->size, 0); /* all hole */
        e->chunks = imp->chunks;
        e->nchunks = imp->nchunks;
        e->sparse = imp->sparse;
        e->nsparse = imp->nsparse;
        imp->res->bytes_read += total;
        return 0;
}

static int add_record(struct importer *imp, const struct entry *e)
{
        if (imp->n == imp->cap) {
                imp->cap = imp->cap ? imp->cap * 2 : 1024;
                imp->index = xrealloc(imp->index, imp->cap * sizeof *imp->index);
        }
        struct rec *r = &imp->index[imp->n];
        r->seq = imp->n;
        r->path_off = imp->paths.len;
        r->path_len = e->path_len;
        buf_append(&imp->paths, e->path, e->path_len);
        r->rec_off = imp->recs.len;
        entry_encode(e, &imp->recs);
        r->rec_len = imp->recs.len - r->rec_off;
        imp->n++;
        return 0;
}

static int read_entry(struct importer *imp, struct archive *a, struct archive_entry *ae, struct buf *path,
                      struct buf *link)
{
        const char *name = archive_entry_pathname(ae);
        if (!name)
                return hostile("(unnamed)", "the entry has no name");
        int k = clean_path(name, path);
        if (k < 0)
                return k;

        struct entry e = {
                .path = (const char *)path->data,
                .path_len = path->len,
                .mode = archive_entry_perm(ae) & 07777,
                .uid = (uint32_t)archive_entry_uid(ae),
                .gid = (uint32_t)archive_entry_gid(ae),
                .uname = archive_entry_uname(ae) ? archive_entry_uname(ae) : "",
                .gname = archive_entry_gname(ae) ? archive_entry_gname(ae) : "",
                .mtime_sec = archive_entry_mtime(ae),
                .mtime_nsec = (uint32_t)archive_entry_mtime_nsec(ae),
                .acl = "",
        };
        if (!path->data)
                e.path = "";
        const char *hard = archive_entry_hardlink(ae);
        switch (archive_entry_filetype(ae)) {
        case AE_IFREG:
                e.type = hard ? ENTRY_HARDLINK : ENTRY_REG;
                break;
        case AE_IFDIR:
                e.type = ENTRY_DIR;
                break;
        case AE_IFLNK:
                e.type = ENTRY_SYMLINK;
                break;
        case AE_IFCHR:
                e.type = ENTRY_CHR;
                break;
        case AE_IFBLK:
                e.type = ENTRY_BLK;
                break;
        case AE_IFIFO:
                e.type = ENTRY_FIFO;
                break;
        default:
                if (hard) {
                        e.type = ENTRY_HARDLINK;
                        break;
                }
                if (imp->o->events.warning)
                        imp->o->events.warning(imp->o->events.ud, name, "skipped: a socket or unknown file type");
                imp->res->warnings++;
                return 0;
        }
        if (e.path_len == 0 && e.type != ENTRY_DIR)
                return hostile(name, "the archive's root is not a directory");

        if (e.type == ENTRY_HARDLINK) {
                k = clean_path(hard, link);
                if (k < 0)
                        return hostile(name, "hard link to an absolute path or through '..'");
                uint8_t h[HASH_LEN];
                path_hash(link->data ? (const char *)link->data : "", link->len, h);
                if (!idset_contains(&imp->regular, h))
                        return hostile(name, "hard link to something that is not an earlier file of the archive");
                e.link = link->data ? (const char *)link->data : "";
                e.link_len = link->len;
        } else if (e.type == ENTRY_SYMLINK) {
                const char *t = archive_entry_symlink(ae);
                if (!t)
                        return hostile(name, "symlink without a target");
                /* A symlink's target is data, stored as it is, absolute or
                 * climbing: restore never writes through a symlink, and
                 * entries below one are refused in write_manifest(). */
                e.link = t;
                e.link_len = strlen(t);
        } else if (e.type == ENTRY_CHR || e.type == ENTRY_BLK)
                e.rdev = archive_entry_rdev(ae);

        unsigned long set = 0, clear = 0;
        archive_entry_fflags(ae, &set, &clear);
        e.fflags_set = set;
        e.fflags_clear = clear;
        size_t nx = (size_t)archive_entry_xattr_reset(ae);
        if (nx > imp->xattrs_cap) {
                imp->xattrs_cap = nx;
                imp->xattrs = xrealloc(imp->xattrs, nx * sizeof *imp->xattrs);
        }
        const char *xn;
        const void *xv;
        size_t xl;
        while (e.nxattrs < nx && archive_entry_xattr_next(ae, &xn, &xv, &xl) == ARCHIVE_OK)
                imp->xattrs[e.nxattrs++] = (struct xattr){ xn, xv, xl };
        e.xattrs = imp->xattrs;
        _cleanup_free_ char *acl = NULL;
        if (archive_entry_acl_count(ae, ARCHIVE_ENTRY_ACL_TYPE_POSIX1E) > 0) {
                acl = archive_entry_acl_to_text(ae, NULL, ARCHIVE_ENTRY_ACL_TYPE_POSIX1E |
                                                                  ARCHIVE_ENTRY_ACL_STYLE_EXTRA_ID);
                e.acl = acl ? acl : "";
        }

        if (e.type == ENTRY_REG) {
                e.size = archive_entry_size_is_set(ae) ? (uint64_t)archive_entry_size(ae) : 0;
                k = read_data(imp, a, &e, name);
                if (k < 0)
                        return k;
                uint8_t h[HASH_LEN];
                path_hash(e.path, e.path_len, h);
                idset_add(&imp->regular, h);
                imp->res->files_read++;
                imp->res->bytes += e.size;
        }
        if (e.type == ENTRY_DIR)
                imp->res->dirs++;
        else
                imp->res->files++;
        return add_record(imp, &e);
}

static const struct importer *sort_imp;

static int rec_cmp(const void *x, const void *y)
{
        const struct rec *a = x, *b = y;
        const char *base = (const char *)sort_imp->paths.data;
        int c = path_cmp(base + a->path_off, a->path_len, base + b->path_off, b->path_len);
        if (c)
                return c;
        return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Index of the record that wins for path (the last of equal ones), or -1. */
static ssize_t find_rec(const struct importer *imp, const char *path, size_t len)
{
        const char *base = (const char *)imp->paths.data;
        size_t lo = 0, hi = imp->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const struct rec *r = &imp->index[mid];
                if (path_cmp(base + r->path_off, r->path_len, path, len) <= 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo == 0)
                return -1;
        const struct rec *r = &imp->index[lo - 1];
        return path_cmp(base + r->path_off, r->path_len, path, len) == 0 ? (ssize_t)(lo - 1) : -1;
}

/* True when a later record of the archive has the same path as record i
 * (sorted), so record i is not written. */
static bool superseded(const struct importer *imp, size_t i)
{
        const char *base = (const char *)imp->paths.data;
        const struct rec *r = &imp->index[i];
        return i + 1 < imp->n && imp->index[i + 1].path_len == r->path_len &&
               memcmp(base + imp->index[i + 1].path_off, base + r->path_off, r->path_len) == 0;
}

/* A tar names a hard-link group's contents at whichever path its writer met
 * first; the manifest needs them at the group's first path in manifest
 * order.  For every record, *group is the record holding the contents
 * (itself for a plain file) and first[group] the group's first member. */
static int link_groups(struct importer *imp, struct entry_store *es, ssize_t *group, size_t *first)
{
        for (size_t i = 0; i < imp->n; i++) {
                group[i] = -1;
                first[i] = i;
        }
        for (size_t i = 0; i < imp->n; i++) {
                const struct rec *r = &imp->index[i];
                int k = entry_decode(imp->recs.data + r->rec_off, r->rec_len, es);
                if (k < 0)
                        return k;
                if (es->e.type != ENTRY_HARDLINK || superseded(imp, i))
                        continue;
                ssize_t t = find_rec(imp, es->e.link, es->e.link_len);
                if (t < 0)
                        return hostile(es->e.path, "hard link to a path that is not in the archive");
                /* The path was a regular file when the link was read, but a
                 * later entry of the same path wins: it must be one too. */
                struct entry_store target = { 0 };
                const struct rec *tr = &imp->index[t];
                k = entry_decode(imp->recs.data + tr->rec_off, tr->rec_len, &target);
                bool regular = k >= 0 && target.e.type == ENTRY_REG;
                entry_store_free(&target);
                if (k < 0)
                        return k;
                if (!regular) {
                        _cleanup_free_ char *name = xstrndup(es->e.path, es->e.path_len);
                        return hostile(name, "hard link to a path whose last entry is not a regular file");
                }
                group[i] = t;
                group[t] = t;
                if (i < first[t])
                        first[t] = i;
        }
        return 0;
}

static int emit_dir(struct manifest_writer *mw, const char *path, size_t len)
{
        struct entry d = { .type = ENTRY_DIR, .path = path, .path_len = len, .mode = 0755, .uname = "", .gname = "",
                           .acl = "", .mtime_sec = now_ns() / 1000000000 };
        return manifest_writer_add(mw, &d);
}

/* Writes the records in manifest order: later duplicates win (as when tar
 * extracts), missing parent directories are added. */
static int write_manifest(struct importer *imp, struct manifest_writer *mw)
{
        struct entry_store es = { 0 }, content = { 0 };
        struct buf dirs = { 0 };       /* open directories: "" (the root), then each after a NUL */
        size_t *ends = xcalloc(imp->n + 2, sizeof *ends);
        ssize_t *group = xcalloc(imp->n + 1, sizeof *group);
        size_t *first = xcalloc(imp->n + 1, sizeof *first);
        size_t ndirs = 0;
        int k = 0;
        const char *base = (const char *)imp->paths.data;

        sort_imp = imp;
        if (imp->n > 1)
                qsort(imp->index, imp->n, sizeof *imp->index, rec_cmp);
        sort_imp = NULL;
        k = link_groups(imp, &es, group, first);

        if (k >= 0 && (imp->n == 0 || imp->index[0].path_len != 0)) {
                k = emit_dir(mw, "", 0);
                imp->res->dirs++;
        }
        ends[ndirs++] = 0;
        for (size_t i = 0; i < imp->n && k >= 0; i++) {
                const struct rec *r = &imp->index[i];
                const char *p = base + r->path_off;
                if (superseded(imp, i)) {
                        if (imp->o->events.warning) {
                                _cleanup_free_ char *name = xstrndup(p, r->path_len);
                                imp->o->events.warning(imp->o->events.ud, r->path_len ? name : ".",
                                                       "appears more than once; the last one is used");
                        }
                        continue;
                }
                if (r->path_len == 0 && i > 0)
                        continue;
                k = entry_decode(imp->recs.data + r->rec_off, r->rec_len, &es);
                if (k < 0)
                        break;
                struct entry *e = &es.e;
                if (r->path_len > 0) {
                        /* Pop to the deepest open directory that contains p,
                         * then open any missing levels below it. */
                        for (;;) {
                                size_t start = ndirs > 1 ? ends[ndirs - 2] + 1 : 0;
                                size_t dl = ends[ndirs - 1] - start;
                                if (ndirs == 1 || (dl < r->path_len && p[dl] == '/' &&
                                                   memcmp(dirs.data + start, p, dl) == 0))
                                        break;
                                ndirs--;
                                dirs.len = ndirs > 1 ? ends[ndirs - 1] : 0;
                        }
                        for (;;) {
                                size_t start = ndirs > 1 ? ends[ndirs - 2] + 1 : 0;
                                size_t have = ndirs > 1 ? ends[ndirs - 1] - start : 0;
                                const char *next = memchr(p + have + (have ? 1 : 0), '/',
                                                          r->path_len - have - (have ? 1 : 0));
                                if (!next)
                                        break;
                                size_t len = (size_t)(next - p);
                                if (i > 0) {
                                        const struct rec *prev = &imp->index[i - 1];
                                        if (prev->path_len == len && memcmp(base + prev->path_off, p, len) == 0) {
                                                _cleanup_free_ char *name = xstrndup(p, r->path_len);
                                                k = hostile(name, "it is inside a path that is not a directory");
                                                break;
                                        }
                                }
                                k = emit_dir(mw, p, len);
                                if (k < 0)
                                        break;
                                imp->res->dirs++;
                                buf_putc(&dirs, 0);
                                buf_append(&dirs, p, len);
                                ends[ndirs++] = dirs.len;
                        }
                        if (k < 0)
                                break;
                }
                struct entry linked;
                if (group[i] >= 0) {
                        size_t g = (size_t)group[i], lead = first[g];
                        if (i == lead) {
                                /* The group's first path gets the contents. */
                                const struct rec *cr = &imp->index[g];
                                k = entry_decode(imp->recs.data + cr->rec_off, cr->rec_len, &content);
                                if (k < 0)
                                        break;
                                linked = content.e;
                                linked.path = e->path;
                                linked.path_len = e->path_len;
                                linked.flags |= ENTRY_F_LINKED;
                        } else {
                                linked = *e;
                                linked.type = ENTRY_HARDLINK;
                                linked.link = base + imp->index[lead].path_off;
                                linked.link_len = imp->index[lead].path_len;
                                linked.nchunks = linked.nsparse = 0;
                                linked.size = 0;
                        }
                        e = &linked;
                }
                k = manifest_writer_add(mw, e);
                if (k < 0)
                        break;
                if (e->type == ENTRY_DIR && r->path_len > 0) {
                        buf_putc(&dirs, 0);
                        buf_append(&dirs, p, r->path_len);
                        ends[ndirs++] = dirs.len;
                }
        }
        entry_store_free(&es);
        entry_store_free(&content);
        buf_free(&dirs);
        free(ends);
        free(group);
        free(first);
        return k < 0 ? k : 0;
}

int snapshot_import(struct repo *r, const struct import_options *o, struct backup_result *ret)
{
        struct backup_result res = { .started = now_ns() };
        struct importer imp = { .repo = r, .o = o, .res = &res };
        struct store *s = NULL;
        struct store_stats before;
        struct manifest_writer *mw = NULL;
        struct snapfile f = { 0 };
        struct buf path = { 0 }, link = { 0 };
        struct archive *a = NULL;
        struct archive_entry *ae = NULL;
        int k;

        k = repo_store(r, &s);
        if (k < 0)
                return k;
        store_get_stats(s, &before);
        imp.store = s;
        a = archive_read_new();
        ae = archive_entry_new();
        if (!a || !ae)
                abort();
        archive_read_support_filter_all(a);
        archive_read_support_format_tar(a);
        archive_read_support_format_gnutar(a);
        if (archive_read_open_fd(a, o->fd, 1 << 16) != ARCHIVE_OK) {
                k = error_set(EINVAL, "cannot read the archive: %s", archive_error_string(a));
                goto out;
        }
        for (;;) {
                if (o->events.cancel && *o->events.cancel) {
                        k = error_set(ECANCELED, "interrupted; nothing was imported");
                        goto out;
                }
                k = archive_read_next_header2(a, ae);
                if (k == ARCHIVE_EOF)
                        break;
                if (k < ARCHIVE_WARN) {
                        k = error_set(EINVAL, "cannot read the archive: %s%s", archive_error_string(a),
                                      imp.n == 0 ? " (is it a tar, tar.gz, tar.xz or tar.zst?)" : "");
                        goto out;
                }
                k = read_entry(&imp, a, ae, &path, &link);
                if (k < 0)
                        goto out;
                if (o->events.progress && mono_ns() - imp.last_progress > 250 * 1000 * 1000) {
                        imp.last_progress = mono_ns();
                        struct snapshot_progress p = { .files = res.files + res.dirs, .bytes = res.bytes,
                                                       .bytes_read = res.bytes_read,
                                                       .path = archive_entry_pathname(ae) };
                        o->events.progress(o->events.ud, &p);
                }
        }

        k = manifest_writer_new(s, &r->tree_chunker, &mw);
        if (k == 0)
                k = write_manifest(&imp, mw);
        if (k < 0)
                goto out;
        f.info = (struct catalog_snapshot){
                .name = xstrdup(o->name),
                .host = o->host ? xstrdup(o->host) : host_name(),
                .source = xstrdup(o->source ? o->source : "-"),
                .started = res.started,
                .status = xstrdup("complete"),
                .files = res.files,
                .dirs = res.dirs,
                .bytes = res.bytes,
                .files_read = res.files_read,
                .bytes_read = res.bytes_read,
                .warnings = res.warnings,
                .meta = xstrdup("{\"imported\":true}"),
        };
        k = manifest_writer_finish(mw, &f.manifest, &f.nmanifest);
        if (k == 0)
                k = snapshot_commit(r, s, &f, &before);
        if (k < 0)
                goto out;
        struct store_stats ss;
        store_get_stats(s, &ss);
        res.chunks_new = ss.chunks_new - before.chunks_new;
        res.chunks_dup = ss.chunks_dup - before.chunks_dup;
        res.bytes_added = f.info.bytes_added;
        res.finished = f.info.finished;
        res.complete = true;
        res.index_bytes = store_index_bytes(s);
        res.index_chunks = (uint64_t)catalog_chunk_count(r->catalog);
        memcpy(res.id, f.info.id, sizeof res.id);
        *ret = res;
out:
        manifest_writer_free(mw);
        snapfile_clear(&f);
        if (a)
                archive_read_free(a);
        if (ae)
                archive_entry_free(ae);
        buf_free(&path);
        buf_free(&link);
        buf_free(&imp.recs);
        buf_free(&imp.paths);
        buf_free(&imp.data);
        free(imp.index);
        free(imp.chunks);
        free(imp.sparse);
        free(imp.xattrs);
        idset_free(&imp.regular);
        return k;
}
