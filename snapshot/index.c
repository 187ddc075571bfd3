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

int index_snapshot(struct repo *r, struct store *s, struct snapfile *f)
{
        struct catalog *c = r->catalog;
        struct catalog_snapshot prev_info = { 0 };
        struct snapfile prev = { 0 };
        _cleanup_(manifest_reader_freep) struct manifest_reader *a = NULL, *b = NULL;
        _cleanup_(catalog_index_freep) struct catalog_index *ix = NULL;
        int k;

        k = catalog_snapshot_latest(c, f->info.name, INT64_MAX, &prev_info);
        if (k < 0)
                return k;
        if (k > 0) {
                k = snapfile_read(r, prev_info.id, &prev);
                catalog_snapshot_clear(&prev_info);
                if (k < 0)
                        return k;
                k = open_manifest(s, &prev, &a);
                if (k < 0)
                        goto out;
        }
        k = open_manifest(s, f, &b);
        if (k < 0)
                goto out;

        k = catalog_begin(c);
        if (k < 0)
                goto out;
        f->info.seq = 0;
        k = catalog_snapshot_add(c, &f->info);
        if (k == 0)
                k = catalog_index_begin(c, f->info.name, f->info.seq, &ix);

        const struct entry *ea = NULL, *eb = NULL;
        int ka = 0, kb = 0;
        if (k == 0 && a)
                k = ka = manifest_reader_next(a, &ea);
        if (k >= 0)
                k = kb = manifest_reader_next(b, &eb);
        while (k >= 0 && (ka > 0 || kb > 0)) {
                int cmp = ka <= 0 ? 1 : kb <= 0 ? -1 : path_cmp(ea->path, ea->path_len, eb->path, eb->path_len);
                struct catalog_file fa, fb;
                if (cmp < 0) {
                        k = catalog_index_remove(ix, ea->path, ea->path_len);
                        if (k >= 0)
                                k = ka = manifest_reader_next(a, &ea);
                        continue;
                }
                to_row(eb, &fb);
                if (cmp > 0)
                        k = catalog_index_put(ix, &fb, false);
                else {
                        to_row(ea, &fa);
                        if (rows_differ(&fa, &fb))
                                k = catalog_index_put(ix, &fb, true);
                        if (k >= 0)
                                k = ka = manifest_reader_next(a, &ea);
                }
                if (k >= 0)
                        k = kb = manifest_reader_next(b, &eb);
        }
        if (k >= 0)
                k = catalog_commit(c);
        else
                catalog_rollback(c);
out:
        snapfile_clear(&prev);
        return k < 0 ? k : 0;
}
