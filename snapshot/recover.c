/* recover.c — rebuilding the catalog's view of a repository from its files.
 *
 * Two callers: every writer, at open, indexes what a crashed writer left
 * in the repository but did not record (its packs, and the snapshot files
 * it had announced: both listed through the backend), and removes its
 * temporary files from the local spool, tmp/; `catalog rebuild` builds a
 * whole new catalog from the packs and snapshot files alone and swaps it in.
 * Recovery never deletes data: a pack or snapshot file that does not
 * verify is left for `check` to report.  Opening, locking and the
 * configuration are repo.c's; references are resolve.c's.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* catalog rebuild builds its new catalog in tmp/ under this name. */
#define REBUILD_NAME "catalog-rebuild.db"

/* Removes everything in tmp/ but, when `keep` is set, the files whose name
 * starts with it. */
static int clean_tmp(struct repo *r, const char *keep)
{
        /* Holding the writer lock, anything in tmp/ belongs to a writer
         * that died: only writers use tmp/ (readers, running alongside,
         * never do), and there is one writer at a time. */
        DIR *d;
        int k = opendir_at(r->spool_dirfd, ".", 0, &d);
        if (k < 0)
                return k;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (dot_or_dotdot(de->d_name))
                        continue;
                if (keep && strncmp(de->d_name, keep, strlen(keep)) == 0)
                        continue;
                rm_rf_at(r->spool_dirfd, de->d_name);
        }
        closedir(d);
        return 0;
}

struct recover_state {
        struct repo *repo;
        bool all;               /* index every snapshot file, announced or not */
        char **intents;         /* ids this repository's writers announced */
        size_t nintents;
        uint64_t packs;
        struct snapfile *snaps;
        size_t nsnaps, cap;
};

int recover_record_pack(struct catalog *c, const uint8_t hash[HASH_LEN], uint64_t size,
                        const struct pack_entry *entries, size_t n)
{
        int64_t pack_id;
        int k = catalog_begin(c);
        if (k == 0)
                k = catalog_pack_add(c, hash, size, (uint32_t)n, &pack_id);
        for (size_t i = 0; k >= 0 && i < n; i++) {
                struct catalog_chunk ch = { .pack = pack_id, .offset = entries[i].offset,
                                            .stored_len = entries[i].stored_len, .raw_len = entries[i].raw_len,
                                            .flags = entries[i].flags, .inner = entries[i].inner };
                memcpy(ch.id, entries[i].id, HASH_LEN);
                k = catalog_chunk_add(c, &ch);
        }
        if (k < 0) {
                catalog_rollback(c);
                return k;
        }
        return catalog_commit(c);
}

/* backend_list() callback for "packs/": indexes a pack the catalog lacks. */
static int recover_pack(void *ud, const char *name, uint64_t size)
{
        struct recover_state *st = ud;
        struct catalog *c = st->repo->catalog;
        uint8_t hash[HASH_LEN];
        struct pack_entry *entries = NULL;
        size_t n = 0;

        if (pack_name_parse(name, hash) < 0)
                return 0;
        int k = catalog_pack_known(c, hash);
        if (k != 0)
                return k < 0 ? k : 0;
        uint8_t actual[HASH_LEN];
        if (pack_read_trailer(st->repo->keys, st->repo->be, name, size, &entries, &n, actual) < 0 ||
            memcmp(actual, hash, HASH_LEN) != 0) {
                /* Left for `check` to report; recovery does not delete data. */
                _cleanup_free_ char *object = xasprintf("pack %s", name);
                repo_note_damage(st->repo, object, "is damaged",
                                 error_message() ? error_message() : "its contents do not match its name");
                error_clear();
                free(entries);
                return 0;
        }
        k = recover_record_pack(c, hash, size, entries, n);
        free(entries);
        if (k < 0)
                return k;
        st->packs++;
        return 0;
}

/* backend_list() callback for "snapshots/". */
static int collect_snapshot(void *ud, const char *object, uint64_t size)
{
        struct recover_state *st = ud;
        const char *name = snapfile_name_id(object);
        if (!name)
                return 0;
        int k = catalog_snapshot_known(st->repo->catalog, name);
        if (k != 0)
                return k < 0 ? k : 0;
        /* Forgotten, its file not deleted yet (see forget.c). */
        k = catalog_snapshot_forgetting(st->repo->catalog, name);
        if (k != 0)
                return k < 0 ? k : 0;
        if (!st->all) {
                bool announced = false;
                for (size_t i = 0; i < st->nintents && !announced; i++)
                        announced = strcmp(st->intents[i], name) == 0;
                if (!announced) {
                        /* Not written by a writer of this repository (planted,
                         * or copied in): data, not instructions.  It is not
                         * even read; `catalog rebuild` indexes it on purpose. */
                        log_debug("not indexing snapshots/%s: no writer of this repository announced it; "
                                  "'berth catalog rebuild' indexes it",
                                  name);
                        return 0;
                }
        }
        struct snapfile f = { 0 };
        if (snapfile_read(st->repo, name, &f) < 0) {
                _cleanup_free_ char *what = xasprintf("snapshot %s", object);
                repo_note_damage(st->repo, what, "cannot be read",
                                 error_message() ? error_message() : "it cannot be read");
                error_clear();
                return 0;
        }
        if (st->nsnaps == st->cap) {
                st->cap = st->cap ? st->cap * 2 : 16;
                st->snaps = xrealloc(st->snaps, st->cap * sizeof *st->snaps);
        }
        st->snaps[st->nsnaps++] = f;
        return 0;
}

