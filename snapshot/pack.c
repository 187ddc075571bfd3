/* pack.c — writing and reading pack files.
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

int pack_writer_add(struct pack_writer *w, const struct pack_entry *e, const void *stored)
{
        if (w->n == w->cap) {
                w->cap = w->cap ? w->cap * 2 : 256;
                w->entries = xrealloc(w->entries, w->cap * sizeof *w->entries);
        }
        struct pack_entry *d = &w->entries[w->n++];
        *d = *e;
        d->offset = (uint32_t)w->size;
        if (w->keys) {
                /* The one place a record is sealed: after compression; the
                 * trailer lists its sealed length. */
                int r = crypto_seal(w->keys, CRYPTO_KIND_RECORD, stored, e->stored_len, &w->sealed);
                if (r < 0) {
                        w->n--;
                        return r;
                }
                stored = w->sealed.data;
                d->stored_len = (uint32_t)w->sealed.len;
        }
        buf_append(&w->out, stored, d->stored_len);
        w->size += d->stored_len;
        if (w->out.len >= WRITE_BUFFER)
                return writer_flush(w);
        return 0;
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
                le32_write(rec + 40, e->raw_len);
                rec[44] = e->flags;
                buf_append(out, rec, sizeof rec);
        }
}

/* The trailer and footer.  Sealed (keys): the entries as one sealed unit,
 * and a footer with count 0, the sealed length and the magic
 * PACK_FOOTER_MAGIC_SEALED, so the pack's shape and name can be checked
 * without the key. */
static int encode_trailer(const struct repo_keys *keys, const struct pack_entry *entries, size_t n, struct buf *out)
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
        encode_entries(entries, n, out);
        uint8_t digest[HASH_LEN];
        hash_sha256(out->data + start, out->len - start, digest);
        buf_put_le32(out, (uint32_t)n);
        buf_put_le32(out, (uint32_t)(n * PACK_ENTRY_SIZE));
        buf_append(out, digest, 8);
        buf_append(out, PACK_FOOTER_MAGIC, 8);
        return 0;
}

int pack_writer_finish(struct pack_writer *w, struct backend *be, uint8_t ret_hash[HASH_LEN], uint64_t *ret_size,
                       struct pack_entry **ret_entries, size_t *ret_n)
{
        char path[128];
        uint8_t hash[HASH_LEN];
        int r;

