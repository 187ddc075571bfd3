/* copy.c — replicating a snapshot into another repository.
 *
 * The snapshot file is read (and verified) in the source, every chunk it
 * references is listed by walking its manifest (the manifest chunks
 * first: they are chunks too), and each chunk the destination lacks is
 * read from the source in its stored form (a zstd frame or raw bytes,
 * with its flags) and handed to the destination's store as it is: no
 * decompression and recompression, but the destination's pack writer
 * still decodes it once and checks it against its id before it counts as
 * stored (store_put_stored).  Only once every pack is durable
 * (store_flush) is the snapshot file written into the destination, with
 * the very bytes it had in the source (its id is their hash), announced
 * first and indexed after, as a backup's commit does.
 *
 * Memory: the set of chunk ids already seen (32 bytes and a flag each)
 * and one chunk at a time; the destination's store bounds its own copies.
 * A copy that is interrupted leaves finished packs in the destination
 * (recorded in its catalog, or indexed by its next writer): run again, it
 * sends only the chunks they do not hold.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define SNAPFILE_MAX (64u << 20)

struct copier {
        struct repo *src, *dst;
        struct store *from, *to;
        const struct copy_options *o;
        struct copy_result *res;
        struct idset seen;
        struct buf stored;
        int64_t last_progress;
};

static void report(struct copier *c, bool force)
{
        if (!c->o || !c->o->events.progress)
                return;
        if (!force && mono_ns() - c->last_progress < 250 * 1000 * 1000)
                return;
        c->last_progress = mono_ns();
        struct snapshot_progress p = { .files = c->res->chunks, .bytes = c->res->bytes_sent + c->res->bytes_skipped,
                                       .bytes_read = c->res->bytes_sent, .bytes_added = c->res->bytes_sent };
        c->o->events.progress(c->o->events.ud, &p);
}

/* One chunk of the snapshot: sent unless already seen in this copy or held
 * by the destination. */
static int copy_chunk(struct copier *c, const uint8_t id[HASH_LEN])
{
        if (c->o && c->o->events.cancel && *c->o->events.cancel)
                return error_set(ECANCELED, "interrupted; what was copied so far stays in the destination");
        if (!idset_add(&c->seen, id))
                return 0;
        c->res->chunks++;
        report(c, false);
        int r = store_has(c->to, id);
        if (r < 0)
                return r;
        if (r > 0) {
                struct catalog_chunk ch;
                if (catalog_chunk_get(c->src->catalog, id, &ch) > 0)
                        /* A record's length is shared by its chunks. */
                        c->res->bytes_skipped += MIN(ch.stored_len, ch.raw_len);
                return 0;
        }
        struct pack_entry e;
        r = store_read_stored(c->from, id, &c->stored, &e);
        if (r < 0)
                return r;
        r = store_put_stored(c->to, id, e.flags, c->stored.data, e.stored_len, e.raw_len);
        if (r < 0)
                return r;
        if (r > 0) {
                c->res->chunks_sent++;
                c->res->bytes_sent += e.stored_len;
        }
        return 0;
}

static int copy_chunks(struct copier *c, const struct snapfile *f)
{
        int r;
        for (size_t i = 0; i < f->nmanifest; i++)
                if ((r = copy_chunk(c, f->manifest[i])) < 0)
                        return r;
        _cleanup_(manifest_reader_freep) struct manifest_reader *mr = NULL;
        r = manifest_reader_new(c->from, (const uint8_t(*)[HASH_LEN])f->manifest, f->nmanifest, &mr);
        if (r < 0)
                return r;
        const struct entry *e;
        while ((r = manifest_reader_next(mr, &e)) > 0)
                for (size_t i = 0; i < e->nchunks; i++)
                        if ((r = copy_chunk(c, e->chunks[i].id)) < 0)
                                return r;
        return r;
}

/* Reads snapshots/<id> of the source: its bytes (checked against the id)
 * and their parsed form. */
