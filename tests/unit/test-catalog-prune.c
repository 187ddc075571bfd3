/* test-catalog-prune.c — the catalog's part of prune: the mark set, pack
 * usage, condemned packs, and the packs.condemned step for old catalogs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "catalog-fixture.h"

static void id_of(uint8_t id[CATALOG_HASH_LEN], unsigned n)
{
        memset(id, 0, CATALOG_HASH_LEN);
        memcpy(id, &n, sizeof n);
        id[31] = 0xaa;
}

/* pack `n` (hash from n) with chunk ids first..first+count-1, 100 bytes each */
static int64_t add_pack(struct catalog *c, unsigned n, unsigned first, unsigned count)
{
        uint8_t hash[CATALOG_HASH_LEN];
        int64_t id;
        memset(hash, (int)n, sizeof hash);
        assert_int_equal(catalog_begin(c), 0);
        assert_true(catalog_pack_add(c, hash, 1000, count, &id) >= 0);
        for (unsigned i = 0; i < count; i++) {
                struct catalog_chunk ch = { .pack = id, .offset = 100 * i, .stored_len = 100, .raw_len = 200 };
                id_of(ch.id, first + i);
                assert_int_equal(catalog_chunk_add(c, &ch), 0);
        }
        assert_int_equal(catalog_commit(c), 0);
        return id;
}

struct usage_seen {
        struct catalog_pack_usage u[8];
        size_t n;
};

static int note_usage(void *ud, const struct catalog_pack_usage *u)
{
        struct usage_seen *s = ud;
        assert_true(s->n < 8);
        s->u[s->n++] = *u;
        return 0;
}

static int count_pack(void *ud, int64_t id, const uint8_t hash[CATALOG_HASH_LEN], uint64_t size, uint32_t nchunks)
{
        (*(int *)ud)++;
        return 0;
}

static int count_condemned(void *ud, int64_t id, const uint8_t hash[CATALOG_HASH_LEN], uint64_t size)
{
        (*(int *)ud)++;
        return 0;
}

