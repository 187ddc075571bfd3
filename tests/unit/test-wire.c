/* test-wire.c — the serve --stdio wire protocol (transport/protocol.h):
 * every message round trip, every truncation refused, bounds checked
 * before allocation, names validated, version negotiation, frame I/O. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "../../common/common.h"
#include "../../transport/protocol.h"

static const uint8_t id_a[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };
static uint8_t ids[5 * 32];
static uint8_t bitmap[1] = { 0x15 }; /* 5 bits: 1 0 1 0 1 */
static const char config[] = "{\"version\":1,\"id\":\"abc\"}";
static uint8_t data_big[100000];
static const struct wire_name name_list[] = {
        { { "packs/ab/abcdef", 15 }, 12345 },
        { { "config", 6 }, 0 },
        { { "snapshots/a..b", 14 }, (uint64_t)INT64_MAX },
};
#define SNAP_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* One of each type, and a few variants (empty strings, empty lists). */
static size_t samples(struct wire_msg *m)
{
        size_t n = 0;
        for (size_t i = 0; i < sizeof ids; i++)
                ids[i] = (uint8_t)(i * 7);
        for (size_t i = 0; i < sizeof data_big; i++)
                data_big[i] = (uint8_t)(i * 31 + 5);

        m[n++] = (struct wire_msg){ .type = WIRE_HELLO, .tag = 0,
                                    .hello = { 1, 3, wire_str("berth 0.1.0") } };
        m[n++] = (struct wire_msg){ .type = WIRE_HELLO, .tag = 0, .hello = { 1, 1, wire_str("") } };
        m[n++] = (struct wire_msg){ .type = WIRE_WELCOME, .tag = 0,
                                    .welcome = { 1, wire_str("berth 0.1.0"), WIRE_CAP_ALL } };
        m[n++] = (struct wire_msg){ .type = WIRE_ERROR, .tag = 7,
                                    .error = { BERTH_EPROTO, wire_str("no common version") } };
        m[n++] = (struct wire_msg){ .type = WIRE_ERROR, .tag = 8, .error = { ENOENT, wire_str("") } };
        m[n++] = (struct wire_msg){ .type = WIRE_OK, .tag = 0xffffffff };
        m[n++] = (struct wire_msg){ .type = WIRE_BYE, .tag = 99 };
        m[n++] = (struct wire_msg){ .type = WIRE_OPEN, .tag = 1,
                                    .open = { wire_str("/srv/berth"), WIRE_OPEN_WRITE, 30 } };
        m[n++] = (struct wire_msg){ .type = WIRE_OPENED, .tag = 1,
                                    .opened = { wire_str("7f3a"), (const uint8_t *)config, sizeof config - 1 } };
        m[n++] = (struct wire_msg){ .type = WIRE_OPENED, .tag = 1, .opened = { wire_str("x"), NULL, 0 } };
        m[n++] = (struct wire_msg){ .type = WIRE_STAT, .tag = 2, .stat = { wire_str("config") } };
        m[n++] = (struct wire_msg){ .type = WIRE_SIZE, .tag = 2, .size = { 1234567890123ull } };
        m[n++] = (struct wire_msg){ .type = WIRE_GET, .tag = 3,
                                    .get = { wire_str("packs/ab/abcdef"), 4096, WIRE_DATA_MAX } };
        m[n++] = (struct wire_msg){ .type = WIRE_DATA, .tag = 3, .data = { data_big, sizeof data_big } };
        m[n++] = (struct wire_msg){ .type = WIRE_DATA, .tag = 3, .data = { NULL, 0 } };
        m[n++] = (struct wire_msg){ .type = WIRE_LIST, .tag = 4, .list = { wire_str("packs/") } };
        m[n++] = (struct wire_msg){ .type = WIRE_LIST, .tag = 4, .list = { wire_str("") } };
        m[n++] = (struct wire_msg){ .type = WIRE_NAMES, .tag = 4,
                                    .names = { 0, ELEMENTSOF(name_list), name_list, NULL, 0 } };
        m[n++] = (struct wire_msg){ .type = WIRE_NAMES, .tag = 4, .names = { 1, 0, NULL, NULL, 0 } };
        m[n++] = (struct wire_msg){ .type = WIRE_PUT_BEGIN, .tag = 5,
                                    .put_begin = { wire_str("packs/ab/abcdef"), sizeof data_big, WIRE_PUT_CREATE } };
        m[n++] = (struct wire_msg){ .type = WIRE_PUT_DATA, .tag = 5, .data = { data_big, 1000 } };
        m[n++] = (struct wire_msg){ .type = WIRE_PUT_END, .tag = 5, .put_end = { id_a } };
        m[n++] = (struct wire_msg){ .type = WIRE_DELETE, .tag = 6, .delete = { wire_str("locks/x") } };
        m[n++] = (struct wire_msg){ .type = WIRE_HAVE, .tag = 9, .have = { 5, ids } };
        m[n++] = (struct wire_msg){ .type = WIRE_HAVE, .tag = 9, .have = { 0, NULL } };
        m[n++] = (struct wire_msg){ .type = WIRE_LACK, .tag = 9, .lack = { 5, bitmap } };
        m[n++] = (struct wire_msg){ .type = WIRE_LACK, .tag = 9, .lack = { 0, NULL } };
        m[n++] = (struct wire_msg){ .type = WIRE_ANNOUNCE, .tag = 10, .announce = { wire_str(SNAP_ID) } };
        return n;
}
#define MAX_SAMPLES 64

