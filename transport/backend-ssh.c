/* backend-ssh.c — a repository's objects on another host, through
 * `berth serve --stdio` over an SSH channel (see remote.h, protocol.h). */
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "protocol.h"
#include "remote.h"

#define PIECE (4u * 1024 * 1024)    /* PUT_DATA and GET pieces */
/* get_range reads small pieces through a cache of WINDOWS windows of
 * WINDOW bytes (window.c): readers take a pack's chunks mostly in order, so
 * one round trip serves many of them, at the price of up to a window's
 * bytes read for nothing on a lone small read.  No read-ahead: there is one
 * channel, and a request waits for the one before. */
#define WINDOW (1u * 1024 * 1024)
#define WINDOWS 4

struct remote {
        pthread_mutex_t lock;           /* one request and its reply at a time */
        struct ssh_session *session;
        struct ssh_channel *channel;
        struct wire_io io;              /* counting, over the channel */
        struct wire_io chan_io;
        struct buf frame;               /* the last reply */
        uint32_t tag;
        char *where;
        char *repo_id;
        bool announce;                  /* opened for writing */
        bool broken;                    /* the connection failed: nothing more is sent */
        uint64_t sent, received, requests;
        struct window_cache *windows;
};

static const struct backend_ops ssh_ops;

static int count_read(void *ud, void *p, size_t n)
{
        struct remote *rm = ud;
        int k = rm->chan_io.read(rm->chan_io.ud, p, n);
        if (k > 0)
                rm->received += (uint64_t)k;
        return k;
}

static int count_write(void *ud, const void *p, size_t n)
{
        struct remote *rm = ud;
        int k = rm->chan_io.write(rm->chan_io.ud, p, n);
        if (k == 0)
                rm->sent += n;
        return k;
}

/* The connection cannot be trusted any further (a short read, a frame out
 * of order): every later call fails at once. */
static int broken(struct remote *rm, int k)
{
        rm->broken = true;
        if (k >= 0)
                k = -BERTH_EPROTO;
        const char *m = error_message();
        _cleanup_free_ char *msg = xstrdup(m ? m : berth_strerror(k));
        return error_set(-k, "connection to %s lost: %s", rm->where, msg);
}

/* An ERROR frame as -code, with the peer's message (escaped) set. */
static int peer_error(struct remote *rm, const struct wire_msg *m)
{
        int32_t code = m->error.code;
        if (!((code >= 1 && code <= 34) || (code >= 10001 && code <= 10999)))
                code = EIO;
        _cleanup_free_ char *raw = xstrndup(m->error.message.p, m->error.message.n);
        _cleanup_free_ char *msg = escape_text(raw);
        return error_set(code, "%s: %s", rm->where, msg);
}

/* Sends req (its tag set here) and reads the reply into *reply (pointing
 * into rm->frame), which is of type `want` or an ERROR (returned as
 * -code).  Caller holds rm->lock. */
static int call(struct remote *rm, struct wire_msg *req, uint8_t want, struct wire_msg *reply)
{
        if (rm->broken)
                return error_set(EIO, "connection to %s lost earlier", rm->where);
        req->tag = ++rm->tag;
        rm->requests++;
        int k = wire_write(&rm->io, req);
        if (k < 0)
                return k == -EINVAL || k == -EMSGSIZE ? k : broken(rm, k);
        k = wire_read_frame(&rm->io, &rm->frame);
        if (k <= 0)
                return broken(rm, k == 0 ? -EPIPE : k);
        k = wire_decode(rm->frame.data, rm->frame.len, reply);
        if (k < 0)
                return broken(rm, k);
        if (reply->type == WIRE_ERROR && (reply->tag == req->tag || reply->tag == 0)) {
                /* tag 0: the far side saw a violation and hangs up. */
                if (reply->tag == 0)
                        rm->broken = true;
                return peer_error(rm, reply);
        }
        if (reply->tag != req->tag || reply->type != want)
                return broken(rm, error_set(BERTH_EPROTO, "%s answered %s with %s", rm->where,
                                            wire_type_name(req->type), wire_type_name(reply->type)));
        return 0;
}

static struct remote *R(struct backend *b) { return b->impl; }

