/* snapshot.h — the data engine: repositories, backup, restore, check.
 *
 * A repository is a directory holding `config`, immutable `packs/`,
 * `snapshots/<id>` files and `catalog.db` (see README, "Repository
 * layout").  This module walks a directory into content-defined chunks,
 * stores each distinct chunk once (zstd, SHA-256 ids), and restores
 * snapshots through libarchive's disk writer.  It knows nothing of Docker
 * or SSH, never prints above debug level and never exits: failures return
 * -errno with a one-line reason in error_message(), and per-file problems
 * go to the caller's warning callback.
 *
 * The backend interface (backend.h) is public too: this header includes it,
 * so that transport/ can serve a repository's objects (serve.c) and later
 * implement a backend over SSH, without reaching into the engine's
 * internals.  Modules above snapshot/ include this header, never backend.h
 * directly.
 */
#ifndef BERTH_SNAPSHOT_H
#define BERTH_SNAPSHOT_H

#include "../catalog/catalog.h"
#include "../common/common.h"
#include "backend.h"
#include <signal.h>

struct repo;

/* The config's "format": 3 for every new repository (pack format 2:
 * records; sealed when the config has an "encryption" block).  Format 1
 * (plain, made before records: format-1 packs) is still opened, and new
 * packs written into it are format 2.  Format 2 (encryption over format-1
 * packs) was a development format that is refused.  A berth that reads
 * only format 1 (or 1 and 2) refuses format 3 as made by a newer berth. */
#define REPO_FORMAT 3
#define REPO_FORMAT_V1 1

/* The page setting of a backup or repository: PAGES_AUTO detects database
 * files, PAGES_OFF never pages, a power of two 4K..64K pages every file
 * whose size is a multiple of it. */
#define PAGES_OFF (-1)
#define PAGES_AUTO 1
#define PAGES_MIN_SIZE (4u << 10)
#define PAGES_MAX_SIZE (64u << 10)
/* Parses "auto", "off" or a size ("8k", "16384") into *ret.  Returns 0 or
 * -EINVAL. */
int pages_parse(const char *s, int32_t *ret);
/* What pages_parse() reads back: "auto", "off" or the size in bytes. */
void pages_format(int32_t v, char *out, size_t n);

struct repo_init_options {
        uint32_t chunk_min, chunk_avg, chunk_max; /* 0: defaults */
        int level;                                /* zstd level, 0: default 3 */
        uint64_t pack_size;                       /* 0: default 16 MiB */
        int32_t page_size;                        /* PAGES_*, a page size; 0: PAGES_AUTO */
        uint32_t page_chunk;                      /* pages per page-aligned chunk; 0: default */
        const char *password;                     /* non-NULL: an encrypted repository */
        uint32_t record_size;                     /* plain bytes per pack record, 0: default 256 KiB */
};

/* Creates a repository at path (directories made as needed).  An existing
 * repository is -EEXIST.  */
int repo_init(const char *path, const struct repo_init_options *o);
/* Creates a repository in backend `be` (an object store: no directories
 * to make) by writing its config, only if there is none: 0, -EEXIST, or
 * -errno, with a message.  The backend stays the caller's. */
int repo_init_backend(struct backend *be, const struct repo_init_options *o);

enum repo_mode {
        REPO_READ,    /* any number, alongside one writer; catalog opened read-only */
        REPO_WRITE,   /* one at a time, alongside readers; repairs what a crashed writer left */
        REPO_REBUILD, /* alone: no reader or writer; no repair: for repo_rebuild_catalog() */
};

/* Opens and locks a repository.  When the lock is held elsewhere, waits up
 * to lock_wait seconds, then fails with -BERTH_ELOCKED and a message naming
 * the holder's pid.  A reader of a repository where the lock file cannot be
 * created (read-only media) goes without it. */
