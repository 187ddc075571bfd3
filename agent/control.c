/* control.c — the agent's control socket: newline-delimited JSON over a
 * unix stream socket in the runtime directory, and its client. */
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "agent.h"
#include "control.h"

char *control_socket_path(void)
{
        return xasprintf("%s/agent.sock", settings.runtime_dir ? settings.runtime_dir : "/run/berth");
}

static int fill_address(const char *path, struct sockaddr_un *sa)
{
        memset(sa, 0, sizeof *sa);
        sa->sun_family = AF_UNIX;
        if (strlen(path) >= sizeof sa->sun_path)
                return error_set(ENAMETOOLONG, "%s: socket path too long", path);
        strcpy(sa->sun_path, path);
        return 0;
}

int control_listen(const char *path, int *ret_fd)
{
        struct sockaddr_un sa;
        _cleanup_free_ char *dir = xstrdup(path);
        char *slash = strrchr(dir, '/');
        int r = fill_address(path, &sa);
        if (r < 0)
                return r;
        if (slash && slash != dir) {
                *slash = 0;
                mode_t old = umask(022);
                r = mkdir_p(dir, 0755);
                umask(old);
                if (r < 0)
                        return error_set(r, "cannot create %s: %s", dir, strerror(-r));
        }
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return error_set(errno, "socket: %s", strerror(errno));
        /* Another agent listening there: refuse to steal its socket. */
        {
                _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0)
                        return error_set(EADDRINUSE, "another agent is running (it listens on %s)", path);
        }
        unlink(path);
        mode_t old = umask(0177);
        r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
        umask(old);
        if (r < 0)
                return error_set(errno, "cannot listen on %s: %s", path, strerror(errno));
        if (chmod(path, 0600) < 0 || listen(fd, 16) < 0)
                return error_set(errno, "cannot listen on %s: %s", path, strerror(errno));
        *ret_fd = fd;
        fd = -1;
        return 0;
}

int control_accept(int lfd, bool *ret_allowed)
{
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                return -errno;
        struct ucred cred;
        socklen_t len = sizeof cred;
        *ret_allowed = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
                       (cred.uid == 0 || cred.uid == geteuid());
        /* a client that says nothing does not hold the agent up for long */
        struct timeval tv = { 2, 0 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        return fd;
}

int control_read_request(int fd, json_object **ret)
{
        char line[4096];
        size_t n = 0;
        while (n < sizeof line - 1) {
                ssize_t k = read(fd, line + n, sizeof line - 1 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return error_set(errno, "reading a request: %s", strerror(errno));
                if (k == 0)
                        break;
                n += (size_t)k;
                if (memchr(line, '\n', n))
                        break;
        }
        line[n] = 0;
        char *nl = strchr(line, '\n');
        if (nl)
                *nl = 0;
        json_object *o = json_tokener_parse(line);
        if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return error_set(EINVAL, "a request is one JSON object on a line");
        }
        *ret = o;
        return 0;
}

void control_reply(int fd, json_object *o)
{
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        struct buf b = { 0 };
        buf_append(&b, s, strlen(s));
        buf_putc(&b, '\n');
        if (write_all(fd, b.data, b.len) < 0)
                log_debug("control: a client went away before its answer");
        buf_free(&b);
        json_object_put(o);
}

int control_request(json_object *req, json_object **ret)
{
        _cleanup_free_ char *path = control_socket_path();
        struct sockaddr_un sa;
        int r = fill_address(path, &sa);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return error_set(errno, "socket: %s", strerror(errno));
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
                int e = errno;
                if (e == ENOENT)
                        return error_set(e, "no agent is running (no socket at %s); start it with systemctl start "
                                         "berth-agent", path);
                if (e == ECONNREFUSED) /* a socket a killed agent left */
                        return error_set(e, "no agent is running (nothing answers at %s); start it with systemctl "
                                         "start berth-agent", path);
                if (e == EACCES || e == EPERM)
                        return error_set(e, "cannot talk to the agent at %s: %s (it answers root only)", path,
                                         strerror(e));
                return error_set(e, "cannot reach the agent at %s: %s", path, strerror(e));
        }
        const char *s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
        struct buf b = { 0 };
        buf_append(&b, s, strlen(s));
        buf_putc(&b, '\n');
        r = write_all(fd, b.data, b.len);
        buf_free(&b);
        if (r < 0)
                return error_set(errno, "writing to the agent at %s: %s", path, strerror(errno));
        struct buf in = { 0 };
        struct pollfd p = { .fd = fd, .events = POLLIN };
        for (;;) {
                if (poll(&p, 1, 10000) <= 0) {
                        buf_free(&in);
                        return error_set(ETIMEDOUT, "the agent at %s did not answer within 10s", path);
                }
                char tmp[4096];
                ssize_t k = read(fd, tmp, sizeof tmp);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                buf_append(&in, tmp, (size_t)k);
                if (memchr(in.data, '\n', in.len) || in.len > (16u << 20))
                        break;
        }
        buf_putc(&in, 0);
        json_object *o = json_tokener_parse((const char *)in.data);
        buf_free(&in);
        if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return error_set(EPROTO, "the agent at %s answered something that is not JSON", path);
        }
        json_object *ok, *err;
        if (json_object_object_get_ex(o, "ok", &ok) && !json_object_get_boolean(ok)) {
                r = error_set(EINVAL, "%s",
                              json_object_object_get_ex(o, "error", &err) ? json_object_get_string(err) : "refused");
                json_object_put(o);
                return r;
        }
        *ret = o;
        return 0;
}