static void unlockp(pthread_mutex_t **m)
{
        if (*m)
                pthread_mutex_unlock(*m);
}
#define LOCKED(rm)                                                                                                     \
        pthread_mutex_lock(&(rm)->lock);                                                                               \
        _cleanup_(unlockp) pthread_mutex_t *_held = &(rm)->lock

/* GET of up to len bytes at offset into p; the count in *ret_n.  Caller
 * holds the lock. */
static int get_piece(struct remote *rm, const char *name, uint64_t offset, uint32_t len, void *p, size_t *ret_n)
{
        struct wire_msg req = { .type = WIRE_GET }, rep;
        req.get.name = wire_str(name);
        req.get.offset = offset;
        req.get.length = len;
        int k = call(rm, &req, WIRE_DATA, &rep);
        if (k < 0)
                return k;
        if (rep.data.n > len)
                return broken(rm, error_set(BERTH_EPROTO, "%s sent more than asked for", rm->where));
        memcpy(p, rep.data.p, rep.data.n);
        *ret_n = rep.data.n;
        return 0;
}

static int quiet_enoent(int k)
{
        if (k == -ENOENT)
                error_clear();
        return k;
}

static int ssh_get(struct backend *b, const char *name, size_t max, struct buf *ret)
{
        struct remote *rm = R(b);
        struct buf out = { 0 };
        /* One byte more than max tells a too large object. */
        size_t room = max < SIZE_MAX ? max + 1 : SIZE_MAX;
        LOCKED(rm);
        for (;;) {
                size_t want = MIN((size_t)PIECE, room - out.len), n = 0;
                buf_reserve(&out, want);
                int k = get_piece(rm, name, out.len, (uint32_t)want, out.data + out.len, &n);
                if (k < 0) {
                        buf_free(&out);
                        return quiet_enoent(k);
                }
                out.len += n;
                if (out.len > max) {
                        buf_free(&out);
                        return -EFBIG;
                }
                if (n < want || out.len == room)
                        break;
        }
        buf_free(ret);
        *ret = out;
        return 0;
}

/* window_fetch_fn for the windows */
static int window_fetch(void *ud, const char *name, uint64_t offset, size_t len, void *buf, size_t *ret_n,
                        uint64_t *ret_size)
{
        struct remote *rm = ud;
        *ret_size = 0;
        LOCKED(rm);
        return quiet_enoent(get_piece(rm, name, offset, (uint32_t)len, buf, ret_n));
}

static int ssh_get_range(struct backend *b, const char *name, uint64_t offset, size_t len, void *buf)
{
        struct remote *rm = R(b);
        uint8_t *p = buf;
        if (len <= WINDOW / 2 && strlen(name) < WINDOW_NAME_MAX)
                return window_cache_read(rm->windows, name, offset, len, buf);
        LOCKED(rm);
        while (len > 0) {
                size_t want = MIN(len, (size_t)WIRE_DATA_MAX), n = 0;
                int k = get_piece(rm, name, offset, (uint32_t)want, p, &n);
                if (k < 0)
                        return quiet_enoent(k);
                if (n < want) {
                        error_clear();
                        return -EIO;
                }
                p += n, offset += n, len -= n;
        }
        return 0;
}

static int ssh_stat(struct backend *b, const char *name, uint64_t *ret_size)
{
        struct remote *rm = R(b);
        struct wire_msg req = { .type = WIRE_STAT }, rep;
        req.stat.name = wire_str(name);
        LOCKED(rm);
        int k = call(rm, &req, WIRE_SIZE, &rep);
        if (k < 0)
                return quiet_enoent(k);
        *ret_size = rep.size.size;
        return 0;
}

struct listed {
        char **names;
        uint64_t *sizes;
        size_t n, cap;
};

static void listed_clear(struct listed *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->names[i]);
        free(l->names);
        free(l->sizes);
}

