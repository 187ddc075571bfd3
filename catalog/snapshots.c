/* snapshots.c — snapshot rows and the names they belong to. */
#include <stdio.h>
#include <string.h>

#include "catalog-private.h"

#define SNAP_COLUMNS                                                                                  \
        "s.hash, n.name, s.seq, s.host, s.source, s.started, s.finished, s.status, s.files, s.dirs, " \
        "s.bytes, s.files_read, s.files_reused, s.bytes_read, s.bytes_added, s.warnings, s.parent, s.meta"

void catalog_snapshot_clear(struct catalog_snapshot *s)
{
        free(s->name);
        free(s->host);
        free(s->source);
        free(s->status);
        free(s->parent);
        free(s->meta);
        *s = (struct catalog_snapshot){ 0 };
}

void catalog_snapshot_list_free(struct catalog_snapshot *list, size_t n)
{
        for (size_t i = 0; i < n; i++)
                catalog_snapshot_clear(&list[i]);
        free(list);
}

static char *col_str(sqlite3_stmt *st, int i)
{
        const unsigned char *t = sqlite3_column_text(st, i);
        return t ? xstrdup((const char *)t) : NULL;
}

static void snapshot_from_row(sqlite3_stmt *st, struct catalog_snapshot *s)
{
        const unsigned char *h = sqlite3_column_text(st, 0);
        snprintf(s->id, sizeof s->id, "%s", h ? (const char *)h : "");
        s->name = col_str(st, 1);
        s->seq = sqlite3_column_int64(st, 2);
        s->host = col_str(st, 3);
        s->source = col_str(st, 4);
        s->started = sqlite3_column_int64(st, 5);
        s->finished = sqlite3_column_int64(st, 6);
        s->status = col_str(st, 7);
        s->files = (uint64_t)sqlite3_column_int64(st, 8);
        s->dirs = (uint64_t)sqlite3_column_int64(st, 9);
        s->bytes = (uint64_t)sqlite3_column_int64(st, 10);
        s->files_read = (uint64_t)sqlite3_column_int64(st, 11);
        s->files_reused = (uint64_t)sqlite3_column_int64(st, 12);
        s->bytes_read = (uint64_t)sqlite3_column_int64(st, 13);
        s->bytes_added = (uint64_t)sqlite3_column_int64(st, 14);
        s->warnings = (uint64_t)sqlite3_column_int64(st, 15);
        s->parent = col_str(st, 16);
        s->meta = col_str(st, 17);
}

int catalog_name_id(struct catalog *c, const char *name, bool create, int64_t *ret)
{
        sqlite3_stmt *st = catalog_stmt(c, STMT_NAME_ID, "SELECT id FROM names WHERE name = ?");
        if (!st)
                return -EIO;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                *ret = sqlite3_column_int64(st, 0);
                sqlite3_reset(st);
                return 1;
        }
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
                return catalog_error(c, rc, "looking up a name");
        if (!create)
                return 0;
        st = catalog_stmt(c, STMT_NAME_ADD, "INSERT INTO names (name) VALUES (?)");
        if (!st)
                return -EIO;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
                return catalog_error(c, rc, "recording a name");
        *ret = sqlite3_last_insert_rowid(c->db);
        return 1;
}

int64_t catalog_snapshot_max_seq(struct catalog *c, const char *name)
{
        sqlite3_stmt *st = catalog_stmt(c, STMT_SNAP_MAXSEQ,
                                        "SELECT coalesce(max(s.seq), 0) FROM snapshots s JOIN names n ON n.id = s.name"
                                        " WHERE n.name = ?");
        if (!st)
                return -EIO;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
        sqlite3_reset(st);
        if (rc != SQLITE_ROW)
                return catalog_error(c, rc, "reading the newest snapshot");
        return v;
}

