/* fuzz-wire.c — the serve --stdio wire protocol (transport/protocol.h):
 * decode the input as one frame, and read it as a stream of frames.
 *
 * Whatever decodes must encode back to exactly the same bytes (the format
 * has one encoding per message), and every byte a decoded message points
 * at is read, so a pointer past the frame shows under ASan. */
#include <stdlib.h>
#include <string.h>

#include "../../common/common.h"
#include "../../transport/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint8_t sink;

static void touch(const void *p, size_t n)
{
        const uint8_t *b = p;
        uint8_t x = 0;
        for (size_t i = 0; i < n; i++)
                x ^= b[i];
        sink ^= x;
}

static void check(const uint8_t *frame, size_t n)
{
        struct wire_msg m;
        if (wire_decode(frame, n, &m) < 0)
                return;

        struct buf out = { 0 };
        if (wire_encode(&m, &out) < 0 || out.len != n || memcmp(out.data, frame, n) != 0)
                abort();
        buf_free(&out);

        switch (m.type) {
        case WIRE_NAMES: {
                size_t off = 0;
                uint32_t count = 0;
                struct wire_name e;
                while (wire_names_next(&m, &off, &e)) {
                        if (wire_check_name(e.name.p, e.name.n) < 0)
                                abort();
                        count++;
                }
                if (count != m.names.n)
                        abort();
                break;
        }
        case WIRE_HAVE:
                touch(m.have.ids, (size_t)m.have.n * WIRE_ID_LEN);
                break;
        case WIRE_LACK:
                for (uint32_t i = 0; i < m.lack.n; i++)
                        sink ^= wire_lack_bit(&m, i);
                break;
        case WIRE_DATA:
        case WIRE_PUT_DATA:
                touch(m.data.p, m.data.n);
                break;
        case WIRE_STAT:
                if (wire_check_name(m.stat.name.p, m.stat.name.n) < 0 || memchr(m.stat.name.p, 0, m.stat.name.n))
                        abort();
                break;
        default:
                break;
        }
}

struct mem {
        const uint8_t *p;
        size_t n, off;
};

static int mem_read(void *ud, void *p, size_t n)
{
        struct mem *m = ud;
        size_t k = MIN(n, m->n - m->off);
        memcpy(p, m->p + m->off, k);
        m->off += k;
        return (int)k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        check(data, size);

        /* the same bytes as a stream: frames until the end or an error */
        struct mem m = { data, size, 0 };
        struct wire_io io = { .read = mem_read, .ud = &m, .fd_in = -1, .fd_out = -1 };
        struct buf frame = { 0 };
        while (wire_read_frame(&io, &frame) == 1) {
                if (frame.len > (size_t)WIRE_FRAME_MAX + 4 || frame.cap > (size_t)WIRE_FRAME_MAX + 4)
                        abort();
                check(frame.data, frame.len);
        }
        buf_free(&frame);
        error_clear();
        return 0;
}