int repo_open(const char *path, enum repo_mode mode, uint64_t lock_wait, struct repo **ret);
/* Opens a repository whose objects are in `be` (taken over: freed on
 * failure too), another host's through transport/, with its local state in
 * the directory state_dir (created, 0700): a cache of its catalog, the
 * lock of this cache and the spool tmp/.  The repository's own locking is
 * the backend's affair (the far side locks at open).  The cache is brought
 * up to date first: packs and snapshot files it lacks are indexed (every
 * snapshot file that verifies: it is data, nothing is acted on), and when
 * it lists objects that are gone it is rebuilt.  A reader that finds the
 * cache being updated by a writer here reads it as it is.  REPO_REBUILD
 * opens without a catalog. */
int repo_open_backend(struct backend *be, const char *state_dir, enum repo_mode mode, uint64_t lock_wait,
                      struct repo **ret);
/* repo_open() with flags: REPO_OPEN_KEYLESS opens an encrypted repository
 * without its key and without a catalog (serve: objects only);
 * REPO_OPEN_KEY_ONLY reads the configuration and opens the key, nothing
 * more: no lock, no catalog, no local state (the agent, to hand the key to
 * its jobs; see repo_keep_key). */
enum { REPO_OPEN_KEYLESS = 1 << 0, REPO_OPEN_KEY_ONLY = 1 << 1 };
int repo_open_flags(const char *path, enum repo_mode mode, uint64_t lock_wait, unsigned flags, struct repo **ret);
/* repo_open_backend() with the flags above (REPO_OPEN_KEY_ONLY). */
int repo_open_backend_flags(struct backend *be, const char *state_dir, enum repo_mode mode, uint64_t lock_wait,
                            unsigned flags, struct repo **ret);
/* Where this host caches the catalog of repository `id` (an encrypted or a
 * remote one): $BERTH_CACHE_DIR/<id>, /var/cache/berth/<id> for root, else
 * $XDG_CACHE_HOME/berth/<id> or ~/.cache/berth/<id>.  The caller frees. */
char *repo_cache_dir(const char *id);

/* ---- encryption (keys.c) ----
 * The password of an encrypted repository comes from the program: fn
 * returns 0 and *ret (caller frees), or -errno with error_set().  confirm:
 * a new password (asked twice on a terminal). */
typedef int (*repo_password_fn)(const char *where, bool confirm, char **ret);
void repo_set_password_source(repo_password_fn fn);
bool repo_encrypted(const struct repo *r);
struct repo_key_info {
        char id[17];
        int64_t created;   /* seconds since the epoch, 0: unknown */
        bool in_use;       /* the one this run's password opened */
        bool valid;        /* well formed */
};
int repo_key_list(struct repo *r, struct repo_key_info **ret, size_t *ret_n);
/* A new key object for password: 0 and its id. */
int repo_key_add(struct repo *r, const char *password, char ret_id[17]);
/* Removes keys/<id>; refuses (-EBUSY) the last well-formed key, and the
 * key in use unless current_ok. */
int repo_key_remove(struct repo *r, const char *id, bool current_ok);
/* Keeps the master key of the open encrypted repository r, so that later
 * opens of the same repository in this process use it instead of a
 * password and its key objects (scrypt); other repositories ask for their
 * password as usual.  The kept key lives in locked memory left out of core
 * dumps.  0, -EINVAL for a plain repository, -ENOMEM when nothing could be
 * kept. */
int repo_keep_key(const struct repo *r);
/* Keeps a master key for repository `id` (one a parent handed over); NULL
 * forgets the kept key. */
void repo_set_kept_key(const char *id, const uint8_t master[32]);
/* Whether a key is kept; its repository id and the key, to hand over
 * (either may be NULL). */
bool repo_kept_key(char ret_id[33], uint8_t ret_master[32]);

/* Frees r, its catalog as it is (catalog_free()): for error paths and
 * readers. */
void repo_free(struct repo *r);
/* Closes r after a command that wrote: its catalog is flushed to disk
 * first when anything was committed to it since it was opened or last
 * flushed (catalog_close()), then r is freed, whatever happened.  0, or
 * -EIO/-ENOSPC with the catalog's message: the changes made in the
 * repository stay made, and the catalog keeps them in catalog.db-wal.
 * NULL is 0. */
