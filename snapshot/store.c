/* store.c — the chunk store: dedup decision, tickets, reading chunks back.
 *
 * A chunk reaches the store in one of two ways.  store_submit() hands the
 * bytes to a worker thread and returns at once: the worker hashes them,
 * decides whether they are new, and the caller collects the id later, in
 * submission order, with store_resolve() ("tickets").  store_put() does
 * the same but hashes in the calling thread and returns the id at once.
 * The workers, which also compress and pack new chunks, are packer.c's;
 * this file decides, records finished packs in the catalog (one
 * transaction per pack, on the calling thread) and reads chunks back.
 *
 * Is a chunk new?  First the set of chunks taken in this run but not yet
 * recorded in the catalog ("pending"), then an in-memory filter of 8-byte
 * prefixes of every recorded chunk, and only on a filter hit the catalog
 * (on the calling thread: a false hit costs one query; a false "new" is
 * impossible).
 *
 * Memory is bounded in bytes, whatever the dedup rate: copies of chunk
 * bytes held for workers (queued or being compressed) stay under
 * WORK_BYTES (packer_enqueue() waits, and only workers release them), and
 * those held for the calling thread (TICKET_MAYBE: a filter hit the
 * catalog must confirm) under TICKET_BYTES, checked by
 * store_submit_ready(): the caller resolves its oldest ticket before
 * submitting more.  Beyond those, the filter and the pending set grow with
 * the chunks (store_index_bytes()).
 *
 * After a worker fails, the first error is kept; the workers drain the
 * queue without storing, tickets not yet hashed stay TICKET_WAITING, and
 * store_resolve() and packer_enqueue() return the error instead of
 * waiting.  TICKET_MAYBE tickets keep their bytes until resolved or
 * store_free().  Packs finished before the failure stay on the done list,
 * unrecorded (store_flush() returns the error first); store_free() leaves
 * their files for the next writer's recovery (repo_recover()).
 *
 * A pack the catalog lists may be gone (deleted, or truncated) while its
 * chunks are still listed.  A writer stats every listed pack when it opens
 * (the pack list is small) and treats the chunks of a missing one as
 * absent: they are stored again, and their catalog rows re-pointed at the
 * new pack, so new snapshots never depend on lost data.  The new pack may
 * be the lost one again, byte for byte (same chunks, same order), under
 * its old name: a failed read of it kept in the record cache is dropped
 * when it is recorded (pack_recorded()).
 */
#include <stdio.h>
#include <string.h>

#include "store-private.h"

int store_decide_locked(struct store *s, const uint8_t id[HASH_LEN], size_t len)
{
        if (idset_contains(&s->pending, id)) {
                s->stats.chunks_dup++;
                return TICKET_DONE;
        }
        if (!s->rewrite && idfilter_maybe(&s->filter, id))
                return TICKET_MAYBE;
        idset_add(&s->pending, id);
        s->stats.chunks_new++;
        s->stats.raw_new += len;
        return -1;
}

static int load_filter(void *ud, const uint8_t id[CATALOG_HASH_LEN])
{
        idfilter_add(ud, id);
        return 0;
}

/* catalog_pack_foreach() callback: notes a listed pack that is missing or
 * shorter/longer than recorded (a truncated pack loses its trailer). */
static int note_missing(void *ud, int64_t id, const uint8_t hash[CATALOG_HASH_LEN], uint64_t size, uint32_t nchunks)
{
        struct store *s = ud;
        char path[128];
        uint64_t have;
        pack_path(hash, path, sizeof path);
        if (backend_stat(s->repo->be, path, &have) == 0 && have == size)
                return 0;
        log_debug("pack %s is missing or damaged: its chunks count as absent", path);
        s->missing = xrealloc(s->missing, (s->nmissing + 1) * sizeof *s->missing);
        s->missing[s->nmissing++] = id; /* rowid order: stays sorted */
        return 0;
}

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return x < y ? -1 : x > y;
}

static bool pack_missing(const struct store *s, int64_t pack)
{
        return s->nmissing && bsearch(&pack, s->missing, s->nmissing, sizeof pack, cmp_i64);
}

size_t store_missing_packs(const struct store *s) { return s->nmissing; }

void store_set_rewrite(struct store *s) { s->rewrite = true; }

/* 1 when the catalog lists the chunk in a pack that is there, 0 when it is
 * unknown or its pack is missing, or -errno.  Calling thread only. */
