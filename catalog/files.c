/* files.c — the file index: interned paths and per-version file rows. */
#include <string.h>

#include "catalog-private.h"

struct catalog_index {
        struct catalog *c;
        int64_t name_id;
        int64_t seq;
        sqlite3_stmt *close_row;
        sqlite3_stmt *insert_row;
        /* Consecutive entries of a depth-first walk share their parent:
         * remember the last parent so most lookups are one query. */
        struct buf last_parent;
        int64_t last_parent_id;
};

/* The id of child `name` of `parent`, 1 when found, 0 when not. */
static int child_lookup(struct catalog *c, int64_t parent, const char *name, size_t len, int64_t *ret)
{
        sqlite3_stmt *st = catalog_stmt(c, STMT_PATH_FIND, "SELECT id FROM paths WHERE parent = ? AND name = ?");
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, parent);
        sqlite3_bind_blob(st, 2, len ? name : "", (int)len, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                *ret = sqlite3_column_int64(st, 0);
                sqlite3_reset(st);
                return 1;
        }
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
                return catalog_error(c, rc, "looking up a path");
        return 0;
}

/* Interns child `name` of `parent` (whose own path is path[0..len) minus
 * the name); 1 when added, 0 when it was there. */
static int child_add(struct catalog *c, int64_t parent, const char *path, size_t len, size_t cut, int64_t *ret)
{
        /* Most paths of a new snapshot are new or known: try the insert
         * first and look up only when it was known. */
        sqlite3_stmt *st = catalog_stmt(c, STMT_PATH_ADD,
                                        "INSERT OR IGNORE INTO paths (parent, name, path) VALUES (?, ?, ?)");
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, parent);
        sqlite3_bind_blob(st, 2, len > cut ? path + cut : "", (int)(len - cut), SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, len ? path : "", (int)len, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
                return catalog_error(c, rc, "recording a path");
        if (sqlite3_changes(c->db) == 0)
                return child_lookup(c, parent, path + cut, len - cut, ret) > 0 ? 0 : -EIO;
        *ret = sqlite3_last_insert_rowid(c->db);
        return 1;
}

int catalog_path_id(struct catalog *c, const char *path, size_t len, bool create, int64_t *ret)
{
        /* Component by component from the root ("" under parent 0). */
        size_t cut = len;
        while (cut > 0 && path[cut - 1] != '/')
                cut--;
        int64_t parent = 0;
        if (len > 0) {
                int r = catalog_path_id(c, path, cut ? cut - 1 : 0, create, &parent);
                if (r <= 0)
                        return r;
        }
        int r = child_lookup(c, parent, path + cut, len - cut, ret);
        if (r != 0 || !create)
                return r;
        r = child_add(c, parent, path, len, cut, ret);
        return r < 0 ? r : 1;
}