static int ssh_list(struct backend *b, const char *prefix, backend_list_fn fn, void *ud)
{
        struct remote *rm = R(b);
        struct listed l = { 0 };
        int k;
        {
                /* The whole listing first: fn may call back into this
                 * backend (recovery reads pack trailers while it lists). */
                LOCKED(rm);
                struct wire_msg req = { .type = WIRE_LIST }, rep;
                req.list.prefix = wire_str(prefix);
                k = call(rm, &req, WIRE_NAMES, &rep);
                while (k == 0) {
                        size_t off = 0;
                        struct wire_name e;
                        while (wire_names_next(&rep, &off, &e) > 0) {
                                if (l.n == l.cap) {
                                        l.cap = l.cap ? 2 * l.cap : 256;
                                        l.names = xrealloc(l.names, l.cap * sizeof *l.names);
                                        l.sizes = xrealloc(l.sizes, l.cap * sizeof *l.sizes);
                                }
                                l.names[l.n] = xstrndup(e.name.p, e.name.n);
                                l.sizes[l.n++] = e.size;
                        }
                        if (rep.names.last)
                                break;
                        /* The next NAMES of the same request. */
                        k = wire_read_frame(&rm->io, &rm->frame);
                        if (k <= 0) {
                                k = broken(rm, k == 0 ? -EPIPE : k);
                                break;
                        }
                        k = wire_decode(rm->frame.data, rm->frame.len, &rep);
                        if (k < 0)
                                k = broken(rm, k);
                        else if (rep.type == WIRE_ERROR && rep.tag == req.tag)
                                k = peer_error(rm, &rep);
                        else if (rep.type != WIRE_NAMES || rep.tag != req.tag)
                                k = broken(rm, error_set(BERTH_EPROTO, "%s sent %s in a listing", rm->where,
                                                         wire_type_name(rep.type)));
                }
        }
        for (size_t i = 0; k == 0 && i < l.n; i++) {
                if (strncmp(l.names[i], prefix, strlen(prefix)) != 0 || !backend_name_valid(l.names[i]))
                        continue; /* not what was asked for: the peer's mistake, not ours to act on */
                k = fn(ud, l.names[i], l.sizes[i]);
        }
        listed_clear(&l);
        return k;
}

/* PUT of size bytes that read(ud, offset, p, n) supplies; caller holds the
 * lock.  1 created, or the peer's -code (-EEXIST: the name is taken). */
static int put_stream(struct remote *rm, const char *name, uint64_t size,
                      int (*read)(void *ud, uint64_t off, void *p, size_t n), void *ud)
{
        if (rm->broken)
                return error_set(EIO, "connection to %s lost earlier", rm->where);
        uint32_t tag = ++rm->tag;
        struct wire_msg m = { .type = WIRE_PUT_BEGIN, .tag = tag };
        m.put_begin.name = wire_str(name);
        m.put_begin.size = size;
        m.put_begin.flags = WIRE_PUT_CREATE;
        int k = wire_write(&rm->io, &m);
        if (k < 0)
                return broken(rm, k);
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
                EVP_MD_CTX_free(md);
                return broken(rm, error_set(ENOMEM, "cannot start SHA-256"));
        }
        uint8_t *piece = xmalloc(MIN((uint64_t)PIECE, size ? size : 1));
        for (uint64_t off = 0; off < size;) {
                size_t n = (size_t)MIN((uint64_t)PIECE, size - off);
                k = read(ud, off, piece, n);
                if (k < 0) {
                        /* The far side must not get a partial object:
                         * the connection is dropped mid-PUT. */
                        _cleanup_free_ char *msg = xstrdup(error_message() ? error_message() : berth_strerror(k));
                        free(piece);
                        EVP_MD_CTX_free(md);
                        broken(rm, k);
                        return error_set(-k, "%s", msg);
                }
                EVP_DigestUpdate(md, piece, n);
                m = (struct wire_msg){ .type = WIRE_PUT_DATA, .tag = tag };
                m.data.p = piece;
                m.data.n = (uint32_t)n;
                k = wire_write(&rm->io, &m);
                if (k < 0) {
                        free(piece);
                        EVP_MD_CTX_free(md);
                        return broken(rm, k);
                }
                off += n;
        }
        free(piece);
        uint8_t sha[32];
        unsigned mdlen = 0;
        EVP_DigestFinal_ex(md, sha, &mdlen);
        EVP_MD_CTX_free(md);
        /* PUT_END is the one request answered: send it through call() with
         * the tag of PUT_BEGIN. */
        rm->tag = tag - 1;
        m = (struct wire_msg){ .type = WIRE_PUT_END };
        m.put_end.sha256 = sha;
        struct wire_msg rep;
        k = call(rm, &m, WIRE_OK, &rep);
        return k < 0 ? k : 1;
}

