/* test-window.c — the window cache of ranged reads (transport/window.c):
 * bytes exact across window boundaries and object ends, each window
 * fetched once however many readers want it at the same time, read-ahead
 * that stops at an object's end, and a failed fetch reported to its reader
 * and tried again by the next. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../../common/common.h"
#include "../../transport/internal.h"

#define W 4096u

/* A fake store: objects "a" (OBJ bytes) and "b" (OBJ / 2 + 5), byte i of
 * an object is a function of its name and i; fetches counted per window. */
#define OBJ (20u * W + 123)
struct store {
        pthread_mutex_t lock;
        unsigned fetches[2][32];
        unsigned total;
        unsigned fail;         /* fail this many fetches with -ECONNREFUSED */
        useconds_t delay;      /* each fetch takes this long */
        bool report_size;
};

static uint64_t obj_size(const char *name) { return name[0] == 'a' ? OBJ : OBJ / 2 + 5; }
static uint8_t byte_at(const char *name, uint64_t i) { return (uint8_t)(i * 31 + (i >> 8) + name[0]); }

static int fetch(void *ud, const char *name, uint64_t offset, size_t len, void *buf, size_t *ret_n,
                 uint64_t *ret_size)
{
        struct store *st = ud;
        if (st->delay)
                usleep(st->delay);
        pthread_mutex_lock(&st->lock);
        st->total++;
        st->fetches[name[0] == 'b'][offset / W]++;
        bool fail = st->fail > 0;
        if (fail)
                st->fail--;
        pthread_mutex_unlock(&st->lock);
        if (fail)
                return error_set(ECONNREFUSED, "cannot reach the store");
        if (name[0] != 'a' && name[0] != 'b')
                return -ENOENT;
        uint64_t size = obj_size(name);
        size_t n = offset >= size ? 0 : (size_t)MIN((uint64_t)len, size - offset);
        for (size_t i = 0; i < n; i++)
                ((uint8_t *)buf)[i] = byte_at(name, offset + i);
        *ret_n = n;
        *ret_size = st->report_size ? size : 0;
        return 0;
}

static void check_range(struct window_cache *wc, const char *name, uint64_t off, size_t len)
{
        uint8_t buf[3 * W];
        assert_true(len <= sizeof buf);
        memset(buf, 0xee, sizeof buf);
        assert_int_equal(window_cache_read(wc, name, off, len, buf), 0);
        for (size_t i = 0; i < len; i++)
                if (buf[i] != byte_at(name, off + i))
                        fail_msg("%s: byte %llu is wrong", name, (unsigned long long)(off + i));
}

static void bytes_exact(void **state)
{
        struct store st = { .lock = PTHREAD_MUTEX_INITIALIZER };
        struct window_cache *wc = window_cache_new(W, 3, 0, 0, fetch, &st);
        check_range(wc, "a", 0, 10);
        check_range(wc, "a", 10, W - 10);          /* the rest of window 0: no fetch */
        assert_int_equal(st.total, 1);
        check_range(wc, "a", W - 7, 20);           /* across windows 0 and 1 */
        assert_int_equal(st.total, 2);
        check_range(wc, "a", 5 * W - 1, 2 * W + 2); /* across three windows */
        check_range(wc, "b", 3, 100);              /* another object, same offsets */
        check_range(wc, "a", OBJ - 50, 50);        /* up to the end */
        uint8_t buf[64];
        assert_int_equal(window_cache_read(wc, "a", OBJ - 50, 51, buf), -EIO); /* one past it */
        assert_int_equal(window_cache_read(wc, "a", OBJ + W, 1, buf), -EIO);
        assert_int_equal(window_cache_read(wc, "zz", 0, 1, buf), -ENOENT);
        assert_int_equal(window_cache_read(wc, "a", 0, 0, buf), 0);
        /* LRU: three windows kept, the oldest goes */
        unsigned before = st.total;
        check_range(wc, "a", 0, 1);
        check_range(wc, "a", W, 1);
        check_range(wc, "a", 2 * W, 1);
        check_range(wc, "a", 0, 1);
        check_range(wc, "a", 3 * W, 1);            /* evicts window 1 */
        check_range(wc, "a", 0, 1);
        check_range(wc, "a", 2 * W, 1);
        unsigned mid = st.total;
        check_range(wc, "a", W, 1);
        assert_int_equal(st.total, mid + 1);
        assert_true(mid - before <= 4);
        char longname[WINDOW_NAME_MAX + 1];
        memset(longname, 'a', sizeof longname - 1);
        longname[sizeof longname - 1] = 0;
        assert_int_equal(window_cache_read(wc, longname, 0, 1, buf), -ENAMETOOLONG);
        window_cache_free(wc);
        window_cache_free(NULL);
}

