/* test-schedule.c — schedule parsing and the next run in local time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../common/schedule.h"

/* seconds since the epoch of a local wall-clock time in zone TZ */
static int64_t at(int y, int mo, int d, int h, int mi, int s)
{
        struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi,
                         .tm_sec = s, .tm_isdst = -1 };
        return (int64_t)mktime(&tm);
}

static void zone(const char *tz)
{
        setenv("TZ", tz, 1);
        tzset();
}

static void test_parse(void **state)
{
        struct schedule s;
        char buf[64];
        static const struct { const char *in, *canon; } good[] = {
                { "hourly", "hourly" },       { "daily", "daily" },           { "weekly", "weekly" },
                { "monthly", "monthly" },     { "daily 02:30", "daily 02:30" }, { "daily 2:05", "daily 02:05" },
                { " daily 23:59 ", "daily 23:59" }, { "every 15m", "every 15m" }, { "every 2s", "every 2s" },
                { "every 1h30m", "every 1h30m" }, { "every 90", "every 1m30s" }, { "every 1d", "every 1d" },
                { "every 90m", "every 1h30m" },
        };
        for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
                assert_int_equal(schedule_parse(good[i].in, &s), 0);
                assert_string_equal(schedule_format(&s, buf, sizeof buf), good[i].canon);
        }
        static const char *const bad[] = {
                "", "Hourly", "daily 24:00", "daily 12:60", "daily 12", "daily 1230", "daily 12:3", "every",
                "every 0s", "every -5m", "every 15x", "every 1h30", "every m", "yearly", "every 15 m",
                "daily 02:30:00", "weekly 02:00", "every 999999999999999999999s",
        };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
                assert_int_equal(schedule_parse(bad[i], &s), -EINVAL);
}

static void test_next_utc(void **state)
{
        struct schedule s;
        zone("UTC");
        int64_t t = at(2026, 12, 2, 5, 51, 21); /* a Wednesday */

        assert_int_equal(schedule_parse("every 15m", &s), 0);
        assert_int_equal(schedule_next(&s, t), t + 900);
        assert_int_equal(schedule_interval(&s), 900);

        assert_int_equal(schedule_parse("hourly", &s), 0);
        assert_int_equal(schedule_next(&s, t), at(2026, 12, 2, 6, 0, 0));
        assert_int_equal(schedule_next(&s, at(2026, 12, 2, 6, 0, 0)), at(2026, 12, 2, 7, 0, 0));

        assert_int_equal(schedule_parse("daily 02:30", &s), 0);
        assert_int_equal(schedule_next(&s, t), at(2026, 12, 3, 2, 30, 0));
        assert_int_equal(schedule_next(&s, at(2026, 12, 2, 2, 29, 59)), at(2026, 12, 2, 2, 30, 0));
        assert_int_equal(schedule_next(&s, at(2026, 12, 2, 2, 30, 0)), at(2026, 12, 3, 2, 30, 0));
        /* across the year */
        assert_int_equal(schedule_next(&s, at(2026, 12, 31, 3, 0, 0)), at(2027, 1, 1, 2, 30, 0));

        assert_int_equal(schedule_parse("daily", &s), 0);
        assert_int_equal(schedule_next(&s, t), at(2026, 12, 3, 0, 0, 0));

        assert_int_equal(schedule_parse("weekly", &s), 0);
        assert_int_equal(schedule_next(&s, t), at(2026, 12, 7, 0, 0, 0));           /* next Monday */
        assert_int_equal(schedule_next(&s, at(2026, 12, 7, 0, 0, 0)), at(2026, 12, 14, 0, 0, 0));
        assert_int_equal(schedule_next(&s, at(2026, 12, 6, 23, 0, 0)), at(2026, 12, 7, 0, 0, 0)); /* Sunday */

        assert_int_equal(schedule_parse("monthly", &s), 0);
        assert_int_equal(schedule_next(&s, t), at(2027, 1, 1, 0, 0, 0));
        assert_int_equal(schedule_next(&s, at(2027, 1, 31, 12, 0, 0)), at(2027, 2, 1, 0, 0, 0));
}

static void test_next_local_dst(void **state)
{
        struct schedule s;
        zone("Europe/Berlin");
        /* 2026-03-29: clocks go from 02:00 to 03:00; 02:30 does not exist */
        assert_int_equal(schedule_parse("daily 02:30", &s), 0);
        int64_t n = schedule_next(&s, at(2026, 3, 28, 12, 0, 0));
        assert_true(n > at(2026, 3, 28, 12, 0, 0));
        assert_true(n <= at(2026, 3, 29, 3, 30, 0));
        /* the day after, 02:30 local again, 23 h after the 28th's */
        assert_int_equal(schedule_next(&s, at(2026, 3, 29, 12, 0, 0)), at(2026, 3, 30, 2, 30, 0));
        /* in local time: 02:30 Berlin is 01:30 UTC in winter */
        assert_int_equal(schedule_next(&s, at(2026, 1, 10, 12, 0, 0)), 1768095000); /* 2026-01-11T01:30:00Z */
        /* 2026-10-25: 03:00 becomes 02:00 again; one run, not two */
        int64_t a = schedule_next(&s, at(2026, 10, 24, 12, 0, 0));
        int64_t b = schedule_next(&s, a);
        assert_true(b - a >= 23 * 3600);
        assert_int_equal(schedule_parse("hourly", &s), 0);
        assert_true(schedule_next(&s, at(2026, 10, 25, 1, 30, 0)) > at(2026, 10, 25, 1, 30, 0));
        zone("UTC");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_next_utc),
                cmocka_unit_test(test_next_local_dst),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
