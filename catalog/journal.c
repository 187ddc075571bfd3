/* journal.c — the quiesce journal. */
#include <string.h>

#include "catalog-private.h"

int catalog_quiesce_begin(struct catalog *c, struct catalog_quiesce *q)
{
        sqlite3_stmt *st;
        /* Outside any transaction this statement commits on its own, with
         * synchronous=FULL: the row is on disk before the container is
         * touched. */
        int rc = sqlite3_prepare_v2(c->db,
                                    "INSERT INTO quiesce_journal (container, container_name, project, service, action,"
                                    " host, owner_pid, owner_start, started, mac)"
                                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                    -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "writing the quiesce journal");
        sqlite3_bind_text(st, 1, q->container, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, q->name ? q->name : "", -1, SQLITE_STATIC);
        bind_text_or_null(st, 3, q->project);
        bind_text_or_null(st, 4, q->service);
        sqlite3_bind_text(st, 5, q->action, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, q->host ? q->host : "", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, q->owner_pid);
        sqlite3_bind_int64(st, 8, q->owner_start);
        sqlite3_bind_int64(st, 9, q->started);
        bind_text_or_null(st, 10, q->mac);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return catalog_error(c, rc, "writing the quiesce journal");
        q->id = sqlite3_last_insert_rowid(c->db);
        return 0;
}

int catalog_quiesce_end(struct catalog *c, int64_t id)
{
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db, "UPDATE quiesce_journal SET ended = ?, mac = NULL WHERE id = ? AND ended IS NULL",
                                    -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "closing a quiesce journal entry");
        sqlite3_bind_int64(st, 1, now_ns());
        sqlite3_bind_int64(st, 2, id);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return catalog_error(c, rc, "closing a quiesce journal entry");
        return sqlite3_changes(c->db) > 0 ? 1 : 0;
}

static char *col(sqlite3_stmt *st, int i)
{
        const unsigned char *t = sqlite3_column_text(st, i);
        return t ? xstrdup((const char *)t) : NULL;
}

int catalog_quiesce_open(struct catalog *c, struct catalog_quiesce **ret, size_t *ret_n)
{
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db,
                                    "SELECT id, container, container_name, project, service, action, host, owner_pid,"
                                    " owner_start, started, mac FROM quiesce_journal WHERE ended IS NULL ORDER BY id",
                                    -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "reading the quiesce journal");
        struct catalog_quiesce *list = NULL;
        size_t n = 0, cap = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (n == cap) {
                        cap = cap ? cap * 2 : 8;
                        list = xrealloc(list, cap * sizeof *list);
                }
                list[n++] = (struct catalog_quiesce){
                        .id = sqlite3_column_int64(st, 0),
                        .container = col(st, 1),
                        .name = col(st, 2),
                        .project = col(st, 3),
                        .service = col(st, 4),
                        .action = col(st, 5),
                        .host = col(st, 6),
                        .owner_pid = sqlite3_column_int64(st, 7),
                        .owner_start = sqlite3_column_int64(st, 8),
                        .started = sqlite3_column_int64(st, 9),
                        .mac = col(st, 10),
                };
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
                catalog_quiesce_list_free(list, n);
                return catalog_error(c, rc, "reading the quiesce journal");
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

void catalog_quiesce_list_free(struct catalog_quiesce *list, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(list[i].container);
                free(list[i].name);
                free(list[i].project);
                free(list[i].service);
                free(list[i].action);
                free(list[i].host);
                free(list[i].mac);
        }
        free(list);
}
