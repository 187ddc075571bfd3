/* test-manifest.c — entry records, ordering, and the reader's refusal of
 * hostile manifests, through a real repository. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "../../snapshot/internal.h"

static void test_path_order(void **state)
{
        assert_true(path_cmp("a", 1, "a/b", 3) < 0);
        assert_true(path_cmp("a/b", 3, "a.b", 3) < 0);
        assert_true(path_cmp("a.b", 3, "b", 1) < 0);
        assert_true(path_cmp("a/z", 3, "a.b", 3) < 0);
        assert_int_equal(path_cmp("x/y", 3, "x/y", 3), 0);
        assert_true(path_cmp("", 0, "a", 1) < 0);
}

static void test_record_round_trip(void **state)
{
        struct xattr xa[2] = { { "user.a", (const uint8_t *)"\x00\x01\x02", 3 }, { "user.b", (const uint8_t *)"", 0 } };
        struct sparse_region sp[2] = { { 0, 100 }, { 4096, 50 } };
        struct chunk_ref ch[3] = { { { 1 }, 50 }, { { 2 }, 60 }, { { 3 }, 40 } };
        struct entry e = {
                .type = ENTRY_REG, .path = "dir/file", .path_len = 8, .mode = 04755, .uid = 12345, .gid = 54321,
                .uname = "u", .gname = "g", .mtime_sec = -5, .mtime_nsec = 999999999, .ctime_sec = 1700000000,
                .ctime_nsec = 1, .ino = 77, .size = 5000, .flags = ENTRY_F_INCONSISTENT, .fflags_set = 0x10,
                .xattrs = xa, .nxattrs = 2, .acl = "user:1:r--", .sparse = sp, .nsparse = 2, .chunks = ch,
                .nchunks = 3,
        };
        struct buf b = { 0 };
        entry_encode(&e, &b);
        struct entry_store es = { 0 };
        assert_int_equal(entry_decode(b.data, b.len, &es), 0);
        const struct entry *d = &es.e;
        assert_string_equal(d->path, "dir/file");
        assert_int_equal(d->mode, 04755);
        assert_int_equal(d->uid, 12345);
        assert_int_equal(d->mtime_sec, -5);
        assert_int_equal(d->mtime_nsec, 999999999);
        assert_int_equal(d->nxattrs, 2);
        assert_memory_equal(d->xattrs[0].value, "\x00\x01\x02", 3);
        assert_string_equal(d->acl, "user:1:r--");
        assert_int_equal(d->nsparse, 2);
        assert_int_equal(d->sparse[1].offset, 4096);
        assert_int_equal(d->nchunks, 3);
        assert_int_equal(d->chunks[2].id[0], 3);
        assert_int_equal(d->flags, ENTRY_F_INCONSISTENT);
        /* every truncation is refused */
        for (size_t n = 0; n < b.len; n++)
                assert_int_equal(entry_decode(b.data, n, &es), -BERTH_ECORRUPT);
        entry_store_free(&es);
        buf_free(&b);
}

struct repo_fixture {
        char dir[64];
        struct repo *repo;
        struct store *store;
};

