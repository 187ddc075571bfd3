/* test-backend.c — the local directory backend: put/get/get_range/stat/
 * list/delete, create-if-absent, names refused, the durability steps (fsync
 * of the file, of its directory and of a new directory's parent), and
 * range reads from many threads through its descriptor cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../../snapshot/backend.h"

/* ---- fsync, recorded: which inodes were synced --------------------------------- */

#define MAX_SYNCS 1024
static struct {
        dev_t dev;
        ino_t ino;
} syncs[MAX_SYNCS];
static size_t nsyncs;
static pthread_mutex_t sync_lock = PTHREAD_MUTEX_INITIALIZER;

/* Replaces libc's fsync for everything linked into this test. */
int fsync(int fd)
{
        struct stat st;
        if (fstat(fd, &st) == 0) {
                pthread_mutex_lock(&sync_lock);
                if (nsyncs < MAX_SYNCS) {
                        syncs[nsyncs].dev = st.st_dev;
                        syncs[nsyncs].ino = st.st_ino;
                        nsyncs++;
                }
                pthread_mutex_unlock(&sync_lock);
        }
        return (int)syscall(SYS_fsync, fd);
}

static bool was_synced(const char *dir, const char *rel)
{
        char p[512];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, rel);
        if (lstat(p, &st) < 0)
                return false;
        for (size_t i = 0; i < nsyncs; i++)
                if (syncs[i].dev == st.st_dev && syncs[i].ino == st.st_ino)
                        return true;
        return false;
}

/* ---- fixture ------------------------------------------------------------------------ */

struct fixture {
        char dir[64];
        struct backend *be;
};

static int setup(void **state)
{
        struct fixture *f = xcalloc(1, sizeof *f);
        snprintf(f->dir, sizeof f->dir, "/tmp/berth-backend.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_int_equal(backend_local_init(f->dir), 0);
        assert_int_equal(backend_local_open(f->dir, true, &f->be), 0);
        nsyncs = 0;
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        backend_free(f->be);
        rm_rf_at(AT_FDCWD, f->dir);
        free(f);
        return 0;
}

static size_t count_files(const char *dir, const char *sub)
{
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, sub);
        DIR *d = opendir(p);
        assert_non_null(d);
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

static const char HEX1[] = "ab00000000000000000000000000000000000000000000000000000000000001";

/* ---- tests --------------------------------------------------------------------------- */

static void test_put_get(void **state)
{
        struct fixture *f = *state;
        struct buf b = { 0 };
        uint64_t size;

        assert_int_equal(backend_get(f->be, "config", 1024, &b), -ENOENT);
        assert_int_equal(backend_stat(f->be, "config", &size), -ENOENT);
        assert_int_equal(backend_put(f->be, "config", "hello\n", 6), 1);
        assert_int_equal(backend_get(f->be, "config", 1024, &b), 0);
        assert_int_equal(b.len, 6);
        assert_memory_equal(b.data, "hello\n", 6);
        assert_int_equal(backend_get(f->be, "config", 5, &b), -EFBIG);
        assert_int_equal(backend_stat(f->be, "config", &size), 0);
        assert_int_equal(size, 6);
        /* a new directory for the name is made */
        assert_int_equal(backend_put(f->be, "snapshots/x1", "s", 1), 1);
        assert_int_equal(backend_put(f->be, "a/b/c", "abc", 3), 1);
        assert_int_equal(backend_get(f->be, "a/b/c", 1024, &b), 0);
        assert_memory_equal(b.data, "abc", 3);
        /* nothing left in the spool */
        assert_int_equal(count_files(f->dir, "tmp"), 0);
        buf_free(&b);
}

static void test_create_if_absent(void **state)
{
        struct fixture *f = *state;
        struct buf b = { 0 };

        assert_int_equal(backend_put(f->be, "snapshots/s", "same", 4), 1);
        /* the same bytes again: success, nothing created */
        assert_int_equal(backend_put(f->be, "snapshots/s", "same", 4), 0);
        /* other bytes: refused, and the object is untouched */
        assert_int_equal(backend_put(f->be, "snapshots/s", "other", 5), -EEXIST);
        assert_int_equal(backend_put(f->be, "snapshots/s", "samf", 4), -EEXIST);
        assert_int_equal(backend_get(f->be, "snapshots/s", 1024, &b), 0);
        assert_int_equal(b.len, 4);
        assert_memory_equal(b.data, "same", 4);
        assert_int_equal(count_files(f->dir, "tmp"), 0);
        assert_int_equal(count_files(f->dir, "snapshots"), 1);
        buf_free(&b);
}

static void test_get_range(void **state)
{
        struct fixture *f = *state;
        uint8_t data[10000], got[100];
        for (size_t i = 0; i < sizeof data; i++)
                data[i] = (uint8_t)(i * 7);
        assert_int_equal(backend_put(f->be, "packs/ab/p", data, sizeof data), 1);
        assert_int_equal(backend_get_range(f->be, "packs/ab/p", 5000, 100, got), 0);
        assert_memory_equal(got, data + 5000, 100);
        assert_int_equal(backend_get_range(f->be, "packs/ab/p", 0, 100, got), 0);
        assert_memory_equal(got, data, 100);
        /* past the end */
        assert_int_equal(backend_get_range(f->be, "packs/ab/p", 9950, 100, got), -EIO);
        assert_int_equal(backend_get_range(f->be, "packs/ab/q", 0, 1, got), -ENOENT);
}

static void test_not_objects(void **state)
{
        struct fixture *f = *state;
        char p[512];
        uint64_t size;
        struct buf b = { 0 };
        uint8_t x;

        /* a planted symlink and a directory are not objects */
        assert_int_equal(backend_put(f->be, "config", "c", 1), 1);
        snprintf(p, sizeof p, "%s/snapshots/link", f->dir);
        assert_int_equal(symlink("../config", p), 0);
        assert_int_equal(backend_stat(f->be, "snapshots/link", &size), -ENOENT);
        assert_int_equal(backend_get(f->be, "snapshots/link", 100, &b), -ENOENT);
        assert_int_equal(backend_get_range(f->be, "snapshots/link", 0, 1, &x), -ENOENT);
        assert_int_equal(backend_stat(f->be, "packs", &size), -ENOENT);
        /* names that could leave the repository, or are not names */
        const char *bad[] = { "", "/etc/passwd", "../x", "packs/../config", "a//b", "a/", ".hidden", "packs/.x",
                              "a b", "x\n" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(backend_stat(f->be, bad[i], &size), -EINVAL);
                assert_int_equal(backend_get(f->be, bad[i], 100, &b), -EINVAL);
                assert_int_equal(backend_put(f->be, bad[i], "x", 1), -EINVAL);
                assert_int_equal(backend_delete(f->be, bad[i]), -EINVAL);
        }
        buf_free(&b);
}

struct listed {
        char names[64][128];
        uint64_t sizes[64];
        size_t n;
};

static int collect(void *ud, const char *name, uint64_t size)
{
        struct listed *l = ud;
        assert_true(l->n < 64);
        snprintf(l->names[l->n], sizeof l->names[0], "%s", name);
        l->sizes[l->n++] = size;
        return 0;
}

static bool has(const struct listed *l, const char *name, uint64_t size)
{
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->names[i], name) == 0)
                        return l->sizes[i] == size;
        return false;
}

