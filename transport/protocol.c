/* protocol.c — encoder, decoder and frame I/O of the serve --stdio wire
 * protocol; the format is specified in protocol.h.
 *
 * The decoder is in two steps, as manifest.c's is: parse() only takes the
 * frame apart (every read bounded by what is left, nothing allocated), and
 * check_msg() applies the field bounds.  The encoder runs the same
 * check_msg() first, so whatever encodes also decodes. */
#include <inttypes.h>
#include <limits.h>
#include <string.h>

#include "../common/common.h"
#include "protocol.h"
#include "transport.h"

const char *wire_type_name(uint8_t type)
{
        switch (type) {
        case WIRE_HELLO: return "HELLO";
        case WIRE_OPEN: return "OPEN";
        case WIRE_STAT: return "STAT";
        case WIRE_GET: return "GET";
        case WIRE_LIST: return "LIST";
        case WIRE_PUT_BEGIN: return "PUT_BEGIN";
        case WIRE_PUT_DATA: return "PUT_DATA";
        case WIRE_PUT_END: return "PUT_END";
        case WIRE_DELETE: return "DELETE";
        case WIRE_HAVE: return "HAVE";
        case WIRE_ANNOUNCE: return "ANNOUNCE";
        case WIRE_BYE: return "BYE";
        case WIRE_WELCOME: return "WELCOME";
        case WIRE_ERROR: return "ERROR";
        case WIRE_OK: return "OK";
        case WIRE_OPENED: return "OPENED";
        case WIRE_SIZE: return "SIZE";
        case WIRE_DATA: return "DATA";
        case WIRE_NAMES: return "NAMES";
        case WIRE_LACK: return "LACK";
        default: return "unknown";
        }
}

/* ---- field bounds (shared by encoder and decoder) ------------------------- */

static bool name_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
               c == '_' || c == '-' || c == '/';
}

/* Why p[0..n) is not a valid name (prefix: a LIST prefix, which may be
 * empty or end with '/'), or NULL.  Never quotes the name: it is the
 * peer's. */
static const char *name_problem(const char *p, size_t n, bool prefix)
{
        if (n == 0)
                return prefix ? NULL : "is empty";
        if (!p)
                return "is missing";
        if (n > WIRE_NAME_MAX)
                return "is longer than 4096 bytes";
        size_t start = 0;
        for (size_t i = 0; i <= n; i++) {
                if (i < n && p[i] != '/') {
                        if (!name_char(p[i]))
                                return p[i] == 0 ? "contains a NUL byte" : "has a byte outside [A-Za-z0-9._/-]";
                        continue;
                }
                size_t len = i - start;
                if (len == 0 && i == 0)
                        return "is absolute";
                if (len == 0 && i == n) {
                        if (!prefix)
                                return "ends with '/'";
                } else if (len == 0)
                        return "has an empty component ('//')";
                else if (len == 2 && p[start] == '.' && p[start + 1] == '.')
                        return "has a '..' component";
                else if (p[start] == '.')
                        return "has a component starting with '.'";
                start = i + 1;
        }
        return NULL;
}

int wire_check_name(const char *p, size_t n)
{
        const char *why = name_problem(p, n, false);
        return why ? error_set(BERTH_EPROTO, "object name %s", why) : 0;
}

struct checker {
        int err;                /* EINVAL encoding, BERTH_EPROTO decoding */
        const char *type;
};

static int check_name(const struct checker *c, const char *field, struct wire_str s, bool prefix)
{
        const char *why = name_problem(s.p, s.n, prefix);
        return why ? error_set(c->err, "%s: %s %s", c->type, field, why) : 0;
}

static int check_str(const struct checker *c, const char *field, struct wire_str s, uint32_t min, uint32_t max)
{
        if (s.n < min)
                return error_set(c->err, "%s: %s is empty", c->type, field);
        if (s.n > max)
                return error_set(c->err, "%s: %s is longer than %u bytes", c->type, field, max);
        if (s.n > 0 && !s.p)
                return error_set(c->err, "%s: %s is missing", c->type, field);
        if (s.n > 0 && memchr(s.p, 0, s.n))
                return error_set(c->err, "%s: %s contains a NUL byte", c->type, field);
        return 0;
}