int catalog_snapshot_add(struct catalog *c, struct catalog_snapshot *s)
{
        int64_t name_id;
        int r = catalog_name_id(c, s->name, true, &name_id);
        if (r < 0)
                return r;
        if (s->seq == 0) {
                int64_t m = catalog_snapshot_max_seq(c, s->name);
                if (m < 0)
                        return (int)m;
                s->seq = m + 1;
        }
        sqlite3_stmt *st = catalog_stmt(
                c, STMT_SNAP_ADD,
                "INSERT INTO snapshots (hash, name, seq, host, source, started, finished, status, files, dirs,"
                " bytes, files_read, files_reused, bytes_read, bytes_added, warnings, parent, meta)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        if (!st)
                return -EIO;
        sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, name_id);
        sqlite3_bind_int64(st, 3, s->seq);
        sqlite3_bind_text(st, 4, s->host ? s->host : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, s->source ? s->source : "", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, s->started);
        sqlite3_bind_int64(st, 7, s->finished);
        sqlite3_bind_text(st, 8, s->status ? s->status : "complete", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 9, (int64_t)s->files);
        sqlite3_bind_int64(st, 10, (int64_t)s->dirs);
        sqlite3_bind_int64(st, 11, (int64_t)s->bytes);
        sqlite3_bind_int64(st, 12, (int64_t)s->files_read);
        sqlite3_bind_int64(st, 13, (int64_t)s->files_reused);
        sqlite3_bind_int64(st, 14, (int64_t)s->bytes_read);
        sqlite3_bind_int64(st, 15, (int64_t)s->bytes_added);
        sqlite3_bind_int64(st, 16, (int64_t)s->warnings);
        if (s->parent)
                sqlite3_bind_text(st, 17, s->parent, -1, SQLITE_STATIC);
        if (s->meta)
                sqlite3_bind_text(st, 18, s->meta, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
                return catalog_error(c, rc, "recording a snapshot");
        /* In the same transaction: once recorded it is no longer pending,
         * nor being forgotten (recorded again: copied back in). */
        int k = catalog_snapshot_intent_drop(c, s->id);
        return k < 0 ? k : catalog_snapshot_forget_done(c, s->id);
}

/* Runs one statement with no result rows: ?1 is the text arg, or the
 * integer i1 when arg is NULL; ?2 is i2 (when the statement has it). */
static int exec_args(struct catalog *c, const char *sql, const char *arg, int64_t i1, int64_t i2, const char *what)
{
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, what);
        if (arg)
                sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
        else
                sqlite3_bind_int64(st, 1, i1);
        sqlite3_bind_int64(st, 2, i2);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return catalog_error(c, rc, what);
        return 0;
}

static int exec_text(struct catalog *c, const char *sql, const char *arg, int64_t i2, const char *what)
{
        return exec_args(c, sql, arg, 0, i2, what);
}

int catalog_snapshot_intend(struct catalog *c, const char *id)
{
        return exec_text(c, "INSERT OR REPLACE INTO snapshot_intents (hash, created) VALUES (?1, ?2)", id, now_ns(),
                         "announcing a snapshot");
}

int catalog_snapshot_intent_drop(struct catalog *c, const char *id)
{
        return exec_text(c, "DELETE FROM snapshot_intents WHERE hash = ?1", id, 0, "forgetting a snapshot");
}

/* 1 when the query with the text parameter ?1 returns a row, 0 when not. */
static int row_exists(struct catalog *c, const char *sql, const char *arg, const char *what)
{
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, what);
        sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE)
                return 0;
        return catalog_error(c, rc, what);
}

/* 1 when the table exists: a reader may open a catalog older than it. */
static int has_table(struct catalog *c, const char *table)
{
        return row_exists(c, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1", table,
                          "reading its schema");
}

/* The ids a one-column query of `table` returns (none when the table does
 * not exist: a reader may open a catalog older than it). */
static int id_list(struct catalog *c, const char *table, const char *sql, const char *what, char ***ret,
                   size_t *ret_n)
{
        int k = has_table(c, table);
        if (k <= 0) {
                if (k == 0) {
                        *ret = NULL;
                        *ret_n = 0;
                }
                return k;
        }
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, what);
        char **list = NULL;
        size_t n = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const unsigned char *h = sqlite3_column_text(st, 0);
                if (!h)
                        continue;
                list = xrealloc(list, (n + 1) * sizeof *list);
                list[n++] = xstrdup((const char *)h);
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
                catalog_id_list_free(list, n);
                return catalog_error(c, rc, what);
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

int catalog_snapshot_intents(struct catalog *c, char ***ret, size_t *ret_n)
{
        return id_list(c, "snapshot_intents", "SELECT hash FROM snapshot_intents ORDER BY created",
                       "listing announced snapshots", ret, ret_n);
}

