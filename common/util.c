/* util.c — hex, sizes, durations and times, id lookups, escaping. */
#include <ctype.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common.h"

void hex_encode(const uint8_t *p, size_t n, char *out)
{
        static const char digits[] = "0123456789abcdef";
        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[p[i] >> 4];
                out[2 * i + 1] = digits[p[i] & 15];
        }
        out[2 * n] = 0;
}

static int hexval(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int hex_decode(const char *s, uint8_t *out, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                int hi = hexval(s[2 * i]), lo = hi < 0 ? -1 : hexval(s[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                out[i] = (uint8_t)(hi << 4 | lo);
        }
        return s[2 * n] == 0 ? 0 : -EINVAL;
}

bool is_hex(const char *s)
{
        if (!*s)
                return false;
        for (; *s; s++)
                if (hexval(*s) < 0)
                        return false;
        return true;
}

char *format_bytes(uint64_t n, char *buf, size_t size)
{
        static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
        double v = (double)n;
        size_t u = 0;

        while (v >= 1024 && u + 1 < ELEMENTSOF(units)) {
                v /= 1024;
                u++;
        }
        if (u == 0)
                snprintf(buf, size, "%llu B", (unsigned long long)n);
        else
                snprintf(buf, size, "%.*f %s", v < 10 ? 2 : v < 100 ? 1 : 0, v, units[u]);
        return buf;
}

int parse_size(const char *s, uint64_t *ret)
{
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || end == s || *s == '-')
                return -EINVAL;
        uint64_t mult = 1;
        if (*end) {
                static const struct { const char *suffix; uint64_t mult; } suffixes[] = {
                        { "K", 1ULL << 10 }, { "KiB", 1ULL << 10 }, { "M", 1ULL << 20 },
                        { "MiB", 1ULL << 20 }, { "G", 1ULL << 30 }, { "GiB", 1ULL << 30 },
                        { "T", 1ULL << 40 }, { "TiB", 1ULL << 40 }, { "B", 1 },
                };
                size_t i;
                for (i = 0; i < ELEMENTSOF(suffixes); i++)
                        if (strcasecmp(end, suffixes[i].suffix) == 0)
                                break;
                if (i == ELEMENTSOF(suffixes))
                        return -EINVAL;
                mult = suffixes[i].mult;
        }
        if (v > UINT64_MAX / mult)
                return -EINVAL;
        *ret = v * mult;
        return 0;
}

int parse_duration(const char *s, uint64_t *ret)
{
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || end == s || *s == '-')
                return -EINVAL;
        uint64_t mult;
        if (!*end || strcmp(end, "s") == 0)
                mult = 1;
        else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
                mult = 60;
        else if (strcmp(end, "h") == 0)
                mult = 3600;
        else if (strcmp(end, "d") == 0)
                mult = 86400;
        else
                return -EINVAL;
        *ret = v * mult;
        return 0;
}

int64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t mono_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

char *format_time(int64_t ns, char *buf, size_t size)
{
        time_t t = (time_t)(ns / 1000000000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
        return buf;
}

int parse_time(const char *s, int64_t *ret)
{
        struct tm tm = { 0 };
        const char *p;
        int n = 0;

        /* Date, then optional time; the separator may be 'T' or ' '. */
        if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3)
                return -EINVAL;
        p = s + n;
        if (*p == 'T' || *p == ' ') {
                p++;
                if (sscanf(p, "%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &n) != 2)
                        return -EINVAL;
                p += n;
                if (*p == ':') {
                        p++;
                        if (sscanf(p, "%2d%n", &tm.tm_sec, &n) != 1)
                                return -EINVAL;
                        p += n;
                        if (*p == '.') /* fractions of a second are ignored */
                                for (p++; isdigit((unsigned char)*p); p++)
                                        ;
                }
        }
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour < 0 ||
            tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 || tm.tm_sec < 0 || tm.tm_sec > 60)
                return -EINVAL;

        time_t t;
        if (*p == 0) {
                tm.tm_isdst = -1;
                t = mktime(&tm);
        } else if (*p == 'Z' && p[1] == 0) {
                t = timegm(&tm);
        } else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1])) {
                int hh = 0, mm = 0;
                if (sscanf(p + 1, "%2d:%2d", &hh, &mm) < 1 && sscanf(p + 1, "%2d%2d", &hh, &mm) < 1)
                        return -EINVAL;
                t = timegm(&tm) - (*p == '+' ? 1 : -1) * (hh * 3600 + mm * 60);
        } else
                return -EINVAL;
        /* Nanoseconds in an int64_t: 1677 to 2262 (fuzz-refs found the
         * overflow of an earlier year). */
        if (t == (time_t)-1 || t < INT64_MIN / 1000000000 || t > INT64_MAX / 1000000000)
                return -EINVAL;
        *ret = (int64_t)t * 1000000000;
        return 0;
}

