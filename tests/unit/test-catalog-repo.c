/* test-catalog-repo.c — the catalog as a repository uses it: read-only
 * opens, announced snapshots, carrying a table across a rebuild. */
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

static void sql(const char *path, const char *text)
{
        sqlite3 *db;
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, text, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
}

static const char id_a[] = "aaaa000000000000000000000000000000000000000000000000000000000000";
static const char id_b[] = "bbbb000000000000000000000000000000000000000000000000000000000000";

static void test_reader_opens(void **state)
{
        struct catalog_fixture *f = *state;
        struct catalog *ro;
        /* frozen: read-only */
        assert_int_equal(catalog_open_reader(f->path, true, &ro), 0);
        assert_int_equal(catalog_snapshot_known(ro, id_a), 0);
        error_clear();
        assert_int_equal(catalog_snapshot_intend(ro, id_a), -EACCES);
        assert_non_null(strstr(error_message(), "cannot be written"));
        catalog_free(ro);
        /* not frozen: the journal can be written, the schema is left alone */
        assert_int_equal(catalog_open_reader(f->path, false, &ro), 0);
        assert_int_equal(catalog_count(ro, "snapshots"), 0);
        catalog_free(ro);
        /* a missing file is not created */
        char missing[160];
        snprintf(missing, sizeof missing, "%s/none.db", f->dir);
        assert_true(catalog_open_reader(missing, false, &ro) < 0);
        assert_int_equal(access(missing, F_OK), -1);
}

static void test_intents(void **state)
{
        struct catalog_fixture *f = *state;
        char **ids;
        size_t n;
        assert_int_equal(catalog_snapshot_intend(f->c, id_a), 0);
        assert_int_equal(catalog_snapshot_intend(f->c, id_b), 0);
        assert_int_equal(catalog_snapshot_intents(f->c, &ids, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(ids[0], id_a);
        catalog_id_list_free(ids, n);
        /* recording the snapshot drops its announcement, in the same transaction */
        struct catalog_snapshot s = { .name = (char *)"vol", .started = 1, .finished = 2 };
        snprintf(s.id, sizeof s.id, "%s", id_a);
        assert_int_equal(catalog_begin(f->c), 0);
        assert_int_equal(catalog_snapshot_add(f->c, &s), 0);
        catalog_rollback(f->c);
        assert_int_equal(catalog_snapshot_intents(f->c, &ids, &n), 0);
        assert_int_equal(n, 2);
        catalog_id_list_free(ids, n);
        assert_int_equal(catalog_begin(f->c), 0);
        assert_int_equal(catalog_snapshot_add(f->c, &s), 0);
        assert_int_equal(catalog_commit(f->c), 0);
        assert_int_equal(catalog_snapshot_intent_drop(f->c, id_b), 0);
        assert_int_equal(catalog_snapshot_intents(f->c, &ids, &n), 0);
        assert_int_equal(n, 0);
        catalog_id_list_free(ids, n);
}

static void test_carry_table(void **state)
{
        struct catalog_fixture *f = *state;
        catalog_free(f->c);
        f->c = NULL;
        sql(f->path, "INSERT INTO quiesce_journal (container, container_name, action, host, owner_pid, owner_start,"
                     " started) VALUES ('c1', 'db', 'pause', 'h', 7, 8, 9);"
                     "ALTER TABLE quiesce_journal ADD COLUMN extra TEXT DEFAULT 'x';");
        char newpath[160];
        snprintf(newpath, sizeof newpath, "%s/new.db", f->dir);
        struct catalog *c;
        assert_int_equal(catalog_open(newpath, true, &c), 0);
        int64_t rows = -1;
        assert_int_equal(catalog_carry_table(c, f->path, "quiesce_journal", &rows), 0);
        assert_int_equal(rows, 1);
        struct catalog_quiesce *open;
        size_t n;
        assert_int_equal(catalog_quiesce_open(c, &open, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(open[0].container, "c1");
        assert_int_equal(open[0].owner_pid, 7);
        catalog_quiesce_list_free(open, n);
        /* not a catalog: an error, and nothing changes */
        char junk[160];
        snprintf(junk, sizeof junk, "%s/junk.db", f->dir);
        FILE *j = fopen(junk, "w");
        fputs("this is not a database, not even close to one, and long enough to be read", j);
        fclose(j);
        assert_true(catalog_carry_table(c, junk, "quiesce_journal", NULL) < 0);
        assert_int_equal(catalog_count(c, "quiesce_journal"), 1);
        assert_int_equal(catalog_close_standalone(c), 0);
        char wal[170];
        snprintf(wal, sizeof wal, "%s-wal", newpath);
        assert_int_equal(access(wal, F_OK), -1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_reader_opens, catalog_fixture_setup, catalog_fixture_teardown),
                cmocka_unit_test_setup_teardown(test_intents, catalog_fixture_setup, catalog_fixture_teardown),
                cmocka_unit_test_setup_teardown(test_carry_table, catalog_fixture_setup, catalog_fixture_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
