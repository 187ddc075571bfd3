/* test-chunker.c — FastCDC: limits, determinism, stability under insertions;
 * page-aligned chunks: detection and cutting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "../../snapshot/internal.h"

#define MIN_ (8u << 10)
#define AVG_ (32u << 10)
#define MAX_ (128u << 10)

static uint8_t *random_bytes(size_t n, uint64_t seed)
{
        uint8_t *p = xmalloc(n);
        uint64_t x = seed ? seed : 1;
        for (size_t i = 0; i < n; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                p[i] = (uint8_t)(x >> 24);
        }
        return p;
}

/* Cuts the whole buffer; returns the number of chunks and fills ends[]. */
static size_t cut_all(const struct chunker *c, const uint8_t *p, size_t n, size_t *ends, size_t cap)
{
        size_t k = 0;
        for (size_t pos = 0; pos < n;) {
                size_t len = chunker_cut(c, p + pos, n - pos, true);
                assert_true(len > 0);
                pos += len;
                if (k < cap)
                        ends[k] = pos;
                k++;
        }
        return k;
}

static void test_bad_parameters(void **state)
{
        struct chunker c;
        assert_int_equal(chunker_init(&c, MIN_, 30000, MAX_, 1), -EINVAL); /* avg not a power of two */
        assert_int_equal(chunker_init(&c, AVG_, AVG_, MAX_, 1), -EINVAL);  /* min >= avg */
        assert_int_equal(chunker_init(&c, MIN_, AVG_, AVG_, 1), -EINVAL);  /* avg >= max */
        assert_int_equal(chunker_init(&c, MIN_, AVG_, MAX_, 1), 0);
}

static void test_limits_and_mean(void **state)
{
        size_t n = 8u << 20;
        uint8_t *p = random_bytes(n, 12345);
        struct chunker c;
        assert_int_equal(chunker_init(&c, MIN_, AVG_, MAX_, 7), 0);
        size_t ends[1024];
        size_t k = cut_all(&c, p, n, ends, 1024);
        assert_true(k < 1024);
        size_t prev = 0;
        for (size_t i = 0; i < k; i++) {
                size_t len = ends[i] - prev;
                if (i + 1 < k)
                        assert_true(len >= MIN_);
                assert_true(len <= MAX_);
                prev = ends[i];
        }
        double mean = (double)n / (double)k;
        assert_true(mean > AVG_ / 2.0 && mean < AVG_ * 2.0);
        free(p);
}

static void test_deterministic_and_seeded(void **state)
{
        size_t n = 4u << 20;
        uint8_t *p = random_bytes(n, 99);
        struct chunker a, b, other;
        chunker_init(&a, MIN_, AVG_, MAX_, 5);
        chunker_init(&b, MIN_, AVG_, MAX_, 5);
        chunker_init(&other, MIN_, AVG_, MAX_, 6);
        size_t ea[512], eb[512], eo[512];
        size_t ka = cut_all(&a, p, n, ea, 512), kb = cut_all(&b, p, n, eb, 512), ko = cut_all(&other, p, n, eo, 512);
        assert_int_equal(ka, kb);
        assert_memory_equal(ea, eb, ka * sizeof *ea);
        bool differs = ka != ko || memcmp(ea, eo, ka * sizeof *ea) != 0;
        assert_true(differs);
        free(p);
}

static void test_stable_under_insertion(void **state)
{
        size_t n = 8u << 20;
        uint8_t *p = random_bytes(n, 4242);
        uint8_t *q = xmalloc(n + 100);
        memcpy(q, p, 1000);
        memset(q + 1000, 0xab, 100);
        memcpy(q + 1100, p + 1000, n - 1000);
        struct chunker c;
        chunker_init(&c, MIN_, AVG_, MAX_, 3);
        size_t ep[1024], eq[1024];
        size_t kp = cut_all(&c, p, n, ep, 1024), kq = cut_all(&c, q, n + 100, eq, 1024);
        /* Boundaries measured from the end: those after the insertion
         * should mostly be the same. */
        size_t same = 0;
        for (size_t i = 0; i < kp; i++) {
                size_t from_end = n - ep[i];
                for (size_t j = 0; j < kq; j++)
                        if (n + 100 - eq[j] == from_end) {
                                same++;
                                break;
                        }
        }
        assert_true(same * 100 >= kp * 90);
        free(p);
        free(q);
}

