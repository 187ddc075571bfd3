/* catalog.h — the SQLite catalog of a Berth repository.
 *
 * The catalog is an index: which pack holds each chunk, which snapshots
 * exist, and a file index that answers "which snapshots hold path X" and
 * "list this directory" without reading packs.  Everything in it that
 * describes data can be rebuilt from the repository's packs and snapshot
 * files.  It never sees a chunk's bytes.
 *
 * One connection per process, used from one thread.  Every function returns
 * 0 (or a count, or 1 for "found") on success and -errno on failure, with a
 * one-line reason in error_message(); SQLite's own codes never leave this
 * module.  Output parameters are written only on success.
 */
#ifndef BERTH_CATALOG_H
#define BERTH_CATALOG_H

#include "../common/common.h"

#define CATALOG_HASH_LEN 32
#define CATALOG_SCHEMA_VERSION 3

struct catalog;

/* Opens (creating when `create`) the catalog at path and applies forward
 * migrations.  A catalog newer than this program is refused with
 * -BERTH_EFORMAT.  WAL mode, synchronous=FULL. */
int catalog_open(const char *path, bool create, struct catalog **ret);
/* Opens the catalog at path for a reader: never created, migrated (but
 * see below) or switched to another journal mode, and nothing is written
 * but what the caller writes (a reader closes quiesce journal rows).
 * `frozen` says the repository directory cannot be written (read-only
 * media, chattr +i): the file is then opened read-only (SQLite mode=ro),
 * and as immutable, without locks, when SQLite cannot open it read-only
 * there (no WAL index and no right to create one).  Where the file is
 * write-protected, SQLite opens it read-only too.  An older schema is
 * upgraded first when not frozen, and read as it is when frozen.  Writing
 * through a read-only handle fails with -EACCES. */
int catalog_open_reader(const char *path, bool frozen, struct catalog **ret);
/* Frees c as it is: what it committed is in catalog.db-wal (synced),
 * copied into catalog.db by SQLite when it can, with no word about a disk
 * that fails.  For error paths; a command that wrote and succeeded closes
 * with catalog_close(). */
void catalog_free(struct catalog *c);
static inline void catalog_freep(struct catalog **c) { catalog_free(*c); }

/* Transactions do not nest.  catalog_commit() failing leaves no change. */
int catalog_begin(struct catalog *c);
int catalog_commit(struct catalog *c);
void catalog_rollback(struct catalog *c);
/* A read transaction around a run of lookups (one snapshot of the catalog,
 * and no locking per statement); nothing when a transaction is open.
 * catalog_read_end() ends what catalog_read_begin() started. */
void catalog_read_begin(struct catalog *c);
void catalog_read_end(struct catalog *c);

/* ---- packs and chunks --------------------------------------------------- */

struct catalog_chunk {
        uint8_t id[CATALOG_HASH_LEN];
        int64_t pack;      /* rowid of the pack */
        uint32_t offset;     /* of the chunk's record in the pack */
        uint32_t stored_len; /* of the record */
        uint32_t raw_len;    /* of the chunk */
        uint8_t flags;     /* the pack trailer's flags byte */
        uint32_t inner;      /* the chunk's offset in its record's plain bytes (0 in format-1 packs) */
};

/* Records a pack (or finds it, when its hash is already known); *ret_id is
 * its rowid.  Returns 1 when added, 0 when it was there. */
int catalog_pack_add(struct catalog *c, const uint8_t hash[CATALOG_HASH_LEN], uint64_t size,
                     uint32_t nchunks, int64_t *ret_id);
/* 1 and the pack's hash and size, or 0 when there is no such rowid. */
int catalog_pack_get(struct catalog *c, int64_t id, uint8_t ret_hash[CATALOG_HASH_LEN], uint64_t *ret_size);
/* 1 when the pack with that hash is recorded. */
int catalog_pack_known(struct catalog *c, const uint8_t hash[CATALOG_HASH_LEN]);
/* Calls fn for every pack in rowid order; a negative return from fn stops
 * and is returned. */
int catalog_pack_foreach(struct catalog *c,
                         int (*fn)(void *ud, int64_t id, const uint8_t hash[CATALOG_HASH_LEN], uint64_t size,
                                   uint32_t nchunks),
                         void *ud);
