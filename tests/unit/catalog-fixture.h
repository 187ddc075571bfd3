/* catalog-fixture.h — a new catalog in a temporary directory, for the
 * catalog's unit tests: catalog_fixture_setup/teardown as cmocka fixtures,
 * or _init/_fini inside a test's own fixture; sql_int() reads one number
 * back with plain SQLite. */
#ifndef BERTH_TEST_CATALOG_FIXTURE_H
#define BERTH_TEST_CATALOG_FIXTURE_H

#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>

#include "../../catalog/catalog.h"

struct catalog_fixture {
        char dir[64];
        char path[128];
        struct catalog *c;
};

static inline void catalog_fixture_init(struct catalog_fixture *f)
{
        snprintf(f->dir, sizeof f->dir, "/tmp/berth-catalog-test.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof f->path, "%s/catalog.db", f->dir);
        assert_int_equal(catalog_open(f->path, true, &f->c), 0);
}

static inline void catalog_fixture_fini(struct catalog_fixture *f)
{
        catalog_free(f->c);
        rm_rf_at(AT_FDCWD, f->dir);
}

static inline int catalog_fixture_setup(void **state)
{
        struct catalog_fixture *f = xcalloc(1, sizeof *f);
        catalog_fixture_init(f);
        *state = f;
        return 0;
}

static inline int catalog_fixture_teardown(void **state)
{
        catalog_fixture_fini(*state);
        free(*state);
        return 0;
}

static inline int64_t sql_int(const char *path, const char *sql)
{
        sqlite3 *db;
        sqlite3_stmt *st;
        int64_t v = -1;
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        if (sqlite3_step(st) == SQLITE_ROW)
                v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        return v;
}

#endif