static void test_needs_more_data(void **state)
{
        uint8_t *p = random_bytes(MAX_, 1);
        struct chunker c;
        chunker_init(&c, MIN_, AVG_, MAX_, 1);
        assert_int_equal(chunker_cut(&c, p, MAX_ - 1, false), 0);
        assert_int_equal(chunker_cut(&c, p, MIN_ / 2, false), 0);
        assert_int_equal(chunker_cut(&c, p, MIN_ / 2, true), MIN_ / 2);
        assert_true(chunker_cut(&c, p, MAX_, false) > 0);
        free(p);
}

static void test_zeros_cut_at_max(void **state)
{
        size_t n = 4 * MAX_ + 100;
        uint8_t *p = xcalloc(n, 1);
        struct chunker c;
        chunker_init(&c, MIN_, AVG_, MAX_, 1);
        size_t ends[16];
        size_t k = cut_all(&c, p, n, ends, 16);
        assert_int_equal(k, 5);
        for (size_t i = 0; i < 4; i++)
                assert_int_equal(ends[i], (i + 1) * MAX_);
        free(p);
}

/* The definition: one byte at a time.  chunker_cut() steps two bytes at a
 * time and must cut at exactly the same places. */
static size_t reference_cut(const struct chunker *c, const uint8_t *p, size_t n)
{
        if (n <= c->min)
                return n;
        size_t end = n < c->max ? n : c->max, normal = c->avg < end ? c->avg : end, i = c->min;
        uint64_t fp = 0;
        for (; i < normal; i++) {
                fp = (fp << 1) + c->gear[p[i]];
                if (!(fp & c->mask_s))
                        return i + 1;
        }
        for (; i < end; i++) {
                fp = (fp << 1) + c->gear[p[i]];
                if (!(fp & c->mask_l))
                        return i + 1;
        }
        return end;
}

static void test_matches_reference(void **state)
{
        size_t n = 16u << 20;
        uint8_t *p = random_bytes(n, 31337);
        struct chunker c;
        chunker_init(&c, 2048, 8192, 65536, 11);
        for (size_t pos = 0; pos < n;) {
                size_t a = chunker_cut(&c, p + pos, n - pos, true);
                assert_int_equal(a, reference_cut(&c, p + pos, n - pos));
                pos += a;
        }
        free(p);
}

static void test_throughput(void **state)
{
        size_t n = 64u << 20;
        uint8_t *p = random_bytes(n, 77);
        struct chunker c;
        chunker_init(&c, MIN_, AVG_, MAX_, 1);
        int64_t t0 = mono_ns();
        size_t ends[4096];
        cut_all(&c, p, n, ends, 4096);
        /* printed, not asserted: speed belongs to `make bench` */
        printf("chunker: %.2f GB/s\n", (double)n / (double)(mono_ns() - t0));
        free(p);
}

static void test_pages_parse(void **state)
{
        int32_t v;
        assert_int_equal(pages_parse("auto", &v), 0);
        assert_int_equal(v, PAGES_AUTO);
        assert_int_equal(pages_parse("off", &v), 0);
        assert_int_equal(v, PAGES_OFF);
        assert_int_equal(pages_parse("8k", &v), 0);
        assert_int_equal(v, 8192);
        assert_int_equal(pages_parse("16384", &v), 0);
        assert_int_equal(v, 16384);
        assert_int_equal(pages_parse("3k", &v), -EINVAL);   /* not a power of two */
        assert_int_equal(pages_parse("2k", &v), -EINVAL);   /* too small */
        assert_int_equal(pages_parse("128k", &v), -EINVAL); /* too large */
        assert_int_equal(pages_parse("", &v), -EINVAL);
        char out[16];
        pages_format(8192, out, sizeof out);
        assert_string_equal(out, "8192");
        pages_format(PAGES_OFF, out, sizeof out);
        assert_string_equal(out, "off");
}

