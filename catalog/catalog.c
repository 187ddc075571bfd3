/* catalog.c — opening, migrating, transactions, packs and chunks. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "catalog-private.h"

/* Each entry moves the schema from version i to i+1.  Never edit one that
 * has shipped: add a new one.  The schema is documented in the README. */
static const char *const migrations[] = {
        /* 0 -> 1 */
        "CREATE TABLE packs ("
        "  id INTEGER PRIMARY KEY,"
        "  hash BLOB NOT NULL UNIQUE,"        /* SHA-256 of the pack file: its name */
        "  size INTEGER NOT NULL,"
        "  chunks INTEGER NOT NULL,"
        "  created INTEGER NOT NULL"          /* unix seconds */
        ");"
        "CREATE TABLE chunks ("
        "  hash BLOB PRIMARY KEY,"            /* SHA-256 of the plain bytes */
        "  pack INTEGER NOT NULL REFERENCES packs(id),"
        "  offset INTEGER NOT NULL,"
        "  stored_len INTEGER NOT NULL,"
        "  raw_len INTEGER NOT NULL,"
        "  flags INTEGER NOT NULL"
        ") WITHOUT ROWID;"
        "CREATE INDEX chunks_by_pack ON chunks(pack);"
        "CREATE TABLE names ("
        "  id INTEGER PRIMARY KEY,"
        "  name TEXT NOT NULL UNIQUE"
        ");"
        "CREATE TABLE snapshots ("
        "  id INTEGER PRIMARY KEY,"
        "  hash TEXT NOT NULL UNIQUE,"        /* hex id: SHA-256 of snapshots/<hash> */
        "  name INTEGER NOT NULL REFERENCES names(id),"
        "  seq INTEGER NOT NULL,"
        "  host TEXT NOT NULL,"
        "  source TEXT NOT NULL,"
        "  started INTEGER NOT NULL,"         /* ns since the epoch */
        "  finished INTEGER NOT NULL,"
        "  status TEXT NOT NULL,"
        "  files INTEGER NOT NULL, dirs INTEGER NOT NULL, bytes INTEGER NOT NULL,"
        "  files_read INTEGER NOT NULL, files_reused INTEGER NOT NULL,"
        "  bytes_read INTEGER NOT NULL, bytes_added INTEGER NOT NULL,"
        "  warnings INTEGER NOT NULL,"
        "  parent TEXT,"
        "  meta TEXT,"
        "  UNIQUE (name, seq)"
        ");"
        "CREATE INDEX snapshots_by_time ON snapshots(name, started);"
        "CREATE TABLE paths ("
        "  id INTEGER PRIMARY KEY,"
        "  parent INTEGER NOT NULL,"          /* 0 for the root, whose name is empty */
        "  name BLOB NOT NULL,"               /* last component, raw bytes */
        "  path BLOB NOT NULL"                /* whole relative path, raw bytes (for find) */
        ");"
        "CREATE UNIQUE INDEX paths_by_parent ON paths(parent, name);"
        "CREATE TABLE files ("
        "  name INTEGER NOT NULL REFERENCES names(id),"
        "  path INTEGER NOT NULL REFERENCES paths(id),"
        "  since INTEGER NOT NULL,"           /* first seq this version is in */
        "  until INTEGER,"                    /* first seq it is not in; NULL: current */
        "  type INTEGER NOT NULL, mode INTEGER NOT NULL,"
        "  uid INTEGER NOT NULL, gid INTEGER NOT NULL,"
        "  size INTEGER NOT NULL, mtime INTEGER NOT NULL,"
        "  content BLOB NOT NULL, meta BLOB NOT NULL, flags INTEGER NOT NULL,"
        "  link BLOB,"                        /* symlink target or hard link's first path */
        "  PRIMARY KEY (name, path, since)"
        ") WITHOUT ROWID;"
        "CREATE INDEX files_by_path ON files(path);",
        /* 1 -> 2: the quiesce journal */
        "CREATE TABLE quiesce_journal ("
        "  id INTEGER PRIMARY KEY,"
        "  container TEXT NOT NULL,"          /* container id */
        "  container_name TEXT NOT NULL,"
        "  project TEXT,"                     /* compose project and service, to find */
        "  service TEXT,"                     /* a container that was recreated */
        "  action TEXT NOT NULL,"             /* 'pause' or 'stop' */
        "  host TEXT NOT NULL,"
        "  owner_pid INTEGER NOT NULL,"       /* the berth process that quiesced it */
        "  owner_start INTEGER NOT NULL,"     /* its start time, against pid reuse */
        "  started INTEGER NOT NULL,"         /* ns */
        "  ended INTEGER"                     /* ns; NULL while the container is quiesced */
        ");"
        "CREATE INDEX quiesce_open ON quiesce_journal(ended);",
        /* 2 -> 3: each journal row carries an HMAC under a key of the host
         * that wrote it (see agent/quiesce.c); NULL once closed */
        "ALTER TABLE quiesce_journal ADD COLUMN mac TEXT;",
};

