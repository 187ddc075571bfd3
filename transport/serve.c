/* serve.c — `berth serve --stdio`: one client, one repository, the wire
 * protocol of protocol.h.  See serve.h for what it guarantees. */
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../snapshot/snapshot.h"
#include "serve.h"

#define LIST_FRAME_BYTES (1024 * 1024)        /* NAMES entries per frame, about */
#define SMALL_OBJECT_MAX (64u * 1024 * 1024)  /* config and snapshots/: put from memory */

struct server {
        const struct serve_options *o;
        const struct wire_io *io;
        char **roots;                   /* resolved --restrict-to-path DIRs */
        size_t nroots;
        bool hello;
        struct repo *repo;
        uint8_t mode;                   /* WIRE_OPEN_* of the repository */

        /* the PUT in progress, between PUT_BEGIN and PUT_END */
        bool in_put;
        uint32_t put_tag;
        char *put_name;
        uint64_t put_size, put_got;
        uint8_t put_flags;
        int put_err;                    /* refused: answer this at PUT_END */
        char *put_msg;
        int put_fd;
        char put_tmp[64];
        EVP_MD_CTX *md;
        struct buf frame;
};

/* ---- replies --------------------------------------------------------------- */

static int send_msg(struct server *s, const struct wire_msg *m)
{
        return wire_write(s->io, m);
}

static int send_ok(struct server *s, uint32_t tag)
{
        return send_msg(s, &(struct wire_msg){ .type = WIRE_OK, .tag = tag });
}

/* ERROR {err, msg}; msg is cut to the protocol's bound. */
static int send_error(struct server *s, uint32_t tag, int err, const char *msg)
{
        struct wire_msg m = { .type = WIRE_ERROR, .tag = tag };
        m.error.code = wire_error_code(err);
        m.error.message = wire_str(msg ? msg : berth_strerror(-abs(err)));
        if (m.error.message.n > WIRE_MESSAGE_MAX)
                m.error.message.n = WIRE_MESSAGE_MAX;
        log_debug("serve: tag %u: error %d: %s", tag, m.error.code, msg ? msg : "");
        return send_msg(s, &m);
}

/* ERROR for a failed call r (< 0), with error_message() when one was set. */
static int send_failure(struct server *s, uint32_t tag, int r)
{
        const char *m = error_message();
        int k = send_error(s, tag, r, m ? m : berth_strerror(r));
        error_clear();
        return k;
}

/* The peer broke the protocol: ERROR {BERTH_EPROTO}, then the caller ends
 * the connection.  Returns -BERTH_EPROTO with the message set. */
static int violation(struct server *s, uint32_t tag, const char *msg)
{
        send_error(s, tag, BERTH_EPROTO, msg);
        return error_set(BERTH_EPROTO, "client broke the protocol: %s", msg);
}

/* ---- names and paths -------------------------------------------------------- */

/* A repository object a client may reach: its config, its packs, its
 * snapshot files and their protection marks (keep/); never catalog.db,
 * the lock or the spool. */
static bool object_name(const char *n)
{
        return strcmp(n, "config") == 0 || (strncmp(n, "packs/", 6) == 0 && n[6]) ||
               (strncmp(n, "snapshots/", 10) == 0 && n[10]) || (strncmp(n, "keep/", 5) == 0 && n[5]) ||
               (strncmp(n, "keys/", 5) == 0 && n[5]);
}

static char *cstr(struct wire_str w) { return xstrndup(w.p, w.n); }

/* True when the resolved path is one of the roots or beneath one. */
static bool path_allowed(const struct server *s, const char *real)
{
        if (s->nroots == 0)
                return true;
        for (size_t i = 0; i < s->nroots; i++) {
                size_t n = strlen(s->roots[i]);
                if (strncmp(real, s->roots[i], n) == 0 &&
                    (real[n] == 0 || real[n] == '/' || (n == 1 && s->roots[i][0] == '/')))
                        return true;
        }
        return false;
}

/* ---- requests ------------------------------------------------------------------ */

