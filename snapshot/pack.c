/* pack.c — writing and reading pack files (format 2: records of chunks; format 1 into
 * format-1 repositories, see pack_writer_format1()).
 *
 * The writer builds a pack in a local spool file and hands the finished
 * file to the repository's backend (backend.h), which makes it durable and
 * visible under its name; readers read trailers through the backend.  No
 * path or descriptor of the repository appears here. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <zstd.h>

#include "internal.h"

#define WRITE_BUFFER (1u << 20)

struct pack_writer {
        const struct repo_keys *keys; /* an encrypted repository's: records and trailer sealed */
        struct buf sealed;
        int spool_dirfd;
        char tmpname[64];
        int fd;
        struct buf out;             /* not yet written */
        uint64_t size;              /* bytes in the pack so far, written or buffered */
        struct pack_entry *entries;
        size_t n, cap;
        bool v1;                    /* pack_writer_format1(): a format-1 pack */
};

void pack_path(const uint8_t hash[HASH_LEN], char *buf, size_t size)
{
        char hex[2 * HASH_LEN + 1];
        hex_encode(hash, HASH_LEN, hex);
        snprintf(buf, size, "packs/%.2s/%s", hex, hex);
}

static int writer_flush(struct pack_writer *w)
{
        if (w->out.len == 0)
                return 0;
        int r = write_all(w->fd, w->out.data, w->out.len);
        if (r < 0)
                return error_set(r, "cannot write pack: %s", berth_strerror(r));
        buf_reset(&w->out);
        return 0;
}

int pack_name_parse(const char *name, uint8_t ret_hash[HASH_LEN])
{
        /* "packs/" + 2 hex + "/" + 64 hex */
        if (strncmp(name, "packs/", 6) != 0 || strlen(name) != 6 + 3 + 2 * HASH_LEN || name[8] != '/')
                return -EINVAL;
        char dir[3] = { name[6], name[7], 0 };
        if (!is_hex(dir) || !is_hex(name + 9) || hex_decode(name + 9, ret_hash, HASH_LEN) < 0)
                return -EINVAL;
        return 0;
}