/* Whether the object `name` holds exactly size bytes equal to what read()
 * supplies: 0 same, -EEXIST other, -errno.  Caller holds the lock. */
static int same_content(struct remote *rm, const char *name, uint64_t size,
                        int (*read)(void *ud, uint64_t off, void *p, size_t n), void *ud)
{
        struct wire_msg req = { .type = WIRE_STAT }, rep;
        req.stat.name = wire_str(name);
        int k = call(rm, &req, WIRE_SIZE, &rep);
        if (k < 0)
                return k;
        if (rep.size.size != size)
                return -EEXIST;
        _cleanup_free_ uint8_t *a = xmalloc(PIECE), *b = xmalloc(PIECE);
        for (uint64_t off = 0; off < size;) {
                size_t want = (size_t)MIN((uint64_t)PIECE, size - off), n = 0;
                k = get_piece(rm, name, off, (uint32_t)want, a, &n);
                if (k < 0)
                        return k;
                if (n != want)
                        return -EEXIST;
                k = read(ud, off, b, n);
                if (k < 0)
                        return k;
                if (memcmp(a, b, n) != 0)
                        return -EEXIST;
                off += n;
        }
        return 0;
}

/* snapshots/<64 hex>: the id, else NULL. */
static const char *snapshot_object_id(const char *name)
{
        if (strncmp(name, "snapshots/", 10) != 0 || strlen(name + 10) != WIRE_SNAPSHOT_ID_LEN)
                return NULL;
        for (const char *p = name + 10; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return NULL;
        return name + 10;
}

static int put_common(struct remote *rm, const char *name, uint64_t size,
                      int (*read)(void *ud, uint64_t off, void *p, size_t n), void *ud)
{
        LOCKED(rm);
        int k = put_stream(rm, name, size, read, ud);
        if (k == -EEXIST) {
                error_clear();
                k = same_content(rm, name, size, read, ud);
                if (k == -EEXIST)
                        return error_set(EEXIST, "%s/%s already exists with other content; not replaced", rm->where,
                                         name);
        }
        if (k < 0) {
                if (!error_message())
                        error_set(-k, "cannot write %s/%s: %s", rm->where, name, berth_strerror(k));
                return k;
        }
        const char *id = snapshot_object_id(name);
        if (id && rm->announce) {
                /* The far side indexes it in its own catalog now, as its
                 * writers' recovery would. */
                struct wire_msg req = { .type = WIRE_ANNOUNCE }, rep;
                req.announce.snapshot_id = wire_str(id);
                int a = call(rm, &req, WIRE_OK, &rep);
                if (a < 0)
                        return a;
        }
        return k;
}

struct mem_src {
        const uint8_t *p;
};

static int mem_read(void *ud, uint64_t off, void *p, size_t n)
{
        const struct mem_src *s = ud;
        memcpy(p, s->p + off, n);
        return 0;
}

static int ssh_put(struct backend *b, const char *name, const void *data, size_t len)
{
        struct mem_src s = { data };
        return put_common(R(b), name, len, mem_read, &s);
}

static int file_read(void *ud, uint64_t off, void *p, size_t n)
{
        const struct backend_spool *f = ud;
        int k = pread_all(f->fd, p, n, (off_t)off);
        if (k < 0)
                return error_set(-k, "cannot read the spool file %s: %s", f->name, berth_strerror(k));
        return 0;
}

static int ssh_put_file(struct backend *b, const char *name, const struct backend_spool *f)
{
        return put_common(R(b), name, f->size, file_read, (void *)f);
}

static int ssh_delete(struct backend *b, const char *name)
{
        struct remote *rm = R(b);
        struct wire_msg req = { .type = WIRE_DELETE }, rep;
        req.delete.name = wire_str(name);
        LOCKED(rm);
        int k = call(rm, &req, WIRE_OK, &rep);
        if (k == -ENOENT)
                error_clear();
        return k;
}

_Static_assert(BACKEND_LACKS_MAX <= WIRE_IDS_MAX, "a lacks() call is one HAVE");

static size_t bits_set(const uint8_t *bitmap, size_t n)
{
        size_t c = 0;
        for (size_t i = 0; i < n; i++)
                c += (bitmap[i / 8] >> (i % 8)) & 1;
        return c;
}

static int ssh_lacks(struct backend *b, const uint8_t (*ids)[32], size_t n, uint8_t *ret_lack)
{
        struct remote *rm = R(b);
        struct wire_msg req = { .type = WIRE_HAVE }, rep;
        req.have.n = (uint32_t)n;
        req.have.ids = (const uint8_t *)ids;
        LOCKED(rm);
        int k = call(rm, &req, WIRE_LACK, &rep);
        if (k < 0)
                return k;
        if (rep.lack.n != n)
                return broken(rm, error_set(BERTH_EPROTO, "%s answered HAVE of %zu ids with LACK of %u", rm->where,
                                            n, rep.lack.n));
        memcpy(ret_lack, rep.lack.bitmap, (n + 7) / 8);
        log_debug("%s: offered %zu chunk ids, it lacks %zu", rm->where, n, bits_set(ret_lack, n));
        return 0;
}

static void remote_free(struct remote *rm)
{
        if (!rm)
                return;
        if (rm->channel) {
                if (!rm->broken && rm->repo_id) {
                        struct wire_msg req = { .type = WIRE_BYE }, rep;
                        if (call(rm, &req, WIRE_OK, &rep) < 0)
                                error_clear();
                }
                /* A broken peer is not read to its end: one that keeps the
                 * channel open would hang us (ssh_channel_free is bounded). */
                if (!rm->broken)
                        ssh_channel_close(rm->channel, NULL);
                /* whose timeout must not replace the error that broke it */
                _cleanup_free_ char *why = error_message() ? xstrdup(error_message()) : NULL;
                ssh_channel_free(rm->channel);
                if (why)
                        error_set(EPROTO, "%s", why);
        }
        log_debug("%s: sent %llu bytes, received %llu bytes, %llu requests", rm->where,
                  (unsigned long long)rm->sent, (unsigned long long)rm->received,
                  (unsigned long long)rm->requests);
        ssh_session_free(rm->session);
        buf_free(&rm->frame);
        window_cache_free(rm->windows);
        pthread_mutex_destroy(&rm->lock);
        free(rm->where);
        free(rm->repo_id);
        free(rm);
}

static void ssh_free(struct backend *b)
{
        remote_free(b->impl);
}

static const struct backend_ops ssh_ops = {
        .get = ssh_get,
        .get_range = ssh_get_range,
        .stat = ssh_stat,
        .list = ssh_list,
        .put = ssh_put,
        .put_file = ssh_put_file,
        .delete = ssh_delete,
        .lacks = ssh_lacks,
        .free = ssh_free,
};

/* 'berth' serve --stdio, for the far side's shell (a NUL-terminated string). */
static char *shell_quote(const char *s)
{
        struct buf b = { 0 };
        buf_put_shell_word(&b, s);
        buf_append(&b, " serve --stdio", 15);
        return (char *)b.data;
}

/* The handshake failed with end of stream: say why, from the command's exit
 * status and stderr. */
static int no_server(struct remote *rm, const char *berth)
{
        int status = -1;
        ssh_channel_close(rm->channel, &status);
        /* The far side's words: trimmed, then escaped. */
        _cleanup_free_ char *raw = xstrdup(ssh_channel_stderr(rm->channel));
        size_t n = strlen(raw);
        while (n > 0 && (raw[n - 1] == '\n' || raw[n - 1] == '\r' || raw[n - 1] == ' '))
                raw[--n] = 0;
        _cleanup_free_ char *err = escape_text(raw);
        rm->broken = true;
        if (status == 127 || status == 126)
                return error_set(ENOENT,
                                 "'%s' cannot be run on %s (%s): install berth there, or name it with "
                                 "--remote-berth PATH (BERTH_REMOTE_BERTH)",
                                 berth, ssh_session_name(rm->session), *err ? err : "command not found");
        return error_set(EPIPE, "%s serve --stdio on %s ended before answering (exit status %d)%s%s", berth,
                         ssh_session_name(rm->session), status, *err ? ": " : "", err);
}

static bool hex_id(const char *p, size_t n)
{
        if (n == 0 || n > WIRE_SHORT_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
                        return false;
        return true;
}

int backend_ssh_open(struct ssh_session *s, const struct remote_options *o, struct backend **ret)
{
        static const uint8_t modes[] = { [REPO_READ] = WIRE_OPEN_READ, [REPO_WRITE] = WIRE_OPEN_WRITE,
                                         [REPO_REBUILD] = WIRE_OPEN_MAINTENANCE };
        struct remote *rm = xcalloc(1, sizeof *rm);
        const char *berth = o->remote_berth && *o->remote_berth ? o->remote_berth : "berth";
        pthread_mutex_init(&rm->lock, NULL);
        rm->windows = window_cache_new(WINDOW, WINDOWS, 0, 0, window_fetch, rm);
        rm->session = s;
        rm->where = xstrdup(o->where);
        rm->announce = o->mode == REPO_WRITE;

        _cleanup_free_ char *cmd = shell_quote(berth);
        int k = ssh_exec(s, cmd, &rm->channel);
        if (k < 0)
                goto fail;
        wire_io_ssh(&rm->chan_io, rm->channel);
        rm->io = (struct wire_io){ .read = count_read, .write = count_write, .ud = rm, .fd_in = -1, .fd_out = -1 };

        struct wire_msg m = { .type = WIRE_HELLO, .tag = 0 }, rep;
        m.hello.min_version = WIRE_VERSION_MIN;
        m.hello.max_version = WIRE_VERSION_MAX;
        m.hello.software = wire_str(BERTH_VERSION);
        k = wire_write(&rm->io, &m);
        if (k == 0)
                k = wire_read_frame(&rm->io, &rm->frame);
        if (k == 0 || k == -EPIPE) {
                k = no_server(rm, berth);
                goto fail;
        }
        if (k < 0) {
                k = broken(rm, k);
                goto fail;
        }
        k = wire_decode(rm->frame.data, rm->frame.len, &rep);
        if (k < 0) {
                k = broken(rm, k);
                goto fail;
        }
        if (rep.type == WIRE_ERROR) {
                k = peer_error(rm, &rep);
                goto fail;
        }
        if (rep.type != WIRE_WELCOME) {
                k = broken(rm, error_set(BERTH_EPROTO, "%s answered HELLO with %s", rm->where,
                                         wire_type_name(rep.type)));
                goto fail;
        }
        if (rep.welcome.version < WIRE_VERSION_MIN || rep.welcome.version > WIRE_VERSION_MAX) {
                k = broken(rm, error_set(BERTH_EPROTO, "%s chose wire protocol version %u, which this berth does "
                                                       "not speak", rm->where, rep.welcome.version));
                goto fail;
        }

        m = (struct wire_msg){ .type = WIRE_OPEN };
        m.open.path = wire_str(o->path);
        m.open.mode = modes[o->mode];
        unsigned wait = o->mode != REPO_READ ? MAX(o->lock_wait, (unsigned)REMOTE_LOCK_GRACE) : o->lock_wait;
        m.open.lock_wait_seconds = MIN(wait, (unsigned)WIRE_LOCK_WAIT_MAX);
        k = call(rm, &m, WIRE_OPENED, &rep);
        if (k < 0)
                goto fail;
        if (!hex_id(rep.opened.repo_id.p, rep.opened.repo_id.n)) {
                k = broken(rm, error_set(BERTH_EPROTO, "%s gave a repository id that is not hex digits", rm->where));
                goto fail;
        }
        rm->repo_id = xstrndup(rep.opened.repo_id.p, rep.opened.repo_id.n);
        *ret = backend_new(&ssh_ops, rm, o->where, o->mode != REPO_READ);
        return 0;
fail:
        remote_free(rm);
        return k;
}

const char *backend_ssh_repo_id(struct backend *b)
{
        return b && b->ops == &ssh_ops ? R(b)->repo_id : NULL;
}

void backend_ssh_traffic(struct backend *b, uint64_t *ret_sent, uint64_t *ret_received)
{
        struct remote *rm = b && b->ops == &ssh_ops ? R(b) : NULL;
        *ret_sent = rm ? rm->sent : 0;
        *ret_received = rm ? rm->received : 0;
}