int catalog_index_begin(struct catalog *c, const char *name, int64_t seq, struct catalog_index **ret)
{
        int64_t name_id;
        int r = catalog_name_id(c, name, true, &name_id);
        if (r < 0)
                return r;

        struct catalog_index *ix = xcalloc(1, sizeof *ix);
        ix->c = c;
        ix->name_id = name_id;
        ix->seq = seq;
        ix->last_parent_id = -1;
        int rc = sqlite3_prepare_v2(c->db,
                                    "UPDATE files SET until = ?3 WHERE name = ?2 AND path = ?1 AND until IS NULL",
                                    -1, &ix->close_row, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_prepare_v2(c->db,
                                        "INSERT INTO files (path, name, since, type, mode, uid, gid, size, mtime,"
                                        " content, meta, flags, link) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                        -1, &ix->insert_row, NULL);
        if (rc != SQLITE_OK) {
                r = catalog_error(c, rc, "preparing the file index");
                catalog_index_free(ix);
                return r;
        }
        *ret = ix;
        return 0;
}

void catalog_index_free(struct catalog_index *ix)
{
        if (!ix)
                return;
        sqlite3_finalize(ix->close_row);
        sqlite3_finalize(ix->insert_row);
        buf_free(&ix->last_parent);
        free(ix);
}

static int index_path_id(struct catalog_index *ix, const char *path, size_t len, bool create, int64_t *ret)
{
        size_t cut = len;
        while (cut > 0 && path[cut - 1] != '/')
                cut--;
        size_t plen = cut ? cut - 1 : 0;

        /* Consecutive entries of a depth-first walk share their parent:
         * with its id cached, a path is one statement. */
        if (len > 0 && ix->last_parent_id >= 0 && ix->last_parent.len == plen &&
            (plen == 0 || memcmp(ix->last_parent.data, path, plen) == 0)) {
                if (!create)
                        return child_lookup(ix->c, ix->last_parent_id, path + cut, len - cut, ret);
                int r = child_add(ix->c, ix->last_parent_id, path, len, cut, ret);
                return r < 0 ? r : 1;
        }
        int64_t parent = 0;
        if (len > 0) {
                int r = catalog_path_id(ix->c, path, plen, create, &parent);
                if (r <= 0)
                        return r;
                buf_reset(&ix->last_parent);
                buf_append(&ix->last_parent, path, plen);
                ix->last_parent_id = parent;
        }
        int r = child_lookup(ix->c, parent, path + cut, len - cut, ret);
        if (r != 0 || !create)
                return r;
        r = child_add(ix->c, parent, path, len, cut, ret);
        return r < 0 ? r : 1;
}

static int close_row(struct catalog_index *ix, int64_t path_id)
{
        sqlite3_stmt *st = ix->close_row;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, path_id);
        sqlite3_bind_int64(st, 2, ix->name_id);
        sqlite3_bind_int64(st, 3, ix->seq);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
                return catalog_error(ix->c, rc, "updating the file index");
        return 0;
}

int catalog_index_put(struct catalog_index *ix, const struct catalog_file *f, bool replaces)
{
        int64_t path_id;
        int r = index_path_id(ix, f->path, f->path_len, true, &path_id);
        if (r < 0)
                return r;
        if (replaces) {
                r = close_row(ix, path_id);
                if (r < 0)
                        return r;
        }

        sqlite3_stmt *st = ix->insert_row;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, path_id);
        sqlite3_bind_int64(st, 2, ix->name_id);
        sqlite3_bind_int64(st, 3, ix->seq);
        sqlite3_bind_int(st, 4, f->type);
        sqlite3_bind_int64(st, 5, f->mode);
        sqlite3_bind_int64(st, 6, f->uid);
        sqlite3_bind_int64(st, 7, f->gid);
        sqlite3_bind_int64(st, 8, (int64_t)f->size);
        sqlite3_bind_int64(st, 9, f->mtime);
        sqlite3_bind_blob(st, 10, f->content, sizeof f->content, SQLITE_STATIC);
        sqlite3_bind_blob(st, 11, f->meta, sizeof f->meta, SQLITE_STATIC);
        sqlite3_bind_int64(st, 12, f->flags);
        if (f->link)
                sqlite3_bind_blob(st, 13, f->link, (int)f->link_len, SQLITE_STATIC);
        else
                sqlite3_bind_null(st, 13);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
                return catalog_error(ix->c, rc, "updating the file index");
        return 0;
}

int catalog_index_remove(struct catalog_index *ix, const char *path, size_t len)
{
        int64_t path_id;
        int r = index_path_id(ix, path, len, false, &path_id);
        if (r <= 0)
                return r;
        return close_row(ix, path_id);
}

int catalog_index_close_all(struct catalog_index *ix)
{
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(ix->c->db, "UPDATE files SET until = ?2 WHERE name = ?1 AND until IS NULL", -1, &st,
                                    NULL);
        if (rc == SQLITE_OK) {
                sqlite3_bind_int64(st, 1, ix->name_id);
                sqlite3_bind_int64(st, 2, ix->seq);
                rc = sqlite3_step(st);
                sqlite3_finalize(st);
        }
        if (rc != SQLITE_OK && rc != SQLITE_DONE)
                return catalog_error(ix->c, rc, "updating the file index");
        return 0;
}