static int stop_at_first(void *ud, const char *name, uint64_t size) { return -ECANCELED; }

static void test_list(void **state)
{
        struct fixture *f = *state;
        char p[512];
        struct listed l = { 0 };

        assert_int_equal(backend_put(f->be, "config", "cfg", 3), 1);
        assert_int_equal(backend_put(f->be, "packs/ab/one", "1", 1), 1);
        assert_int_equal(backend_put(f->be, "packs/ab/two", "22", 2), 1);
        assert_int_equal(backend_put(f->be, "packs/cd/three", "333", 3), 1);
        assert_int_equal(backend_put(f->be, "snapshots/s1", "s", 1), 1);
        /* not objects: temporary files, local state */
        snprintf(p, sizeof p, "%s/snapshots/.s2.1234.tmp", f->dir);
        close(open(p, O_CREAT | O_WRONLY, 0644));
        snprintf(p, sizeof p, "%s/tmp/pack-1.tmp", f->dir);
        close(open(p, O_CREAT | O_WRONLY, 0644));
        snprintf(p, sizeof p, "%s/catalog.db", f->dir);
        close(open(p, O_CREAT | O_WRONLY, 0644));
        snprintf(p, sizeof p, "%s/lock", f->dir);
        close(open(p, O_CREAT | O_WRONLY, 0644));

        assert_int_equal(backend_list(f->be, "packs/", collect, &l), 0);
        assert_int_equal(l.n, 3);
        assert_true(has(&l, "packs/ab/one", 1));
        assert_true(has(&l, "packs/ab/two", 2));
        assert_true(has(&l, "packs/cd/three", 3));

        memset(&l, 0, sizeof l);
        assert_int_equal(backend_list(f->be, "snapshots/", collect, &l), 0);
        assert_int_equal(l.n, 1);
        assert_true(has(&l, "snapshots/s1", 1));

        memset(&l, 0, sizeof l);
        assert_int_equal(backend_list(f->be, "", collect, &l), 0);
        assert_int_equal(l.n, 5);
        assert_true(has(&l, "config", 3));

        memset(&l, 0, sizeof l);
        assert_int_equal(backend_list(f->be, "nothing/", collect, &l), 0);
        assert_int_equal(l.n, 0);
        assert_int_equal(backend_list(f->be, "packs/", stop_at_first, NULL), -ECANCELED);
        assert_int_equal(backend_list(f->be, "../", collect, &l), -EINVAL);
        assert_int_equal(backend_list(f->be, "packs", collect, &l), -EINVAL);
}

