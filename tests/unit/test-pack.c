/* test-pack.c — pack round trip, damaged trailers and chunks, aborts; format-2
 * records (read through the record cache, strict trailer parsing) and format-1
 * trailers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

#include "../../snapshot/internal.h"

#define NCHUNKS 20

struct fixture {
        char dir[64];
        int dirfd, tmpfd;
        struct backend *be;
        uint8_t *plain[NCHUNKS];
        size_t plain_len[NCHUNKS];
        struct pack_entry in[NCHUNKS];
        uint8_t hash[HASH_LEN];
        uint64_t size;
        struct pack_entry *out;
        size_t nout;
};

static int setup(void **state)
{
        struct fixture *f = xcalloc(1, sizeof *f);
        snprintf(f->dir, sizeof f->dir, "/tmp/berth-pack.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY);
        mkdirat(f->dirfd, "packs", 0755);
        mkdirat(f->dirfd, "tmp", 0755);
        f->tmpfd = openat(f->dirfd, "tmp", O_RDONLY | O_DIRECTORY);
        assert_int_equal(backend_local_open(f->dir, true, &f->be), 0);

        struct pack_writer *w;
        assert_int_equal(pack_writer_new(f->tmpfd, NULL, &w), 0);
        for (size_t i = 0; i < NCHUNKS; i++) {
                size_t n = 1000 + i * 777;
                uint8_t *p = xmalloc(n);
                for (size_t j = 0; j < n; j++)
                        p[j] = i % 2 ? (uint8_t)(j % 7) : (uint8_t)((j * 2654435761u) >> 13); /* odd: compressible */
                f->plain[i] = p;
                f->plain_len[i] = n;
                struct pack_entry *e = &f->in[i];
                hash_sha256(p, n, e->id);
                e->raw_len = (uint32_t)n;
                uint8_t *stored = p;
                uint8_t zbuf[64 << 10];
                if (i % 2) {
                        size_t k = ZSTD_compress(zbuf, sizeof zbuf, p, n, 3);
                        assert_false(ZSTD_isError(k));
                        stored = zbuf;
                        e->stored_len = (uint32_t)k;
                        e->flags = PACK_F_ZSTD;
                } else
                        e->stored_len = (uint32_t)n;
                assert_int_equal(pack_writer_add(w, e, stored), 0);
        }
        assert_int_equal(pack_writer_finish(w, f->be, f->hash, &f->size, &f->out, &f->nout), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        for (size_t i = 0; i < NCHUNKS; i++)
                free(f->plain[i]);
        free(f->out);
        backend_free(f->be);
        close(f->tmpfd);
        close(f->dirfd);
        rm_rf_at(AT_FDCWD, f->dir);
        free(f);
        return 0;
}

static int open_pack(struct fixture *f, int flags)
{
        char path[128];
        pack_path(f->hash, path, sizeof path);
        return openat(f->dirfd, path, flags);
}

static int open_pack_hash(struct fixture *f, const uint8_t hash[HASH_LEN], int flags)
{
        char path[128];
        pack_path(hash, path, sizeof path);
        return openat(f->dirfd, path, flags);
}