_Static_assert(ELEMENTSOF(migrations) == CATALOG_SCHEMA_VERSION, "schema version matches migrations");

int catalog_error(struct catalog *c, int rc, const char *what)
{
        const char *msg = c && c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc);
        const char *path = c && c->path ? c->path : "catalog.db";

        /* SQLite's words (and the statement) are for whoever debugs berth;
         * the user is told what happened and what to do about it. */
        log_debug("catalog %s: %s: %s (SQLite result %d)", path, what, msg, rc);
        switch (rc & 0xff) {
        case SQLITE_FULL:
                return error_set(ENOSPC, "catalog %s: the disk is full (while %s); free some space and try again",
                                 path, what);
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return error_set(EBUSY,
                                 "catalog %s is busy: another process kept it locked (while %s); try again when "
                                 "it has finished",
                                 path, what);
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return error_set(BERTH_ECORRUPT,
                                 "catalog %s is damaged (while %s); recreate it from the packs and snapshot files "
                                 "with 'berth catalog rebuild'",
                                 path, what);
        case SQLITE_CANTOPEN:
                return error_set(ENOENT,
                                 "cannot open catalog %s (while %s); if it was lost or damaged, recreate it with "
                                 "'berth catalog rebuild'",
                                 path, what);
        case SQLITE_READONLY:
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return error_set(EACCES,
                                 "catalog %s cannot be written (while %s): the file or its file system is "
                                 "read-only, or this user may not write it",
                                 path, what);
        case SQLITE_NOMEM:
                return error_set(ENOMEM, "out of memory (catalog %s, while %s)", path, what);
        case SQLITE_IOERR:
                return error_set(EIO,
                                 "catalog %s: I/O error (while %s); check the disk; if catalog.db is damaged, "
                                 "recreate it with 'berth catalog rebuild'",
                                 path, what);
        default:
                return error_set(EIO,
                                 "catalog %s cannot be used (while %s): it may be damaged or not Berth's; "
                                 "recreate it with 'berth catalog rebuild' (run with --verbose for details)",
                                 path, what);
        }
}

sqlite3_stmt *catalog_stmt(struct catalog *c, unsigned slot, const char *sql)
{
        if (!c->stmts[slot]) {
                int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->stmts[slot], NULL);
                if (rc != SQLITE_OK) {
                        catalog_error(c, rc, "reading it");
                        return NULL;
                }
        }
        sqlite3_reset(c->stmts[slot]);
        sqlite3_clear_bindings(c->stmts[slot]);
        return c->stmts[slot];
}

static void sqlite_setup(void)
{
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* The WAL hook: runs after every commit that wrote to catalog.db-wal
 * (never for TEMP tables, which readers write too), so that
 * catalog_close() flushes only a catalog that was written.  Setting it
 * replaces SQLite's automatic checkpoint, which is done here the same way:
 * at that many pages in the WAL (1000 unless SQLite was built otherwise),
 * quietly. */
static int wal_hook(void *ud, sqlite3 *db, const char *name, int pages)
{
        struct catalog *c = ud;
        c->written = true;
        if (c->autocheckpoint > 0 && pages >= c->autocheckpoint)
                sqlite3_wal_checkpoint(db, name);
        return SQLITE_OK;
}

static void watch_writes(struct catalog *c)
{
        sqlite3_stmt *st;
        c->autocheckpoint = 1000;
        if (sqlite3_prepare_v2(c->db, "PRAGMA wal_autocheckpoint", -1, &st, NULL) == SQLITE_OK) {
                if (sqlite3_step(st) == SQLITE_ROW)
                        c->autocheckpoint = sqlite3_column_int(st, 0);
                sqlite3_finalize(st);
        }
        sqlite3_wal_hook(c->db, wal_hook, c);
}

/* Runs sql; `what` says what it does, for the message when it fails. */
static int exec(struct catalog *c, const char *sql, const char *what)
{
        int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
                log_debug("catalog %s: failed statement: %s", c->path, sql);
                return catalog_error(c, rc, what);
        }
        return 0;
}