static void test_page_trees(void **state)
{
        char *pg[] = { "PG_VERSION", "base", "global", "pg_wal" };
        char *pg_partial[] = { "PG_VERSION", "base" };
        char *my[] = { "auto.cnf", "ibdata1", "mysql" };
        char *wt[] = { "WiredTiger", "collection-0.wt" };
        assert_int_equal(page_tree_of(pg, 4), PAGE_TREE_PG);
        assert_int_equal(page_tree_of(pg_partial, 2), PAGE_TREE_NONE);
        assert_int_equal(page_tree_of(my, 3), PAGE_TREE_MYSQL);
        assert_int_equal(page_tree_of(wt, 2), PAGE_TREE_WT);
        assert_int_equal(page_tree_of(NULL, 0), PAGE_TREE_NONE);
}

static void test_page_detect(void **state)
{
        uint8_t head[128] = { 0 };
        const uint64_t MB = 1u << 20;
        /* PostgreSQL tree: sizes that are whole pages only */
        assert_int_equal(page_size_detect(PAGES_AUTO, PAGE_TREE_PG, 0, "16384", MB, head, sizeof head), 8192);
        assert_int_equal(page_size_detect(PAGES_AUTO, PAGE_TREE_PG, 0, "16384", MB + 1, head, sizeof head), 0);
        assert_int_equal(page_size_detect(PAGES_AUTO, PAGE_TREE_PG, 0, "16384", 4096, head, sizeof head), 0);
        assert_int_equal(page_size_detect(PAGES_AUTO, PAGE_TREE_NONE, 0, "16384", MB, head, sizeof head), 0);
        assert_int_equal(page_size_detect(PAGES_OFF, PAGE_TREE_PG, 0, "16384", MB, head, sizeof head), 0);
        assert_int_equal(page_size_detect(PAGES_AUTO, PAGE_TREE_PG, 0, "empty", 0, head, 0), 0);
        /* an explicit size pages any file that fits */
        assert_int_equal(page_size_detect(16384, PAGE_TREE_NONE, 0, "x", MB, head, sizeof head), 16384);
        assert_int_equal(page_size_detect(16384, PAGE_TREE_NONE, 0, "x", 8192, head, sizeof head), 0);
        /* InnoDB: 16 KiB unless its FSP flags say otherwise */
        assert_int_equal(page_size_detect(PAGES_AUTO, PAGE_TREE_NONE, 0, "t.ibd", MB, head, sizeof head), 16384);
        head[56] = 1; /* flags 0x100: PAGE_SSIZE (bits 6..9) 4, 8 KiB */
        assert_int_equal(innodb_page_size(head, sizeof head), 8192);
        assert_int_equal(page_size_detect(PAGES_AUTO, PAGE_TREE_NONE, 0, "t.ibd", MB, head, sizeof head), 8192);
        head[56] = 0;
        head[57] = 1 << 6; /* PAGE_SSIZE 1: nonsense, so the tree's, else 16 KiB */
        assert_int_equal(innodb_page_size(head, sizeof head), 0);
        assert_int_equal(page_size_detect(PAGES_AUTO, PAGE_TREE_MYSQL, 4096, "t.ibd", MB, head, sizeof head), 4096);
        assert_int_equal(page_size_detect(PAGES_AUTO, PAGE_TREE_NONE, 0, "t.ibd", 100, head, sizeof head), 0);
        assert_int_equal(innodb_page_size(head, 40), 0);
        head[57] = 0;
        assert_int_equal(page_size_detect(PAGES_AUTO, PAGE_TREE_MYSQL, 0, "ib_logfile0", MB, head, sizeof head),
                         16384);
        /* WiredTiger by name */
        assert_int_equal(page_size_detect(PAGES_AUTO, PAGE_TREE_NONE, 0, "c-1.wt", 3 * 4096, head, sizeof head), 4096);
        assert_int_equal(page_size_detect(PAGES_AUTO, PAGE_TREE_NONE, 0, "c-1.wt", 5000, head, sizeof head), 0);
        /* SQLite by header, anywhere */
        memcpy(head, "SQLite format 3", 16);
        head[16] = 0x10; /* 4096 */
        head[17] = 0;
        assert_int_equal(page_size_detect(PAGES_AUTO, PAGE_TREE_NONE, 0, "app.db", MB, head, sizeof head), 4096);
        head[16] = 0;
        head[17] = 1; /* 65536 */
        assert_int_equal(page_size_detect(PAGES_AUTO, PAGE_TREE_NONE, 0, "app.db", MB, head, sizeof head), 65536);
        assert_int_equal(page_size_detect(PAGES_AUTO, PAGE_TREE_NONE, 0, "app.db", 98304, head, sizeof head), 0);
        head[17] = 3; /* not a page size */
        assert_int_equal(page_size_detect(PAGES_AUTO, PAGE_TREE_NONE, 0, "app.db", MB, head, sizeof head), 0);
        /* a header cut short is no header */
        head[16] = 0x20;
        head[17] = 0;
        assert_int_equal(page_size_detect(PAGES_AUTO, PAGE_TREE_NONE, 0, "app.db", MB, head, 50), 0);
}