int repo_close(struct repo *r);
static inline void repo_freep(struct repo **r) { repo_free(*r); }
struct catalog *repo_catalog(struct repo *r);
/* Sets the zstd level for chunks written through this handle. */
void repo_set_level(struct repo *r, int level);
/* What opening for writing repaired: packs and snapshots that an
 * interrupted run left on disk but not in the catalog. */
void repo_recovered(const struct repo *r, uint64_t *ret_packs, uint64_t *ret_snapshots);
/* What opening (a writer's recovery, a remote repository's cache sync) found
 * damaged and left out of the catalog — a pack whose trailer does not
 * verify, a snapshot file that cannot be read — one warning sentence each
 * ("pack packs/ab/… on URL is damaged: …; run berth check …"), owned by r.
 * Their count is returned; a reference that then matches no snapshot is
 * -BERTH_ECORRUPT ("the repository is damaged"), not -BERTH_ENOTFOUND. */
size_t repo_damage(const struct repo *r, const char *const **ret);

/* Resolves a snapshot reference: a full id or unique id prefix, NAME,
 * NAME@latest, or NAME@TIME (newest at or before TIME).  No match is
 * -BERTH_ENOTFOUND and several are -BERTH_EAMBIGUOUS, each with a message
 * listing the candidates; a bare reference that is both a series name and
 * an id prefix is -BERTH_EAMBIGUOUS too (NAME@latest picks the series). */
int snapshot_resolve(struct repo *r, const char *ref, struct catalog_snapshot *ret);

/* A user's path inside a snapshot ("/etc/x", "./etc/x/", "etc/x") as the
 * engine names it: no leading '/' or './', no trailing '/'; "" is the top.
 * The caller frees. */
char *snapshot_path_normalize(const char *p);

/* What the engine reports while it works. */
struct snapshot_progress {
        uint64_t files;       /* entries done */
        uint64_t bytes;       /* bytes of file content done (read or reused) */
        uint64_t bytes_read;
        uint64_t bytes_added; /* bytes written to packs */
        const char *path;     /* the entry being worked on */
};

struct snapshot_events {
        /* A per-entry problem: the entry is skipped or stored as is and the
         * run goes on.  path is relative to the source or target. */
        void (*warning)(void *ud, const char *path, const char *msg);
        /* Called every few hundred milliseconds from the calling thread. */
        void (*progress)(void *ud, const struct snapshot_progress *p);
        void *ud;
        /* When it points at a non-zero value the operation stops soon with
         * -ECANCELED, leaving the repository as it was (a signal handler
         * sets it). */
        const volatile int *cancel;
};

/* Which stat fields must match the previous snapshot for a file to be
 * reused without reading it. */
enum {
        UNCHANGED_SIZE = 1 << 0,
        UNCHANGED_MTIME = 1 << 1,
        UNCHANGED_CTIME = 1 << 2,
        UNCHANGED_INODE = 1 << 3,
        UNCHANGED_DEFAULT = UNCHANGED_SIZE | UNCHANGED_MTIME | UNCHANGED_CTIME | UNCHANGED_INODE,
};
int parse_unchanged_fields(const char *s, unsigned *ret);

struct backup_run;

struct backup_options {
        const char *path;          /* directory to back up */
        const char *name;          /* series name (volume name) */
        const char *host;          /* NULL: this host's name */
        unsigned unchanged;        /* UNCHANGED_* mask; 0: default */
        bool one_file_system;      /* do not descend into other mounts */
        bool force_read;           /* read every file, reuse nothing */
        const char *parent;        /* snapshot id to compare with; NULL: newest of name */
        const struct backup_run *parent_run; /* second phase: compare with this first pass */
        bool first_pass;           /* a live pre-copy: files that change are not retried or
                                      reported (the quiesced pass reads them again) */
        int32_t page_size;         /* PAGES_AUTO, PAGES_OFF or a page size (page-aligned chunks
                                      for files whose size is a multiple); 0: the repository's */
        const char *meta;          /* snapshot_backup(): JSON object to record, or NULL */
        int64_t quiesce_ns;        /* snapshot_backup(): how long the application was quiesced */
        struct snapshot_events events;
};

