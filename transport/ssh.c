/* ssh.c — SSH sessions (libssh2): connect, check the host key, authenticate.
 *
 * Connecting runs libssh2 in blocking mode bounded by the connect timeout
 * (libssh2_session_set_timeout); once authenticated the session switches to
 * non-blocking mode and every wait goes through session_wait(), which polls
 * the socket, sends keepalives while we wait for the server, and fails with
 * -ETIMEDOUT only when the server sent nothing at all for the I/O timeout.
 * Blocking libssh2 calls cannot do that: they send no keepalive while they
 * wait, so a long silence of the far command would look like a dead link.
 *
 * libssh2 error codes are translated here and nowhere else: its message
 * goes into error_set()'s, its code becomes an errno. */
#include <fcntl.h>
#include <libssh2.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "../common/common.h"
#include "internal.h"
#include "transport.h"

#define DEFAULT_CONNECT_TIMEOUT 30
#define DEFAULT_IO_TIMEOUT 120
#define DEFAULT_KEEPALIVE 15

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_result;

static void init_libssh2(void)
{
        init_result = libssh2_init(0);
}

/* ---- errors and waiting -------------------------------------------------- */

/* After a timeout or a broken connection, libssh2's half-done packets make
 * the session useless; shutting the socket down makes every later libssh2
 * call fail at once instead of waiting again, so the channel and the session
 * can still be freed (libssh2 frees neither while a close it tries to send
 * says "again"). */
void session_kill(struct ssh_session *s)
{
        if (!s->dead && s->fd >= 0)
                (void)shutdown(s->fd, SHUT_RDWR);
        s->dead = true;
}

/* libssh2's code as an errno. */
static int ssh_errno(int rc)
{
        switch (rc) {
        case LIBSSH2_ERROR_TIMEOUT: return ETIMEDOUT;
        case LIBSSH2_ERROR_SOCKET_SEND:
        case LIBSSH2_ERROR_SOCKET_RECV:
        case LIBSSH2_ERROR_SOCKET_DISCONNECT: return ECONNRESET;
        case LIBSSH2_ERROR_ALLOC: return ENOMEM;
        case LIBSSH2_ERROR_CHANNEL_CLOSED:
        case LIBSSH2_ERROR_CHANNEL_EOF_SENT: return EPIPE;
        default: return EIO;
        }
}

/* Fails with libssh2's words (or session_wait's error), saying what we were
 * doing. */
int ssh_fail(struct ssh_session *s, int rc, const char *what)
{
        char *msg = NULL;

        if (rc == WAIT_FAILED)
                return s->wait_err;
        libssh2_session_last_error(s->ssh, &msg, NULL, 0);
        if (ssh_errno(rc) == ECONNRESET || ssh_errno(rc) == ETIMEDOUT) {
                int r = error_set(ssh_errno(rc), "%s: %s: %s", s->name, what, msg && *msg ? msg : "SSH error");
                session_kill(s);
                return r;
        }
        return error_set(ssh_errno(rc), "%s: %s: %s", s->name, what, msg && *msg ? msg : "SSH error");
}

/* Waits until the socket is ready in the direction libssh2 is blocked on,
 * at most until a keepalive is due.  A keepalive (asking for a reply, which
 * is what proves the server alive) goes out only after an interval without
 * a byte from the server: libssh2 1.10 keeps every reply queued until the
 * session ends (and walks that queue on each channel read), so keepalives
 * sent while data flows would only pile up.  None is sent while a packet is
 * half-sent either: libssh2 refuses a new one then.  Returns 0, or
 * WAIT_FAILED with s->wait_err set. */