static int chunk_stored(struct store *s, const uint8_t id[HASH_LEN])
{
        struct catalog_chunk ch;
        int r = catalog_chunk_get(s->repo->catalog, id, &ch);
        if (r > 0 && pack_missing(s, ch.pack))
                return 0;
        return r;
}

int store_chunks_usable(struct store *s, const struct chunk_ref *chunks, size_t n)
{
        if (!s->nmissing)
                return 1;
        for (size_t i = 0; i < n; i++) {
                pthread_mutex_lock(&s->lock);
                bool pending = idset_contains(&s->pending, chunks[i].id);
                pthread_mutex_unlock(&s->lock);
                if (pending)
                        continue;
                int r = chunk_stored(s, chunks[i].id);
                if (r <= 0)
                        return r;
        }
        return 1;
}

/* Pack `path` was just written and recorded.  A read of that name that
 * failed earlier in this run may sit in the record cache: a pack that was
 * lost and is now stored again byte for byte (the same chunks in the same
 * order: the same content hash, so the same name, and the same records at
 * the same offsets) was missing when the previous snapshot's file list was
 * read, and is read again when the new snapshot is indexed.  The cache,
 * keyed by name and offset, would hand out the stale "no such file" for
 * the very record the pack holds again. */
static void pack_recorded(struct store *s, const char *path)
{
        if (s->rc.valid && strcmp(s->rc.path, path) == 0)
                s->rc.valid = false;
}

void store_forget_pack(struct store *s, int64_t pack)
{
        if (pack_missing(s, pack))
                return;
        s->missing = xrealloc(s->missing, (s->nmissing + 1) * sizeof *s->missing);
        s->missing[s->nmissing++] = pack;
        qsort(s->missing, s->nmissing, sizeof *s->missing, cmp_i64);
}

int store_open(struct repo *r, bool writable, struct store **ret)
{
        struct store *s = xcalloc(1, sizeof *s);
        int k;

        s->repo = r;
        s->writable = writable;
        s->pack_target = r->cfg.pack_size;
        s->record_max = r->cfg.record_size ? r->cfg.record_size : RECORD_SIZE_DEFAULT;
        /* A repository whose config says format 1 gets format-1 packs (one
         * chunk per record), not format-2 ones: the berths that made it read
         * only those, and would call the newer packs damaged while its
         * config still says 1.  The alternative, upgrading the config to
         * format 3 when a newer pack is first written, needs an atomic
         * replace of the one mutable object, which the backend interface
         * does not have (objects are put once, never replaced: local,
         * ssh:// serve and s3:// alike), and would lock those berths out of
         * a repository they made.  The cost: such a repository keeps
         * compressing each chunk alone; `berth copy` moves its snapshots
         * into a new repository of the current format. */
        s->format1 = r->cfg.format == REPO_FORMAT_V1 && !r->keys;
        s->dctx = ZSTD_createDCtx();
        s->cctx = ZSTD_createCCtx();
        if (!s->dctx || !s->cctx)
                abort();
        ZSTD_CCtx_setParameter(s->cctx, ZSTD_c_compressionLevel, r->cfg.level);
        ZSTD_CCtx_setParameter(s->cctx, ZSTD_c_checksumFlag, 0);
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->cond_job, NULL);
        pthread_cond_init(&s->cond_space, NULL);
        pthread_cond_init(&s->cond_idle, NULL);
        pthread_cond_init(&s->cond_ticket, NULL);

        if (writable) {
                k = catalog_chunk_foreach(r->catalog, load_filter, &s->filter);
                if (k == 0)
                        k = catalog_pack_foreach(r->catalog, note_missing, s);
                if (k < 0) {
                        store_free(s);
                        return k;
                }
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                s->nthreads = n < 1 ? 1 : n > 16 ? 16 : (unsigned)n;
                s->qcap = s->nthreads * 8;
                s->queue = xcalloc(s->qcap, sizeof *s->queue);
                s->tickets = xcalloc(TICKETS, sizeof *s->tickets);
                s->threads = xcalloc(s->nthreads, sizeof *s->threads);
                for (unsigned i = 0; i < s->nthreads; i++) {
                        k = pthread_create(&s->threads[i], NULL, packer_main, s);
                        if (k != 0) {
                                s->nthreads = i;
                                store_free(s);
                                return error_set(k, "cannot start worker threads: %s", strerror(k));
                        }
                }
        }
        *ret = s;
        return 0;
}

