/* test-catalog.c — migrations, packs and chunks, snapshots, the file index. */
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

static void test_schema_and_versions(void **state)
{
        struct catalog_fixture *f = *state;
        assert_int_equal(sql_int(f->path, "PRAGMA user_version"), CATALOG_SCHEMA_VERSION);
        catalog_free(f->c);
        assert_int_equal(catalog_open(f->path, false, &f->c), 0); /* reopening migrates nothing */
        catalog_free(f->c);
        f->c = NULL;
        sqlite3 *db;
        sqlite3_open(f->path, &db);
        sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL);
        sqlite3_close(db);
        error_clear();
        assert_int_equal(catalog_open(f->path, false, &f->c), -BERTH_EFORMAT);
        assert_non_null(strstr(error_message(), "schema version 999"));
        assert_null(f->c);
}

static void id_of(int i, uint8_t id[CATALOG_HASH_LEN])
{
        memset(id, 0, CATALOG_HASH_LEN);
        id[0] = (uint8_t)i;
        id[31] = 0x5a;
}

static void test_packs_and_chunks(void **state)
{
        struct catalog_fixture *f = *state;
        uint8_t h[CATALOG_HASH_LEN];
        int64_t p1, p2;
        id_of(1, h);
        assert_int_equal(catalog_pack_add(f->c, h, 1000, 3, &p1), 1);
        assert_int_equal(catalog_pack_add(f->c, h, 1000, 3, &p2), 0);
        assert_int_equal(p1, p2);
        assert_int_equal(catalog_pack_known(f->c, h), 1);

        struct catalog_chunk ch = { .pack = p1, .offset = 8, .stored_len = 10, .raw_len = 20, .flags = 1 };
        id_of(7, ch.id);
        assert_int_equal(catalog_chunk_add(f->c, &ch), 0);
        struct catalog_chunk again = ch;
        again.offset = 99; /* recorded twice: the first location stays */
        assert_int_equal(catalog_chunk_add(f->c, &again), 0);
        struct catalog_chunk got;
        assert_int_equal(catalog_chunk_get(f->c, ch.id, &got), 1);
        assert_int_equal(got.offset, 8);
        assert_int_equal(got.raw_len, 20);
        uint8_t unknown[CATALOG_HASH_LEN];
        id_of(8, unknown);
        assert_int_equal(catalog_chunk_get(f->c, unknown, &got), 0);
        assert_int_equal(catalog_chunk_count(f->c), 1);

        /* stored again after its pack was lost: the new location wins */
        uint8_t h3[CATALOG_HASH_LEN];
        int64_t p3;
        id_of(3, h3);
        assert_int_equal(catalog_pack_add(f->c, h3, 500, 1, &p3), 1);
        struct catalog_chunk moved = ch;
        moved.pack = p3;
        moved.offset = 16;
        assert_int_equal(catalog_chunk_set(f->c, &moved), 0);
        assert_int_equal(catalog_chunk_get(f->c, ch.id, &got), 1);
        assert_int_equal(got.pack, p3);
        assert_int_equal(got.offset, 16);
        assert_int_equal(catalog_chunk_count(f->c), 1);

        /* a rolled-back transaction leaves nothing */
        id_of(2, h);
        assert_int_equal(catalog_begin(f->c), 0);
        assert_int_equal(catalog_pack_add(f->c, h, 1, 1, &p2), 1);
        catalog_rollback(f->c);
        assert_int_equal(catalog_pack_known(f->c, h), 0);
}

static void add_snapshot(struct catalog *c, const char *name, const char *hex, int64_t started)
{
        struct catalog_snapshot s = { .name = (char *)name, .host = (char *)"h", .source = (char *)"/src",
                                      .started = started, .finished = started + 1, .status = (char *)"complete" };
        snprintf(s.id, sizeof s.id, "%s", hex);
        assert_int_equal(catalog_snapshot_add(c, &s), 0);
}

static void test_snapshots(void **state)
{
        struct catalog_fixture *f = *state;
        add_snapshot(f->c, "pg", "aaaa01", 100);
        add_snapshot(f->c, "pg", "aaaa02", 200);
        add_snapshot(f->c, "web", "bbbb01", 150);
        add_snapshot(f->c, "pg", "cccc03", 300);
        assert_int_equal(catalog_snapshot_max_seq(f->c, "pg"), 3);
        assert_int_equal(catalog_snapshot_max_seq(f->c, "none"), 0);

        struct catalog_snapshot *list;
        size_t n;
        assert_int_equal(catalog_snapshot_list(f->c, NULL, &list, &n), 0);
        assert_int_equal(n, 4);
        assert_string_equal(list[1].id, "bbbb01"); /* by time */
        catalog_snapshot_list_free(list, n);

        struct catalog_snapshot s;
        assert_int_equal(catalog_snapshot_latest(f->c, "pg", INT64_MAX, &s), 1);
        assert_string_equal(s.id, "cccc03");
        assert_int_equal(s.seq, 3);
        catalog_snapshot_clear(&s);
        assert_int_equal(catalog_snapshot_latest(f->c, "pg", 250, &s), 1);
        assert_string_equal(s.id, "aaaa02");
        catalog_snapshot_clear(&s);
        assert_int_equal(catalog_snapshot_latest(f->c, "pg", 50, &s), 0);

        assert_int_equal(catalog_snapshot_by_prefix(f->c, "aaaa", 10, &list, &n), 0);
        assert_int_equal(n, 2);
        catalog_snapshot_list_free(list, n);
        assert_int_equal(catalog_snapshot_known(f->c, "bbbb01"), 1);
        assert_int_equal(catalog_snapshot_known(f->c, "bbbb0"), 0);
}

