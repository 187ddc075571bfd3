/* test-catalog-forget.c — removing snapshots from the catalog keeps every
 * file index query right for the snapshots that remain: a series is
 * indexed as backup does (only changes reach the catalog), snapshots are
 * removed from the middle, the start and the end (and a new one indexed
 * after the newest went), and after each step ls, find, diff and latest
 * are compared with a model of what each snapshot holds. */
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

#define NPATHS 6
#define MAXSNAP 16

struct snap {
        char id[65];
        int64_t started;
        int state[NPATHS];  /* content of path i, 0: absent */
        bool alive;
};

struct fixture {
        struct catalog_fixture cat;
        struct snap s[MAXSNAP];
        int n;
};

static int setup(void **state)
{
        struct fixture *f = xcalloc(1, sizeof *f);
        catalog_fixture_init(&f->cat);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        catalog_fixture_fini(&f->cat);
        free(f);
        return 0;
}

static void path_name(int i, char out[8]) { snprintf(out, 8, "f%d", i); }

/* The index of path "f<i>" (paths from the catalog are not terminated), or -1. */
static int path_index(const struct catalog_file *file)
{
        if (file->path_len != 2 || file->path[0] != 'f' || file->path[1] < '0' || file->path[1] >= '0' + NPATHS)
                return -1;
        return file->path[1] - '0';
}

static void put(struct catalog_index *ix, const char *path, uint8_t type, int content, bool replaces)
{
        struct catalog_file file = { .path = path, .path_len = strlen(path), .type = type, .mode = 0644 };
        file.content[0] = (uint8_t)content;
        assert_int_equal(catalog_index_put(ix, &file, replaces), 0);
}

/* The newest live snapshot of the model, or -1. */
static int newest(struct fixture *f)
{
        int best = -1;
        for (int i = 0; i < f->n; i++)
                if (f->s[i].alive && (best < 0 || f->s[i].started > f->s[best].started))
                        best = i;
        return best;
}

/* Adds snapshot number f->n holding `state`, indexed as index.c does:
 * against the newest snapshot of the name. */
static void add(struct fixture *f, const int state[NPATHS])
{
        struct snap *s = &f->s[f->n];
        int prev = newest(f);
        snprintf(s->id, sizeof s->id, "%064d", f->n + 1);
        s->started = (int64_t)(f->n + 1) * 1000;
        memcpy(s->state, state, sizeof s->state);
        s->alive = true;

        struct catalog_snapshot cs = { .name = (char *)"v", .host = (char *)"h", .source = (char *)"/src",
                                       .started = s->started, .finished = s->started, .status = (char *)"complete" };
        snprintf(cs.id, sizeof cs.id, "%s", s->id);
        struct catalog_index *ix;
        assert_int_equal(catalog_begin(f->cat.c), 0);
        assert_int_equal(catalog_snapshot_add(f->cat.c, &cs), 0);
        assert_int_equal(catalog_index_begin(f->cat.c, "v", cs.seq, &ix), 0);
        if (prev < 0)
                put(ix, "", 1, 0, false);
        for (int i = 0; i < NPATHS; i++) {
                char p[8];
                path_name(i, p);
                int was = prev < 0 ? 0 : f->s[prev].state[i];
                if (state[i] && !was)
                        put(ix, p, 2, state[i], false);
                else if (state[i] && was != state[i])
                        put(ix, p, 2, state[i], true);
                else if (!state[i] && was)
                        assert_int_equal(catalog_index_remove(ix, p, strlen(p)), 0);
        }
        catalog_index_free(ix);
        assert_int_equal(catalog_commit(f->cat.c), 0);
        f->n++;
}

static void forget(struct fixture *f, int i)
{
        assert_int_equal(catalog_snapshot_remove(f->cat.c, f->s[i].id), 1);
        f->s[i].alive = false;
        assert_int_equal(catalog_snapshot_remove(f->cat.c, f->s[i].id), 0);
        assert_int_equal(catalog_snapshot_forgetting(f->cat.c, f->s[i].id), 1);
}

struct seen {
        int state[NPATHS];
        int count;
};