static void test_marks_usage_condemn(void **state)
{
        struct catalog_fixture *f = *state;
        int64_t a = add_pack(f->c, 1, 0, 3), b = add_pack(f->c, 2, 10, 2), max;
        assert_int_equal(catalog_pack_max_id(f->c, &max), 0);
        assert_int_equal(max, b);

        /* the mark set lives on a reader's connection */
        struct catalog *r;
        assert_int_equal(catalog_open_reader(f->path, false, &r), 0);
        assert_int_equal(catalog_mark_begin(r), 0);
        uint8_t id[CATALOG_HASH_LEN];
        id_of(id, 1);
        assert_int_equal(catalog_mark_add(r, id), 1);
        assert_int_equal(catalog_mark_add(r, id), 0);
        /* more than one batch of ids that are in no pack */
        for (unsigned i = 1000; i < 10000; i++) {
                id_of(id, i);
                assert_int_equal(catalog_mark_add(r, id), 1);
        }
        assert_int_equal(catalog_mark_commit(r), 0);

        struct usage_seen s = { .n = 0 };
        assert_int_equal(catalog_pack_usage_foreach(r, 0, max, note_usage, &s), 0);
        assert_int_equal(s.n, 2);
        assert_int_equal(s.u[0].id, a);
        assert_int_equal(s.u[0].chunks, 3);
        assert_int_equal(s.u[0].used_chunks, 1);
        assert_int_equal(s.u[0].used_bytes, 100);
        assert_int_equal(s.u[1].used_chunks, 0);
        /* packs after max are left out */
        s.n = 0;
        assert_int_equal(catalog_pack_usage_foreach(r, 0, a, note_usage, &s), 0);
        assert_int_equal(s.n, 1);

        /* paging: after a */
        s.n = 0;
        assert_int_equal(catalog_pack_usage_foreach(r, a, max, note_usage, &s), 0);
        assert_int_equal(s.n, 1);
        assert_int_equal(s.u[0].id, b);
        assert_int_equal(catalog_marked_in_pack(r, a), 1);
        assert_int_equal(catalog_marked_in_pack(r, b), 0);

        /* the writer condemns b: its chunk rows go, the reader sees it */
        assert_int_equal(catalog_begin(f->c), 0);
        assert_int_equal(catalog_pack_condemn(f->c, b, 12345), 2);
        assert_int_equal(catalog_commit(f->c), 0);
        id_of(id, 10);
        assert_int_equal(catalog_chunk_get(f->c, id, NULL), 0);
        s.n = 0;
        assert_int_equal(catalog_pack_usage_foreach(r, 0, max, note_usage, &s), 0);
        assert_int_equal(s.n, 1);
        int packs = 0, condemned = 0;
        assert_int_equal(catalog_pack_foreach(r, count_pack, &packs), 0);
        assert_int_equal(packs, 1);
        assert_int_equal(catalog_condemned_foreach(f->c, 12344, 10, count_condemned, &condemned), 0);
        assert_int_equal(condemned, 0);
        assert_int_equal(catalog_condemned_foreach(f->c, 12345, 10, count_condemned, &condemned), 0);
        assert_int_equal(condemned, 1);
        /* still known, so recovery does not index its object again */
        uint8_t hash[CATALOG_HASH_LEN];
        memset(hash, 2, sizeof hash);
        assert_int_equal(catalog_pack_known(f->c, hash), 1);

        /* written again with the same bytes: live again */
        assert_int_equal(add_pack(f->c, 2, 10, 2), b);
        packs = condemned = 0;
        assert_int_equal(catalog_pack_foreach(f->c, count_pack, &packs), 0);
        assert_int_equal(packs, 2);
        assert_int_equal(catalog_condemned_foreach(f->c, INT64_MAX, 10, count_condemned, &condemned), 0);
        assert_int_equal(condemned, 0);

        /* condemned, then dropped */
        assert_int_equal(catalog_begin(f->c), 0);
        assert_int_equal(catalog_pack_condemn(f->c, b, 1), 2);
        assert_int_equal(catalog_commit(f->c), 0);
        assert_int_equal(catalog_pack_drop(f->c, b), 0);
        assert_int_equal(catalog_pack_known(f->c, hash), 0);
        /* a live pack is never dropped */
        assert_int_equal(catalog_pack_drop(f->c, a), 0);
        packs = 0;
        assert_int_equal(catalog_pack_foreach(f->c, count_pack, &packs), 0);
        assert_int_equal(packs, 1);

        catalog_mark_end(r);
        catalog_free(r);
}

static void test_old_catalog(void **state)
{
        struct catalog_fixture *f = *state;
        add_pack(f->c, 1, 0, 2);
        catalog_free(f->c);
        f->c = NULL;
        sqlite3 *db;
        assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "ALTER TABLE packs DROP COLUMN condemned", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);

        /* a reader reads it as it is */
        struct catalog *r;
        assert_int_equal(catalog_open_reader(f->path, false, &r), 0);
        int packs = 0;
        assert_int_equal(catalog_pack_foreach(r, count_pack, &packs), 0);
        assert_int_equal(packs, 1);
        assert_int_equal(catalog_mark_begin(r), 0);
        struct usage_seen s = { .n = 0 };
        assert_int_equal(catalog_pack_usage_foreach(r, 0, INT64_MAX, note_usage, &s), 0);
        assert_int_equal(s.n, 1);
        assert_int_equal(s.u[0].used_chunks, 0);
        catalog_free(r);

        /* a writer adds the column */
        assert_int_equal(catalog_open(f->path, false, &f->c), 0);
        assert_int_equal(catalog_begin(f->c), 0);
        assert_int_equal(catalog_pack_condemn(f->c, 1, 5), 2);
        assert_int_equal(catalog_commit(f->c), 0);
        packs = 0;
        assert_int_equal(catalog_pack_foreach(f->c, count_pack, &packs), 0);
        assert_int_equal(packs, 0);
}

/* Shared storage: a condemnation unpublished (no grace running) until its
 * publication gives it a time, once. */