static void test_round_trip(void **state)
{
        struct fixture *f = *state;
        int fd = open_pack(f, O_RDONLY);
        assert_true(fd >= 0);
        struct stat st;
        fstat(fd, &st);
        assert_int_equal((uint64_t)st.st_size, f->size);

        struct pack_entry *e;
        size_t n;
        uint8_t name[HASH_LEN];
        char path[128];
        pack_path(f->hash, path, sizeof path);
        assert_int_equal(pack_read_trailer(NULL, f->be, path, f->size, &e, &n, name), 0);
        assert_memory_equal(name, f->hash, HASH_LEN); /* named by its trailer */
        assert_int_equal(n, NCHUNKS);
        ZSTD_DCtx *dctx = ZSTD_createDCtx();
        struct buf stored = { 0 }, out = { 0 };
        for (size_t i = 0; i < n; i++) {
                assert_memory_equal(e[i].id, f->in[i].id, HASH_LEN);
                assert_int_equal(e[i].offset, f->out[i].offset);
                assert_int_equal(e[i].stored_len, f->in[i].stored_len);
                assert_int_equal(e[i].raw_len, f->in[i].raw_len);
                assert_int_equal(e[i].flags, f->in[i].flags | PACK_F_ALONE); /* single-chunk records say so */
                buf_reset(&stored);
                buf_reserve(&stored, e[i].stored_len);
                assert_int_equal(pread_all(fd, stored.data, e[i].stored_len, e[i].offset), 0);
                assert_int_equal(chunk_decode(NULL, &e[i], stored.data, &out, dctx), 0);
                assert_int_equal(out.len, f->plain_len[i]);
                assert_memory_equal(out.data, f->plain[i], out.len);
        }
        /* a damaged stored chunk is caught by its id */
        stored.data[0] ^= 0x40;
        assert_int_equal(chunk_decode(NULL, &e[n - 2], stored.data, &out, dctx), -BERTH_ECORRUPT);
        ZSTD_freeDCtx(dctx);
        buf_free(&stored);
        buf_free(&out);
        free(e);
        close(fd);
}

static void test_damaged_trailer(void **state)
{
        struct fixture *f = *state;
        int fd = open_pack(f, O_RDWR);
        uint8_t b;
        off_t off = (off_t)(f->size - PACK_FOOTER_SIZE - 10);
        assert_int_equal(pread(fd, &b, 1, off), 1);
        b ^= 1;
        assert_int_equal(pwrite(fd, &b, 1, off), 1);
        struct pack_entry *e = NULL;
        size_t n;
        char path[128];
        pack_path(f->hash, path, sizeof path);
        assert_int_equal(pack_read_trailer(NULL, f->be, path, f->size, &e, &n, NULL), -BERTH_ECORRUPT);
        /* truncated */
        assert_int_equal(pack_read_trailer(NULL, f->be, path, 10, &e, &n, NULL), -BERTH_ECORRUPT);
        close(fd);
}

static void test_parse_rejects_impossible(void **state)
{
        struct fixture *f = *state;
        int fd = open_pack(f, O_RDONLY);
        size_t tlen = NCHUNKS * PACK_ENTRY_SIZE + PACK_FOOTER_SIZE;
        uint8_t *tail = xmalloc(tlen);
        pread_all(fd, tail, tlen, (off_t)(f->size - tlen));
        close(fd);
        struct pack_entry *e;
        size_t n;
        assert_int_equal(pack_parse_trailer(tail, tlen, f->size, &e, &n), 0);
        free(e);
        /* a count that disagrees with the trailer length */
        uint8_t *copy = xmalloc(tlen);
        memcpy(copy, tail, tlen);
        le32_write(copy + tlen - PACK_FOOTER_SIZE, NCHUNKS + 1);
        assert_int_equal(pack_parse_trailer(copy, tlen, f->size, &e, &n), -BERTH_ECORRUPT);
        /* an offset past the data area, with a valid trailer digest */
        memcpy(copy, tail, tlen);
        le32_write(copy + 32, (uint32_t)f->size);
        uint8_t d[HASH_LEN];
        hash_sha256(copy, NCHUNKS * PACK_ENTRY_SIZE, d);
        memcpy(copy + tlen - 16, d, 8);
        assert_int_equal(pack_parse_trailer(copy, tlen, f->size, &e, &n), -BERTH_ECORRUPT);
        free(copy);
        free(tail);
}

static void test_abort_leaves_nothing(void **state)
{
        struct fixture *f = *state;
        struct pack_writer *w;
        assert_int_equal(pack_writer_new(f->tmpfd, NULL, &w), 0);
        assert_int_equal(pack_writer_add(w, &f->in[0], f->plain[0]), 0);
        pack_writer_abort(w);
        DIR *d = fdopendir(dup(f->tmpfd));
        struct dirent *de;
        int files = 0;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        files++;
        closedir(d);
        assert_int_equal(files, 0);
}

/* A finished pack leaves nothing in the spool, and finishing the same
 * pack again (same name, same bytes) succeeds without a second copy. */