static int on_ls(void *ud, const struct catalog_file *file)
{
        struct seen *s = ud;
        int i = path_index(file);
        if (i >= 0) {
                s->state[i] = file->content[0];
                s->count++;
        }
        return 0;
}

struct find_ctx {
        struct fixture *f;
        int hits;
};

static int on_find(void *ud, const struct catalog_hit *h)
{
        struct find_ctx *x = ud;
        int i = path_index(&h->file), found = 0;
        assert_true(i >= 0);
        for (int k = 0; k < x->f->n; k++)
                if (strcmp(x->f->s[k].id, h->snapshot) == 0) {
                        assert_true(x->f->s[k].alive);
                        assert_int_equal(x->f->s[k].state[i], h->file.content[0]);
                        found = 1;
                }
        assert_true(found);
        x->hits++;
        return 0;
}

static int on_diff(void *ud, const struct catalog_file *a, const struct catalog_file *b)
{
        (*(int *)ud)++;
        return 0;
}

/* Every query, against the model. */
static void verify(struct fixture *f)
{
        struct catalog_snapshot *list;
        size_t n;
        int live = 0, expect_hits = 0;
        assert_int_equal(catalog_snapshot_list(f->cat.c, "v", &list, &n), 0);
        for (int k = 0; k < f->n; k++)
                live += f->s[k].alive;
        assert_int_equal(n, (size_t)live);

        for (size_t a = 0; a < n; a++) {
                int ka = -1;
                for (int k = 0; k < f->n; k++)
                        if (strcmp(f->s[k].id, list[a].id) == 0)
                                ka = k;
                assert_true(ka >= 0 && f->s[ka].alive);
                struct seen seen = { 0 };
                assert_int_equal(catalog_ls(f->cat.c, "v", list[a].seq, "", 0, on_ls, &seen), 1);
                for (int i = 0; i < NPATHS; i++) {
                        if (seen.state[i] != f->s[ka].state[i])
                                fail_msg("snapshot %d (seq %lld), path f%d: catalog %d, model %d", ka + 1,
                                         (long long)list[a].seq, i, seen.state[i], f->s[ka].state[i]);
                        expect_hits += f->s[ka].state[i] != 0;
                }
                for (size_t b = 0; b < n; b++) {
                        int kb = -1, changes = 0, expect = 0;
                        for (int k = 0; k < f->n; k++)
                                if (strcmp(f->s[k].id, list[b].id) == 0)
                                        kb = k;
                        for (int i = 0; i < NPATHS; i++)
                                expect += f->s[ka].state[i] != f->s[kb].state[i];
                        assert_int_equal(catalog_diff(f->cat.c, "v", list[a].seq, "v", list[b].seq, on_diff, &changes),
                                         0);
                        if (changes != expect)
                                fail_msg("diff %d..%d: %d changes, model %d", ka + 1, kb + 1, changes, expect);
                }
        }
        struct find_ctx x = { f, 0 };
        assert_int_equal(catalog_find(f->cat.c, "f*", "v", on_find, &x), 0);
        assert_int_equal(x.hits, expect_hits);

        struct catalog_snapshot latest;
        int nw = newest(f);
        assert_int_equal(catalog_snapshot_latest(f->cat.c, "v", INT64_MAX, &latest), nw >= 0);
        if (nw >= 0) {
                assert_string_equal(latest.id, f->s[nw].id);
                catalog_snapshot_clear(&latest);
        }
        /* no row outlives every snapshot it was valid in */
        assert_int_equal(sql_int(f->cat.path, "SELECT count(*) FROM files f WHERE NOT EXISTS (SELECT 1 FROM snapshots s"
                                          " WHERE s.name = f.name AND s.seq >= f.since"
                                          " AND (f.until IS NULL OR s.seq < f.until))"),
                         0);
        catalog_snapshot_list_free(list, n);
}

