/* test-crypto.c — sealing and opening, tampering, kinds and repository
 * ids bound in, keyed ids, and key objects (scrypt wrap/unwrap). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "../../snapshot/internal.h"

static const uint8_t master[CRYPTO_KEY_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };

static struct repo_keys *keys(const char *id, const char *cipher)
{
        struct repo_keys *k = NULL;
        assert_int_equal(crypto_keys_new(id, cipher, master, &k), 0);
        return k;
}

static void round_trip(const char *cipher)
{
        struct repo_keys *k = keys("00112233aabbccdd", cipher);
        static const char msg[] = "plain bytes of a record";
        struct buf s = { 0 }, p = { 0 };
        assert_int_equal(crypto_seal(k, CRYPTO_KIND_RECORD, msg, sizeof msg, &s), 0);
        assert_int_equal(s.len, sizeof msg + CRYPTO_OVERHEAD);
        assert_null(memmem(s.data, s.len, "plain", 5));
        assert_int_equal(crypto_open(k, CRYPTO_KIND_RECORD, s.data, s.len, &p), 0);
        assert_int_equal(p.len, sizeof msg);
        assert_memory_equal(p.data, msg, sizeof msg);
        /* every bit flipped is refused */
        for (size_t i = 0; i < s.len; i++) {
                s.data[i] ^= 0x04;
                assert_int_equal(crypto_open(k, CRYPTO_KIND_RECORD, s.data, s.len, &p), -BERTH_ECORRUPT);
                s.data[i] ^= 0x04;
        }
        /* truncated */
        assert_int_equal(crypto_open(k, CRYPTO_KIND_RECORD, s.data, s.len - 1, &p), -BERTH_ECORRUPT);
        assert_int_equal(crypto_open(k, CRYPTO_KIND_RECORD, s.data, 5, &p), -BERTH_ECORRUPT);
        /* empty plaintext */
        assert_int_equal(crypto_seal(k, CRYPTO_KIND_TRAILER, "", 0, &s), 0);
        assert_int_equal(crypto_open(k, CRYPTO_KIND_TRAILER, s.data, s.len, &p), 0);
        assert_int_equal(p.len, 0);
        buf_free(&s);
        buf_free(&p);
        crypto_keys_free(k);
}

static void test_round_trip_gcm(void **state) { round_trip("aes-256-gcm"); }
static void test_round_trip_chacha(void **state) { round_trip("chacha20-poly1305"); }

static void test_kind_and_repo_bound(void **state)
{
        struct repo_keys *a = keys("00112233aabbccdd", "aes-256-gcm");
        struct repo_keys *b = keys("ffeeddccbbaa9988", "aes-256-gcm"); /* same master, other repository */
        struct buf s = { 0 }, p = { 0 };
        assert_int_equal(crypto_seal(a, CRYPTO_KIND_SNAPSHOT, "x", 1, &s), 0);
        assert_int_equal(crypto_open(a, CRYPTO_KIND_RECORD, s.data, s.len, &p), -BERTH_ECORRUPT);
        assert_int_equal(crypto_open(b, CRYPTO_KIND_SNAPSHOT, s.data, s.len, &p), -BERTH_ECORRUPT);
        assert_int_equal(crypto_open(a, CRYPTO_KIND_SNAPSHOT, s.data, s.len, &p), 0);
        /* two seals of the same bytes differ (random nonce) */
        struct buf t = { 0 };
        assert_int_equal(crypto_seal(a, CRYPTO_KIND_SNAPSHOT, "x", 1, &t), 0);
        assert_memory_not_equal(s.data, t.data, s.len);
        buf_free(&s);
        buf_free(&t);
        buf_free(&p);
        crypto_keys_free(a);
        crypto_keys_free(b);
}

static void test_keyed_ids(void **state)
{
        struct repo_keys *k = keys("00112233aabbccdd", "aes-256-gcm");
        uint8_t plain[HASH_LEN], keyed[HASH_LEN], again[HASH_LEN];
        chunk_id(NULL, "abc", 3, plain);
        chunk_id(k, "abc", 3, keyed);
        chunk_id(k, "abc", 3, again);
        assert_memory_not_equal(plain, keyed, HASH_LEN);
        assert_memory_equal(keyed, again, HASH_LEN);
        uint64_t g1[256], g2[256];
        assert_int_equal(crypto_gear(k, g1), 0);
        assert_int_equal(crypto_gear(k, g2), 0);
        assert_memory_equal(g1, g2, sizeof g1);
        crypto_keys_free(k);
}