void store_free(struct store *s)
{
        if (!s)
                return;
        pthread_mutex_lock(&s->lock);
        s->stop = true;
        pthread_cond_broadcast(&s->cond_job);
        pthread_mutex_unlock(&s->lock);
        for (unsigned i = 0; i < s->nthreads; i++)
                pthread_join(s->threads[i], NULL);
        for (size_t i = 0; i < s->qlen; i++)
                free(s->queue[(s->qhead + i) % s->qcap].data);
        for (size_t i = 0; s->tickets && i < TICKETS; i++)
                free(s->tickets[i].data);
        /* An unfinished pack is dropped; finished but unrecorded packs stay
         * on disk and are indexed by the next writer. */
        pack_writer_abort(s->writer);
        while (s->done) {
                struct finished_pack *f = s->done;
                s->done = f->next;
                free(f->entries);
                free(f);
        }
        free(s->queue);
        free(s->tickets);
        free(s->threads);
        free(s->missing);
        ZSTD_freeDCtx(s->dctx);
        ZSTD_freeCCtx(s->cctx);
        buf_free(&s->stored);
        buf_free(&s->opened);
        buf_free(&s->sealed);
        buf_free(&s->plain);
        buf_free(&s->check);
        record_cache_free(&s->rc);
        open_record_free(&s->rec[0]);
        open_record_free(&s->rec[1]);
        idfilter_free(&s->filter);
        idset_free(&s->pending);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->cond_job);
        pthread_cond_destroy(&s->cond_space);
        pthread_cond_destroy(&s->cond_idle);
        pthread_cond_destroy(&s->cond_ticket);
        free(s);
}

/* Records finished packs in the catalog, one transaction each. */
static int record_done(struct store *s)
{
        struct finished_pack *list;

        pthread_mutex_lock(&s->lock);
        list = s->done;
        s->done = s->done_tail = NULL;
        pthread_mutex_unlock(&s->lock);

        int r = 0;
        while (list) {
                struct finished_pack *f = list;
                list = f->next;
                if (r == 0) {
                        struct catalog *c = s->repo->catalog;
                        int64_t pack_id;
                        r = catalog_begin(c);
                        if (r == 0)
                                r = catalog_pack_add(c, f->hash, f->size, (uint32_t)f->n, &pack_id);
                        for (size_t i = 0; r >= 0 && i < f->n; i++) {
                                struct catalog_chunk ch = { .pack = pack_id, .offset = f->entries[i].offset,
                                                            .stored_len = f->entries[i].stored_len,
                                                            .raw_len = f->entries[i].raw_len,
                                                            .flags = f->entries[i].flags,
                                                            .inner = f->entries[i].inner };
                                memcpy(ch.id, f->entries[i].id, HASH_LEN);
                                /* With packs missing, a chunk stored again
                                 * must be found here, not in the lost pack. */
                                r = s->nmissing || s->rewrite ? catalog_chunk_set(c, &ch)
                                                              : catalog_chunk_add(c, &ch);
                        }
                        if (r >= 0)
                                r = catalog_commit(c);
                        else
                                catalog_rollback(c);
                        if (r >= 0) {
                                char path[128];
                                pack_path(f->hash, path, sizeof path);
                                pack_recorded(s, path);
                                r = 0;
                                pthread_mutex_lock(&s->lock);
                                for (size_t i = 0; i < f->n; i++) {
                                        idset_remove(&s->pending, f->entries[i].id);
                                        idfilter_add(&s->filter, f->entries[i].id);
                                }
                                s->stats.bytes_added += f->size;
                                s->stats.packs++;
                                pthread_mutex_unlock(&s->lock);
                        }
                }
                free(f->entries);
                free(f);
        }
        return r;
}

static bool have_done(struct store *s)
{
        pthread_mutex_lock(&s->lock);
        bool d = s->done != NULL;
        pthread_mutex_unlock(&s->lock);
        return d;
}

int store_has(struct store *s, const uint8_t id[HASH_LEN])
{
        pthread_mutex_lock(&s->lock);
        bool pending = idset_contains(&s->pending, id);
        bool maybe = !s->writable || idfilter_maybe(&s->filter, id);
        pthread_mutex_unlock(&s->lock);
        if (pending)
                return 1;
        if (!maybe)
                return 0;
        return chunk_stored(s, id);
}

/* A filter hit: ask the catalog (this thread only); store the chunk when
 * it is not there after all.  Returns 1 when stored, 0 when a duplicate. */