static void test_forget_keeps_queries_right(void **state)
{
        struct fixture *f = *state;
        /* each path changes, disappears and comes back at its own pace */
        for (int k = 0; k < 8; k++) {
                int st[NPATHS];
                for (int i = 0; i < NPATHS; i++)
                        st[i] = ((k + 1) % (i + 2) == 0) ? 0 : 1 + (k / (i + 1)) % 3;
                add(f, st);
        }
        verify(f);
        forget(f, 3); /* from the middle */
        verify(f);
        forget(f, 4); /* its neighbour: a run of two gone */
        verify(f);
        forget(f, 7); /* the newest */
        verify(f);
        /* the next snapshot is indexed against the one before the forgotten
         * newest, under a seq number that was used before */
        int st[NPATHS] = { 5, 0, 5, 1, 0, 2 };
        add(f, st);
        verify(f);
        forget(f, 0); /* the oldest */
        verify(f);
        forget(f, 6);
        forget(f, 8);
        verify(f);
        int st2[NPATHS] = { 1, 2, 3, 0, 0, 0 };
        add(f, st2);
        verify(f);
        for (int k = 0; k < f->n; k++)
                if (f->s[k].alive)
                        forget(f, k);
        verify(f);
        assert_int_equal(sql_int(f->cat.path, "SELECT count(*) FROM files"), 0);
        /* and a series can start again */
        add(f, st2);
        verify(f);
}

static void test_forget_records(void **state)
{
        struct fixture *f = *state;
        int st[NPATHS] = { 1 };
        add(f, st);
        add(f, st);
        char **ids;
        size_t n;
        assert_int_equal(catalog_keep_set(f->cat.c, f->s[0].id, true), 1);
        assert_int_equal(catalog_keep_set(f->cat.c, f->s[0].id, true), 0);
        assert_int_equal(catalog_keep_get(f->cat.c, f->s[0].id), 1);
        assert_int_equal(catalog_keep_get(f->cat.c, f->s[1].id), 0);
        assert_int_equal(catalog_keep_list(f->cat.c, &ids, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(ids[0], f->s[0].id);
        catalog_id_list_free(ids, n);

        /* removing drops the protection and records the forget */
        forget(f, 0);
        assert_int_equal(catalog_keep_get(f->cat.c, f->s[0].id), 0);
        assert_int_equal(catalog_snapshot_forgets(f->cat.c, &ids, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(ids[0], f->s[0].id);
        catalog_id_list_free(ids, n);
        /* recorded again (copied back in): no longer being forgotten */
        struct catalog_snapshot cs = { .name = (char *)"v", .host = (char *)"h", .source = (char *)"/src",
                                       .started = 1, .finished = 1, .status = (char *)"complete" };
        snprintf(cs.id, sizeof cs.id, "%s", f->s[0].id);
        assert_int_equal(catalog_snapshot_add(f->cat.c, &cs), 0);
        assert_int_equal(catalog_snapshot_forgetting(f->cat.c, f->s[0].id), 0);
        assert_int_equal(catalog_snapshot_remove(f->cat.c, f->s[0].id), 1);
        assert_int_equal(catalog_snapshot_forgetting(f->cat.c, f->s[0].id), 1);
        assert_int_equal(catalog_snapshot_forget_done(f->cat.c, f->s[0].id), 0);
        assert_int_equal(catalog_snapshot_forgetting(f->cat.c, f->s[0].id), 0);
        assert_int_equal(catalog_keep_set(f->cat.c, f->s[1].id, false), 0);
}

static void test_reader_of_old_catalog(void **state)
{
        struct fixture *f = *state;
        /* a catalog from before protection: a reader sees none */
        sqlite3 *db;
        assert_int_equal(sqlite3_open(f->cat.path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "DROP TABLE snapshot_keep; DROP TABLE snapshot_forgets", NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(db);
        struct catalog *ro;
        assert_int_equal(catalog_open_reader(f->cat.path, true, &ro), 0);
        assert_int_equal(catalog_keep_get(ro, "00"), 0);
        char **ids;
        size_t n;
        assert_int_equal(catalog_keep_list(ro, &ids, &n), 0);
        assert_int_equal(n, 0);
        catalog_free(ro);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_forget_keeps_queries_right, setup, teardown),
                cmocka_unit_test_setup_teardown(test_forget_records, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reader_of_old_catalog, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