static int user_version(struct catalog *c, int *ret)
{
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "reading the schema version");
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
                sqlite3_finalize(st);
                return catalog_error(c, rc, "reading the schema version");
        }
        *ret = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        return 0;
}

static int too_new(struct catalog *c, int v)
{
        return error_set(BERTH_EFORMAT, "catalog %s has schema version %d, this berth knows up to %d: upgrade berth",
                         c->path, v, CATALOG_SCHEMA_VERSION);
}

static int migrate(struct catalog *c)
{
        int v = 0, r;

        r = user_version(c, &v);
        if (r < 0)
                return r;
        if (v > CATALOG_SCHEMA_VERSION)
                return too_new(c, v);
        while (v < CATALOG_SCHEMA_VERSION) {
                char pragma[64];

                r = catalog_begin(c);
                if (r < 0)
                        return r;
                /* Read again inside the write transaction: readers and
                 * writers do not exclude each other, so another berth may
                 * have just upgraded it. */
                r = user_version(c, &v);
                if (r == 0 && v >= CATALOG_SCHEMA_VERSION) {
                        catalog_rollback(c);
                        return v > CATALOG_SCHEMA_VERSION ? too_new(c, v) : 0;
                }
                if (r == 0)
                        r = exec(c, migrations[v], "upgrading its schema");
                snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
                if (r == 0)
                        r = exec(c, pragma, "upgrading its schema");
                if (r == 0)
                        r = catalog_commit(c);
                if (r < 0) {
                        catalog_rollback(c);
                        return r;
                }
                log_debug("catalog migrated to schema version %d", ++v);
        }
        return 0;
}

int catalog_open(const char *path, bool create, struct catalog **ret)
{
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        /* No allocation statistics: they take a global mutex per malloc. */
        pthread_once(&once, sqlite_setup);
        struct catalog *c = xcalloc(1, sizeof *c);
        int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
        int rc, r;

        c->path = xstrdup(path);
        rc = sqlite3_open_v2(path, &c->db, flags, NULL);
        if (rc != SQLITE_OK) {
                r = catalog_error(c, rc, "opening it");
                catalog_free(c);
                return r;
        }
        sqlite3_extended_result_codes(c->db, 1);
        sqlite3_busy_timeout(c->db, 10000);
        watch_writes(c);
        /* WAL so readers never block the writer; FULL so a commit that makes
         * a snapshot visible is on disk when it returns. */
        r = exec(c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
                    " PRAGMA cache_size=-8192;",
                 "opening it");
        if (r == 0)
                r = migrate(c);
        /* Snapshot ids a writer announced before writing their files (see
         * catalog_snapshot_intend).  A table of its own, created when
         * missing rather than by a migration: an older berth ignores it,
         * and nothing in it is needed to read the repository. */
        if (r == 0)
                r = exec(c, "CREATE TABLE IF NOT EXISTS snapshot_intents ("
                            "  hash TEXT PRIMARY KEY,"     /* hex id of snapshots/<hash> */
                            "  created INTEGER NOT NULL"   /* ns */
                            ")",
                            "opening it");
        /* The job history (jobs.c): the same kind of table of its own. */
        if (r == 0)
                r = exec(c, catalog_jobs_schema, "opening it");
        /* Snapshots protected from forgetting by policy (`berth tag
         * --keep`), mirroring the repository's keep/<id> objects, and
         * snapshots being forgotten: recorded in the transaction that drops
         * a snapshot's rows, dropped once its objects are deleted, so that
         * the next writer finishes a forget a crash interrupted (see
         * snapshot/forget.c).  Tables of their own, created when missing,
         * like snapshot_intents: an older berth ignores them. */
        if (r == 0)
                r = exec(c, "CREATE TABLE IF NOT EXISTS snapshot_keep ("
                            "  hash TEXT PRIMARY KEY,"     /* hex id of a recorded snapshot */
                            "  created INTEGER NOT NULL"   /* ns */
                            ");"
                            "CREATE TABLE IF NOT EXISTS snapshot_forgets ("
                            "  hash TEXT PRIMARY KEY,"     /* hex id of a snapshot being forgotten */
                            "  created INTEGER NOT NULL"   /* ns */
                            ")",
                            "opening it");
        if (r == 0)
                r = catalog_prune_migrate(c, true);
        if (r == 0)
                r = catalog_chunks_migrate(c, true);
        if (r < 0) {
                catalog_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

/* "file:" URI for path with everything but a few safe bytes escaped, so a
 * repository path holding '?', '#' or '%' still names the file. */
static char *path_uri(const char *path, const char *query)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t n = strlen(path);
        char *u = xmalloc(8 + 3 * n + strlen(query) + 2), *p = u;

        p = stpcpy(p, path[0] == '/' ? "file://" : "file:");
        for (const unsigned char *q = (const unsigned char *)path; *q; q++) {
                if ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
                    strchr("/._-~", *q))
                        *p++ = (char)*q;
                else {
                        *p++ = '%';
                        *p++ = hex[*q >> 4];
                        *p++ = hex[*q & 15];
                }
        }
        *p++ = '?';
        strcpy(p, query);
        return u;
}