static void put(struct catalog_index *ix, const char *path, uint8_t type, int content, bool replaces)
{
        struct catalog_file file = { .path = path, .path_len = strlen(path), .type = type, .mode = 0644 };
        file.content[0] = (uint8_t)content;
        assert_int_equal(catalog_index_put(ix, &file, replaces), 0);
}

static int count_ls(void *ud, const struct catalog_file *f)
{
        (*(int *)ud)++;
        return 0;
}

static void test_file_index(void **state)
{
        struct catalog_fixture *f = *state;
        struct catalog_index *ix;

        add_snapshot(f->c, "v", "dd01", 1);
        assert_int_equal(catalog_begin(f->c), 0);
        assert_int_equal(catalog_index_begin(f->c, "v", 1, &ix), 0);
        put(ix, "", 1, 0, false);
        put(ix, "a", 1, 0, false);
        put(ix, "a/b", 2, 1, false);
        put(ix, "c", 2, 2, false);
        catalog_index_free(ix);
        assert_int_equal(catalog_commit(f->c), 0);

        add_snapshot(f->c, "v", "dd02", 2);
        assert_int_equal(catalog_begin(f->c), 0);
        assert_int_equal(catalog_index_begin(f->c, "v", 2, &ix), 0);
        put(ix, "a/b", 2, 9, true);
        assert_int_equal(catalog_index_remove(ix, "c", 1), 0);
        catalog_index_free(ix);
        assert_int_equal(catalog_commit(f->c), 0);

        /* rows grow with the changes: 4 + 1 */
        assert_int_equal(sql_int(f->path, "SELECT count(*) FROM files"), 5);
        assert_int_equal(sql_int(f->path, "SELECT f.until FROM files f JOIN paths p ON p.id = f.path"
                                          " WHERE p.path = CAST('c' AS BLOB)"),
                         2);
        /* paths are interned once, children under their parent */
        assert_int_equal(sql_int(f->path, "SELECT count(*) FROM paths"), 4);
        assert_int_equal(sql_int(f->path, "SELECT count(*) FROM paths c JOIN paths p ON c.parent = p.id"
                                          " WHERE c.path = CAST('a/b' AS BLOB) AND p.path = CAST('a' AS BLOB)"),
                         1);
        assert_int_equal(sql_int(f->path, "SELECT count(*) FROM files f JOIN paths p ON p.id = f.path"
                                          " WHERE p.path = CAST('a/b' AS BLOB) AND f.since = 1 AND f.until = 2"),
                         1);
        assert_int_equal(sql_int(f->path, "SELECT count(*) FROM files f JOIN paths p ON p.id = f.path"
                                          " WHERE p.path = CAST('a/b' AS BLOB) AND f.since = 2 AND f.until IS NULL"),
                         1);

        int n = 0;
        assert_int_equal(catalog_ls(f->c, "v", 1, "", 0, count_ls, &n), 1);
        assert_int_equal(n, 2); /* a, c */
        n = 0;
        assert_int_equal(catalog_ls(f->c, "v", 2, "", 0, count_ls, &n), 1);
        assert_int_equal(n, 1); /* a */
        n = 0;
        assert_int_equal(catalog_ls(f->c, "v", 2, "c", 1, count_ls, &n), 0);

        /* the previous snapshot cannot be read: every current row closes,
         * and the new snapshot lists only what it puts */
        add_snapshot(f->c, "v", "dd03", 3);
        assert_int_equal(catalog_begin(f->c), 0);
        assert_int_equal(catalog_index_begin(f->c, "v", 3, &ix), 0);
        assert_int_equal(catalog_index_close_all(ix), 0);
        put(ix, "", 1, 0, false);
        put(ix, "d", 2, 3, false);
        catalog_index_free(ix);
        assert_int_equal(catalog_commit(f->c), 0);
        n = 0;
        assert_int_equal(catalog_ls(f->c, "v", 3, "", 0, count_ls, &n), 1);
        assert_int_equal(n, 1); /* d */
        n = 0;
        assert_int_equal(catalog_ls(f->c, "v", 2, "", 0, count_ls, &n), 1);
        assert_int_equal(n, 1); /* a, as before */
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_schema_and_versions, catalog_fixture_setup, catalog_fixture_teardown),
                cmocka_unit_test_setup_teardown(test_packs_and_chunks, catalog_fixture_setup, catalog_fixture_teardown),
                cmocka_unit_test_setup_teardown(test_snapshots, catalog_fixture_setup, catalog_fixture_teardown),
                cmocka_unit_test_setup_teardown(test_file_index, catalog_fixture_setup, catalog_fixture_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