struct backup_result {
        char id[2 * CATALOG_HASH_LEN + 1];
        uint64_t files, dirs, bytes;
        uint64_t files_read, files_reused, bytes_read, bytes_added;
        uint64_t chunks_new, chunks_dup;
        uint64_t warnings;         /* entries skipped or inconsistent */
        uint64_t inconsistent;     /* files that kept changing while read */
        uint64_t skipped;          /* entries left out */
        bool complete;
        size_t index_bytes;        /* memory of the chunk lookup table */
        uint64_t index_chunks;     /* chunks in that table */
        int64_t started, finished;
};

/* Backs up o->path into a new snapshot: snapshot_backup_walk() then
 * snapshot_backup_commit().  Returns 0 when a snapshot was written (check
 * ret->complete), -errno when none was. */
int snapshot_backup(struct repo *r, const struct backup_options *o, struct backup_result *ret);

/* The reading half of a backup: walks o->path, stores new chunks (still in
 * flight to packs when it returns) and builds the manifest; records
 * nothing.  This is the part an application must be quiesced for.  With
 * o->parent_run it compares with that first pass instead (two-phase
 * backup: files unchanged since the first pass are not read again). */
int snapshot_backup_walk(struct repo *r, const struct backup_options *o, struct backup_run **ret);
/* The recording half: waits until the run's data is durable, writes the
 * snapshot file with `meta` (a JSON object, or NULL) and the quiesce
 * window, and records it in the catalog.  A run that is freed without
 * being committed leaves only unreferenced chunks. */
int snapshot_backup_commit(struct repo *r, struct backup_run *run, const char *meta, int64_t quiesce_ns,
                           struct backup_result *ret);
void backup_run_free(struct backup_run *run);
/* Makes every chunk stored so far durable and recorded (packs written and
 * fsynced, catalog committed), so that work is not done later while an
 * application is quiesced. */
int snapshot_flush(struct repo *r);
static inline void backup_run_freep(struct backup_run **run) { backup_run_free(*run); }

struct restore_options {
        const char *target;        /* directory to create, or an empty one */
        const char *const *include;/* restore only these paths (and what is under them) */
        size_t ninclude;
        bool partial;              /* skip files whose data is damaged instead of failing */
        bool replace;              /* target may hold files: swap them out atomically at the end */
        bool swap_empty;           /* an empty target nothing uses (a volume this restore created):
                                    * swapped in one step too, unless it is a mount point, so a
                                    * kill never leaves it half filled */
        struct snapshot_events events;
};

struct restore_result {
        uint64_t files, dirs, bytes;
        uint64_t errors;           /* entries that could not be restored */
};

/* Restores snapshot `id` into o->target through a staging directory in the
 * same filesystem, renamed into place at the end.  A target that exists and
 * is not an empty directory is -EEXIST.  Damaged data fails the restore
 * (nothing is left behind) unless o->partial. */
int snapshot_restore(struct repo *r, const char *id, const struct restore_options *o, struct restore_result *ret);

/* What snapshot_verify_tree() found. */
struct verify_result {
        uint64_t checked;          /* entries found and compared */
        uint64_t bytes;            /* file bytes read and found equal */
        uint64_t mismatches;       /* entries missing or different */
        char *paths[5];            /* the first few of those (raw paths, "." the top) */
        char *reasons[5];          /* and what differs */
};
void verify_result_clear(struct verify_result *v);

/* Checks a restored tree `dir` against snapshot `id`: every entry (those
 * `include` selects, as restore does; none: all) is looked up without
 * following symlinks and compared: type, mode bits, mtime (ns), owner
 * (when running as root), size, symlink target, hard link identity and a
 * file's contents against its chunk ids.  Entries on disk that the
 * snapshot lacks are not looked for.  Returns 0 when the check ran (see
 * ret->mismatches), -errno when it could not (snapshot or manifest
 * unreadable: -BERTH_ECORRUPT, dir not a directory). */
int snapshot_verify_tree(struct repo *r, const char *id, const char *dir, const char *const *include,
                         size_t ninclude, struct verify_result *ret);

