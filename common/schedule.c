/* schedule.c — backup schedules and their next run in local time. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "schedule.h"

int schedule_parse_duration(const char *s, uint64_t *ret)
{
        uint64_t total = 0;
        const char *p = s;
        if (!*p)
                return -EINVAL;
        while (*p) {
                if (!isdigit((unsigned char)*p))
                        return -EINVAL;
                uint64_t v = 0;
                while (isdigit((unsigned char)*p)) {
                        v = v * 10 + (uint64_t)(*p++ - '0');
                        if (v > 100ULL * 365 * 86400)
                                return -EINVAL;
                }
                uint64_t mult;
                switch (*p) {
                case 0: mult = p == s + strlen(s) && total == 0 ? 1 : 0; break;
                case 's': mult = 1; p++; break;
                case 'm': mult = 60; p++; break;
                case 'h': mult = 3600; p++; break;
                case 'd': mult = 86400; p++; break;
                default: return -EINVAL;
                }
                if (!mult)
                        return -EINVAL;
                total += v * mult;
                if (total > 100ULL * 365 * 86400)
                        return -EINVAL;
        }
        if (total == 0)
                return -EINVAL;
        *ret = total;
        return 0;
}

int schedule_parse(const char *s, struct schedule *ret)
{
        char w[64];
        size_t n;
        while (*s == ' ' || *s == '\t')
                s++;
        n = strlen(s);
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
                n--;
        if (n == 0 || n >= sizeof w)
                return -EINVAL;
        memcpy(w, s, n);
        w[n] = 0;

        struct schedule r = { 0 };
        if (strcmp(w, "hourly") == 0)
                r.kind = SCHEDULE_HOURLY;
        else if (strcmp(w, "daily") == 0)
                r.kind = SCHEDULE_DAILY;
        else if (strcmp(w, "weekly") == 0)
                r.kind = SCHEDULE_WEEKLY;
        else if (strcmp(w, "monthly") == 0)
                r.kind = SCHEDULE_MONTHLY;
        else if (strncmp(w, "daily ", 6) == 0) {
                const char *t = w + 6;
                while (*t == ' ')
                        t++;
                /* H:MM or HH:MM, nothing else */
                int h = 0, m = 0, len = (int)strlen(t);
                if ((len != 4 && len != 5) || t[len - 3] != ':' || !isdigit((unsigned char)t[0]) ||
                    !isdigit((unsigned char)t[len - 2]) || !isdigit((unsigned char)t[len - 1]) ||
                    (len == 5 && !isdigit((unsigned char)t[1])))
                        return -EINVAL;
                h = len == 5 ? (t[0] - '0') * 10 + (t[1] - '0') : t[0] - '0';
                m = (t[len - 2] - '0') * 10 + (t[len - 1] - '0');
                if (h > 23 || m > 59)
                        return -EINVAL;
                r.kind = SCHEDULE_DAILY;
                r.hour = h;
                r.minute = m;
        } else if (strncmp(w, "every ", 6) == 0) {
                const char *t = w + 6;
                while (*t == ' ')
                        t++;
                if (schedule_parse_duration(t, &r.every) < 0)
                        return -EINVAL;
                r.kind = SCHEDULE_EVERY;
        } else
                return -EINVAL;
        *ret = r;
        return 0;
}

/* mktime() of tm with the wall-clock fields set, DST left to mktime. */
static int64_t local(struct tm tm)
{
        tm.tm_isdst = -1;
        return (int64_t)mktime(&tm);
}

int64_t schedule_next(const struct schedule *s, int64_t after)
{
        time_t a = (time_t)after;
        struct tm tm;
        int64_t t;

        if (s->kind == SCHEDULE_EVERY)
                return after + (int64_t)s->every;
        localtime_r(&a, &tm);
        tm.tm_sec = 0;
        switch (s->kind) {
        case SCHEDULE_HOURLY:
                tm.tm_min = 0;
                for (int i = 0; i < 4; i++) {
                        tm.tm_hour++;
                        t = local(tm);
                        if (t > after)
                                return t;
                }
                return after + 3600;
        case SCHEDULE_DAILY:
                tm.tm_hour = s->hour;
                tm.tm_min = s->minute;
                for (int i = 0; i < 3; i++, tm.tm_mday++) {
                        t = local(tm);
                        if (t > after)
                                return t;
                }
                return after + 86400;
        case SCHEDULE_WEEKLY:
                tm.tm_hour = tm.tm_min = 0;
                /* tm_wday 1 is Monday */
                tm.tm_mday += (8 - tm.tm_wday) % 7;
                for (int i = 0; i < 3; i++, tm.tm_mday += 7) {
                        t = local(tm);
                        if (t > after)
                                return t;
                }
                return after + 7 * 86400;
        case SCHEDULE_MONTHLY:
                tm.tm_hour = tm.tm_min = 0;
                tm.tm_mday = 1;
                for (int i = 0; i < 3; i++, tm.tm_mon++) {
                        t = local(tm);
                        if (t > after)
                                return t;
                }
                return after + 31 * 86400;
        default:
                return after + 86400;
        }
}

uint64_t schedule_interval(const struct schedule *s)
{
        switch (s->kind) {
        case SCHEDULE_EVERY: return s->every;
        case SCHEDULE_HOURLY: return 3600;
        case SCHEDULE_DAILY: return 86400;
        case SCHEDULE_WEEKLY: return 7 * 86400;
        default: return 31 * 86400;
        }
}

char *schedule_format(const struct schedule *s, char *buf, unsigned size)
{
        switch (s->kind) {
        case SCHEDULE_EVERY: {
                uint64_t v = s->every;
                int n = snprintf(buf, size, "every ");
                static const struct { uint64_t secs; char unit; } units[] = {
                        { 86400, 'd' }, { 3600, 'h' }, { 60, 'm' }, { 1, 's' },
                };
                for (unsigned i = 0; i < 4 && v; i++)
                        if (v >= units[i].secs && n >= 0 && (unsigned)n < size) {
                                n += snprintf(buf + n, size - (unsigned)n, "%llu%c",
                                              (unsigned long long)(v / units[i].secs), units[i].unit);
                                v %= units[i].secs;
                        }
                break;
        }
        case SCHEDULE_HOURLY: snprintf(buf, size, "hourly"); break;
        case SCHEDULE_DAILY:
                if (s->hour || s->minute)
                        snprintf(buf, size, "daily %02d:%02d", s->hour, s->minute);
                else
                        snprintf(buf, size, "daily");
                break;
        case SCHEDULE_WEEKLY: snprintf(buf, size, "weekly"); break;
        default: snprintf(buf, size, "monthly"); break;
        }
        return buf;
}