static void assert_str(struct wire_str a, struct wire_str b)
{
        assert_int_equal(a.n, b.n);
        if (a.n)
                assert_memory_equal(a.p, b.p, a.n);
}

static void assert_mem(const void *a, const void *b, size_t n)
{
        if (n)
                assert_memory_equal(a, b, n);
}

/* Field by field: the decoded message says what the encoded one did. */
static void assert_msg_equal(const struct wire_msg *a, const struct wire_msg *d)
{
        assert_int_equal(a->type, d->type);
        assert_int_equal(a->tag, d->tag);
        switch (a->type) {
        case WIRE_HELLO:
                assert_int_equal(a->hello.min_version, d->hello.min_version);
                assert_int_equal(a->hello.max_version, d->hello.max_version);
                assert_str(a->hello.software, d->hello.software);
                break;
        case WIRE_WELCOME:
                assert_int_equal(a->welcome.version, d->welcome.version);
                assert_int_equal(a->welcome.capabilities, d->welcome.capabilities);
                assert_str(a->welcome.software, d->welcome.software);
                break;
        case WIRE_ERROR:
                assert_int_equal(a->error.code, d->error.code);
                assert_str(a->error.message, d->error.message);
                break;
        case WIRE_OK:
        case WIRE_BYE:
                break;
        case WIRE_OPEN:
                assert_str(a->open.path, d->open.path);
                assert_int_equal(a->open.mode, d->open.mode);
                assert_int_equal(a->open.lock_wait_seconds, d->open.lock_wait_seconds);
                break;
        case WIRE_OPENED:
                assert_str(a->opened.repo_id, d->opened.repo_id);
                assert_int_equal(a->opened.config_len, d->opened.config_len);
                assert_mem(a->opened.config, d->opened.config, a->opened.config_len);
                break;
        case WIRE_STAT:
                assert_str(a->stat.name, d->stat.name);
                break;
        case WIRE_DELETE:
                assert_str(a->delete.name, d->delete.name);
                break;
        case WIRE_SIZE:
                assert_true(a->size.size == d->size.size);
                break;
        case WIRE_GET:
                assert_str(a->get.name, d->get.name);
                assert_true(a->get.offset == d->get.offset);
                assert_int_equal(a->get.length, d->get.length);
                break;
        case WIRE_DATA:
        case WIRE_PUT_DATA:
                assert_int_equal(a->data.n, d->data.n);
                assert_mem(a->data.p, d->data.p, a->data.n);
                break;
        case WIRE_LIST:
                assert_str(a->list.prefix, d->list.prefix);
                break;
        case WIRE_NAMES: {
                assert_int_equal(a->names.last, d->names.last);
                assert_int_equal(a->names.n, d->names.n);
                assert_null(d->names.entries);
                size_t oa = 0, od = 0;
                struct wire_name ea, ed;
                uint32_t count = 0;
                while (wire_names_next(a, &oa, &ea)) {
                        assert_int_equal(wire_names_next(d, &od, &ed), 1);
                        assert_str(ea.name, ed.name);
                        assert_true(ea.size == ed.size);
                        count++;
                }
                assert_int_equal(wire_names_next(d, &od, &ed), 0);
                assert_int_equal(count, a->names.n);
                break;
        }
        case WIRE_PUT_BEGIN:
                assert_str(a->put_begin.name, d->put_begin.name);
                assert_true(a->put_begin.size == d->put_begin.size);
                assert_int_equal(a->put_begin.flags, d->put_begin.flags);
                break;
        case WIRE_PUT_END:
                assert_memory_equal(a->put_end.sha256, d->put_end.sha256, 32);
                break;
        case WIRE_HAVE:
                assert_int_equal(a->have.n, d->have.n);
                assert_mem(a->have.ids, d->have.ids, (size_t)a->have.n * 32);
                break;
        case WIRE_LACK:
                assert_int_equal(a->lack.n, d->lack.n);
                for (uint32_t i = 0; i < a->lack.n; i++)
                        assert_int_equal(wire_lack_bit(a, i), wire_lack_bit(d, i));
                break;
        case WIRE_ANNOUNCE:
                assert_str(a->announce.snapshot_id, d->announce.snapshot_id);
                break;
        default:
                fail_msg("type 0x%02x in a sample", a->type);
        }
}