/* Writes the contents of one regular file of snapshot `id` to fd (holes as
 * zeros).  A hard link is followed to its first path; a directory,
 * symlink or device is an error that says what it is. */
int snapshot_cat(struct repo *r, const char *id, const char *path, int fd);

struct export_options {
        int fd;                    /* where the tar goes */
        bool zstd;                 /* compress the tar with zstd */
        const char *const *include;/* only these paths (and their parents) */
        size_t ninclude;
        struct snapshot_events events;
};

struct export_result {
        uint64_t files, dirs, bytes;
};

/* Streams snapshot `id` as a pax tar: paths relative to the snapshot's
 * root ("." is the root itself), numeric and named owners, nanosecond
 * mtimes, xattrs and ACLs as SCHILY/LIBARCHIVE records, hard links as
 * links, sparse files in GNU sparse 1.0 form.  GNU tar and bsdtar read it. */
int snapshot_export(struct repo *r, const char *id, const struct export_options *o, struct export_result *ret);

struct import_options {
        int fd;                    /* a tar, tar.gz, tar.xz, tar.bz2 or tar.zst stream */
        const char *source;        /* recorded as the snapshot's source */
        const char *name;          /* series name */
        const char *host;          /* NULL: this host's name */
        struct snapshot_events events;
};

/* Reads a tar into a new snapshot, deduplicating against the repository.
 * Entries with absolute paths or '..', hard links to anything but an
 * earlier regular file of the archive, and entries below a non-directory
 * (a symlink included) are refused with -BERTH_EHOSTILE naming the entry;
 * nothing is recorded then.  Symlink targets are stored as they are.  Of
 * duplicate paths the last entry wins.  Missing
 * parent directories are created (0755, owned by root).  The entry list
 * (not the data) is held in memory. */
int snapshot_import(struct repo *r, const struct import_options *o, struct backup_result *ret);

/* Recreates catalog.db from the packs and snapshot files alone.  The old
 * catalog is put back if this fails. */
int repo_rebuild_catalog(struct repo *r, uint64_t *ret_packs, uint64_t *ret_snapshots);

struct check_options {
        bool read_data;            /* read and verify every chunk of every pack */
        void (*problem)(void *ud, const char *msg);
        struct snapshot_events events;
};

struct check_result {
        uint64_t snapshots, packs, chunks, bytes;
        uint64_t errors;           /* problems found (reported through problem()) */
        uint64_t damaged_packs;
        uint64_t damaged_snapshots;
        uint64_t unindexed;        /* packs or snapshots the catalog does not list yet */
};

/* Verifies the repository's structure (and with read_data its contents).
 * Returns 0 when the check ran; look at ret->errors. */
int snapshot_check(struct repo *r, const struct check_options *o, struct check_result *ret);

/* ---- copy.c: replicating snapshots between repositories --------------------- */

struct copy_options {
        /* progress: files = distinct chunks looked at, bytes = their stored
         * bytes, bytes_added = stored bytes sent to the destination. */
        struct snapshot_events events;
};

struct copy_result {
        char id[2 * CATALOG_HASH_LEN + 1];
        bool present;              /* the destination had the snapshot: nothing done */
        uint64_t chunks;           /* distinct chunks the snapshot references */
        uint64_t chunks_sent;      /* of which the destination lacked (stored there now) */
        uint64_t bytes_sent;       /* stored (compressed) bytes of those */
        uint64_t bytes_skipped;    /* stored bytes of the chunks it had */
};

/* Copies snapshot `id` (a full id) of src into dst (opened REPO_WRITE,
 * local or over SSH).  Between two repositories whose chunk ids differ
 * (plain and encrypted, or two master keys) the snapshot is re-keyed: its
 * chunks stored under dst's ids, its manifest and snapshot file written
 * anew, ret->id its id in dst (see copy.c).  Otherwise: the chunks dst
 * lacks, in their stored form (zstd
 * frames are not recompressed; each is verified against its id by dst's
 * pack writer before it counts as stored), then, once they are durable,
 * the snapshot file with the same bytes and id, indexed in dst's catalog.
 * A snapshot dst has already is ret->present and nothing is sent.  Damaged
 * source data fails with -BERTH_ECORRUPT and dst gets no snapshot (only
 * packs of verified chunks may stay, which a rerun reuses).  Interrupted
 * (events.cancel) it is -ECANCELED.  Memory: the set of distinct chunk ids
 * and one chunk at a time. */