static int do_hello(struct server *s, const struct wire_msg *m)
{
        int v = wire_choose_version(m->hello.min_version, m->hello.max_version);
        if (v < 0) {
                const char *msg = error_message();
                send_error(s, m->tag, BERTH_EPROTO, msg ? msg : "no common version");
                return -BERTH_EPROTO;
        }
        s->hello = true;
        struct wire_msg w = { .type = WIRE_WELCOME, .tag = m->tag };
        w.welcome.version = (uint16_t)v;
        w.welcome.software = wire_str(s->o->software_version ? s->o->software_version : "berth");
        w.welcome.capabilities = (s->o->append_only ? WIRE_CAP_APPEND_ONLY : 0) |
                                 (s->nroots ? WIRE_CAP_RESTRICTED : 0);
        return send_msg(s, &w);
}

static int do_open(struct server *s, const struct wire_msg *m)
{
        static const enum repo_mode modes[] = { REPO_READ, REPO_WRITE, REPO_REBUILD };
        _cleanup_free_ char *path = cstr(m->open.path);
        _cleanup_free_ char *msg = NULL;
        char real[PATH_MAX];

        if (s->repo)
                return send_error(s, m->tag, EINVAL, "a repository is open already: one OPEN per connection");
        if (m->open.mode > WIRE_OPEN_MAINTENANCE)
                return send_error(s, m->tag, EINVAL, "unknown OPEN mode");
        if (!realpath(path, real)) {
                int e = errno;
                /* A restricted client learns nothing about paths outside
                 * its directories, not even whether they exist: only a
                 * path plainly inside one gets the real reason. */
                bool inside = path[0] == '/' && !strstr(path, "/..") && path_allowed(s, path);
                if (!inside)
                        return send_error(s, m->tag, EACCES,
                                          "that repository is not one this server may open");
                msg = xasprintf("cannot open repository %s: %s", path, strerror(e));
                return send_error(s, m->tag, e, msg);
        }
        if (!path_allowed(s, real)) {
                msg = xasprintf("repository %s is outside the directories this server may open", path);
                _cleanup_free_ char *esc = escape_text(real);
                log_debug("serve: refused %s", esc);
                return send_error(s, m->tag, EACCES, msg);
        }
        if (m->open.mode == WIRE_OPEN_MAINTENANCE && s->o->append_only)
                return send_error(s, m->tag, EPERM, "this server is append-only: no maintenance");
        _cleanup_free_ char *config = xasprintf("%s/config", real);
        struct stat st;
        if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode) || stat(config, &st) < 0 || !S_ISREG(st.st_mode)) {
                msg = xasprintf("%s is not a Berth repository", path);
                return send_error(s, m->tag, BERTH_EFORMAT, msg);
        }
        struct repo *r;
        /* This end holds no key: an encrypted repository is served as
         * objects only (no catalog; packs checked for shape and name). */
        int k = repo_open_flags(real, modes[m->open.mode], m->open.lock_wait_seconds, REPO_OPEN_KEYLESS, &r);
        if (k < 0)
                return send_failure(s, m->tag, k);
        struct buf cfg = { 0 };
        k = backend_get(repo_backend(r), "config", WIRE_CONFIG_MAX, &cfg);
        if (k < 0) {
                repo_free(r);
                msg = xasprintf("cannot read %s/config: %s", path, berth_strerror(k));
                return send_error(s, m->tag, k, msg);
        }
        s->repo = r;
        s->mode = m->open.mode;
        _cleanup_free_ char *esc = escape_text(real);
        log_debug("serve: opened %s (mode %u)", esc, s->mode);
        struct wire_msg w = { .type = WIRE_OPENED, .tag = m->tag };
        w.opened.repo_id = wire_str(repo_id(r));
        w.opened.config = cfg.data;
        w.opened.config_len = (uint32_t)cfg.len;
        k = send_msg(s, &w);
        buf_free(&cfg);
        return k;
}