static int setup(void **state)
{
        struct repo_fixture *f = xcalloc(1, sizeof *f);
        snprintf(f->dir, sizeof f->dir, "/tmp/berth-man.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        char path[128];
        snprintf(path, sizeof path, "%s/repo", f->dir);
        assert_int_equal(repo_init(path, NULL), 0);
        assert_int_equal(repo_open(path, REPO_WRITE, 0, &f->repo), 0);
        assert_int_equal(repo_store(f->repo, &f->store), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct repo_fixture *f = *state;
        repo_free(f->repo);
        rm_rf_at(AT_FDCWD, f->dir);
        free(f);
        return 0;
}

struct spec {
        uint8_t type;
        const char *path;
        const char *link;
        uint32_t flags;
};

/* Writes a manifest of the given entries and reads it back; returns the
 * number read before the first error (and *ret_err that error). */
static size_t write_and_read(struct repo_fixture *f, const struct spec *specs, size_t n, int *ret_err)
{
        struct manifest_writer *w;
        assert_int_equal(manifest_writer_new(f->store, &f->repo->tree_chunker, &w), 0);
        for (size_t i = 0; i < n; i++) {
                struct entry e = { .type = specs[i].type, .path = specs[i].path, .path_len = strlen(specs[i].path),
                                   .mode = 0644, .uname = "", .gname = "", .acl = "", .link = specs[i].link,
                                   .link_len = specs[i].link ? strlen(specs[i].link) : 0, .flags = specs[i].flags };
                assert_int_equal(manifest_writer_add(w, &e), 0);
        }
        uint8_t (*ids)[HASH_LEN];
        size_t nids;
        assert_int_equal(manifest_writer_finish(w, &ids, &nids), 0);
        manifest_writer_free(w);
        assert_int_equal(store_flush(f->store), 0);

        struct manifest_reader *r;
        assert_int_equal(manifest_reader_new(f->store, (const uint8_t(*)[HASH_LEN])ids, nids, &r), 0);
        const struct entry *e;
        size_t count = 0;
        int k;
        while ((k = manifest_reader_next(r, &e)) > 0) {
                assert_string_equal(e->path, specs[count].path);
                count++;
        }
        *ret_err = k;
        manifest_reader_free(r);
        free(ids);
        return count;
}

static void test_valid_manifest(void **state)
{
        const struct spec ok[] = {
                { ENTRY_DIR, "", NULL, 0 },       { ENTRY_DIR, "d", NULL, 0 },
                { ENTRY_REG, "d/f", NULL, ENTRY_F_LINKED }, { ENTRY_HARDLINK, "d/g", "d/f", 0 },
                { ENTRY_SYMLINK, "d/s", "/abs/anywhere", 0 }, { ENTRY_REG, "d.x", NULL, 0 },
        };
        int err;
        assert_int_equal(write_and_read(*state, ok, ELEMENTSOF(ok), &err), ELEMENTSOF(ok));
        assert_int_equal(err, 0);
}

static void test_large_manifest_spans_chunks(void **state)
{
        struct repo_fixture *f = *state;
        size_t n = 3000;
        struct spec *specs = xcalloc(n, sizeof *specs);
        char **names = xcalloc(n, sizeof *names);
        specs[0] = (struct spec){ ENTRY_DIR, "", NULL, 0 };
        for (size_t i = 1; i < n; i++) {
                names[i] = xasprintf("file-%06zu-with-a-long-name-to-fill-the-manifest", i);
                specs[i] = (struct spec){ ENTRY_REG, names[i], NULL, 0 };
        }
        int err;
        assert_int_equal(write_and_read(f, specs, n, &err), n);
        assert_int_equal(err, 0);
        for (size_t i = 1; i < n; i++)
                free(names[i]);
        free(names);
        free(specs);
}

static void expect_refused(struct repo_fixture *f, const struct spec *specs, size_t n, size_t good)
{
        int err = 0;
        size_t got = write_and_read(f, specs, n, &err);
        assert_int_equal(got, good);
        assert_true(err < 0);
}

static void test_hostile_manifests(void **state)
{
        struct repo_fixture *f = *state;
        const struct spec dotdot[] = { { ENTRY_DIR, "", NULL, 0 }, { ENTRY_REG, "../x", NULL, 0 } };
        expect_refused(f, dotdot, 2, 1);
        const struct spec inner_dotdot[] = { { ENTRY_DIR, "", NULL, 0 }, { ENTRY_DIR, "a", NULL, 0 },
                                             { ENTRY_REG, "a/../../x", NULL, 0 } };
        expect_refused(f, inner_dotdot, 3, 2);
        const struct spec absolute[] = { { ENTRY_DIR, "", NULL, 0 }, { ENTRY_REG, "/abs", NULL, 0 } };
        expect_refused(f, absolute, 2, 1);
        const struct spec empty_comp[] = { { ENTRY_DIR, "", NULL, 0 }, { ENTRY_DIR, "a", NULL, 0 },
                                           { ENTRY_REG, "a//b", NULL, 0 } };
        expect_refused(f, empty_comp, 3, 2);
        const struct spec dup[] = { { ENTRY_DIR, "", NULL, 0 }, { ENTRY_REG, "f", NULL, 0 }, { ENTRY_REG, "f", NULL, 0 } };
        expect_refused(f, dup, 3, 2);
        const struct spec order[] = { { ENTRY_DIR, "", NULL, 0 }, { ENTRY_REG, "b", NULL, 0 }, { ENTRY_REG, "a", NULL, 0 } };
        expect_refused(f, order, 3, 2);
        const struct spec under_file[] = { { ENTRY_DIR, "", NULL, 0 }, { ENTRY_REG, "f", NULL, 0 },
                                           { ENTRY_REG, "f/x", NULL, 0 } };
        expect_refused(f, under_file, 3, 2);
        const struct spec under_link[] = { { ENTRY_DIR, "", NULL, 0 }, { ENTRY_SYMLINK, "l", "/etc", 0 },
                                           { ENTRY_REG, "l/passwd", NULL, 0 } };
        expect_refused(f, under_link, 3, 2);
        const struct spec no_parent[] = { { ENTRY_DIR, "", NULL, 0 }, { ENTRY_REG, "missing/x", NULL, 0 } };
        expect_refused(f, no_parent, 2, 1);
        const struct spec hard_unknown[] = { { ENTRY_DIR, "", NULL, 0 }, { ENTRY_HARDLINK, "h", "nothere", 0 } };
        expect_refused(f, hard_unknown, 2, 1);
        const struct spec hard_unflagged[] = { { ENTRY_DIR, "", NULL, 0 }, { ENTRY_REG, "a", NULL, 0 },
                                               { ENTRY_HARDLINK, "h", "a", 0 } };
        expect_refused(f, hard_unflagged, 3, 2);
        const struct spec hard_outside[] = { { ENTRY_DIR, "", NULL, 0 }, { ENTRY_HARDLINK, "h", "/etc/shadow", 0 } };
        expect_refused(f, hard_outside, 2, 1);
        const struct spec no_root[] = { { ENTRY_DIR, "a", NULL, 0 } };
        expect_refused(f, no_root, 1, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_path_order),
                cmocka_unit_test(test_record_round_trip),
                cmocka_unit_test_setup_teardown(test_valid_manifest, setup, teardown),
                cmocka_unit_test_setup_teardown(test_large_manifest_spans_chunks, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hostile_manifests, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
