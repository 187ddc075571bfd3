/* backup.c — backup runs: a walk, then a commit that makes it a snapshot.
 *
 * snapshot_backup_walk() opens the previous snapshot to compare with (the
 * first pass of a two-phase backup, a named snapshot, or the newest of the
 * name), sets up a walker and walks the tree (walk.c, chunkq.c) into a
 * manifest held by a `struct backup_run`.  snapshot_backup_commit() makes
 * the packs durable, writes the snapshot file and indexes it.  Between the
 * two the caller may release the application it quiesced.  This file does
 * not read the tree.
 */
#include <archive.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "walker.h"

int parse_unchanged_fields(const char *s, unsigned *ret)
{
        unsigned m = 0;
        _cleanup_free_ char *copy = xstrdup(s);
        char *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (strcmp(t, "size") == 0)
                        m |= UNCHANGED_SIZE;
                else if (strcmp(t, "mtime") == 0)
                        m |= UNCHANGED_MTIME;
                else if (strcmp(t, "ctime") == 0)
                        m |= UNCHANGED_CTIME;
                else if (strcmp(t, "inode") == 0)
                        m |= UNCHANGED_INODE;
                else
                        return -EINVAL;
        }
        if (!(m & UNCHANGED_SIZE) || !(m & UNCHANGED_MTIME))
                /* size and mtime are the least a change check can rest on */
                return -EINVAL;
        *ret = m;
        return 0;
}

char *host_name(void)
{
        char h[256];
        if (gethostname(h, sizeof h) < 0)
                return xstrdup("localhost");
        h[sizeof h - 1] = 0;
        return xstrdup(h);
}

struct backup_run {
        struct backup_result res;
        uint8_t (*manifest)[HASH_LEN];
        size_t nmanifest;
        char *name, *host, *source, *parent;
        char *parent_problem;          /* why the newest snapshot could not be compared with */
        struct store_stats before;     /* store counters when the run (or its first phase) began */
};

void backup_run_free(struct backup_run *run)
{
        if (!run)
                return;
        free(run->manifest);
        free(run->name);
        free(run->host);
        free(run->source);
        free(run->parent);
        free(run->parent_problem);
        free(run);
}

/* Warns that the previous snapshot (run->parent, or the one named `id`)
 * cannot be compared with, and keeps the reason for a second phase (the
 * first one reports no warnings).  The new snapshot records no parent. */
static void parent_unusable_id(struct walker *w, const char *id)
{
        struct backup_run *run = w->run;
        const char *why = error_message() ? error_message() : "damaged";
        free(run->parent_problem);
        run->parent_problem = xasprintf("the previous snapshot %.12s cannot be read (%s); backing up as if it did "
                                        "not exist: every file is read",
                                        id, why);
        walker_warn(w, "%s", run->parent_problem);
        error_clear();
        if (!w->o->parent_run) {
                free(run->parent);
                run->parent = NULL;
        }
}

void backup_parent_unusable(struct walker *w)
{
        _cleanup_free_ char *id = xstrdup(w->run->parent ? w->run->parent : "of this name");
        parent_unusable_id(w, id);
}

/* Opens the previous manifest to compare with: the parent run (second
 * phase), the given snapshot, or the newest snapshot of the name.  A
 * damaged parent (its snapshot file, or a lost pack holding its manifest)
 * costs speed and one warning, never the backup. */