static int confirm(struct store *s, bool tree, const uint8_t id[HASH_LEN], uint8_t *data, size_t len)
{
        int r = chunk_stored(s, id);
        pthread_mutex_lock(&s->lock);
        if (r > 0 || (r == 0 && idset_contains(&s->pending, id))) {
                s->stats.chunks_dup++;
                pthread_mutex_unlock(&s->lock);
                free(data);
                return 0;
        }
        if (r < 0) {
                pthread_mutex_unlock(&s->lock);
                free(data);
                return r;
        }
        idset_add(&s->pending, id);
        s->stats.chunks_new++;
        s->stats.raw_new += len;
        pthread_mutex_unlock(&s->lock);
        struct job j = { .known = true, .flags = tree ? PACK_F_TREE : 0, .ticket = NO_TICKET, .data = data, .len = len };
        memcpy(j.id, id, HASH_LEN);
        r = packer_enqueue(s, &j, false);
        return r < 0 ? r : 1;
}

int store_put(struct store *s, bool tree, const uint8_t *data, size_t len, uint8_t ret_id[HASH_LEN])
{
        uint8_t id[HASH_LEN];

        if (!s->writable)
                return error_set(EROFS, "the repository is open read-only");
        if (len > PACK_MAX_CHUNK)
                return error_set(EINVAL, "chunk of %zu bytes is too large", len);

        chunk_id(s->repo->keys, data, len, id);
        memcpy(ret_id, id, HASH_LEN);
        pthread_mutex_lock(&s->lock);
        int d = store_decide_locked(s, id, len);
        pthread_mutex_unlock(&s->lock);
        if (d == TICKET_DONE)
                return 0;
        uint8_t *copy = xmalloc(len);
        memcpy(copy, data, len);
        int r;
        if (d == TICKET_MAYBE)
                r = confirm(s, tree, id, copy, len);
        else {
                struct job j = { .known = true, .flags = tree ? PACK_F_TREE : 0, .ticket = NO_TICKET, .data = copy,
                                 .len = len };
                memcpy(j.id, id, HASH_LEN);
                r = packer_enqueue(s, &j, false);
                r = r < 0 ? r : 1;
        }
        if (r >= 0 && have_done(s)) {
                int k = record_done(s);
                if (k < 0)
                        return k;
        }
        return r;
}

int store_submit(struct store *s, const uint8_t *data, size_t len)
{
        if (!s->writable)
                return error_set(EROFS, "the repository is open read-only");
        if (len > PACK_MAX_CHUNK)
                return error_set(EINVAL, "chunk of %zu bytes is too large", len);
        /* Only the count is a hard limit: workers may move bytes into
         * tickets between store_submit_ready() and here. */
        if (store_outstanding(s) >= TICKETS)
                return error_set(ENOBUFS, "too many chunks awaiting store_resolve()");
        struct job j = { .data = xmalloc(len), .len = len };
        memcpy(j.data, data, len);
        int r = packer_enqueue(s, &j, true);
        if (r == 0 && have_done(s))
                r = record_done(s);
        return r;
}

size_t store_outstanding(const struct store *s)
{
        return (size_t)(s->submitted - s->resolved);
}

size_t store_ticket_window(void) { return TICKETS; }

bool store_submit_ready(struct store *s, size_t len)
{
        if (s->submitted == s->resolved)
                return true;
        if (s->submitted - s->resolved >= TICKETS)
                return false;
        pthread_mutex_lock(&s->lock);
        bool ok = s->ticket_bytes + len <= TICKET_BYTES;
        pthread_mutex_unlock(&s->lock);
        return ok;
}

int store_resolve(struct store *s, bool wait, uint8_t ret_id[HASH_LEN])
{
        pthread_mutex_lock(&s->lock);
        if (s->resolved == s->submitted) {
                pthread_mutex_unlock(&s->lock);
                return error_set(EINVAL, "no chunk awaits resolving");
        }
        struct ticket *t = &s->tickets[s->resolved % TICKETS];
        while (t->state == TICKET_WAITING && !s->error && wait)
                pthread_cond_wait(&s->cond_ticket, &s->lock);
        if (t->state == TICKET_WAITING) {
                int r = packer_error_locked(s);
                pthread_mutex_unlock(&s->lock);
                return r;
        }
        memcpy(ret_id, t->id, HASH_LEN);
        uint8_t state = t->state, flags = t->flags;
        uint8_t *data = TAKE_PTR(t->data);
        size_t len = t->len;
        if (data)
                s->ticket_bytes -= len;
        t->state = TICKET_WAITING;
        s->resolved++;
        pthread_mutex_unlock(&s->lock);
        if (state == TICKET_MAYBE) {
                int r = confirm(s, flags & PACK_F_TREE, ret_id, data, len);
                if (r < 0)
                        return r;
        }
        return 1;
}

