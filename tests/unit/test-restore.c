/* test-restore.c — restore when chunks are missing from the catalog (as
 * after a `catalog rebuild` that followed a lost pack): never a hang,
 * never one file's bytes in another.
 *
 * A snapshot of three multi-chunk files; for the first, a middle and the
 * last chunk of the first, middle and last file, the chunk's catalog row
 * is deleted and the snapshot restored, with and without --partial, in a
 * child process under a timeout.  Without --partial the restore fails and
 * leaves nothing; with it, that one file is left out and every other file
 * is byte-identical to the source. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>

#include "../../snapshot/internal.h"

#define NFILES 3
#define FILE_SIZE (700 * 1024)

struct fixture {
        char dir[64];
        char repo[96], src[96];
        struct chunk_ref *chunks[NFILES];
        size_t nchunks[NFILES];
        char id[2 * HASH_LEN + 1];
        struct buf catalog;   /* catalog.db as it was after the backup */
};

static const char *const names[NFILES] = { "a-first", "m-middle", "z-last" };

static void write_random(const char *path, size_t n)
{
        uint8_t *p = xmalloc(n);
        for (size_t i = 0; i < n; i += 256)
                assert_int_equal(getrandom(p + i, MIN(256, n - i), 0), (ssize_t)MIN(256, n - i));
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write_all(fd, p, n), 0);
        close(fd);
        free(p);
}