static int open_uri(struct catalog *c, const char *uri, int flags)
{
        int rc = sqlite3_open_v2(uri, &c->db, flags | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "opening it");
        sqlite3_extended_result_codes(c->db, 1);
        sqlite3_busy_timeout(c->db, 10000);
        watch_writes(c);
        /* The writer's page cache: a restore looks every chunk up. */
        sqlite3_exec(c->db, "PRAGMA cache_size=-8192", NULL, NULL, NULL);
        /* Opening is lazy: read something now so that a file SQLite cannot
         * use fails here, not at the first query. */
        int v;
        return user_version(c, &v);
}

int catalog_open_reader(const char *path, bool frozen, struct catalog **ret)
{
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        pthread_once(&once, sqlite_setup);
        /* Tried in order.  Where the repository can be written, the
         * connection may write (a reader closes the quiesce journal rows
         * of containers it put back) but is never created, migrated or
         * switched to another journal mode here; SQLite itself falls back
         * to read-only when the file is write-protected.  mode=ro reads a
         * WAL too, but needs the WAL index (-shm) or the right to create
         * it; on media nothing can write to (a read-only mount, chattr +i)
         * there may be neither: then the file is read as immutable, as it
         * is, without locks, since nothing can change it there. */
        static const struct {
                const char *query;
                int flags;
                bool frozen_only;
        } modes[] = {
                { "mode=rw", SQLITE_OPEN_READWRITE, false },
                { "mode=ro", SQLITE_OPEN_READONLY, false },
                { "mode=ro&immutable=1", SQLITE_OPEN_READONLY, true },
        };
        struct catalog *c = xcalloc(1, sizeof *c);
        int r = -EIO, v = 0;

        c->path = xstrdup(path);
        for (size_t i = frozen ? 1 : 0; i < ELEMENTSOF(modes); i++) {
                if (modes[i].frozen_only && !frozen)
                        break;
                if (i > (frozen ? 1u : 0u)) {
                        log_debug("%s; trying %s", error_message(), modes[i].query);
                        error_clear();
                }
                sqlite3_close(c->db);
                c->db = NULL;
                _cleanup_free_ char *uri = path_uri(path, modes[i].query);
                r = open_uri(c, uri, modes[i].flags);
                if (r == 0)
                        break;
        }
        if (r == 0)
                r = user_version(c, &v);
        if (r == 0 && v > CATALOG_SCHEMA_VERSION)
                r = too_new(c, v);
        if (r < 0) {
                catalog_free(c);
                return r;
        }
        if (v < CATALOG_SCHEMA_VERSION && !frozen) {
                /* An older catalog where it can be written: upgrade it once,
                 * as any writer would. */
                struct catalog *w;
                if (catalog_open(path, false, &w) == 0) {
                        catalog_free(w);
                        catalog_free(c);
                        return catalog_open_reader(path, frozen, ret);
                }
                log_debug("cannot upgrade catalog %s: %s", path, error_message());
                error_clear();
        }
        if (v < CATALOG_SCHEMA_VERSION)
                log_debug("catalog %s has schema version %d; reading it as it is", path, v);
        r = catalog_prune_migrate(c, false);
        if (r == 0)
                r = catalog_chunks_migrate(c, false);
        if (r < 0) {
                catalog_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

void catalog_free(struct catalog *c)
{
        if (!c)
                return;
        catalog_mark_end(c);
        for (size_t i = 0; i < ELEMENTSOF(c->stmts); i++)
                sqlite3_finalize(c->stmts[i]);
        if (c->in_tx)
                sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(c->db);
        free(c->path);
        free(c);
}

int catalog_begin(struct catalog *c)
{
        /* IMMEDIATE takes the write lock now, not at the first write, so a
         * transaction never fails half-way with SQLITE_BUSY. */
        int r = exec(c, "BEGIN IMMEDIATE", "starting a change");
        if (r == 0)
                c->in_tx = true;
        return r;
}

int catalog_commit(struct catalog *c)
{
        int rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
                int r = catalog_error(c, rc, "committing a change");
                /* A failed COMMIT (a failed fsync among them) is rolled back,
                 * never retried into a success. */
                catalog_rollback(c);
                return r;
        }
        c->in_tx = false;
        return 0;
}

void catalog_read_begin(struct catalog *c)
{
        if (c->in_tx || c->in_read || sqlite3_get_autocommit(c->db) == 0)
                return;
        /* Best effort: without it every lookup is its own transaction. */
        c->in_read = sqlite3_exec(c->db, "BEGIN DEFERRED", NULL, NULL, NULL) == SQLITE_OK;
}

void catalog_read_end(struct catalog *c)
{
        if (!c->in_read)
                return;
        c->in_read = false;
        if (sqlite3_get_autocommit(c->db) == 0)
                sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
}

void catalog_rollback(struct catalog *c)
{
        if (sqlite3_get_autocommit(c->db) == 0)
                sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        c->in_tx = false;
}

static int step_done(struct catalog *c, sqlite3_stmt *st, const char *what)
{
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
                return catalog_error(c, rc, what);
        return 0;
}

int catalog_pack_add(struct catalog *c, const uint8_t hash[CATALOG_HASH_LEN], uint64_t size, uint32_t nchunks,
                     int64_t *ret_id)
{
        sqlite3_stmt *st = catalog_stmt(c, STMT_PACK_FIND, "SELECT id FROM packs WHERE hash = ?");
        if (!st)
                return -EIO;
        sqlite3_bind_blob(st, 1, hash, CATALOG_HASH_LEN, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                *ret_id = sqlite3_column_int64(st, 0);
                sqlite3_reset(st);
                /* A pack written again with the very bytes of one a prune
                 * condemned (the same chunks stored again) is live again:
                 * its object must not be deleted under the new rows. */
                return catalog_pack_revive(c, *ret_id);
        }
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
                return catalog_error(c, rc, "looking up a pack");

        st = catalog_stmt(c, STMT_PACK_ADD,
                          "INSERT INTO packs (hash, size, chunks, created) VALUES (?, ?, ?, strftime('%s','now'))");
        if (!st)
                return -EIO;
        sqlite3_bind_blob(st, 1, hash, CATALOG_HASH_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)size);
        sqlite3_bind_int64(st, 3, nchunks);
        int r = step_done(c, st, "recording a pack");
        if (r < 0)
                return r;
        *ret_id = sqlite3_last_insert_rowid(c->db);
        return 1;
}