int pack_writer_new(int spool_dirfd, const struct repo_keys *keys, struct pack_writer **ret)
{
        struct pack_writer *w = xcalloc(1, sizeof *w);
        w->keys = keys;
        uint64_t rnd;

        if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
                rnd = (uint64_t)getpid() << 32 ^ (uint64_t)mono_ns();
        snprintf(w->tmpname, sizeof w->tmpname, "pack-%016llx.tmp", (unsigned long long)rnd);
        w->spool_dirfd = spool_dirfd;
        /* Read and write: a backend may read the file back to send it. */
        w->fd = openat(spool_dirfd, w->tmpname, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (w->fd < 0) {
                int r = error_set(errno, "cannot create a temporary pack: %s", strerror(errno));
                free(w);
                return r;
        }
        buf_append(&w->out, PACK_MAGIC, PACK_HEADER_SIZE);
        w->size = PACK_HEADER_SIZE;
        *ret = w;
        return 0;
}

void pack_writer_format1(struct pack_writer *w)
{
        /* Nothing is flushed before the first record: the header is still
         * in the buffer. */
        if (w->keys || w->n || w->out.len != PACK_HEADER_SIZE)
                abort();
        memcpy(w->out.data, PACK_MAGIC_V1, PACK_HEADER_SIZE);
        w->v1 = true;
}

bool pack_header_ok(const uint8_t head[PACK_HEADER_SIZE])
{
        return memcmp(head, PACK_MAGIC, PACK_HEADER_SIZE) == 0 || memcmp(head, PACK_MAGIC_V1, PACK_HEADER_SIZE) == 0;
}

int pack_record_seal(const struct repo_keys *k, const void *stored, size_t len, struct buf *out)
{
        /* The one place a record is sealed: after compression (and its
         * check), one AEAD per record; the trailer lists its sealed length. */
        if (len > PACK_MAX_CHUNK)
                return error_set(EFBIG, "a record of %zu bytes is too large", len);
        return crypto_seal(k, CRYPTO_KIND_RECORD, stored, len, out);
}

int pack_writer_add_sealed(struct pack_writer *w, struct pack_entry *entries, size_t n, const void *stored,
                           size_t len)
{
        uint32_t over = w->keys ? CRYPTO_OVERHEAD : 0;
        if (len > PACK_MAX_CHUNK + over || len < over || w->size + len > UINT32_MAX)
                return error_set(EFBIG, "a record of %zu bytes does not fit in the pack", len);
        if (w->v1 && n != 1)
                return error_set(EINVAL, "a format-1 pack holds one chunk per record");
        if (w->n + n > w->cap) {
                while (w->n + n > w->cap)
                        w->cap = w->cap ? w->cap * 2 : 256;
                w->entries = xrealloc(w->entries, w->cap * sizeof *w->entries);
        }
        for (size_t i = 0; i < n; i++) {
                entries[i].offset = (uint32_t)w->size;
                entries[i].stored_len = (uint32_t)len;
                /* Whether a chunk is its record alone is in the trailer, so
                 * it is known without decoding (or opening) the record. */
                if (w->v1)
                        /* Format 1 has no such flag: every chunk is alone. */
                        entries[i].flags &= (uint8_t)~PACK_F_ALONE;
                else if (n == 1)
                        entries[i].flags |= PACK_F_ALONE;
                else
                        entries[i].flags &= (uint8_t)~PACK_F_ALONE;
                w->entries[w->n++] = entries[i];
        }
        buf_append(&w->out, stored, len);
        w->size += len;
        if (w->out.len >= WRITE_BUFFER)
                return writer_flush(w);
        return 0;
}

int pack_writer_add_record(struct pack_writer *w, struct pack_entry *entries, size_t n, const void *stored,
                           size_t len)
{
        if (len > PACK_MAX_CHUNK || w->size + len > UINT32_MAX)
                return error_set(EFBIG, "a record of %zu bytes does not fit in the pack", len);
        if (w->keys) {
                int r = pack_record_seal(w->keys, stored, len, &w->sealed);
                if (r < 0)
                        return r;
                stored = w->sealed.data;
                len = w->sealed.len;
        }
        return pack_writer_add_sealed(w, entries, n, stored, len);
}

int pack_writer_add(struct pack_writer *w, const struct pack_entry *e, const void *stored)
{
        struct pack_entry one = *e;
        one.inner = 0;
        return pack_writer_add_record(w, &one, 1, stored, e->stored_len);
}

uint64_t pack_writer_size(const struct pack_writer *w) { return w->size; }
size_t pack_writer_count(const struct pack_writer *w) { return w->n; }

static void writer_free(struct pack_writer *w)
{
        if (w->fd >= 0)
                close(w->fd);
        buf_free(&w->out);
        buf_free(&w->sealed);
        free(w->entries);
        free(w);
}

void pack_writer_abort(struct pack_writer *w)
{
        if (!w)
                return;
        unlinkat(w->spool_dirfd, w->tmpname, 0);
        writer_free(w);
}

static void encode_entries(const struct pack_entry *entries, size_t n, struct buf *out)
{
        for (size_t i = 0; i < n; i++) {
                const struct pack_entry *e = &entries[i];
                uint8_t rec[PACK_ENTRY_SIZE] = { 0 };
                memcpy(rec, e->id, HASH_LEN);
                le32_write(rec + 32, e->offset);
                le32_write(rec + 36, e->stored_len);
                le32_write(rec + 40, e->inner);
                le32_write(rec + 44, e->raw_len);
                rec[48] = e->flags;
                buf_append(out, rec, sizeof rec);
        }
}

/* Format 1: 48-byte entries (id, offset, stored_len, raw_len, flags), a
 * chunk alone in each record. */
static void encode_entries_v1(const struct pack_entry *entries, size_t n, struct buf *out)
{
        for (size_t i = 0; i < n; i++) {
                const struct pack_entry *e = &entries[i];
                uint8_t rec[PACK_ENTRY_SIZE_V1] = { 0 };
                memcpy(rec, e->id, HASH_LEN);
                le32_write(rec + 32, e->offset);
                le32_write(rec + 36, e->stored_len);
                le32_write(rec + 40, e->raw_len);
                rec[44] = e->flags;
                buf_append(out, rec, sizeof rec);
        }
}

/* The trailer and footer.  Sealed (keys): the entries as one sealed unit,
 * and a footer with count 0, the sealed length and the magic
 * PACK_FOOTER_MAGIC_SEALED, so the pack's shape and name can be checked
 * without the key. */
static int encode_trailer(const struct repo_keys *keys, bool v1, const struct pack_entry *entries, size_t n,
                          struct buf *out)
{
        size_t start = out->len;
        if (keys) {
                struct buf plain = { 0 }, sealed = { 0 };
                encode_entries(entries, n, &plain);
                int r = crypto_seal(keys, CRYPTO_KIND_TRAILER, plain.data ? plain.data : (uint8_t *)"", plain.len,
                                    &sealed);
                buf_free(&plain);
                if (r < 0) {
                        buf_free(&sealed);
                        return r;
                }
                buf_append(out, sealed.data, sealed.len);
                buf_free(&sealed);
                uint8_t digest[HASH_LEN];
                uint32_t tlen = (uint32_t)(out->len - start);
                hash_sha256(out->data + start, tlen, digest);
                buf_put_le32(out, 0);
                buf_put_le32(out, tlen);
                buf_append(out, digest, 8);
                buf_append(out, PACK_FOOTER_MAGIC_SEALED, 8);
                return 0;
        }
        size_t esize = v1 ? PACK_ENTRY_SIZE_V1 : PACK_ENTRY_SIZE;
        if (v1)
                encode_entries_v1(entries, n, out);
        else
                encode_entries(entries, n, out);
        uint8_t digest[HASH_LEN];
        hash_sha256(out->data + start, out->len - start, digest);
        buf_put_le32(out, (uint32_t)n);
        buf_put_le32(out, (uint32_t)(n * esize));
        buf_append(out, digest, 8);
        buf_append(out, v1 ? PACK_FOOTER_MAGIC_V1 : PACK_FOOTER_MAGIC, 8);
        return 0;
}

int pack_writer_finish(struct pack_writer *w, struct backend *be, uint8_t ret_hash[HASH_LEN], uint64_t *ret_size,
                       struct pack_entry **ret_entries, size_t *ret_n)
{
        char path[128];
        uint8_t hash[HASH_LEN];
        int r;

        size_t tstart = w->out.len;
        r = encode_trailer(w->keys, w->v1, w->entries, w->n, &w->out);
        if (r < 0)
                goto out;
        /* The pack's name: the SHA-256 of its trailer and footer, which
         * list every chunk's id, offset and lengths, and so pin down the
         * whole file given that each chunk matches its id. */
        hash_sha256(w->out.data + tstart, w->out.len - tstart, hash);
        w->size += w->out.len - tstart;
        r = writer_flush(w);
        if (r < 0)
                goto out;
        pack_path(hash, path, sizeof path);
        /* The backend syncs the file, publishes it without replacing
         * anything, and syncs what names it: durable when this returns. */
        struct backend_spool spool = { .dirfd = w->spool_dirfd, .name = w->tmpname, .fd = w->fd, .size = w->size };
        r = backend_put_file(be, path, &spool);
        if (r == -EEXIST) {
                /* Other bytes under this name: the name pins the content,
                 * so they are a damaged copy (a truncated pack whose chunks
                 * were stored again, in the same order).  Replace it with
                 * this good one. */
                log_debug("replacing damaged %s", path);
                error_clear();
                r = backend_delete(be, path);
                if (r == 0 || r == -ENOENT)
                        r = backend_put_file(be, path, &spool);
                if (r == -EEXIST)
                        r = error_set(EEXIST, "cannot replace damaged pack %s", path);
        }
        if (r < 0)
                goto out;
        memcpy(ret_hash, hash, HASH_LEN);
        *ret_size = w->size;
        *ret_entries = TAKE_PTR(w->entries);
        *ret_n = w->n;
        r = 0;
out:
        pack_writer_abort(w); /* the spool file: published by now, or not wanted */
        return r;
}

/* One format-1 entry (a plain pack only): a chunk alone in its record. */
static bool parse_entry_v1(const uint8_t *rec, uint64_t data_end, struct pack_entry *e)
{
        memcpy(e->id, rec, HASH_LEN);
        e->offset = le32_read(rec + 32);
        e->stored_len = le32_read(rec + 36);
        e->raw_len = le32_read(rec + 40);
        e->flags = rec[44];
        e->inner = 0;
        return !(e->offset < PACK_HEADER_SIZE || (uint64_t)e->offset + e->stored_len > data_end ||
                 e->raw_len > PACK_MAX_CHUNK || e->stored_len > PACK_MAX_CHUNK ||
                 (!(e->flags & PACK_F_ZSTD) && e->stored_len != e->raw_len) ||
                 (e->flags & ~(PACK_F_ZSTD | PACK_F_TREE)));
}

/* One format-2 entry, given the previous one (NULL for the first): its
 * record inside the data, after the previous record or the same one; its
 * chunk right after the previous chunk of the record, inside the bound.
 * over: the sealing overhead of each record (0 in a plain pack). */
static bool parse_entry_v2(const uint8_t *rec, uint64_t data_end, uint32_t over, const struct pack_entry *prev,
                           struct pack_entry *e)
{
        memcpy(e->id, rec, HASH_LEN);
        e->offset = le32_read(rec + 32);
        e->stored_len = le32_read(rec + 36);
        e->inner = le32_read(rec + 40);
        e->raw_len = le32_read(rec + 44);
        e->flags = rec[48];
        if (rec[49] || rec[50] || rec[51] || (e->flags & ~(PACK_F_ZSTD | PACK_F_TREE | PACK_F_ALONE)))
                return false;
        if (e->offset < PACK_HEADER_SIZE || (uint64_t)e->offset + e->stored_len > data_end ||
            e->stored_len > PACK_MAX_CHUNK + over || e->stored_len < over || e->raw_len > PACK_MAX_CHUNK ||
            (uint64_t)e->inner + e->raw_len > PACK_MAX_CHUNK)
                return false;
        /* Raw records: the chunks lie inside the stored bytes. */
        if (!(e->flags & PACK_F_ZSTD) && (uint64_t)e->inner + e->raw_len + over > e->stored_len)
                return false;
        /* A chunk alone in its record: all of it. */
        if ((e->flags & PACK_F_ALONE) && (e->inner != 0 || (!(e->flags & PACK_F_ZSTD) &&
                                                            e->raw_len + over != e->stored_len)))
                return false;
        if (prev && prev->offset == e->offset)
                /* The same record: same length and kind, the next chunk. */
                return prev->stored_len == e->stored_len && prev->flags == e->flags &&
                       !(e->flags & PACK_F_ALONE) && e->inner == prev->inner + prev->raw_len;
        /* A new record: starts at its first chunk, after the previous one. */
        if (prev && e->offset < (uint64_t)prev->offset + prev->stored_len)
                return false;
        return e->inner == 0;
}

/* Entries of a trailer (esize bytes each: format 1 or 2); in a sealed pack
 * (format 2 only) each record's stored length is its sealed length. */
static int parse_entries(const uint8_t *recs, size_t tlen, size_t esize, uint64_t data_end, bool sealed,
                         struct pack_entry **ret, size_t *ret_n)
{
        if (tlen % esize || (sealed && esize != PACK_ENTRY_SIZE))
                return -BERTH_ECORRUPT;
        size_t count = tlen / esize;
        uint32_t over = sealed ? CRYPTO_OVERHEAD : 0;
        struct pack_entry *entries = xcalloc(count ? count : 1, sizeof *entries);
        for (size_t i = 0; i < count; i++) {
                const uint8_t *rec = recs + i * esize;
                bool ok = esize == PACK_ENTRY_SIZE_V1
                                  ? parse_entry_v1(rec, data_end, &entries[i])
                                  : parse_entry_v2(rec, data_end, over, i ? &entries[i - 1] : NULL, &entries[i]);
                if (!ok) {
                        free(entries);
                        return -BERTH_ECORRUPT;
                }
        }
        *ret = entries;
        *ret_n = count;
        return 0;
}

/* The footer of a trailer+footer held in memory (the last n bytes of a
 * pack of `size` bytes), plain or sealed: its magic, lengths within bounds
 * and the digest of the trailer.  0 and the trailer's length, or
 * -BERTH_ECORRUPT. */
static int check_footer(const uint8_t *tail, size_t n, uint64_t size, bool sealed, uint32_t *ret_tlen,
                        size_t *ret_esize)
{
        if (n < PACK_FOOTER_SIZE || size < PACK_HEADER_SIZE + PACK_FOOTER_SIZE)
                return -BERTH_ECORRUPT;
        const uint8_t *foot = tail + n - PACK_FOOTER_SIZE;
        size_t esize = PACK_ENTRY_SIZE;
        if (sealed ? memcmp(foot + 16, PACK_FOOTER_MAGIC_SEALED, 8) != 0
                   : memcmp(foot + 16, PACK_FOOTER_MAGIC, 8) != 0) {
                if (sealed || memcmp(foot + 16, PACK_FOOTER_MAGIC_V1, 8) != 0)
                        return -BERTH_ECORRUPT;
                esize = PACK_ENTRY_SIZE_V1;
        }
        uint32_t count = le32_read(foot);
        uint32_t tlen = le32_read(foot + 4);
        bool counted = sealed ? count == 0 && tlen >= CRYPTO_OVERHEAD : (uint64_t)count * esize == tlen;
        if (!counted || tlen > n - PACK_FOOTER_SIZE || (uint64_t)tlen + PACK_HEADER_SIZE + PACK_FOOTER_SIZE > size)
                return -BERTH_ECORRUPT;
        uint8_t digest[HASH_LEN];
        hash_sha256(foot - tlen, tlen, digest);
        if (memcmp(digest, foot + 8, 8) != 0)
                return -BERTH_ECORRUPT;
        *ret_tlen = tlen;
        *ret_esize = esize;
        return 0;
}

/* A sealed trailer+footer: shape and digest without the key; with it (k),
 * the entries (ret NULL: the shape only). */
static int parse_sealed_trailer(const struct repo_keys *k, const uint8_t *tail, size_t n, uint64_t size,
                                struct pack_entry **ret, size_t *ret_n)
{
        uint32_t tlen;
        size_t esize;
        int r = check_footer(tail, n, size, true, &tlen, &esize);
        if (r < 0 || !ret)
                return r;
        if (!k)
                return -EACCES;
        struct buf plain = { 0 };
        r = crypto_open(k, CRYPTO_KIND_TRAILER, tail + n - PACK_FOOTER_SIZE - tlen, tlen, &plain);
        if (r == 0)
                r = parse_entries(plain.data, plain.len, esize, size - PACK_FOOTER_SIZE - tlen, true, ret, ret_n);
        buf_free(&plain);
        return r;
}

int pack_parse_trailer(const uint8_t *tail, size_t n, uint64_t size, struct pack_entry **ret, size_t *ret_n)
{
        uint32_t tlen;
        size_t esize;
        int r = check_footer(tail, n, size, false, &tlen, &esize);
        if (r < 0)
                return r;
        return parse_entries(tail + n - PACK_FOOTER_SIZE - tlen, tlen, esize, size - PACK_FOOTER_SIZE - tlen, false,
                             ret, ret_n);
}

/* Reads len bytes at off of the pack being read: 0 or -errno. */
typedef int (*pack_read_fn)(void *ud, uint64_t off, size_t len, void *buf);

static int read_trailer(const struct repo_keys *k, pack_read_fn read_at, void *ud, const char *name, uint64_t size,
                        struct pack_entry **ret, size_t *ret_n, uint8_t ret_name[HASH_LEN])
{
        uint8_t foot[PACK_FOOTER_SIZE];
        int r;

        if (size < PACK_HEADER_SIZE + PACK_FOOTER_SIZE)
                return error_set(BERTH_ECORRUPT, "pack %s is truncated (%llu bytes)", name,
                                 (unsigned long long)size);
        r = read_at(ud, size - PACK_FOOTER_SIZE, sizeof foot, foot);
        if (r < 0)
                return error_set(r, "cannot read pack %s: %s", name, berth_strerror(r));
        uint64_t tlen = le32_read(foot + 4);
        bool sealed = memcmp(foot + 16, PACK_FOOTER_MAGIC_SEALED, 8) == 0;
        if ((!sealed && memcmp(foot + 16, PACK_FOOTER_MAGIC, 8) != 0 && memcmp(foot + 16, PACK_FOOTER_MAGIC_V1, 8) != 0) ||
            tlen + PACK_HEADER_SIZE + PACK_FOOTER_SIZE > size)
                return error_set(BERTH_ECORRUPT, "pack %s has a damaged trailer", name);
        _cleanup_free_ uint8_t *tail = xmalloc(tlen + PACK_FOOTER_SIZE);
        r = read_at(ud, size - PACK_FOOTER_SIZE - tlen, tlen + PACK_FOOTER_SIZE, tail);
        if (r < 0)
                return error_set(r, "cannot read pack %s: %s", name, berth_strerror(r));
        if (sealed)
                r = parse_sealed_trailer(k, tail, tlen + PACK_FOOTER_SIZE, size, ret, ret_n);
        else if (k)
                r = -BERTH_ECORRUPT; /* a plain pack in an encrypted repository */
        else
                r = pack_parse_trailer(tail, tlen + PACK_FOOTER_SIZE, size, ret, ret_n);
        if (r == -EACCES)
                return error_set(EACCES, "pack %s is encrypted: its trailer needs the repository's key", name);
        if (r < 0)
                return error_set(r, "pack %s has a damaged trailer", name);
        if (ret_name)
                hash_sha256(tail, tlen + PACK_FOOTER_SIZE, ret_name);
        return 0;
}

struct backend_reader {
        struct backend *be;
        const char *name;
};

static int read_backend(void *ud, uint64_t off, size_t len, void *buf)
{
        struct backend_reader *b = ud;
        return backend_get_range(b->be, b->name, off, len, buf);
}

int pack_read_trailer(const struct repo_keys *k, struct backend *be, const char *name, uint64_t size,
                      struct pack_entry **ret, size_t *ret_n, uint8_t ret_name[HASH_LEN])
{
        struct backend_reader b = { be, name };
        return read_trailer(k, read_backend, &b, name, size, ret, ret_n, ret_name);
}

static int read_fd(void *ud, uint64_t off, size_t len, void *buf)
{
        return pread_all(*(int *)ud, buf, len, (off_t)off);
}

int pack_read_trailer_fd(const struct repo_keys *k, int fd, const char *name, uint64_t size, struct pack_entry **ret,
                         size_t *ret_n, uint8_t ret_name[HASH_LEN])
{
        return read_trailer(k, read_fd, &fd, name, size, ret, ret_n, ret_name);
}

int pack_record_open(const struct repo_keys *k, struct pack_entry *e, const uint8_t *sealed, struct buf *out)
{
        /* The one place a record is opened. */
        if (crypto_open(k, CRYPTO_KIND_RECORD, sealed, e->stored_len, out) < 0)
                return -BERTH_ECORRUPT;
        e->stored_len = (uint32_t)out->len;
        return 0;
}

int record_encode(void *cctx, void *dctx, const uint8_t *plain, size_t len, struct buf *stored, struct buf *check)
{
        size_t bound = ZSTD_compressBound(len);
        buf_reset(stored);
        buf_reserve(stored, bound);
        size_t k = ZSTD_compress2(cctx, stored->data, bound, plain, len);
        if (ZSTD_isError(k))
                return error_set(EIO, "zstd compression failed: %s", ZSTD_getErrorName(k));
        if (k >= len) {
                /* Incompressible: store it as it is. */
                buf_reset(stored);
                buf_append(stored, plain, len);
                return 0;
        }
        stored->len = k;
        /* A chunk counts as stored only once its compressed form is known to
         * give the same bytes back.  Comparing with the bytes we hashed is
         * the same check as re-hashing, at a fraction of the cost. */
        buf_reset(check);
        buf_reserve(check, len ? len : 1);
        size_t back = ZSTD_decompressDCtx(dctx, check->data, len, stored->data, k);
        if (ZSTD_isError(back) || back != len || memcmp(check->data, plain, len) != 0)
                return error_set(EIO, "a compressed record did not decompress to its own bytes; refusing to store it");
        return PACK_F_ZSTD;
}

int record_read(struct backend *be, const char *path, const struct pack_entry *e, struct buf *out)
{
        buf_reset(out);
        buf_reserve(out, e->stored_len ? e->stored_len : 1);
        int r = backend_get_range(be, path, e->offset, e->stored_len, out->data);
        if (r < 0)
                return r;
        out->len = e->stored_len;
        return 0;
}

/* The plain length of a record: 0 and *ret, or -BERTH_ECORRUPT. */
static int record_plain_len(const struct pack_entry *e, const uint8_t *stored, size_t *ret)
{
        if (!(e->flags & PACK_F_ZSTD)) {
                *ret = e->stored_len;
                return 0;
        }
        unsigned long long k = ZSTD_getFrameContentSize(stored, e->stored_len);
        if (k == ZSTD_CONTENTSIZE_ERROR || k == ZSTD_CONTENTSIZE_UNKNOWN || k > PACK_MAX_CHUNK)
                return -BERTH_ECORRUPT;
        *ret = (size_t)k;
        return 0;
}

/* Decompresses (when needed) a record's stored form, unsealed. */
static int record_unpack(const struct pack_entry *e, const uint8_t *stored, struct buf *plain, void *dctx)
{
        size_t len;
        if (record_plain_len(e, stored, &len) < 0)
                return -BERTH_ECORRUPT;
        buf_reset(plain);
        buf_reserve(plain, len ? len : 1);
        if (e->flags & PACK_F_ZSTD) {
                size_t k = ZSTD_decompressDCtx(dctx, plain->data, len, stored, e->stored_len);
                if (ZSTD_isError(k) || k != len)
                        return -BERTH_ECORRUPT;
        } else
                memcpy(plain->data, stored, len);
        plain->len = len;
        return 0;
}

int record_decode(const struct repo_keys *k, const struct pack_entry *e, const uint8_t *stored, struct buf *plain,
                  void *dctx)
{
        if (!k)
                return record_unpack(e, stored, plain, dctx);
        /* Sealed: opened first (the one place a record is opened), then
         * decompressed. */
        struct pack_entry pe = *e;
        struct buf opened = { 0 };
        int r = pack_record_open(k, &pe, stored, &opened);
        if (r == 0)
                r = record_unpack(&pe, opened.data ? opened.data : (uint8_t *)"", plain, dctx);
        buf_free(&opened);
        return r;
}

int record_chunk_check(const struct repo_keys *k, const struct pack_entry *e, const uint8_t *plain,
                       size_t plain_len)
{
        if ((uint64_t)e->inner + e->raw_len > plain_len)
                return -BERTH_ECORRUPT;
        /* A chunk its trailer says is alone is all of its record. */
        if ((e->flags & PACK_F_ALONE) && (e->inner != 0 || e->raw_len != plain_len))
                return -BERTH_ECORRUPT;
        uint8_t digest[HASH_LEN];
        chunk_id(k, plain + e->inner, e->raw_len, digest);
        return memcmp(digest, e->id, HASH_LEN) == 0 ? 0 : -BERTH_ECORRUPT;
}

bool record_is_alone(const struct pack_entry *e, const uint8_t *stored)
{
        if (e->flags & PACK_F_ALONE)
                return true;
        /* Catalog rows made before the flag: the frame header says, when
         * the stored bytes are not sealed. */
        size_t len;
        return stored && e->inner == 0 && record_plain_len(e, stored, &len) == 0 && len == e->raw_len;
}

int chunk_decode(const struct repo_keys *k, const struct pack_entry *e, const uint8_t *stored, struct buf *out,
                 void *dctx)
{
        int r = record_unpack(e, stored, out, dctx);
        if (r < 0)
                return r;
        r = record_chunk_check(k, e, out->data, out->len);
        if (r < 0)
                return r;
        if (e->inner)
                memmove(out->data, out->data + e->inner, e->raw_len);
        out->len = e->raw_len;
        return 0;
}

int record_cache_chunk(struct record_cache *rc, const struct repo_keys *k, struct backend *be, const char *path,
                       const struct pack_entry *e, const uint8_t **ret)
{
        if (!rc->valid || rc->offset != e->offset || rc->stored_len != e->stored_len || strcmp(rc->path, path) != 0) {
                rc->valid = false;
                if (!rc->dctx && !(rc->dctx = ZSTD_createDCtx()))
                        return error_set(ENOMEM, "cannot allocate a zstd context");
                rc->err = record_read(be, path, e, &rc->stored);
                if (rc->err == 0)
                        rc->err = record_decode(k, e, rc->stored.data, &rc->plain, rc->dctx);
                snprintf(rc->path, sizeof rc->path, "%s", path);
                rc->offset = e->offset;
                rc->stored_len = e->stored_len;
                rc->valid = true;
        }
        if (rc->err < 0)
                return rc->err;
        int r = record_chunk_check(k, e, rc->plain.data, rc->plain.len);
        if (r < 0)
                return r;
        *ret = rc->plain.data + e->inner;
        return 0;
}

void record_cache_free(struct record_cache *rc)
{
        buf_free(&rc->stored);
        buf_free(&rc->plain);
        ZSTD_freeDCtx(rc->dctx);
        *rc = (struct record_cache){ 0 };
}
