/* notify.c — sd_notify(3) without libsystemd: one datagram to
 * $NOTIFY_SOCKET per message.  systemd documents the protocol as a stable
 * interface; writing it out saves a build dependency for three messages. */
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "agent.h"
#include "notify.h"

void sd_notify_send(const char *msg)
{
        const char *e = getenv("NOTIFY_SOCKET");
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t n;
        if (!e || (e[0] != '/' && e[0] != '@') || (n = strlen(e)) >= sizeof sa.sun_path)
                return;
        memcpy(sa.sun_path, e, n);
        if (sa.sun_path[0] == '@')
                sa.sun_path[0] = 0; /* abstract namespace */
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
                             (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
                log_debug("sd_notify %s: %s", msg, strerror(errno));
}

int64_t sd_watchdog_ns(void)
{
        const char *e = getenv("WATCHDOG_USEC"), *p = getenv("WATCHDOG_PID");
        if (!e || !*e || (p && *p && atoll(p) != (long long)getpid()))
                return 0;
        long long us = atoll(e);
        return us > 0 ? us * 1000 : 0;
}
