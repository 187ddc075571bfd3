/* prune.c — the catalog's part of pruning: the mark set, pack usage,
 * condemned packs, and the migration that adds packs.condemned.
 *
 * The mark set is a TEMP table of one connection (temp_store=FILE: it
 * spills to a temporary file, so a repository with more chunks than memory
 * can still be pruned).  A reader's connection may hold it while the
 * writer's connection changes the catalog: the queries that join it with
 * packs and chunks see what was committed when they start.
 */
#include <stdio.h>
#include <string.h>

#include "catalog-private.h"

/* Rows inserted into the mark set per transaction of the TEMP table. */
#define MARK_BATCH 4096

int catalog_prune_migrate(struct catalog *c, bool writer)
{
        /* A forward step of its own, guarded by the column check rather than
         * the schema version: an older berth ignores the column (it then
         * sees condemned packs as packs without chunks, which its check
         * reports as missing once they are deleted: harmless).  NULL: live;
         * else unix seconds of the condemnation. */
        return catalog_ensure_column(c, "packs", "condemned", "ALTER TABLE packs ADD COLUMN condemned INTEGER", writer,
                                     &c->has_condemned);
}

static int need_column(struct catalog *c)
{
        if (c->has_condemned)
                return 0;
        return error_set(EROFS, "catalog %s predates pruning and cannot be upgraded here; open the repository "
                                "for writing once (any backup does)",
                         c->path);
}

int catalog_pack_revive(struct catalog *c, int64_t pack)
{
        if (!c->has_condemned)
                return 0;
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db, "UPDATE packs SET condemned = NULL WHERE id = ? AND condemned IS NOT NULL",
                                    -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "recording a pack");
        sqlite3_bind_int64(st, 1, pack);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return catalog_error(c, rc, "recording a pack");
        if (sqlite3_changes(c->db) > 0)
                log_debug("pack %lld was condemned; written again, it is live again", (long long)pack);
        return 0;
}

static int exec_sql(struct catalog *c, const char *sql, const char *what)
{
        int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
        return rc == SQLITE_OK ? 0 : catalog_error(c, rc, what);
}

int catalog_mark_begin(struct catalog *c)
{
        catalog_mark_end(c);
        int r = exec_sql(c,
                         "PRAGMA temp_store = FILE;"
                         "CREATE TEMP TABLE IF NOT EXISTS prune_marks (hash BLOB PRIMARY KEY) WITHOUT ROWID;"
                         "DELETE FROM temp.prune_marks;",
                         "starting the set of used chunks");
        if (r < 0)
                return r;
        int rc = sqlite3_prepare_v2(c->db, "INSERT OR IGNORE INTO temp.prune_marks (hash) VALUES (?)", -1,
                                    &c->mark_add, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "starting the set of used chunks");
        return 0;
}

int catalog_mark_add(struct catalog *c, const uint8_t id[CATALOG_HASH_LEN])
{
        if (!c->mark_add)
                return error_set(EINVAL, "no mark set: call catalog_mark_begin() first");
        if (c->mark_batch == 0) {
                /* Deferred: a transaction that writes only the TEMP table
                 * takes no write lock on the catalog itself. */
                int r = exec_sql(c, "BEGIN", "recording used chunks");
                if (r < 0)
                        return r;
        }
        sqlite3_reset(c->mark_add);
        sqlite3_bind_blob(c->mark_add, 1, id, CATALOG_HASH_LEN, SQLITE_STATIC);
        int rc = sqlite3_step(c->mark_add);
        sqlite3_reset(c->mark_add);
        if (rc != SQLITE_DONE)
                return catalog_error(c, rc, "recording used chunks");
        int added = sqlite3_changes(c->db) > 0;
        if (++c->mark_batch >= MARK_BATCH) {
                int r = catalog_mark_commit(c);
                if (r < 0)
                        return r;
        }
        return added;
}

int catalog_mark_commit(struct catalog *c)
{
        if (c->mark_batch == 0)
                return 0;
        c->mark_batch = 0;
        int rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
                int r = catalog_error(c, rc, "recording used chunks");
                sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
                return r;
        }
        return 0;
}

