/* catalog-private.h — shared between the catalog's own files only. */
#ifndef BERTH_CATALOG_PRIVATE_H
#define BERTH_CATALOG_PRIVATE_H

#include <sqlite3.h>

#include "catalog.h"

struct catalog {
        sqlite3 *db;
        char *path;
        bool in_tx;
        bool in_read;            /* catalog_read_begin() */
        bool written;            /* a commit reached the WAL since open or the last catalog_flush() */
        int autocheckpoint;      /* pages in the WAL that make the WAL hook checkpoint (0: never) */
        bool has_condemned;
        bool has_inner;          /* chunks.inner_off exists (catalog_chunks_migrate) */      /* packs.condemned exists (prune.c's migration) */
        sqlite3_stmt *mark_add;  /* prune.c: the mark set's insert, and */
        unsigned mark_batch;     /* rows inserted in its open transaction */
        sqlite3_stmt *stmts[32];
};

/* Returns a reset prepared statement for `sql`, cached in slot `slot`. */
sqlite3_stmt *catalog_stmt(struct catalog *c, unsigned slot, const char *sql);
/* Translates a SQLite result code into -errno and records a reason. */
int catalog_error(struct catalog *c, int rc, const char *what);

enum {
        STMT_PACK_ADD, STMT_PACK_FIND, STMT_PACK_GET, STMT_CHUNK_ADD, STMT_CHUNK_GET,
        STMT_SNAP_ADD, STMT_SNAP_KNOWN, STMT_NAME_ID, STMT_NAME_ADD, STMT_SNAP_MAXSEQ,
        STMT_PATH_FIND, STMT_PATH_ADD, STMT_CHUNK_SET,
        STMT__MAX = 32,
};

/* Binds s (not copied), or NULL when s is NULL. */
static inline void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
        if (s)
                sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
        else
                sqlite3_bind_null(st, i);
}

/* CREATE statements of the job history table (jobs.c), for catalog_open(). */
extern const char catalog_jobs_schema[];

/* Runs sql (its one parameter: pack) and calls fn for each row of (hash,
 * pack, offset, stored_len, raw_len, flags); `what` names it in errors. */
int catalog_chunk_rows_foreach(struct catalog *c, const char *sql, int64_t pack,
                               int (*fn)(void *ud, const struct catalog_chunk *ch), void *ud, const char *what);
int catalog_name_id(struct catalog *c, const char *name, bool create, int64_t *ret);
int catalog_path_id(struct catalog *c, const char *path, size_t len, bool create, int64_t *ret);
/* prune.c: adds packs.condemned when missing (a writer, at open), and notes
 * in c->has_condemned whether the column is there (every open). */
/* Notes in *ret_has whether table.column exists; a writer adds it when
 * missing by running `alter` (a second writer racing it is fine). */
int catalog_ensure_column(struct catalog *c, const char *table, const char *column, const char *alter, bool writer,
                          bool *ret_has);
/* Adds chunks.inner_off (format-2 packs: a chunk's offset inside its
 * record) when a writer opens an older catalog; notes in c->has_inner
 * whether it is there (every open; readers of a catalog without it see 0). */
int catalog_chunks_migrate(struct catalog *c, bool writer);
/* "inner_off", or "0" for a catalog read as it is, without the column. */
const char *catalog_inner_col(const struct catalog *c);
int catalog_prune_migrate(struct catalog *c, bool writer);
/* prune.c: clears a pack's condemnation (catalog_pack_add() finding it
 * again).  0 or -errno. */
int catalog_pack_revive(struct catalog *c, int64_t pack);

#endif