static int by_start(const void *a, const void *b)
{
        const struct snapfile *x = a, *y = b;
        if (x->info.started != y->info.started)
                return x->info.started < y->info.started ? -1 : 1;
        return strcmp(x->info.id, y->info.id);
}

int repo_list_objects(struct repo *r, const char *prefix, backend_list_fn fn, void *ud)
{
        if (!r->listing)
                return backend_list(r->be, prefix, fn, ud);
        size_t plen = strlen(prefix);
        for (size_t i = 0; i < r->listing->n; i++) {
                const struct listed_object *o = &r->listing->v[i];
                if (strncmp(o->name, prefix, plen) != 0)
                        continue;
                int k = fn(ud, o->name, o->size);
                if (k < 0)
                        return k;
        }
        return 0;
}

int repo_recover_open(struct repo *r, bool all)
{
        struct store *s;
        int k = store_open(r, false, &s);
        if (k < 0)
                return k;
        k = repo_recover(r, s, all);
        store_free(s);
        return k;
}

int repo_recover(struct repo *r, struct store *s, bool all)
{
        struct recover_state st = { .repo = r, .all = all };
        int k;

        /* A forget a crash interrupted is finished first, so that its
         * snapshot file is not indexed again below. */
        if (r->writable) {
                k = forget_finish(r);
                if (k < 0)
                        return k;
        }
        k = catalog_snapshot_intents(r->catalog, &st.intents, &st.nintents);
        if (k < 0)
                return k;
        /* A rebuild (`all`) is building its catalog in tmp/. */
        k = clean_tmp(r, all ? REBUILD_NAME : NULL);
        if (k < 0)
                return error_set(k, "cannot clean %s/tmp: %s", r->path, berth_strerror(k));
        k = repo_list_objects(r, "packs/", recover_pack, &st);
        if (k < 0)
                return error_message() ? k : error_set(k, "cannot list %s/packs: %s", r->path, berth_strerror(k));
        k = repo_list_objects(r, "snapshots/", collect_snapshot, &st);
        if (k < 0)
                goto out;
        /* Oldest first, so each is compared with its true predecessor. */
        if (st.nsnaps > 1)
                qsort(st.snaps, st.nsnaps, sizeof *st.snaps, by_start);
        for (size_t i = 0; i < st.nsnaps && k >= 0; i++) {
                k = index_snapshot(r, s, &st.snaps[i]);
                if (k < 0 && (k == -BERTH_ECORRUPT || k == -BERTH_EHOSTILE)) {
                        _cleanup_free_ char *what = xasprintf("snapshot snapshots/%s", st.snaps[i].info.id);
                        repo_note_damage(r, what, "cannot be indexed",
                                         error_message() ? error_message() : berth_strerror(k));
                        error_clear();
                        k = 0;
                } else if (k >= 0)
                        r->recovered_snapshots++;
        }
        r->recovered_packs += st.packs;
        /* What is still announced now has no file (its writer died before
         * writing it) or a file that cannot be indexed: stop re-reading it. */
        for (size_t i = 0; i < st.nintents && k >= 0; i++)
                if (catalog_snapshot_known(r->catalog, st.intents[i]) == 0)
                        k = catalog_snapshot_intent_drop(r->catalog, st.intents[i]);
        /* Protection (keep/ objects) as the repository has it now. */
        if (k >= 0)
                k = snapshot_sync_protection(r, NULL, NULL);
out:
        for (size_t i = 0; i < st.nsnaps; i++)
                snapfile_clear(&st.snaps[i]);
        free(st.snaps);
        catalog_id_list_free(st.intents, st.nintents);
        return k < 0 ? k : 0;
}

void repo_recovered(const struct repo *r, uint64_t *ret_packs, uint64_t *ret_snapshots)
{
        *ret_packs = r->recovered_packs;
        *ret_snapshots = r->recovered_snapshots;
}

void repo_note_damage(struct repo *r, const char *object, const char *is, const char *why)
{
        log_debug("not indexing %s: %s", object, why);
        r->damage = xrealloc(r->damage, (r->ndamage + 1) * sizeof *r->damage);
        r->damage[r->ndamage++] = xasprintf("%s %s %s %s: %s; run berth check%s", object, r->cached ? "on" : "in",
                                            r->path, is, why,
                                            r->cached ? " on the far side" : "");
}

size_t repo_damage(const struct repo *r, const char *const **ret)
{
        *ret = (const char *const *)r->damage;
        return r->ndamage;
}