static void test_finish_leaves_spool_empty(void **state)
{
        struct fixture *f = *state;
        struct pack_writer *w;
        assert_int_equal(pack_writer_new(f->tmpfd, NULL, &w), 0);
        for (size_t i = 0; i < NCHUNKS; i++) {
                struct pack_entry e = f->in[i];
                const uint8_t *stored = f->plain[i];
                if (e.flags & PACK_F_ZSTD) {
                        e.stored_len = e.raw_len; /* stored plain this time: another pack */
                        e.flags = 0;
                }
                assert_int_equal(pack_writer_add(w, &e, stored), 0);
        }
        uint8_t hash[HASH_LEN];
        uint64_t size;
        struct pack_entry *out;
        size_t nout;
        assert_int_equal(pack_writer_finish(w, f->be, hash, &size, &out, &nout), 0);
        free(out);
        DIR *d = fdopendir(dup(f->tmpfd));
        struct dirent *de;
        int files = 0;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        files++;
        closedir(d);
        assert_int_equal(files, 0);
        char path[128];
        pack_path(hash, path, sizeof path);
        uint64_t have;
        assert_int_equal(backend_stat(f->be, path, &have), 0);
        assert_int_equal(have, size);
}

/* A damaged file under a pack's name (truncated) is replaced by the good
 * pack when the same pack is written again, as a rename over it did. */
static void test_finish_replaces_damaged(void **state)
{
        struct fixture *f = *state;
        char path[128];
        pack_path(f->hash, path, sizeof path);
        int fd = open_pack(f, O_RDWR);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, 100), 0);
        close(fd);
        struct pack_writer *w;
        assert_int_equal(pack_writer_new(f->tmpfd, NULL, &w), 0);
        for (size_t i = 0; i < NCHUNKS; i++) {
                const uint8_t *stored = f->plain[i];
                uint8_t zbuf[64 << 10];
                if (f->in[i].flags & PACK_F_ZSTD) {
                        size_t k = ZSTD_compress(zbuf, sizeof zbuf, f->plain[i], f->plain_len[i], 3);
                        assert_int_equal(k, f->in[i].stored_len);
                        stored = zbuf;
                }
                assert_int_equal(pack_writer_add(w, &f->in[i], stored), 0);
        }
        uint8_t hash[HASH_LEN];
        uint64_t size;
        struct pack_entry *out;
        size_t nout;
        assert_int_equal(pack_writer_finish(w, f->be, hash, &size, &out, &nout), 0);
        free(out);
        assert_memory_equal(hash, f->hash, HASH_LEN);
        uint64_t have;
        assert_int_equal(backend_stat(f->be, path, &have), 0);
        assert_int_equal(have, f->size);
        struct pack_entry *e;
        size_t n;
        assert_int_equal(pack_read_trailer(NULL, f->be, path, have, &e, &n, NULL), 0);
        free(e);
}

/* Format 2: records of several chunks.  Builds a pack of three records
 * (five compressible chunks in one zstd frame, two in a raw record, one
 * alone) and returns its entries. */
