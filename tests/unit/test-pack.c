/* test-pack.c — pack round trip, damaged trailers and chunks, aborts. */
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
                assert_int_equal(e[i].flags, f->in[i].flags);
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

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
                cmocka_unit_test_setup_teardown(test_damaged_trailer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_parse_rejects_impossible, setup, teardown),
                cmocka_unit_test_setup_teardown(test_abort_leaves_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_finish_leaves_spool_empty, setup, teardown),
                cmocka_unit_test_setup_teardown(test_finish_replaces_damaged, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
