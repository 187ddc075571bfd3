/* query.c — reading the file index: ls, find and whole-snapshot rows. */
#include <string.h>

#include "catalog-private.h"

#define ROW_COLUMNS "f.type, f.mode, f.uid, f.gid, f.size, f.mtime, f.content, f.meta, f.flags, f.link"
#define VALID_AT(seq) "f.since <= " seq " AND (f.until IS NULL OR f.until > " seq ")"

/* Fills f from ROW_COLUMNS starting at column col; the path is the caller's. */
static void row_to_file(sqlite3_stmt *st, int col, struct catalog_file *f)
{
        f->type = (uint8_t)sqlite3_column_int(st, col);
        f->mode = (uint32_t)sqlite3_column_int64(st, col + 1);
        f->uid = (uint32_t)sqlite3_column_int64(st, col + 2);
        f->gid = (uint32_t)sqlite3_column_int64(st, col + 3);
        f->size = (uint64_t)sqlite3_column_int64(st, col + 4);
        f->mtime = sqlite3_column_int64(st, col + 5);
        if (sqlite3_column_bytes(st, col + 6) == sizeof f->content)
                memcpy(f->content, sqlite3_column_blob(st, col + 6), sizeof f->content);
        if (sqlite3_column_bytes(st, col + 7) == sizeof f->meta)
                memcpy(f->meta, sqlite3_column_blob(st, col + 7), sizeof f->meta);
        f->flags = (uint32_t)sqlite3_column_int64(st, col + 8);
        f->link = sqlite3_column_type(st, col + 9) == SQLITE_NULL ? NULL : sqlite3_column_blob(st, col + 9);
        f->link_len = (size_t)sqlite3_column_bytes(st, col + 9);
        if (f->link && f->link_len == 0)
                f->link = "";
}

static void row_path(sqlite3_stmt *st, int col, struct catalog_file *f)
{
        f->path = sqlite3_column_blob(st, col);
        f->path_len = (size_t)sqlite3_column_bytes(st, col);
        if (!f->path)
                f->path = "";
}

int catalog_ls(struct catalog *c, const char *name, int64_t seq, const char *dir, size_t dir_len,
               int (*fn)(void *ud, const struct catalog_file *f), void *ud)
{
        int64_t name_id, path_id;
        int r = catalog_name_id(c, name, false, &name_id);
        if (r <= 0)
                return r;
        r = catalog_path_id(c, dir, dir_len, false, &path_id);
        if (r <= 0)
                return r;

        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db,
                                    "SELECT p.path, " ROW_COLUMNS " FROM files f JOIN paths p ON p.id = f.path"
                                    " WHERE f.path = ?1 AND f.name = ?2 AND " VALID_AT("?3"),
                                    -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "listing");
        sqlite3_bind_int64(st, 1, path_id);
        sqlite3_bind_int64(st, 2, name_id);
        sqlite3_bind_int64(st, 3, seq);
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
                sqlite3_finalize(st);
                return rc == SQLITE_DONE ? 0 : catalog_error(c, rc, "listing");
        }
        struct catalog_file self = { 0 };
        row_path(st, 0, &self);
        row_to_file(st, 1, &self);
        if (self.type != 1 /* ENTRY_DIR */) {
                r = fn(ud, &self);
                sqlite3_finalize(st);
                return r < 0 ? r : 1;
        }
        sqlite3_finalize(st);

        rc = sqlite3_prepare_v2(c->db,
                                "SELECT p.path, " ROW_COLUMNS " FROM paths p JOIN files f ON f.path = p.id"
                                " WHERE p.parent = ?1 AND f.name = ?2 AND " VALID_AT("?3") " ORDER BY p.name",
                                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "listing");
        sqlite3_bind_int64(st, 1, path_id);
        sqlite3_bind_int64(st, 2, name_id);
        sqlite3_bind_int64(st, 3, seq);
        r = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct catalog_file f = { 0 };
                row_path(st, 0, &f);
                row_to_file(st, 1, &f);
                r = fn(ud, &f);
                if (r < 0)
                        break;
        }
        if (r >= 0 && rc != SQLITE_DONE)
                r = catalog_error(c, rc, "listing");
        sqlite3_finalize(st);
        return r < 0 ? r : 1;
}

