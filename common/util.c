/* util.c — hex, sizes, durations and times. */
#include <ctype.h>
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
        if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
            tm.tm_min > 59 || tm.tm_sec > 60)
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
        if (t == (time_t)-1)
                return -EINVAL;
        *ret = (int64_t)t * 1000000000;
        return 0;
}