static void test_key_wrap(void **state)
{
        struct crypto_kdf p = { .n = 1u << 12, .r = 8, .p = 1 };
        char *text = NULL;
        uint8_t got[CRYPTO_KEY_LEN];
        assert_int_equal(crypto_key_wrap(master, "00112233aabbccdd", "aes-256-gcm", "pw", &p, &text), 0);
        assert_int_equal(crypto_key_unwrap(text, "00112233aabbccdd", "aes-256-gcm", "pw", got, NULL), 0);
        assert_memory_equal(got, master, CRYPTO_KEY_LEN);
        assert_int_equal(crypto_key_unwrap(text, "00112233aabbccdd", "aes-256-gcm", "other", got, NULL), -EACCES);
        assert_int_equal(crypto_key_unwrap(text, "ffeeddccbbaa9988", "aes-256-gcm", "pw", got, NULL), -EACCES);
        assert_int_equal(crypto_key_unwrap(text, "00112233aabbccdd", "aes-256-gcm", NULL, NULL, NULL), 0);
        assert_int_equal(crypto_key_unwrap("{}", "00112233aabbccdd", "aes-256-gcm", "pw", got, NULL),
                         -BERTH_ECORRUPT);
        assert_int_equal(crypto_key_unwrap("not json", "00112233aabbccdd", "aes-256-gcm", "pw", got, NULL),
                         -BERTH_ECORRUPT);
        /* a KDF cost out of bounds is refused before it runs */
        char *big = strdup(text);
        char *n = strstr(big, "\"n\":");
        assert_non_null(n);
        memcpy(n, "\"x\":", 4);
        assert_int_equal(crypto_key_unwrap(big, "00112233aabbccdd", "aes-256-gcm", "pw", got, NULL), -BERTH_ECORRUPT);
        free(big);
        /* a hostile key object asking for gigabytes is refused before scrypt runs */
        json_object *o = json_tokener_parse(text);
        json_object_object_add(o, "n", json_object_new_int64(1 << 20));
        json_object_object_add(o, "r", json_object_new_int(32));
        assert_int_equal(crypto_key_unwrap(json_object_to_json_string(o), "00112233aabbccdd", "aes-256-gcm", "pw", got,
                                           NULL),
                         -BERTH_ECORRUPT);
        json_object_put(o);
        free(text);
}

/* A sealed pack: keyless shape-and-name check (serve), the trailer opens
 * with the key only, every record decodes, a flipped byte is refused. */
