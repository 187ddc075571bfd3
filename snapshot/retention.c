/* retention.c — which snapshots a keep policy keeps.
 *
 * Pure: given one group's snapshots (their start times and whether they are
 * protected) and a policy, it says which are kept and by which rules.  No
 * I/O, no catalog; forget (agent/cmd-forget.c) groups the snapshots and
 * acts on the answer.  Periods are calendar periods in local time, so the
 * answer depends on TZ: a snapshot at 23:30 UTC is on the next day in
 * Tokyo.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static const char *const rule_names[RETAIN__COUNT] = {
        "last", "hourly", "daily", "weekly", "monthly", "yearly", "protected", "only-snapshot",
};

const char *retention_rule_name(unsigned bit)
{
        for (unsigned i = 0; i < RETAIN__COUNT; i++)
                if (bit == 1u << i)
                        return rule_names[i];
        return NULL;
}

void retention_policy_init(struct retention_policy *p)
{
        *p = (struct retention_policy){ -1, -1, -1, -1, -1, -1 };
}

bool retention_policy_given(const struct retention_policy *p)
{
        return p->last >= 0 || p->hourly >= 0 || p->daily >= 0 || p->weekly >= 0 || p->monthly >= 0 ||
               p->yearly >= 0;
}

/* The policy's field for rule i (0 last ... 5 yearly). */
static int *policy_field(struct retention_policy *p, unsigned i)
{
        int *f[] = { &p->last, &p->hourly, &p->daily, &p->weekly, &p->monthly, &p->yearly };
        return f[i];
}

static bool blank(char c) { return c == ' ' || c == '\t'; }

int retention_parse(const char *spec, struct retention_policy *ret)
{
        struct retention_policy p;
        retention_policy_init(&p);
        const char *s = spec;
        bool any = false;

        for (;;) {
                while (blank(*s))
                        s++;
                const char *key = s;
                while ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))
                        s++;
                size_t klen = (size_t)(s - key);
                if (klen == 0) {
                        if (!any && *s == 0)
                                return error_set(EINVAL, "empty keep policy: give rules like 'last=3,daily=7'");
                        return error_set(EINVAL, "keep policy '%s': expected a rule name at '%s'", spec, s);
                }
                unsigned rule = RETAIN__COUNT;
                for (unsigned i = 0; i < 6; i++)
                        if (strlen(rule_names[i]) == klen && strncmp(rule_names[i], key, klen) == 0)
                                rule = i;
                if (rule == RETAIN__COUNT)
                        return error_set(EINVAL,
                                         "keep policy '%s': unknown rule '%.*s' (known: last, hourly, daily, weekly, "
                                         "monthly, yearly)",
                                         spec, (int)klen, key);
                while (blank(*s))
                        s++;
                if (*s != '=')
                        return error_set(EINVAL, "keep policy '%s': '%.*s' needs '=N'", spec, (int)klen, key);
                s++;
                while (blank(*s))
                        s++;
                if (*s == '-')
                        return error_set(EINVAL, "keep policy '%s': '%.*s' cannot be negative", spec, (int)klen,
                                         key);
                if (*s < '0' || *s > '9')
                        return error_set(EINVAL, "keep policy '%s': '%.*s' needs a number", spec, (int)klen, key);
                long v = 0;
                while (*s >= '0' && *s <= '9') {
                        v = v * 10 + (*s - '0');
                        if (v > 1000000)
                                return error_set(EINVAL, "keep policy '%s': '%.*s' is too large", spec, (int)klen,
                                                 key);
                        s++;
                }
                int *f = policy_field(&p, rule);
                if (*f >= 0)
                        return error_set(EINVAL, "keep policy '%s': '%.*s' is given twice", spec, (int)klen, key);
                *f = (int)v;
                any = true;
                while (blank(*s))
                        s++;
                if (*s == 0)
                        break;
                if (*s != ',')
                        return error_set(EINVAL, "keep policy '%s': unexpected '%s' after '%.*s=%ld'", spec, s,
                                         (int)klen, key, v);
                s++;
        }
        *ret = p;
        return 0;
}

/* The calendar period (rule 1 hourly ... 5 yearly) that the instant t (ns)
 * falls in, in local time, as a number: equal numbers, same period. */
static int64_t period_of(unsigned rule, int64_t t)
{
        time_t sec = (time_t)(t >= 0 ? t / 1000000000 : -((-t + 999999999) / 1000000000));
        struct tm tm;
        if (!localtime_r(&sec, &tm))
                return (int64_t)sec;
        int64_t y = tm.tm_year + 1900, m = tm.tm_mon + 1, d = tm.tm_mday;
        switch (rule) {
        case 1:
                return ((y * 100 + m) * 100 + d) * 100 + tm.tm_hour;
        case 2:
                return (y * 100 + m) * 100 + d;
        case 3: {
                /* ISO 8601 week: its year is the year of its Thursday. */
                char b[16];
                strftime(b, sizeof b, "%G%V", &tm);
                return strtoll(b, NULL, 10);
        }
        case 4:
                return y * 100 + m;
        default:
                return y;
        }
}

struct order {
        size_t i;
        int64_t time;
        const char *id;
};

/* Newest first; equal times by id, so the answer does not depend on the
 * input order. */
static int newest_first(const void *a, const void *b)
{
        const struct order *x = a, *y = b;
        if (x->time != y->time)
                return x->time > y->time ? -1 : 1;
        return strcmp(x->id ? x->id : "", y->id ? y->id : "");
}

int retention_select(const struct retention_policy *p, const struct retention_item *items, size_t n,
                     struct retention_decision *ret)
{
        if (!retention_policy_given(p))
                return error_set(EINVAL, "the keep policy has no rule: give at least one --keep-* rule");
        struct retention_policy pol = *p;
        _cleanup_free_ struct order *o = xcalloc(n ? n : 1, sizeof *o);
        for (size_t i = 0; i < n; i++) {
                o[i] = (struct order){ i, items[i].time, items[i].id };
                ret[i] = (struct retention_decision){ 0 };
        }
        qsort(o, n, sizeof *o, newest_first);

        for (unsigned rule = 0; rule < 6; rule++) {
                int want = *policy_field(&pol, rule);
                int64_t last_period = 0;
                bool have_period = false;
                for (size_t k = 0; k < n && want > 0; k++) {
                        const struct retention_item *it = &items[o[k].i];
                        /* Protected snapshots are kept anyway and use up no
                         * slot of any rule. */
                        if (it->protected_)
                                continue;
                        if (rule > 0) {
                                int64_t per = period_of(rule, it->time);
                                if (have_period && per == last_period)
                                        continue;
                                last_period = per;
                                have_period = true;
                        }
                        ret[o[k].i].keep = true;
                        ret[o[k].i].rules |= 1u << rule;
                        want--;
                }
        }
        bool any = false;
        for (size_t i = 0; i < n; i++) {
                if (items[i].protected_) {
                        ret[i].keep = true;
                        ret[i].rules |= RETAIN_PROTECTED;
                }
                any |= ret[i].keep;
        }
        if (!any && n > 0 && pol.last != 0) {
                ret[o[0].i].keep = true;
                ret[o[0].i].rules = RETAIN_ONLY;
        }
        return 0;
}