static int do_stat(struct server *s, const struct wire_msg *m)
{
        _cleanup_free_ char *name = cstr(m->stat.name);
        uint64_t size;
        if (!object_name(name))
                return send_error(s, m->tag, EINVAL, "not a repository object");
        int k = backend_stat(repo_backend(s->repo), name, &size);
        if (k < 0)
                return send_failure(s, m->tag, k);
        return send_msg(s, &(struct wire_msg){ .type = WIRE_SIZE, .tag = m->tag, .size.size = size });
}

static int do_get(struct server *s, const struct wire_msg *m)
{
        _cleanup_free_ char *name = cstr(m->get.name);
        uint64_t size;
        if (!object_name(name))
                return send_error(s, m->tag, EINVAL, "not a repository object");
        struct backend *be = repo_backend(s->repo);
        int k = backend_stat(be, name, &size);
        if (k < 0)
                return send_failure(s, m->tag, k);
        uint64_t n = m->get.offset >= size ? 0 : size - m->get.offset;
        if (n > m->get.length)
                n = m->get.length;
        _cleanup_free_ uint8_t *data = xmalloc(n ? n : 1);
        if (n) {
                k = backend_get_range(be, name, m->get.offset, n, data);
                if (k < 0)
                        return send_failure(s, m->tag, k);
        }
        struct wire_msg w = { .type = WIRE_DATA, .tag = m->tag };
        w.data.p = data;
        w.data.n = (uint32_t)n;
        return send_msg(s, &w);
}

struct lister {
        struct server *s;
        uint32_t tag;
        const char *prefix;
        size_t plen;
        struct wire_name *e;
        size_t n, cap, bytes;
};

static void lister_clear(struct lister *l)
{
        for (size_t i = 0; i < l->n; i++)
                free((char *)l->e[i].name.p);
        l->n = l->bytes = 0;
}

static int lister_flush(struct lister *l, bool last)
{
        struct wire_msg w = { .type = WIRE_NAMES, .tag = l->tag };
        w.names.last = last;
        w.names.n = (uint32_t)l->n;
        w.names.entries = l->e;
        int k = send_msg(l->s, &w);
        lister_clear(l);
        return k < 0 ? k : 0;
}

static int list_one(void *ud, const char *name, uint64_t size)
{
        struct lister *l = ud;
        if (strncmp(name, l->prefix, l->plen) != 0 || !object_name(name) ||
            wire_check_name(name, strlen(name)) < 0) {
                error_clear();
                return 0;
        }
        if (l->n == l->cap) {
                l->cap = l->cap ? 2 * l->cap : 256;
                l->e = xrealloc(l->e, l->cap * sizeof *l->e);
        }
        l->e[l->n++] = (struct wire_name){ wire_str(xstrdup(name)), size };
        l->bytes += WIRE_NAME_ENTRY_OVERHEAD + strlen(name);
        if (l->bytes >= LIST_FRAME_BYTES || l->n == WIRE_NAMES_MAX)
                return lister_flush(l, false) < 0 ? -EPIPE : 0;
        return 0;
}

static int do_list(struct server *s, const struct wire_msg *m)
{
        _cleanup_free_ char *prefix = cstr(m->list.prefix);
        if (log_get_level() >= LOG_DEBUG) {
                _cleanup_free_ char *shown = escape_text(prefix);
                log_debug("serve: listing '%s'", shown);
        }
        struct lister l = { .s = s, .tag = m->tag, .prefix = prefix, .plen = strlen(prefix) };
        /* The backend lists whole directories: list the one the prefix is
         * in and keep what starts with the prefix. */
        const char *slash = strrchr(prefix, '/');
        _cleanup_free_ char *dir = slash ? xstrndup(prefix, (size_t)(slash - prefix + 1)) : xstrdup("");
        int k = backend_list(repo_backend(s->repo), dir, list_one, &l);
        if (k == -EPIPE && !error_message()) {
                lister_clear(&l);
                free(l.e);
                return -EPIPE;
        }
        if (k < 0) {
                lister_clear(&l);
                free(l.e);
                return send_failure(s, m->tag, k);
        }
        k = lister_flush(&l, true);
        free(l.e);
        return k;
}