void catalog_id_list_free(char **list, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(list[i]);
        free(list);
}

int catalog_snapshot_known(struct catalog *c, const char *id)
{
        sqlite3_stmt *st = catalog_stmt(c, STMT_SNAP_KNOWN, "SELECT 1 FROM snapshots WHERE hash = ?");
        if (!st)
                return -EIO;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE)
                return 0;
        return catalog_error(c, rc, "looking up a snapshot");
}

/* Runs a snapshot query whose parameters are bound by the caller's text
 * arguments (NULL arguments bind NULL), collecting every row. */
static int snapshot_query(struct catalog *c, const char *sql, const char *a1, const char *a2, int64_t i3,
                          struct catalog_snapshot **ret, size_t *ret_n)
{
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "listing snapshots");
        if (a1)
                sqlite3_bind_text(st, 1, a1, -1, SQLITE_STATIC);
        if (a2)
                sqlite3_bind_text(st, 2, a2, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, i3);

        struct catalog_snapshot *list = NULL;
        size_t n = 0, cap = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (n == cap) {
                        cap = cap ? cap * 2 : 16;
                        list = xrealloc(list, cap * sizeof *list);
                }
                list[n] = (struct catalog_snapshot){ 0 };
                snapshot_from_row(st, &list[n++]);
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
                catalog_snapshot_list_free(list, n);
                return catalog_error(c, rc, "listing snapshots");
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

int catalog_snapshot_list(struct catalog *c, const char *name, struct catalog_snapshot **ret, size_t *ret_n)
{
        return snapshot_query(c,
                              "SELECT " SNAP_COLUMNS " FROM snapshots s JOIN names n ON n.id = s.name"
                              " WHERE ?1 IS NULL OR n.name = ?1 ORDER BY s.started, s.id",
                              name, NULL, 0, ret, ret_n);
}

int catalog_snapshot_by_prefix(struct catalog *c, const char *prefix, size_t max, struct catalog_snapshot **ret,
                               size_t *ret_n)
{
        /* Ids are lower-case hex: a range query uses the unique index and
         * needs no escaping of LIKE wildcards. */
        _cleanup_free_ char *upper = xasprintf("%s~", prefix);
        return snapshot_query(c,
                              "SELECT " SNAP_COLUMNS " FROM snapshots s JOIN names n ON n.id = s.name"
                              " WHERE s.hash >= ?1 AND s.hash < ?2 ORDER BY s.started LIMIT ?3",
                              prefix, upper, (int64_t)max, ret, ret_n);
}

int catalog_snapshot_latest(struct catalog *c, const char *name, int64_t before, struct catalog_snapshot *ret)
{
        struct catalog_snapshot *list;
        size_t n;
        int r = snapshot_query(c,
                               "SELECT " SNAP_COLUMNS " FROM snapshots s JOIN names n ON n.id = s.name"
                               " WHERE n.name = ?1 AND s.started <= ?3 ORDER BY s.started DESC, s.seq DESC LIMIT 1",
                               name, NULL, before, &list, &n);
        if (r < 0)
                return r;
        if (n == 0) {
                free(list);
                return 0;
        }
        *ret = list[0];
        free(list);
        return 1;
}

/* ---- forgetting and protecting snapshots ---------------------------------------- */

static int exec_ints(struct catalog *c, const char *sql, int64_t i1, int64_t i2, const char *what)
{
        return exec_args(c, sql, NULL, i1, i2, what);
}

/* The file index rows of name_id once snapshot `seq` is gone (its row
 * deleted already, in the caller's transaction). */
