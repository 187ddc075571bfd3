/* manifest.c — entry records and the manifest stream.
 *
 * Stream: the 4-byte magic "BMF1", then records, each a varint length and
 * a body.  Body fields in order (varint unless noted; "bytes" is a varint
 * length and raw bytes):
 *
 *   u8 type, bytes path, mode, uid, gid, bytes uname, bytes gname,
 *   svarint mtime_sec, mtime_nsec, svarint ctime_sec, ctime_nsec, ino,
 *   size, rdev, bytes link, flags, fflags_set, fflags_clear,
 *   nxattrs × (bytes name, bytes value), bytes acl,
 *   nsparse × (offset, length), nchunks × (32-byte id, le32 length)
 *
 * Readers ignore bytes after the last field they know, so fields can be
 * appended without a new stream version.
 */
#include <string.h>

#include "internal.h"

#define MANIFEST_MAGIC "BMF1"
#define MAX_RECORD (64u << 20)

int path_cmp(const char *a, size_t an, const char *b, size_t bn)
{
        size_t n = an < bn ? an : bn;
        for (size_t i = 0; i < n; i++) {
                unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
                if (x == y)
                        continue;
                /* '/' sorts before every byte of a name, so a directory's
                 * subtree comes right after it, before its next sibling. */
                if (x == '/')
                        return -1;
                if (y == '/')
                        return 1;
                return x < y ? -1 : 1;
        }
        return an < bn ? -1 : an > bn ? 1 : 0;
}

void chunk_refs_add(struct chunk_ref **v, size_t *n, size_t *cap, const uint8_t id[HASH_LEN], size_t len)
{
        if (*n == *cap) {
                *cap = *cap ? *cap * 2 : 64;
                *v = xrealloc(*v, *cap * sizeof **v);
        }
        memcpy((*v)[*n].id, id, HASH_LEN);
        (*v)[*n].len = (uint32_t)len;
        (*n)++;
}

void entry_encode(const struct entry *e, struct buf *out)
{
        buf_putc(out, e->type);
        buf_put_bytes(out, e->path, e->path_len);
        buf_put_varint(out, e->mode);
        buf_put_varint(out, e->uid);
        buf_put_varint(out, e->gid);
        buf_put_str(out, e->uname);
        buf_put_str(out, e->gname);
        buf_put_svarint(out, e->mtime_sec);
        buf_put_varint(out, e->mtime_nsec);
        buf_put_svarint(out, e->ctime_sec);
        buf_put_varint(out, e->ctime_nsec);
        buf_put_varint(out, e->ino);
        buf_put_varint(out, e->size);
        buf_put_varint(out, e->rdev);
        buf_put_bytes(out, e->link, e->link ? e->link_len : 0);
        buf_put_varint(out, e->flags);
        buf_put_varint(out, e->fflags_set);
        buf_put_varint(out, e->fflags_clear);
        buf_put_varint(out, e->nxattrs);
        for (size_t i = 0; i < e->nxattrs; i++) {
                buf_put_str(out, e->xattrs[i].name);
                buf_put_bytes(out, e->xattrs[i].value, e->xattrs[i].len);
        }
        buf_put_str(out, e->acl);
        buf_put_varint(out, e->nsparse);
        for (size_t i = 0; i < e->nsparse; i++) {
                buf_put_varint(out, e->sparse[i].offset);
                buf_put_varint(out, e->sparse[i].length);
        }
        buf_put_varint(out, e->nchunks);
        for (size_t i = 0; i < e->nchunks; i++) {
                buf_append(out, e->chunks[i].id, HASH_LEN);
                buf_put_le32(out, e->chunks[i].len);
        }
}

/* Copies a byte string into the entry's string storage, NUL-terminated.
 * Storage was reserved up front, so earlier pointers stay valid. */
static int take_string(struct cursor *c, struct entry_store *es, const char **ret, size_t *ret_len)
{
        const uint8_t *p;
        size_t n;
        int r = cur_get_bytes(c, &p, &n);
        if (r < 0)
                return r;
        if (memchr(p, 0, n))
                return -BERTH_ECORRUPT;
        char *dst = (char *)es->strings.data + es->strings.len;
        memcpy(dst, p, n);
        dst[n] = 0;
        es->strings.len += n + 1;
        *ret = dst;
        if (ret_len)
                *ret_len = n;
        return 0;
}

