/* schedule.h — backup schedules: parsing "hourly", "daily 02:30",
 * "every 15m"... and computing the next run in local time.  Pure libc: the
 * agent and the unit tests use it. */
#ifndef BERTH_SCHEDULE_H
#define BERTH_SCHEDULE_H

#include <stdint.h>

enum schedule_kind { SCHEDULE_EVERY, SCHEDULE_HOURLY, SCHEDULE_DAILY, SCHEDULE_WEEKLY, SCHEDULE_MONTHLY };

struct schedule {
        enum schedule_kind kind;
        uint64_t every;      /* SCHEDULE_EVERY: seconds, > 0 */
        int hour, minute;    /* SCHEDULE_DAILY: time of day (00:00 unless given) */
};

/* Parses hourly | daily | weekly | monthly | "daily HH:MM" | "every DURATION"
 * (DURATION: one or more NUMBER UNIT with unit s, m, h or d, e.g. 15m, 2s,
 * 1h30m).  Case-sensitive, surrounding blanks allowed.  Returns 0 or -EINVAL. */
int schedule_parse(const char *s, struct schedule *ret);
/* Parses "1h30m", "15m", "2s", "90" (seconds): 0 and *ret (seconds > 0), or -EINVAL. */
int schedule_parse_duration(const char *s, uint64_t *ret);
/* The first run strictly after `after` (seconds since the epoch): every
 * DURATION: after + DURATION; hourly: the next full hour; daily: the next
 * HH:MM; weekly: the next Monday 00:00; monthly: the next 1st at 00:00, all
 * in local time (mktime: DST gaps are skipped forward). */
int64_t schedule_next(const struct schedule *s, int64_t after);
/* The nominal interval in seconds (a month is 31 days): what a retry
 * backoff is capped at. */
uint64_t schedule_interval(const struct schedule *s);
/* The canonical text of s ("every 1h30m", "daily 02:30") into buf. */
char *schedule_format(const struct schedule *s, char *buf, unsigned size);

#endif