/* A frame built by hand, for what the encoder would refuse. */
static void raw_frame(struct buf *b, uint8_t type, uint32_t tag, const void *body, size_t n)
{
        buf_reset(b);
        buf_put_le32(b, (uint32_t)(5 + n));
        buf_putc(b, type);
        buf_put_le32(b, tag);
        buf_append(b, body, n);
}

static void assert_decode_fails(const struct buf *b)
{
        struct wire_msg d;
        assert_int_equal(wire_decode(b->data, b->len, &d), -BERTH_EPROTO);
        assert_non_null(error_message());
}

static void test_round_trip(void **state)
{
        struct wire_msg m[MAX_SAMPLES];
        size_t n = samples(m);
        bool seen[256] = { false };

        for (size_t i = 0; i < n; i++) {
                _cleanup_(buf_free) struct buf b = { 0 }, again = { 0 };
                struct wire_msg d;

                assert_int_equal(wire_encode(&m[i], &b), 0);
                assert_int_equal(le32_read(b.data), b.len - 4);
                if (wire_decode(b.data, b.len, &d) != 0)
                        fail_msg("%s: %s", wire_type_name(m[i].type), error_message());
                assert_msg_equal(&m[i], &d);
                /* the decoded message encodes to the same bytes (NAMES from its raw list) */
                assert_int_equal(wire_encode(&d, &again), 0);
                assert_int_equal(again.len, b.len);
                assert_memory_equal(again.data, b.data, b.len);
                seen[m[i].type] = true;
        }
        static const uint8_t all[] = { WIRE_HELLO, WIRE_OPEN, WIRE_STAT, WIRE_GET, WIRE_LIST, WIRE_PUT_BEGIN,
                                       WIRE_PUT_DATA, WIRE_PUT_END, WIRE_DELETE, WIRE_HAVE, WIRE_ANNOUNCE,
                                       WIRE_BYE, WIRE_WELCOME, WIRE_ERROR, WIRE_OK, WIRE_OPENED, WIRE_SIZE,
                                       WIRE_DATA, WIRE_NAMES, WIRE_LACK };
        for (size_t i = 0; i < ELEMENTSOF(all); i++) {
                if (!seen[all[i]])
                        fail_msg("no sample of %s", wire_type_name(all[i]));
                assert_string_not_equal(wire_type_name(all[i]), "unknown");
        }
        /* and no type is left out of the list above */
        for (unsigned t = 0; t < 256; t++)
                if (strcmp(wire_type_name((uint8_t)t), "unknown") != 0)
                        assert_true(seen[t]);
}

/* Every prefix of every frame is refused, whether its length field still
 * says the whole frame or was patched to say the cut one; so is every
 * frame with a byte added. */
static void test_truncations(void **state)
{
        struct wire_msg m[MAX_SAMPLES];
        size_t n = samples(m);

        for (size_t i = 0; i < n; i++) {
                _cleanup_(buf_free) struct buf b = { 0 }, cut = { 0 };
                assert_int_equal(wire_encode(&m[i], &b), 0);
                for (size_t k = 0; k < b.len; k++) {
                        struct wire_msg d;
                        if (wire_decode(b.data, k, &d) != -BERTH_EPROTO)
                                fail_msg("%s cut to %zu of %zu bytes decoded", wire_type_name(m[i].type), k, b.len);
                        if (k < WIRE_HEADER_SIZE)
                                continue;
                        /* patched in place: a copy per cut would be quadratic */
                        le32_write(b.data, (uint32_t)(k - 4));
                        if (wire_decode(b.data, k, &d) != -BERTH_EPROTO)
                                fail_msg("%s cut to %zu of %zu bytes (length patched) decoded",
                                         wire_type_name(m[i].type), k, b.len);
                        le32_write(b.data, (uint32_t)(b.len - 4));
                }
                buf_reset(&cut);
                buf_append(&cut, b.data, b.len);
                buf_putc(&cut, 0);
                le32_write(cut.data, (uint32_t)(cut.len - 4));
                assert_decode_fails(&cut);
        }
}