static int check_bytes(const struct checker *c, const char *field, const void *p, uint64_t n, uint64_t max)
{
        if (n > max)
                return error_set(c->err, "%s: %s is longer than %" PRIu64 " bytes", c->type, field, max);
        if (n > 0 && !p)
                return error_set(c->err, "%s: %s is missing", c->type, field);
        return 0;
}

static int check_offset(const struct checker *c, const char *field, uint64_t v)
{
        if (v > WIRE_OFFSET_MAX)
                return error_set(c->err, "%s: %s is over 2^63 - 1", c->type, field);
        return 0;
}

static bool error_code_valid(int64_t code)
{
        return (code >= 1 && code <= 34) || (code >= 10001 && code <= 10999);
}

int32_t wire_error_code(int err)
{
        if (err < 0)
                err = -err;
        return error_code_valid(err) ? err : EIO;
}

/* Walks an encoded NAMES entry list: u32 n + name + u64 size, count times,
 * filling exactly len bytes. */
static int check_names_raw(const struct checker *c, const uint8_t *p, size_t len, uint32_t count)
{
        size_t off = 0;
        for (uint32_t i = 0; i < count; i++) {
                if (len - off < WIRE_NAME_ENTRY_OVERHEAD)
                        return error_set(c->err, "%s: entry %u is truncated", c->type, i);
                uint32_t n = le32_read(p + off);
                if (n > len - off - WIRE_NAME_ENTRY_OVERHEAD)
                        return error_set(c->err, "%s: entry %u is truncated", c->type, i);
                struct wire_str s = { (const char *)p + off + 4, n };
                int r = check_name(c, "name", s, false);
                if (r < 0)
                        return r;
                r = check_offset(c, "size", le64_read(p + off + 4 + n));
                if (r < 0)
                        return r;
                off += WIRE_NAME_ENTRY_OVERHEAD + n;
        }
        if (off != len)
                return error_set(c->err, "%s: bytes after the last entry", c->type);
        return 0;
}