static int open_parent(struct walker *w, struct backup_run *run)
{
        struct repo *r = w->repo;
        const struct backup_options *o = w->o;
        struct catalog_snapshot pinfo = { 0 };
        struct snapfile parent = { 0 };
        const uint8_t (*ids)[HASH_LEN] = NULL;
        size_t n = 0;
        int k;

        if (o->parent_run) {
                /* Its tree chunks must be readable: make them durable. */
                k = store_flush(w->store);
                if (k < 0)
                        return k;
                ids = (const uint8_t(*)[HASH_LEN])o->parent_run->manifest;
                n = o->parent_run->nmanifest;
                w->prev_started = o->parent_run->res.started;
                run->parent = o->parent_run->parent ? xstrdup(o->parent_run->parent) : NULL;
                run->before = o->parent_run->before;
                if (o->parent_run->parent_problem) {
                        run->parent_problem = xstrdup(o->parent_run->parent_problem);
                        walker_warn(w, "%s", run->parent_problem);
                }
        } else {
                if (o->parent)
                        k = snapshot_resolve(r, o->parent, &pinfo) == 0 ? 1 : -1;
                else
                        k = catalog_snapshot_latest(r->catalog, o->name, INT64_MAX, &pinfo);
                if (k < 0)
                        return k;
                if (k > 0 && snapfile_read(r, pinfo.id, &parent) == 0) {
                        ids = (const uint8_t(*)[HASH_LEN])parent.manifest;
                        n = parent.nmanifest;
                        w->prev_started = parent.info.started;
                        run->parent = xstrdup(pinfo.id);
                } else if (k > 0)
                        parent_unusable_id(w, pinfo.id);
        }
        k = 0;
        if (ids) {
                k = manifest_reader_new(w->store, ids, n, &w->prev);
                if (k == 0) {
                        w->prev_state = manifest_reader_next(w->prev, &w->prev_e);
                        k = w->prev_state < 0 ? w->prev_state : 0;
                }
                if (k < 0) {
                        walker_drop_prev(w);
                        k = 0;
                }
        }
        catalog_snapshot_clear(&pinfo);
        snapfile_clear(&parent);
        return k;
}

/* The time a snapshot is stamped with.  BERTH_TEST_NOW (unix seconds) is
 * for the test suite only (tests/e2e/forget.bats makes dated series for
 * retention with it), not a user setting. */
static int64_t stamp_now(void)
{
        const char *t = getenv("BERTH_TEST_NOW");
        char *end;
        if (t && *t) {
                long long v = strtoll(t, &end, 10);
                if (*end == 0 && v > 0 && v < INT64_MAX / 1000000000)
                        return (int64_t)v * 1000000000;
        }
        return now_ns();
}