static void build_records(struct fixture *f, uint8_t hash[HASH_LEN], uint64_t *size, struct pack_entry **ret,
                          size_t *ret_n)
{
        static const size_t groups[][2] = { { 1, 5 }, { 0, 2 }, { 3, 1 } }; /* first chunk index step, count */
        struct pack_writer *w;
        ZSTD_CCtx *cctx = ZSTD_createCCtx();
        ZSTD_DCtx *dctx = ZSTD_createDCtx();
        struct buf plain = { 0 }, stored = { 0 }, check = { 0 };
        size_t next = 0;
        assert_int_equal(pack_writer_new(f->tmpfd, NULL, &w), 0);
        for (size_t g = 0; g < ELEMENTSOF(groups); g++) {
                struct pack_entry e[8] = { 0 };
                buf_reset(&plain);
                for (size_t k = 0; k < groups[g][1]; k++) {
                        /* odd fixture chunks compress, even ones do not */
                        size_t i = groups[g][0] == 0 ? 2 * (next++ % 10) : 2 * (next++ % 10) + 1;
                        memcpy(e[k].id, f->in[i].id, HASH_LEN);
                        e[k].inner = (uint32_t)plain.len;
                        e[k].raw_len = (uint32_t)f->plain_len[i];
                        buf_append(&plain, f->plain[i], f->plain_len[i]);
                }
                int flags = record_encode(cctx, dctx, plain.data, plain.len, &stored, &check);
                assert_true(flags >= 0);
                if (groups[g][0] == 0) {
                        /* stored raw, as zstd would when it cannot shrink them */
                        buf_reset(&stored);
                        buf_append(&stored, plain.data, plain.len);
                        flags = 0;
                }
                assert_int_equal(flags, groups[g][0] == 0 ? 0 : PACK_F_ZSTD);
                for (size_t k = 0; k < groups[g][1]; k++)
                        e[k].flags = (uint8_t)flags;
                assert_int_equal(pack_writer_add_record(w, e, groups[g][1], stored.data, stored.len), 0);
                assert_int_equal(e[0].stored_len, stored.len);
        }
        assert_int_equal(pack_writer_finish(w, f->be, hash, size, ret, ret_n), 0);
        assert_int_equal(*ret_n, 8);
        ZSTD_freeCCtx(cctx);
        ZSTD_freeDCtx(dctx);
        buf_free(&plain);
        buf_free(&stored);
        buf_free(&check);
}

static const uint8_t *fixture_plain(struct fixture *f, const uint8_t id[HASH_LEN], size_t *len)
{
        for (size_t i = 0; i < NCHUNKS; i++)
                if (memcmp(f->in[i].id, id, HASH_LEN) == 0) {
                        *len = f->plain_len[i];
                        return f->plain[i];
                }
        fail();
        return NULL;
}

static void test_records_read(void **state)
{
        struct fixture *f = *state;
        uint8_t hash[HASH_LEN];
        uint64_t size;
        struct pack_entry *w, *e;
        size_t nw, n;
        build_records(f, hash, &size, &w, &nw);
        char path[128];
        pack_path(hash, path, sizeof path);
        assert_int_equal(pack_read_trailer(NULL, f->be, path, size, &e, &n, NULL), 0);
        assert_int_equal(n, 8);
        /* chunks of one record share its offset and length */
        assert_int_equal(e[0].offset, PACK_HEADER_SIZE);
        for (size_t i = 1; i < 5; i++) {
                assert_int_equal(e[i].offset, e[0].offset);
                assert_int_equal(e[i].stored_len, e[0].stored_len);
                assert_int_equal(e[i].inner, e[i - 1].inner + e[i - 1].raw_len);
        }
        assert_int_equal(e[5].offset, e[0].offset + e[0].stored_len);
        assert_int_equal(e[5].flags, 0);
        assert_int_equal(e[7].inner, 0);
        for (size_t i = 0; i < n; i++) {
                assert_memory_equal(&e[i], &w[i], sizeof e[i]);
        }

        /* through the cache: each chunk verified, the record read once */
        struct record_cache rc = { 0 };
        for (size_t i = 0; i < n; i++) {
                const uint8_t *p;
                size_t len;
                const uint8_t *want = fixture_plain(f, e[i].id, &len);
                assert_int_equal(record_cache_chunk(&rc, NULL, f->be, path, &e[i], &p), 0);
                assert_int_equal(e[i].raw_len, len);
                assert_memory_equal(p, want, len);
        }
        /* chunk_decode of a chunk in the middle of a record */
        ZSTD_DCtx *dctx = ZSTD_createDCtx();
        struct buf stored = { 0 }, out = { 0 };
        assert_int_equal(record_read(f->be, path, &e[2], &stored), 0);
        assert_false(record_is_alone(&e[2], stored.data));
        assert_int_equal(chunk_decode(NULL, &e[2], stored.data, &out, dctx), 0);
        size_t len;
        const uint8_t *want = fixture_plain(f, e[2].id, &len);
        assert_int_equal(out.len, len);
        assert_memory_equal(out.data, want, len);
        /* an entry pointing past its record's plain bytes is damage */
        struct pack_entry bad = e[4];
        bad.inner += 1;
        assert_int_equal(chunk_decode(NULL, &bad, stored.data, &out, dctx), -BERTH_ECORRUPT);
        assert_int_equal(record_read(f->be, path, &e[7], &stored), 0);
        assert_true(record_is_alone(&e[7], stored.data));

        /* a byte flipped inside the first record: its five chunks are
         * damaged, the others read */
        record_cache_free(&rc);
        int fd = open_pack_hash(f, hash, O_RDWR);
        uint8_t b;
        off_t off = (off_t)(e[0].offset + e[0].stored_len / 2);
        assert_int_equal(pread(fd, &b, 1, off), 1);
        b ^= 0x10;
        assert_int_equal(pwrite(fd, &b, 1, off), 1);
        close(fd);
        for (size_t i = 0; i < n; i++) {
                const uint8_t *p;
                assert_int_equal(record_cache_chunk(&rc, NULL, f->be, path, &e[i], &p), i < 5 ? -BERTH_ECORRUPT : 0);
        }
        record_cache_free(&rc);
        ZSTD_freeDCtx(dctx);
        buf_free(&stored);
        buf_free(&out);
        free(w);
        free(e);
}