struct reader_arg {
        struct window_cache *wc;
        const char *name;
        unsigned seed;
        int err;
};

/* Reads the whole object in pieces of 100..1100 bytes, checking each. */
static void *reader(void *p)
{
        struct reader_arg *a = p;
        uint64_t size = obj_size(a->name), off = (a->seed * 977u) % 300;
        uint8_t buf[1200];
        while (off < size && a->err == 0) {
                size_t len = 100 + (a->seed = a->seed * 1103515245u + 12345u) % 1000;
                if (off + len > size)
                        len = (size_t)(size - off);
                int k = window_cache_read(a->wc, a->name, off, len, buf);
                if (k < 0)
                        a->err = k;
                for (size_t i = 0; i < len && k == 0; i++)
                        if (buf[i] != byte_at(a->name, off + i))
                                a->err = -EBADMSG;
                off += len;
        }
        return NULL;
}

static void readers_share_windows(void **state)
{
        /* slow fetches: readers of one window come while it loads */
        struct store st = { .lock = PTHREAD_MUTEX_INITIALIZER, .delay = 2000, .report_size = true };
        struct window_cache *wc = window_cache_new(W, 40, 3, 3, fetch, &st);
        struct reader_arg args[6];
        pthread_t t[6];
        for (unsigned i = 0; i < 6; i++) {
                args[i] = (struct reader_arg){ wc, i % 2 ? "b" : "a", i + 1, 0 };
                assert_int_equal(pthread_create(&t[i], NULL, reader, &args[i]), 0);
        }
        for (unsigned i = 0; i < 6; i++) {
                pthread_join(t[i], NULL);
                assert_int_equal(args[i].err, 0);
        }
        struct window_cache_stats s;
        window_cache_get_stats(wc, &s);
        window_cache_free(wc);
        /* every window of both objects fetched exactly once (the slots
         * hold both: nothing was evicted), none past their ends */
        for (unsigned o = 0; o < 2; o++) {
                unsigned windows = (unsigned)((obj_size(o ? "b" : "a") + W - 1) / W);
                for (unsigned i = 0; i < 32; i++)
                        if (st.fetches[o][i] != (i < windows ? 1u : 0u))
                                fail_msg("object %c window %u fetched %u times", o ? 'b' : 'a', i,
                                         st.fetches[o][i]);
        }
        assert_true(s.ahead > 0);
        assert_int_equal(s.fetches, st.total);
}

static void ahead_stops_at_end(void **state)
{
        /* a store that does not say the size: the short last window does */
        struct store st = { .lock = PTHREAD_MUTEX_INITIALIZER };
        struct window_cache *wc = window_cache_new(W, 8, 3, 2, fetch, &st);
        for (uint64_t off = 0; off < OBJ; off += 512)
                check_range(wc, "a", off, (size_t)MIN((uint64_t)512, OBJ - off));
        window_cache_free(wc);
        /* windows 0..20 once each; at most the three after the end asked
         * for before the short one came back, never more */
        for (unsigned i = 0; i <= 20; i++)
                assert_int_equal(st.fetches[0][i], 1);
        for (unsigned i = 24; i < 32; i++)
                assert_int_equal(st.fetches[0][i], 0);

        /* one that says it: nothing past the end */
        struct store st2 = { .lock = PTHREAD_MUTEX_INITIALIZER, .report_size = true };
        wc = window_cache_new(W, 8, 3, 2, fetch, &st2);
        for (uint64_t off = 0; off < OBJ; off += 512)
                check_range(wc, "a", off, (size_t)MIN((uint64_t)512, OBJ - off));
        window_cache_free(wc);
        for (unsigned i = 21; i < 32; i++)
                assert_int_equal(st2.fetches[0][i], 0);
}

static void failed_fetch(void **state)
{
        struct store st = { .lock = PTHREAD_MUTEX_INITIALIZER, .fail = 1 };
        struct window_cache *wc = window_cache_new(W, 4, 0, 0, fetch, &st);
        uint8_t buf[16];
        assert_int_equal(window_cache_read(wc, "a", 5, 10, buf), -ECONNREFUSED);
        assert_string_equal(error_message(), "cannot reach the store");
        /* nothing kept from it: the next read asks again, and gets it */
        check_range(wc, "a", 5, 10);
        assert_int_equal(st.total, 2);
        window_cache_free(wc);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(bytes_exact),
                cmocka_unit_test(readers_share_windows),
                cmocka_unit_test(ahead_stops_at_end),
                cmocka_unit_test(failed_fetch),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
