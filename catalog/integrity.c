/* integrity.c — is catalog.db itself sound?  SQLite's integrity_check
 * (every page, every index against its table), foreign_key_check (no
 * chunk of a pack, no snapshot of a name, that is not there), and paths
 * whose text disagrees with their parent's (no index covers it).  Whether
 * the rows agree with the packs is snapshot/check.c's to see. */
#include <stdio.h>
#include <string.h>

#include "catalog-private.h"

#define MAX_REPORTED 20 /* as in integrity_check(20) */

int catalog_integrity_check(struct catalog *c, void (*fn)(void *ud, const char *msg), void *ud)
{
        sqlite3_stmt *st;
        int found = 0, rc;
        char msg[512];

        rc = sqlite3_prepare_v2(c->db, "PRAGMA integrity_check(20)", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "checking its integrity");
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *line = (const char *)sqlite3_column_text(st, 0);
                if (line && strcmp(line, "ok") == 0)
                        continue;
                snprintf(msg, sizeof msg, "%s", line ? line : "(no detail)");
                fn(ud, msg);
                found++;
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return found ? found : catalog_error(c, rc, "checking its integrity");
        if (found)
                return found; /* the foreign keys of a broken file say nothing more */

        rc = sqlite3_prepare_v2(c->db, "PRAGMA foreign_key_check", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "checking its references");
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (found++ >= MAX_REPORTED)
                        continue;
                const char *table = (const char *)sqlite3_column_text(st, 0);
                const char *parent = (const char *)sqlite3_column_text(st, 2);
                snprintf(msg, sizeof msg, "row %lld of table %s refers to a row of %s that is not there",
                         (long long)sqlite3_column_int64(st, 1), table ? table : "?", parent ? parent : "?");
                fn(ud, msg);
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE && !found)
                return catalog_error(c, rc, "checking its references");
        if (found)
                goto out;

        /* Rows no index covers: a path's whole text (what find prints)
         * must be its parent's and its own name. */
        rc = sqlite3_prepare_v2(c->db,
                                "SELECT p.id FROM paths p LEFT JOIN paths q ON q.id = p.parent WHERE p.parent != 0 AND"
                                " (q.id IS NULL OR p.path != CAST(CASE WHEN q.parent = 0 THEN p.name"
                                " ELSE q.path || '/' || p.name END AS BLOB))",
                                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "checking its paths");
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                if (found++ < MAX_REPORTED) {
                        snprintf(msg, sizeof msg, "path row %lld does not agree with its parent directory's",
                                 (long long)sqlite3_column_int64(st, 0));
                        fn(ud, msg);
                }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE && !found)
                return catalog_error(c, rc, "checking its paths");
out:
        if (found > MAX_REPORTED) {
                snprintf(msg, sizeof msg, "and %d more such rows", found - MAX_REPORTED);
                fn(ud, msg);
        }
        return found;
}