#define GET(expr)                          \
        do {                               \
                int _r = (expr);           \
                if (_r < 0)                \
                        return _r;         \
        } while (0)

static int get_u32(struct cursor *c, uint32_t *ret)
{
        uint64_t v;
        GET(cur_get_varint(c, &v));
        if (v > UINT32_MAX)
                return -BERTH_ECORRUPT;
        *ret = (uint32_t)v;
        return 0;
}

int entry_decode(const uint8_t *p, size_t n, struct entry_store *es)
{
        struct cursor c = { p, p + n };
        struct entry *e = &es->e;
        uint64_t v;

        *e = (struct entry){ 0 };
        /* Every string is at most the record's size, and there are at most
         * five strings plus two per xattr, each with a NUL. */
        buf_reset(&es->strings);
        buf_reserve(&es->strings, 2 * n + 16);

        GET(cur_get_u8(&c, &e->type));
        if (e->type < ENTRY_DIR || e->type > ENTRY_FIFO)
                return -BERTH_ECORRUPT;
        GET(take_string(&c, es, &e->path, &e->path_len));
        GET(get_u32(&c, &e->mode));
        if (e->mode & ~07777u)
                return -BERTH_ECORRUPT;
        GET(get_u32(&c, &e->uid));
        GET(get_u32(&c, &e->gid));
        GET(take_string(&c, es, &e->uname, NULL));
        GET(take_string(&c, es, &e->gname, NULL));
        GET(cur_get_svarint(&c, &e->mtime_sec));
        GET(get_u32(&c, &e->mtime_nsec));
        GET(cur_get_svarint(&c, &e->ctime_sec));
        GET(get_u32(&c, &e->ctime_nsec));
        if (e->mtime_nsec >= 1000000000 || e->ctime_nsec >= 1000000000)
                return -BERTH_ECORRUPT;
        GET(cur_get_varint(&c, &e->ino));
        GET(cur_get_varint(&c, &e->size));
        if (e->size > INT64_MAX)
                return -BERTH_ECORRUPT;
        GET(cur_get_varint(&c, &e->rdev));
        GET(take_string(&c, es, &e->link, &e->link_len));
        GET(get_u32(&c, &e->flags));
        GET(cur_get_varint(&c, &e->fflags_set));
        GET(cur_get_varint(&c, &e->fflags_clear));

        GET(cur_get_varint(&c, &v));
        if (v > cur_left(&c) / 2)
                return -BERTH_ECORRUPT;
        e->nxattrs = (size_t)v;
        if (e->nxattrs > es->xattrs_cap) {
                es->xattrs_cap = e->nxattrs;
                es->xattrs = xrealloc(es->xattrs, es->xattrs_cap * sizeof *es->xattrs);
        }
        e->xattrs = es->xattrs;
        for (size_t i = 0; i < e->nxattrs; i++) {
                const uint8_t *val;
                GET(take_string(&c, es, &e->xattrs[i].name, NULL));
                GET(cur_get_bytes(&c, &val, &e->xattrs[i].len));
                e->xattrs[i].value = val;
        }
        GET(take_string(&c, es, &e->acl, NULL));

        GET(cur_get_varint(&c, &v));
        if (v > cur_left(&c) / 2)
                return -BERTH_ECORRUPT;
        e->nsparse = (size_t)v;
        if (e->nsparse > es->sparse_cap) {
                es->sparse_cap = e->nsparse;
                es->sparse = xrealloc(es->sparse, es->sparse_cap * sizeof *es->sparse);
        }
        e->sparse = es->sparse;
        uint64_t end = 0;
        for (size_t i = 0; i < e->nsparse; i++) {
                GET(cur_get_varint(&c, &e->sparse[i].offset));
                GET(cur_get_varint(&c, &e->sparse[i].length));
                /* Regions are ordered, disjoint and inside the file. */
                if (e->sparse[i].offset < end || e->sparse[i].length > e->size ||
                    e->sparse[i].offset > e->size - e->sparse[i].length)
                        return -BERTH_ECORRUPT;
                end = e->sparse[i].offset + e->sparse[i].length;
        }

        GET(cur_get_varint(&c, &v));
        if (v > cur_left(&c) / (HASH_LEN + 4))
                return -BERTH_ECORRUPT;
        e->nchunks = (size_t)v;
        if (e->nchunks > es->chunks_cap) {
                es->chunks_cap = e->nchunks;
                es->chunks = xrealloc(es->chunks, es->chunks_cap * sizeof *es->chunks);
        }
        e->chunks = es->chunks;
        for (size_t i = 0; i < e->nchunks; i++) {
                const uint8_t *q;
                GET(cur_get_raw(&c, HASH_LEN + 4, &q));
                memcpy(e->chunks[i].id, q, HASH_LEN);
                e->chunks[i].len = le32_read(q + HASH_LEN);
                if (e->chunks[i].len == 0 || e->chunks[i].len > PACK_MAX_CHUNK)
                        return -BERTH_ECORRUPT;
        }
        /* Trailing bytes belong to fields of later versions. */
        return 0;
}

