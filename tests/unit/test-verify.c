/* test-verify.c — snapshot_verify_tree() against a restored tree: a fresh
 * restore matches; a changed byte (time kept), a changed mode, a symlink
 * pointing elsewhere (time kept) and a deleted file (its directory's time
 * kept) are each reported, by path, with what differs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "../../snapshot/internal.h"

static char dir[64];

static void path(char *buf, size_t n, const char *rel)
{
        snprintf(buf, n, "%s/%s", dir, rel);
}

static void write_file(const char *rel, size_t n, bool random)
{
        char p[256];
        path(p, sizeof p, rel);
        uint8_t *b = xcalloc(n + 1, 1);
        for (size_t i = 0; random && i < n; i += 256)
                assert_int_equal(getrandom(b + i, MIN(256, n - i), 0), (ssize_t)MIN(256, n - i));
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write_all(fd, b, n), 0);
        close(fd);
        free(b);
}

/* Runs fn on out/rel with the entry's times put back afterwards. */
static struct timespec saved[2];
static void save_time(const char *rel)
{
        char p[256];
        struct stat st;
        path(p, sizeof p, rel);
        assert_int_equal(lstat(p, &st), 0);
        saved[0] = st.st_atim;
        saved[1] = st.st_mtim;
}
static void restore_time(const char *rel)
{
        char p[256];
        path(p, sizeof p, rel);
        assert_int_equal(utimensat(AT_FDCWD, p, saved, AT_SYMLINK_NOFOLLOW), 0);
}

static void test_verify(void **state)
{
        (void)state;
        snprintf(dir, sizeof dir, "/tmp/berth-verify.XXXXXX");
        assert_non_null(mkdtemp(dir));
        char p[256], q[256];
        path(p, sizeof p, "src");
        assert_int_equal(mkdir(p, 0755), 0);
        path(p, sizeof p, "src/d");
        assert_int_equal(mkdir(p, 0750), 0);
        write_file("src/a-big", 900 * 1024, true);
        write_file("src/b-mode", 10, true);
        write_file("src/d/e-gone", 100, true);
        write_file("src/s-sparse", 0, false);
        path(p, sizeof p, "src/s-sparse");
        assert_int_equal(truncate(p, 8 << 20), 0);
        int fd = open(p, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, "hello", 5, 3 << 20), 5);
        close(fd);
        path(p, sizeof p, "src/l-link");
        assert_int_equal(symlink("a-big", p), 0);

        path(p, sizeof p, "repo");
        assert_int_equal(repo_init(p, NULL), 0);
        struct repo *r;
        assert_int_equal(repo_open(p, REPO_WRITE, 0, &r), 0);
        path(q, sizeof q, "src");
        struct backup_options o = { .path = q, .name = "t" };
        struct backup_result br;
        assert_int_equal(snapshot_backup(r, &o, &br), 0);
        path(q, sizeof q, "out");
        struct restore_options ro = { .target = q };
        struct restore_result rr;
        assert_int_equal(snapshot_restore(r, br.id, &ro, &rr), 0);

        struct verify_result v;
        assert_int_equal(snapshot_verify_tree(r, br.id, q, NULL, 0, &v), 0);
        assert_int_equal(v.mismatches, 0);
        assert_int_equal(v.checked, 7); /* ., a-big, b-mode, d, d/e-gone, l-link, s-sparse */
        verify_result_clear(&v);

        struct timespec top[2];
        save_time("out");
        memcpy(top, saved, sizeof top);
        /* One byte in the middle of a multi-chunk file, its time kept. */
        save_time("out/a-big");
        path(p, sizeof p, "out/a-big");
        fd = open(p, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        uint8_t c;
        assert_int_equal(pread(fd, &c, 1, 500 * 1024), 1);
        c ^= 1;
        assert_int_equal(pwrite(fd, &c, 1, 500 * 1024), 1);
        close(fd);
        restore_time("out/a-big");
        /* A mode. */
        path(p, sizeof p, "out/b-mode");
        assert_int_equal(chmod(p, 0600), 0);
        /* A deleted file, its directory's time kept. */
        save_time("out/d");
        path(p, sizeof p, "out/d/e-gone");
        assert_int_equal(unlink(p), 0);
        restore_time("out/d");
        /* A symlink pointing elsewhere, its time kept. */
        save_time("out/l-link");
        path(p, sizeof p, "out/l-link");
        assert_int_equal(unlink(p), 0);
        assert_int_equal(symlink("b-mode", p), 0);
        restore_time("out/l-link");
        memcpy(saved, top, sizeof top);
        restore_time("out");

        assert_int_equal(snapshot_verify_tree(r, br.id, q, NULL, 0, &v), 0);
        assert_int_equal(v.mismatches, 4);
        const char *want[][2] = { { "a-big", "contents differ" }, { "b-mode", "mode 0600" },
                                  { "d/e-gone", "missing" }, { "l-link", "symlink target" } };
        for (size_t i = 0; i < 4; i++) {
                assert_string_equal(v.paths[i], want[i][0]);
                assert_non_null(strstr(v.reasons[i], want[i][1]));
        }
        verify_result_clear(&v);

        /* A change in a sparse file's data, and includes select. */
        save_time("out/s-sparse");
        path(p, sizeof p, "out/s-sparse");
        fd = open(p, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, "J", 1, 3 << 20), 1);
        close(fd);
        restore_time("out/s-sparse");
        const char *inc[] = { "s-sparse" };
        assert_int_equal(snapshot_verify_tree(r, br.id, q, inc, 1, &v), 0);
        assert_int_equal(v.mismatches, 1);
        assert_string_equal(v.paths[0], "s-sparse");
        verify_result_clear(&v);

        repo_free(r);
        rm_rf_at(AT_FDCWD, dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_verify),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