/* Adds a chunk location; a chunk already recorded keeps its first location. */
int catalog_chunk_add(struct catalog *c, const struct catalog_chunk *ch);
/* Records a chunk location, replacing the one recorded before: for a chunk
 * written again because the pack it was recorded in is lost. */
int catalog_chunk_set(struct catalog *c, const struct catalog_chunk *ch);
/* 1 and the chunk's location, or 0 when unknown. */
int catalog_chunk_get(struct catalog *c, const uint8_t id[CATALOG_HASH_LEN], struct catalog_chunk *ret);
/* Calls fn with every chunk id, in no particular order. */
int catalog_chunk_foreach(struct catalog *c, int (*fn)(void *ud, const uint8_t id[CATALOG_HASH_LEN]), void *ud);
/* Calls fn with every chunk recorded in one pack. */
int catalog_chunk_foreach_in_pack(struct catalog *c, int64_t pack,
                                  int (*fn)(void *ud, const struct catalog_chunk *ch), void *ud);
int64_t catalog_chunk_count(struct catalog *c);

/* ---- pruning (prune.c) -----------------------------------------------------
 *
 * The set of chunks some snapshot references ("marks") is a TEMP table of
 * this connection, kept in a temporary file, not in memory: a reader's
 * connection may hold it (TEMP tables are writable on a read-only
 * connection) while another connection, the writer's, changes the
 * catalog.  A pack the prune found unused is "condemned": its chunk rows
 * are deleted (no new backup can deduplicate against it) and packs.condemned
 * holds the time; its object is deleted later, then its row.  Condemned
 * packs are left out of catalog_pack_foreach().
 */

/* Starts (or restarts) an empty mark set on this connection. */
int catalog_mark_begin(struct catalog *c);
/* Marks a chunk id.  Batched: inserts run in transactions of the TEMP
 * table of a few thousand rows; catalog_mark_commit() ends the open one
 * (do so before relying on this connection seeing other connections'
 * commits).  1 when the id was not marked yet, 0 when it was, -errno. */
int catalog_mark_add(struct catalog *c, const uint8_t id[CATALOG_HASH_LEN]);
int catalog_mark_commit(struct catalog *c);
/* Drops the mark set. */
void catalog_mark_end(struct catalog *c);

/* The highest pack rowid, 0 when there is none. */
int catalog_pack_max_id(struct catalog *c, int64_t *ret);

struct catalog_pack_usage {
        int64_t id;
        uint8_t hash[CATALOG_HASH_LEN];
        uint64_t size;           /* bytes of the pack file */
        uint64_t chunks;         /* chunk rows pointing at it */
        uint64_t used_chunks;    /* of which marked */
        uint64_t used_bytes;     /* stored bytes of those */
};
/* Calls fn for every pack that is not condemned with after < rowid <=
 * max_id, in rowid order, with how much of it the mark set uses.  Streams:
 * one row at a time, under one read of the catalog.  fn's negative return
 * stops and is returned; a positive one stops, and 0 is returned. */
int catalog_pack_usage_foreach(struct catalog *c, int64_t after, int64_t max_id,
                               int (*fn)(void *ud, const struct catalog_pack_usage *u), void *ud);
/* How many marked chunks the catalog records in pack, or -errno. */
int64_t catalog_marked_in_pack(struct catalog *c, int64_t pack);
/* Calls fn for each marked chunk recorded in pack, by offset. */
int catalog_marked_foreach_in_pack(struct catalog *c, int64_t pack,
                                   int (*fn)(void *ud, const struct catalog_chunk *ch), void *ud);
/* Condemns a pack at time `when` (unix seconds): deletes the chunk rows that
 * still point at it and marks it.  Returns the number of chunk rows
 * deleted, or -errno.  Inside the caller's transaction. */
int64_t catalog_pack_condemn(struct catalog *c, int64_t pack, int64_t when);
/* Shared storage: a condemnation not yet published to the other hosts
 * (condemned/<hash>) carries this time, so that no grace period runs out
 * for it; catalog_pack_published() then gives it the publication's. */
#define CATALOG_CONDEMNED_UNPUBLISHED INT64_MAX
/* Sets the time of a pack condemned as CATALOG_CONDEMNED_UNPUBLISHED to
 * `when`: 1 when it was, 0 when not (published before, or live), -errno. */
int catalog_pack_published(struct catalog *c, int64_t pack, int64_t when);
/* Calls fn for condemned packs whose condemnation is at or before
 * `before` (unix seconds), at most `max` of them, oldest first. */
