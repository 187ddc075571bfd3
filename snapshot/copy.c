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
 *
 * Encrypted repositories.  A chunk's id is keyed by the repository's
 * master key (HMAC under a key derived from it), and every sealed object
 * is bound to its repository's id.  So:
 *  - same ids (both plain, or both encrypted under the same master key):
 *    the path above.  The stored form travels unsealed in memory
 *    (store_read_stored opens the source's seal, the destination's pack
 *    writer seals it under the destination's id); the snapshot file is
 *    opened with the source's key and sealed again with the destination's,
 *    its plain bytes (and so its id) unchanged.
 *  - different ids (plain <-> encrypted, or two master keys): re-keyed.
 *    The manifest is read entry by entry; each data chunk is read plain
 *    from the source and stored through store_put(), which computes the
 *    destination's id (and dedups against what it holds, so a second copy
 *    adds nothing); each entry is encoded again with the new ids into a new
 *    manifest (the destination's tree chunker); the snapshot file is
 *    written anew with the same record but the new manifest, so its id in
 *    the destination differs (ret->id).  The source's chunk boundaries are
 *    kept.  Memory: a map of source id to destination id (64 bytes a
 *    chunk).
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
        struct idmap {                  /* re-keying: source id -> destination id */
                uint8_t (*slots)[2 * HASH_LEN];
                uint8_t *used;
                size_t cap, n;
        } map;
};

static size_t idmap_slot(const struct idmap *m, const uint8_t id[HASH_LEN])
{
        uint64_t h;
        memcpy(&h, id, sizeof h); /* ids are uniform: their first bytes will do */
        size_t i = (size_t)h & (m->cap - 1);
        while (m->used[i] && memcmp(m->slots[i], id, HASH_LEN) != 0)
                i = (i + 1) & (m->cap - 1);
        return i;
}

static bool idmap_get(const struct idmap *m, const uint8_t id[HASH_LEN], uint8_t out[HASH_LEN])
{
        if (!m->cap)
                return false;
        size_t i = idmap_slot(m, id);
        if (!m->used[i])
                return false;
        memcpy(out, m->slots[i] + HASH_LEN, HASH_LEN);
        return true;
}

static void idmap_put(struct idmap *m, const uint8_t id[HASH_LEN], const uint8_t to[HASH_LEN])
{
        if (2 * (m->n + 1) > m->cap) {
                struct idmap old = *m;
                m->cap = old.cap ? 2 * old.cap : 1024;
                m->slots = xmalloc(m->cap * sizeof *m->slots);
                m->used = xcalloc(m->cap, 1);
                m->n = 0;
                for (size_t i = 0; i < old.cap; i++)
                        if (old.used[i])
                                idmap_put(m, old.slots[i], old.slots[i] + HASH_LEN);
                free(old.slots);
                free(old.used);
        }
        size_t i = idmap_slot(m, id);
        if (!m->used[i]) {
                m->used[i] = 1;
                m->n++;
        }
        memcpy(m->slots[i], id, HASH_LEN);
        memcpy(m->slots[i] + HASH_LEN, to, HASH_LEN);
}

static void idmap_free(struct idmap *m)
{
        free(m->slots);
        free(m->used);
        *m = (struct idmap){ 0 };
}

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

/* Reads snapshots/<id> of the source: its plain bytes (opened with the
 * source's key when it is encrypted; checked against the id, keyed the
 * same way) and their parsed form. */
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
        if (r->keys) {
                struct buf plain = { 0 };
                if (crypto_open(r->keys, CRYPTO_KIND_SNAPSHOT, raw->data, raw->len, &plain) < 0) {
                        buf_free(&plain);
                        return error_set(BERTH_ECORRUPT, "snapshot file %s of %s is damaged (it does not decrypt)",
                                         name, r->path);
                }
                buf_free(raw);
                *raw = plain;
        }
        chunk_id(r->keys, raw->data, raw->len, got);
        if (memcmp(want, got, HASH_LEN) != 0)
                return error_set(BERTH_ECORRUPT, "snapshot file %s of %s is damaged (its bytes do not match its id)",
                                 name, r->path);
        k = snapfile_parse(raw->data, raw->len, ret);
        if (k < 0)
                return error_set(k, "snapshot file %s of %s is damaged (not a snapshot record)", name, r->path);
        snprintf(ret->info.id, sizeof ret->info.id, "%s", id);
        return 0;
}

/* Writes the snapshot file into the destination with the source's plain
 * bytes (sealed under the destination's key when it is encrypted),
 * announced before and indexed after (as snapfile_commit()); on failure
 * nothing of it stays. */
