/* buf.c — growable byte buffers, varints, and a bounds-checked read cursor. */
#include <string.h>

#include "common.h"

void buf_reserve(struct buf *b, size_t extra)
{
        if (b->cap - b->len >= extra)
                return;
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < extra)
                cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
}

void buf_append(struct buf *b, const void *p, size_t n)
{
        if (n == 0)
                return;
        buf_reserve(b, n);
        memcpy(b->data + b->len, p, n);
        b->len += n;
}

void buf_putc(struct buf *b, uint8_t c)
{
        buf_reserve(b, 1);
        b->data[b->len++] = c;
}

void buf_put_varint(struct buf *b, uint64_t v)
{
        buf_reserve(b, 10);
        while (v >= 0x80) {
                b->data[b->len++] = (uint8_t)(v | 0x80);
                v >>= 7;
        }
        b->data[b->len++] = (uint8_t)v;
}

void buf_put_svarint(struct buf *b, int64_t v)
{
        /* zigzag, so small negative numbers stay short */
        buf_put_varint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void buf_put_bytes(struct buf *b, const void *p, size_t n)
{
        buf_put_varint(b, n);
        buf_append(b, p, n);
}

void buf_put_str(struct buf *b, const char *s)
{
        buf_put_bytes(b, s ? s : "", s ? strlen(s) : 0);
}

void buf_put_le32(struct buf *b, uint32_t v)
{
        buf_reserve(b, 4);
        le32_write(b->data + b->len, v);
        b->len += 4;
}

void buf_put_le64(struct buf *b, uint64_t v)
{
        buf_reserve(b, 8);
        le64_write(b->data + b->len, v);
        b->len += 8;
}

void buf_reset(struct buf *b) { b->len = 0; }

void buf_free(struct buf *b)
{
        free(b->data);
        *b = (struct buf){ 0 };
}

void buf_consume(struct buf *b, size_t n)
{
        if (n >= b->len) {
                b->len = 0;
                return;
        }
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
}

int cur_get_u8(struct cursor *c, uint8_t *ret)
{
        if (c->p >= c->end)
                return -BERTH_ECORRUPT;
        *ret = *c->p++;
        return 0;
}

int cur_get_varint(struct cursor *c, uint64_t *ret)
{
        uint64_t v = 0;
        for (unsigned shift = 0; shift < 64; shift += 7) {
                if (c->p >= c->end)
                        return -BERTH_ECORRUPT;
                uint8_t byte = *c->p++;
                v |= (uint64_t)(byte & 0x7f) << shift;
                if (!(byte & 0x80)) {
                        *ret = v;
                        return 0;
                }
        }
        return -BERTH_ECORRUPT;
}

int cur_get_svarint(struct cursor *c, int64_t *ret)
{
        uint64_t u;
        int r = cur_get_varint(c, &u);
        if (r < 0)
                return r;
        *ret = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
        return 0;
}

int cur_get_raw(struct cursor *c, size_t n, const uint8_t **ret_p)
{
        if (cur_left(c) < n)
                return -BERTH_ECORRUPT;
        *ret_p = c->p;
        c->p += n;
        return 0;
}

int cur_get_bytes(struct cursor *c, const uint8_t **ret_p, size_t *ret_n)
{
        uint64_t n;
        int r = cur_get_varint(c, &n);
        if (r < 0)
                return r;
        if (n > cur_left(c))
                return -BERTH_ECORRUPT;
        *ret_p = c->p;
        *ret_n = (size_t)n;
        c->p += n;
        return 0;
}

uint32_t le32_read(const uint8_t *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t le64_read(const uint8_t *p) { return (uint64_t)le32_read(p) | (uint64_t)le32_read(p + 4) << 32; }

void le32_write(uint8_t *p, uint32_t v)
{
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
        p[2] = (uint8_t)(v >> 16);
        p[3] = (uint8_t)(v >> 24);
}

void le64_write(uint8_t *p, uint64_t v)
{
        le32_write(p, (uint32_t)v);
        le32_write(p + 4, (uint32_t)(v >> 32));
}

void buf_put_shell_word(struct buf *b, const char *s)
{
        buf_putc(b, '\'');
        for (; *s; s++) {
                if (*s == '\'')
                        buf_append(b, "'\\''", 4);
                else
                        buf_putc(b, (uint8_t)*s);
        }
        buf_putc(b, '\'');
}
