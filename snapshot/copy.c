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
 * What the destination lacks: when its backend can tell (a remote one:
 * HAVE offers answered by the far side's own index), the chunk ids are
 * offered in batches of OFFER_BATCH and that answer decides, so a cache
 * on this host that is partial or stale neither skips a chunk the far side
 * lacks nor resends one it holds; else the destination's catalog decides
 * (store_has).
 *
 * Memory: the set of chunk ids already seen (32 bytes and a flag each),
 * one batch of offered ids and one chunk at a time; the destination's
 * store bounds its own copies.
 * A copy that is interrupted leaves finished packs in the destination
 * (recorded in its catalog, or indexed by its next writer): run again, it
 * sends only the chunks they do not hold.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define SNAPFILE_MAX (64u << 20)
#define OFFER_BATCH 16384 /* ids per HAVE: 512 KiB out, 2 KiB back */

struct copier {
        struct repo *src, *dst;
        struct store *from, *to;
        const struct copy_options *o;
        struct copy_result *res;
        struct idset seen;
        struct buf stored;
        int64_t last_progress;
        bool ask;                       /* the destination's backend answers lacks() */
        uint8_t (*batch)[HASH_LEN];     /* ids to offer, OFFER_BATCH */
        size_t nbatch;
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

static void skipped(struct copier *c, const uint8_t id[HASH_LEN])
{
        struct catalog_chunk ch;
        if (catalog_chunk_get(c->src->catalog, id, &ch) > 0)
                /* A record's length is shared by its chunks. */
                c->res->bytes_skipped += MIN(ch.stored_len, ch.raw_len);
}

/* Sends a chunk the destination lacks.  `told`: its backend said so, and
 * its catalog (a cache) must not overrule that. */
static int send_chunk(struct copier *c, const uint8_t id[HASH_LEN], bool told)
{
        struct pack_entry e;
        int r = store_read_stored(c->from, id, &c->stored, &e);
        if (r < 0)
                return r;
        r = store_put_stored(c->to, id, e.flags, c->stored.data, e.stored_len, e.raw_len);
        struct catalog_chunk ch;
        if (r == 0 && told && catalog_chunk_get(c->dst->catalog, id, &ch) > 0) {
                /* Offered once (c->seen), so not pending here: this host's
                 * cache places it in a pack the far side does not count
                 * (damaged there, say).  The far side decides: the pack
                 * counts as missing, and the chunk goes again. */
                log_debug("%s lacks a chunk its cache places in pack #%lld: sending it again", c->dst->path,
                          (long long)ch.pack);
                store_forget_pack(c->to, ch.pack);
                r = store_put_stored(c->to, id, e.flags, c->stored.data, e.stored_len, e.raw_len);
        }
        if (r < 0)
                return r;
        if (r > 0) {
                c->res->chunks_sent++;
                c->res->bytes_sent += e.stored_len;
        }
        return 0;
}

/* Offers the batch to the destination and sends what it lacks. */
static int flush_offers(struct copier *c)
{
        size_t n = c->nbatch;
        if (!n)
                return 0;
        c->nbatch = 0;
        _cleanup_free_ uint8_t *lack = xcalloc(1, (n + 7) / 8);
        int r = backend_lacks(c->dst->be, (const uint8_t(*)[32])c->batch, n, lack);
        if (r < 0)
                return error_message() ? r : error_set(r, "cannot ask %s which chunks it lacks: %s", c->dst->path,
                                                       berth_strerror(r));
        for (size_t i = 0; i < n && r >= 0; i++) {
                if (lack[i / 8] >> (i % 8) & 1)
                        r = send_chunk(c, c->batch[i], true);
                else
                        skipped(c, c->batch[i]);
                report(c, false);
        }
        return r;
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
        if (c->ask) {
                memcpy(c->batch[c->nbatch++], id, HASH_LEN);
                return c->nbatch == OFFER_BATCH ? flush_offers(c) : 0;
        }
        report(c, false);
        int r = store_has(c->to, id);
        if (r < 0)
                return r;
        if (r > 0) {
                skipped(c, id);
                return 0;
        }
        return send_chunk(c, id, false);
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
        return r < 0 ? r : flush_offers(c);
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
        if (k < 0 && r->cached && c->ask && (k == -BERTH_ECORRUPT || k == -BERTH_EHOSTILE)) {
                /* The far side took it: put announced it, and the far side
                 * indexed it against its own catalog.  Only this host's
                 * cache lacks chunks it references (the far side has them
                 * in packs the cache could not index); its next sync tries
                 * again and names what it cannot read. */
                log_debug("snapshot %s is on %s, but its cache cannot index it: %s", f->info.id, r->path,
                          error_message() ? error_message() : berth_strerror(k));
                error_clear();
                catalog_snapshot_intent_drop(r->catalog, f->info.id);
                return 0;
        }
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
        if (src->keys || dst->keys || src->cfg.encrypted || dst->cfg.encrypted)
                return error_set(ENOTSUP, "copying snapshots from or to an encrypted repository is not supported yet "
                                          "(chunk ids are keyed per repository)");
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
        c.ask = dst->be->ops->lacks != NULL;
        if (c.ask)
                c.batch = xmalloc(OFFER_BATCH * sizeof *c.batch);
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
        free(c.batch);
        idset_free(&c.seen);
        buf_free(&c.stored);
        buf_free(&raw);
        return k < 0 ? k : 0;
}