/* Rewrites entry i's u32 at field offset `at` (or byte) and the trailer's
 * digest; returns what the parser says. */
static int parse_edited(const uint8_t *tail, size_t tlen, uint64_t size, size_t i, size_t at, uint32_t v, bool byte)
{
        _cleanup_free_ uint8_t *copy = xmalloc(tlen);
        memcpy(copy, tail, tlen);
        size_t n = (tlen - PACK_FOOTER_SIZE) / PACK_ENTRY_SIZE;
        if (byte)
                copy[i * PACK_ENTRY_SIZE + at] = (uint8_t)v;
        else
                le32_write(copy + i * PACK_ENTRY_SIZE + at, v);
        uint8_t d[HASH_LEN];
        hash_sha256(copy, n * PACK_ENTRY_SIZE, d);
        memcpy(copy + tlen - 16, d, 8);
        struct pack_entry *e = NULL;
        size_t got;
        int r = pack_parse_trailer(copy, tlen, size, &e, &got);
        free(e);
        return r;
}

static void test_records_parse_strict(void **state)
{
        struct fixture *f = *state;
        uint8_t hash[HASH_LEN];
        uint64_t size;
        struct pack_entry *w;
        size_t n;
        build_records(f, hash, &size, &w, &n);
        size_t tlen = n * PACK_ENTRY_SIZE + PACK_FOOTER_SIZE;
        uint8_t *tail = xmalloc(tlen);
        int fd = open_pack_hash(f, hash, O_RDONLY);
        assert_int_equal(pread_all(fd, tail, tlen, (off_t)(size - tlen)), 0);
        close(fd);
        assert_int_equal(parse_edited(tail, tlen, size, 0, 49, 0, true), 0); /* unchanged: accepted */
        /* a gap or an overlap between chunks of one record */
        assert_int_equal(parse_edited(tail, tlen, size, 2, 40, w[2].inner + 1, false), -BERTH_ECORRUPT);
        assert_int_equal(parse_edited(tail, tlen, size, 2, 40, w[2].inner - 1, false), -BERTH_ECORRUPT);
        /* a record not starting at its first chunk */
        assert_int_equal(parse_edited(tail, tlen, size, 0, 40, 1, false), -BERTH_ECORRUPT);
        /* chunks of one record disagreeing on its length or kind */
        assert_int_equal(parse_edited(tail, tlen, size, 3, 36, w[3].stored_len + 1, false), -BERTH_ECORRUPT);
        assert_int_equal(parse_edited(tail, tlen, size, 3, 48, PACK_F_ZSTD | PACK_F_TREE, true), -BERTH_ECORRUPT);
        /* a record overlapping the previous one */
        assert_int_equal(parse_edited(tail, tlen, size, 5, 32, w[5].offset - 1, false), -BERTH_ECORRUPT);
        /* a record past the data area */
        assert_int_equal(parse_edited(tail, tlen, size, 7, 36, (uint32_t)size, false), -BERTH_ECORRUPT);
        /* a raw record's chunk outside its stored bytes */
        assert_int_equal(parse_edited(tail, tlen, size, 6, 44, w[6].raw_len + w[5].stored_len, false),
                         -BERTH_ECORRUPT);
        /* a chunk past the bound of a record's plain bytes */
        assert_int_equal(parse_edited(tail, tlen, size, 4, 44, PACK_MAX_CHUNK, false), -BERTH_ECORRUPT);
        /* reserved bytes and unknown flags */
        assert_int_equal(parse_edited(tail, tlen, size, 0, 51, 1, true), -BERTH_ECORRUPT);
        assert_int_equal(parse_edited(tail, tlen, size, 7, 48, 0x80, true), -BERTH_ECORRUPT);
        free(tail);
        free(w);
}