static int do_have(struct server *s, const struct wire_msg *m)
{
        _cleanup_free_ uint8_t *bitmap = xcalloc(1, (m->have.n + 7) / 8 + 1);
        int k = 0;
        if (repo_catalog(s->repo))
                k = repo_have_chunks(s->repo, (const uint8_t(*)[32])m->have.ids, m->have.n, bitmap);
        else /* keyless (encrypted): no catalog, every chunk counts as lacking */
                memset(bitmap, 0xff, (m->have.n + 7) / 8);
        if (k < 0)
                return send_failure(s, m->tag, k);
        struct wire_msg w = { .type = WIRE_LACK, .tag = m->tag };
        w.lack.n = m->have.n;
        w.lack.bitmap = bitmap;
        return send_msg(s, &w);
}

static int do_announce(struct server *s, const struct wire_msg *m)
{
        if (s->mode != WIRE_OPEN_WRITE)
                return send_error(s, m->tag, EROFS, "ANNOUNCE needs the repository opened for writing");
        _cleanup_free_ char *id = cstr(m->announce.snapshot_id);
        /* Keyless (encrypted): no catalog here to index it in. */
        int k = repo_catalog(s->repo) ? repo_announce_snapshot(s->repo, id) : 0;
        if (k < 0)
                return send_failure(s, m->tag, k);
        return send_ok(s, m->tag);
}

static int do_delete(struct server *s, const struct wire_msg *m)
{
        _cleanup_free_ char *name = cstr(m->delete.name);
        if (s->o->append_only)
                return send_error(s, m->tag, EPERM, "this server is append-only: nothing is deleted");
        if (s->mode != WIRE_OPEN_MAINTENANCE)
                return send_error(s, m->tag, EROFS, "DELETE needs the repository opened for maintenance");
        if (!object_name(name))
                return send_error(s, m->tag, EINVAL, "not a repository object");
        int k = backend_delete(repo_backend(s->repo), name);
        if (k < 0)
                return send_failure(s, m->tag, k);
        log_debug("serve: deleted %s", name);
        return send_ok(s, m->tag);
}

/* ---- PUT ------------------------------------------------------------------------- */

static void put_clear(struct server *s)
{
        if (s->put_fd >= 0) {
                unlinkat(repo_spool_dirfd(s->repo), s->put_tmp, 0);
                close(s->put_fd);
                s->put_fd = -1;
        }
        if (s->md) {
                EVP_MD_CTX_free(s->md);
                s->md = NULL;
        }
        free(s->put_name);
        free(s->put_msg);
        s->put_name = s->put_msg = NULL;
        s->in_put = false;
        s->put_err = 0;
}

/* Refuses the PUT being received: its data is read and dropped, and this
 * error answers PUT_END. */
static void put_refuse(struct server *s, int err, char *msg)
{
        if (s->put_err == 0) {
                s->put_err = err;
                s->put_msg = msg;
        } else
                free(msg);
}

static void do_put_begin(struct server *s, const struct wire_msg *m)
{
        s->in_put = true;
        s->put_tag = m->tag;
        s->put_name = cstr(m->put_begin.name);
        s->put_size = m->put_begin.size;
        s->put_flags = m->put_begin.flags;
        s->put_got = 0;
        s->put_fd = -1;

        if (!s->repo)
                return put_refuse(s, EINVAL, xstrdup("OPEN a repository first"));
        if (s->mode == WIRE_OPEN_READ)
                return put_refuse(s, EROFS, xstrdup("PUT needs the repository opened for writing"));
        if (!object_name(s->put_name))
                return put_refuse(s, EINVAL, xasprintf("%s is not a repository object", s->put_name));
        bool pack = strncmp(s->put_name, "packs/", 6) == 0;
        if (!pack && s->put_size > SMALL_OBJECT_MAX)
                return put_refuse(s, EFBIG, xasprintf("%s: too big for an object that is not a pack", s->put_name));
        uint64_t size;
        int k = backend_stat(repo_backend(s->repo), s->put_name, &size);
        if (k == 0 && (s->put_flags & WIRE_PUT_CREATE))
                return put_refuse(s, EEXIST, xasprintf("%s exists", s->put_name));
        if (k < 0 && k != -ENOENT)
                return put_refuse(s, k, xasprintf("cannot stat %s: %s", s->put_name, berth_strerror(k)));
        int dfd = repo_spool_dirfd(s->repo);
        if (dfd < 0)
                return put_refuse(s, EROFS, xstrdup("the repository has no spool directory (tmp/)"));
        uint64_t rnd;
        if (getentropy(&rnd, sizeof rnd) < 0)
                rnd = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);
        snprintf(s->put_tmp, sizeof s->put_tmp, "serve-%016llx.tmp", (unsigned long long)rnd);
        s->put_fd = openat(dfd, s->put_tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (s->put_fd < 0)
                return put_refuse(s, errno, xasprintf("cannot create a spool file: %s", strerror(errno)));
        s->md = EVP_MD_CTX_new();
        if (!s->md || EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) != 1)
                return put_refuse(s, ENOMEM, xstrdup("cannot start SHA-256"));
}

