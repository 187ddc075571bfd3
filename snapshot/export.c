/* export.c — a snapshot's bytes without restoring it: one file (`cat`) or
 * the whole tree as a standard pax tar (`export`), both streamed, so a
 * snapshot larger than memory or free disk goes to a pipe. */
#include <archive.h>
#include <archive_entry.h>
#include <string.h>

#include "internal.h"

static const uint8_t zeros[65536];

/* Reads snapshot `id`'s file and opens what reading its data takes. */
static int open_snapshot(struct repo *r, const char *id, struct snapfile *f, struct store **ret_s,
                         struct readahead **ret_pf)
{
        int k = snapfile_read(r, id, f);
        if (k == 0)
                k = store_open(r, false, ret_s);
        if (k == 0)
                k = readahead_new(r, 32, ret_pf);
        return k;
}

/* Calls sink for a file's whole logical contents, holes as zeros.  With
 * skip_holes the holes are passed as NULL data (the caller seeks). */
static int stream_file(struct readahead *pf, const struct entry *e,
                       int (*sink)(void *ud, const void *p, size_t n), void *ud)
{
        uint64_t pos = 0, stream = 0;
        size_t queued = 0;
        int k;

        for (size_t i = 0; i < e->nchunks; i++) {
                const struct buf *data;
                k = readahead_chunk(pf, e->path, e->chunks, e->nchunks, i, &queued, &data);
                if (k < 0)
                        return k; /* the whole command fails: no need to drain */
                size_t done = 0;
                while (done < data->len) {
                        uint64_t run;
                        uint64_t off = entry_stream_offset(e, stream + done, &run);
                        if (run == 0 || off < pos)
                                return error_set(BERTH_ECORRUPT, "'%s' has more data than its sparse map", e->path);
                        for (; pos < off; pos += MIN(off - pos, sizeof zeros))
                                if ((k = sink(ud, zeros, (size_t)MIN(off - pos, sizeof zeros))) < 0)
                                        return k;
                        size_t n = (size_t)MIN((uint64_t)(data->len - done), run);
                        if ((k = sink(ud, data->data + done, n)) < 0)
                                return k;
                        done += n;
                        pos += n;
                }
                stream += data->len;
        }
        for (; pos < e->size; pos += MIN(e->size - pos, sizeof zeros))
                if ((k = sink(ud, zeros, (size_t)MIN(e->size - pos, sizeof zeros))) < 0)
                        return k;
        return 0;
}

static int fd_sink(void *ud, const void *p, size_t n)
{
        int k = write_all(*(int *)ud, p, n);
        if (k < 0)
                return error_set(k, "cannot write the output: %s", berth_strerror(k));
        return 0;
}

/* Finds path in the manifest; 1 and a copy of its record in *rec, or 0. */
static int find_entry(struct store *s, const struct snapfile *f, const char *path, struct buf *rec)
{
        _cleanup_(manifest_reader_freep) struct manifest_reader *mr = NULL;
        const struct entry *e;
        size_t len = strlen(path);
        int k = manifest_reader_new(s, (const uint8_t(*)[HASH_LEN])f->manifest, f->nmanifest, &mr);
        while (k >= 0 && (k = manifest_reader_next(mr, &e)) > 0) {
                int c = path_cmp(e->path, e->path_len, path, len);
                if (c == 0) {
                        buf_reset(rec);
                        entry_encode(e, rec);
                        return 1;
                }
                if (c > 0)
                        return 0; /* sorted: it is not there */
        }
        return k;
}

int snapshot_cat(struct repo *r, const char *id, const char *path, int fd)
{
        _cleanup_(store_freep) struct store *s = NULL;
        _cleanup_free_ char *want = snapshot_path_normalize(path);
        _cleanup_(readahead_freep) struct readahead *pf = NULL;
        struct snapfile f = { 0 };
        struct entry_store es = { 0 };
        struct buf rec = { 0 };
        int k;

        k = open_snapshot(r, id, &f, &s, &pf);
        if (k == 0)
                k = find_entry(s, &f, want, &rec);
        if (k == 0)
                k = error_set(BERTH_ENOTFOUND, "snapshot %.12s has no path '%s'", id, want);
        if (k > 0)
                k = entry_decode(rec.data, rec.len, &es);
        if (k == 0 && es.e.type == ENTRY_HARDLINK) {
                /* A hard link's contents live with its first path. */
                _cleanup_free_ char *target = xstrdup(es.e.link);
                k = find_entry(s, &f, target, &rec);
                if (k == 0)
                        k = error_set(BERTH_ECORRUPT, "hard link target '%s' is missing", target);
                if (k > 0)
                        k = entry_decode(rec.data, rec.len, &es);
        }
        if (k == 0) {
                switch (es.e.type) {
                case ENTRY_REG:
                        k = stream_file(pf, &es.e, fd_sink, &fd);
                        break;
                case ENTRY_DIR:
                        k = error_set(EISDIR, "'%s' is a directory; list it with 'berth ls' or use 'berth restore --include'",
                                      want);
                        break;
                case ENTRY_SYMLINK:
                        k = error_set(EINVAL, "'%s' is a symlink to '%s'", want, es.e.link);
                        break;
                default:
                        k = error_set(EINVAL, "'%s' is a device or fifo: it has no contents", want);
                }
        }
        entry_store_free(&es);
        buf_free(&rec);
        snapfile_clear(&f);
        return k;
}

