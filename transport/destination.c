/* destination.c — "user@host:port" and "ssh://user@host:port/path".
 *
 * What the user typed becomes a user, a host, a port and a path, each
 * checked: a name that starts with '-' or holds a control character or a
 * space is refused here, so nothing further down has to wonder. */
#include <arpa/inet.h>
#include <string.h>

#include "../common/common.h"
#include "transport.h"

static bool bad_char(char c)
{
        return (unsigned char)c <= ' ' || c == 0x7f;
}

static int check_user(const char *u, size_t n, const char *s)
{
        if (n == 0)
                return error_set(EINVAL, "'%s': empty user name before '@'", s);
        if (u[0] == '-')
                return error_set(EINVAL, "'%s': a user name may not start with '-'", s);
        for (size_t i = 0; i < n; i++)
                if (bad_char(u[i]) || strchr("@:/[];", u[i]))
                        return error_set(EINVAL, "'%s': invalid character in the user name", s);
        return 0;
}

/* A name or an IPv4 address: letters, digits, '.', '-', '_'. */
static int check_host(const char *h, size_t n, const char *s)
{
        if (n == 0)
                return error_set(EINVAL, "'%s': no host name", s);
        if (h[0] == '-' || h[0] == '.')
                return error_set(EINVAL, "'%s': a host name may not start with '%c'", s, h[0]);
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)h[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '-' || c == '_'))
                        return error_set(EINVAL, "'%s': invalid character in the host name", s);
        }
        return 0;
}

/* An IPv6 address, with an optional "%zone" (a link-local interface). */
static int check_v6(const char *h, size_t n, const char *s)
{
        char addr[INET6_ADDRSTRLEN + 1];
        struct in6_addr a;
        const char *pct = memchr(h, '%', n);
        size_t alen = pct ? (size_t)(pct - h) : n;

        if (alen == 0 || alen >= sizeof addr)
                return error_set(EINVAL, "'%s': invalid IPv6 address", s);
        memcpy(addr, h, alen);
        addr[alen] = 0;
        if (inet_pton(AF_INET6, addr, &a) != 1)
                return error_set(EINVAL, "'%s': invalid IPv6 address", s);
        if (pct) {
                if (pct + 1 == h + n)
                        return error_set(EINVAL, "'%s': empty IPv6 zone after '%%'", s);
                for (const char *z = pct + 1; z < h + n; z++)
                        if (bad_char(*z) || strchr("[]/@%", *z))
                                return error_set(EINVAL, "'%s': invalid IPv6 zone", s);
        }
        return 0;
}

static int parse_port(const char *p, size_t n, unsigned *ret, const char *s)
{
        unsigned v = 0;

        if (n == 0)
                return error_set(EINVAL, "'%s': empty port after ':'", s);
        for (size_t i = 0; i < n; i++) {
                if (p[i] < '0' || p[i] > '9')
                        return error_set(EINVAL, "'%s': the port after ':' must be a number "
                                         "(a path needs the ssh://user@host/path form)", s);
                v = v * 10 + (unsigned)(p[i] - '0');
                if (v > 65535)
                        break;
        }
        if (v == 0 || v > 65535)
                return error_set(EINVAL, "'%s': port out of range (1-65535)", s);
        *ret = v;
        return 0;
}

/* Parses "[user@]host[:port]" in s[0..n) (no path). */
static int parse_authority(const char *a, size_t n, const char *s, struct ssh_destination *d)
{
        const char *end = a + n;
        const char *at = NULL;
        int r;

        for (const char *p = a; p < end; p++)
                if (*p == '@')
                        at = p; /* the last '@': no '@' is allowed in a host */
        if (at) {
                r = check_user(a, (size_t)(at - a), s);
                if (r < 0)
                        return r;
                d->user = xstrndup(a, (size_t)(at - a));
                a = at + 1;
        }

        if (a < end && *a == '[') {
                const char *close = memchr(a, ']', (size_t)(end - a));
                if (!close)
                        return error_set(EINVAL, "'%s': '[' without ']'", s);
                r = check_v6(a + 1, (size_t)(close - a - 1), s);
                if (r < 0)
                        return r;
                d->host = xstrndup(a + 1, (size_t)(close - a - 1));
                a = close + 1;
                if (a == end)
                        return 0;
                if (*a != ':')
                        return error_set(EINVAL, "'%s': unexpected text after ']'", s);
                return parse_port(a + 1, (size_t)(end - a - 1), &d->port, s);
        }

        const char *colon = memchr(a, ':', (size_t)(end - a));
        if (colon && memchr(colon + 1, ':', (size_t)(end - colon - 1))) {
                /* more than one ':': a bare IPv6 address, which cannot carry a port */
                r = check_v6(a, (size_t)(end - a), s);
                if (r < 0)
                        return error_set(EINVAL, "'%s': invalid host (an IPv6 address with a port "
                                         "goes in brackets: [addr]:port)", s);
                d->host = xstrndup(a, (size_t)(end - a));
                return 0;
        }
        size_t hlen = colon ? (size_t)(colon - a) : (size_t)(end - a);
        r = check_host(a, hlen, s);
        if (r < 0)
                return r;
        d->host = xstrndup(a, hlen);
        if (colon)
                return parse_port(colon + 1, (size_t)(end - colon - 1), &d->port, s);
        return 0;
}

int ssh_parse_destination(const char *s, struct ssh_destination *ret)
{
        struct ssh_destination d = {};
        const char *a = s, *end;
        int r;

        if (!s || !*s)
                return error_set(EINVAL, "empty destination");
        for (const char *p = s; *p; p++)
                if ((unsigned char)*p < ' ' || *p == 0x7f)
                        return error_set(EINVAL, "destination with a control character");

        if (strncmp(s, "ssh://", 6) == 0) {
                a = s + 6;
                end = strchr(a, '/');
                if (end) {
                        for (const char *p = end; *p; p++)
                                if (*p == ' ')
                                        return error_set(EINVAL, "'%s': a space in the path", s);
                        d.path = xstrdup(end);
                } else
                        end = a + strlen(a);
        } else {
                if (strstr(s, "://"))
                        return error_set(EINVAL, "'%s': only ssh:// destinations are supported", s);
                end = a + strlen(a);
        }

        r = parse_authority(a, (size_t)(end - a), s, &d);
        if (r < 0) {
                ssh_destination_clear(&d);
                return r;
        }
        *ret = d;
        return 0;
}

void ssh_destination_clear(struct ssh_destination *d)
{
        free(d->user);
        free(d->host);
        free(d->path);
        *d = (struct ssh_destination){};
}
