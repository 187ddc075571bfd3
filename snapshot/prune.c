/* prune.c — reclaiming the space of chunks no snapshot references.
 *
 * See snapshot.h for the phases.  Why they are safe:
 *
 * - Phase A runs beside a backup.  That backup may deduplicate against a
 *   chunk phase A found unused; it then commits a snapshot that references
 *   it.  Phase B holds the writer lock, so every backup has either
 *   committed (its snapshot file is in snapshots/ and is marked in phase B)
 *   or not started; a backup that starts after phase B's condemnation
 *   cannot find the condemned chunks (their rows are gone) and stores them
 *   again.
 * - Snapshots are found from the repository's snapshots/ objects, not the
 *   catalog: a snapshot file the catalog lacks (planted, copied, or an
 *   interrupted writer's) protects its chunks.  One that cannot be read
 *   stops the prune before anything is condemned.
 * - Repacking copies the used chunks into new packs, verified against their
 *   ids by the pack writer, records them (re-pointing the chunk rows) and
 *   only then condemns the old pack.  Deletion comes after condemnation and
 *   the row goes after the object, so a crash at any point leaves either a
 *   live pack, a condemned one (deleted by the next run; `check` ignores
 *   it), or nothing.
 * - The grace period (default 0) is for object storage shared by several
 *   hosts (o->lease): here writers are serialized by the lock, so once phase B
 *   has committed, no writer can still be about to use a condemned chunk.
 *   Readers (a restore) that looked a chunk up before a repack re-pointed
 *   it read an open pack; the grace period covers them too where that
 *   matters.
 * - On shared storage, other hosts back up meanwhile with their own cached
 *   catalogs.  A condemnation is published as "condemned/<hash>"; a host's
 *   cache sync (at every backup's start) drops that pack's chunks, so a
 *   backup that deduplicates against it started before the condemnation.
 *   Phase C runs a grace period later: it marks the snapshots committed
 *   since, and a condemned pack holding a marked chunk is made live again
 *   instead of deleted.  What is unsafe is only a backup that runs longer
 *   than the grace period (default 1 day for s3://).  The grace period
 *   counts from the marker's publication, not from the condemnation in
 *   this catalog before it (CATALOG_CONDEMNED_UNPUBLISHED until then): a
 *   crash between the two cannot shorten it.
 * - One prune at a time holds the lease object, renewed while it runs (a
 *   compare-and-swap of the object as it was last written, so never over
 *   another's); lost to another prune, or running out unrenewed, it stops
 *   before its next condemnation or deletion.
 */
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <sys/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Repacked packs condemned together, after one store flush. */
#define REPACK_BATCH 32
/* Condemned packs deleted per catalog query. */
#define DELETE_BATCH 64

struct lease;

struct id_list {
        char **v;
        size_t n, cap;
};

struct pruner {
        const struct prune_options *o;
        struct prune_result *res;
        struct repo *r;            /* reading: the mark set lives in its catalog connection */
        struct repo *w;            /* writing: phases B and C */
        struct store *rs;          /* reads manifests and chunks through r */
        struct store *ws;          /* repacks (rewrite mode) through w */
        struct idset walked;       /* hashes of manifest id lists already walked */
        struct id_list seen;       /* snapshot ids marked, sorted after phase A */
        int64_t max_pack;          /* the last pack of phase A's start */
        int64_t now;               /* unix seconds, for condemnation */
        int64_t last_progress;
        uint64_t repack_candidates;
        uint64_t repack_bytes;     /* dry run: used bytes of the candidates */
        int64_t batch[REPACK_BATCH];  /* packs being repacked */
        size_t nbatch;
        int64_t after;             /* the last pack looked at for repacking */
        int64_t last_old;          /* the last pack before repacking: later ones are new */
        struct buf chunk;
        struct lease *lease;       /* shared storage: the lease we hold (NULL: none) */
        bool revive_all;           /* shared storage: a snapshot uses chunks of condemned packs */
};

/* Test-only: BERTH_TEST_CRASH_AT=<point> kills the process there (as
 * kill -9 would), BERTH_TEST_PAUSE_AT=<point> with BERTH_TEST_PAUSE_FILE
 * creates FILE.reached and waits (up to two minutes) while FILE exists.
 * The crash-safety tests stop a prune at each point this way. */