int snapshot_copy(struct repo *src, struct repo *dst, const char *id, const struct copy_options *o,
                  struct copy_result *ret);

/* ---- retention.c: which snapshots a keep policy keeps ----------------------
 *
 * Pure: no I/O and no catalog.  Periods are in local time (TZ is honoured
 * through localtime_r).  The usual semantics: `last` keeps the N newest;
 * each period rule keeps the newest snapshot of each of the N newest
 * periods that hold a snapshot; a snapshot kept by several rules is kept
 * once and names them all.
 */

/* A keep policy: how many of each to keep, -1 when the rule is not given. */
struct retention_policy {
        int last, hourly, daily, weekly, monthly, yearly;
};

/* Why a snapshot is kept (bits of retention_decision.rules). */
enum {
        RETAIN_LAST = 1 << 0,
        RETAIN_HOURLY = 1 << 1,
        RETAIN_DAILY = 1 << 2,
        RETAIN_WEEKLY = 1 << 3,
        RETAIN_MONTHLY = 1 << 4,
        RETAIN_YEARLY = 1 << 5,
        RETAIN_PROTECTED = 1 << 6,  /* tagged --keep */
        RETAIN_ONLY = 1 << 7,       /* the policy would have left the group empty */
        RETAIN__COUNT = 8,
};

struct retention_item {
        const char *id;             /* not read: for the caller's convenience */
        int64_t time;               /* ns since the epoch (the snapshot's start) */
        bool protected_;            /* tagged --keep: always kept, counts for no rule */
};

struct retention_decision {
        bool keep;
        unsigned rules;             /* RETAIN_* bits; 0 when forgotten */
};

/* The policy with no rule given (every field -1). */
void retention_policy_init(struct retention_policy *p);
/* Whether at least one rule is given. */
bool retention_policy_given(const struct retention_policy *p);
/* Parses the label syntax "last=N,hourly=N,daily=N,weekly=N,monthly=N,yearly=N"
 * (any subset, any order, blanks around items allowed) into *ret (rules not
 * named are -1).  An unknown key, a missing or non-decimal or negative
 * number, a duplicate key, junk or an empty spec is -EINVAL with a message
 * naming it; *ret is written only on success. */
int retention_parse(const char *spec, struct retention_policy *ret);
/* "rule" ("last", "hourly", ..., "protected", "only-snapshot") of a single
 * RETAIN_* bit, or NULL. */
const char *retention_rule_name(unsigned bit);
/* Decides, for the n snapshots of one group (any order), which the policy
 * keeps: ret[i] (n entries, all written) for items[i].  Protected ones are
 * always kept.  When the policy would keep none of the group, the newest is
 * kept anyway (RETAIN_ONLY), unless p->last is 0: asking for zero last
 * snapshots is how a whole group is let go.  A policy with no rule given is
 * -EINVAL with a message. */
int retention_select(const struct retention_policy *p, const struct retention_item *items, size_t n,
                     struct retention_decision *ret);

/* ---- forget.c: removing snapshots and protecting them ---------------------- */

/* Removes snapshot `id` (a full id) from the repository (opened
 * REPO_WRITE): its catalog rows (the snapshot, the file index rows no other
 * snapshot of its name uses, its protection), then the object
 * snapshots/<id> and keep/<id> through the backend.  Packs are not touched
 * (prune reclaims what no snapshot uses).  A protected snapshot is refused
 * with -EPERM ('berth tag --no-keep' lifts the protection first).  0,
 * -BERTH_ENOTFOUND, or -errno; with a message.  A crash half-way is
 * finished by the next writer's open (see forget.c). */
int snapshot_forget(struct repo *r, const char *id);