static int do_put_data(struct server *s, const struct wire_msg *m)
{
        if (m->data.n > s->put_size - s->put_got)
                return violation(s, s->put_tag, "PUT_DATA beyond the announced size");
        s->put_got += m->data.n;
        if (s->put_err || m->data.n == 0)
                return 0;
        int k = write_all(s->put_fd, m->data.p, m->data.n);
        if (k < 0)
                put_refuse(s, k, xasprintf("cannot write the spool file: %s", berth_strerror(k)));
        else
                EVP_DigestUpdate(s->md, m->data.p, m->data.n);
        return 0;
}

/* Checks and publishes the spooled object; 0 or -errno with a message. */
static int put_publish(struct server *s, const uint8_t want[32])
{
        uint8_t got[32];
        unsigned len = 0;
        if (s->put_got != s->put_size)
                return error_set(BERTH_ECORRUPT, "%s: %llu of %llu bytes arrived", s->put_name,
                                 (unsigned long long)s->put_got, (unsigned long long)s->put_size);
        if (EVP_DigestFinal_ex(s->md, got, &len) != 1 || len != 32 || memcmp(got, want, 32) != 0)
                return error_set(BERTH_ECORRUPT, "%s: the bytes that arrived do not have the announced SHA-256",
                                 s->put_name);
        struct backend *be = repo_backend(s->repo);
        int k;
        if (strncmp(s->put_name, "packs/", 6) == 0) {
                k = snapshot_verify_pack(s->put_fd, s->put_size, s->put_name);
                if (k < 0)
                        return k;
                struct backend_spool sp = { .dirfd = repo_spool_dirfd(s->repo), .name = s->put_tmp,
                                            .fd = s->put_fd, .size = s->put_size };
                k = backend_put_file(be, s->put_name, &sp);
                if (k >= 0) {
                        /* so that HAVE counts its chunks before ANNOUNCE */
                        int j = repo_index_pack(s->repo, s->put_name, s->put_size);
                        if (j < 0)
                                return j;
                }
        } else {
                _cleanup_free_ uint8_t *data = xmalloc(s->put_size ? s->put_size : 1);
                k = pread_all(s->put_fd, data, s->put_size, 0);
                if (k < 0)
                        return error_set(k, "cannot read the spool file: %s", berth_strerror(k));
                k = backend_put(be, s->put_name, data, s->put_size);
        }
        if (k == -EEXIST) {
                error_clear();
                if (s->o->append_only)
                        return error_set(EPERM, "%s exists with other content, and this server is append-only",
                                         s->put_name);
                return error_set(EEXIST, "%s exists with other content", s->put_name);
        }
        if (k < 0)
                return k;
        log_debug("serve: %s %s", k == 1 ? "stored" : "already had", s->put_name);
        return 0;
}

static int do_put_end(struct server *s, const struct wire_msg *m)
{
        int k;
        if (s->put_err)
                k = send_error(s, s->put_tag, s->put_err, s->put_msg);
        else {
                k = put_publish(s, m->put_end.sha256);
                k = k < 0 ? send_failure(s, s->put_tag, k) : send_ok(s, s->put_tag);
        }
        put_clear(s);
        return k;
}