void entry_store_free(struct entry_store *es)
{
        buf_free(&es->strings);
        free(es->xattrs);
        free(es->sparse);
        free(es->chunks);
        *es = (struct entry_store){ 0 };
}

void entry_digests(const struct entry *e, uint8_t content[16], uint8_t meta[8])
{
        /* Called for every entry of two manifests per snapshot indexed:
         * one scratch buffer per thread, no allocation per call. */
        static __thread struct buf b;
        uint8_t d[HASH_LEN];

        buf_reset(&b);
        for (size_t i = 0; i < e->nchunks; i++)
                buf_append(&b, e->chunks[i].id, HASH_LEN);
        for (size_t i = 0; i < e->nsparse; i++) {
                buf_put_varint(&b, e->sparse[i].offset);
                buf_put_varint(&b, e->sparse[i].length);
        }
        if (e->link)
                buf_put_bytes(&b, e->link, e->link_len);
        hash_sha256(b.data ? b.data : (const uint8_t *)"", b.len, d);
        memcpy(content, d, 16);

        buf_reset(&b);
        buf_put_varint(&b, e->rdev);
        buf_put_varint(&b, e->fflags_set);
        buf_put_varint(&b, e->fflags_clear);
        buf_put_str(&b, e->acl);
        for (size_t i = 0; i < e->nxattrs; i++) {
                buf_put_str(&b, e->xattrs[i].name);
                buf_put_bytes(&b, e->xattrs[i].value, e->xattrs[i].len);
        }
        hash_sha256(b.data, b.len, d);
        memcpy(meta, d, 8);
}

/* ---- writer ----------------------------------------------------------------- */

struct manifest_writer {
        struct store *store;
        const struct chunker *chunker;
        struct buf stream;
        struct buf record;
        uint8_t (*ids)[HASH_LEN];
        size_t n, cap;
};

int manifest_writer_new(struct store *s, const struct chunker *ch, struct manifest_writer **ret)
{
        struct manifest_writer *w = xcalloc(1, sizeof *w);
        w->store = s;
        w->chunker = ch;
        buf_append(&w->stream, MANIFEST_MAGIC, 4);
        *ret = w;
        return 0;
}

static int writer_emit(struct manifest_writer *w, bool eof)
{
        while (w->stream.len > 0) {
                size_t cut = chunker_cut(w->chunker, w->stream.data, w->stream.len, eof);
                if (cut == 0)
                        return 0;
                if (w->n == w->cap) {
                        w->cap = w->cap ? w->cap * 2 : 16;
                        w->ids = xrealloc(w->ids, w->cap * sizeof *w->ids);
                }
                int r = store_put(w->store, true, w->stream.data, cut, w->ids[w->n]);
                if (r < 0)
                        return r;
                w->n++;
                buf_consume(&w->stream, cut);
        }
        return 0;
}

int manifest_writer_add_record(struct manifest_writer *w, const uint8_t *rec, size_t len)
{
        buf_put_varint(&w->stream, len);
        buf_append(&w->stream, rec, len);
        return writer_emit(w, false);
}