/* Protects snapshot `id` (a full id, recorded) from forgetting by policy,
 * or lifts the protection: the object keep/<id> is created or removed
 * through the backend and the catalog mirrors it.  1 when changed, 0 when
 * it already was so, -errno with a message.  Needs REPO_WRITE. */
int snapshot_set_protected(struct repo *r, const char *id, bool protect);
/* 1 when snapshot `id` is protected, 0 when not, -errno. */
int snapshot_is_protected(struct repo *r, const char *id);
/* Reads the repository's keep/ objects (not the catalog) and brings the
 * catalog's protection rows in line with them.  An object whose name is not
 * keep/<64 hex> of a recorded snapshot, or whose content is not what
 * `tag` writes, is reported through warn (when not NULL) and, for a bad
 * name or an unknown snapshot, ignored.  Needs a writable catalog.  0 or
 * -errno. */
int snapshot_sync_protection(struct repo *r, void (*warn)(void *ud, const char *object, const char *msg),
                             void *ud);
/* The ids that the repository's keep/ objects protect, read and checked as
 * snapshot_sync_protection() does (warnings included), without writing
 * anything: for a reader (forget --dry-run).  Free with
 * catalog_id_list_free(). */
int snapshot_protected_ids(struct repo *r, void (*warn)(void *ud, const char *object, const char *msg), void *ud,
                           char ***ret, size_t *ret_n);
/* ---- prune.c: reclaiming what no snapshot uses ------------------------------
 *
 * Two phases, so that a backup may run meanwhile.  Phase A, reading (no
 * writer lock): every snapshot file in the repository's snapshots/ (not
 * only those the catalog lists) is read and verified, and every chunk its
 * manifest references (and the manifest's own chunks) is marked, in a set
 * kept in a temporary file, not in memory.  Phase B, under the writer lock
 * (waiting for a running backup to finish): snapshots that appeared since
 * are marked too; packs none of whose chunks are marked are condemned (one
 * catalog transaction: their chunk rows go, so no later backup can
 * deduplicate against them); packs with more than max_unused percent of
 * unused bytes are repacked: their used chunks are copied into new packs
 * (verified against their ids) and re-pointed, then the old packs are
 * condemned.  Packs created after phase A started are left alone.  Phase C:
 * condemned packs older than the grace period are deleted, then forgotten.
 * Each step is committed before the next, so a run killed at any point
 * loses no snapshot and the next run completes the work.  Orphan packs
 * (left by killed writers; indexed by writer recovery, which prune runs
 * first) are reclaimed the same way, and tmp/ is emptied by that recovery.
 */

struct prune_options {
        bool dry_run;              /* phase A only: report the plan, change nothing */
        unsigned max_unused;       /* percent 0..100: repack a pack whose unused bytes exceed it */
        uint64_t grace;            /* seconds a condemned pack is kept before it is deleted */
        /* Object storage shared by hosts that write without a common lock
         * (s3://): NULL for a repository with one writer at a time.  When
         * set, prune holds the lease object "locks/prune" in it for the
         * whole run (created only if absent; a live one held by another
         * prune is -BERTH_ELOCKED, an expired one is taken over; renewed
         * while prune runs with backend_replace(), and when it is lost or
         * runs out prune stops with -BERTH_ELOCKED before condemning or
         * deleting anything more), needs a
         * grace period > 0, publishes each condemnation as an object
         * "condemned/<pack hash>" (which other hosts' caches honour: they
         * stop deduplicating against the pack), and before deleting a
         * condemned pack marks the snapshots written since and keeps (makes
         * live again) a pack one of them uses.  The caller owns it. */
        struct backend *lease;
        /* Opens the repository (the same one every time) in `mode`, as the
         * caller opens it (locally or over SSH): prune opens it for writing
         * (recovery), then for reading (phase A), then for writing (phases B
         * and C; it waits there for the writer lock as the opener does). */
        int (*open)(void *ud, enum repo_mode mode, struct repo **ret);
        void *open_ud;
        /* progress: files = snapshots read, then packs looked at. */
        struct snapshot_events events;
};