int64_t user_id(const char *name)
{
        char buf[4096];
        struct passwd pw, *p = NULL;
        if (getpwnam_r(name, &pw, buf, sizeof buf, &p) != 0 || !p)
                return -ENOENT;
        return (int64_t)p->pw_uid;
}

int64_t group_id(const char *name)
{
        char buf[4096];
        struct group gr, *g = NULL;
        if (getgrnam_r(name, &gr, buf, sizeof buf, &g) != 0 || !g)
                return -ENOENT;
        return (int64_t)g->gr_gid;
}

int64_t time_ns(int64_t sec, int64_t nsec)
{
        int64_t ns;
        if (__builtin_mul_overflow(sec, (int64_t)1000000000, &ns) || __builtin_add_overflow(ns, nsec, &ns))
                return sec < 0 ? INT64_MIN : INT64_MAX;
        return ns;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_len(const uint8_t *p, size_t n)
{
        size_t len;
        uint32_t c;
        if (p[0] < 0x80)
                return 1;
        if ((p[0] & 0xe0) == 0xc0)
                len = 2, c = p[0] & 0x1f;
        else if ((p[0] & 0xf0) == 0xe0)
                len = 3, c = p[0] & 0x0f;
        else if ((p[0] & 0xf8) == 0xf0)
                len = 4, c = p[0] & 0x07;
        else
                return 0;
        if (len > n)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                c = c << 6 | (p[i] & 0x3f);
        }
        /* overlong forms, surrogates and values past U+10FFFF are invalid */
        if ((len == 2 && c < 0x80) || (len == 3 && c < 0x800) || (len == 4 && c < 0x10000) || c > 0x10ffff ||
            (c >= 0xd800 && c <= 0xdfff))
                return 0;
        /* C1 controls (U+0080..U+009F) act as escape sequences on terminals */
        if (c >= 0x80 && c < 0xa0)
                return 0;
        return len;
}

void buf_put_escaped(struct buf *b, const char *s, size_t n, bool backslash)
{
        const uint8_t *p = (const uint8_t *)s;
        for (size_t i = 0; i < n;) {
                uint8_t c = p[i];
                size_t len = c >= 0x20 && c != 0x7f ? utf8_len(p + i, n - i) : 0;
                if (len > 0 && !(backslash && c == '\\')) {
                        buf_append(b, p + i, len);
                        i += len;
                        continue;
                }
                static const char names[] = { ['\a'] = 'a', ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\v'] = 'v',
                                              ['\f'] = 'f', ['\r'] = 'r', [0x1b] = 'e', ['\\'] = '\\' };
                char esc[5] = "\\x";
                if (c < sizeof names && names[c]) {
                        esc[1] = names[c];
                        buf_append(b, esc, 2);
                } else {
                        static const char digits[] = "0123456789abcdef";
                        esc[2] = digits[c >> 4];
                        esc[3] = digits[c & 15];
                        buf_append(b, esc, 4);
                }
                i++;
        }
}

char *escape_text(const char *s)
{
        struct buf b = { 0 };
        buf_put_escaped(&b, s, strlen(s), false);
        buf_putc(&b, 0);
        return (char *)b.data;
}

char *escape_name(const char *s, size_t n)
{
        struct buf b = { 0 };
        buf_put_escaped(&b, s, n, true);
        buf_putc(&b, 0);
        return (char *)b.data;
}