int session_wait(struct ssh_session *s)
{
        int dir = libssh2_session_block_directions(s->ssh);
        struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
        int64_t now = mono_ns();
        int64_t silent = now - s->last_rx_ns;
        int64_t wake;

        if (silent >= s->keepalive_ns && !(dir & LIBSSH2_SESSION_BLOCK_OUTBOUND)) {
                int next = 0;
                int r = libssh2_keepalive_send(s->ssh, &next);
                if (r < 0) {
                        s->wait_err = ssh_fail(s, r, "cannot send a keepalive");
                        return WAIT_FAILED;
                }
                wake = now + (int64_t)MAX(next, 1) * 1000000000;
        } else
                wake = s->last_rx_ns + s->keepalive_ns;
        /* POLLIN always: a read may be what unblocks a write (a window
         * adjustment) */
        if (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND)
                pfd.events |= POLLOUT;

        for (;;) {
                now = mono_ns();
                int64_t deadline = s->last_rx_ns + s->io_timeout_ns;
                if (now >= deadline) {
                        s->wait_err = error_set(ETIMEDOUT, "%s: no answer for %lld s",
                                                s->name, (long long)(s->io_timeout_ns / 1000000000));
                        session_kill(s);
                        return WAIT_FAILED;
                }
                if (now >= wake)
                        return 0; /* a keepalive may be due: back through libssh2 */
                int64_t until = MIN(deadline, wake) - now;
                int n = poll(&pfd, 1, (int)MIN(until / 1000000 + 1, (int64_t)INT32_MAX));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        s->wait_err = error_set(errno, "%s: poll: %m", s->name);
                        session_kill(s);
                        return WAIT_FAILED;
                }
                if (n > 0) {
                        if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
                                s->last_rx_ns = mono_ns();
                        return 0;
                }
        }
}

/* ---- connecting ---------------------------------------------------------- */

static int tcp_connect(const char *host, unsigned port, unsigned timeout, int *ret_fd)
{
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                  .ai_flags = AI_ADDRCONFIG };
        struct addrinfo *ai = NULL;
        char portstr[16];
        int64_t deadline = mono_ns() + (int64_t)timeout * 1000000000;
        int err = 0;

        snprintf(portstr, sizeof portstr, "%u", port);
        int r = getaddrinfo(host, portstr, &hints, &ai);
        if (r != 0) {
                if (r == EAI_SYSTEM)
                        return error_set(errno, "cannot resolve '%s': %m", host);
                return error_set(r == EAI_NONAME || r == EAI_NODATA ? ENOENT : EHOSTUNREACH,
                                 "cannot resolve '%s': %s", host, gai_strerror(r));
        }
        for (struct addrinfo *a = ai; a; a = a->ai_next) {
                _cleanup_close_ int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                                                a->ai_protocol);
                if (fd < 0) {
                        err = errno;
                        continue;
                }
                if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
                        if (errno != EINPROGRESS) {
                                err = errno;
                                continue;
                        }
                        struct pollfd pfd = { .fd = fd, .events = POLLOUT };
                        int n;
                        do {
                                int64_t left = deadline - mono_ns();
                                n = left <= 0 ? 0 : poll(&pfd, 1, (int)(left / 1000000 + 1));
                        } while (n < 0 && errno == EINTR);
                        if (n == 0) {
                                err = ETIMEDOUT;
                                break; /* the time is spent for every address */
                        }
                        socklen_t len = sizeof err;
                        if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                                err = errno;
                        if (err)
                                continue;
                }
                int one = 1;
                (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
                freeaddrinfo(ai);
                *ret_fd = TAKE_FD(fd);
                return 0;
        }
        freeaddrinfo(ai);
        if (!err)
                err = EHOSTUNREACH;
        if (err == ETIMEDOUT)
                return error_set(err, "cannot connect to '%s' port %u: no answer in %u s", host, port, timeout);
        return error_set(err, "cannot connect to '%s' port %u: %s", host, port, strerror(err));
}

static const char *home_dir(void)
{
        const char *h = getenv("HOME");
        if (h && *h)
                return h;
        struct passwd *pw = getpwuid(getuid());
        return pw && pw->pw_dir ? pw->pw_dir : "/";
}

/* Asks libssh2 for the host-key algorithms of the known entries first (so a
 * server that prefers another key type still shows the one we know), then
 * for all the others it supports (so a known host offering only a new type
 * of key is seen, and refused as changed, rather than failing to
 * negotiate), certificates left out: a certificate is not a key that
 * known_hosts can hold. */