static int check_msg(const struct wire_msg *m, int err)
{
        const struct checker c = { err, wire_type_name(m->type) };
        int r = 0;

        switch (m->type) {
        case WIRE_HELLO:
                if (m->hello.min_version < 1 || m->hello.min_version > m->hello.max_version)
                        return error_set(err, "HELLO: bad version range %u..%u", m->hello.min_version,
                                         m->hello.max_version);
                return check_str(&c, "software version", m->hello.software, 0, WIRE_SHORT_MAX);
        case WIRE_WELCOME:
                if (m->welcome.version < 1)
                        return error_set(err, "WELCOME: version 0");
                if (m->welcome.capabilities & ~(uint32_t)WIRE_CAP_ALL)
                        return error_set(err, "WELCOME: unknown capabilities 0x%x",
                                         m->welcome.capabilities & ~(uint32_t)WIRE_CAP_ALL);
                return check_str(&c, "software version", m->welcome.software, 0, WIRE_SHORT_MAX);
        case WIRE_ERROR:
                if (!error_code_valid(m->error.code))
                        return error_set(err, "ERROR: code %d is neither errno 1..34 nor a Berth code",
                                         m->error.code);
                return check_str(&c, "message", m->error.message, 0, WIRE_MESSAGE_MAX);
        case WIRE_OK:
        case WIRE_BYE:
                return 0;
        case WIRE_OPEN:
                if (m->open.mode > WIRE_OPEN_MAINTENANCE)
                        return error_set(err, "OPEN: unknown mode %u", m->open.mode);
                if (m->open.lock_wait_seconds > WIRE_LOCK_WAIT_MAX)
                        return error_set(err, "OPEN: lock wait over %u seconds", WIRE_LOCK_WAIT_MAX);
                return check_str(&c, "path", m->open.path, 1, WIRE_NAME_MAX);
        case WIRE_OPENED:
                r = check_str(&c, "repository id", m->opened.repo_id, 1, WIRE_SHORT_MAX);
                return r < 0 ? r : check_bytes(&c, "config", m->opened.config, m->opened.config_len, WIRE_CONFIG_MAX);
        case WIRE_STAT:
                return check_name(&c, "name", m->stat.name, false);
        case WIRE_DELETE:
                return check_name(&c, "name", m->delete.name, false);
        case WIRE_SIZE:
                return check_offset(&c, "size", m->size.size);
        case WIRE_GET:
                r = check_name(&c, "name", m->get.name, false);
                if (r < 0)
                        return r;
                if (m->get.length > WIRE_DATA_MAX)
                        return error_set(err, "GET: length over 16 MiB");
                if (m->get.offset > WIRE_OFFSET_MAX - m->get.length)
                        return error_set(err, "GET: offset + length over 2^63 - 1");
                return 0;
        case WIRE_DATA:
        case WIRE_PUT_DATA:
                return check_bytes(&c, "data", m->data.p, m->data.n, WIRE_DATA_MAX);
        case WIRE_LIST:
                return check_name(&c, "prefix", m->list.prefix, true);
        case WIRE_NAMES:
                if (m->names.last > 1)
                        return error_set(err, "NAMES: last is %u", m->names.last);
                if (m->names.n > WIRE_NAMES_MAX)
                        return error_set(err, "NAMES: %u entries, over %u", m->names.n, WIRE_NAMES_MAX);
                if (!m->names.entries) {
                        r = check_bytes(&c, "entries", m->names.raw, m->names.raw_len, WIRE_FRAME_MAX);
                        return r < 0 ? r : check_names_raw(&c, m->names.raw, m->names.raw_len, m->names.n);
                }
                for (uint32_t i = 0; i < m->names.n; i++) {
                        r = check_name(&c, "name", m->names.entries[i].name, false);
                        if (r < 0)
                                return r;
                        r = check_offset(&c, "size", m->names.entries[i].size);
                        if (r < 0)
                                return r;
                }
                return 0;
        case WIRE_PUT_BEGIN:
                r = check_name(&c, "name", m->put_begin.name, false);
                if (r < 0)
                        return r;
                if (m->put_begin.flags & ~(unsigned)WIRE_PUT_ALL)
                        return error_set(err, "PUT_BEGIN: unknown flags 0x%x", m->put_begin.flags);
                return check_offset(&c, "size", m->put_begin.size);
        case WIRE_PUT_END:
                return check_bytes(&c, "hash", m->put_end.sha256, 32, 32);
        case WIRE_HAVE:
                if (m->have.n > WIRE_IDS_MAX)
                        return error_set(err, "HAVE: %u ids, over %u", m->have.n, WIRE_IDS_MAX);
                return check_bytes(&c, "ids", m->have.ids, (uint64_t)m->have.n * WIRE_ID_LEN,
                                   (uint64_t)WIRE_IDS_MAX * WIRE_ID_LEN);
        case WIRE_LACK:
                if (m->lack.n > WIRE_IDS_MAX)
                        return error_set(err, "LACK: %u bits, over %u", m->lack.n, WIRE_IDS_MAX);
                r = check_bytes(&c, "bitmap", m->lack.bitmap, (m->lack.n + 7) / 8, WIRE_IDS_MAX / 8);
                if (r < 0)
                        return r;
                if (m->lack.n % 8 && m->lack.bitmap[m->lack.n / 8] >> (m->lack.n % 8))
                        return error_set(err, "LACK: padding bits set");
                return 0;
        case WIRE_ANNOUNCE: {
                struct wire_str s = m->announce.snapshot_id;
                if (s.n != WIRE_SNAPSHOT_ID_LEN || !s.p)
                        return error_set(err, "ANNOUNCE: snapshot id is not 64 hex digits");
                for (uint32_t i = 0; i < s.n; i++)
                        if (!((s.p[i] >= '0' && s.p[i] <= '9') || (s.p[i] >= 'a' && s.p[i] <= 'f')))
                                return error_set(err, "ANNOUNCE: snapshot id is not 64 lowercase hex digits");
                return 0;
        }
        default:
                return error_set(err, "unknown message type 0x%02x", m->type);
        }
}

/* ---- encoder --------------------------------------------------------------- */

static void put_u16(struct buf *b, uint16_t v)
{
        buf_putc(b, (uint8_t)v);
        buf_putc(b, (uint8_t)(v >> 8));
}

static void put_str(struct buf *b, struct wire_str s)
{
        buf_put_le32(b, s.n);
        buf_append(b, s.p, s.n);
}

/* Appends m's frame to out, except for the bytes of DATA and PUT_DATA,
 * which are left to the caller (*ret_bulk, *ret_bulk_n) but counted in the
 * length.  m has passed check_msg(). */