/* ---- an io over memory, handing out at most `step` bytes per read ---- */

struct mem_io {
        const uint8_t *p;
        size_t n, off, step;
        struct buf out;
};

static int mem_read(void *ud, void *p, size_t n)
{
        struct mem_io *m = ud;
        size_t k = MIN(n, m->n - m->off);
        if (m->step)
                k = MIN(k, m->step);
        memcpy(p, m->p + m->off, k);
        m->off += k;
        return (int)k;
}

static int mem_write(void *ud, const void *p, size_t n)
{
        struct mem_io *m = ud;
        buf_append(&m->out, p, n);
        return 0;
}

static struct wire_io mem_io(struct mem_io *m)
{
        return (struct wire_io){ .read = mem_read, .write = mem_write, .ud = m, .fd_in = -1, .fd_out = -1 };
}

static void test_oversized_frame(void **state)
{
        static const uint32_t bad[] = { WIRE_FRAME_MAX + 1, 0xffffffff, 4, 0 };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                uint8_t head[WIRE_HEADER_SIZE] = { 0 };
                le32_write(head, bad[i]);
                head[4] = WIRE_BYE;
                struct mem_io m = { .p = head, .n = sizeof head };
                struct wire_io io = mem_io(&m);
                struct buf frame = { 0 };
                assert_int_equal(wire_read_frame(&io, &frame), -BERTH_EPROTO);
                /* refused before anything was allocated, and before reading on */
                assert_null(frame.data);
                assert_int_equal(frame.cap, 0);
                assert_int_equal(m.off, 4);
                struct wire_msg d;
                assert_int_equal(wire_decode(head, sizeof head, &d), -BERTH_EPROTO);
        }

        /* the largest length is allowed, but memory follows the bytes that
         * actually arrive: a peer announcing 16 MiB and sending 10 bytes
         * costs 64 KiB */
        uint8_t head[14] = { 0 };
        le32_write(head, WIRE_FRAME_MAX);
        head[4] = WIRE_DATA;
        struct mem_io m = { .p = head, .n = sizeof head };
        struct wire_io io = mem_io(&m);
        _cleanup_(buf_free) struct buf frame = { 0 };
        assert_int_equal(wire_read_frame(&io, &frame), -BERTH_EPROTO);
        assert_true(frame.cap <= 64 * 1024);

        /* the encoder will not make a frame over the limit either */
        struct wire_name *many = xcalloc(WIRE_NAMES_MAX, sizeof *many);
        char *longname = xmalloc(WIRE_NAME_MAX);
        memset(longname, 'x', WIRE_NAME_MAX);
        for (size_t i = 0; i < WIRE_NAMES_MAX; i++)
                many[i] = (struct wire_name){ { longname, WIRE_NAME_MAX }, 1 };
        struct wire_msg big = { .type = WIRE_NAMES, .names = { 1, WIRE_NAMES_MAX, many, NULL, 0 } };
        _cleanup_(buf_free) struct buf out = { 0 };
        assert_int_equal(wire_encode(&big, &out), -EMSGSIZE);
        assert_int_equal(out.len, 0);
        free(many);
        free(longname);
}

static void test_unknown_type(void **state)
{
        _cleanup_(buf_free) struct buf b = { 0 };
        for (unsigned t = 0; t < 256; t++) {
                if (strcmp(wire_type_name((uint8_t)t), "unknown") != 0)
                        continue;
                raw_frame(&b, (uint8_t)t, 1, NULL, 0);
                assert_decode_fails(&b);
                struct wire_msg m = { .type = (uint8_t)t };
                _cleanup_(buf_free) struct buf out = { 0 };
                assert_int_equal(wire_encode(&m, &out), -EINVAL);
        }
}