int snapshot_backup_walk(struct repo *r, const struct backup_options *o, struct backup_run **ret)
{
        struct backup_run *run = xcalloc(1, sizeof *run);
        struct walker w = { .repo = r, .o = o, .res = &run->res, .run = run };
        int k;

        run->res.started = stamp_now();
        w.unchanged = o->unchanged ? o->unchanged : UNCHANGED_DEFAULT;
        w.pages = o->page_size ? o->page_size : r->cfg.page_size;
        _cleanup_close_ int root = open(o->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct stat rst;
        if (root < 0 || fstat(root, &rst) < 0) {
                k = error_set(errno, "cannot back up '%s': %s", o->path, strerror(errno));
                goto out;
        }
        w.root_dev = rst.st_dev;
        k = repo_store(r, &w.store);
        if (k < 0)
                goto out;
        if (store_outstanding(w.store) != 0) {
                k = error_set(EBUSY, "another backup's chunks are still in flight");
                goto out;
        }
        chunkq_init(&w);
        store_get_stats(w.store, &run->before);
        if (store_missing_packs(w.store))
                walker_warn(&w,
                            "%zu pack(s) listed in the catalog are missing or truncated: data they held is stored "
                            "again where this backup finds it; run 'berth check' to see which snapshots are damaged",
                            store_missing_packs(w.store));
        k = open_parent(&w, run);
        if (k < 0)
                goto out;

        w.disk = archive_read_disk_new();
        w.ae = archive_entry_new();
        if (!w.disk || !w.ae)
                abort();
        archive_read_disk_set_standard_lookup(w.disk);
        archive_read_disk_set_symlink_physical(w.disk);
        k = manifest_writer_new(w.store, &r->tree_chunker, &w.mw);
        if (k < 0)
                goto out;

        k = walker_walk(&w, root, &rst);
        if (k == 0)
                k = chunkq_finish(&w);
        if (k == 0)
                k = manifest_writer_finish(w.mw, &run->manifest, &run->nmanifest);
        if (k < 0)
                goto out;
        walker_progress(&w, true);
        log_debug("walk of '%s' took %.3fs", o->path, (double)(now_ns() - run->res.started) / 1e9);
        run->res.complete = run->res.skipped == 0;
        run->name = xstrdup(o->name);
        run->host = o->host ? xstrdup(o->host) : host_name();
        run->source = realpath(o->path, NULL);
        if (!run->source)
                run->source = xstrdup(o->path);
        *ret = TAKE_PTR(run);
out:
        walker_free(&w);
        backup_run_free(run);
        return k;
}

int snapshot_backup_commit(struct repo *r, struct backup_run *run, const char *meta, int64_t quiesce_ns,
                           struct backup_result *ret)
{
        struct snapfile f = { 0 };
        struct store *s;
        struct backup_result *res = &run->res;
        int k = repo_store(r, &s);
        if (k < 0)
                return k;
        f.info = (struct catalog_snapshot){
                .name = xstrdup(run->name),
                .host = xstrdup(run->host),
                .source = xstrdup(run->source),
                .started = res->started,
                .status = xstrdup(res->complete ? "complete" : "incomplete"),
                .files = res->files,
                .dirs = res->dirs,
                .bytes = res->bytes,
                .files_read = res->files_read,
                .files_reused = res->files_reused,
                .bytes_read = res->bytes_read,
                .warnings = res->warnings,
                .parent = run->parent ? xstrdup(run->parent) : NULL,
                .meta = meta ? xstrdup(meta) : NULL,
        };
        f.manifest = xmalloc(run->nmanifest * HASH_LEN);
        memcpy(f.manifest, run->manifest, run->nmanifest * HASH_LEN);
        f.nmanifest = run->nmanifest;
        f.quiesce_ns = quiesce_ns;
        k = snapshot_commit(r, s, &f, &run->before);
        if (k == 0) {
                struct store_stats ss;
                store_get_stats(s, &ss);
                res->chunks_new = ss.chunks_new - run->before.chunks_new;
                res->chunks_dup = ss.chunks_dup - run->before.chunks_dup;
                res->finished = f.info.finished;
                res->bytes_added = f.info.bytes_added;
                memcpy(res->id, f.info.id, sizeof res->id);
                res->index_bytes = store_index_bytes(s);
                res->index_chunks = (uint64_t)catalog_chunk_count(r->catalog);
                *ret = *res;
        }
        snapfile_clear(&f);
        return k;
}

int snapshot_backup(struct repo *r, const struct backup_options *o, struct backup_result *ret)
{
        struct backup_run *run;
        int k = snapshot_backup_walk(r, o, &run);
        if (k < 0)
                return k;
        k = snapshot_backup_commit(r, run, o->meta, o->quiesce_ns, ret);
        backup_run_free(run);
        return k;
}

int snapshot_commit(struct repo *r, struct store *s, struct snapfile *f, const struct store_stats *before)
{
        int64_t t0 = mono_ns();
        int k = store_flush(s);
        if (k < 0)
                return k;
        int64_t t1 = mono_ns();
        struct store_stats ss;
        store_get_stats(s, &ss);
        f->info.bytes_added = ss.bytes_added - before->bytes_added;
        f->info.finished = stamp_now();
        /* The packs are durable (store_flush); now the snapshot file, then
         * the catalog row that makes it visible. */
        k = snapfile_commit(r, s, f);
        log_debug("commit: flush %.3fs, snapshot file and index %.3fs", (double)(t1 - t0) / 1e9,
                  (double)(mono_ns() - t1) / 1e9);
        return k;
}