int manifest_writer_add(struct manifest_writer *w, const struct entry *e)
{
        buf_reset(&w->record);
        entry_encode(e, &w->record);
        return manifest_writer_add_record(w, w->record.data, w->record.len);
}

int manifest_writer_finish(struct manifest_writer *w, uint8_t (**ret_ids)[HASH_LEN], size_t *ret_n)
{
        int r = writer_emit(w, true);
        if (r < 0)
                return r;
        *ret_ids = TAKE_PTR(w->ids);
        *ret_n = w->n;
        w->n = w->cap = 0;
        return 0;
}

void manifest_writer_free(struct manifest_writer *w)
{
        if (!w)
                return;
        buf_free(&w->stream);
        buf_free(&w->record);
        free(w->ids);
        free(w);
}

/* ---- reader ------------------------------------------------------------------ */

struct manifest_reader {
        struct store *store;
        uint8_t (*ids)[HASH_LEN];
        size_t n, next;
        struct buf data;         /* loaded, not yet parsed */
        size_t pos;
        struct buf chunk;
        bool started;
        struct entry_store es;
        /* validation */
        struct buf prev;         /* previous path */
        size_t count;
        struct buf dirs;         /* paths of the open directories, NUL-separated */
        size_t *dir_ends;
        size_t ndirs, dirs_cap;
        struct idset linked;     /* SHA-256 of the paths of linked files */
};

int manifest_reader_new(struct store *s, const uint8_t (*ids)[HASH_LEN], size_t n, struct manifest_reader **ret)
{
        struct manifest_reader *r = xcalloc(1, sizeof *r);
        r->store = s;
        r->ids = xmalloc((n ? n : 1) * HASH_LEN);
        if (n)
                memcpy(r->ids, ids, n * HASH_LEN);
        r->n = n;
        *ret = r;
        return 0;
}

void manifest_reader_free(struct manifest_reader *r)
{
        if (!r)
                return;
        free(r->ids);
        buf_free(&r->data);
        buf_free(&r->chunk);
        entry_store_free(&r->es);
        buf_free(&r->prev);
        buf_free(&r->dirs);
        free(r->dir_ends);
        idset_free(&r->linked);
        free(r);
}

/* Makes at least `need` unparsed bytes available; 1 when they are, 0 at the
 * end of the stream. */
static int reader_fill(struct manifest_reader *r, size_t need)
{
        while (r->data.len - r->pos < need) {
                if (r->next == r->n)
                        return 0;
                if (r->pos > 0) {
                        buf_consume(&r->data, r->pos);
                        r->pos = 0;
                }
                int k = store_read(r->store, r->ids[r->next], &r->chunk);
                if (k < 0)
                        return k;
                r->next++;
                buf_append(&r->data, r->chunk.data, r->chunk.len);
        }
        return 1;
}

static int corrupt(const char *what)
{
        return error_set(BERTH_ECORRUPT, "snapshot manifest is damaged: %s", what);
}

static int hostile(const struct entry *e, const char *what)
{
        return error_set(BERTH_EHOSTILE, "snapshot manifest entry '%s' is refused: %s", e->path, what);
}

static bool path_well_formed(const char *p, size_t n)
{
        if (n == 0)
                return true;
        if (p[0] == '/' || p[n - 1] == '/')
                return false;
        size_t start = 0;
        for (size_t i = 0; i <= n; i++) {
                if (i < n && p[i] != '/')
                        continue;
                size_t len = i - start;
                if (len == 0 || (len == 1 && p[start] == '.') || (len == 2 && p[start] == '.' && p[start + 1] == '.'))
                        return false;
                start = i + 1;
        }
        return true;
}