int catalog_condemned_foreach(struct catalog *c, int64_t before, size_t max,
                              int (*fn)(void *ud, int64_t id, const uint8_t hash[CATALOG_HASH_LEN], uint64_t size),
                              void *ud);
/* Forgets a condemned pack whose object is gone (its row and any chunk row
 * still naming it).  0 or -errno. */
int catalog_pack_drop(struct catalog *c, int64_t pack);

/* ---- snapshots ------------------------------------------------------------ */

struct catalog_snapshot {
        char id[2 * CATALOG_HASH_LEN + 1];
        char *name;
        int64_t seq;           /* position in its name's series, from 1 */
        char *host;
        char *source;
        int64_t started;       /* ns since the epoch */
        int64_t finished;
        char *status;          /* "complete" or "incomplete" */
        uint64_t files, dirs, bytes;
        uint64_t files_read, files_reused, bytes_read, bytes_added;
        uint64_t warnings;
        char *parent;          /* id or NULL */
        char *meta;            /* JSON object or NULL */
};

void catalog_snapshot_clear(struct catalog_snapshot *s);
void catalog_snapshot_list_free(struct catalog_snapshot *list, size_t n);

/* Inserts a snapshot row.  When s->seq is 0 it becomes one more than the
 * newest of its name, and is written back into s. */
int catalog_snapshot_add(struct catalog *c, struct catalog_snapshot *s);
/* Announces that this repository's writer is about to write
 * snapshots/<id>: durable on return when called outside a transaction.
 * Crash recovery indexes only announced snapshot files; anything else in
 * snapshots/ waits for an explicit catalog rebuild.  catalog_snapshot_add()
 * drops the announcement in its own transaction. */
int catalog_snapshot_intend(struct catalog *c, const char *id);
int catalog_snapshot_intent_drop(struct catalog *c, const char *id);
/* The announced ids not recorded yet, oldest first; free with catalog_id_list_free. */
int catalog_snapshot_intents(struct catalog *c, char ***ret, size_t *ret_n);
void catalog_id_list_free(char **list, size_t n);
/* 1 when a snapshot with this full id is recorded. */
int catalog_snapshot_known(struct catalog *c, const char *id);
/* Snapshots ordered by start time (oldest first), all or of one name. */
int catalog_snapshot_list(struct catalog *c, const char *name, struct catalog_snapshot **ret, size_t *ret_n);
/* Snapshots whose id starts with prefix (at most `max`). */
int catalog_snapshot_by_prefix(struct catalog *c, const char *prefix, size_t max, struct catalog_snapshot **ret,
                               size_t *ret_n);
/* The newest snapshot of name started at or before `before` (INT64_MAX for
 * the newest): 1 and *ret, or 0. */
int catalog_snapshot_latest(struct catalog *c, const char *name, int64_t before, struct catalog_snapshot *ret);
/* The highest seq of name, 0 when none. */
int64_t catalog_snapshot_max_seq(struct catalog *c, const char *name);

/* Removes snapshot `id` (a full id) in one transaction: its row, its
 * protection, and the file index rows that no remaining snapshot of its
 * name is in (rows shared with the snapshots before and after it stay,
 * their [since, until) ranges still right for every remaining seq; when
 * the newest is removed, the rows of the one before it become current
 * again, so the next snapshot is indexed against it).  The id is recorded
 * as being forgotten in the same transaction (catalog_snapshot_forgets).
 * 1 when removed, 0 when it was not recorded. */
int catalog_snapshot_remove(struct catalog *c, const char *id);
/* Ids recorded by catalog_snapshot_remove() whose objects are not known to
 * be deleted yet, oldest first (free with catalog_id_list_free); none when
 * the catalog predates the table. */
int catalog_snapshot_forgets(struct catalog *c, char ***ret, size_t *ret_n);
/* The objects of a forgotten snapshot are gone: stop remembering it. */
int catalog_snapshot_forget_done(struct catalog *c, const char *id);
/* 1 when id is being forgotten, 0 when not. */
int catalog_snapshot_forgetting(struct catalog *c, const char *id);

/* Protection (`berth tag --keep`): sets or clears it for id.  1 when that
 * changed something, 0 when not. */