static void stat_frame(struct buf *b, const char *name, size_t n)
{
        _cleanup_(buf_free) struct buf body = { 0 };
        buf_put_le32(&body, (uint32_t)n);
        buf_append(&body, name, n);
        raw_frame(b, WIRE_STAT, 1, body.data, body.len);
}

static void test_names(void **state)
{
        static const char *const bad[] = {
                "..", "../x", "a/../b", "a/..", "/etc/passwd", "/", "a//b", "a/", ".", "./a", "a/./b",
                "a b", "a\\b", "caf\xc3\xa9", "a\nb", "a:b", "*", "", "..a", ".tmp", "a/.b", "tmp/.x/y",
        };
        static const char *const good[] = {
                "config", "packs/ab/abcdef", "snapshots/a..b", "a..", "a.", "a-b_c.d", "-a", "_/x",
        };
        _cleanup_(buf_free) struct buf b = { 0 };
        struct wire_msg d;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(wire_check_name(bad[i], strlen(bad[i])), -BERTH_EPROTO);
                stat_frame(&b, bad[i], strlen(bad[i]));
                assert_decode_fails(&b);
                struct wire_msg m = { .type = WIRE_GET, .get = { wire_str(bad[i]), 0, 1 } };
                _cleanup_(buf_free) struct buf out = { 0 };
                assert_int_equal(wire_encode(&m, &out), -EINVAL);
        }
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                assert_int_equal(wire_check_name(good[i], strlen(good[i])), 0);
                stat_frame(&b, good[i], strlen(good[i]));
                assert_int_equal(wire_decode(b.data, b.len, &d), 0);
        }

        /* a NUL inside, and at the end */
        assert_int_equal(wire_check_name("a\0b", 3), -BERTH_EPROTO);
        stat_frame(&b, "config\0", 7);
        assert_decode_fails(&b);

        /* 4096 bytes is the longest name */
        char name[WIRE_NAME_MAX + 1];
        memset(name, 'n', sizeof name);
        for (size_t i = 100; i < WIRE_NAME_MAX; i += 100)
                name[i] = '/';
        stat_frame(&b, name, WIRE_NAME_MAX);
        assert_int_equal(wire_decode(b.data, b.len, &d), 0);
        stat_frame(&b, name, WIRE_NAME_MAX + 1);
        assert_decode_fails(&b);

        /* LIST prefixes may be empty or end with '/', nothing else changes */
        static const char *const prefixes_ok[] = { "", "packs/", "packs/a", "snapshots" };
        static const char *const prefixes_bad[] = { "/", "/packs", "packs//", "../", "packs/../", "packs/." };
        for (size_t i = 0; i < ELEMENTSOF(prefixes_ok); i++) {
                struct wire_msg m = { .type = WIRE_LIST, .list = { wire_str(prefixes_ok[i]) } };
                _cleanup_(buf_free) struct buf out = { 0 };
                assert_int_equal(wire_encode(&m, &out), 0);
                assert_int_equal(wire_decode(out.data, out.len, &d), 0);
        }
        for (size_t i = 0; i < ELEMENTSOF(prefixes_bad); i++) {
                struct wire_msg m = { .type = WIRE_LIST, .list = { wire_str(prefixes_bad[i]) } };
                _cleanup_(buf_free) struct buf out = { 0 };
                assert_int_equal(wire_encode(&m, &out), -EINVAL);
                buf_put_le32(&out, (uint32_t)strlen(prefixes_bad[i]));
                buf_append(&out, prefixes_bad[i], strlen(prefixes_bad[i]));
                raw_frame(&b, WIRE_LIST, 1, out.data, out.len);
                assert_decode_fails(&b);
        }

        /* a bad name inside a NAMES list */
        _cleanup_(buf_free) struct buf body = { 0 };
        buf_putc(&body, 1);
        buf_put_le32(&body, 2);
        buf_put_le32(&body, 6);
        buf_append(&body, "config", 6);
        buf_put_le64(&body, 1);
        buf_put_le32(&body, 5);
        buf_append(&body, "../up", 5);
        buf_put_le64(&body, 1);
        raw_frame(&b, WIRE_NAMES, 1, body.data, body.len);
        assert_decode_fails(&b);
}

