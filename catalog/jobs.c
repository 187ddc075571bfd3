/* jobs.c — the job history: one row per backup (later forget, prune) a
 * berth command attempted, whatever its outcome, for metrics and status. */
#include <string.h>

#include "catalog-private.h"

/* The table, created when missing by catalog_open() (and, as a TEMP table,
 * for a reader of a catalog that has none, so the queries below need no
 * second version).  Like snapshot_intents it is outside the numbered
 * migrations: an older berth ignores it, and nothing in it is needed to
 * read the repository. */
#define JOBS_TABLE(temp)                                                                   \
        "CREATE " temp "TABLE IF NOT EXISTS jobs ("                                        \
        "  id INTEGER PRIMARY KEY,"                                                        \
        "  kind TEXT NOT NULL,"             /* 'backup', 'forget', 'prune' */              \
        "  name TEXT NOT NULL,"             /* the volume's or path's snapshot name */     \
        "  host TEXT NOT NULL,"                                                            \
        "  started INTEGER NOT NULL,"       /* ns since the epoch */                       \
        "  finished INTEGER NOT NULL,"                                                     \
        "  status TEXT NOT NULL,"           /* 'ok', 'failed', 'partial' */                \
        "  error TEXT,"                     /* why it failed; NULL when it did not */      \
        "  snapshot TEXT,"                  /* the snapshot it made, or NULL */            \
        "  bytes_added INTEGER NOT NULL DEFAULT 0"                                         \
        ")"

const char catalog_jobs_schema[] = JOBS_TABLE("") ";"
        "CREATE INDEX IF NOT EXISTS jobs_by_name ON jobs(kind, name, started)";

int catalog_job_add(struct catalog *c, struct catalog_job *j)
{
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db,
                                    "INSERT INTO jobs (kind, name, host, started, finished, status, error, snapshot,"
                                    " bytes_added) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                    -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "recording a job");
        sqlite3_bind_text(st, 1, j->kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, j->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, j->host ? j->host : "", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, j->started);
        sqlite3_bind_int64(st, 5, j->finished);
        sqlite3_bind_text(st, 6, j->status, -1, SQLITE_STATIC);
        bind_text_or_null(st, 7, j->error);
        bind_text_or_null(st, 8, j->snapshot && *j->snapshot ? j->snapshot : NULL);
        sqlite3_bind_int64(st, 9, (int64_t)j->bytes_added);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return catalog_error(c, rc, "recording a job");
        j->id = sqlite3_last_insert_rowid(c->db);
        return 0;
}

/* A reader of a catalog that no writer of this version has opened yet has
 * no jobs table: an empty TEMP one stands in (TEMP tables can be made on a
 * read-only connection; one of the main schema would shadow nothing since
 * there is none). */
static int jobs_table_ready(struct catalog *c)
{
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'", -1,
                                    &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "reading the job history");
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc == SQLITE_ROW)
                return 0;
        if (rc != SQLITE_DONE)
                return catalog_error(c, rc, "reading the job history");
        rc = sqlite3_exec(c->db, JOBS_TABLE("TEMP "), NULL, NULL, NULL);
        return rc == SQLITE_OK ? 0 : catalog_error(c, rc, "reading the job history");
}

void catalog_job_summary_free(struct catalog_job_summary *list, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(list[i].name);
                free(list[i].last_status);
        }
        free(list);
}