/* ---- catalog rebuild ---------------------------------------------------------------- */

/* The new catalog is built in tmp/ (REBUILD_NAME), where a rebuild killed
 * part-way leaves it for the next writer's clean_tmp(), and renamed over
 * catalog.db in one step: until then readers and writers see the old
 * catalog, whole. */

static void unlink_db_files(int dfd, const char *name)
{
        static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };
        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                _cleanup_free_ char *f = xasprintf("%s%s", name, suffixes[i]);
                unlinkat(dfd, f, 0);
        }
}

static int build_catalog(struct repo *r, const char *newpath, const char *oldpath, bool have_old)
{
        int k = catalog_open(newpath, true, &r->catalog);
        if (k < 0)
                return k;
        /* Snapshots being forgotten stay forgotten: their files are
         * deleted rather than indexed again (forget.c). */
        if (have_old && catalog_carry_table(r->catalog, oldpath, "snapshot_forgets", NULL) < 0) {
                log_debug("the old catalog's forget records cannot be read: %s", error_message());
                error_clear();
        }
        k = repo_recover_open(r, true);
        if (k < 0 || !have_old)
                return k;
        /* The quiesce journal is not derived from packs: without it
         * `recover` could not find containers a crashed run left paused.
         * Nor is the job history (metrics' failure counts). */
        static const char *const tables[] = { "quiesce_journal", "jobs" };
        for (size_t i = 0; i < ELEMENTSOF(tables); i++) {
                int64_t rows = 0;
                if (catalog_carry_table(r->catalog, oldpath, tables[i], &rows) < 0) {
                        log_debug("the old catalog's %s cannot be read, not carried over: %s", tables[i],
                                  error_message());
                        error_clear();
                } else
                        log_debug("carried %lld %s row(s) into the new catalog", (long long)rows, tables[i]);
        }
        return 0;
}

int repo_rebuild_catalog(struct repo *r, uint64_t *ret_packs, uint64_t *ret_snapshots)
{
        if (!r->writable)
                return error_set(EROFS, "the repository is open read-only");
        if (r->spool_dirfd < 0)
                return error_set(ENOENT, "cannot open %s/tmp", r->path);
        catalog_free(r->catalog);
        r->catalog = NULL;
        const char *dbpath = r->catalog_path;
        /* tmp/ beside catalog.db: the repository's, or its cache's. */
        size_t dlen = strlen(dbpath) - strlen("/catalog.db");
        _cleanup_free_ char *newpath = xasprintf("%.*s/tmp/" REBUILD_NAME, (int)dlen, dbpath);
        unlink_db_files(r->spool_dirfd, REBUILD_NAME);
        bool have_old = faccessat(r->local_dirfd, "catalog.db", F_OK, AT_SYMLINK_NOFOLLOW) == 0;
        uint64_t packs0 = r->recovered_packs, snaps0 = r->recovered_snapshots;

        int k = build_catalog(r, newpath, dbpath, have_old);
        if (k == 0) {
                struct catalog *c = TAKE_PTR(r->catalog);
                k = catalog_close_standalone(c);
        }
        _cleanup_close_ int fd = k < 0 ? -1 : openat(r->spool_dirfd, REBUILD_NAME, O_RDONLY | O_CLOEXEC);
        if (k == 0 && (fd < 0 || fsync(fd) < 0))
                k = error_set(errno, "cannot write %s: %s", newpath, strerror(errno));
        if (k == 0) {
                /* A -wal left beside catalog.db would be replayed into the
                 * new file.  Empty it into the old catalog first, so that
                 * removing it loses nothing should we stop before the
                 * rename; a damaged or missing old catalog has nothing to
                 * lose. */
                if (have_old && catalog_checkpoint_path(dbpath) < 0) {
                        log_debug("cannot checkpoint the old catalog: %s", error_message());
                        error_clear();
                }
                unlinkat(r->local_dirfd, "catalog.db-wal", 0);
                unlinkat(r->local_dirfd, "catalog.db-shm", 0);
        }
        if (k == 0 && renameat(r->spool_dirfd, REBUILD_NAME, r->local_dirfd, "catalog.db") < 0)
                k = error_set(errno, "cannot move the new catalog into place: %s", strerror(errno));
        if (k < 0) {
                catalog_free(r->catalog);
                r->catalog = NULL;
                unlink_db_files(r->spool_dirfd, REBUILD_NAME);
                return k;
        }
        k = fsync_dirfd(r->local_dirfd);
        unlink_db_files(r->spool_dirfd, REBUILD_NAME);
        if (k < 0)
                return error_set(k, "the rebuilt catalog is in place, but its move cannot be flushed to disk "
                                    "(fsync of %s: %s): it may not survive a crash; check the disk, then run "
                                    "'berth catalog rebuild' again",
                                 r->path, berth_strerror(k));
        k = catalog_open(dbpath, false, &r->catalog);
        if (k < 0)
                return k;
        *ret_packs = r->recovered_packs - packs0;
        *ret_snapshots = r->recovered_snapshots - snaps0;
        return 0;
}