static void test_sealed_pack(void **state)
{
        char dir[64] = "/tmp/berth-crypto.XXXXXX";
        assert_non_null(mkdtemp(dir));
        int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
        mkdirat(dirfd, "packs", 0755);
        mkdirat(dirfd, "tmp", 0755);
        int tmpfd = openat(dirfd, "tmp", O_RDONLY | O_DIRECTORY);
        struct backend *be;
        assert_int_equal(backend_local_open(dir, true, &be), 0);
        struct repo_keys *k = keys("00112233aabbccdd", "aes-256-gcm");

        struct pack_writer *w;
        assert_int_equal(pack_writer_new(tmpfd, k, &w), 0);
        uint8_t data[3][1000];
        for (int i = 0; i < 3; i++) {
                memset(data[i], 'a' + i, sizeof data[i]);
                struct pack_entry e = { .stored_len = sizeof data[i], .raw_len = sizeof data[i] };
                chunk_id(k, data[i], sizeof data[i], e.id);
                assert_int_equal(pack_writer_add(w, &e, data[i]), 0);
        }
        /* a record of two chunks: sealed once, as one unit */
        uint8_t two[2000];
        memcpy(two, data[2], 1000);
        memcpy(two + 1000, data[0], 1000);
        two[1000] = 'z';
        struct pack_entry re[2] = { { .inner = 0, .raw_len = 1000 }, { .inner = 1000, .raw_len = 1000 } };
        chunk_id(k, two, 1000, re[0].id);
        chunk_id(k, two + 1000, 1000, re[1].id);
        assert_int_equal(pack_writer_add_record(w, re, 2, two, sizeof two), 0);
        assert_int_equal(re[0].stored_len, sizeof two + CRYPTO_OVERHEAD);
        uint8_t hash[HASH_LEN];
        uint64_t size;
        struct pack_entry *out;
        size_t n;
        assert_int_equal(pack_writer_finish(w, be, hash, &size, &out, &n), 0);
        free(out);
        char path[128];
        pack_path(hash, path, sizeof path);
        int fd = openat(dirfd, path, O_RDWR);
        assert_true(fd >= 0);

        assert_int_equal(snapshot_verify_pack(fd, size, path), 0);
        struct pack_entry *e;
        assert_int_equal(pack_read_trailer(NULL, be, path, size, &e, &n, NULL), -EACCES);
        error_clear();
        assert_int_equal(pack_read_trailer(k, be, path, size, &e, &n, NULL), 0);
        assert_int_equal(n, 5);
        ZSTD_DCtx *dctx = ZSTD_createDCtx();
        struct buf st = { 0 }, plain = { 0 };
        for (size_t i = 3; i < 5; i++) {
                assert_int_equal(e[i].stored_len, sizeof two + CRYPTO_OVERHEAD);
                assert_int_equal(e[i].offset, e[3].offset);
                assert_false(e[i].flags & PACK_F_ALONE);
                assert_false(record_is_alone(&e[i], NULL));
                buf_reset(&st);
                buf_reserve(&st, e[i].stored_len);
                assert_int_equal(pread_all(fd, st.data, e[i].stored_len, e[i].offset), 0);
                assert_null(memmem(st.data, e[i].stored_len, data[2], 16));
                assert_int_equal(record_decode(k, &e[i], st.data, &plain, dctx), 0);
                assert_int_equal(record_chunk_check(k, &e[i], plain.data, plain.len), 0);
                assert_memory_equal(plain.data, two, sizeof two);
        }
        for (size_t i = 0; i < 3; i++) {
                assert_true(record_is_alone(&e[i], NULL));
                assert_int_equal(e[i].stored_len, sizeof data[i] + CRYPTO_OVERHEAD);
                buf_reset(&st);
                buf_reserve(&st, e[i].stored_len);
                assert_int_equal(pread_all(fd, st.data, e[i].stored_len, e[i].offset), 0);
                assert_null(memmem(st.data, e[i].stored_len, data[i], 16));
                assert_int_equal(record_decode(k, &e[i], st.data, &plain, dctx), 0);
                assert_memory_equal(plain.data, data[i], sizeof data[i]);
        }
        /* a flipped byte in a record: refused */
        buf_reset(&st);
        buf_reserve(&st, e[1].stored_len);
        assert_int_equal(pread_all(fd, st.data, e[1].stored_len, e[1].offset), 0);
        st.data[20] ^= 1;
        assert_int_equal(record_decode(k, &e[1], st.data, &plain, dctx), -BERTH_ECORRUPT);
        /* a flipped byte in the sealed trailer: the name check fails */
        uint8_t c;
        assert_int_equal(pread_all(fd, &c, 1, (off_t)size - PACK_FOOTER_SIZE - 5), 0);
        c ^= 1;
        assert_int_equal(pwrite(fd, &c, 1, (off_t)size - PACK_FOOTER_SIZE - 5), 1);
        assert_int_equal(snapshot_verify_pack(fd, size, path), -BERTH_ECORRUPT);
        error_clear();
        free(e);
        buf_free(&st);
        buf_free(&plain);
        ZSTD_freeDCtx(dctx);
        close(fd);
        crypto_keys_free(k);
        backend_free(be);
        close(tmpfd);
        close(dirfd);
        rm_rf_at(AT_FDCWD, dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip_gcm),
                cmocka_unit_test(test_round_trip_chacha),
                cmocka_unit_test(test_kind_and_repo_bound),
                cmocka_unit_test(test_keyed_ids),
                cmocka_unit_test(test_key_wrap),
                cmocka_unit_test(test_sealed_pack),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