static void test_condemned_published(void **state)
{
        struct catalog_fixture *f = *state;
        int64_t a = add_pack(f->c, 1, 0, 2), b = add_pack(f->c, 2, 10, 1);
        assert_int_equal(catalog_begin(f->c), 0);
        assert_int_equal(catalog_pack_condemn(f->c, a, CATALOG_CONDEMNED_UNPUBLISHED), 2);
        assert_int_equal(catalog_commit(f->c), 0);
        int condemned = 0;
        assert_int_equal(catalog_condemned_foreach(f->c, INT64_MAX - 1, 10, count_condemned, &condemned), 0);
        assert_int_equal(condemned, 0);
        assert_int_equal(catalog_condemned_foreach(f->c, INT64_MAX, 10, count_condemned, &condemned), 0);
        assert_int_equal(condemned, 1);
        assert_int_equal(catalog_pack_published(f->c, a, 500), 1);
        /* published before: the first publication's time stays */
        assert_int_equal(catalog_pack_published(f->c, a, 900), 0);
        /* a live pack is not condemned by it */
        assert_int_equal(catalog_pack_published(f->c, b, 900), 0);
        condemned = 0;
        assert_int_equal(catalog_condemned_foreach(f->c, 499, 10, count_condemned, &condemned), 0);
        assert_int_equal(condemned, 0);
        assert_int_equal(catalog_condemned_foreach(f->c, 500, 10, count_condemned, &condemned), 0);
        assert_int_equal(condemned, 1);
}

/* Format-2 records hold several chunks (rows with the record's offset and
 * stored length): a used chunk counts its share of its record's stored bytes;
 * a pack with no chunk rows counts nothing. */
static void test_usage_of_records(void **state)
{
        struct catalog_fixture *f = *state;
        uint8_t hash[CATALOG_HASH_LEN];
        int64_t p, empty;
        memset(hash, 7, sizeof hash);
        assert_int_equal(catalog_begin(f->c), 0);
        assert_true(catalog_pack_add(f->c, hash, 1000, 4, &p) >= 0);
        /* record at 0: 300 stored bytes for 100+200+300 plain; record at 300: 50 for 80 */
        const struct { unsigned id; uint32_t off, stored, raw, inner; } rows[] = {
                { 21, 300, 50, 80, 0 }, { 20, 0, 300, 300, 300 }, { 18, 0, 300, 100, 0 }, { 19, 0, 300, 200, 100 },
        };
        for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
                struct catalog_chunk ch = { .pack = p, .offset = rows[i].off, .stored_len = rows[i].stored,
                                            .raw_len = rows[i].raw, .inner = rows[i].inner };
                id_of(ch.id, rows[i].id);
                assert_int_equal(catalog_chunk_add(f->c, &ch), 0);
        }
        memset(hash, 8, sizeof hash);
        assert_true(catalog_pack_add(f->c, hash, 10, 0, &empty) >= 0);
        assert_int_equal(catalog_commit(f->c), 0);

        struct catalog *r;
        assert_int_equal(catalog_open_reader(f->path, false, &r), 0);
        assert_int_equal(catalog_mark_begin(r), 0);
        uint8_t id[CATALOG_HASH_LEN];
        id_of(id, 19);
        assert_int_equal(catalog_mark_add(r, id), 1);
        id_of(id, 21);
        assert_int_equal(catalog_mark_add(r, id), 1);
        assert_int_equal(catalog_mark_commit(r), 0);
        struct usage_seen s = { .n = 0 };
        assert_int_equal(catalog_pack_usage_foreach(r, 0, empty, note_usage, &s), 0);
        assert_int_equal(s.n, 2);
        assert_int_equal(s.u[0].id, p);
        assert_int_equal(s.u[0].chunks, 4);
        assert_int_equal(s.u[0].used_chunks, 2);
        assert_int_equal(s.u[0].used_bytes, 300 * 200 / 600 + 50);
        assert_int_equal(s.u[1].id, empty);
        assert_int_equal(s.u[1].chunks, 0);
        assert_int_equal(s.u[1].used_bytes, 0);
        catalog_free(r);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_marks_usage_condemn, catalog_fixture_setup, catalog_fixture_teardown),
                cmocka_unit_test_setup_teardown(test_old_catalog, catalog_fixture_setup, catalog_fixture_teardown),
                cmocka_unit_test_setup_teardown(test_condemned_published, catalog_fixture_setup, catalog_fixture_teardown),
                cmocka_unit_test_setup_teardown(test_usage_of_records, catalog_fixture_setup, catalog_fixture_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
