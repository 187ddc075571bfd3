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
        int err;

        switch (rc & 0xff) {
        case SQLITE_FULL: err = ENOSPC; break;
        case SQLITE_BUSY:
        case SQLITE_LOCKED: err = EBUSY; break;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB: err = BERTH_ECORRUPT; break;
        case SQLITE_CANTOPEN: err = ENOENT; break;
        case SQLITE_READONLY:
        case SQLITE_PERM:
        case SQLITE_AUTH: err = EACCES; break;
        case SQLITE_NOMEM: err = ENOMEM; break;
        default: err = EIO; break;
        }
        return error_set(err, "catalog%s%s: %s: %s", c && c->path ? " " : "", c && c->path ? c->path : "", what,
                         msg);
}

sqlite3_stmt *catalog_stmt(struct catalog *c, unsigned slot, const char *sql)
{
        if (!c->stmts[slot]) {
                int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->stmts[slot], NULL);
                if (rc != SQLITE_OK) {
                        catalog_error(c, rc, "prepare");
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

static int exec(struct catalog *c, const char *sql)
{
        int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, sql);
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

static int migrate(struct catalog *c)
{
        int v = 0, r;

        r = user_version(c, &v);
        if (r < 0)
                return r;
        if (v > CATALOG_SCHEMA_VERSION)
                return error_set(BERTH_EFORMAT,
                                 "catalog %s has schema version %d, this berth knows up to %d: upgrade berth",
                                 c->path, v, CATALOG_SCHEMA_VERSION);
        for (; v < CATALOG_SCHEMA_VERSION; v++) {
                char pragma[64];

                r = catalog_begin(c);
                if (r < 0)
                        return r;
                r = exec(c, migrations[v]);
                snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
                if (r == 0)
                        r = exec(c, pragma);
                if (r == 0)
                        r = catalog_commit(c);
                if (r < 0) {
                        catalog_rollback(c);
                        return r;
                }
                log_debug("catalog migrated to schema version %d", v + 1);
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
                r = catalog_error(c, rc, "open");
                catalog_free(c);
                return r;
        }
        sqlite3_extended_result_codes(c->db, 1);
        sqlite3_busy_timeout(c->db, 10000);
        /* WAL so readers never block the writer; FULL so a commit that makes
         * a snapshot visible is on disk when it returns. */
        r = exec(c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
                    " PRAGMA cache_size=-8192;");
        if (r == 0)
                r = migrate(c);
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
        int r = exec(c, "BEGIN IMMEDIATE");
        if (r == 0)
                c->in_tx = true;
        return r;
}

int catalog_commit(struct catalog *c)
{
        int rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
                int r = catalog_error(c, rc, "commit");
                /* A failed COMMIT (a failed fsync among them) is rolled back,
                 * never retried into a success. */
                catalog_rollback(c);
                return r;
        }
        c->in_tx = false;
        return 0;
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
                return 0;
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
        int rc = sqlite3_prepare_v2(c->db, "SELECT id, hash, size, chunks FROM packs ORDER BY id", -1, &st, NULL);
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

int catalog_chunk_add(struct catalog *c, const struct catalog_chunk *ch)
{
        sqlite3_stmt *st = catalog_stmt(c, STMT_CHUNK_ADD,
                                        "INSERT OR IGNORE INTO chunks (hash, pack, offset, stored_len, raw_len, flags)"
                                        " VALUES (?, ?, ?, ?, ?, ?)");
        if (!st)
                return -EIO;
        sqlite3_bind_blob(st, 1, ch->id, CATALOG_HASH_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, ch->pack);
        sqlite3_bind_int64(st, 3, ch->offset);
        sqlite3_bind_int64(st, 4, ch->stored_len);
        sqlite3_bind_int64(st, 5, ch->raw_len);
        sqlite3_bind_int(st, 6, ch->flags);
        return step_done(c, st, "recording a chunk");
}

static void chunk_from_row(sqlite3_stmt *st, int col, struct catalog_chunk *ch)
{
        ch->pack = sqlite3_column_int64(st, col);
        ch->offset = (uint32_t)sqlite3_column_int64(st, col + 1);
        ch->stored_len = (uint32_t)sqlite3_column_int64(st, col + 2);
        ch->raw_len = (uint32_t)sqlite3_column_int64(st, col + 3);
        ch->flags = (uint8_t)sqlite3_column_int(st, col + 4);
}

int catalog_chunk_get(struct catalog *c, const uint8_t id[CATALOG_HASH_LEN], struct catalog_chunk *ret)
{
        sqlite3_stmt *st = catalog_stmt(c, STMT_CHUNK_GET,
                                        "SELECT pack, offset, stored_len, raw_len, flags FROM chunks WHERE hash = ?");
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

int catalog_chunk_foreach_in_pack(struct catalog *c, int64_t pack,
                                  int (*fn)(void *ud, const struct catalog_chunk *ch), void *ud)
{
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->db,
                                    "SELECT hash, pack, offset, stored_len, raw_len, flags FROM chunks"
                                    " WHERE pack = ? ORDER BY offset",
                                    -1, &st, NULL);
        if (rc != SQLITE_OK)
                return catalog_error(c, rc, "listing a pack's chunks");
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
                r = catalog_error(c, rc, "listing a pack's chunks");
        sqlite3_finalize(st);
        return r < 0 ? r : 0;
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