static int encode_head(const struct wire_msg *m, struct buf *out, const uint8_t **ret_bulk, size_t *ret_bulk_n)
{
        size_t start = out->len;
        const uint8_t *bulk = NULL;
        size_t bulk_n = 0;

        buf_put_le32(out, 0); /* the length, filled in below */
        buf_putc(out, m->type);
        buf_put_le32(out, m->tag);
        switch (m->type) {
        case WIRE_HELLO:
                buf_append(out, WIRE_MAGIC, WIRE_MAGIC_LEN);
                put_u16(out, m->hello.min_version);
                put_u16(out, m->hello.max_version);
                put_str(out, m->hello.software);
                break;
        case WIRE_WELCOME:
                buf_append(out, WIRE_MAGIC, WIRE_MAGIC_LEN);
                put_u16(out, m->welcome.version);
                put_str(out, m->welcome.software);
                buf_put_le32(out, m->welcome.capabilities);
                break;
        case WIRE_ERROR:
                buf_put_le32(out, (uint32_t)m->error.code);
                put_str(out, m->error.message);
                break;
        case WIRE_OK:
        case WIRE_BYE:
                break;
        case WIRE_OPEN:
                put_str(out, m->open.path);
                buf_putc(out, m->open.mode);
                buf_put_le32(out, m->open.lock_wait_seconds);
                break;
        case WIRE_OPENED:
                put_str(out, m->opened.repo_id);
                buf_put_le32(out, m->opened.config_len);
                buf_append(out, m->opened.config, m->opened.config_len);
                break;
        case WIRE_STAT:
                put_str(out, m->stat.name);
                break;
        case WIRE_DELETE:
                put_str(out, m->delete.name);
                break;
        case WIRE_SIZE:
                buf_put_le64(out, m->size.size);
                break;
        case WIRE_GET:
                put_str(out, m->get.name);
                buf_put_le64(out, m->get.offset);
                buf_put_le32(out, m->get.length);
                break;
        case WIRE_DATA:
        case WIRE_PUT_DATA:
                buf_put_le32(out, m->data.n);
                bulk = m->data.p;
                bulk_n = m->data.n;
                break;
        case WIRE_LIST:
                put_str(out, m->list.prefix);
                break;
        case WIRE_NAMES:
                buf_putc(out, m->names.last);
                buf_put_le32(out, m->names.n);
                if (!m->names.entries) {
                        if (m->names.n)
                                buf_append(out, m->names.raw, m->names.raw_len);
                        break;
                }
                for (uint32_t i = 0; i < m->names.n; i++) {
                        /* stop early when it cannot fit: the check below refuses it */
                        if (out->len - start > (size_t)WIRE_FRAME_MAX + 4)
                                break;
                        put_str(out, m->names.entries[i].name);
                        buf_put_le64(out, m->names.entries[i].size);
                }
                break;
        case WIRE_PUT_BEGIN:
                put_str(out, m->put_begin.name);
                buf_put_le64(out, m->put_begin.size);
                buf_putc(out, m->put_begin.flags);
                break;
        case WIRE_PUT_END:
                buf_append(out, m->put_end.sha256, 32);
                break;
        case WIRE_HAVE:
                buf_put_le32(out, m->have.n);
                buf_append(out, m->have.ids, (size_t)m->have.n * WIRE_ID_LEN);
                break;
        case WIRE_LACK:
                buf_put_le32(out, m->lack.n);
                buf_append(out, m->lack.bitmap, (m->lack.n + 7) / 8);
                break;
        case WIRE_ANNOUNCE:
                put_str(out, m->announce.snapshot_id);
                break;
        default:
                out->len = start;
                return error_set(EINVAL, "unknown message type 0x%02x", m->type);
        }

        uint64_t length = (uint64_t)(out->len - start - 4) + bulk_n;
        if (length > WIRE_FRAME_MAX) {
                out->len = start;
                return error_set(EMSGSIZE, "%s frame of %" PRIu64 " bytes is over the limit (%u)",
                                 wire_type_name(m->type), length, WIRE_FRAME_MAX);
        }
        le32_write(out->data + start, (uint32_t)length);
        *ret_bulk = bulk;
        *ret_bulk_n = bulk_n;
        return 0;
}

int wire_encode(const struct wire_msg *m, struct buf *out)
{
        const uint8_t *bulk;
        size_t bulk_n;

        int r = check_msg(m, EINVAL);
        if (r < 0)
                return r;
        r = encode_head(m, out, &bulk, &bulk_n);
        if (r < 0)
                return r;
        buf_append(out, bulk, bulk_n);
        return 0;
}