/* ---- the loop ----------------------------------------------------------------------- */

/* One decoded request.  0 to go on, 1 after BYE, or a negative error that
 * ends the connection. */
static int handle(struct server *s, const struct wire_msg *m)
{
        if (wire_type_from_server(m->type))
                return violation(s, m->tag, "a server's message sent by the client");
        if (s->in_put) {
                if (m->tag != s->put_tag || (m->type != WIRE_PUT_DATA && m->type != WIRE_PUT_END))
                        return violation(s, m->tag, "only PUT_DATA and PUT_END of the same tag may follow PUT_BEGIN");
                return m->type == WIRE_PUT_DATA ? do_put_data(s, m) : do_put_end(s, m);
        }
        if (!s->hello) {
                if (m->type != WIRE_HELLO)
                        return violation(s, m->tag, "the first frame must be HELLO");
                return do_hello(s, m);
        }
        switch (m->type) {
        case WIRE_HELLO:
                return violation(s, m->tag, "a second HELLO");
        case WIRE_BYE: {
                int k = send_ok(s, m->tag);
                return k < 0 ? k : 1;
        }
        case WIRE_PUT_BEGIN:
                do_put_begin(s, m);
                return 0;
        case WIRE_PUT_DATA:
        case WIRE_PUT_END:
                return violation(s, m->tag, "PUT_DATA or PUT_END without PUT_BEGIN");
        case WIRE_OPEN:
                return do_open(s, m);
        default:
                break;
        }
        if (!s->repo)
                return send_error(s, m->tag, EINVAL, "OPEN a repository first");
        switch (m->type) {
        case WIRE_STAT: return do_stat(s, m);
        case WIRE_GET: return do_get(s, m);
        case WIRE_LIST: return do_list(s, m);
        case WIRE_HAVE: return do_have(s, m);
        case WIRE_ANNOUNCE: return do_announce(s, m);
        case WIRE_DELETE: return do_delete(s, m);
        default: return violation(s, m->tag, "unexpected message");
        }
}

int serve_run(const struct serve_options *o, const struct wire_io *io)
{
        struct server s = { .o = o, .io = io, .put_fd = -1 };
        struct wire_msg m;
        int r;

        s.roots = xcalloc(o->nrestrict + 1, sizeof *s.roots);
        for (size_t i = 0; i < o->nrestrict; i++) {
                s.roots[i] = realpath(o->restrict_to[i], NULL);
                if (!s.roots[i]) {
                        r = error_set(errno, "cannot resolve --restrict-to-path %s: %s", o->restrict_to[i],
                                      strerror(errno));
                        goto out;
                }
                s.nroots++;
        }
        for (;;) {
                r = wire_read_frame(io, &s.frame);
                if (r == 0)
                        break;
                if (r < 0) {
                        if (r == -BERTH_EPROTO) {
                                _cleanup_free_ char *msg = xstrdup(error_message() ? error_message() : "bad frame");
                                send_error(&s, 0, BERTH_EPROTO, msg);
                                error_set(BERTH_EPROTO, "%s", msg);
                        }
                        goto out;
                }
                r = wire_decode(s.frame.data, s.frame.len, &m);
                if (r < 0) {
                        uint32_t tag = s.frame.len >= WIRE_HEADER_SIZE ? le32_read(s.frame.data + 5) : 0;
                        _cleanup_free_ char *msg = xstrdup(error_message() ? error_message() : "bad frame");
                        send_error(&s, tag, BERTH_EPROTO, msg);
                        r = error_set(BERTH_EPROTO, "client broke the protocol: %s", msg);
                        goto out;
                }
                log_debug("serve: %s tag %u", wire_type_name(m.type), m.tag);
                r = handle(&s, &m);
                if (r < 0)
                        goto out;
                if (r == 1)
                        break;
        }
        r = 0;
out:
        if (s.in_put)
                put_clear(&s);
        repo_free(s.repo);
        for (size_t i = 0; i < s.nroots; i++)
                free(s.roots[i]);
        free(s.roots);
        buf_free(&s.frame);
        return r;
}