int store_flush(struct store *s)
{
        if (!s->writable)
                return 0;
        int r = packer_drain(s);
        if (r < 0)
                return r;
        return record_done(s);
}

void store_get_stats(struct store *s, struct store_stats *ret)
{
        pthread_mutex_lock(&s->lock);
        *ret = s->stats;
        pthread_mutex_unlock(&s->lock);
}

size_t store_index_bytes(const struct store *s)
{
        return idfilter_bytes(&s->filter) + s->pending.cap * (HASH_LEN + 1);
}

/* Where the catalog says chunk `id` is: its entry and pack path. */
static int locate(struct store *s, const uint8_t id[HASH_LEN], struct pack_entry *ret_e, char path[128])
{
        struct catalog_chunk ch;
        char hex[2 * HASH_LEN + 1];
        uint8_t pack_hash[HASH_LEN];
        int r;

        r = catalog_chunk_get(s->repo->catalog, id, &ch);
        if (r < 0)
                return r;
        if (r == 0) {
                hex_encode(id, HASH_LEN, hex);
                return error_set(BERTH_ECORRUPT, "chunk %s is missing from the repository", hex);
        }
        r = catalog_pack_get(s->repo->catalog, ch.pack, pack_hash, NULL);
        if (r < 0)
                return r;
        if (r == 0)
                return error_set(BERTH_ECORRUPT, "the catalog lists a chunk in unknown pack %lld",
                                 (long long)ch.pack);
        if (ch.stored_len > PACK_MAX_CHUNK || ch.raw_len > PACK_MAX_CHUNK ||
            (uint64_t)ch.inner + ch.raw_len > PACK_MAX_CHUNK)
                return error_set(BERTH_ECORRUPT, "the catalog lists an impossible chunk size");
        pack_path(pack_hash, path, 128);
        *ret_e = (struct pack_entry){ .offset = ch.offset, .stored_len = ch.stored_len, .raw_len = ch.raw_len,
                                      .flags = ch.flags, .inner = ch.inner };
        memcpy(ret_e->id, id, HASH_LEN);
        return 0;
}

static int read_error(int r, const char *path)
{
        if (r == -ENOENT)
                return error_set(BERTH_ECORRUPT, "cannot open pack %s: %s", path, strerror(ENOENT));
        if (r == -EIO)
                return error_set(BERTH_ECORRUPT, "pack %s is truncated", path);
        return error_set(r, "cannot read pack %s: %s", path, berth_strerror(r));
}

static int damaged(const uint8_t id[HASH_LEN], const char *path)
{
        char hex[2 * HASH_LEN + 1];
        hex_encode(id, HASH_LEN, hex);
        return error_set(BERTH_ECORRUPT, "chunk %.16s in pack %s is damaged (its bytes do not match its hash)", hex,
                         path);
}

int store_read_stored(struct store *s, const uint8_t id[HASH_LEN], struct buf *out, struct pack_entry *ret_e)
{
        char path[128];
        struct pack_entry e;
        int r = locate(s, id, &e, path);
        if (r < 0)
                return r;
        /* The backend keeps the pack open between reads. */
        r = record_read(s->repo->be, path, &e, out);
        if (r < 0)
                return read_error(r, path);
        const struct repo_keys *k = s->repo->keys;
        if (record_is_alone(&e, k ? NULL : out->data)) {
                /* The stored form travels unsealed (a pack it enters seals
                 * it again). */
                if (k) {
                        r = pack_record_open(k, &e, out->data, &s->opened);
                        if (r < 0) {
                                char hex[2 * HASH_LEN + 1];
                                hex_encode(id, HASH_LEN, hex);
                                return error_set(BERTH_ECORRUPT,
                                                 "chunk %.16s in pack %s is damaged (it does not decrypt)", hex, path);
                        }
                        struct buf t = *out;
                        *out = s->opened;
                        s->opened = t;
                }
                *ret_e = e;
                return 0;
        }
        /* A chunk sharing its record travels alone: opened, decoded,
         * verified, and compressed again by itself (its neighbours are not
         * sent). */
        r = record_decode(k, &e, out->data, &s->plain, s->dctx);
        if (r == 0)
                r = record_chunk_check(k, &e, s->plain.data, s->plain.len);
        if (r < 0)
                return damaged(id, path);
        r = record_encode(s->cctx, s->dctx, s->plain.data + e.inner, e.raw_len, out, &s->check);
        if (r < 0)
                return r;
        *ret_e = (struct pack_entry){ .offset = e.offset, .stored_len = (uint32_t)out->len, .raw_len = e.raw_len,
                                      .flags = (uint8_t)((e.flags & ~PACK_F_ZSTD) | r | PACK_F_ALONE) };
        memcpy(ret_e->id, id, HASH_LEN);
        return 0;
}