static int validate(struct manifest_reader *r, const struct entry *e)
{
        if (!path_well_formed(e->path, e->path_len))
                return hostile(e, "the path is absolute or contains '..' or empty components");
        if (r->count == 0) {
                if (e->path_len != 0 || e->type != ENTRY_DIR)
                        return corrupt("the first entry is not the root directory");
        } else {
                if (path_cmp(r->prev.data ? (const char *)r->prev.data : "", r->prev.len, e->path, e->path_len) >= 0)
                        return hostile(e, "duplicate or out-of-order path");
                /* The parent must be a directory entry still open. */
                size_t cut = e->path_len;
                while (cut > 0 && e->path[cut - 1] != '/')
                        cut--;
                size_t plen = cut ? cut - 1 : 0;
                while (r->ndirs > 0) {
                        size_t start = r->ndirs > 1 ? r->dir_ends[r->ndirs - 2] + 1 : 0;
                        size_t len = r->dir_ends[r->ndirs - 1] - start;
                        if (len == plen && (plen == 0 || memcmp(r->dirs.data + start, e->path, plen) == 0))
                                break;
                        r->ndirs--;
                        r->dirs.len = r->ndirs > 0 ? r->dir_ends[r->ndirs - 1] : 0;
                }
                if (r->ndirs == 0)
                        return hostile(e, "its parent is not a directory of the snapshot");
        }
        if (e->type == ENTRY_HARDLINK) {
                uint8_t h[HASH_LEN];
                hash_sha256(e->link, e->link_len, h);
                if (!idset_contains(&r->linked, h))
                        return hostile(e, "hard link to a path that is not an earlier file of the snapshot");
        }
        if (e->type == ENTRY_REG && (e->flags & ENTRY_F_LINKED)) {
                uint8_t h[HASH_LEN];
                hash_sha256(e->path, e->path_len, h);
                idset_add(&r->linked, h);
        }
        if (e->type == ENTRY_REG) {
                uint64_t total = 0, data = 0;
                for (size_t i = 0; i < e->nchunks; i++)
                        total += e->chunks[i].len;
                if (e->nsparse)
                        for (size_t i = 0; i < e->nsparse; i++)
                                data += e->sparse[i].length;
                else
                        data = e->size;
                if (total != data)
                        return corrupt("a file's chunks do not add up to its size");
        }
        if (e->type == ENTRY_DIR) {
                if (r->ndirs == r->dirs_cap) {
                        r->dirs_cap = r->dirs_cap ? r->dirs_cap * 2 : 32;
                        r->dir_ends = xrealloc(r->dir_ends, r->dirs_cap * sizeof *r->dir_ends);
                }
                if (r->ndirs > 0)
                        buf_putc(&r->dirs, 0);
                buf_append(&r->dirs, e->path, e->path_len);
                r->dir_ends[r->ndirs++] = r->dirs.len;
        }
        buf_reset(&r->prev);
        buf_append(&r->prev, e->path, e->path_len);
        r->count++;
        return 0;
}

int manifest_reader_next(struct manifest_reader *r, const struct entry **ret)
{
        int k;

        if (!r->started) {
                k = reader_fill(r, 4);
                if (k < 0)
                        return k;
                if (k == 0 || memcmp(r->data.data, MANIFEST_MAGIC, 4) != 0)
                        return corrupt("bad magic");
                r->pos = 4;
                r->started = true;
        }
        k = reader_fill(r, 1);
        if (k <= 0) {
                if (k == 0 && r->count == 0)
                        return corrupt("no entries");
                return k;
        }
        /* A length prefix is at most 10 bytes; fill until it parses. */
        uint64_t len;
        struct cursor c;
        for (size_t want = 1;; want++) {
                c = (struct cursor){ r->data.data + r->pos, r->data.data + r->data.len };
                if (cur_get_varint(&c, &len) == 0)
                        break;
                if (want > 10)
                        return corrupt("bad record length");
                k = reader_fill(r, want + 1);
                if (k < 0)
                        return k;
                if (k == 0)
                        return corrupt("truncated record");
        }
        size_t hdr = (size_t)(c.p - (r->data.data + r->pos));
        if (len > MAX_RECORD)
                return corrupt("oversized record");
        k = reader_fill(r, hdr + len);
        if (k < 0)
                return k;
        if (k == 0)
                return corrupt("truncated record");
        k = entry_decode(r->data.data + r->pos + hdr, len, &r->es);
        if (k < 0)
                return corrupt("malformed record");
        r->pos += hdr + len;
        k = validate(r, &r->es.e);
        if (k < 0)
                return k;
        *ret = &r->es.e;
        return 1;
}