static void test_have_bound(void **state)
{
        _cleanup_(buf_free) struct buf body = { 0 }, b = { 0 };
        struct wire_msg d;

        /* n over the bound is refused from the count alone */
        buf_put_le32(&body, WIRE_IDS_MAX + 1);
        raw_frame(&b, WIRE_HAVE, 1, body.data, body.len);
        assert_decode_fails(&b);
        assert_non_null(strstr(error_message(), "over"));
        buf_reset(&body);
        buf_put_le32(&body, 0xffffffff);
        raw_frame(&b, WIRE_HAVE, 1, body.data, body.len);
        assert_decode_fails(&b);

        /* the bound itself fits in a frame */
        uint8_t *many = xcalloc(WIRE_IDS_MAX + 1, WIRE_ID_LEN);
        struct wire_msg m = { .type = WIRE_HAVE, .tag = 3, .have = { WIRE_IDS_MAX, many } };
        buf_reset(&b);
        assert_int_equal(wire_encode(&m, &b), 0);
        assert_int_equal(wire_decode(b.data, b.len, &d), 0);
        assert_int_equal(d.have.n, WIRE_IDS_MAX);
        m.have.n++;
        buf_reset(&b);
        assert_int_equal(wire_encode(&m, &b), -EINVAL);
        free(many);

        /* ids short of n */
        buf_reset(&body);
        buf_put_le32(&body, 2);
        buf_append(&body, id_a, 32);
        raw_frame(&b, WIRE_HAVE, 1, body.data, body.len);
        assert_decode_fails(&b);
}

static void test_lack_bitmap(void **state)
{
        uint8_t bits[WIRE_IDS_MAX / 8 + 1];
        _cleanup_(buf_free) struct buf b = { 0 }, body = { 0 };
        struct wire_msg d;

        memset(bits, 0, sizeof bits);
        for (uint32_t n = 0; n <= 40; n++) {
                /* every third id lacking */
                memset(bits, 0, sizeof bits);
                for (uint32_t i = 0; i < n; i += 3)
                        bits[i / 8] |= (uint8_t)(1u << (i % 8));
                struct wire_msg m = { .type = WIRE_LACK, .tag = n, .lack = { n, bits } };
                buf_reset(&b);
                assert_int_equal(wire_encode(&m, &b), 0);
                assert_int_equal(b.len, WIRE_HEADER_SIZE + 4 + (n + 7) / 8);
                assert_int_equal(wire_decode(b.data, b.len, &d), 0);
                for (uint32_t i = 0; i < n; i++)
                        assert_int_equal(wire_lack_bit(&d, i), i % 3 == 0);

                /* a bitmap a byte short or a byte long */
                buf_reset(&body);
                buf_put_le32(&body, n);
                buf_append(&body, bits, (n + 7) / 8 + 1);
                raw_frame(&b, WIRE_LACK, 1, body.data, body.len);
                assert_decode_fails(&b);
                if (n > 0) {
                        body.len -= 2;
                        raw_frame(&b, WIRE_LACK, 1, body.data, body.len);
                        assert_decode_fails(&b);
                }
                /* a padding bit set */
                if (n % 8) {
                        bits[n / 8] |= (uint8_t)(0x80);
                        m.lack.bitmap = bits;
                        buf_reset(&b);
                        assert_int_equal(wire_encode(&m, &b), -EINVAL);
                        buf_reset(&body);
                        buf_put_le32(&body, n);
                        buf_append(&body, bits, (n + 7) / 8);
                        raw_frame(&b, WIRE_LACK, 1, body.data, body.len);
                        assert_decode_fails(&b);
                }
        }
        buf_reset(&body);
        buf_put_le32(&body, WIRE_IDS_MAX + 1);
        raw_frame(&b, WIRE_LACK, 1, body.data, body.len);
        assert_decode_fails(&b);
}

static void test_choose_version(void **state)
{
        assert_int_equal(wire_choose_version(1, 1), 1);
        assert_int_equal(wire_choose_version(1, 7), WIRE_VERSION_MAX);
        assert_int_equal(wire_choose_version(WIRE_VERSION_MIN, WIRE_VERSION_MAX), WIRE_VERSION_MAX);
        assert_int_equal(wire_choose_version(WIRE_VERSION_MAX + 1, WIRE_VERSION_MAX + 5), -BERTH_EPROTO);
        assert_non_null(strstr(error_message(), "no common protocol version"));
        assert_int_equal(wire_choose_version(0, 1), -BERTH_EPROTO);
        assert_int_equal(wire_choose_version(0, 0), -BERTH_EPROTO);
        assert_int_equal(wire_choose_version(2, 1), -BERTH_EPROTO);
        assert_int_equal(wire_choose_version(1, 65535), WIRE_VERSION_MAX);
}