static int files_forget_seq(struct catalog *c, int64_t name_id, int64_t seq)
{
        const char *what = "updating the file index";
        /* Only rows valid in seq can have lost their last snapshot. */
        int k = exec_ints(c,
                          "DELETE FROM files WHERE name = ?1 AND since <= ?2 AND (until IS NULL OR until > ?2)"
                          " AND NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.name = ?1 AND s.seq >= files.since"
                          "                 AND (files.until IS NULL OR s.seq < files.until))",
                          name_id, seq, what);
        if (k < 0)
                return k;
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db, "SELECT coalesce(max(seq), 0) FROM snapshots WHERE name = ?1", -1, &st,
                                    NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, what);
        sqlite3_bind_int64(st, 1, name_id);
        rc = sqlite3_step(st);
        int64_t newest = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        sqlite3_finalize(st);
        if (rc != SQLITE_ROW)
                return catalog_error(c, rc, what);
        if (seq < newest)
                return 0;
        /* The newest is gone: the one before it (seq `newest`) becomes the
         * series' current state, which the next backup is indexed against
         * (under seq newest + 1, the number just freed): its rows are
         * current again, and nothing may be left that claims later seqs. */
        k = exec_ints(c, "DELETE FROM files WHERE name = ?1 AND since > ?2", name_id, newest, what);
        if (k == 0)
                k = exec_ints(c, "UPDATE files SET until = NULL WHERE name = ?1 AND until > ?2", name_id, newest,
                              what);
        return k;
}

int catalog_snapshot_remove(struct catalog *c, const char *id)
{
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db, "SELECT name, seq FROM snapshots WHERE hash = ?1", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "looking up a snapshot");
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        int64_t name_id = 0, seq = 0;
        if (rc == SQLITE_ROW) {
                name_id = sqlite3_column_int64(st, 0);
                seq = sqlite3_column_int64(st, 1);
        }
        sqlite3_finalize(st);
        if (rc == SQLITE_DONE)
                return 0;
        if (rc != SQLITE_ROW)
                return catalog_error(c, rc, "looking up a snapshot");

        int k = catalog_begin(c);
        if (k < 0)
                return k;
        k = exec_text(c, "DELETE FROM snapshots WHERE hash = ?1", id, 0, "forgetting a snapshot");
        if (k == 0)
                k = files_forget_seq(c, name_id, seq);
        if (k == 0)
                k = exec_text(c, "DELETE FROM snapshot_keep WHERE hash = ?1", id, 0, "forgetting a snapshot");
        if (k == 0)
                k = exec_text(c, "INSERT OR REPLACE INTO snapshot_forgets (hash, created) VALUES (?1, ?2)", id,
                              now_ns(), "forgetting a snapshot");
        if (k == 0)
                k = catalog_snapshot_intent_drop(c, id);
        if (k == 0)
                k = catalog_commit(c);
        else
                catalog_rollback(c);
        return k < 0 ? k : 1;
}

int catalog_snapshot_forgets(struct catalog *c, char ***ret, size_t *ret_n)
{
        return id_list(c, "snapshot_forgets", "SELECT hash FROM snapshot_forgets ORDER BY created",
                       "listing forgotten snapshots", ret, ret_n);
}

int catalog_snapshot_forget_done(struct catalog *c, const char *id)
{
        return exec_text(c, "DELETE FROM snapshot_forgets WHERE hash = ?1", id, 0, "forgetting a snapshot");
}

/* 1 when `table` (hash, ...) has a row for id. */
static int id_in(struct catalog *c, const char *table, const char *sql, const char *id)
{
        int k = has_table(c, table);
        return k <= 0 ? k : row_exists(c, sql, id, "looking up a snapshot");
}

int catalog_snapshot_forgetting(struct catalog *c, const char *id)
{
        return id_in(c, "snapshot_forgets", "SELECT 1 FROM snapshot_forgets WHERE hash = ?1", id);
}

int catalog_keep_get(struct catalog *c, const char *id)
{
        return id_in(c, "snapshot_keep", "SELECT 1 FROM snapshot_keep WHERE hash = ?1", id);
}

int catalog_keep_set(struct catalog *c, const char *id, bool keep)
{
        int k = keep ? exec_text(c, "INSERT OR IGNORE INTO snapshot_keep (hash, created) VALUES (?1, ?2)", id,
                                 now_ns(), "protecting a snapshot")
                     : exec_text(c, "DELETE FROM snapshot_keep WHERE hash = ?1", id, 0,
                                 "lifting a snapshot's protection");
        return k < 0 ? k : sqlite3_changes(c->db) > 0;
}

int catalog_keep_list(struct catalog *c, char ***ret, size_t *ret_n)
{
        return id_list(c, "snapshot_keep", "SELECT hash FROM snapshot_keep ORDER BY hash",
                       "listing protected snapshots", ret, ret_n);
}