static int setup(void **state)
{
        struct fixture *f = xcalloc(1, sizeof *f);
        snprintf(f->dir, sizeof f->dir, "/tmp/berth-restore.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->repo, sizeof f->repo, "%s/repo", f->dir);
        snprintf(f->src, sizeof f->src, "%s/src", f->dir);
        assert_int_equal(mkdir(f->src, 0755), 0);
        for (size_t i = 0; i < NFILES; i++) {
                char p[160];
                snprintf(p, sizeof p, "%s/%s", f->src, names[i]);
                write_random(p, FILE_SIZE);
        }
        assert_int_equal(repo_init(f->repo, NULL), 0);

        struct repo *r;
        assert_int_equal(repo_open(f->repo, REPO_WRITE, 0, &r), 0);
        struct backup_options o = { .path = f->src, .name = "t" };
        struct backup_result res;
        assert_int_equal(snapshot_backup(r, &o, &res), 0);
        memcpy(f->id, res.id, sizeof f->id);

        /* Each file's chunk list, from the manifest. */
        struct snapfile sf = { 0 };
        struct store *s;
        struct manifest_reader *mr;
        assert_int_equal(snapfile_read(r, f->id, &sf), 0);
        assert_int_equal(store_open(r, false, &s), 0);
        assert_int_equal(manifest_reader_new(s, (const uint8_t(*)[HASH_LEN])sf.manifest, sf.nmanifest, &mr), 0);
        const struct entry *e;
        while (manifest_reader_next(mr, &e) > 0)
                for (size_t i = 0; i < NFILES; i++)
                        if (strcmp(e->path, names[i]) == 0) {
                                f->nchunks[i] = e->nchunks;
                                f->chunks[i] = xmalloc(e->nchunks * sizeof *e->chunks);
                                memcpy(f->chunks[i], e->chunks, e->nchunks * sizeof *e->chunks);
                        }
        manifest_reader_free(mr);
        store_free(s);
        snapfile_clear(&sf);
        repo_free(r);
        for (size_t i = 0; i < NFILES; i++)
                assert_true(f->nchunks[i] >= 3); /* a first, a middle and a last chunk */

        _cleanup_close_ int dfd = open(f->repo, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dfd >= 0);
        assert_int_equal(read_file_at(dfd, "catalog.db", 1 << 30, &f->catalog), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        for (size_t i = 0; i < NFILES; i++)
                free(f->chunks[i]);
        buf_free(&f->catalog);
        rm_rf_at(AT_FDCWD, f->dir);
        free(f);
        return 0;
}

/* Puts the catalog back as it was after the backup, less one chunk row. */
static void drop_chunk(struct fixture *f, const uint8_t id[HASH_LEN])
{
        char db[160];
        snprintf(db, sizeof db, "%s/catalog.db", f->repo);
        int dfd = open(f->repo, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dfd >= 0);
        unlinkat(dfd, "catalog.db-wal", 0);
        unlinkat(dfd, "catalog.db-shm", 0);
        assert_int_equal(write_file_atomic(dfd, "catalog.db", f->catalog.data, f->catalog.len, 0644), 0);
        close(dfd);
        sqlite3 *h;
        assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(h, "DELETE FROM chunks WHERE hash = ?", -1, &st, NULL), SQLITE_OK);
        sqlite3_bind_blob(st, 1, id, HASH_LEN, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        assert_int_equal(sqlite3_changes(h), 1);
        sqlite3_finalize(st);
        sqlite3_close(h);
}

static bool same_file(const char *a, const char *b)
{
        struct buf x = { 0 }, y = { 0 };
        bool same = read_file_at(AT_FDCWD, a, 1 << 30, &x) == 0 && read_file_at(AT_FDCWD, b, 1 << 30, &y) == 0 &&
                    x.len == y.len && memcmp(x.data, y.data, x.len) == 0;
        buf_free(&x);
        buf_free(&y);
        return same;
}

static bool staging_left(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        bool found = false;
        while (d && (de = readdir(d)))
                found |= strncmp(de->d_name, ".berth-restore", 14) == 0;
        if (d)
                closedir(d);
        return found;
}

/* In a child, under a 60 s alarm: restores and checks.  Returns a short
 * code: 0 as expected, else which expectation failed. */
static int child_restore(struct fixture *f, size_t broken, bool partial, const char *target)
{
        alarm(60);
        struct repo *r;
        if (repo_open(f->repo, REPO_READ, 0, &r) < 0)
                return 10;
        struct restore_options o = { .target = target, .partial = partial };
        struct restore_result res = { 0 };
        int k = snapshot_restore(r, f->id, &o, &res);
        repo_free(r);
        if (!partial) {
                if (k != -BERTH_ECORRUPT)
                        return 11;
                if (access(target, F_OK) == 0)
                        return 12; /* nothing left behind */
                return staging_left(f->dir) ? 13 : 0;
        }
        if (k != 0)
                return 14;
        if (res.errors != 1)
                return 15;
        for (size_t i = 0; i < NFILES; i++) {
                char a[160], b[300];
                snprintf(a, sizeof a, "%s/%s", f->src, names[i]);
                snprintf(b, sizeof b, "%s/%s", target, names[i]);
                if (i == broken ? access(b, F_OK) == 0 : !same_file(a, b))
                        return 16 + (int)i;
        }
        return 0;
}

static void test_missing_chunks(void **state)
{
        struct fixture *f = *state;
        for (size_t file = 0; file < NFILES; file++) {
                size_t which[3] = { 0, f->nchunks[file] / 2, f->nchunks[file] - 1 };
                for (size_t w = 0; w < 3; w++)
                        for (int partial = 0; partial < 2; partial++) {
                                drop_chunk(f, f->chunks[file][which[w]].id);
                                char target[256];
                                snprintf(target, sizeof target, "%s/out-%zu-%zu-%d", f->dir, file, w, partial);
                                fflush(NULL);
                                pid_t pid = fork();
                                assert_true(pid >= 0);
                                if (pid == 0)
                                        _exit(child_restore(f, file, partial, target));
                                int status;
                                assert_int_equal(waitpid(pid, &status, 0), pid);
                                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                                        fail_msg("file %s, chunk %zu of %zu, partial %d: %s %d", names[file],
                                                 which[w], f->nchunks[file], partial,
                                                 WIFEXITED(status) ? "check failed:" : "killed by signal",
                                                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
                                rm_rf_at(AT_FDCWD, target);
                        }
        }
}

/* A snapshot whose manifest is refused part-way (a hard link to nothing),
 * after the directories "a" and "a/b" were written: restored from a
 * working directory holding directories of those names, whose modes and
 * times must not change, as libarchive's deferred fix-ups would do once
 * the process is back there. */
static void test_refused_entry(void **state)
{
        struct fixture *f = *state;
        struct repo *r;
        struct store *s;
        assert_int_equal(repo_open(f->repo, REPO_WRITE, 0, &r), 0);
        assert_int_equal(repo_store(r, &s), 0);
        struct manifest_writer *w;
        assert_int_equal(manifest_writer_new(s, &r->tree_chunker, &w), 0);
        const struct { uint8_t type; const char *path, *link; uint32_t mode; } specs[] = {
                { ENTRY_DIR, "", NULL, 0700 },   { ENTRY_DIR, "a", NULL, 0700 },
                { ENTRY_DIR, "a/b", NULL, 0750 }, { ENTRY_HARDLINK, "a/b/h", "nothere", 0644 },
        };
        for (size_t i = 0; i < ELEMENTSOF(specs); i++) {
                struct entry e = { .type = specs[i].type, .path = specs[i].path, .path_len = strlen(specs[i].path),
                                   .mode = specs[i].mode, .uname = "", .gname = "", .acl = "", .link = specs[i].link,
                                   .link_len = specs[i].link ? strlen(specs[i].link) : 0, .mtime_sec = 981173106 };
                assert_int_equal(manifest_writer_add(w, &e), 0);
        }
        struct snapfile sf = { .info = { .name = xstrdup("hostile"), .host = xstrdup("h"), .source = xstrdup("/x"),
                                          .status = xstrdup("complete") } };
        assert_int_equal(manifest_writer_finish(w, &sf.manifest, &sf.nmanifest), 0);
        manifest_writer_free(w);
        assert_int_equal(store_flush(s), 0);
        assert_int_equal(snapfile_write(r, &sf, NULL), 0);

        char cwd[160], target[200];
        snprintf(cwd, sizeof cwd, "%s/cwd", f->dir);
        snprintf(target, sizeof target, "%s/out", f->dir);
        char a[200], ab[200];
        snprintf(a, sizeof a, "%s/a", cwd);
        snprintf(ab, sizeof ab, "%s/a/b", cwd);
        assert_int_equal(mkdir_p(ab, 0755), 0);
        const char *const dirs[] = { cwd, a, ab };
        struct timespec old[2] = { { 1577836800, 0 }, { 1577836800, 0 } };
        for (size_t i = 0; i < 3; i++) {
                assert_int_equal(chmod(dirs[i], 0755), 0);
                assert_int_equal(utimensat(AT_FDCWD, dirs[i], old, 0), 0);
        }
        int here = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_int_equal(chdir(cwd), 0);
        struct restore_options o = { .target = target };
        struct restore_result res;
        int k = snapshot_restore(r, sf.info.id, &o, &res);
        assert_int_equal(fchdir(here), 0);
        close(here);
        assert_true(k < 0);
        assert_int_equal(access(target, F_OK), -1);
        assert_false(staging_left(f->dir));
        for (size_t i = 0; i < 3; i++) {
                struct stat st;
                assert_int_equal(stat(dirs[i], &st), 0);
                assert_int_equal(st.st_mode & 07777, 0755);
                assert_int_equal(st.st_mtim.tv_sec, 1577836800);
        }
        snapfile_clear(&sf);
        repo_free(r);
}

int main(void)
{
        log_set_level(LOG_WARNING);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_missing_chunks, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refused_entry, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