        size_t tstart = w->out.len;
        r = encode_trailer(w->keys, w->entries, w->n, &w->out);
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

/* Entries of a trailer; in a sealed pack each record's stored length is its
 * sealed length. */
static int parse_entries(const uint8_t *recs, size_t tlen, uint64_t data_end, bool sealed, struct pack_entry **ret,
                         size_t *ret_n)
{
        if (tlen % PACK_ENTRY_SIZE)
                return -BERTH_ECORRUPT;
        size_t count = tlen / PACK_ENTRY_SIZE;
        uint32_t over = sealed ? CRYPTO_OVERHEAD : 0;
        struct pack_entry *entries = xcalloc(count ? count : 1, sizeof *entries);
        for (size_t i = 0; i < count; i++) {
                const uint8_t *rec = recs + i * PACK_ENTRY_SIZE;
                struct pack_entry *e = &entries[i];
                memcpy(e->id, rec, HASH_LEN);
                e->offset = le32_read(rec + 32);
                e->stored_len = le32_read(rec + 36);
                e->raw_len = le32_read(rec + 40);
                e->flags = rec[44];
                if (e->offset < PACK_HEADER_SIZE || (uint64_t)e->offset + e->stored_len > data_end ||
                    e->raw_len > PACK_MAX_CHUNK || e->stored_len > PACK_MAX_CHUNK + over ||
                    e->stored_len < over ||
                    (!(e->flags & PACK_F_ZSTD) && e->stored_len != e->raw_len + over) ||
                    (e->flags & ~(PACK_F_ZSTD | PACK_F_TREE))) {
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
static int check_footer(const uint8_t *tail, size_t n, uint64_t size, bool sealed, uint32_t *ret_tlen)
{
        if (n < PACK_FOOTER_SIZE || size < PACK_HEADER_SIZE + PACK_FOOTER_SIZE)
                return -BERTH_ECORRUPT;
        const uint8_t *foot = tail + n - PACK_FOOTER_SIZE;
        if (memcmp(foot + 16, sealed ? PACK_FOOTER_MAGIC_SEALED : PACK_FOOTER_MAGIC, 8) != 0)
                return -BERTH_ECORRUPT;
        uint32_t count = le32_read(foot);
        uint32_t tlen = le32_read(foot + 4);
        bool counted = sealed ? count == 0 && tlen >= CRYPTO_OVERHEAD : (uint64_t)count * PACK_ENTRY_SIZE == tlen;
        if (!counted || tlen > n - PACK_FOOTER_SIZE || (uint64_t)tlen + PACK_HEADER_SIZE + PACK_FOOTER_SIZE > size)
                return -BERTH_ECORRUPT;
        uint8_t digest[HASH_LEN];
        hash_sha256(foot - tlen, tlen, digest);
        if (memcmp(digest, foot + 8, 8) != 0)
                return -BERTH_ECORRUPT;
        *ret_tlen = tlen;
        return 0;
}

/* A sealed trailer+footer: shape and digest without the key; with it (k),
 * the entries (ret NULL: the shape only). */
static int parse_sealed_trailer(const struct repo_keys *k, const uint8_t *tail, size_t n, uint64_t size,
                                struct pack_entry **ret, size_t *ret_n)
{
        uint32_t tlen;
        int r = check_footer(tail, n, size, true, &tlen);
        if (r < 0 || !ret)
                return r;
        if (!k)
                return -EACCES;
        struct buf plain = { 0 };
        r = crypto_open(k, CRYPTO_KIND_TRAILER, tail + n - PACK_FOOTER_SIZE - tlen, tlen, &plain);
        if (r == 0)
                r = parse_entries(plain.data, plain.len, size - PACK_FOOTER_SIZE - tlen, true, ret, ret_n);
        buf_free(&plain);
        return r;
}

int pack_parse_trailer(const uint8_t *tail, size_t n, uint64_t size, struct pack_entry **ret, size_t *ret_n)
{
        uint32_t tlen;
        int r = check_footer(tail, n, size, false, &tlen);
        if (r < 0)
                return r;
        return parse_entries(tail + n - PACK_FOOTER_SIZE - tlen, tlen, size - PACK_FOOTER_SIZE - tlen, false, ret,
                             ret_n);
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
        if ((!sealed && memcmp(foot + 16, PACK_FOOTER_MAGIC, 8) != 0) ||
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

int record_decode(const struct repo_keys *k, const struct pack_entry *e, struct buf *stored, struct buf *out,
                  void *dctx)
{
        if (!k)
                return chunk_decode(NULL, e, stored->data, out, dctx);
        struct pack_entry pe = *e;
        int r = pack_record_open(k, &pe, stored->data, out);
        if (r < 0)
                return r;
        struct buf t = *stored;
        *stored = *out;
        *out = t;
        return chunk_decode(k, &pe, stored->data, out, dctx);
}

int chunk_decode(const struct repo_keys *k, const struct pack_entry *e, const uint8_t *stored, struct buf *out,
                 void *dctx)
{
        buf_reset(out);
        buf_reserve(out, e->raw_len ? e->raw_len : 1);
        if (e->flags & PACK_F_ZSTD) {
                size_t got = ZSTD_decompressDCtx(dctx, out->data, e->raw_len, stored, e->stored_len);
                if (ZSTD_isError(got) || got != e->raw_len)
                        return -BERTH_ECORRUPT;
        } else {
                if (e->stored_len != e->raw_len)
                        return -BERTH_ECORRUPT;
                memcpy(out->data, stored, e->raw_len);
        }
        out->len = e->raw_len;
        uint8_t digest[HASH_LEN];
        chunk_id(k, out->data, out->len, digest);
        if (memcmp(digest, e->id, HASH_LEN) != 0)
                return -BERTH_ECORRUPT;
        return 0;
}