/* ---- decoder --------------------------------------------------------------- */

struct rd {
        const uint8_t *p, *end;
        const char *type;
};

static int rd_raw(struct rd *r, uint64_t n, const uint8_t **ret)
{
        if ((uint64_t)(r->end - r->p) < n)
                return error_set(BERTH_EPROTO, "%s frame is truncated", r->type);
        *ret = r->p;
        r->p += n;
        return 0;
}

static int rd_u8(struct rd *r, uint8_t *ret)
{
        const uint8_t *p = NULL;
        int k = rd_raw(r, 1, &p);
        if (k == 0)
                *ret = p[0];
        return k;
}

static int rd_u16(struct rd *r, uint16_t *ret)
{
        const uint8_t *p = NULL;
        int k = rd_raw(r, 2, &p);
        if (k == 0)
                *ret = (uint16_t)(p[0] | p[1] << 8);
        return k;
}

static int rd_u32(struct rd *r, uint32_t *ret)
{
        const uint8_t *p = NULL;
        int k = rd_raw(r, 4, &p);
        if (k == 0)
                *ret = le32_read(p);
        return k;
}

static int rd_u64(struct rd *r, uint64_t *ret)
{
        const uint8_t *p = NULL;
        int k = rd_raw(r, 8, &p);
        if (k == 0)
                *ret = le64_read(p);
        return k;
}

/* u32 n + n bytes; the bounds of n are check_msg()'s, but n can never
 * reach past the frame. */
static int rd_bytes(struct rd *r, const uint8_t **ret_p, uint32_t *ret_n)
{
        uint32_t n = 0;
        int k = rd_u32(r, &n);
        if (k < 0)
                return k;
        k = rd_raw(r, n, ret_p);
        if (k == 0)
                *ret_n = n;
        return k;
}

static int rd_str(struct rd *r, struct wire_str *ret)
{
        const uint8_t *p = NULL;
        int k = rd_bytes(r, &p, &ret->n);
        if (k == 0)
                ret->p = (const char *)p;
        return k;
}

static int rd_magic(struct rd *r)
{
        const uint8_t *p = NULL;
        int k = rd_raw(r, WIRE_MAGIC_LEN, &p);
        if (k < 0)
                return k;
        if (memcmp(p, WIRE_MAGIC, WIRE_MAGIC_LEN) != 0)
                return error_set(BERTH_EPROTO, "%s: bad magic (not a Berth wire peer)", r->type);
        return 0;
}

/* Takes the body apart; every read is bounded by the frame, nothing else is
 * checked here. */