/* Field bounds other than names, each refused by both ends. */
static void test_bounds(void **state)
{
        uint8_t bad_bits[1] = { 0x20 };
        const struct wire_msg bad[] = {
                { .type = WIRE_HELLO, .hello = { 0, 1, { "", 0 } } },
                { .type = WIRE_HELLO, .hello = { 2, 1, { "", 0 } } },
                { .type = WIRE_WELCOME, .welcome = { 0, { "", 0 }, 0 } },
                { .type = WIRE_WELCOME, .welcome = { 1, { "", 0 }, 4 } },
                { .type = WIRE_ERROR, .error = { 0, { "", 0 } } },
                { .type = WIRE_ERROR, .error = { -2, { "", 0 } } },
                { .type = WIRE_ERROR, .error = { 35, { "", 0 } } },
                { .type = WIRE_ERROR, .error = { 10000, { "", 0 } } },
                { .type = WIRE_ERROR, .error = { 11000, { "", 0 } } },
                { .type = WIRE_ERROR, .error = { 2, { "a\0b", 3 } } },
                { .type = WIRE_OPEN, .open = { { "/srv", 4 }, 3, 0 } },
                { .type = WIRE_OPEN, .open = { { "/srv", 4 }, 0, WIRE_LOCK_WAIT_MAX + 1 } },
                { .type = WIRE_OPEN, .open = { { "", 0 }, 0, 0 } },
                { .type = WIRE_OPENED, .opened = { { "", 0 }, NULL, 0 } },
                { .type = WIRE_SIZE, .size = { (uint64_t)INT64_MAX + 1 } },
                { .type = WIRE_GET, .get = { { "config", 6 }, 0, WIRE_DATA_MAX + 1 } },
                { .type = WIRE_GET, .get = { { "config", 6 }, (uint64_t)INT64_MAX, 1 } },
                { .type = WIRE_NAMES, .names = { 2, 0, NULL, NULL, 0 } },
                { .type = WIRE_PUT_BEGIN, .put_begin = { { "config", 6 }, 1, 2 } },
                { .type = WIRE_PUT_BEGIN, .put_begin = { { "config", 6 }, UINT64_MAX, 0 } },
                { .type = WIRE_LACK, .lack = { 5, bad_bits } },
                { .type = WIRE_ANNOUNCE, .announce = { { "abc", 3 } } },
                { .type = WIRE_ANNOUNCE,
                  .announce = { { "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", 64 } } },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(buf_free) struct buf out = { 0 };
                if (wire_encode(&bad[i], &out) != -EINVAL)
                        fail_msg("bad[%zu] (%s) encoded", i, wire_type_name(bad[i].type));
                assert_int_equal(out.len, 0);
        }

        /* the decoder, on the same kind of fields written by hand */
        _cleanup_(buf_free) struct buf body = { 0 }, b = { 0 };
        buf_put_le32(&body, 35);
        buf_put_le32(&body, 0);
        raw_frame(&b, WIRE_ERROR, 1, body.data, body.len);
        assert_decode_fails(&b);

        buf_reset(&body);
        buf_append(&body, "BERTHWIRX", 9);
        buf_append(&body, "\1\0\1\0\0\0\0\0", 8);
        raw_frame(&b, WIRE_HELLO, 0, body.data, body.len);
        assert_decode_fails(&b);
        assert_non_null(strstr(error_message(), "magic"));
        body.data[8] = 'E';
        raw_frame(&b, WIRE_HELLO, 0, body.data, body.len);
        struct wire_msg d;
        assert_int_equal(wire_decode(b.data, b.len, &d), 0);

        buf_reset(&body);
        buf_put_le32(&body, 4);
        buf_append(&body, "/srv", 4);
        buf_putc(&body, 9); /* mode */
        buf_put_le32(&body, 0);
        raw_frame(&b, WIRE_OPEN, 1, body.data, body.len);
        assert_decode_fails(&b);

        /* a string length that points past the frame */
        buf_reset(&body);
        buf_put_le32(&body, 0xfffffff0);
        buf_append(&body, "config", 6);
        raw_frame(&b, WIRE_STAT, 1, body.data, body.len);
        assert_decode_fails(&b);

        assert_int_equal(wire_error_code(-ENOENT), ENOENT);
        assert_int_equal(wire_error_code(EEXIST), EEXIST);
        assert_int_equal(wire_error_code(-ETIMEDOUT), EIO);
        assert_int_equal(wire_error_code(-BERTH_EPROTO), BERTH_EPROTO);
        assert_int_equal(wire_error_code(0), EIO);
        assert_string_equal(berth_strerror(-BERTH_EPROTO), "wire protocol violation");
}