static void test_delete(void **state)
{
        struct fixture *f = *state;
        uint8_t x;
        uint64_t size;

        assert_int_equal(backend_put(f->be, "packs/ab/d", "data", 4), 1);
        /* cached by a read, then deleted: the cache must not serve it */
        assert_int_equal(backend_get_range(f->be, "packs/ab/d", 1, 1, &x), 0);
        assert_int_equal(x, 'a');
        nsyncs = 0;
        assert_int_equal(backend_delete(f->be, "packs/ab/d"), 0);
        assert_true(was_synced(f->dir, "packs/ab"));
        assert_int_equal(backend_stat(f->be, "packs/ab/d", &size), -ENOENT);
        assert_int_equal(backend_get_range(f->be, "packs/ab/d", 1, 1, &x), -ENOENT);
        assert_int_equal(backend_delete(f->be, "packs/ab/d"), -ENOENT);
        /* a new object under the name: read afresh */
        assert_int_equal(backend_put(f->be, "packs/ab/d", "DATA", 4), 1);
        assert_int_equal(backend_get_range(f->be, "packs/ab/d", 1, 1, &x), 0);
        assert_int_equal(x, 'A');
}

/* A spool file written in tmp/, as the pack writer does. */
static int make_spool(struct fixture *f, const char *name, const void *data, size_t n, struct backend_spool *ret)
{
        char p[512];
        snprintf(p, sizeof p, "%s/tmp", f->dir);
        int dfd = open(p, O_RDONLY | O_DIRECTORY);
        assert_true(dfd >= 0);
        int fd = openat(dfd, name, O_RDWR | O_CREAT | O_EXCL, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write_all(fd, data, n), 0);
        *ret = (struct backend_spool){ .dirfd = dfd, .name = name, .fd = fd, .size = n };
        return 0;
}

static void free_spool(struct backend_spool *s)
{
        unlinkat(s->dirfd, s->name, 0);
        close(s->fd);
        close(s->dirfd);
}

static void test_put_file_durable(void **state)
{
        struct fixture *f = *state;
        struct backend_spool s;
        char name[128];
        struct buf b = { 0 };

        snprintf(name, sizeof name, "packs/ab/%s", HEX1);
        make_spool(f, "pack-1.tmp", "pack bytes", 10, &s);
        nsyncs = 0;
        assert_int_equal(backend_put_file(f->be, name, &s), 1);
        /* the file, its new fan-out directory, and that directory's parent */
        assert_true(was_synced(f->dir, name));
        assert_true(was_synced(f->dir, "packs/ab"));
        assert_true(was_synced(f->dir, "packs"));
        /* the spool stays the caller's */
        assert_int_equal(faccessat(s.dirfd, s.name, F_OK, 0), 0);
        assert_int_equal(backend_get(f->be, name, 100, &b), 0);
        assert_int_equal(b.len, 10);
        assert_memory_equal(b.data, "pack bytes", 10);
        /* the same bytes again: success; other bytes: refused, untouched */
        assert_int_equal(backend_put_file(f->be, name, &s), 0);
        free_spool(&s);
        make_spool(f, "pack-2.tmp", "PACK BYTES", 10, &s);
        assert_int_equal(backend_put_file(f->be, name, &s), -EEXIST);
        free_spool(&s);
        assert_int_equal(backend_get(f->be, name, 100, &b), 0);
        assert_memory_equal(b.data, "pack bytes", 10);
        assert_int_equal(count_files(f->dir, "tmp"), 0);

        /* a small object: the file and its directory */
        nsyncs = 0;
        assert_int_equal(backend_put(f->be, "snapshots/s", "snap", 4), 1);
        assert_true(was_synced(f->dir, "snapshots/s"));
        assert_true(was_synced(f->dir, "snapshots"));
        buf_free(&b);
}