int catalog_pack_get(struct catalog *c, int64_t id, uint8_t ret_hash[CATALOG_HASH_LEN], uint64_t *ret_size)
{
        sqlite3_stmt *st = catalog_stmt(c, STMT_PACK_GET, "SELECT hash, size FROM packs WHERE id = ?");
        if (!st)
                return -EIO;
        sqlite3_bind_int64(st, 1, id);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) {
                sqlite3_reset(st);
                return 0;
        }
        if (rc != SQLITE_ROW) {
                sqlite3_reset(st);
                return catalog_error(c, rc, "reading a pack");
        }
        if (sqlite3_column_bytes(st, 0) != CATALOG_HASH_LEN) {
                sqlite3_reset(st);
                return error_set(BERTH_ECORRUPT, "catalog %s: pack %lld has a malformed hash", c->path,
                                 (long long)id);
        }
        memcpy(ret_hash, sqlite3_column_blob(st, 0), CATALOG_HASH_LEN);
        if (ret_size)
                *ret_size = (uint64_t)sqlite3_column_int64(st, 1);
        sqlite3_reset(st);
        return 1;
}

int catalog_pack_known(struct catalog *c, const uint8_t hash[CATALOG_HASH_LEN])
{
        sqlite3_stmt *st = catalog_stmt(c, STMT_PACK_FIND, "SELECT id FROM packs WHERE hash = ?");
        if (!st)
                return -EIO;
        sqlite3_bind_blob(st, 1, hash, CATALOG_HASH_LEN, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc == SQLITE_ROW)
                return 1;
        if (rc == SQLITE_DONE)
                return 0;
        return catalog_error(c, rc, "looking up a pack");
}