int catalog_keep_set(struct catalog *c, const char *id, bool keep);
/* 1 when id is protected, 0 when not (also for a catalog older than
 * protection). */
int catalog_keep_get(struct catalog *c, const char *id);
/* The protected ids (free with catalog_id_list_free). */
int catalog_keep_list(struct catalog *c, char ***ret, size_t *ret_n);

/* ---- the file index --------------------------------------------------------
 *
 * A row describes one version of one path in one name's series and is valid
 * for the snapshots whose seq is in [since, until); `until` is NULL while it
 * is the current version.  Indexing a new snapshot writes rows only for the
 * paths that were added, changed or removed, so the index grows with the
 * changed files, not with files × snapshots.
 */

struct catalog_file {
        const char *path;      /* relative, no leading '/', "" for the root */
        size_t path_len;
        uint8_t type;          /* ENTRY_* of snapshot/manifest.h */
        uint32_t mode;         /* permission bits incl. setuid/setgid/sticky */
        uint32_t uid, gid;
        uint64_t size;
        int64_t mtime;         /* ns */
        uint8_t content[16];   /* digest of the content (chunk list or link target) */
        uint8_t meta[8];       /* digest of xattrs, ACLs, flags and device number */
        uint32_t flags;
        const char *link;      /* symlink target or hard link's first path, or NULL */
        size_t link_len;
};

struct catalog_index;

/* Starts indexing snapshot `seq` of `name`.  Must be inside a transaction. */
int catalog_index_begin(struct catalog *c, const char *name, int64_t seq, struct catalog_index **ret);
/* A path that is new or changed in this snapshot; `replaces` when the
 * previous snapshot had the path (its row is closed). */
int catalog_index_put(struct catalog_index *ix, const struct catalog_file *f, bool replaces);
/* A path of the previous snapshot that this one no longer has. */
int catalog_index_remove(struct catalog_index *ix, const char *path, size_t len);
/* Closes every current row of the name: the previous snapshot cannot be
 * read to compare with, so every path of this one is then put as new. */
int catalog_index_close_all(struct catalog_index *ix);
void catalog_index_free(struct catalog_index *ix);
static inline void catalog_index_freep(struct catalog_index **ix) { catalog_index_free(*ix); }

/* ---- queries over the file index ---------------------------------------------- */

/* Calls fn for each entry directly inside directory `dir` of snapshot `seq`
 * of `name` (or for `dir` itself when it is not a directory), ordered by
 * name.  Returns 1 when `dir` exists in that snapshot, 0 when not. */
int catalog_ls(struct catalog *c, const char *name, int64_t seq, const char *dir, size_t dir_len,
               int (*fn)(void *ud, const struct catalog_file *f), void *ud);

struct catalog_hit {
        const char *snapshot;  /* id */
        const char *name;
        int64_t started;
        struct catalog_file file;
};

/* Every (snapshot, path) whose path matches the glob (against the last
 * component when the pattern has no '/', else against the whole path),
 * newest snapshot first.  name limits it to one series when not NULL. */
int catalog_find(struct catalog *c, const char *pattern, const char *name,
                 int (*fn)(void *ud, const struct catalog_hit *h), void *ud);

/* Every path that differs between snapshot seq_a of name_a and seq_b of
 * name_b, ordered by path: a is NULL for an added path, b for a removed
 * one, both set for a changed one. */
int catalog_diff(struct catalog *c, const char *name_a, int64_t seq_a, const char *name_b, int64_t seq_b,
                 int (*fn)(void *ud, const struct catalog_file *a, const struct catalog_file *b), void *ud);

/* ---- the quiesce journal ----------------------------------------------------------
 *
 * Before Berth pauses or stops a container it records that here, durably;
 * when the container is back, the row is closed.  An open row after a
 * crash names a container to put back.
 */

struct catalog_quiesce {
        int64_t id;
        char *container, *name, *project, *service;
        char *action;          /* "pause" or "stop" */
        char *host;
        int64_t owner_pid, owner_start;
        int64_t started;
        char *mac;             /* hex HMAC-SHA-256 by the writer's host key, NULL when none */
};

/* Records an action about to be taken (durable on return); sets q->id. */
int catalog_quiesce_begin(struct catalog *c, struct catalog_quiesce *q);
/* Closes a row (and drops its mac, so a closed row cannot be reopened by
 * editing `ended`): 1 when it was open, 0 when something closed it
 * before. */