static int parse_body(struct rd *r, struct wire_msg *m)
{
        int k = 0;

        switch (m->type) {
        case WIRE_HELLO:
                if ((k = rd_magic(r)) < 0 || (k = rd_u16(r, &m->hello.min_version)) < 0 ||
                    (k = rd_u16(r, &m->hello.max_version)) < 0)
                        return k;
                return rd_str(r, &m->hello.software);
        case WIRE_WELCOME:
                if ((k = rd_magic(r)) < 0 || (k = rd_u16(r, &m->welcome.version)) < 0 ||
                    (k = rd_str(r, &m->welcome.software)) < 0)
                        return k;
                return rd_u32(r, &m->welcome.capabilities);
        case WIRE_ERROR: {
                uint32_t code = 0;
                if ((k = rd_u32(r, &code)) < 0)
                        return k;
                m->error.code = (int32_t)code;
                return rd_str(r, &m->error.message);
        }
        case WIRE_OK:
        case WIRE_BYE:
                return 0;
        case WIRE_OPEN:
                if ((k = rd_str(r, &m->open.path)) < 0 || (k = rd_u8(r, &m->open.mode)) < 0)
                        return k;
                return rd_u32(r, &m->open.lock_wait_seconds);
        case WIRE_OPENED:
                if ((k = rd_str(r, &m->opened.repo_id)) < 0)
                        return k;
                return rd_bytes(r, &m->opened.config, &m->opened.config_len);
        case WIRE_STAT:
                return rd_str(r, &m->stat.name);
        case WIRE_DELETE:
                return rd_str(r, &m->delete.name);
        case WIRE_SIZE:
                return rd_u64(r, &m->size.size);
        case WIRE_GET:
                if ((k = rd_str(r, &m->get.name)) < 0 || (k = rd_u64(r, &m->get.offset)) < 0)
                        return k;
                return rd_u32(r, &m->get.length);
        case WIRE_DATA:
        case WIRE_PUT_DATA:
                return rd_bytes(r, &m->data.p, &m->data.n);
        case WIRE_LIST:
                return rd_str(r, &m->list.prefix);
        case WIRE_NAMES:
                if ((k = rd_u8(r, &m->names.last)) < 0 || (k = rd_u32(r, &m->names.n)) < 0)
                        return k;
                /* the entries are walked by check_msg(); here they are all
                 * that is left of the frame */
                m->names.entries = NULL;
                m->names.raw = r->p;
                m->names.raw_len = (size_t)(r->end - r->p);
                r->p = r->end;
                return 0;
        case WIRE_PUT_BEGIN:
                if ((k = rd_str(r, &m->put_begin.name)) < 0 || (k = rd_u64(r, &m->put_begin.size)) < 0)
                        return k;
                return rd_u8(r, &m->put_begin.flags);
        case WIRE_PUT_END:
                return rd_raw(r, 32, &m->put_end.sha256);
        case WIRE_HAVE:
                if ((k = rd_u32(r, &m->have.n)) < 0)
                        return k;
                if (m->have.n > WIRE_IDS_MAX)
                        return error_set(BERTH_EPROTO, "HAVE: %u ids, over %u", m->have.n, WIRE_IDS_MAX);
                return rd_raw(r, (uint64_t)m->have.n * WIRE_ID_LEN, &m->have.ids);
        case WIRE_LACK:
                if ((k = rd_u32(r, &m->lack.n)) < 0)
                        return k;
                if (m->lack.n > WIRE_IDS_MAX)
                        return error_set(BERTH_EPROTO, "LACK: %u bits, over %u", m->lack.n, WIRE_IDS_MAX);
                return rd_raw(r, ((uint64_t)m->lack.n + 7) / 8, &m->lack.bitmap);
        case WIRE_ANNOUNCE:
                return rd_str(r, &m->announce.snapshot_id);
        default:
                return error_set(BERTH_EPROTO, "unknown message type 0x%02x", m->type);
        }
}

int wire_decode(const uint8_t *frame, size_t n, struct wire_msg *ret)
{
        if (n < WIRE_HEADER_SIZE)
                return error_set(BERTH_EPROTO, "frame of %zu bytes is shorter than a header", n);
        uint32_t length = le32_read(frame);
        if (length < WIRE_FRAME_MIN || length > WIRE_FRAME_MAX)
                return error_set(BERTH_EPROTO, "frame length %u out of bounds (%u..%u)", length, WIRE_FRAME_MIN,
                                 WIRE_FRAME_MAX);
        if (length != n - 4)
                return error_set(BERTH_EPROTO, "frame length %u, but %zu bytes follow it", length, n - 4);

        *ret = (struct wire_msg){ .type = frame[4], .tag = le32_read(frame + 5) };
        struct rd r = { frame + WIRE_HEADER_SIZE, frame + n, wire_type_name(ret->type) };
        int k = parse_body(&r, ret);
        if (k < 0)
                return k;
        if (r.p != r.end)
                return error_set(BERTH_EPROTO, "%s frame has %zu trailing byte(s) after its body", r.type,
                                 (size_t)(r.end - r.p));
        return check_msg(ret, BERTH_EPROTO);
}

int wire_names_next(const struct wire_msg *m, size_t *offset, struct wire_name *ret)
{
        if (m->names.entries) {
                if (*offset >= m->names.n)
                        return 0;
                *ret = m->names.entries[(*offset)++];
                return 1;
        }
        /* raw was walked by check_msg(): every read here is in bounds */
        if (m->names.n == 0 || *offset + WIRE_NAME_ENTRY_OVERHEAD > m->names.raw_len)
                return 0;
        const uint8_t *p = m->names.raw + *offset;
        uint32_t n = le32_read(p);
        ret->name = (struct wire_str){ (const char *)p + 4, n };
        ret->size = le64_read(p + 4 + n);
        *offset += WIRE_NAME_ENTRY_OVERHEAD + n;
        return 1;
}

