/* test-copy.c — chunks handed to a store in their stored form
 * (store_put_stored, as copy does): kept byte for byte, verified before
 * they count as stored, read back without decoding (store_read_stored). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <zstd.h>

#include "../../snapshot/internal.h"

struct fixture {
        char dir[64];
        struct repo *r;
        struct store *s;
};

static int setup(void **state)
{
        struct fixture *f = xcalloc(1, sizeof *f);
        snprintf(f->dir, sizeof f->dir, "/tmp/berth-copy.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        char path[128];
        snprintf(path, sizeof path, "%s/repo", f->dir);
        assert_int_equal(repo_init(path, NULL), 0);
        assert_int_equal(repo_open(path, REPO_WRITE, 0, &f->r), 0);
        assert_int_equal(repo_store(f->r, &f->s), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        repo_free(f->r);
        rm_rf_at(AT_FDCWD, f->dir);
        free(f);
        return 0;
}

static void test_stored_forms_kept(void **state)
{
        struct fixture *f = *state;
        uint8_t plain[20000], id[HASH_LEN], raw_id[HASH_LEN], raw[3000];
        for (size_t i = 0; i < sizeof plain; i++)
                plain[i] = (uint8_t)(i % 7);
        for (size_t i = 0; i < sizeof raw; i++)
                raw[i] = (uint8_t)(i * 2654435761u >> 13);
        hash_sha256(plain, sizeof plain, id);
        hash_sha256(raw, sizeof raw, raw_id);
        /* a zstd frame at a level the repository would not use */
        uint8_t frame[ZSTD_COMPRESSBOUND(20000)];
        size_t flen = ZSTD_compress(frame, sizeof frame, plain, sizeof plain, 19);
        assert_false(ZSTD_isError(flen));

        assert_int_equal(store_put_stored(f->s, id, PACK_F_ZSTD, frame, flen, sizeof plain), 1);
        assert_int_equal(store_put_stored(f->s, id, PACK_F_ZSTD, frame, flen, sizeof plain), 0);
        assert_int_equal(store_put_stored(f->s, raw_id, 0, raw, sizeof raw, sizeof raw), 1);
        assert_int_equal(store_flush(f->s), 0);
        assert_int_equal(store_has(f->s, id), 1);

        struct buf b = { 0 };
        struct pack_entry e;
        assert_int_equal(store_read_stored(f->s, id, &b, &e), 0);
        assert_int_equal(e.flags & ~PACK_F_ALONE, PACK_F_ZSTD);
        assert_int_equal(e.stored_len, flen);
        assert_int_equal(e.raw_len, sizeof plain);
        assert_memory_equal(b.data, frame, flen);
        assert_int_equal(store_read(f->s, id, &b), 0);
        assert_int_equal(b.len, sizeof plain);
        assert_memory_equal(b.data, plain, sizeof plain);
        assert_int_equal(store_read_stored(f->s, raw_id, &b, &e), 0);
        assert_int_equal(e.flags & ~PACK_F_ALONE, 0);
        assert_memory_equal(b.data, raw, sizeof raw);
        buf_free(&b);
        /* a put of the ordinary kind dedupes against it */
        uint8_t id2[HASH_LEN];
        assert_int_equal(store_put(f->s, false, plain, sizeof plain, id2), 0);
}

static void test_wrong_bytes_refused(void **state)
{
        struct fixture *f = *state;
        uint8_t plain[5000], id[HASH_LEN];
        memset(plain, 'a', sizeof plain);
        hash_sha256(plain, sizeof plain, id);
        plain[100] ^= 1; /* not the bytes of that id */
        assert_int_equal(store_put_stored(f->s, id, 0, plain, sizeof plain, sizeof plain), 1);
        error_clear();
        assert_int_equal(store_flush(f->s), -BERTH_ECORRUPT);
        assert_non_null(strstr(error_message(), "damaged"));
        assert_int_equal(catalog_chunk_count(f->r->catalog), 0);
        /* raw bytes whose lengths disagree are refused at once */
        assert_int_equal(store_put_stored(f->s, id, 0, plain, sizeof plain, sizeof plain - 1), -BERTH_ECORRUPT);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_stored_forms_kept, setup, teardown),
                cmocka_unit_test_setup_teardown(test_wrong_bytes_refused, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