static int read_snapfile(struct repo *r, const char *id, const char *name, struct buf *raw, struct snapfile *ret)
{
        uint8_t want[HASH_LEN], got[HASH_LEN];
        if (strlen(id) != 2 * HASH_LEN || hex_decode(id, want, HASH_LEN) < 0)
                return error_set(EINVAL, "'%s' is not a snapshot id", id);
        int k = backend_get(r->be, name, SNAPFILE_MAX, raw);
        if (k == -ENOENT)
                return error_set(BERTH_ENOTFOUND, "snapshot file %s is missing from %s", name, r->path);
        if (k < 0)
                return error_set(k, "cannot read %s of %s: %s", name, r->path, berth_strerror(k));
        hash_sha256(raw->data, raw->len, got);
        if (memcmp(want, got, HASH_LEN) != 0)
                return error_set(BERTH_ECORRUPT, "snapshot file %s of %s is damaged (its bytes do not match its id)",
                                 name, r->path);
        k = snapfile_parse(raw->data, raw->len, ret);
        if (k < 0)
                return error_set(k, "snapshot file %s of %s is damaged (not a snapshot record)", name, r->path);
        snprintf(ret->info.id, sizeof ret->info.id, "%s", id);
        return 0;
}

/* Writes the snapshot file into the destination with the source's bytes,
 * announced before and indexed after (as snapfile_commit()); on failure
 * nothing of it stays. */
static int write_snapfile(struct copier *c, const char *name, const struct buf *raw, struct snapfile *f)
{
        struct repo *r = c->dst;
        int k = catalog_snapshot_intend(r->catalog, f->info.id);
        if (k < 0)
                return k;
        k = backend_put(r->be, name, raw->data, raw->len);
        if (k < 0) {
                catalog_snapshot_intent_drop(r->catalog, f->info.id);
                return error_set(-k, "cannot write %s to %s: %s", name, r->path, berth_strerror(k));
        }
        bool created = k > 0;
        k = index_snapshot(r, c->to, f);
        if (k < 0 && created) {
                _cleanup_free_ char *msg = xstrdup(error_message() ? error_message() : berth_strerror(k));
                backend_delete(r->be, name);
                catalog_snapshot_intent_drop(r->catalog, f->info.id);
                k = error_set(-k, "%s", msg);
        }
        return k;
}

int snapshot_copy(struct repo *src, struct repo *dst, const char *id, const struct copy_options *o,
                  struct copy_result *ret)
{
        struct copier c = { .src = src, .dst = dst, .o = o, .res = ret };
        _cleanup_(snapfile_clear) struct snapfile f = { 0 };
        struct buf raw = { 0 };
        char name[2 * HASH_LEN + 16];
        uint64_t size;
        int k;

        *ret = (struct copy_result){ 0 };
        snprintf(ret->id, sizeof ret->id, "%s", id);
        snprintf(name, sizeof name, "snapshots/%s", id);
        if (!dst->writable || !dst->catalog)
                return error_set(EROFS, "the destination repository %s is not open for writing", dst->path);
        k = read_snapfile(src, id, name, &raw, &f);
        if (k < 0)
                goto out;
        /* Identical bytes under the same name: it is there already. */
        k = backend_stat(dst->be, name, &size);
        if (k == 0 && catalog_snapshot_known(dst->catalog, id) > 0) {
                ret->present = true;
                goto out;
        }
        if (k < 0 && k != -ENOENT) {
                k = error_set(k, "cannot look for %s in %s: %s", name, dst->path, berth_strerror(k));
                goto out;
        }
        k = repo_store(dst, &c.to);
        if (k < 0)
                goto out;
        k = store_open(src, false, &c.from);
        if (k < 0)
                goto out;
        k = copy_chunks(&c, &f);
        if (k < 0)
                goto out;
        /* Every chunk durable and recorded before the snapshot names them. */
        k = store_flush(c.to);
        if (k < 0)
                goto out;
        report(&c, true);
        k = write_snapfile(&c, name, &raw, &f);
out:
        store_free(c.from);
        idset_free(&c.seen);
        buf_free(&c.stored);
        buf_free(&raw);
        return k < 0 ? k : 0;
}
