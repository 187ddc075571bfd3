/* test-serve.c — snapshot_verify_pack() on real and damaged packs, and
 * serve_run() in-process over a socket pair: ordering, modes, restriction
 * and a PUT refused at PUT_BEGIN whose data is still read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../snapshot/snapshot.h"
#include "../../transport/serve.h"

struct fixture {
        char dir[64];
        char repo[128];
        char pack[128];         /* its object name */
        uint64_t pack_size;
};

static int first_pack(void *ud, const char *name, uint64_t size)
{
        struct fixture *f = ud;
        snprintf(f->pack, sizeof f->pack, "%s", name);
        f->pack_size = size;
        return 0;
}

static int setup(void **state)
{
        struct fixture *f = xcalloc(1, sizeof *f);
        snprintf(f->dir, sizeof f->dir, "/tmp/berth-serve.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->repo, sizeof f->repo, "%s/repo", f->dir);
        _cleanup_free_ char *src = xasprintf("%s/src", f->dir);
        assert_int_equal(mkdir(src, 0700), 0);
        for (int i = 0; i < 3; i++) {
                _cleanup_free_ char *p = xasprintf("%s/file%d", src, i);
                FILE *fp = fopen(p, "w");
                assert_non_null(fp);
                for (int j = 0; j < 20000; j++)
                        fprintf(fp, "%d line %d of a test file\n", i, j);
                fclose(fp);
        }
        assert_int_equal(repo_init(f->repo, NULL), 0);
        struct repo *r;
        assert_int_equal(repo_open(f->repo, REPO_WRITE, 0, &r), 0);
        struct backup_options o = { .path = src, .name = "t" };
        struct backup_result res;
        assert_int_equal(snapshot_backup(r, &o, &res), 0);
        assert_int_equal(backend_list(repo_backend(r), "packs/", first_pack, f), 0);
        repo_free(r);
        assert_true(f->pack[0]);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        rm_rf_at(AT_FDCWD, f->dir);
        free(f);
        return 0;
}

/* A copy of the pack in a temporary file, with byte `flip` inverted (-1: none). */
static int pack_copy(struct fixture *f, long flip)
{
        _cleanup_free_ char *p = xasprintf("%s/%s", f->repo, f->pack);
        _cleanup_close_ int in = open(p, O_RDONLY);
        assert_true(in >= 0);
        _cleanup_free_ uint8_t *b = xmalloc(f->pack_size);
        assert_int_equal(pread_all(in, b, f->pack_size, 0), 0);
        if (flip >= 0)
                b[flip] ^= 0xff;
        _cleanup_free_ char *t = xasprintf("%s/copy", f->dir);
        int fd = open(t, O_RDWR | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write_all(fd, b, f->pack_size), 0);
        return fd;
}

static void test_verify_pack(void **state)
{
        struct fixture *f = *state;
        int fd = pack_copy(f, -1);
        assert_int_equal(snapshot_verify_pack(fd, f->pack_size, f->pack), 0);
        /* another name: not the trailer's hash */
        char other[128];
        snprintf(other, sizeof other, "%s", f->pack);
        other[strlen(other) - 1] = other[strlen(other) - 1] == '0' ? '1' : '0';
        assert_int_equal(snapshot_verify_pack(fd, f->pack_size, other), -BERTH_ECORRUPT);
        assert_int_equal(snapshot_verify_pack(fd, f->pack_size, "snapshots/x"), -EINVAL);
        assert_int_equal(snapshot_verify_pack(fd, f->pack_size - 1, f->pack), -BERTH_ECORRUPT);
        assert_int_equal(snapshot_verify_pack(fd, 20, f->pack), -BERTH_ECORRUPT);
        close(fd);
        /* a byte of chunk data, the header, the trailer */
        const long flips[] = { 100, 3, (long)f->pack_size - 30, (long)f->pack_size - 60 };
        for (size_t i = 0; i < ELEMENTSOF(flips); i++) {
                fd = pack_copy(f, flips[i]);
                error_clear();
                assert_int_equal(snapshot_verify_pack(fd, f->pack_size, f->pack), -BERTH_ECORRUPT);
                assert_non_null(error_message());
                close(fd);
        }
}

/* ---- serve_run over a socket pair ------------------------------------------ */

struct server_thread {
        struct serve_options o;
        struct wire_io io;
        int result;
};

static void *serve_main(void *ud)
{
        struct server_thread *t = ud;
        t->result = serve_run(&t->o, &t->io);
        close(t->io.fd_in);
        return NULL;
}

static struct wire_io cio;

/* wire_str() for our fixed arrays (its strnlen bound upsets -Wstringop-overread) */
static struct wire_str ws(const char *s) { return (struct wire_str){ s, (uint32_t)strlen(s) }; }
static struct buf frame;

static void csend(const struct wire_msg *m) { assert_int_equal(wire_write(&cio, m), 0); }

static void creply(struct wire_msg *m, uint8_t type)
{
        assert_int_equal(wire_read_frame(&cio, &frame), 1);
        assert_int_equal(wire_decode(frame.data, frame.len, m), 0);
        if (m->type != type)
                fprintf(stderr, "got %s: %.*s\n", wire_type_name(m->type), m->type == WIRE_ERROR ? (int)m->error.message.n : 0,
                        m->type == WIRE_ERROR ? m->error.message.p : "");
        assert_int_equal(m->type, type);
}

static void test_serve_session(void **state)
{
        struct fixture *f = *state;
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        const char *roots[] = { f->dir };
        struct server_thread t = { .o = { .restrict_to = roots, .nrestrict = 1, .append_only = true } };
        wire_io_fd(&t.io, sv[0], sv[0]);
        wire_io_fd(&cio, sv[1], sv[1]);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, serve_main, &t), 0);

        struct wire_msg m = { .type = WIRE_HELLO }, r;
        memcpy(&m.hello, &(typeof(m.hello)){ 1, 3, wire_str("unit") }, sizeof m.hello);
        csend(&m);
        creply(&r, WIRE_WELCOME);
        assert_int_equal(r.welcome.version, 1);
        assert_int_equal(r.welcome.capabilities, WIRE_CAP_APPEND_ONLY | WIRE_CAP_RESTRICTED);

        m = (struct wire_msg){ .type = WIRE_LIST, .tag = 1, .list.prefix = wire_str("") };
        csend(&m);
        creply(&r, WIRE_ERROR);
        assert_int_equal(r.error.code, EINVAL);
        assert_int_equal(r.tag, 1);

        m = (struct wire_msg){ .type = WIRE_OPEN, .tag = 2, .open = { wire_str("/"), WIRE_OPEN_READ, 0 } };
        csend(&m);
        creply(&r, WIRE_ERROR);
        assert_int_equal(r.error.code, EACCES);

        m = (struct wire_msg){ .type = WIRE_OPEN, .tag = 3, .open = { ws(f->repo), WIRE_OPEN_MAINTENANCE, 0 } };
        csend(&m);
        creply(&r, WIRE_ERROR);
        assert_int_equal(r.error.code, EPERM);

        m = (struct wire_msg){ .type = WIRE_OPEN, .tag = 4, .open = { ws(f->repo), WIRE_OPEN_READ, 0 } };
        csend(&m);
        creply(&r, WIRE_OPENED);
        assert_true(r.opened.repo_id.n > 0 && r.opened.config_len > 0);

        /* refused at PUT_BEGIN (read mode): the data is still read, the answer comes at PUT_END */
        m = (struct wire_msg){ .type = WIRE_PUT_BEGIN, .tag = 5, .put_begin = { wire_str("snapshots/x"), 3, 0 } };
        csend(&m);
        m = (struct wire_msg){ .type = WIRE_PUT_DATA, .tag = 5, .data = { (const uint8_t *)"abc", 3 } };
        csend(&m);
        uint8_t sha[32] = { 0 };
        m = (struct wire_msg){ .type = WIRE_PUT_END, .tag = 5, .put_end.sha256 = sha };
        csend(&m);
        creply(&r, WIRE_ERROR);
        assert_int_equal(r.tag, 5);
        assert_int_equal(r.error.code, EROFS);

        m = (struct wire_msg){ .type = WIRE_STAT, .tag = 6, .stat.name = ws(f->pack) };
        csend(&m);
        creply(&r, WIRE_SIZE);
        assert_int_equal(r.size.size, f->pack_size);

        m = (struct wire_msg){ .type = WIRE_DELETE, .tag = 7, .delete.name = ws(f->pack) };
        csend(&m);
        creply(&r, WIRE_ERROR);
        assert_int_equal(r.error.code, EPERM);

        m = (struct wire_msg){ .type = WIRE_BYE, .tag = 8 };
        csend(&m);
        creply(&r, WIRE_OK);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_int_equal(t.result, 0);
        assert_int_equal(wire_read_frame(&cio, &frame), 0);
        close(sv[1]);
        buf_free(&frame);
}

static void test_serve_violation(void **state)
{
        (void)state;
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        struct server_thread t = { 0 };
        wire_io_fd(&t.io, sv[0], sv[0]);
        wire_io_fd(&cio, sv[1], sv[1]);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, serve_main, &t), 0);
        /* BYE before HELLO */
        struct wire_msg m = { .type = WIRE_BYE, .tag = 9 }, r;
        csend(&m);
        creply(&r, WIRE_ERROR);
        assert_int_equal(r.error.code, BERTH_EPROTO);
        assert_int_equal(r.tag, 9);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_int_equal(t.result, -BERTH_EPROTO);
        close(sv[1]);
        buf_free(&frame);
        error_clear();
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_verify_pack, setup, teardown),
                cmocka_unit_test_setup_teardown(test_serve_session, setup, teardown),
                cmocka_unit_test(test_serve_violation),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