static int write_snapfile(struct copier *c, const char *name, const struct buf *raw, struct snapfile *f)
{
        struct repo *r = c->dst;
        struct buf sealed = { 0 };
        const struct buf *out = raw;
        if (r->keys) {
                int s = crypto_seal(r->keys, CRYPTO_KIND_SNAPSHOT, raw->data, raw->len, &sealed);
                if (s < 0) {
                        buf_free(&sealed);
                        return s;
                }
                out = &sealed;
        }
        int k = catalog_snapshot_intend(r->catalog, f->info.id);
        if (k == 0)
                k = backend_put(r->be, name, out->data, out->len);
        else {
                buf_free(&sealed);
                return k;
        }
        buf_free(&sealed);
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

/* Re-keying: the destination's id of source chunk `id`, storing the chunk
 * there (plain bytes, compressed and sealed as the destination does) when
 * it lacks it. */
static int rekey_chunk(struct copier *c, const uint8_t id[HASH_LEN], uint8_t out[HASH_LEN])
{
        if (idmap_get(&c->map, id, out))
                return 0;
        if (c->o && c->o->events.cancel && *c->o->events.cancel)
                return error_set(ECANCELED, "interrupted; what was copied so far stays in the destination");
        c->res->chunks++;
        int r = store_read(c->from, id, &c->stored);
        if (r < 0)
                return r;
        r = store_put(c->to, false, c->stored.data, c->stored.len, out);
        if (r < 0)
                return r;
        if (r > 0)
                c->res->chunks_sent++;
        else
                skipped(c, id); /* its stored bytes in the source, as the other path counts */
        idmap_put(&c->map, id, out);
        report(c, false);
        return 0;
}

/* Re-keying: the snapshot's manifest written again into the destination,
 * every chunk id replaced by the destination's; *ret_ids (caller frees)
 * lists the new manifest chunks. */
static int rekey_manifest(struct copier *c, const struct snapfile *f, uint8_t (**ret_ids)[HASH_LEN], size_t *ret_n)
{
        _cleanup_(manifest_reader_freep) struct manifest_reader *mr = NULL;
        struct manifest_writer *mw = NULL;
        struct chunk_ref *refs = NULL;
        size_t cap = 0;
        int r = manifest_reader_new(c->from, (const uint8_t(*)[HASH_LEN])f->manifest, f->nmanifest, &mr);
        if (r == 0)
                r = manifest_writer_new(c->to, &c->dst->tree_chunker, &mw);
        const struct entry *e;
        while (r == 0 && (r = manifest_reader_next(mr, &e)) > 0) {
                struct entry copy = *e;
                if (e->nchunks > cap) {
                        cap = e->nchunks;
                        refs = xrealloc(refs, cap * sizeof *refs);
                }
                r = 0;
                for (size_t i = 0; i < e->nchunks && r == 0; i++) {
                        refs[i].len = e->chunks[i].len;
                        r = rekey_chunk(c, e->chunks[i].id, refs[i].id);
                }
                copy.chunks = refs;
                if (r == 0)
                        r = manifest_writer_add(mw, &copy);
        }
        if (r == 0)
                r = manifest_writer_finish(mw, ret_ids, ret_n);
        manifest_writer_free(mw);
        free(refs);
        return r;
}

/* Re-keying: the chunks, the new manifest, then (once they are durable) the
 * snapshot file with the new manifest, indexed; ret->id is its id in dst. */
static int copy_rekeyed(struct copier *c, struct snapfile *f)
{
        struct store_stats before, after;
        uint8_t (*ids)[HASH_LEN] = NULL;
        size_t n = 0;
        store_get_stats(c->to, &before);
        int k = rekey_manifest(c, f, &ids, &n);
        if (k < 0) {
                free(ids);
                return k;
        }
        k = store_flush(c->to);
        if (k < 0) {
                free(ids);
                return k;
        }
        store_get_stats(c->to, &after);
        c->res->bytes_sent = after.bytes_added - before.bytes_added;
        report(c, true);
        free(f->manifest);
        f->manifest = ids;
        f->nmanifest = n;
        bool created = false;
        k = snapfile_write(c->dst, f, &created);
        if (k < 0)
                return k;
        snprintf(c->res->id, sizeof c->res->id, "%s", f->info.id);
        if (!created && catalog_snapshot_known(c->dst->catalog, f->info.id) > 0) {
                c->res->present = true;
                return 0;
        }
        char name[2 * HASH_LEN + 16];
        snprintf(name, sizeof name, "snapshots/%s", f->info.id);
        k = index_snapshot(c->dst, c->to, f);
        if (k < 0 && created) {
                _cleanup_free_ char *msg = xstrdup(error_message() ? error_message() : berth_strerror(k));
                backend_delete(c->dst->be, name);
                catalog_snapshot_intent_drop(c->dst->catalog, f->info.id);
                k = error_set(-k, "%s", msg);
        }
        return k;
}

/* True when a chunk has the same id in both repositories: both plain, or
 * both encrypted under one master key (the id key derives from it alone). */
static bool same_ids(const struct repo *src, const struct repo *dst)
{
        if (!src->keys || !dst->keys)
                return !src->keys && !dst->keys;
        return memcmp(crypto_master(src->keys), crypto_master(dst->keys), CRYPTO_KEY_LEN) == 0;
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
        if (src->cfg.encrypted && !src->keys)
                return error_set(EACCES, "repository %s is encrypted and was opened without its key", src->path);
        if (dst->cfg.encrypted && !dst->keys)
                return error_set(EACCES, "repository %s is encrypted and was opened without its key", dst->path);
        snprintf(name, sizeof name, "snapshots/%s", id);
        if (!dst->writable || !dst->catalog)
                return error_set(EROFS, "the destination repository %s is not open for writing", dst->path);
        k = read_snapfile(src, id, name, &raw, &f);
        if (k < 0)
                goto out;
        if (!same_ids(src, dst)) {
                k = repo_store(dst, &c.to);
                if (k == 0)
                        k = store_open(src, false, &c.from);
                if (k == 0)
                        k = copy_rekeyed(&c, &f);
                goto out;
        }
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
        idmap_free(&c.map);
        buf_free(&c.stored);
        buf_free(&raw);
        return k < 0 ? k : 0;
}