static int prefer_known_methods(struct ssh_session *s, const char *known)
{
        const char **algs = NULL;
        struct buf b = {};
        int n, r;

        n = libssh2_session_supported_algs(s->ssh, LIBSSH2_METHOD_HOSTKEY, &algs);
        if (n <= 0)
                return ssh_fail(s, n, "cannot list host-key algorithms");
        /* the known ones libssh2 supports, in file order */
        for (const char *p = known; *p;) {
                size_t len = strcspn(p, ",");
                for (int i = 0; i < n; i++)
                        if (strlen(algs[i]) == len && strncmp(algs[i], p, len) == 0) {
                                if (b.len)
                                        buf_putc(&b, ',');
                                buf_append(&b, p, len);
                        }
                p += len + (p[len] == ',');
        }
        for (int i = 0; i < n; i++) {
                /* no certificates: Berth checks plain keys only */
                bool dup = strstr(algs[i], "-cert-") != NULL;
                size_t len = strlen(algs[i]);
                for (const char *p = known; *p;) {
                        size_t l = strcspn(p, ",");
                        if (l == len && strncmp(algs[i], p, l) == 0)
                                dup = true;
                        p += l + (p[l] == ',');
                }
                if (dup)
                        continue;
                if (b.len)
                        buf_putc(&b, ',');
                buf_append(&b, algs[i], len);
        }
        libssh2_free(s->ssh, algs);
        buf_putc(&b, 0);
        log_debug("%s: host-key algorithms: %s", s->name, (char *)b.data);
        r = libssh2_session_method_pref(s->ssh, LIBSSH2_METHOD_HOSTKEY, (char *)b.data);
        buf_free(&b);
        if (r < 0)
                return ssh_fail(s, r, "cannot set host-key algorithms");
        return 0;
}

static int check_host_key(struct ssh_session *s, const struct ssh_options *o, const char *known_hosts,
                          unsigned port)
{
        size_t len = 0;
        int type = 0;
        const char *key = libssh2_session_hostkey(s->ssh, &len, &type);
        enum known_host_verdict v;
        unsigned line;
        char ktype[64], fp[SSH_FINGERPRINT_MAX];
        int r;

        if (!key || len == 0 || key_blob_type((const uint8_t *)key, len, ktype, sizeof ktype) < 0)
                return error_set(EIO, "%s: the server sent no usable host key", s->name);
        ssh_fingerprint(key, len, fp);
        _cleanup_free_ char *kname = known_hosts_name(o->host, port);

        r = known_hosts_check(known_hosts, o->host, port, (const uint8_t *)key, len, &v, &line);
        if (r < 0)
                return r;
        switch (v) {
        case KNOWN_HOST_MATCH:
                log_debug("%s: host key %s %s matches %s line %u", s->name, ktype, fp, known_hosts, line);
                return 0;
        case KNOWN_HOST_REVOKED:
                return error_set(BERTH_EHOSTKEY, "the host key of '%s' (%s %s) is marked @revoked in '%s' line %u: "
                                 "refusing to connect", kname, ktype, fp, known_hosts, line);
        case KNOWN_HOST_CHANGED:
                return error_set(BERTH_EHOSTKEY, "THE HOST KEY OF '%s' HAS CHANGED: it offers %s key %s, but "
                                 "'%s' line %u holds another key for it. Someone could be intercepting the "
                                 "connection, or the host was reinstalled; if you know the new key is right, "
                                 "remove that line and connect again",
                                 kname, ktype, fp, known_hosts, line);
        case KNOWN_HOST_UNKNOWN:
                break;
        }
        if (!o->accept_new_host_key)
                return error_set(BERTH_EHOSTKEY, "the host '%s' is unknown: its %s key is %s and '%s' has no entry "
                                 "for it. If that is the host's key, connect once with --accept-new-host-key "
                                 "to record it", kname, ktype, fp, known_hosts);
        r = known_hosts_add(known_hosts, o->host, port, (const uint8_t *)key, len);
        if (r < 0)
                return r;
        log_debug("%s: recorded host key %s %s in '%s'", s->name, ktype, fp, known_hosts);
        return 0;
}