void catalog_mark_end(struct catalog *c)
{
        if (c->mark_batch) {
                sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
                c->mark_batch = 0;
        }
        if (c->mark_add) {
                sqlite3_finalize(c->mark_add);
                c->mark_add = NULL;
                sqlite3_exec(c->db, "DROP TABLE IF EXISTS temp.prune_marks", NULL, NULL, NULL);
        }
}

int catalog_pack_max_id(struct catalog *c, int64_t *ret)
{
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db, "SELECT coalesce(max(id), 0) FROM packs", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "listing packs");
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                *ret = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return rc == SQLITE_ROW ? 0 : catalog_error(c, rc, "listing packs");
}

/* One pack's chunks in record order with their marks: counts, and each used
 * chunk's share of its record's stored length (format-2 records hold several
 * chunks, all rows of one record carry its offset and stored length; format 1:
 * one chunk per record).  Summed here, not in SQL: a correlated sum over
 * the pack's records per chunk grew with the square of the chunks in a pack
 * (minutes for a pack of small files). */
static int measure_pack(struct catalog *c, sqlite3_stmt *st, struct catalog_pack_usage *u)
{
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, u->id);
        double used = 0;
        int rc;
        bool more = (rc = sqlite3_step(st)) == SQLITE_ROW;
        while (more) {
                /* one record: its rows, then the next record's first row */
                int64_t off = sqlite3_column_int64(st, 0);
                double plain = 0, marked = 0;
                do {
                        double raw = (double)sqlite3_column_int64(st, 1);
                        plain += raw;
                        u->chunks++;
                        if (sqlite3_column_int(st, 3)) {
                                u->used_chunks++;
                                marked += (double)sqlite3_column_int64(st, 2) * raw;
                        }
                        more = (rc = sqlite3_step(st)) == SQLITE_ROW;
                } while (more && sqlite3_column_int64(st, 0) == off);
                used += marked / (plain > 1 ? plain : 1);
        }
        if (rc != SQLITE_DONE)
                return catalog_error(c, rc, "measuring pack usage");
        u->used_bytes = (uint64_t)used;
        return 0;
}

int catalog_pack_usage_foreach(struct catalog *c, int64_t after, int64_t max_id,
                               int (*fn)(void *ud, const struct catalog_pack_usage *u), void *ud)
{
        int r = 0;
        if (!c->mark_add)
                return error_set(EINVAL, "no mark set: call catalog_mark_begin() first");
        /* A catalog without the condemned column (a reader of one no writer
         * has upgraded yet) has no condemned pack. */
        _cleanup_free_ char *sql = xasprintf("SELECT id, hash, size FROM packs WHERE id > ? AND id <= ?%s ORDER BY id",
                                             c->has_condemned ? " AND condemned IS NULL" : "");
        sqlite3_stmt *st, *chunks;
        int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "measuring pack usage");
        rc = sqlite3_prepare_v2(c->db,
                                "SELECT c.offset, c.raw_len, c.stored_len, m.hash IS NOT NULL FROM chunks c"
                                " LEFT JOIN temp.prune_marks m ON m.hash = c.hash WHERE c.pack = ? ORDER BY c.offset",
                                -1, &chunks, NULL);
        if (rc != SQLITE_OK) {
                sqlite3_finalize(st);
                return catalog_error(c, rc, "measuring pack usage");
        }
        sqlite3_bind_int64(st, 1, after);
        sqlite3_bind_int64(st, 2, max_id);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct catalog_pack_usage u = {
                        .id = sqlite3_column_int64(st, 0),
                        .size = (uint64_t)sqlite3_column_int64(st, 2),
                };
                if (sqlite3_column_bytes(st, 1) != CATALOG_HASH_LEN) {
                        r = error_set(BERTH_ECORRUPT, "catalog %s: a pack row has a malformed hash", c->path);
                        break;
                }
                memcpy(u.hash, sqlite3_column_blob(st, 1), CATALOG_HASH_LEN);
                if ((r = measure_pack(c, chunks, &u)) < 0)
                        break;
                r = fn(ud, &u);
                if (r != 0)
                        break;
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = catalog_error(c, rc, "measuring pack usage");
        sqlite3_finalize(chunks);
        sqlite3_finalize(st);
        return r < 0 ? r : 0;
}