int catalog_pack_foreach(struct catalog *c,
                         int (*fn)(void *ud, int64_t id, const uint8_t hash[CATALOG_HASH_LEN], uint64_t size,
                                   uint32_t nchunks),
                         void *ud)
{
        sqlite3_stmt *st;
        /* Condemned packs (prune.c) hold nothing anyone may use: they are
         * garbage waiting for deletion, and may be gone already. */
        int rc = sqlite3_prepare_v2(c->db,
                                    c->has_condemned ? "SELECT id, hash, size, chunks FROM packs"
                                                       " WHERE condemned IS NULL ORDER BY id"
                                                     : "SELECT id, hash, size, chunks FROM packs ORDER BY id",
                                    -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "listing packs");
        int r = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (sqlite3_column_bytes(st, 1) != CATALOG_HASH_LEN) {
                        r = error_set(BERTH_ECORRUPT, "catalog %s: a pack row has a malformed hash", c->path);
                        break;
                }
                r = fn(ud, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1),
                       (uint64_t)sqlite3_column_int64(st, 2), (uint32_t)sqlite3_column_int64(st, 3));
                if (r < 0)
                        break;
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = catalog_error(c, rc, "listing packs");
        sqlite3_finalize(st);
        return r < 0 ? r : 0;
}

static int table_columns(struct catalog *c, const char *db, const char *table, char ***ret, size_t *ret_n);

int catalog_ensure_column(struct catalog *c, const char *table, const char *column, const char *alter, bool writer,
                          bool *ret_has)
{
        char **cols;
        size_t n;
        int r = table_columns(c, "main", table, &cols, &n);
        if (r < 0)
                return r;
        *ret_has = false;
        for (size_t i = 0; i < n; i++)
                *ret_has = *ret_has || strcmp(cols[i], column) == 0;
        catalog_id_list_free(cols, n);
        if (*ret_has || !writer)
                return 0;
        sqlite3_stmt *st;
        int rc = sqlite3_exec(c->db, alter, NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
                /* Another berth may have added it just now. */
                r = catalog_error(c, rc, "upgrading its schema");
                _cleanup_free_ char *probe = xasprintf("SELECT %s FROM %s LIMIT 0", column, table);
                rc = sqlite3_prepare_v2(c->db, probe, -1, &st, NULL);
                sqlite3_finalize(st);
                if (rc != SQLITE_OK)
                        return r;
                error_clear();
        }
        *ret_has = true;
        return 0;
}

int catalog_chunks_migrate(struct catalog *c, bool writer)
{
        /* A forward step of its own, guarded by the column check (like
         * packs.condemned): every existing row is a chunk alone in its
         * record (format-1 packs), at offset 0 of it. */
        return catalog_ensure_column(c, "chunks", "inner_off",
                                     "ALTER TABLE chunks ADD COLUMN inner_off INTEGER NOT NULL DEFAULT 0", writer,
                                     &c->has_inner);
}

const char *catalog_inner_col(const struct catalog *c) { return c->has_inner ? "inner_off" : "0"; }

/* INSERT OR <conflict> of one chunk row. */
static int chunk_write(struct catalog *c, int which, const char *sql, const struct catalog_chunk *ch)
{
        if (!c->has_inner)
                return error_set(EROFS, "catalog %s is read as it is and cannot record chunks", c->path);
        sqlite3_stmt *st = catalog_stmt(c, which, sql);
        if (!st)
                return -EIO;
        sqlite3_bind_blob(st, 1, ch->id, CATALOG_HASH_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, ch->pack);
        sqlite3_bind_int64(st, 3, ch->offset);
        sqlite3_bind_int64(st, 4, ch->stored_len);
        sqlite3_bind_int64(st, 5, ch->raw_len);
        sqlite3_bind_int(st, 6, ch->flags);
        sqlite3_bind_int64(st, 7, ch->inner);
        return step_done(c, st, "recording a chunk");
}

int catalog_chunk_add(struct catalog *c, const struct catalog_chunk *ch)
{
        return chunk_write(c, STMT_CHUNK_ADD,
                           "INSERT OR IGNORE INTO chunks (hash, pack, offset, stored_len, raw_len, flags, inner_off)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?)",
                           ch);
}

int catalog_chunk_set(struct catalog *c, const struct catalog_chunk *ch)
{
        return chunk_write(c, STMT_CHUNK_SET,
                           "INSERT OR REPLACE INTO chunks (hash, pack, offset, stored_len, raw_len, flags, inner_off)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?)",
                           ch);
}

