/* test-retention.c — the keep policy against tables of dated snapshots:
 * every rule, overlaps, time zones and DST, protected snapshots, the
 * only-snapshot guard, and the label syntax. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../snapshot/internal.h"

/* "2026-01-05T18:00Z" -> ns since the epoch (always UTC). */
static int64_t at(const char *s)
{
        struct tm tm = { 0 };
        int y, mo, d, h, mi;
        assert_int_equal(sscanf(s, "%d-%d-%dT%d:%dZ", &y, &mo, &d, &h, &mi), 5);
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        return (int64_t)timegm(&tm) * 1000000000;
}

static void set_tz(const char *tz)
{
        setenv("TZ", tz, 1);
        tzset();
}

struct row {
        const char *time;
        bool protected_;
        unsigned expect;  /* RETAIN_* bits expected; 0: forgotten */
};

/* Runs the policy over the rows (given in scrambled order on purpose) and
 * compares every decision with the table. */
static void check_table(const char *spec, const struct row *rows, size_t n)
{
        struct retention_policy p;
        assert_int_equal(retention_parse(spec, &p), 0);
        struct retention_item items[32];
        struct retention_decision d[32];
        char ids[32][24];
        assert_true(n <= 32);
        for (size_t i = 0; i < n; i++) {
                /* reversed, so the function must sort */
                size_t j = n - 1 - i;
                snprintf(ids[i], sizeof ids[i], "s%02zu", j);
                items[i] = (struct retention_item){ ids[i], at(rows[j].time), rows[j].protected_ };
        }
        assert_int_equal(retention_select(&p, items, n, d), 0);
        for (size_t i = 0; i < n; i++) {
                size_t j = n - 1 - i;
                if (d[i].rules != rows[j].expect || d[i].keep != (rows[j].expect != 0))
                        fail_msg("policy '%s', TZ=%s, snapshot %s: rules 0x%x keep %d, expected 0x%x", spec,
                                 getenv("TZ"), rows[j].time, d[i].rules, d[i].keep, rows[j].expect);
        }
}

#define CHECK(spec, ...)                                                  \
        do {                                                              \
                static const struct row rows_[] = { __VA_ARGS__ };        \
                check_table(spec, rows_, sizeof rows_ / sizeof rows_[0]); \
        } while (0)

static void test_last(void **state)
{
        set_tz("UTC");
        CHECK("last=3", { "2026-01-01T10:00Z", false, 0 }, { "2026-01-01T11:00Z", false, 0 },
              { "2026-01-01T12:00Z", false, RETAIN_LAST }, { "2026-01-01T13:00Z", false, RETAIN_LAST },
              { "2026-01-01T14:00Z", false, RETAIN_LAST });
        /* more asked than there are */
        CHECK("last=10", { "2026-01-01T10:00Z", false, RETAIN_LAST }, { "2026-01-02T10:00Z", false, RETAIN_LAST });
}

static void test_hourly(void **state)
{
        set_tz("UTC");
        /* the newest of each hour; hours without snapshots do not count */
        CHECK("hourly=2", { "2026-01-01T10:05Z", false, 0 }, { "2026-01-01T10:50Z", false, 0 },
              { "2026-01-01T11:10Z", false, RETAIN_HOURLY }, { "2026-01-01T13:00Z", false, RETAIN_HOURLY });
}

static void test_daily(void **state)
{
        set_tz("UTC");
        CHECK("daily=3", { "2026-01-01T10:00Z", false, 0 }, { "2026-01-01T20:00Z", false, 0 },
              { "2026-01-02T09:00Z", false, RETAIN_DAILY }, { "2026-01-04T12:00Z", false, RETAIN_DAILY },
              { "2026-01-05T08:00Z", false, 0 }, { "2026-01-05T18:00Z", false, RETAIN_DAILY });
}

static void test_weekly_iso(void **state)
{
        set_tz("UTC");
        /* 2025-12-29 (Monday) to 2026-01-04 (Sunday) is ISO week 2026-W01:
         * one week across the new year. */
        CHECK("weekly=3", { "2025-12-29T10:00Z", false, 0 }, { "2026-01-04T10:00Z", false, RETAIN_WEEKLY },
              { "2026-01-05T10:00Z", false, RETAIN_WEEKLY }, { "2026-01-12T10:00Z", false, RETAIN_WEEKLY });
        /* ISO 2020-W53 runs into 2021 (2021-01-03 is its Sunday) */
        CHECK("weekly=1", { "2020-12-28T10:00Z", false, 0 }, { "2021-01-03T10:00Z", false, RETAIN_WEEKLY });
}

