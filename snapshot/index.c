/* index.c — turning manifests into catalog rows.
 *
 * A new snapshot is compared with the newest snapshot of its name by
 * walking both manifests in step (they share one order), and only added,
 * changed and removed paths reach the catalog.  Backup, crash recovery and
 * `catalog rebuild` all index through here.
 */
#include <string.h>

#include "internal.h"

static void to_row(const struct entry *e, struct catalog_file *f)
{
        *f = (struct catalog_file){
                .path = e->path,
                .path_len = e->path_len,
                .type = e->type,
                .mode = e->mode,
                .uid = e->uid,
                .gid = e->gid,
                .size = e->size,
                .mtime = time_ns(e->mtime_sec, e->mtime_nsec),
                .flags = e->flags,
                .link = e->type == ENTRY_SYMLINK || e->type == ENTRY_HARDLINK ? e->link : NULL,
                .link_len = e->type == ENTRY_SYMLINK || e->type == ENTRY_HARDLINK ? e->link_len : 0,
        };
        entry_digests(e, f->content, f->meta);
}

static bool rows_differ(const struct catalog_file *a, const struct catalog_file *b)
{
        return a->type != b->type || a->mode != b->mode || a->uid != b->uid || a->gid != b->gid ||
               a->size != b->size || a->mtime != b->mtime || a->flags != b->flags ||
               memcmp(a->content, b->content, sizeof a->content) != 0 || memcmp(a->meta, b->meta, sizeof a->meta) != 0;
}

static int open_manifest(struct store *s, const struct snapfile *f, struct manifest_reader **ret)
{
        return manifest_reader_new(s, (const uint8_t(*)[HASH_LEN])f->manifest, f->nmanifest, ret);
}

/* Indexes f against `prev` in one transaction.  With prev NULL, against
 * nothing: every path is new, and with `unreadable` (the name has a
 * previous snapshot that cannot be read) every current row of the name is
 * closed first.  *ret_prev_failed tells whether a failure came from
 * reading prev. */
static int index_against(struct repo *r, struct store *s, struct snapfile *f, const struct snapfile *prev,
                         bool unreadable, bool *ret_prev_failed)
{
        struct catalog *c = r->catalog;
        _cleanup_(manifest_reader_freep) struct manifest_reader *a = NULL, *b = NULL;
        _cleanup_(catalog_index_freep) struct catalog_index *ix = NULL;
        int k;

        *ret_prev_failed = false;
        if (prev) {
                k = open_manifest(s, prev, &a);
                if (k < 0) {
                        *ret_prev_failed = true;
                        return k;
                }
        }
        k = open_manifest(s, f, &b);
        if (k < 0)
                return k;

        k = catalog_begin(c);
        if (k < 0)
                return k;
        f->info.seq = 0;
        k = catalog_snapshot_add(c, &f->info);
        if (k == 0)
                k = catalog_index_begin(c, f->info.name, f->info.seq, &ix);
        if (k == 0 && !a && unreadable)
                k = catalog_index_close_all(ix);

        const struct entry *ea = NULL, *eb = NULL;
        int ka = 0, kb = 0;
        if (k == 0 && a) {
                k = ka = manifest_reader_next(a, &ea);
                *ret_prev_failed = ka < 0;
        }
        if (k >= 0)
                k = kb = manifest_reader_next(b, &eb);
        while (k >= 0 && (ka > 0 || kb > 0)) {
                int cmp = ka <= 0 ? 1 : kb <= 0 ? -1 : path_cmp(ea->path, ea->path_len, eb->path, eb->path_len);
                struct catalog_file fa, fb;
                bool next_a = cmp <= 0, next_b = cmp >= 0;
                if (cmp < 0)
                        k = catalog_index_remove(ix, ea->path, ea->path_len);
                else {
                        to_row(eb, &fb);
                        if (cmp > 0)
                                k = catalog_index_put(ix, &fb, false);
                        else {
                                to_row(ea, &fa);
                                if (rows_differ(&fa, &fb))
                                        k = catalog_index_put(ix, &fb, true);
                        }
                }
                if (k >= 0 && next_a) {
                        k = ka = manifest_reader_next(a, &ea);
                        *ret_prev_failed = ka < 0;
                }
                if (k >= 0 && next_b)
                        k = kb = manifest_reader_next(b, &eb);
        }
        if (k >= 0)
                k = catalog_commit(c);
        else
                catalog_rollback(c);
        return k < 0 ? k : 0;
}

int index_snapshot(struct repo *r, struct store *s, struct snapfile *f)
{
        struct catalog_snapshot prev_info = { 0 };
        struct snapfile prev = { 0 };
        bool exists, have_prev = false, prev_failed = false;
        int k;

        k = catalog_snapshot_latest(r->catalog, f->info.name, INT64_MAX, &prev_info);
        if (k < 0)
                return k;
        exists = k > 0;
        if (exists) {
                have_prev = snapfile_read(r, prev_info.id, &prev) == 0;
                if (!have_prev) {
                        log_debug("indexing snapshot in full: snapshot %.12s cannot be read: %s", prev_info.id,
                                  error_message());
                        error_clear();
                }
        }
        k = index_against(r, s, f, have_prev ? &prev : NULL, exists, &prev_failed);
        if (k < 0 && prev_failed) {
                /* The newest snapshot of the name is damaged (a lost pack
                 * holding its manifest): index this one in full rather
                 * than refuse it. */
                log_debug("indexing snapshot in full: snapshot %.12s cannot be read: %s", prev_info.id,
                          error_message());
                error_clear();
                k = index_against(r, s, f, NULL, true, &prev_failed);
        }
        catalog_snapshot_clear(&prev_info);
        snapfile_clear(&prev);
        return k;
}