int catalog_find(struct catalog *c, const char *pattern, const char *name,
                 int (*fn)(void *ud, const struct catalog_hit *h), void *ud)
{
        /* A pattern without '/' matches names; the paths_by_name index then
         * narrows exact names, and GLOB scans names otherwise. */
        bool whole = strchr(pattern, '/') != NULL;
        _cleanup_free_ char *sql = xasprintf(
                "SELECT s.hash, n.name, s.started, p.path, " ROW_COLUMNS
                " FROM paths p JOIN files f ON f.path = p.id"
                " JOIN snapshots s ON s.name = f.name AND s.seq >= f.since AND (f.until IS NULL OR s.seq < f.until)"
                " JOIN names n ON n.id = s.name"
                " WHERE CAST(p.%s AS TEXT) GLOB ?1 AND (?2 IS NULL OR n.name = ?2)"
                " ORDER BY s.started DESC, s.id DESC, p.path",
                whole ? "path" : "name");
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "finding");
        sqlite3_bind_text(st, 1, pattern, -1, SQLITE_STATIC);
        if (name)
                sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        int r = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct catalog_hit h = {
                        .snapshot = (const char *)sqlite3_column_text(st, 0),
                        .name = (const char *)sqlite3_column_text(st, 1),
                        .started = sqlite3_column_int64(st, 2),
                };
                row_path(st, 3, &h.file);
                row_to_file(st, 4, &h.file);
                r = fn(ud, &h);
                if (r < 0)
                        break;
        }
        if (r >= 0 && rc != SQLITE_DONE)
                r = catalog_error(c, rc, "finding");
        sqlite3_finalize(st);
        return r < 0 ? r : 0;
}

int catalog_diff(struct catalog *c, const char *name_a, int64_t seq_a, const char *name_b, int64_t seq_b,
                 int (*fn)(void *ud, const struct catalog_file *a, const struct catalog_file *b), void *ud)
{
        int64_t na, nb;
        int r = catalog_name_id(c, name_a, false, &na);
        if (r <= 0)
                return r < 0 ? r : error_set(BERTH_ENOTFOUND, "no snapshots named '%s'", name_a);
        r = catalog_name_id(c, name_b, false, &nb);
        if (r <= 0)
                return r < 0 ? r : error_set(BERTH_ENOTFOUND, "no snapshots named '%s'", name_b);

        /* Each side's rows probe the other side through the primary key
         * (name, path, since), so the cost is linear in the rows compared.
         * Within one series a version row is shared by every snapshot it is
         * valid in, so only rows valid in exactly one of the two snapshots
         * can differ: the others are left out first. */
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(
                c->db,
                "WITH a AS (SELECT * FROM files f WHERE f.name = ?1 AND " VALID_AT("?2")
                "           AND NOT (?5 AND " VALID_AT("?4") ")),"
                "     b AS (SELECT * FROM files f WHERE f.name = ?3 AND " VALID_AT("?4")
                "           AND NOT (?5 AND " VALID_AT("?2") "))"
                " SELECT p.path,"
                "  1, a.type, a.mode, a.uid, a.gid, a.size, a.mtime, a.content, a.meta, a.flags, a.link,"
                "  f.since, f.type, f.mode, f.uid, f.gid, f.size, f.mtime, f.content, f.meta, f.flags, f.link"
                " FROM a JOIN paths p ON p.id = a.path"
                " LEFT JOIN files f ON f.name = ?3 AND f.path = a.path AND " VALID_AT("?4")
                " WHERE f.since IS NULL OR a.type != f.type OR a.mode != f.mode OR a.uid != f.uid"
                "  OR a.gid != f.gid OR a.size != f.size OR a.mtime != f.mtime OR a.content != f.content"
                "  OR a.meta != f.meta OR a.flags != f.flags"
                " UNION ALL"
                " SELECT p.path,"
                "  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
                "  1, b.type, b.mode, b.uid, b.gid, b.size, b.mtime, b.content, b.meta, b.flags, b.link"
                " FROM b JOIN paths p ON p.id = b.path"
                " WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.name = ?1 AND f.path = b.path AND "
                VALID_AT("?2") ")"
                " ORDER BY 1",
                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "comparing snapshots");
        sqlite3_bind_int64(st, 1, na);
        sqlite3_bind_int64(st, 2, seq_a);
        sqlite3_bind_int64(st, 3, nb);
        sqlite3_bind_int64(st, 4, seq_b);
        sqlite3_bind_int(st, 5, na == nb);
        r = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct catalog_file fa = { 0 }, fb = { 0 };
                bool has_a = sqlite3_column_type(st, 1) != SQLITE_NULL;
                bool has_b = sqlite3_column_type(st, 12) != SQLITE_NULL;
                row_path(st, 0, &fa);
                row_path(st, 0, &fb);
                if (has_a)
                        row_to_file(st, 2, &fa);
                if (has_b)
                        row_to_file(st, 13, &fb);
                r = fn(ud, has_a ? &fa : NULL, has_b ? &fb : NULL);
                if (r < 0)
                        break;
        }
        if (r >= 0 && rc != SQLITE_DONE)
                r = catalog_error(c, rc, "comparing snapshots");
        sqlite3_finalize(st);
        return r < 0 ? r : 0;
}