static void test_point(const char *name)
{
        const char *crash = getenv("BERTH_TEST_CRASH_AT");
        if (crash && strcmp(crash, name) == 0)
                raise(SIGKILL);
        const char *pause_at = getenv("BERTH_TEST_PAUSE_AT"), *file = getenv("BERTH_TEST_PAUSE_FILE");
        if (!pause_at || !file || strcmp(pause_at, name) != 0)
                return;
        _cleanup_free_ char *reached = xasprintf("%s.reached", file);
        _cleanup_close_ int fd = open(reached, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        for (int i = 0; i < 1200 && access(file, F_OK) == 0; i++) {
                struct timespec ts = { 0, 100 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
}

static int lease_check(const struct lease *l);

/* Interrupted, or the lease lost or about to run out: stop.  Called in
 * every loop, and before every step that condemns or deletes. */
static int cancelled(const struct pruner *p)
{
        if (p->o->events.cancel && *p->o->events.cancel)
                return error_set(ECANCELED, "interrupted");
        return lease_check(p->lease);
}

static void tick(struct pruner *p, uint64_t n, const char *what)
{
        if (!p->o->events.progress || mono_ns() - p->last_progress < 200 * 1000 * 1000)
                return;
        p->last_progress = mono_ns();
        struct snapshot_progress pr = { .files = n, .bytes = p->res->bytes_deleted,
                                        .bytes_added = p->res->bytes_written, .path = what };
        p->o->events.progress(p->o->events.ud, &pr);
}

/* ---- phase A (and the start of B): marking -------------------------------------- */

static void id_list_add(struct id_list *l, const char *id)
{
        if (l->n == l->cap) {
                l->cap = l->cap ? 2 * l->cap : 64;
                l->v = xrealloc(l->v, l->cap * sizeof *l->v);
        }
        l->v[l->n++] = xstrdup(id);
}

static int collect_id(void *ud, const char *name, uint64_t size)
{
        const char *id = snapfile_name_id(name);
        if (id)
                id_list_add(ud, id);
        return 0;
}

static void id_list_free(struct id_list *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
        *l = (struct id_list){ 0 };
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int mark(struct pruner *p, const uint8_t id[HASH_LEN])
{
        int k = catalog_mark_add(p->r->catalog, id);
        if (k > 0)
                p->res->chunks_used++;
        return k < 0 ? k : 0;
}

static int refuse(const char *id, int k)
{
        return error_set(k == -BERTH_EHOSTILE ? BERTH_EHOSTILE : BERTH_ECORRUPT,
                         "snapshot %.12s cannot be read (%s): prune deletes nothing while it cannot tell which "
                         "data a snapshot uses; run 'berth check', and 'berth catalog rebuild' if the catalog is "
                         "at fault, or remove the damaged snapshot file",
                         id, error_message() ? error_message() : berth_strerror(k));
}

/* Marks every chunk snapshot `id` references.  A manifest shared with a
 * snapshot marked before (the same list of manifest chunks) is walked
 * once. */
static int mark_snapshot(struct pruner *p, const char *id)
{
        struct snapfile f = { 0 };
        int k = snapfile_read(p->r, id, &f);
        if (k == -BERTH_ENOTFOUND) {
                /* Removed since it was listed (forget): nothing to keep. */
                log_debug("snapshot %s is gone since it was listed", id);
                error_clear();
                return 0;
        }
        if (k < 0)
                return refuse(id, k);
        p->res->snapshots++;
        uint8_t key[HASH_LEN];
        hash_sha256(f.manifest, f.nmanifest * HASH_LEN, key);
        if (!idset_add(&p->walked, key)) {
                snapfile_clear(&f);
                return 0;
        }
        for (size_t i = 0; i < f.nmanifest && k == 0; i++)
                k = mark(p, f.manifest[i]);
        _cleanup_(manifest_reader_freep) struct manifest_reader *mr = NULL;
        if (k == 0)
                k = manifest_reader_new(p->rs, (const uint8_t(*)[HASH_LEN])f.manifest, f.nmanifest, &mr);
        const struct entry *e;
        uint64_t entries = 0;
        while (k == 0 && (k = manifest_reader_next(mr, &e)) > 0) {
                k = 0;
                for (size_t i = 0; i < e->nchunks && k == 0; i++)
                        k = mark(p, e->chunks[i].id);
                if ((++entries & 1023) == 0) {
                        tick(p, p->res->snapshots, id);
                        if (k == 0)
                                k = cancelled(p);
                }
        }
        snapfile_clear(&f);
        if (k < 0) {
                /* Not walked after all: a later marking (phase B, after
                 * a shared store's phase A skipped it) walks it whole. */
                idset_remove(&p->walked, key);
                p->res->snapshots--;
        }
        /* The manifest's fault (damaged or missing chunks), not the
         * catalog's or the machine's, which are said as they are. */
        if (k == -BERTH_ECORRUPT || k == -BERTH_EHOSTILE)
                return refuse(id, k);
        return k < 0 ? k : 0;
}

/* Marks the snapshots in snapshots/ that are not in p->seen yet (all of
 * them in phase A), and adds them there. */
static int mark_snapshots(struct pruner *p, struct backend *be)
{
        struct id_list now = { 0 };
        int k = backend_list(be, "snapshots/", collect_id, &now);
        if (k < 0 && !error_message())
                error_set(k, "cannot list the snapshots of %s: %s", p->r->path, berth_strerror(k));
        size_t nseen = p->seen.n;
        for (size_t i = 0; i < now.n && k >= 0; i++) {
                if (nseen && bsearch(&now.v[i], p->seen.v, nseen, sizeof *p->seen.v, cmp_str))
                        continue;
                tick(p, p->res->snapshots, now.v[i]);
                k = mark_snapshot(p, now.v[i]);
                if (k == -BERTH_ECORRUPT && p->o->lease && !p->w) {
                        /* Shared storage, phase A: another host may have
                         * committed it after this reader's cache sync, its
                         * packs not indexed here yet.  Phase B, after the
                         * writer's sync, marks it or refuses. */
                        log_debug("snapshot %s cannot be read yet: left to phase B", now.v[i]);
                        error_clear();
                        k = 0;
                        continue;
                }
                if (k == 0)
                        id_list_add(&p->seen, now.v[i]);
                if (k == 0)
                        k = cancelled(p);
        }
        id_list_free(&now);
        if (k == 0 && p->seen.n > 1)
                qsort(p->seen.v, p->seen.n, sizeof *p->seen.v, cmp_str);
        if (k == 0)
                k = catalog_mark_commit(p->r->catalog);
        return k;
}

/* ---- phase B: condemning and repacking -------------------------------------------- */

static bool repack_wanted(const struct pruner *p, const struct catalog_pack_usage *u)
{
        if (u->used_chunks == 0 || u->size == 0 || u->used_bytes >= u->size)
                return false;
        return (u->size - u->used_bytes) * 100 > (uint64_t)p->o->max_unused * u->size;
}

/* The time a condemnation is recorded with.  On shared storage the grace
 * period counts from its publication (publish_condemned), which comes
 * after: until then the condemnation is "unpublished", and a crash in
 * between cannot shorten the grace that other hosts rely on. */
static int64_t condemn_time(const struct pruner *p)
{
        return p->o->lease ? CATALOG_CONDEMNED_UNPUBLISHED : p->now;
}

/* Condemns the packs nothing uses (the caller's transaction); counts what
 * a repack would do.  In a dry run, only counts. */
static int condemn_unused(void *ud, const struct catalog_pack_usage *u)
{
        struct pruner *p = ud;
        p->res->packs++;
        tick(p, p->res->packs, "");
        if (repack_wanted(p, u)) {
                p->repack_candidates++;
                p->repack_bytes += u->used_bytes;
                if (p->o->dry_run) {
                        p->res->packs_repacked++;
                        p->res->chunks_repacked += u->used_chunks;
                        p->res->chunks_removed += u->chunks - u->used_chunks;
                        p->res->packs_deleted++;
                        p->res->bytes_deleted += u->size;
                }
                return 0;
        }
        if (u->used_chunks != 0)
                return 0;
        p->res->packs_unused++;
        if (p->o->dry_run) {
                p->res->chunks_removed += u->chunks;
                p->res->packs_deleted++;
                p->res->bytes_deleted += u->size;
                return 0;
        }
        int64_t n = catalog_pack_condemn(p->w->catalog, u->id, condemn_time(p));
        if (n < 0)
                return (int)n;
        p->res->chunks_removed += (uint64_t)n;
        return 0;
}

/* Runs body inside one transaction of the writer's catalog. */
static int in_transaction(struct pruner *p, int (*body)(struct pruner *p))
{
        struct catalog *c = p->w->catalog;
        int k = catalog_begin(c);
        if (k == 0)
                k = body(p);
        if (k < 0) {
                catalog_rollback(c);
                return k;
        }
        return catalog_commit(c);
}

/* Condemns the packs of the batch that no used chunk is recorded in any
 * more (the reader's connection sees what store_flush() committed).  One
 * that still holds some is left live: the repack wrote a pack with its very
 * bytes (the same chunks in the same order: a repack that a killed prune
 * had done already), and the chunks were recorded in it again. */
static int condemn_batch(struct pruner *p)
{
        for (size_t i = 0; i < p->nbatch; i++) {
                int64_t used = catalog_marked_in_pack(p->r->catalog, p->batch[i]);
                if (used < 0)
                        return (int)used;
                if (used > 0) {
                        log_debug("pack %lld is its own repack: kept", (long long)p->batch[i]);
                        continue;
                }
                int64_t n = catalog_pack_condemn(p->w->catalog, p->batch[i], condemn_time(p));
                if (n < 0)
                        return (int)n;
                p->res->chunks_removed += (uint64_t)n;
                p->res->packs_repacked++;
        }
        return 0;
}

static int copy_chunk(void *ud, const struct catalog_chunk *ch)
{
        struct pruner *p = ud;
        uint8_t id[HASH_LEN];
        /* Read verified (each record decoded once for its chunks) and
         * stored again in new records with the other kept chunks. */
        int k = store_read(p->rs, ch->id, &p->chunk);
        if (k < 0)
                return k;
        k = store_put(p->ws, ch->flags & PACK_F_TREE, p->chunk.data, p->chunk.len, id);
        if (k < 0)
                return k;
        if (memcmp(id, ch->id, HASH_LEN) != 0)
                return error_set(BERTH_ECORRUPT, "a repacked chunk changed its id");
        p->res->chunks_repacked++;
        return cancelled(p);
}

/* catalog_pack_usage_foreach() callback: collects the next batch of packs
 * to repack (1 stops when it is full). */
static int collect_repack(void *ud, const struct catalog_pack_usage *u)
{
        struct pruner *p = ud;
        p->after = u->id;
        if (!repack_wanted(p, u))
                return 0;
        char name[128];
        uint64_t have;
        pack_path(u->hash, name, sizeof name);
        /* A lost or truncated pack cannot be copied: `check` reports it. */
        if (backend_stat(p->w->be, name, &have) < 0 || have != u->size) {
                log_debug("not repacking %s: it is missing or damaged", name);
                return 0;
        }
        p->batch[p->nbatch++] = u->id;
        return p->nbatch == REPACK_BATCH;
}

/* Repacks batch after batch: each is collected with no statement left
 * open, copied, flushed (the copies durable and re-pointed), and only
 * then condemned, in one transaction. */
static int repack(struct pruner *p)
{
        for (;;) {
                p->nbatch = 0;
                int k = catalog_pack_usage_foreach(p->r->catalog, p->after, p->max_pack, collect_repack, p);
                if (k < 0 || p->nbatch == 0)
                        return k;
                for (size_t i = 0; i < p->nbatch && k == 0; i++) {
                        tick(p, p->res->packs_repacked + i, "");
                        k = catalog_marked_foreach_in_pack(p->r->catalog, p->batch[i], copy_chunk, p);
                }
                if (k == 0)
                        k = store_flush(p->ws);
                if (k < 0)
                        return k;
                test_point("after-repack");
                k = cancelled(p);
                if (k == 0)
                        k = in_transaction(p, condemn_batch);
                if (k < 0 || p->nbatch < REPACK_BATCH)
                        return k;
        }
}

static int count_new(void *ud, int64_t id, const uint8_t hash[CATALOG_HASH_LEN], uint64_t size, uint32_t nchunks)
{
        struct pruner *p = ud;
        if (id > p->last_old) {
                p->res->packs_written++;
                p->res->bytes_written += size;
        }
        return 0;
}

static int condemn_all_unused(struct pruner *p)
{
        return catalog_pack_usage_foreach(p->r->catalog, 0, p->max_pack, condemn_unused, p);
}

/* "condemned/<hex>" for a pack hash. */
static void condemned_name(const uint8_t hash[HASH_LEN], char *buf, size_t size)
{
        char hex[2 * HASH_LEN + 1];
        hex_encode(hash, HASH_LEN, hex);
        snprintf(buf, size, "condemned/%s", hex);
}

static int publish_condemned(void *ud, int64_t id, const uint8_t hash[CATALOG_HASH_LEN], uint64_t size)
{
        struct pruner *p = ud;
        char name[128];
        (void)size;
        condemned_name(hash, name, sizeof name);
        int k = backend_put(p->w->be, name, "", 0);
        if (k < 0)
                return k;
        test_point("after-publish");
        /* Published now (or by a run that stopped right after): the grace
         * period starts here. */
        k = catalog_pack_published(p->w->catalog, id, now_ns() / 1000000000);
        return k < 0 ? k : 0;
}

static int phase_b(struct pruner *p)
{
        int k = cancelled(p);
        if (k == 0)
                k = mark_snapshots(p, p->w->be);
        if (k < 0)
                return k;
        test_point("after-mark");

        k = cancelled(p);
        if (k == 0)
                k = in_transaction(p, condemn_all_unused);
        if (k < 0)
                return k;
        /* Shared storage: every condemnation (this run's and any a killed
         * run left unpublished) told to the other hosts.  A host that
         * deduplicates against a pack before it sees the marker is what
         * phase C's revive_if_used() is for. */
        test_point("before-publish");
        if (p->o->lease) {
                k = cancelled(p);
                if (k == 0)
                        k = catalog_condemned_foreach(p->w->catalog, INT64_MAX, SIZE_MAX, publish_condemned, p);
                if (k < 0)
                        return k;
        }
        test_point("after-condemn");
        if (!p->repack_candidates)
                return 0;

        k = catalog_pack_max_id(p->w->catalog, &p->last_old);
        if (k == 0)
                k = store_open(p->w, true, &p->ws);
        if (k < 0)
                return k;
        store_set_rewrite(p->ws);
        k = repack(p);
        if (k == 0 && p->o->lease)
                k = catalog_condemned_foreach(p->w->catalog, INT64_MAX, SIZE_MAX, publish_condemned, p);
        /* Written: the packs recorded anew.  A repack may write a pack
         * whose very bytes are there already (a killed prune's copy, or a
         * pack just condemned, live again): that frees nothing less. */
        int n = catalog_pack_foreach(p->w->catalog, count_new, p);
        return k < 0 ? k : n;
}

/* ---- phase C: deleting ------------------------------------------------------------- */

struct condemned {
        int64_t id;
        uint8_t hash[HASH_LEN];
        uint64_t size;
};

struct condemned_list {
        struct condemned v[DELETE_BATCH];
        size_t n;
};

static int collect_condemned(void *ud, int64_t id, const uint8_t hash[CATALOG_HASH_LEN], uint64_t size)
{
        struct condemned_list *l = ud;
        if (l->n < DELETE_BATCH) {
                l->v[l->n] = (struct condemned){ .id = id, .size = size };
                memcpy(l->v[l->n].hash, hash, HASH_LEN);
                l->n++;
        }
        return 0;
}

static int count_condemned(void *ud, int64_t id, const uint8_t hash[CATALOG_HASH_LEN], uint64_t size)
{
        struct pruner *p = ud;
        if (p->o->dry_run) {
                p->res->packs_deleted++;
                p->res->bytes_deleted += size;
        } else
                p->res->packs_waiting++;
        return 0;
}

/* Shared storage: 1 when a snapshot marked in this run (phase B's, or one
 * committed since) uses a chunk of condemned pack c: the pack is recorded
 * live again and its marker removed; 0 when nothing uses it; -errno. */
static int revive_if_used(struct pruner *p, const struct condemned *c, const char *name)
{
        struct pack_entry *e = NULL;
        size_t n = 0;
        int k = pack_read_trailer(p->w->keys, p->w->be, name, c->size, &e, &n, NULL);
        if (k == -ENOENT)
                return 0;
        if (k < 0)
                return error_message() ? k : error_set(k, "cannot read %s: %s", name, berth_strerror(k));
        bool used = false;
        for (size_t i = 0; i < n && !used && k >= 0; i++) {
                /* A chunk stored again in a live pack (a host that saw the
                 * condemnation wrote it anew) needs nothing from this one. */
                struct catalog_chunk ch;
                k = catalog_chunk_get(p->w->catalog, e[i].id, &ch);
                if (k < 0)
                        break;
                if (k == 1 && ch.pack != c->id)
                        continue;
                k = catalog_mark_add(p->r->catalog, e[i].id);
                used = k == 0;
        }
        free(e);
        if (k >= 0)
                k = catalog_mark_commit(p->r->catalog);
        if (k < 0 || !used)
                return k < 0 ? k : 0;
        log_notice("%s, condemned, is used by a snapshot written since: kept", name);
        k = catalog_pack_drop(p->w->catalog, c->id);
        if (k == 0)
                k = repo_index_pack(p->w, name, c->size);
        if (k >= 0) {
                char marker[128];
                condemned_name(c->hash, marker, sizeof marker);
                k = backend_delete(p->w->be, marker);
                if (k == -ENOENT)
                        k = 0;
        }
        if (k < 0)
                return k;
        p->res->packs_revived++;
        return 1;
}

/* Packs condemned at or before this time (unix seconds) may go. */
static int64_t grace_start(const struct pruner *p)
{
        return p->now - (int64_t)MIN(p->o->grace, (uint64_t)INT64_MAX / 2);
}

static int phase_c(struct pruner *p)
{
        struct catalog *c = p->w->catalog;
        int64_t before = grace_start(p);
        int k0 = cancelled(p);
        if (k0 < 0)
                return k0;
        /* Shared storage: the snapshots other hosts committed since phase
         * B's marking protect their chunks too (revive_if_used). */
        if (p->o->lease) {
                /* Their packs indexed first: the marking reads their
                 * manifests through this catalog. */
                int k = repo_recover_open(p->w, true);
                if (k == 0)
                        k = mark_snapshots(p, p->w->be);
                if (k < 0)
                        return k;
        }
        for (;;) {
                struct condemned_list l = { .n = 0 };
                int k = catalog_condemned_foreach(c, before, DELETE_BATCH, collect_condemned, &l);
                if (k < 0)
                        return k;
                for (size_t i = 0; i < l.n; i++) {
                        char name[128];
                        pack_path(l.v[i].hash, name, sizeof name);
                        tick(p, p->res->packs_deleted, name);
                        /* Never a deletion without a live lease. */
                        k = cancelled(p);
                        if (k < 0)
                                return k;
                        if (p->o->lease) {
                                k = revive_if_used(p, &l.v[i], name);
                                if (k < 0)
                                        return k;
                                if (k > 0)
                                        continue;
                        }
                        k = backend_delete(p->w->be, name);
                        if (k == -EROFS || k == -EPERM || k == -EACCES)
                                return error_set(k,
                                                 "cannot delete %s from %s: %s; the server may be append-only "
                                                 "(it keeps every pack): the unused packs stay condemned, "
                                                 "nothing uses them, and a prune where deleting is allowed "
                                                 "removes them",
                                                 name, p->w->path,
                                                 error_message() ? error_message() : berth_strerror(k));
                        if (k < 0 && k != -ENOENT)
                                return error_message() ? k : error_set(k, "cannot delete %s: %s", name,
                                                                       berth_strerror(k));
                        if (k == 0) {
                                p->res->packs_deleted++;
                                p->res->bytes_deleted += l.v[i].size;
                        }
                        test_point("after-delete");
                        k = catalog_pack_drop(c, l.v[i].id);
                        if (k < 0)
                                return k;
                        if (p->o->lease) {
                                char marker[128];
                                condemned_name(l.v[i].hash, marker, sizeof marker);
                                k = backend_delete(p->w->be, marker);
                                if (k < 0 && k != -ENOENT)
                                        return k;
                        }
                        k = cancelled(p);
                        if (k < 0)
                                return k;
                }
                if (l.n < DELETE_BATCH)
                        break;
        }
        return catalog_condemned_foreach(c, INT64_MAX, SIZE_MAX, count_condemned, p);
}

/* ---- the lease (shared storage) ----------------------------------------------------- */

#define LEASE_NAME "locks/prune"
#define LEASE_TTL (6 * 3600)       /* seconds; a prune that dies leaves it this long at most */

/* The lease a running prune holds: renewed by a thread every third of its
 * time to live (BERTH_TEST_LEASE_SECONDS: the tests' shorter one), each
 * time a compare-and-swap of the object as we last wrote it, so that it
 * never overwrites a lease another prune took.  The prune itself checks
 * it (lease_check) in every loop and before every condemnation and
 * deletion: lost, or within a sixth of its time of running out (renewals
 * failing), it stops there. */
struct lease {
        struct backend *be;
        int64_t ttl_ns;
        char owner[33];
        char *host;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        pthread_t thread;
        bool running, stop;
        char *text;                /* the object as we last wrote it */
        int64_t expires_ns;        /* its expiry */
        char *lost;                /* why it is lost (another prune holds it), NULL: held */
};

static int64_t lease_ttl_ns(void)
{
        const char *e = getenv("BERTH_TEST_LEASE_SECONDS");
        long v = e ? strtol(e, NULL, 10) : 0;
        return (v > 0 ? (int64_t)v : LEASE_TTL) * 1000000000;
}

static char *lease_text(const struct lease *l, int64_t expires_ns)
{
        json_object *o = json_object_new_object();
        json_object_object_add(o, "owner", json_object_new_string(l->owner));
        json_object_object_add(o, "host", json_object_new_string(l->host));
        json_object_object_add(o, "pid", json_object_new_int64(getpid()));
        /* Rounded up: a reader (seconds) never sees it end earlier. */
        json_object_object_add(o, "expires", json_object_new_int64((expires_ns + 999999999) / 1000000000));
        char *text = xasprintf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        return text;
}

static int lease_parse(const struct buf *b, int64_t *ret_expires, char **ret_host, int64_t *ret_pid)
{
        _cleanup_free_ char *text = xstrndup((const char *)b->data, b->len);
        json_object *o = json_tokener_parse(text), *v;
        *ret_expires = 0;
        *ret_pid = 0;
        *ret_host = NULL;
        if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return -BERTH_ECORRUPT;
        }
        if (json_object_object_get_ex(o, "expires", &v) && json_object_is_type(v, json_type_int))
                *ret_expires = json_object_get_int64(v);
        if (json_object_object_get_ex(o, "pid", &v) && json_object_is_type(v, json_type_int))
                *ret_pid = json_object_get_int64(v);
        if (json_object_object_get_ex(o, "host", &v) && json_object_is_type(v, json_type_string))
                *ret_host = escape_text(json_object_get_string(v));
        json_object_put(o);
        return 0;
}

/* Who holds the lease now, for a message. */
static char *lease_holder(struct backend *be)
{
        struct buf b = { 0 };
        int64_t expires, pid;
        char *host = NULL;
        int k = backend_get(be, LEASE_NAME, 64 * 1024, &b);
        if (k == -ENOENT)
                return xstrdup("its object was deleted");
        if (k == 0)
                k = lease_parse(&b, &expires, &host, &pid);
        buf_free(&b);
        if (k < 0) {
                error_clear();
                return xstrdup("another prune holds it");
        }
        char when[64];
        format_time(expires * 1000000000, when, sizeof when);
        char *s = xasprintf("host %s, pid %lld holds it until %s", host ? host : "?", (long long)pid, when);
        free(host);
        return s;
}

static void *lease_keeper(void *ud)
{
        struct lease *l = ud;
        int64_t interval = l->ttl_ns / 3;
        pthread_mutex_lock(&l->mu);
        while (!l->stop) {
                int64_t due = now_ns() + interval;
                struct timespec ts = { due / 1000000000, due % 1000000000 };
                while (!l->stop && now_ns() < due)
                        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
                if (l->stop)
                        break;
                int64_t expires = now_ns() + l->ttl_ns;
                char *old = xstrdup(l->text), *text = lease_text(l, expires);
                pthread_mutex_unlock(&l->mu);
                int k = backend_replace(l->be, LEASE_NAME, old, strlen(old), text, strlen(text));
                char *why = k == -ESTALE || k == -ENOENT ? lease_holder(l->be) : NULL;
                if (k < 0 && !why)
                        log_warning("cannot renew the prune lease %s/%s: %s%s", l->be->where, LEASE_NAME,
                                    error_message() ? error_message() : berth_strerror(k),
                                    k == -EOPNOTSUPP ? "; prune stops before it runs out" : "; trying again");
                error_clear();
                free(old);
                pthread_mutex_lock(&l->mu);
                if (k == 0) {
                        free(l->text);
                        l->text = text;
                        l->expires_ns = expires;
                        interval = l->ttl_ns / 3;
                        log_debug("renewed the prune lease of %s", l->be->where);
                        continue;
                }
                free(text);
                if (why) {
                        l->lost = why;
                        break;
                }
                if (k == -EOPNOTSUPP)
                        break;
                interval = MAX(l->ttl_ns / 12, 100 * 1000000);
        }
        pthread_mutex_unlock(&l->mu);
        return NULL;
}

static int lease_check(const struct lease *cl)
{
        struct lease *l = (struct lease *)cl;
        if (!l || !l->text)
                return 0;
        pthread_mutex_lock(&l->mu);
        _cleanup_free_ char *lost = l->lost ? xstrdup(l->lost) : NULL;
        int64_t expires = l->expires_ns;
        pthread_mutex_unlock(&l->mu);
        if (lost)
                return error_set(BERTH_ELOCKED,
                                 "lost the prune lease on %s (%s): this prune stops here, before deleting anything "
                                 "more; what it did so far is safe, and the prune holding the lease carries on",
                                 l->be->where, lost);
        if (now_ns() >= expires - l->ttl_ns / 6) {
                char when[64];
                format_time(expires, when, sizeof when);
                return error_set(BERTH_ELOCKED,
                                 "the prune lease on %s runs out at %s and could not be renewed: this prune stops "
                                 "here, before deleting anything more; nothing is lost, run it again",
                                 l->be->where, when);
        }
        return 0;
}

static int lease_start(struct lease *l)
{
        l->running = pthread_create(&l->thread, NULL, lease_keeper, l) == 0;
        if (!l->running)
                return error_set(EAGAIN, "cannot start the thread that renews the prune lease");
        return 0;
}

/* Takes the lease: creates the object, or replaces an expired one (only
 * as it was read: two hosts taking over at once cannot both win). */
static int lease_take(struct lease *l, struct backend *be)
{
        uint8_t rnd[16];
        *l = (struct lease){ .be = be, .ttl_ns = lease_ttl_ns() };
        pthread_mutex_init(&l->mu, NULL);
        pthread_cond_init(&l->cv, NULL);
        if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
                return error_set(errno, "cannot get random bytes: %s", strerror(errno));
        hex_encode(rnd, sizeof rnd, l->owner);
        l->host = host_name();
        int64_t expires = now_ns() + l->ttl_ns;
        char *text = lease_text(l, expires);
        for (int attempt = 0; attempt < 3; attempt++) {
                int k = backend_put(be, LEASE_NAME, text, strlen(text));
                if (k == 1) {
                        l->text = text;
                        l->expires_ns = expires;
                        return lease_start(l);
                }
                if (k < 0 && k != -EEXIST) {
                        free(text);
                        return error_message() ? k : error_set(k, "cannot create %s: %s", LEASE_NAME, berth_strerror(k));
                }
                error_clear();
                struct buf b = { 0 };
                k = backend_get(be, LEASE_NAME, 64 * 1024, &b);
                if (k == -ENOENT)
                        continue;  /* released meanwhile */
                if (k < 0) {
                        free(text);
                        return error_set(k, "cannot read the prune lease %s/%s: %s", be->where, LEASE_NAME,
                                         berth_strerror(k));
                }
                int64_t held_until, pid;
                _cleanup_free_ char *holder = NULL;
                k = lease_parse(&b, &held_until, &holder, &pid);
                if (k == 0 && held_until > now_ns() / 1000000000) {
                        char when[64];
                        buf_free(&b);
                        format_time(held_until * 1000000000, when, sizeof when);
                        free(text);
                        return error_set(BERTH_ELOCKED,
                                         "another prune holds the lease on %s (host %s, pid %lld, until %s); try "
                                         "again later, or delete the object %s if that prune is gone",
                                         be->where, holder ? holder : "?", (long long)pid, when, LEASE_NAME);
                }
                log_notice("the prune lease of %s (host %s) has expired: taking it over", be->where,
                           holder ? holder : "?");
                k = backend_replace(be, LEASE_NAME, b.data, b.len, text, strlen(text));
                if (k == -EOPNOTSUPP) {
                        /* A store without compare-and-swap: as before. */
                        error_clear();
                        k = backend_delete(be, LEASE_NAME);
                        buf_free(&b);
                        if (k < 0 && k != -ENOENT) {
                                free(text);
                                return k;
                        }
                        continue;
                }
                buf_free(&b);
                if (k == 0) {
                        l->text = text;
                        l->expires_ns = expires;
                        return lease_start(l);
                }
                if (k != -ESTALE && k != -ENOENT) {
                        free(text);
                        return k;
                }
                error_clear();  /* another took it over first, or released it: look again */
        }
        free(text);
        return error_set(BERTH_ELOCKED, "the prune lease on %s keeps changing hands: try again later", be->where);
}

/* Stops renewing, and deletes the lease if it is still ours. */
static void lease_release(struct lease *l)
{
        if (!l->be)
                return;
        if (l->running) {
                pthread_mutex_lock(&l->mu);
                l->stop = true;
                pthread_cond_signal(&l->cv);
                pthread_mutex_unlock(&l->mu);
                pthread_join(l->thread, NULL);
                l->running = false;
        }
        /* The prune's own error (if any) is what is reported. */
        _cleanup_free_ char *saved = error_message() ? xstrdup(error_message()) : NULL;
        struct buf b = { 0 };
        if (l->text && !l->lost && backend_get(l->be, LEASE_NAME, 64 * 1024, &b) == 0 &&
            b.len == strlen(l->text) && memcmp(b.data, l->text, b.len) == 0 && backend_delete(l->be, LEASE_NAME) < 0)
                log_warning("cannot remove the prune lease %s/%s: it expires by itself", l->be->where, LEASE_NAME);
        error_clear();
        if (saved)
                error_set(EIO, "%s", saved);
        buf_free(&b);
        free(l->text);
        free(l->lost);
        free(l->host);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        *l = (struct lease){ 0 };
}

/* ---- the whole ---------------------------------------------------------------------- */

/* A repository over SSH is refused: the far side's own catalog would
 * still list the deleted packs' chunks, and a copy or migrate to it would
 * then skip sending them. */
static int local_only(const struct pruner *p, struct repo *r)
{
        if (backend_is_local(r->be) || p->o->lease)
                return 0;
        return error_set(EOPNOTSUPP,
                         "prune works on a repository on this host only: run it where %s lives "
                         "(ssh HOST berth -r PATH prune), so that its catalog stays true",
                         r->path);
}

static int prune_run(struct pruner *p)
{
        const struct prune_options *o = p->o;
        int k;

        if (!o->dry_run) {
                /* First a writer's recovery: packs killed writers left are
                 * indexed (so phase B can reclaim them) and tmp/ emptied. */
                struct repo *w0 = NULL;
                k = o->open(o->open_ud, REPO_WRITE, &w0);
                if (k < 0)
                        return k;
                k = local_only(p, w0);
                repo_free(w0);
                if (k < 0)
                        return k;
        }
        /* Phase A, reading. */
        k = o->open(o->open_ud, REPO_READ, &p->r);
        if (k < 0)
                return k;
        k = local_only(p, p->r);
        if (k < 0)
                return k;
        k = catalog_pack_max_id(p->r->catalog, &p->max_pack);
        if (k == 0)
                k = store_open(p->r, false, &p->rs);
        if (k == 0)
                k = catalog_mark_begin(p->r->catalog);
        if (k == 0)
                k = mark_snapshots(p, p->r->be);
        if (k < 0)
                return k;
        test_point("after-scan");

        if (o->dry_run) {
                /* The plan as phase B would make it now. */
                k = catalog_pack_usage_foreach(p->r->catalog, 0, p->max_pack, condemn_unused, p);
                if (k == 0)
                        k = catalog_condemned_foreach(p->r->catalog, grace_start(p), SIZE_MAX, count_condemned, p);
                /* New packs hold the used bytes again, plus their trailers. */
                p->res->bytes_written = p->repack_bytes;
                return k;
        }

        /* Phases B and C, writing: waits for a running backup. */
        k = o->open(o->open_ud, REPO_WRITE, &p->w);
        if (k < 0)
                return k;
        k = phase_b(p);
        if (k == -BERTH_ECORRUPT && o->lease) {
                /* Shared storage: a host that had not yet seen a
                 * condemnation may have written a snapshot whose chunks
                 * are in the condemned pack only, which this catalog no
                 * longer lists.  snapshot_prune() revives the condemned
                 * packs and starts again. */
                uint64_t waiting = p->res->packs_waiting;
                if (catalog_condemned_foreach(p->r->catalog, INT64_MAX, SIZE_MAX, count_condemned, p) == 0 &&
                    p->res->packs_waiting > waiting)
                        p->revive_all = true;
                p->res->packs_waiting = waiting;
        }
        if (k == 0)
                k = phase_c(p);
        return k;
}

static int collect_all_condemned(void *ud, int64_t id, const uint8_t hash[CATALOG_HASH_LEN], uint64_t size)
{
        struct condemned_list *l = ud;
        if (l->n == DELETE_BATCH)
                return 1;
        l->v[l->n++] = (struct condemned){ .id = id, .size = size };
        memcpy(l->v[l->n - 1].hash, hash, CATALOG_HASH_LEN);
        return 0;
}

/* Shared storage: every condemned pack recorded live again (its marker
 * removed); a later run condemns again what is still unused. */
static int revive_all(struct pruner *p)
{
        struct repo *w = NULL;
        int k = p->o->open(p->o->open_ud, REPO_WRITE, &w);
        for (;;) {
                struct condemned_list l = { .n = 0 };
                if (k == 0)
                        k = catalog_condemned_foreach(w->catalog, INT64_MAX, DELETE_BATCH, collect_all_condemned, &l);
                if (k > 0)
                        k = 0;
                for (size_t i = 0; i < l.n && k >= 0; i++) {
                        char name[128], marker[128];
                        pack_path(l.v[i].hash, name, sizeof name);
                        condemned_name(l.v[i].hash, marker, sizeof marker);
                        k = catalog_pack_drop(w->catalog, l.v[i].id);
                        if (k == 0)
                                k = repo_index_pack(w, name, l.v[i].size);
                        if (k >= 0) {
                                k = backend_delete(w->be, marker);
                                k = k == -ENOENT ? 0 : k;
                        }
                        if (k == 0)
                                p->res->packs_revived++;
                }
                if (k < 0 || l.n < DELETE_BATCH)
                        break;
        }
        repo_free(w);
        if (k == 0)
                log_notice("a snapshot uses chunks of packs condemned before its host knew: revived %llu condemned "
                           "pack(s)", (unsigned long long)p->res->packs_revived);
        return k;
}

/* Ends a run that returned k: the writer's catalog flushed to disk when
 * the run succeeded (repo_close()).  Returns k, or the flush's error. */
static int pruner_close(struct pruner *p, int k)
{
        store_free(p->ws);
        store_free(p->rs);
        p->ws = p->rs = NULL;
        if (p->r)
                catalog_mark_end(p->r->catalog);
        /* POSIX record locks belong to the process: closing the writer's
         * lock file releases the reader's lock too, so the writer goes
         * first and the reader is done by then. */
        if (k == 0) {
                k = repo_close(p->w);
                if (k < 0) {
                        _cleanup_free_ char *why = xstrdup(error_message() ? error_message() : berth_strerror(k));
                        error_set(-k, "prune changed the repository, but the catalog could not record it on disk: %s",
                                  why);
                }
        } else
                repo_free(p->w);
        repo_free(p->r);
        p->w = p->r = NULL;
        idset_free(&p->walked);
        id_list_free(&p->seen);
        buf_free(&p->chunk);
        return k;
}

int snapshot_prune(const struct prune_options *o, struct prune_result *ret)
{
        struct prune_result res = { 0 };
        struct lease lease = { 0 };
        struct pruner p = { .o = o, .res = &res, .now = now_ns() / 1000000000 };
        int64_t t0 = mono_ns();

        if (!o->open)
                return error_set(EINVAL, "snapshot_prune() needs an opener");
        if (o->max_unused > 100)
                return error_set(EINVAL, "--max-unused must be a percentage, 0 to 100");
        if (o->lease && !o->dry_run && o->grace == 0)
                return error_set(EINVAL, "prune on shared object storage needs a grace period (--grace, "
                                         "default 1d): another host may still be backing up against a pack "
                                         "condemned now");
        int k = o->lease && !o->dry_run ? lease_take(&lease, o->lease) : 0;
        if (k == 0 && lease.text)
                p.lease = &lease;
        if (k == 0)
                k = prune_run(&p);
        k = pruner_close(&p, k);
        if (k == -BERTH_ECORRUPT && p.revive_all) {
                error_clear();
                uint64_t revived = 0;
                k = revive_all(&p);
                revived = res.packs_revived;
                if (k == 0) {
                        struct lease *held = p.lease;
                        res = (struct prune_result){ .packs_revived = revived };
                        p = (struct pruner){ .o = o, .res = &res, .now = now_ns() / 1000000000, .lease = held };
                        k = prune_run(&p);
                        k = pruner_close(&p, k);
                }
        }
        lease_release(&lease);
        res.bytes_freed = (int64_t)res.bytes_deleted - (int64_t)res.bytes_written;
        res.duration_ns = mono_ns() - t0;
        *ret = res;
        return k;
}
