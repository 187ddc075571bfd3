/* resolve.c — snapshot references: an id or id prefix, NAME, NAME@latest,
 * NAME@TIME.  A reference that could mean two snapshots is refused with
 * both named; nothing here guesses.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static int list_candidates(struct repo *r, const char *ref, struct catalog_snapshot *list, size_t n, int err)
{
        struct buf b = { 0 };
        char t[32];
        for (size_t i = 0; i < n && i < 10; i++) {
                char *line = xasprintf("%s  %.12s  %s  %s", i ? "," : "", list[i].id, list[i].name,
                                       format_time(list[i].started, t, sizeof t));
                buf_append(&b, line + (i ? 0 : 2), strlen(line + (i ? 0 : 2)));
                free(line);
        }
        buf_putc(&b, 0);
        int k = error_set(err, "'%s' matches %zu snapshots: %s; give more of the id", ref, n, (char *)b.data);
        buf_free(&b);
        return k;
}

static int names_hint(struct repo *r, const char *ref)
{
        struct catalog_snapshot *list;
        size_t n;
        struct buf b = { 0 };
        if (r->ndamage)
                return error_set(BERTH_ECORRUPT,
                                 "no snapshot matches '%s', and the repository is damaged: %zu object(s) in %s could "
                                 "not be read (named above); run berth check%s",
                                 ref, r->ndamage, r->path, r->cached ? " on the far side" : "");
        if (catalog_snapshot_list(r->catalog, NULL, &list, &n) < 0)
                return error_set(BERTH_ENOTFOUND, "no snapshot matches '%s'", ref);
        for (size_t i = 0; i < n; i++) {
                bool seen = false;
                for (size_t j = 0; j < i && !seen; j++)
                        seen = strcmp(list[j].name, list[i].name) == 0;
                if (seen)
                        continue;
                if (b.len)
                        buf_append(&b, ", ", 2);
                buf_append(&b, list[i].name, strlen(list[i].name));
        }
        buf_putc(&b, 0);
        int k = n ? error_set(BERTH_ENOTFOUND,
                              "no snapshot matches '%s'; snapshot names here: %s (use NAME, NAME@latest, "
                              "NAME@TIME or an id; 'berth snapshots' lists them)",
                              ref, (char *)b.data)
                  : error_set(BERTH_ENOTFOUND, "no snapshot matches '%s': the repository has no snapshots yet", ref);
        buf_free(&b);
        catalog_snapshot_list_free(list, n);
        return k;
}

int snapshot_resolve(struct repo *r, const char *ref, struct catalog_snapshot *ret)
{
        const char *at = strchr(ref, '@');
        int k;

        if (at) {
                _cleanup_free_ char *name = xstrndup(ref, (size_t)(at - ref));
                const char *spec = at + 1;
                int64_t before = INT64_MAX;
                if (strcmp(spec, "latest") != 0 && parse_time(spec, &before) < 0)
                        return error_set(EINVAL,
                                         "'%s': after '@' give 'latest' or a time such as 2026-11-22T10:00 "
                                         "(local) or 2026-11-22T09:00:00Z",
                                         ref);
                k = catalog_snapshot_latest(r->catalog, name, before, ret);
                if (k < 0)
                        return k;
                if (k == 0) {
                        if (catalog_snapshot_max_seq(r->catalog, name) > 0)
                                return error_set(BERTH_ENOTFOUND, "snapshot series '%s' has no snapshot at or before %s",
                                                 name, spec);
                        return names_hint(r, ref);
                }
                return 0;
        }

        /* A bare reference may be a name, an id prefix, or both: a volume
         * called 'cafe' or '2024' is also a plausible prefix.  Both lookups
         * run, and a reference that is both is refused rather than guessed. */
        struct catalog_snapshot named = { 0 };
        k = catalog_snapshot_latest(r->catalog, ref, INT64_MAX, &named);
        if (k < 0)
                return k;
        bool have_name = k > 0;
        struct catalog_snapshot *list = NULL;
        size_t n = 0;
        if (is_hex(ref) && strlen(ref) >= 4 && strlen(ref) <= 2 * HASH_LEN) {
                _cleanup_free_ char *lower = xstrdup(ref);
                for (char *p = lower; *p; p++)
                        if (*p >= 'A' && *p <= 'F')
                                *p = (char)(*p - 'A' + 'a');
                k = catalog_snapshot_by_prefix(r->catalog, lower, 11, &list, &n);
                if (k < 0) {
                        catalog_snapshot_clear(&named);
                        return k;
                }
        }
        /* The series' own newest snapshot may be the only one its name
         * prefixes: then both readings agree. */
        if (have_name && n == 1 && strcmp(list[0].id, named.id) == 0) {
                catalog_snapshot_list_free(list, n);
                list = NULL;
                n = 0;
        }
        if (have_name && n > 0) {
                char t[32], t2[32];
                k = error_set(BERTH_EAMBIGUOUS,
                              "'%s' is both the name of a snapshot series (newest %.12s, %s) and the start of the "
                              "id of %s%.12s (%s, %s); use '%s@latest' for the series, or give more of the id",
                              ref, named.id, format_time(named.started, t, sizeof t), n > 1 ? "several snapshots, e.g. " : "",
                              list[0].id, list[0].name, format_time(list[0].started, t2, sizeof t2), ref);
                catalog_snapshot_clear(&named);
                catalog_snapshot_list_free(list, n);
                return k;
        }
        if (have_name) {
                free(list);
                *ret = named;
                return 0;
        }
        if (n == 1) {
                *ret = list[0];
                free(list);
                return 0;
        }
        if (n > 1) {
                k = list_candidates(r, ref, list, n, BERTH_EAMBIGUOUS);
                catalog_snapshot_list_free(list, n);
                return k;
        }
        free(list);
        return names_hint(r, ref);
}