/* Fixed chunks start at every multiple of the chunk size, whatever the
 * bytes, so one changed page changes one chunk. */
static void test_page_cut(void **state)
{
        assert_int_equal(page_chunk_bytes(8192, 1), 8192);
        assert_int_equal(page_chunk_bytes(8192, 4), 32768);
        assert_int_equal(page_chunk_bytes(4096, 1), 8192); /* at least 8 KiB */
        assert_int_equal(page_chunk_bytes(16384, 0), 16384);
        assert_int_equal(chunker_cut_fixed(8192, 100000, false), 8192);
        assert_int_equal(chunker_cut_fixed(8192, 8191, false), 0);
        assert_int_equal(chunker_cut_fixed(8192, 8191, true), 8191);
        assert_int_equal(chunker_cut_fixed(8192, 0, true), 0);

        size_t n = 64 * 8192;
        uint8_t *a = random_bytes(n, 5), *b = xmalloc(n);
        memcpy(b, a, n);
        memset(b + 20 * 8192 + 100, 0xAB, 50); /* one changed page */
        size_t diff = 0, chunks = 0;
        for (size_t pos = 0; pos < n; chunks++) {
                size_t len = chunker_cut_fixed(8192, n - pos, true);
                assert_int_equal(pos % 8192, 0);
                diff += memcmp(a + pos, b + pos, len) != 0;
                pos += len;
        }
        assert_int_equal(chunks, 64);
        assert_int_equal(diff, 1);
        free(a);
        free(b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bad_parameters),
                cmocka_unit_test(test_limits_and_mean),
                cmocka_unit_test(test_deterministic_and_seeded),
                cmocka_unit_test(test_stable_under_insertion),
                cmocka_unit_test(test_needs_more_data),
                cmocka_unit_test(test_zeros_cut_at_max),
                cmocka_unit_test(test_matches_reference),
                cmocka_unit_test(test_pages_parse),
                cmocka_unit_test(test_page_trees),
                cmocka_unit_test(test_page_detect),
                cmocka_unit_test(test_page_cut),
                cmocka_unit_test(test_throughput),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
