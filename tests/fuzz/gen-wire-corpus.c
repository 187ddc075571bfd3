/* gen-wire-corpus.c — writes tests/fuzz/corpus/wire/: valid frames of every
 * type and some malformed ones.  Not built by make; run once by hand:
 *   cc -std=gnu11 -D_GNU_SOURCE -o /tmp/gen tests/fuzz/gen-wire-corpus.c \
 *      build/libtransport.a build/libcommon.a $(pkg-config --libs libssh2 libcrypto) &&
 *   /tmp/gen tests/fuzz/corpus/wire */
#include <stdio.h>
#include <string.h>

#include "../../common/common.h"
#include "../../transport/protocol.h"

static const char *dir;

static void save(const char *name, const void *p, size_t n)
{
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
                perror(path);
                exit(1);
        }
}

static void enc(const struct wire_msg *m, struct buf *b)
{
        buf_reset(b);
        if (wire_encode(m, b) < 0) {
                fprintf(stderr, "%s: %s\n", wire_type_name(m->type), error_message());
                exit(1);
        }
}

static void raw(struct buf *b, uint8_t type, uint32_t tag, const struct buf *body)
{
        buf_reset(b);
        buf_put_le32(b, (uint32_t)(5 + body->len));
        buf_putc(b, type);
        buf_put_le32(b, tag);
        buf_append(b, body->data, body->len);
}

int main(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        dir = argv[1];

        static uint8_t ids[3 * 32], data[300], sha[32];
        for (size_t i = 0; i < sizeof ids; i++)
                ids[i] = (uint8_t)(i * 13);
        for (size_t i = 0; i < sizeof data; i++)
                data[i] = (uint8_t)i;
        memset(sha, 0xab, sizeof sha);
        static const uint8_t bits[2] = { 0x05, 0x01 };
        static const struct wire_name names[] = {
                { { "packs/ab/abcdef", 15 }, 16777216 },
                { { "snapshots/0123", 14 }, 400 },
        };
        const struct wire_msg m[] = {
                { .type = WIRE_HELLO, .hello = { 1, 1, wire_str("berth 0.1.0") } },
                { .type = WIRE_WELCOME, .welcome = { 1, wire_str("berth 0.1.0"), WIRE_CAP_APPEND_ONLY } },
                { .type = WIRE_ERROR, .tag = 4, .error = { ENOENT, wire_str("no such object") } },
                { .type = WIRE_OK, .tag = 5 },
                { .type = WIRE_BYE, .tag = 6 },
                { .type = WIRE_OPEN, .tag = 1, .open = { wire_str("/srv/berth"), WIRE_OPEN_READ, 60 } },
                { .type = WIRE_OPENED, .tag = 1, .opened = { wire_str("c0ffee"), (const uint8_t *)"{}", 2 } },
                { .type = WIRE_STAT, .tag = 2, .stat = { wire_str("config") } },
                { .type = WIRE_SIZE, .tag = 2, .size = { 4096 } },
                { .type = WIRE_GET, .tag = 3, .get = { wire_str("packs/ab/abcdef"), 12, 300 } },
                { .type = WIRE_DATA, .tag = 3, .data = { data, sizeof data } },
                { .type = WIRE_LIST, .tag = 7, .list = { wire_str("packs/") } },
                { .type = WIRE_NAMES, .tag = 7, .names = { 1, 2, names, NULL, 0 } },
                { .type = WIRE_PUT_BEGIN, .tag = 8, .put_begin = { wire_str("packs/cd/cdef"), 300, WIRE_PUT_CREATE } },
                { .type = WIRE_PUT_DATA, .tag = 8, .data = { data, 100 } },
                { .type = WIRE_PUT_END, .tag = 8, .put_end = { sha } },
                { .type = WIRE_DELETE, .tag = 9, .delete = { wire_str("packs/cd/cdef") } },
                { .type = WIRE_HAVE, .tag = 10, .have = { 3, ids } },
                { .type = WIRE_LACK, .tag = 10, .lack = { 9, bits } },
                { .type = WIRE_ANNOUNCE, .tag = 11,
                  .announce = { wire_str("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef") } },
        };

        struct buf b = { 0 }, stream = { 0 }, body = { 0 };
        char name[64];
        for (size_t i = 0; i < ELEMENTSOF(m); i++) {
                enc(&m[i], &b);
                snprintf(name, sizeof name, "valid-%s", wire_type_name(m[i].type));
                save(name, b.data, b.len);
                buf_append(&stream, b.data, b.len);
                if (b.len > WIRE_HEADER_SIZE + 1) {
                        /* one byte short, its length saying so: the body parser meets the end */
                        snprintf(name, sizeof name, "truncated-%s", wire_type_name(m[i].type));
                        le32_write(b.data, (uint32_t)(b.len - 5));
                        save(name, b.data, b.len - 1);
                }
        }
        save("stream-all", stream.data, stream.len);

        /* trailing byte */
        enc(&m[7], &b);
        buf_putc(&b, 0);
        le32_write(b.data, (uint32_t)(b.len - 4));
        save("bad-trailing", b.data, b.len);
        /* oversized length */
        buf_reset(&b);
        buf_put_le32(&b, WIRE_FRAME_MAX + 1);
        buf_putc(&b, WIRE_DATA);
        buf_put_le32(&b, 1);
        save("bad-oversized", b.data, b.len);
        /* unknown type */
        buf_reset(&body);
        raw(&b, 0x42, 1, &body);
        save("bad-type", b.data, b.len);
        /* a '..' name */
        buf_put_le32(&body, 8);
        buf_append(&body, "../x/../", 8);
        raw(&b, WIRE_STAT, 1, &body);
        save("bad-name-dotdot", b.data, b.len);
        /* HAVE over the bound */
        buf_reset(&body);
        buf_put_le32(&body, WIRE_IDS_MAX + 1);
        raw(&b, WIRE_HAVE, 1, &body);
        save("bad-have-n", b.data, b.len);
        /* LACK with a padding bit */
        buf_reset(&body);
        buf_put_le32(&body, 3);
        buf_putc(&body, 0xff);
        raw(&b, WIRE_LACK, 1, &body);
        save("bad-lack-padding", b.data, b.len);
        /* HELLO with a wrong magic */
        buf_reset(&body);
        buf_append(&body, "SSH-2.0-x", 9);
        buf_append(&body, "\1\0\1\0\0\0\0\0", 8);
        raw(&b, WIRE_HELLO, 0, &body);
        save("bad-magic", b.data, b.len);
        /* a string whose length points past the frame */
        buf_reset(&body);
        buf_put_le32(&body, 0x7fffffff);
        buf_append(&body, "config", 6);
        raw(&b, WIRE_STAT, 1, &body);
        save("bad-string-length", b.data, b.len);
        buf_free(&b);
        buf_free(&stream);
        buf_free(&body);
        return 0;
}