/* A format-1 trailer (48-byte entries, "BPKTRL01") is still parsed: every
 * chunk alone in its record. */
static void test_format1_trailer(void **state)
{
        (void)state;
        uint8_t plain[3000];
        for (size_t i = 0; i < sizeof plain; i++)
                plain[i] = (uint8_t)(i % 13);
        uint8_t z[4000];
        size_t k = ZSTD_compress(z, sizeof z, plain, sizeof plain, 3);
        assert_false(ZSTD_isError(k));
        struct buf pack = { 0 };
        buf_append(&pack, PACK_MAGIC_V1, PACK_HEADER_SIZE);
        buf_append(&pack, z, k);
        size_t tstart = pack.len;
        uint8_t rec[PACK_ENTRY_SIZE_V1] = { 0 };
        hash_sha256(plain, sizeof plain, rec);
        le32_write(rec + 32, PACK_HEADER_SIZE);
        le32_write(rec + 36, (uint32_t)k);
        le32_write(rec + 40, sizeof plain);
        rec[44] = PACK_F_ZSTD;
        buf_append(&pack, rec, sizeof rec);
        uint8_t d[HASH_LEN];
        hash_sha256(rec, sizeof rec, d);
        buf_put_le32(&pack, 1);
        buf_put_le32(&pack, PACK_ENTRY_SIZE_V1);
        buf_append(&pack, d, 8);
        buf_append(&pack, PACK_FOOTER_MAGIC_V1, 8);
        assert_true(pack_header_ok(pack.data));
        struct pack_entry *e;
        size_t n;
        assert_int_equal(pack_parse_trailer(pack.data + tstart, pack.len - tstart, pack.len, &e, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(e[0].inner, 0);
        assert_int_equal(e[0].stored_len, k);
        ZSTD_DCtx *dctx = ZSTD_createDCtx();
        struct buf out = { 0 };
        assert_true(record_is_alone(&e[0], pack.data + e[0].offset));
        assert_int_equal(chunk_decode(NULL, &e[0], pack.data + e[0].offset, &out, dctx), 0);
        assert_memory_equal(out.data, plain, sizeof plain);
        /* its footer magic with format-2 entries is refused */
        memcpy(pack.data + pack.len - 8, PACK_FOOTER_MAGIC, 8);
        free(e);
        e = NULL;
        assert_int_equal(pack_parse_trailer(pack.data + tstart, pack.len - tstart, pack.len, &e, &n),
                         -BERTH_ECORRUPT);
        ZSTD_freeDCtx(dctx);
        buf_free(&out);
        buf_free(&pack);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
                cmocka_unit_test_setup_teardown(test_damaged_trailer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_parse_rejects_impossible, setup, teardown),
                cmocka_unit_test_setup_teardown(test_abort_leaves_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_finish_leaves_spool_empty, setup, teardown),
                cmocka_unit_test_setup_teardown(test_finish_replaces_damaged, setup, teardown),
                cmocka_unit_test_setup_teardown(test_records_read, setup, teardown),
                cmocka_unit_test_setup_teardown(test_records_parse_strict, setup, teardown),
                cmocka_unit_test(test_format1_trailer),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