struct tar_sink {
        struct archive *a;
        const char *path;
};

static int archive_sink(void *ud, const void *p, size_t n)
{
        struct tar_sink *t = ud;
        la_ssize_t w = archive_write_data(t->a, p, n);
        if (w < 0 || (size_t)w != n)
                return error_set(archive_errno(t->a) > 0 ? archive_errno(t->a) : EIO, "cannot write '%s' to the tar: %s",
                                 t->path, archive_error_string(t->a));
        return 0;
}

int snapshot_export(struct repo *r, const char *id, const struct export_options *o, struct export_result *ret)
{
        struct export_result res = { 0 };
        _cleanup_(store_freep) struct store *s = NULL;
        _cleanup_(manifest_reader_freep) struct manifest_reader *mr = NULL;
        _cleanup_(readahead_freep) struct readahead *pf = NULL;
        struct snapfile f = { 0 };
        struct archive *a = NULL;
        struct archive_entry *ae = NULL;
        char **inc = NULL;
        int k;

        k = open_snapshot(r, id, &f, &s, &pf);
        if (k == 0)
                k = manifest_reader_new(s, (const uint8_t(*)[HASH_LEN])f.manifest, f.nmanifest, &mr);
        if (k < 0)
                goto out;
        inc = xcalloc(o->ninclude + 1, sizeof *inc);
        for (size_t i = 0; i < o->ninclude; i++)
                inc[i] = snapshot_path_normalize(o->include[i]);

        a = archive_write_new();
        ae = archive_entry_new();
        if (!a || !ae)
                abort();
        /* Full pax, so every entry keeps its nanosecond mtime; xattrs only
         * as SCHILY.xattr records, which GNU tar and bsdtar both read. */
        archive_write_set_format_pax(a);
        archive_write_set_format_option(a, "pax", "xattrheader", "SCHILY");
        if (o->zstd && archive_write_add_filter_zstd(a) != ARCHIVE_OK) {
                k = error_set(ENOTSUP, "zstd output is not available: %s", archive_error_string(a));
                goto out;
        }
        archive_write_set_bytes_in_last_block(a, 1);
        if (archive_write_open_fd(a, o->fd) != ARCHIVE_OK) {
                k = error_set(EIO, "cannot write the tar: %s", archive_error_string(a));
                goto out;
        }

        const struct entry *e;
        while ((k = manifest_reader_next(mr, &e)) > 0) {
                if (o->events.cancel && *o->events.cancel) {
                        k = error_set(ECANCELED, "interrupted; the tar is incomplete");
                        break;
                }
                if (include_match(e, inc, o->ninclude) == 0)
                        continue;
                const char *name = e->path_len ? e->path : ".";
                entry_to_archive(e, name, ae);
                if (archive_write_header(a, ae) < ARCHIVE_WARN) {
                        k = error_set(EIO, "cannot write '%s' to the tar: %s", name, archive_error_string(a));
                        break;
                }
                if (e->type == ENTRY_REG) {
                        struct tar_sink t = { a, name };
                        k = stream_file(pf, e, archive_sink, &t);
                        if (k < 0)
                                break;
                        res.bytes += e->size;
                }
                if (e->type == ENTRY_DIR)
                        res.dirs++;
                else
                        res.files++;
                if (o->events.progress) {
                        struct snapshot_progress p = { .files = res.files + res.dirs, .bytes = res.bytes,
                                                       .path = name };
                        o->events.progress(o->events.ud, &p);
                }
        }
        if (k >= 0 && archive_write_close(a) != ARCHIVE_OK)
                k = error_set(EIO, "cannot finish the tar: %s", archive_error_string(a));
        if (k >= 0) {
                *ret = res;
                k = 0;
        }
out:
        if (a)
                archive_write_free(a);
        if (ae)
                archive_entry_free(ae);
        for (size_t i = 0; inc && i < o->ninclude; i++)
                free(inc[i]);
        free(inc);
        snapfile_clear(&f);
        return k;
}