/* Columns pack, offset, stored_len, raw_len, flags, inner_off from col on. */
static void chunk_from_row(sqlite3_stmt *st, int col, struct catalog_chunk *ch)
{
        ch->pack = sqlite3_column_int64(st, col);
        ch->offset = (uint32_t)sqlite3_column_int64(st, col + 1);
        ch->stored_len = (uint32_t)sqlite3_column_int64(st, col + 2);
        ch->raw_len = (uint32_t)sqlite3_column_int64(st, col + 3);
        ch->flags = (uint8_t)sqlite3_column_int(st, col + 4);
        ch->inner = (uint32_t)sqlite3_column_int64(st, col + 5);
}

int catalog_chunk_get(struct catalog *c, const uint8_t id[CATALOG_HASH_LEN], struct catalog_chunk *ret)
{
        sqlite3_stmt *st = catalog_stmt(c, STMT_CHUNK_GET,
                                        c->has_inner ? "SELECT pack, offset, stored_len, raw_len, flags, inner_off"
                                                       " FROM chunks WHERE hash = ?"
                                                     : "SELECT pack, offset, stored_len, raw_len, flags, 0"
                                                       " FROM chunks WHERE hash = ?");
        if (!st)
                return -EIO;
        sqlite3_bind_blob(st, 1, id, CATALOG_HASH_LEN, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) {
                sqlite3_reset(st);
                return 0;
        }
        if (rc != SQLITE_ROW) {
                sqlite3_reset(st);
                return catalog_error(c, rc, "looking up a chunk");
        }
        if (ret) {
                memcpy(ret->id, id, CATALOG_HASH_LEN);
                chunk_from_row(st, 0, ret);
        }
        sqlite3_reset(st);
        return 1;
}

int catalog_chunk_foreach(struct catalog *c, int (*fn)(void *ud, const uint8_t id[CATALOG_HASH_LEN]), void *ud)
{
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db, "SELECT hash FROM chunks", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "listing chunks");
        int r = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (sqlite3_column_bytes(st, 0) != CATALOG_HASH_LEN)
                        continue;
                r = fn(ud, sqlite3_column_blob(st, 0));
                if (r < 0)
                        break;
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = catalog_error(c, rc, "listing chunks");
        sqlite3_finalize(st);
        return r < 0 ? r : 0;
}

int catalog_chunk_rows_foreach(struct catalog *c, const char *sql, int64_t pack,
                               int (*fn)(void *ud, const struct catalog_chunk *ch), void *ud, const char *what)
{
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, what);
        sqlite3_bind_int64(st, 1, pack);
        int r = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct catalog_chunk ch;
                if (sqlite3_column_bytes(st, 0) != CATALOG_HASH_LEN)
                        continue;
                memcpy(ch.id, sqlite3_column_blob(st, 0), CATALOG_HASH_LEN);
                chunk_from_row(st, 1, &ch);
                r = fn(ud, &ch);
                if (r < 0)
                        break;
        }
        if (r == 0 && rc != SQLITE_DONE)
                r = catalog_error(c, rc, what);
        sqlite3_finalize(st);
        return r < 0 ? r : 0;
}

int catalog_chunk_foreach_in_pack(struct catalog *c, int64_t pack,
                                  int (*fn)(void *ud, const struct catalog_chunk *ch), void *ud)
{
        char sql[160];
        snprintf(sql, sizeof sql,
                 "SELECT hash, pack, offset, stored_len, raw_len, flags, %s FROM chunks WHERE pack = ?"
                 " ORDER BY offset, %s",
                 catalog_inner_col(c), catalog_inner_col(c));
        return catalog_chunk_rows_foreach(c, sql, pack, fn, ud, "listing a pack's chunks");
}

/* The column names of table in schema db ("main" or an attached name);
 * none when the table does not exist. */
static int table_columns(struct catalog *c, const char *db, const char *table, char ***ret, size_t *ret_n)
{
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db, "SELECT name FROM pragma_table_info(?1, ?2)", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "reading a table's columns");
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, db, -1, SQLITE_STATIC);
        char **cols = NULL;
        size_t n = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const unsigned char *t = sqlite3_column_text(st, 0);
                if (!t)
                        continue;
                cols = xrealloc(cols, (n + 1) * sizeof *cols);
                cols[n++] = xstrdup((const char *)t);
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
                catalog_id_list_free(cols, n);
                return catalog_error(c, rc, "reading a table's columns");
        }
        *ret = cols;
        *ret_n = n;
        return 0;
}