static void test_monthly_yearly(void **state)
{
        set_tz("UTC");
        CHECK("monthly=2", { "2024-06-01T00:00Z", false, 0 }, { "2024-12-31T00:00Z", false, 0 },
              { "2025-03-01T00:00Z", false, 0 }, { "2025-03-20T00:00Z", false, RETAIN_MONTHLY },
              { "2026-02-01T00:00Z", false, RETAIN_MONTHLY });
        CHECK("yearly=3", { "2024-06-01T00:00Z", false, 0 }, { "2024-12-31T00:00Z", false, RETAIN_YEARLY },
              { "2025-03-01T00:00Z", false, 0 }, { "2025-03-20T00:00Z", false, RETAIN_YEARLY },
              { "2026-02-01T00:00Z", false, RETAIN_YEARLY });
}

static void test_overlaps(void **state)
{
        set_tz("UTC");
        /* one snapshot kept by several rules is kept once, naming them all */
        CHECK("last=1,daily=2,weekly=2,monthly=1,yearly=1", { "2025-12-20T10:00Z", false, RETAIN_WEEKLY },
              { "2026-01-01T10:00Z", false, 0 }, { "2026-01-01T22:00Z", false, RETAIN_DAILY },
              { "2026-01-02T08:00Z", false,
                RETAIN_LAST | RETAIN_DAILY | RETAIN_WEEKLY | RETAIN_MONTHLY | RETAIN_YEARLY });
        CHECK("hourly=24, daily=7, weekly=4, monthly=12", { "2026-01-01T10:00Z", false, RETAIN_DAILY | RETAIN_HOURLY },
              { "2026-01-02T10:00Z", false, RETAIN_DAILY | RETAIN_HOURLY | RETAIN_WEEKLY | RETAIN_MONTHLY });
}

static void test_time_zones(void **state)
{
        /* The same four instants fall on different local days. */
#define FOUR(a, b, c, d)                                                                   \
        { "2026-03-10T14:00Z", false, a }, { "2026-03-10T16:00Z", false, b },              \
                { "2026-03-11T03:00Z", false, c }, { "2026-03-11T12:00Z", false, d }
        set_tz("UTC");
        CHECK("daily=2", FOUR(0, RETAIN_DAILY, 0, RETAIN_DAILY));
        /* New York (UTC-4 since 8 March): 03:00Z is still 10 March */
        set_tz("America/New_York");
        CHECK("daily=2", FOUR(0, 0, RETAIN_DAILY, RETAIN_DAILY));
        /* Tokyo (UTC+9): 16:00Z is already 11 March */
        set_tz("Asia/Tokyo");
        CHECK("daily=2", FOUR(RETAIN_DAILY, 0, 0, RETAIN_DAILY));
#undef FOUR
}

static void test_dst(void **state)
{
        /* 1 November 2026, New York falls back at 02:00 EDT: 05:30Z and
         * 06:30Z are both 01:30 local, one hour of the wall clock. */
        set_tz("America/New_York");
        CHECK("hourly=5", { "2026-11-01T05:30Z", false, 0 }, { "2026-11-01T06:30Z", false, RETAIN_HOURLY },
              { "2026-11-01T07:30Z", false, RETAIN_HOURLY });
        set_tz("UTC");
        CHECK("hourly=5", { "2026-11-01T05:30Z", false, RETAIN_HOURLY }, { "2026-11-01T06:30Z", false, RETAIN_HOURLY },
              { "2026-11-01T07:30Z", false, RETAIN_HOURLY });
        /* spring forward (8 March 2026): 06:30Z is 01:30 EST, 07:30Z 03:30 EDT, same day */
        set_tz("America/New_York");
        CHECK("daily=2", { "2026-03-08T04:30Z", false, RETAIN_DAILY }, { "2026-03-08T06:30Z", false, 0 },
              { "2026-03-08T07:30Z", false, RETAIN_DAILY });
}

static void test_protected(void **state)
{
        set_tz("UTC");
        /* protected ones are kept and use up no rule's slot */
        CHECK("last=1", { "2026-01-01T10:00Z", true, RETAIN_PROTECTED }, { "2026-01-02T10:00Z", false, 0 },
              { "2026-01-03T10:00Z", false, RETAIN_LAST }, { "2026-01-04T10:00Z", true, RETAIN_PROTECTED });
        CHECK("daily=1", { "2026-01-04T09:00Z", false, RETAIN_DAILY }, { "2026-01-04T10:00Z", true, RETAIN_PROTECTED });
        /* last=0 lets everything unprotected go, the protected one stays */
        CHECK("last=0", { "2026-01-01T10:00Z", false, 0 }, { "2026-01-02T10:00Z", true, RETAIN_PROTECTED });
}