static int auth_agent(struct ssh_session *s, const char *user, struct buf *tried)
{
        LIBSSH2_AGENT *agent;
        struct libssh2_agent_publickey *id = NULL, *prev = NULL;
        unsigned count = 0;
        int r, ok = 0;

        if (!getenv("SSH_AUTH_SOCK"))
                return 0;
        agent = libssh2_agent_init(s->ssh);
        if (!agent)
                return 0;
        if (libssh2_agent_connect(agent) < 0 || libssh2_agent_list_identities(agent) < 0) {
                const char *t = "ssh-agent (cannot reach it), ";
                buf_append(tried, t, strlen(t));
                libssh2_agent_free(agent);
                return 0;
        }
        while (libssh2_agent_get_identity(agent, &id, prev) == 0) {
                count++;
                r = libssh2_agent_userauth(agent, user, id);
                if (r == 0) {
                        log_debug("%s: authenticated with the agent's key '%s'", s->name, id->comment);
                        ok = 1;
                        break;
                }
                if (r != LIBSSH2_ERROR_AUTHENTICATION_FAILED && r != LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED &&
                    r != LIBSSH2_ERROR_AGENT_PROTOCOL) {
                        ok = ssh_fail(s, r, "agent authentication");
                        break;
                }
                prev = id;
        }
        libssh2_agent_disconnect(agent);
        libssh2_agent_free(agent);
        if (ok <= 0) {
                char *t = xasprintf("ssh-agent (%u key%s refused), ", count, count == 1 ? "" : "s");
                buf_append(tried, t, strlen(t));
                free(t);
        }
        return ok;
}

/* 1 when the key file authenticated us, 0 when it was refused or could not
 * be used (noted in tried), -errno when the connection failed. */
static int auth_file(struct ssh_session *s, const char *user, const char *path, bool named, struct buf *tried)
{
        _cleanup_free_ char *pub = xasprintf("%s.pub", path);
        _cleanup_free_ char *note = NULL;
        char *msg = NULL;

        if (access(path, R_OK) < 0) {
                if (named || errno != ENOENT)
                        note = xasprintf("'%s' (cannot read it: %m), ", path);
                if (note)
                        buf_append(tried, note, strlen(note));
                return 0;
        }
        int r = libssh2_userauth_publickey_fromfile_ex(s->ssh, user, (unsigned)strlen(user),
                                                       access(pub, R_OK) == 0 ? pub : NULL, path, NULL);
        if (r == 0) {
                log_debug("%s: authenticated with '%s'", s->name, path);
                return 1;
        }
        libssh2_session_last_error(s->ssh, &msg, NULL, 0);
        switch (r) {
        case LIBSSH2_ERROR_AUTHENTICATION_FAILED:
        case LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED:
                note = xasprintf("'%s' (refused), ", path);
                break;
        case LIBSSH2_ERROR_FILE:
        case LIBSSH2_ERROR_METHOD_NOT_SUPPORTED:
        case LIBSSH2_ERROR_KEY_EXCHANGE_FAILURE:
                note = xasprintf("'%s' (cannot use it: %s; a key with a passphrase must be in ssh-agent), ",
                                 path, msg && *msg ? msg : "unreadable key");
                break;
        default:
                return ssh_fail(s, r, "public-key authentication");
        }
        buf_append(tried, note, strlen(note));
        return 0;
}

static int authenticate(struct ssh_session *s, const struct ssh_options *o, const char *user)
{
        struct buf tried = {};
        int r;

        const char *methods = libssh2_userauth_list(s->ssh, user, (unsigned)strlen(user));
        if (!methods) {
                if (libssh2_userauth_authenticated(s->ssh))
                        return 0;
                return ssh_fail(s, libssh2_session_last_errno(s->ssh), "cannot list authentication methods");
        }
        if (!strstr(methods, "publickey"))
                return error_set(BERTH_EAUTH, "%s: the server allows only '%s' for user '%s'; Berth "
                                 "authenticates with keys only", s->name, methods, user);

        r = auth_agent(s, user, &tried);
        if (r == 0) {
                if (o->identity_file)
                        r = auth_file(s, user, o->identity_file, true, &tried);
                else {
                        static const char *const names[] = { "id_ed25519", "id_ecdsa", "id_rsa" };
                        for (size_t i = 0; r == 0 && i < ELEMENTSOF(names); i++) {
                                _cleanup_free_ char *p = xasprintf("%s/.ssh/%s", home_dir(), names[i]);
                                r = auth_file(s, user, p, false, &tried);
                        }
                }
        }
        if (r > 0) {
                buf_free(&tried);
                return 0;
        }
        /* sshd hangs up after MaxAuthTries refused keys: still a refusal */
        if (r == 0 || (r == -ECONNRESET && tried.len > 0)) {
                if (tried.len >= 2)
                        tried.len -= 2; /* the last ", " */
                buf_putc(&tried, 0);
                r = error_set(BERTH_EAUTH, "%s refused user '%s'%s: tried %s", s->name, user,
                              r < 0 ? " and closed the connection" : "",
                              tried.len > 1 ? (char *)tried.data
                                            : "no key (no ssh-agent, no key file in ~/.ssh: give one with -i)");
        }
        buf_free(&tried);
        return r;
}