int wire_choose_version(unsigned min, unsigned max)
{
        if (min == 0 || min > max)
                return error_set(BERTH_EPROTO, "the peer offers an invalid version range %u..%u", min, max);
        unsigned hi = MIN(max, (unsigned)WIRE_VERSION_MAX);
        if (hi < MAX(min, (unsigned)WIRE_VERSION_MIN))
                return error_set(BERTH_EPROTO,
                                 "no common protocol version: the peer speaks %u..%u, this Berth %u..%u "
                                 "(install the same Berth version on both hosts)",
                                 min, max, WIRE_VERSION_MIN, WIRE_VERSION_MAX);
        return (int)hi;
}

/* ---- frame I/O ------------------------------------------------------------- */

/* The first allocation for a frame, and how it grows: with what has
 * arrived, never past the frame's own length. */
#define FRAME_FIRST_ALLOC (64 * 1024)

int wire_read_frame(const struct wire_io *io, struct buf *frame)
{
        uint8_t head[4];
        size_t got = 0;

        buf_reset(frame);
        while (got < sizeof head) {
                int k = io->read(io->ud, head + got, sizeof head - got);
                if (k < 0)
                        return k;
                if (k == 0) {
                        if (got == 0)
                                return 0;
                        return error_set(BERTH_EPROTO, "the stream ended inside a frame's length");
                }
                got += (size_t)k;
        }
        uint32_t length = le32_read(head);
        if (length < WIRE_FRAME_MIN || length > WIRE_FRAME_MAX)
                return error_set(BERTH_EPROTO, "frame length %u out of bounds (%u..%u)", length, WIRE_FRAME_MIN,
                                 WIRE_FRAME_MAX);

        size_t total = (size_t)length + 4;
        if (frame->cap < MIN(total, (size_t)FRAME_FIRST_ALLOC)) {
                frame->data = xrealloc(frame->data, MIN(total, (size_t)FRAME_FIRST_ALLOC));
                frame->cap = MIN(total, (size_t)FRAME_FIRST_ALLOC);
        }
        memcpy(frame->data, head, 4);
        frame->len = 4;
        while (frame->len < total) {
                if (frame->len == frame->cap) {
                        size_t cap = MIN(total, frame->cap * 2);
                        frame->data = xrealloc(frame->data, cap);
                        frame->cap = cap;
                }
                size_t want = MIN(frame->cap, total) - frame->len;
                int k = io->read(io->ud, frame->data + frame->len, want);
                if (k < 0)
                        return k;
                if (k == 0)
                        return error_set(BERTH_EPROTO, "the stream ended inside a frame (%zu of %zu bytes)",
                                         frame->len, total);
                frame->len += (size_t)k;
        }
        return 1;
}

int wire_write(const struct wire_io *io, const struct wire_msg *m)
{
        _cleanup_(buf_free) struct buf head = { 0 };
        const uint8_t *bulk;
        size_t bulk_n;

        int r = check_msg(m, EINVAL);
        if (r < 0)
                return r;
        r = encode_head(m, &head, &bulk, &bulk_n);
        if (r < 0)
                return r;
        r = io->write(io->ud, head.data, head.len);
        if (r < 0)
                return r;
        return bulk_n ? io->write(io->ud, bulk, bulk_n) : 0;
}

static int fd_read(void *ud, void *p, size_t n)
{
        const struct wire_io *io = ud;
        for (;;) {
                ssize_t k = read(io->fd_in, p, MIN(n, (size_t)INT_MAX));
                if (k >= 0)
                        return (int)k;
                if (errno != EINTR)
                        return error_set(errno, "cannot read from the peer: %m");
        }
}

static int fd_write(void *ud, const void *p, size_t n)
{
        const struct wire_io *io = ud;
        int r = write_all(io->fd_out, p, n);
        return r < 0 ? error_set(r, "cannot write to the peer: %s", berth_strerror(r)) : 0;
}

void wire_io_fd(struct wire_io *ret, int in, int out)
{
        *ret = (struct wire_io){ .read = fd_read, .write = fd_write, .ud = ret, .fd_in = in, .fd_out = out };
}

static int ssh_read(void *ud, void *p, size_t n)
{
        ssize_t k = ssh_channel_read(ud, p, MIN(n, (size_t)INT_MAX));
        return (int)k;
}

static int ssh_write(void *ud, const void *p, size_t n)
{
        return ssh_channel_write(ud, p, n);
}

void wire_io_ssh(struct wire_io *ret, struct ssh_channel *ch)
{
        *ret = (struct wire_io){ .read = ssh_read, .write = ssh_write, .ud = ch, .fd_in = -1, .fd_out = -1 };
}