int store_read(struct store *s, const uint8_t id[HASH_LEN], struct buf *out)
{
        char path[128];
        struct pack_entry e;
        const uint8_t *p;
        int r = locate(s, id, &e, path);
        if (r < 0)
                return r;
        r = record_cache_chunk(&s->rc, s->repo->keys, s->repo->be, path, &e, &p);
        if (r == -BERTH_ECORRUPT)
                return damaged(id, path);
        if (r < 0)
                return read_error(r, path);
        buf_reset(out);
        buf_append(out, p, e.raw_len);
        return 0;
}

int store_put_stored(struct store *s, const uint8_t id[HASH_LEN], uint8_t flags, const uint8_t *stored,
                     size_t stored_len, size_t raw_len)
{
        if (!s->writable)
                return error_set(EROFS, "the repository is open read-only");
        if (stored_len > PACK_MAX_CHUNK || raw_len > PACK_MAX_CHUNK)
                return error_set(EINVAL, "chunk of %zu bytes is too large", MAX(stored_len, raw_len));
        if (flags & ~(PACK_F_ZSTD | PACK_F_TREE | PACK_F_ALONE))
                return error_set(BERTH_ECORRUPT, "chunk with unknown flags 0x%x", flags);
        if (!(flags & PACK_F_ZSTD) && stored_len != raw_len)
                return error_set(BERTH_ECORRUPT, "a raw chunk whose stored and plain lengths differ");

        pthread_mutex_lock(&s->lock);
        int d = store_decide_locked(s, id, raw_len);
        pthread_mutex_unlock(&s->lock);
        if (d == TICKET_DONE)
                return 0;
        if (d == TICKET_MAYBE) {
                /* A filter hit: the catalog decides (this thread only). */
                int r = chunk_stored(s, id);
                pthread_mutex_lock(&s->lock);
                if (r > 0 || (r == 0 && idset_contains(&s->pending, id))) {
                        s->stats.chunks_dup++;
                        pthread_mutex_unlock(&s->lock);
                        return 0;
                }
                if (r < 0) {
                        pthread_mutex_unlock(&s->lock);
                        return r;
                }
                idset_add(&s->pending, id);
                s->stats.chunks_new++;
                s->stats.raw_new += raw_len;
                pthread_mutex_unlock(&s->lock);
        }
        struct job j = { .known = true, .stored = true, .flags = flags, .ticket = NO_TICKET,
                         .data = xmalloc(stored_len ? stored_len : 1), .len = stored_len,
                         .raw_len = (uint32_t)raw_len };
        memcpy(j.id, id, HASH_LEN);
        memcpy(j.data, stored, stored_len);
        int r = packer_enqueue(s, &j, false);
        if (r >= 0 && have_done(s)) {
                int k = record_done(s);
                if (k < 0)
                        return k;
        }
        return r < 0 ? r : 1;
}

int store_put_stream(struct store *s, const struct chunker *ch, struct buf *b, bool eof,
                     int (*add)(void *ud, const uint8_t id[HASH_LEN], size_t len), void *ud)
{
        size_t pos = 0;
        int r = 0;
        for (;;) {
                size_t cut = chunker_cut(ch, b->data + pos, b->len - pos, eof);
                if (cut == 0)
                        break;
                uint8_t id[HASH_LEN];
                r = store_put(s, false, b->data + pos, cut, id);
                if (r < 0)
                        break;
                pos += cut;
                r = add(ud, id, cut);
                if (r < 0)
                        break;
        }
        buf_consume(b, pos);
        return r < 0 ? r : 0;
}