int catalog_job_summaries(struct catalog *c, struct catalog_job_summary **ret, size_t *ret_n)
{
        /* Every name that has backup jobs or snapshots; its newest job, its
         * newest successful one and its newest complete snapshot (which
         * stands for a success when no job says otherwise: snapshots made
         * before job history existed, or copied in). */
        static const char sql[] =
                "WITH v(name) AS ("
                "  SELECT name FROM jobs WHERE kind = 'backup'"
                "  UNION SELECT n.name FROM names n WHERE EXISTS (SELECT 1 FROM snapshots s WHERE s.name = n.id))"
                " SELECT v.name,"
                "  (SELECT count(*) FROM snapshots s JOIN names n ON n.id = s.name WHERE n.name = v.name),"
                "  (SELECT count(*) FROM jobs j WHERE j.kind = 'backup' AND j.name = v.name AND j.status = 'failed'),"
                "  (SELECT count(*) FROM jobs j WHERE j.kind = 'backup' AND j.name = v.name),"
                "  lj.status, lj.started, lj.finished,"
                "  oj.started, oj.finished, oj.bytes_added,"
                "  ls.started, ls.finished, ls.bytes_added"
                " FROM v"
                " LEFT JOIN jobs lj ON lj.id = (SELECT j.id FROM jobs j WHERE j.kind = 'backup' AND j.name = v.name"
                "   ORDER BY j.started DESC, j.id DESC LIMIT 1)"
                " LEFT JOIN jobs oj ON oj.id = (SELECT j.id FROM jobs j WHERE j.kind = 'backup' AND j.name = v.name"
                "   AND j.status = 'ok' ORDER BY j.finished DESC, j.id DESC LIMIT 1)"
                " LEFT JOIN snapshots ls ON ls.id = (SELECT s.id FROM snapshots s JOIN names n ON n.id = s.name"
                "   WHERE n.name = v.name AND s.status = 'complete' ORDER BY s.finished DESC, s.id DESC LIMIT 1)"
                " ORDER BY v.name";
        int r = jobs_table_ready(c);
        if (r < 0)
                return r;
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "reading the job history");
        struct catalog_job_summary *list = NULL;
        size_t n = 0, cap = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (n == cap) {
                        cap = cap ? cap * 2 : 16;
                        list = xrealloc(list, cap * sizeof *list);
                }
                struct catalog_job_summary *s = &list[n++];
                const unsigned char *status = sqlite3_column_text(st, 4);
                *s = (struct catalog_job_summary){
                        .name = xstrdup((const char *)sqlite3_column_text(st, 0)),
                        .snapshots = (uint64_t)sqlite3_column_int64(st, 1),
                        .failures = (uint64_t)sqlite3_column_int64(st, 2),
                        .runs = (uint64_t)sqlite3_column_int64(st, 3),
                        .last_status = status ? xstrdup((const char *)status) : NULL,
                        .last_started = sqlite3_column_int64(st, 5),
                        .last_finished = sqlite3_column_int64(st, 6),
                };
                /* The later of the newest good job and the newest complete
                 * snapshot; a job's times include quiescing and the first
                 * pass, so it wins a tie with the snapshot it made. */
                int from = -1;
                if (sqlite3_column_type(st, 8) != SQLITE_NULL)
                        from = 7;
                if (sqlite3_column_type(st, 11) != SQLITE_NULL &&
                    (from < 0 || sqlite3_column_int64(st, 11) > sqlite3_column_int64(st, 8)))
                        from = 10;
                if (from >= 0) {
                        s->ok_started = sqlite3_column_int64(st, from);
                        s->ok_finished = sqlite3_column_int64(st, from + 1);
                        s->ok_bytes_added = (uint64_t)sqlite3_column_int64(st, from + 2);
                }
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
                catalog_job_summary_free(list, n);
                return catalog_error(c, rc, "reading the job history");
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

int catalog_pack_totals(struct catalog *c, uint64_t *ret_packs, uint64_t *ret_bytes)
{
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db, "SELECT count(*), coalesce(sum(size), 0) FROM packs", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "counting packs");
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
                sqlite3_finalize(st);
                return catalog_error(c, rc, "counting packs");
        }
        *ret_packs = (uint64_t)sqlite3_column_int64(st, 0);
        *ret_bytes = (uint64_t)sqlite3_column_int64(st, 1);
        sqlite3_finalize(st);
        return 0;
}