int ssh_connect(const struct ssh_options *o, struct ssh_session **ret)
{
        _cleanup_(ssh_session_freep) struct ssh_session *s = NULL;
        _cleanup_free_ char *known_default = NULL, *user_alloc = NULL, *methods = NULL;
        unsigned port = o->port ? o->port : 22;
        unsigned ct = o->connect_timeout ? o->connect_timeout : DEFAULT_CONNECT_TIMEOUT;
        unsigned iot = o->io_timeout ? o->io_timeout : DEFAULT_IO_TIMEOUT;
        unsigned ka = o->keepalive_interval ? o->keepalive_interval : DEFAULT_KEEPALIVE;
        const char *user = o->user, *known_hosts = o->known_hosts;
        int r;

        if (!o->host || !*o->host)
                return error_set(EINVAL, "no host to connect to");
        if (!user) {
                struct passwd *pw = getpwuid(getuid());
                if (!pw)
                        return error_set(ENOENT, "no user name for uid %u: give one as user@host", (unsigned)getuid());
                user = user_alloc = xstrdup(pw->pw_name);
        }
        if (!known_hosts)
                known_hosts = known_default = xasprintf("%s/.ssh/known_hosts", home_dir());

        pthread_once(&init_once, init_libssh2);
        if (init_result != 0)
                return error_set(EIO, "cannot initialise libssh2 (%d)", init_result);

        s = xcalloc(1, sizeof *s);
        s->fd = -1;
        s->name = strchr(o->host, ':') ? xasprintf("%s@[%s]:%u", user, o->host, port)
                                       : xasprintf("%s@%s:%u", user, o->host, port);
        /* libssh2 sends keepalives at most every 2 s; a few must fit in the
         * I/O timeout, or a live but silent server would look dead */
        ka = MIN(ka, MAX(iot / 3, 2u));
        iot = MAX(iot, 3 * ka);
        s->io_timeout_ns = (int64_t)iot * 1000000000;
        s->keepalive_ns = (int64_t)ka * 1000000000;

        /* what known_hosts has for this host decides which key we ask for */
        r = known_hosts_methods(known_hosts, o->host, port, &methods);
        if (r < 0)
                return r;

        r = tcp_connect(o->host, port, ct, &s->fd);
        if (r < 0)
                return r;
        s->ssh = libssh2_session_init();
        if (!s->ssh)
                return error_set(ENOMEM, "cannot create an SSH session");
        libssh2_session_set_blocking(s->ssh, 1);
        libssh2_session_set_timeout(s->ssh, (long)ct * 1000);
        r = prefer_known_methods(s, methods ? methods : "");
        if (r < 0)
                return r;
        r = libssh2_session_handshake(s->ssh, s->fd);
        if (r < 0)
                return ssh_fail(s, r, "SSH handshake failed");
        s->handshaken = true;

        /* the host key, before anything of ours is sent */
        r = check_host_key(s, o, known_hosts, port);
        if (r < 0)
                return r;

        r = authenticate(s, o, user);
        if (r < 0)
                return r;

        libssh2_keepalive_config(s->ssh, 1, ka);
        libssh2_session_set_timeout(s->ssh, (long)iot * 1000);
        libssh2_session_set_blocking(s->ssh, 0);
        *ret = TAKE_PTR(s);
        return 0;
}

void ssh_session_free(struct ssh_session *s)
{
        if (!s)
                return;
        if (s->ssh) {
                /* A polite goodbye, bounded: blocking mode with a short timeout. */
                libssh2_session_set_blocking(s->ssh, 1);
                libssh2_session_set_timeout(s->ssh, 5000);
                if (s->handshaken && !s->dead)
                        (void)libssh2_session_disconnect(s->ssh, "berth: done");
                libssh2_session_free(s->ssh);
        }
        if (s->fd >= 0)
                close(s->fd);
        free(s->name);
        free(s);
}

const char *ssh_session_name(const struct ssh_session *s)
{
        return s->name;
}