struct prune_result {
        uint64_t snapshots;        /* snapshot files whose chunks are kept */
        uint64_t chunks_used;      /* distinct chunks they reference (manifests included) */
        uint64_t packs;            /* packs looked at */
        uint64_t packs_unused;     /* condemned because nothing uses them */
        uint64_t packs_repacked;   /* condemned after their used chunks were copied */
        uint64_t packs_written;    /* new packs holding those copies */
        uint64_t chunks_repacked;
        uint64_t chunks_removed;   /* chunk rows dropped from the catalog */
        uint64_t packs_deleted;    /* pack objects deleted (dry run: that would be) */
        uint64_t bytes_deleted;    /* their sizes */
        uint64_t bytes_written;    /* sizes of the new packs (dry run: estimated) */
        int64_t bytes_freed;       /* bytes_deleted - bytes_written */
        uint64_t packs_waiting;    /* condemned packs kept for the grace period */
        uint64_t packs_revived;    /* condemned packs a newer snapshot uses: live again (shared storage) */
        int64_t duration_ns;
};

/* Prunes the repository o->open opens.  Returns 0 (see *ret), or -errno
 * with a message: a snapshot file that cannot be read or a manifest that
 * cannot be walked is -BERTH_ECORRUPT and nothing is condemned or deleted;
 * a repository whose objects cannot be deleted (an append-only server) is
 * -EROFS/-EPERM after the catalog work is done (the packs stay condemned);
 * -ECANCELED when o->events.cancel was set (what was committed stays).
 * *ret is written in every case: what was done (or, dry run, planned). 
 * Memory: the snapshot ids, one manifest's entry and one chunk at a time;
 * the mark set lives in a temporary file (SQLITE_TMPDIR or TMPDIR). */
int snapshot_prune(const struct prune_options *o, struct prune_result *ret);

/* ---- access.c: what a serving end needs (transport/serve.c) --------------- */

/* The repository's backend (its objects); owned by the repository. */
struct backend *repo_backend(struct repo *r);
/* The repository's id (32 hex digits), as its config says. */
const char *repo_id(const struct repo *r);
/* The local spool directory (tmp/) where incoming objects are built before
 * they are published, or -1 when there is none (a reader of read-only
 * media).  Owned by the repository. */
int repo_spool_dirfd(const struct repo *r);
/* Sets bit i (byte i/8, bit i%8) of ret_lack_bitmap ((n+7)/8 bytes, all
 * written) when the catalog does not know chunk ids[i].  0 or -errno
 * (-EINVAL without a catalog: a repository opened as REPO_REBUILD). */
int repo_have_chunks(struct repo *r, const uint8_t (*ids)[32], size_t n, uint8_t *ret_lack_bitmap);
/* A client stored snapshots/<id> and the packs it references: announces it
 * (catalog_snapshot_intend) and indexes what arrived (unrecorded packs and
 * the snapshot), as a writer's recovery would.  0 (also when it was known
 * already), -BERTH_ENOTFOUND when snapshots/<id> is missing,
 * -BERTH_ECORRUPT when it could not be indexed, -errno; with a message.
 * Needs REPO_WRITE. */
int repo_announce_snapshot(struct repo *r, const char *id);
/* Records pack object `name` (size bytes, already stored and verified) and
 * its chunks in the catalog, as a writer's recovery would, so that
 * repo_have_chunks() counts them at once.  1 when recorded, 0 when it was
 * known already or there is no catalog to write (REPO_READ, REPO_REBUILD),
 * -errno with a message. */
int repo_index_pack(struct repo *r, const char *name, uint64_t size);
/* Verifies a whole pack held in the local file fd (size bytes) before it
 * is published as object `name` ("packs/<2 hex>/<64 hex>"): the header,
 * the trailer, the name equal to the trailer's hash, and every chunk's
 * bytes decoded and checked against its id.  0, -EINVAL for a name that is
 * not a pack's, -BERTH_ECORRUPT, or -errno; with a message. */
int snapshot_verify_pack(int fd, uint64_t size, const char *name);

#endif