static void test_only_snapshot_guard(void **state)
{
        set_tz("UTC");
        /* a policy that keeps nothing keeps the newest anyway */
        CHECK("daily=0", { "2026-01-01T10:00Z", false, 0 }, { "2026-01-02T10:00Z", false, RETAIN_ONLY });
        CHECK("hourly=0,weekly=0", { "2026-01-02T10:00Z", false, RETAIN_ONLY });
        /* unless last=0 says so */
        CHECK("last=0", { "2026-01-01T10:00Z", false, 0 }, { "2026-01-02T10:00Z", false, 0 });
        CHECK("last=0,daily=0", { "2026-01-02T10:00Z", false, 0 });
        /* a kept snapshot is not "only" */
        CHECK("last=0,daily=1", { "2026-01-01T10:00Z", false, 0 }, { "2026-01-02T10:00Z", false, RETAIN_DAILY });
        /* an empty group is fine */
        struct retention_policy p;
        struct retention_decision d[1];
        assert_int_equal(retention_parse("last=1", &p), 0);
        assert_int_equal(retention_select(&p, NULL, 0, d), 0);
}

static void test_no_rule(void **state)
{
        struct retention_policy p;
        retention_policy_init(&p);
        assert_false(retention_policy_given(&p));
        struct retention_item it = { "x", 0, false };
        struct retention_decision d;
        assert_int_equal(retention_select(&p, &it, 1, &d), -EINVAL);
        assert_non_null(strstr(error_message(), "at least one"));
        error_clear();
}

static void test_parse(void **state)
{
        struct retention_policy p;
        assert_int_equal(retention_parse("last=3,hourly=24,daily=7,weekly=4,monthly=12,yearly=2", &p), 0);
        assert_int_equal(p.last, 3);
        assert_int_equal(p.hourly, 24);
        assert_int_equal(p.daily, 7);
        assert_int_equal(p.weekly, 4);
        assert_int_equal(p.monthly, 12);
        assert_int_equal(p.yearly, 2);
        assert_int_equal(retention_parse(" daily = 7 , last=0 ", &p), 0);
        assert_int_equal(p.daily, 7);
        assert_int_equal(p.last, 0);
        assert_int_equal(p.hourly, -1);
        assert_int_equal(p.yearly, -1);

        static const struct {
                const char *spec, *words;
        } bad[] = {
                { "", "empty" },
                { "   ", "empty" },
                { "last", "needs '=N'" },
                { "last=", "needs a number" },
                { "last=-1", "negative" },
                { "fortnightly=2", "unknown rule 'fortnightly'" },
                { "last=1,last=2", "given twice" },
                { "last=1;daily=2", "unexpected ';daily=2'" },
                { "last=1x", "unexpected 'x'" },
                { "daily=3 junk", "unexpected 'junk'" },
                { "last=1,", "expected a rule name" },
                { ",last=1", "expected a rule name" },
                { "last=99999999999", "too large" },
                { "last=0x10", "unexpected 'x10'" },
        };
        p.last = 42;
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                error_clear();
                if (retention_parse(bad[i].spec, &p) != -EINVAL)
                        fail_msg("'%s' was accepted", bad[i].spec);
                if (!strstr(error_message(), bad[i].words))
                        fail_msg("'%s': message '%s' lacks '%s'", bad[i].spec, error_message(), bad[i].words);
                assert_int_equal(p.last, 42); /* written only on success */
        }
        error_clear();
}

static void test_rule_names(void **state)
{
        assert_string_equal(retention_rule_name(RETAIN_LAST), "last");
        assert_string_equal(retention_rule_name(RETAIN_YEARLY), "yearly");
        assert_string_equal(retention_rule_name(RETAIN_PROTECTED), "protected");
        assert_string_equal(retention_rule_name(RETAIN_ONLY), "only-snapshot");
        assert_null(retention_rule_name(RETAIN_LAST | RETAIN_DAILY));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_last),          cmocka_unit_test(test_hourly),
                cmocka_unit_test(test_daily),         cmocka_unit_test(test_weekly_iso),
                cmocka_unit_test(test_monthly_yearly), cmocka_unit_test(test_overlaps),
                cmocka_unit_test(test_time_zones),    cmocka_unit_test(test_dst),
                cmocka_unit_test(test_protected),     cmocka_unit_test(test_only_snapshot_guard),
                cmocka_unit_test(test_no_rule),       cmocka_unit_test(test_parse),
                cmocka_unit_test(test_rule_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