int catalog_quiesce_end(struct catalog *c, int64_t id);
/* The rows still open, oldest first. */
int catalog_quiesce_open(struct catalog *c, struct catalog_quiesce **ret, size_t *ret_n);
void catalog_quiesce_list_free(struct catalog_quiesce *list, size_t n);

/* ---- job history -----------------------------------------------------------------
 *
 * One row per job a berth command attempted (a backup of one volume or
 * path; later forget and prune), whatever its outcome, so that a failure
 * is remembered where there is no snapshot to show it.  For metrics and
 * status; a catalog rebuild starts it afresh.
 */

struct catalog_job {
        int64_t id;            /* set by catalog_job_add */
        const char *kind;      /* "backup", "forget", "prune" */
        const char *name;      /* the snapshot name: volume or path name */
        const char *host;      /* NULL: "" */
        int64_t started;       /* ns since the epoch */
        int64_t finished;
        const char *status;    /* "ok", "failed" or "partial" (finished, entries skipped) */
        const char *error;     /* why it failed, or NULL */
        const char *snapshot;  /* id of the snapshot it made, or NULL */
        uint64_t bytes_added;
};

/* Records a job (its own transaction, unless inside one); sets j->id. */
int catalog_job_add(struct catalog *c, struct catalog_job *j);

/* What the history says about one name's backups. */
struct catalog_job_summary {
        char *name;
        uint64_t snapshots;           /* snapshots of the name now */
        uint64_t runs, failures;      /* backup jobs recorded, of which failed */
        char *last_status;            /* the newest job's status, NULL when none */
        int64_t last_started, last_finished;
        /* the newest success: a job with status "ok", or a complete snapshot
         * finished later (one made before the history, or copied in);
         * ok_finished is 0 when there is none */
        int64_t ok_started, ok_finished;
        uint64_t ok_bytes_added;
};

/* One summary per name that has backup jobs or snapshots, ordered by name;
 * works on a read-only catalog and on one without a history yet (free
 * with catalog_job_summary_free). */
int catalog_job_summaries(struct catalog *c, struct catalog_job_summary **ret, size_t *ret_n);
void catalog_job_summary_free(struct catalog_job_summary *list, size_t n);

/* The number of packs and the sum of their sizes. */
int catalog_pack_totals(struct catalog *c, uint64_t *ret_packs, uint64_t *ret_bytes);

/* ---- catalog rebuild ----------------------------------------------------------- */

/* Copies the rows of `table` from the catalog file at from_path into the
 * same table of c, column by column for the columns both have (so either
 * side may have columns the other lacks).  For what a rebuild cannot derive
 * from packs, such as the quiesce journal.  *ret_rows (may be NULL) is the
 * number copied.  A from_path that is not a catalog fails, changing
 * nothing. */
int catalog_carry_table(struct catalog *c, const char *from_path, const char *table, int64_t *ret_rows);
/* Frees c after taking its database out of WAL mode, so that it is one
 * self-contained file that can be renamed into place. */
int catalog_close_standalone(struct catalog *c);
/* Opens the catalog at path, moves everything in its WAL into the main
 * file and empties the WAL, and closes it. */
int catalog_checkpoint_path(const char *path);
/* Checks catalog.db itself: SQLite's integrity_check (pages, indexes
 * against tables) and foreign_key_check, paths against their parents.  Calls fn once per problem (at
 * most about 20); returns how many were found (0: sound), or -errno with
 * a message when the check could not run. */
int catalog_integrity_check(struct catalog *c, void (*fn)(void *ud, const char *msg), void *ud);
/* Copies what is committed in the WAL into catalog.db now and syncs it:
 * 0, or -EIO/-ENOSPC with a message when the disk failed (SQLite's own
 * checkpoints ignore that).  catalog_close() calls it for a catalog that
 * was written; call it earlier to say which change it was (backup: after
 * each snapshot's job record), and the close has nothing left to flush. */
int catalog_flush(struct catalog *c);
/* Flushes c (catalog_flush()) when something was committed since it was
 * opened or last flushed, then frees it, whatever the flush returned: 0,
 * or the flush's -EIO/-ENOSPC and message.  NULL is 0. */
int catalog_close(struct catalog *c);

/* Row counts, for reports and tests. */
int64_t catalog_count(struct catalog *c, const char *table);

#endif