/* A spool on another file system is copied, not linked. */
static void test_put_file_elsewhere(void **state)
{
        struct fixture *f = *state;
        struct stat a, c;
        if (stat("/dev/shm", &c) < 0 || stat(f->dir, &a) < 0 || a.st_dev == c.st_dev)
                skip();
        char dir[] = "/dev/shm/berth-spool.XXXXXX";
        if (!mkdtemp(dir))
                skip();
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        int fd = openat(dfd, "s", O_RDWR | O_CREAT | O_EXCL, 0644);
        assert_int_equal(write_all(fd, "elsewhere", 9), 0);
        struct backend_spool s = { .dirfd = dfd, .name = "s", .fd = fd, .size = 9 };
        assert_int_equal(backend_put_file(f->be, "packs/ee/x", &s), 1);
        struct buf b = { 0 };
        assert_int_equal(backend_get(f->be, "packs/ee/x", 100, &b), 0);
        assert_int_equal(b.len, 9);
        assert_memory_equal(b.data, "elsewhere", 9);
        assert_int_equal(count_files(f->dir, "tmp"), 0);
        buf_free(&b);
        close(fd);
        close(dfd);
        rm_rf_at(AT_FDCWD, dir);
}

static void test_read_only(void **state)
{
        struct fixture *f = *state;
        struct backend *ro;
        struct backend_spool s;
        struct buf b = { 0 };

        assert_int_equal(backend_put(f->be, "config", "c", 1), 1);
        assert_int_equal(backend_local_open(f->dir, false, &ro), 0);
        assert_int_equal(backend_get(ro, "config", 10, &b), 0);
        assert_int_equal(backend_put(ro, "x", "x", 1), -EROFS);
        make_spool(f, "s.tmp", "x", 1, &s);
        assert_int_equal(backend_put_file(ro, "y", &s), -EROFS);
        free_spool(&s);
        assert_int_equal(backend_delete(ro, "config"), -EROFS);
        backend_free(ro);
        assert_int_equal(backend_local_open("/nonexistent/berth-backend", false, &ro), -ENOENT);
        buf_free(&b);
}

/* Many threads read ranges of more objects than the descriptor cache
 * holds: every read returns the right bytes. */
#define OBJECTS 40
#define OBJ_SIZE 4096

struct reader_arg {
        struct backend *be;
        unsigned seed;
        int bad;
};

static uint8_t obj_byte(unsigned obj, size_t off) { return (uint8_t)(obj * 31 + off * 7); }

static void *reader(void *p)
{
        struct reader_arg *a = p;
        uint8_t buf[64];
        char name[64];
        for (int i = 0; i < 20000; i++) {
                a->seed = a->seed * 1103515245 + 12345;
                unsigned obj = (a->seed >> 8) % OBJECTS;
                size_t off = (a->seed >> 16) % (OBJ_SIZE - sizeof buf);
                snprintf(name, sizeof name, "packs/%02x/obj%u", obj % 4, obj);
                if (backend_get_range(a->be, name, off, sizeof buf, buf) < 0) {
                        a->bad++;
                        continue;
                }
                for (size_t k = 0; k < sizeof buf; k++)
                        if (buf[k] != obj_byte(obj, off + k)) {
                                a->bad++;
                                break;
                        }
        }
        return NULL;
}

static void test_threaded_reads(void **state)
{
        struct fixture *f = *state;
        uint8_t data[OBJ_SIZE];
        char name[64];
        for (unsigned o = 0; o < OBJECTS; o++) {
                for (size_t k = 0; k < OBJ_SIZE; k++)
                        data[k] = obj_byte(o, k);
                snprintf(name, sizeof name, "packs/%02x/obj%u", o % 4, o);
                assert_int_equal(backend_put(f->be, name, data, sizeof data), 1);
        }
        pthread_t t[6];
        struct reader_arg args[6];
        for (int i = 0; i < 6; i++) {
                args[i] = (struct reader_arg){ .be = f->be, .seed = (unsigned)i * 7919 + 1 };
                assert_int_equal(pthread_create(&t[i], NULL, reader, &args[i]), 0);
        }
        for (int i = 0; i < 6; i++) {
                pthread_join(t[i], NULL);
                assert_int_equal(args[i].bad, 0);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_put_get, setup, teardown),
                cmocka_unit_test_setup_teardown(test_create_if_absent, setup, teardown),
                cmocka_unit_test_setup_teardown(test_get_range, setup, teardown),
                cmocka_unit_test_setup_teardown(test_not_objects, setup, teardown),
                cmocka_unit_test_setup_teardown(test_list, setup, teardown),
                cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
                cmocka_unit_test_setup_teardown(test_put_file_durable, setup, teardown),
                cmocka_unit_test_setup_teardown(test_put_file_elsewhere, setup, teardown),
                cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
                cmocka_unit_test_setup_teardown(test_threaded_reads, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
