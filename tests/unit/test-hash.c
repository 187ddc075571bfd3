/* test-hash.c — SHA-256 through EVP, id sets and the prefix filter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "../../snapshot/internal.h"

static void hex_of(const char *s, size_t n, char out[65])
{
        uint8_t d[HASH_LEN];
        hash_sha256(s, n, d);
        hex_encode(d, HASH_LEN, out);
}

static void test_sha256_vectors(void **state)
{
        char h[65];
        hex_of("", 0, h);
        assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        hex_of("abc", 3, h);
        assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_incremental_equals_oneshot(void **state)
{
        char msg[1000];
        for (size_t i = 0; i < sizeof msg; i++)
                msg[i] = (char)(i * 7);
        uint8_t a[HASH_LEN], b[HASH_LEN];
        hash_sha256(msg, sizeof msg, a);
        struct hasher *h = hasher_new();
        hasher_update(h, msg, 1);
        hasher_update(h, msg + 1, 500);
        hasher_update(h, msg + 501, sizeof msg - 501);
        hasher_final(h, b);
        assert_memory_equal(a, b, HASH_LEN);
        /* final resets: the next digest starts over */
        hasher_update(h, msg, sizeof msg);
        hasher_final(h, b);
        assert_memory_equal(a, b, HASH_LEN);
        hasher_free(h);
}

static void make_id(uint64_t i, uint8_t id[HASH_LEN])
{
        hash_sha256(&i, sizeof i, id);
}

static void test_idset(void **state)
{
        struct idset s = { 0 };
        uint8_t id[HASH_LEN];
        const uint64_t n = 100000;
        for (uint64_t i = 0; i < n; i++) {
                make_id(i, id);
                assert_true(idset_add(&s, id));
        }
        make_id(5, id);
        assert_false(idset_add(&s, id));
        assert_int_equal(s.n, n);
        /* remove the even ones: backward-shift deletion must keep the odd
         * ones reachable */
        for (uint64_t i = 0; i < n; i += 2) {
                make_id(i, id);
                assert_true(idset_remove(&s, id));
        }
        for (uint64_t i = 0; i < n; i++) {
                make_id(i, id);
                assert_int_equal(idset_contains(&s, id), i % 2 == 1);
        }
        make_id(n + 1, id);
        assert_false(idset_remove(&s, id));
        idset_free(&s);
}

static void test_idfilter(void **state)
{
        struct idfilter f = { 0 };
        uint8_t id[HASH_LEN];
        const uint64_t n = 200000;
        for (uint64_t i = 0; i < n; i++) {
                make_id(i, id);
                idfilter_add(&f, id);
        }
        for (uint64_t i = 0; i < n; i++) {
                make_id(i, id);
                assert_true(idfilter_maybe(&f, id));
        }
        unsigned false_hits = 0;
        for (uint64_t i = n; i < n + 100000; i++) {
                make_id(i, id);
                false_hits += idfilter_maybe(&f, id);
        }
        assert_true(false_hits < 10);
        /* 8 bytes a slot, at most 3/4 full after growing */
        assert_true(idfilter_bytes(&f) <= 8 * 4 * n);
        idfilter_free(&f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sha256_vectors),
                cmocka_unit_test(test_incremental_equals_oneshot),
                cmocka_unit_test(test_idset),
                cmocka_unit_test(test_idfilter),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