int64_t catalog_marked_in_pack(struct catalog *c, int64_t pack)
{
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db,
                                    "SELECT count(*) FROM chunks c JOIN temp.prune_marks m ON m.hash = c.hash"
                                    " WHERE c.pack = ?",
                                    -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "measuring pack usage");
        sqlite3_bind_int64(st, 1, pack);
        rc = sqlite3_step(st);
        int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
        sqlite3_finalize(st);
        return rc == SQLITE_ROW ? n : catalog_error(c, rc, "measuring pack usage");
}

int catalog_marked_foreach_in_pack(struct catalog *c, int64_t pack,
                                   int (*fn)(void *ud, const struct catalog_chunk *ch), void *ud)
{
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT c.hash, c.pack, c.offset, c.stored_len, c.raw_len, c.flags, %s%s"
                 " FROM chunks c JOIN temp.prune_marks m ON m.hash = c.hash"
                 " WHERE c.pack = ? ORDER BY c.offset",
                 c->has_inner ? "c." : "", catalog_inner_col(c));
        return catalog_chunk_rows_foreach(c, sql, pack, fn, ud, "listing a pack's used chunks");
}

/* Runs one statement with up to two integer parameters. */
static int run_int(struct catalog *c, const char *sql, int64_t a, int64_t b, int nparams, const char *what)
{
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, what);
        sqlite3_bind_int64(st, 1, a);
        if (nparams > 1)
                sqlite3_bind_int64(st, 2, b);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : catalog_error(c, rc, what);
}

int64_t catalog_pack_condemn(struct catalog *c, int64_t pack, int64_t when)
{
        int r = need_column(c);
        if (r == 0)
                r = run_int(c, "DELETE FROM chunks WHERE pack = ?", pack, 0, 1, "condemning a pack");
        if (r < 0)
                return r;
        int64_t n = sqlite3_changes(c->db);
        r = run_int(c, "UPDATE packs SET condemned = ?2 WHERE id = ?1", pack, when, 2, "condemning a pack");
        return r < 0 ? r : n;
}

int catalog_pack_published(struct catalog *c, int64_t pack, int64_t when)
{
        int r = need_column(c);
        if (r == 0)
                r = run_int(c, "UPDATE packs SET condemned = ?2 WHERE id = ?1 AND condemned = 9223372036854775807",
                            pack, when, 2, "recording a published condemnation");
        return r < 0 ? r : sqlite3_changes(c->db) > 0;
}

int catalog_condemned_foreach(struct catalog *c, int64_t before, size_t max,
                              int (*fn)(void *ud, int64_t id, const uint8_t hash[CATALOG_HASH_LEN], uint64_t size),
                              void *ud)
{
        if (!c->has_condemned)
                return 0;
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db,
                                    "SELECT id, hash, size FROM packs WHERE condemned IS NOT NULL AND condemned <= ?"
                                    " ORDER BY condemned, id LIMIT ?",
                                    -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "listing condemned packs");
        sqlite3_bind_int64(st, 1, before);
        sqlite3_bind_int64(st, 2, (int64_t)MIN(max, (size_t)INT64_MAX));
        int r = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (sqlite3_column_bytes(st, 1) != CATALOG_HASH_LEN)
                        continue;
                r = fn(ud, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1),
                       (uint64_t)sqlite3_column_int64(st, 2));
                if (r < 0)
                        break;
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = catalog_error(c, rc, "listing condemned packs");
        sqlite3_finalize(st);
        return r < 0 ? r : 0;
}

int catalog_pack_drop(struct catalog *c, int64_t pack)
{
        int r = catalog_begin(c);
        if (r == 0)
                r = run_int(c, "DELETE FROM chunks WHERE pack = ?", pack, 0, 1, "forgetting a pack");
        if (r == 0)
                r = run_int(c, "DELETE FROM packs WHERE id = ? AND condemned IS NOT NULL", pack, 0, 1,
                            "forgetting a pack");
        if (r < 0) {
                catalog_rollback(c);
                return r;
        }
        return catalog_commit(c);
}