/* wire_write and wire_read_frame over memory (with 1-byte and 7-byte
 * reads) and over a socketpair with a writer process. */
static void test_frame_io(void **state)
{
        struct wire_msg m[MAX_SAMPLES];
        size_t n = samples(m);
        struct mem_io w = { 0 };
        struct wire_io io = mem_io(&w);
        _cleanup_(buf_free) struct buf expect = { 0 };

        for (size_t i = 0; i < n; i++) {
                assert_int_equal(wire_write(&io, &m[i]), 0);
                assert_int_equal(wire_encode(&m[i], &expect), 0);
        }
        assert_int_equal(w.out.len, expect.len);
        assert_memory_equal(w.out.data, expect.data, expect.len);

        static const size_t steps[] = { 0, 1, 7 };
        for (size_t s = 0; s < ELEMENTSOF(steps); s++) {
                struct mem_io r = { .p = w.out.data, .n = w.out.len, .step = steps[s] };
                struct wire_io rio = mem_io(&r);
                _cleanup_(buf_free) struct buf frame = { 0 };
                for (size_t i = 0; i < n; i++) {
                        struct wire_msg d;
                        assert_int_equal(wire_read_frame(&rio, &frame), 1);
                        assert_int_equal(wire_decode(frame.data, frame.len, &d), 0);
                        assert_msg_equal(&m[i], &d);
                }
                assert_int_equal(wire_read_frame(&rio, &frame), 0); /* clean end */
        }

        /* the stream ends inside a frame, or inside a length */
        for (size_t cut = 1; cut < 20; cut++) {
                struct mem_io r = { .p = w.out.data, .n = cut };
                struct wire_io rio = mem_io(&r);
                _cleanup_(buf_free) struct buf frame = { 0 };
                int k = wire_read_frame(&rio, &frame);
                struct wire_msg d;
                if (k == 1) /* a whole (small) first frame fits in the cut */
                        assert_int_equal(wire_decode(frame.data, frame.len, &d), 0);
                else
                        assert_int_equal(k, -BERTH_EPROTO);
        }
        buf_free(&w.out);

        /* file descriptors: a child writes every sample, 16 MiB DATA included */
        uint8_t *huge = xcalloc(1, WIRE_DATA_MAX);
        huge[0] = 1;
        huge[WIRE_DATA_MAX - 1] = 2;
        struct wire_msg big = { .type = WIRE_DATA, .tag = 77, .data = { huge, WIRE_DATA_MAX } };
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                close(sv[0]);
                struct wire_io fio;
                wire_io_fd(&fio, -1, sv[1]);
                for (size_t i = 0; i < n; i++)
                        if (wire_write(&fio, &m[i]) < 0)
                                _exit(1);
                _exit(wire_write(&fio, &big) < 0 ? 1 : 0);
        }
        close(sv[1]);
        struct wire_io fio;
        wire_io_fd(&fio, sv[0], -1);
        _cleanup_(buf_free) struct buf frame = { 0 };
        struct wire_msg d;
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(wire_read_frame(&fio, &frame), 1);
                assert_int_equal(wire_decode(frame.data, frame.len, &d), 0);
                assert_msg_equal(&m[i], &d);
        }
        assert_int_equal(wire_read_frame(&fio, &frame), 1);
        assert_int_equal(wire_decode(frame.data, frame.len, &d), 0);
        assert_msg_equal(&big, &d);
        assert_int_equal(frame.cap, WIRE_DATA_MAX + WIRE_HEADER_SIZE + 4); /* exactly the frame */
        assert_int_equal(wire_read_frame(&fio, &frame), 0);
        close(sv[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        free(huge);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_truncations),
                cmocka_unit_test(test_oversized_frame),
                cmocka_unit_test(test_unknown_type),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_have_bound),
                cmocka_unit_test(test_lack_bitmap),
                cmocka_unit_test(test_choose_version),
                cmocka_unit_test(test_bounds),
                cmocka_unit_test(test_frame_io),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