static void append_ident(struct buf *b, const char *name)
{
        buf_putc(b, '"');
        for (const char *p = name; *p; p++) {
                if (*p == '"')
                        buf_putc(b, '"');
                buf_putc(b, *p);
        }
        buf_putc(b, '"');
}

int catalog_carry_table(struct catalog *c, const char *from_path, const char *table, int64_t *ret_rows)
{
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db, "ATTACH DATABASE ?1 AS carry_from", -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "opening the old catalog");
        sqlite3_bind_text(st, 1, from_path, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return catalog_error(c, rc, "opening the old catalog");

        /* The columns both tables have, so a column added to one schema
         * and not the other does not stop the copy. */
        char **to = NULL, **from = NULL;
        size_t nto = 0, nfrom = 0;
        int64_t rows = 0;
        int r = table_columns(c, "main", table, &to, &nto);
        if (r == 0)
                r = table_columns(c, "carry_from", table, &from, &nfrom);
        struct buf cols = { 0 };
        for (size_t i = 0; r == 0 && i < nto; i++)
                for (size_t j = 0; j < nfrom; j++)
                        if (strcmp(to[i], from[j]) == 0) {
                                if (cols.len)
                                        buf_putc(&cols, ',');
                                append_ident(&cols, to[i]);
                                break;
                        }
        if (r == 0 && cols.len) {
                buf_putc(&cols, 0);
                struct buf t = { 0 };
                append_ident(&t, table);
                buf_putc(&t, 0);
                _cleanup_free_ char *sql = xasprintf("INSERT INTO main.%s (%s) SELECT %s FROM carry_from.%s",
                                                     (char *)t.data, (char *)cols.data, (char *)cols.data,
                                                     (char *)t.data);
                buf_free(&t);
                r = exec(c, sql, "copying rows from the old catalog");
                if (r == 0)
                        rows = sqlite3_changes(c->db);
        }
        buf_free(&cols);
        catalog_id_list_free(to, nto);
        catalog_id_list_free(from, nfrom);
        sqlite3_exec(c->db, "DETACH DATABASE carry_from", NULL, NULL, NULL);
        if (r < 0)
                return r;
        if (ret_rows)
                *ret_rows = rows;
        return 0;
}

int catalog_close_standalone(struct catalog *c)
{
        /* Out of WAL mode: every page is in the main file and no -wal or
         * -shm is left to travel with it or to be confused with another's. */
        int r = exec(c, "PRAGMA journal_mode=DELETE", "finishing it");
        catalog_free(c);
        return r;
}

int catalog_flush(struct catalog *c)
{
        if (!c)
                return 0;
        /* Said once: an fsync that failed is not tried again (after a
         * failure Linux may have dropped the pages it could not write, and
         * a second fsync would report success). */
        c->written = false;
        /* SQLite's own checkpoints, every 1000 pages and at close, ignore
         * a failed write or fsync of catalog.db; this one says so.  What
         * failed to be copied stays in the WAL (committed there, synced), to
         * be copied by the next checkpoint. */
        int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
                return 0;
        log_debug("catalog %s: checkpoint: %s (SQLite result %d)", c->path, sqlite3_errmsg(c->db), rc);
        if ((rc & 0xff) == SQLITE_FULL)
                return error_set(ENOSPC, "catalog %s: the disk is full: the committed changes cannot be written into "
                                         "it (they stay in catalog.db-wal); free some space",
                                 c->path);
        return error_set(EIO, "catalog %s: the disk failed writing the committed changes into it (%s; they stay in "
                              "catalog.db-wal); check the disk",
                         c->path, sqlite3_errstr(rc));
}

int catalog_close(struct catalog *c)
{
        if (!c)
                return 0;
        int r = c->written ? catalog_flush(c) : 0;
        catalog_free(c);
        return r;
}

int catalog_checkpoint_path(const char *path)
{
        struct catalog *c;
        int r = catalog_open(path, false, &c);
        if (r < 0)
                return r;
        r = exec(c, "PRAGMA wal_checkpoint(TRUNCATE)", "checkpointing it");
        catalog_free(c);
        return r;
}

int64_t catalog_count(struct catalog *c, const char *table)
{
        char sql[128];
        sqlite3_stmt *st;
        int64_t n = -1;

        snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"", table);
        if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
                return -1;
        if (sqlite3_step(st) == SQLITE_ROW)
                n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return n;
}

int64_t catalog_chunk_count(struct catalog *c) { return catalog_count(c, "chunks"); }
