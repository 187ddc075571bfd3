/* readahead.c — reading a file's chunks ahead of the writer.
 *
 * The calling thread resolves where each chunk lives (the catalog is
 * single-threaded) and queues it; reader threads read it through the
 * repository's backend (get_range, which keeps packs open and is
 * thread-safe), decompress and verify it; the caller takes the chunks back
 * in the order it queued them.  Restores and exports use every core this
 * way.
 *
 * What it holds: at most `window` chunks and about READAHEAD_BYTES of
 * plain bytes (one chunk is always allowed, whatever its size).  After any
 * failure of readahead_chunk() it holds nothing: everything queued is
 * dropped (reads in flight are waited for), so the next file starts from
 * an empty queue and can never be handed a chunk queued for another one.
 * Every chunk handed out is the one that was asked for: its id is compared
 * with the id the caller expects, and its bytes were verified against that
 * id by the reader.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define READAHEAD_BYTES (8u << 20)

struct slot {
        struct pack_entry e;
        char path[80];          /* the pack's object name */
        int state;               /* SLOT_* */
        int err;
        char msg[256];
        struct buf data;
};

enum { SLOT_FREE, SLOT_QUEUED, SLOT_READING, SLOT_DONE };

/* A decoded record shared by the readers (format-2 records hold several
 * chunks, often read by different threads one after the other). */
struct shared_record {
        char path[80];
        uint32_t offset, stored_len;
        int state;               /* REC_* */
        unsigned refs;           /* readers using it: not reused while > 0 */
        uint64_t used;           /* for least-recently-used reuse */
        struct record_cache rc;  /* its bytes, written by the reader that decodes it */
};

enum { REC_EMPTY, REC_DECODING, REC_READY };

struct readahead {
        struct repo *repo;
        struct slot *slots;
        size_t cap;
        size_t head, tail, work; /* consume, fill, next for a reader (all counting up) */
        uint64_t bytes;          /* plain bytes of the chunks from head to tail */
        bool returned;           /* the slot at head was handed out and not yet freed */
        pthread_t *threads;
        unsigned nthreads;
        unsigned reading;        /* slots in SLOT_READING */
        pthread_mutex_t lock;
        pthread_cond_t cond_work, cond_done;
        bool stop;
        /* The pack of the last chunk queued (calling thread): consecutive
         * chunks mostly share it, and its name needs no second lookup.  A
         * stale name can only fail a read (ids are verified), never give
         * other bytes. */
        int64_t last_pack;
        char last_path[80];
        struct shared_record *recs; /* under lock, but for the bytes (see read_slot) */
        size_t nrecs;
        uint64_t tick;
        pthread_cond_t cond_rec;
};

/* Finds the shared record of sl's chunk, or claims one to decode it into
 * (*owner), taking a reference; NULL when every one is in use.  Called
 * with the lock held; waits while another reader decodes it. */
static struct shared_record *record_get_locked(struct readahead *p, const struct slot *sl, bool *owner)
{
        struct shared_record *victim = NULL;
        *owner = false;
        for (size_t i = 0; i < p->nrecs; i++) {
                struct shared_record *r = &p->recs[i];
                if (r->state != REC_EMPTY && r->offset == sl->e.offset && r->stored_len == sl->e.stored_len &&
                    strcmp(r->path, sl->path) == 0) {
                        r->refs++;
                        while (r->state == REC_DECODING)
                                pthread_cond_wait(&p->cond_rec, &p->lock);
                        r->used = ++p->tick;
                        return r;
                }
                if (r->refs == 0 && (!victim || r->used < victim->used))
                        victim = r;
        }
        if (!victim)
                return NULL;
        memcpy(victim->path, sl->path, sizeof victim->path);
        victim->offset = sl->e.offset;
        victim->stored_len = sl->e.stored_len;
        victim->state = REC_DECODING;
        victim->refs = 1;
        victim->used = ++p->tick;
        *owner = true;
        return victim;
}

/* Reads, decompresses and verifies one queued chunk into sl->data.  Its
 * record is decoded once for all readers that want chunks of it while it
 * is among the last few (p->recs); rc is the reader's own, for when they
 * are all in use. */
static void read_slot(struct readahead *p, struct record_cache *rc, struct slot *sl)
{
        const uint8_t *plain;
        bool owner;
        pthread_mutex_lock(&p->lock);
        struct shared_record *r = record_get_locked(p, sl, &owner);
        pthread_mutex_unlock(&p->lock);
        /* Only the owner writes the cache, before it is marked ready;
         * readers of a ready one only read it. */
        int k = record_cache_chunk(r ? &r->rc : rc, p->repo->keys, p->repo->be, sl->path, &sl->e, &plain);
        if (k == -ENOENT || k == -EIO) /* missing, or shorter than the catalog says */
                k = -BERTH_ECORRUPT;
        if (k == 0) {
                buf_reset(&sl->data);
                buf_append(&sl->data, plain, sl->e.raw_len);
        }
        if (r) {
                pthread_mutex_lock(&p->lock);
                if (owner) {
                        r->state = REC_READY;
                        pthread_cond_broadcast(&p->cond_rec);
                }
                r->refs--;
                pthread_mutex_unlock(&p->lock);
        }
        if (k < 0) {
                char hex[2 * HASH_LEN + 1];
                hex_encode(sl->e.id, HASH_LEN, hex);
                if (k == -BERTH_ECORRUPT)
                        snprintf(sl->msg, sizeof sl->msg,
                                 "chunk %.16s in pack %s is damaged or missing (its bytes do not match its hash)", hex,
                                 sl->path);
                else
                        snprintf(sl->msg, sizeof sl->msg, "cannot read pack %s: %s", sl->path, berth_strerror(k));
        }
        sl->err = k;
}

static bool same_record(const struct slot *a, const struct slot *b)
{
        return a->e.offset == b->e.offset && a->e.stored_len == b->e.stored_len && strcmp(a->path, b->path) == 0;
}

/* A reader takes the next queued chunk and the queued chunks of the same
 * record after it, so that one thread decodes the record once for all. */
#define READER_BATCH 64

static void *reader_main(void *arg)
{
        struct readahead *p = arg;
        struct record_cache rc = { 0 };
        struct slot *batch[READER_BATCH];
        for (;;) {
                pthread_mutex_lock(&p->lock);
                while (!p->stop && p->work == p->tail)
                        pthread_cond_wait(&p->cond_work, &p->lock);
                if (p->stop) {
                        pthread_mutex_unlock(&p->lock);
                        break;
                }
                size_t nb = 0;
                do {
                        struct slot *sl = &p->slots[p->work++ % p->cap];
                        sl->state = SLOT_READING;
                        p->reading++;
                        batch[nb++] = sl;
                } while (nb < READER_BATCH && p->work != p->tail &&
                         same_record(batch[0], &p->slots[p->work % p->cap]));
                pthread_mutex_unlock(&p->lock);

                for (size_t i = 0; i < nb; i++) {
                        read_slot(p, &rc, batch[i]);
                        pthread_mutex_lock(&p->lock);
                        batch[i]->state = SLOT_DONE;
                        p->reading--;
                        pthread_cond_broadcast(&p->cond_done);
                        pthread_mutex_unlock(&p->lock);
                }
        }
        record_cache_free(&rc);
        return NULL;
}

int readahead_new(struct repo *r, size_t window, struct readahead **ret)
{
        struct readahead *p = xcalloc(1, sizeof *p);
        p->repo = r;
        p->cap = window < 2 ? 2 : window;
        p->slots = xcalloc(p->cap, sizeof *p->slots);
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond_work, NULL);
        pthread_cond_init(&p->cond_done, NULL);
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        p->nthreads = n < 1 ? 1 : n > 8 ? 8 : (unsigned)n;
        p->threads = xcalloc(p->nthreads, sizeof *p->threads);
        /* Each reader holds at most one: room for every reader's record and
         * the ones before them. */
        p->nrecs = 2 * (size_t)p->nthreads + 2;
        p->recs = xcalloc(p->nrecs, sizeof *p->recs);
        pthread_cond_init(&p->cond_rec, NULL);
        for (unsigned i = 0; i < p->nthreads; i++) {
                int k = pthread_create(&p->threads[i], NULL, reader_main, p);
                if (k != 0) {
                        p->nthreads = i;
                        readahead_free(p);
                        return error_set(k, "cannot start reader threads: %s", strerror(k));
                }
        }
        *ret = p;
        return 0;
}

void readahead_free(struct readahead *p)
{
        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_broadcast(&p->cond_work);
        pthread_mutex_unlock(&p->lock);
        for (unsigned i = 0; i < p->nthreads; i++)
                pthread_join(p->threads[i], NULL);
        for (size_t i = 0; i < p->cap; i++)
                buf_free(&p->slots[i].data);
        free(p->slots);
        free(p->threads);
        for (size_t i = 0; i < p->nrecs; i++)
                record_cache_free(&p->recs[i].rc);
        free(p->recs);
        pthread_cond_destroy(&p->cond_rec);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->cond_work);
        pthread_cond_destroy(&p->cond_done);
        free(p);
}

/* Frees the slot at head (caller holds the lock). */
static void pop_locked(struct readahead *p)
{
        struct slot *sl = &p->slots[p->head % p->cap];
        p->bytes -= sl->e.raw_len;
        sl->state = SLOT_FREE;
        p->head++;
}

void readahead_reset(struct readahead *p)
{
        pthread_mutex_lock(&p->lock);
        /* Slots no reader took yet are dropped; those being read are
         * waited for, so no reader writes into a slot reused later. */
        p->work = p->tail;
        while (p->reading > 0)
                pthread_cond_wait(&p->cond_done, &p->lock);
        while (p->head != p->tail)
                pop_locked(p);
        p->returned = false;
        pthread_mutex_unlock(&p->lock);
}

static bool has_room(const struct readahead *p, uint32_t raw_len)
{
        size_t queued = p->tail - p->head;
        if (queued == 0)
                return true;
        return queued < p->cap && p->bytes + raw_len <= READAHEAD_BYTES;
}

/* Queues chunk `id`: looks it up in the catalog and hands it to a reader. */
static int add(struct readahead *p, const uint8_t id[HASH_LEN])
{
        struct catalog_chunk ch;
        uint8_t pack_hash[HASH_LEN];
        char hex[2 * HASH_LEN + 1];

        int r = catalog_chunk_get(p->repo->catalog, id, &ch);
        if (r == 0) {
                hex_encode(id, HASH_LEN, hex);
                return error_set(BERTH_ECORRUPT, "chunk %.16s is missing from the repository (not in any pack the "
                                                 "catalog lists)",
                                 hex);
        }
        if (r > 0 && (ch.pack != p->last_pack || !p->last_path[0])) {
                r = catalog_pack_get(p->repo->catalog, ch.pack, pack_hash, NULL);
                if (r > 0) {
                        pack_path(pack_hash, p->last_path, sizeof p->last_path);
                        p->last_pack = ch.pack;
                }
        }
        if (r == 0)
                return error_set(BERTH_ECORRUPT, "the catalog lists a chunk in unknown pack %lld", (long long)ch.pack);
        if (r < 0)
                return r;
        if (ch.stored_len > PACK_MAX_CHUNK || ch.raw_len > PACK_MAX_CHUNK ||
            (uint64_t)ch.inner + ch.raw_len > PACK_MAX_CHUNK)
                return error_set(BERTH_ECORRUPT, "the catalog lists an impossible chunk size");

        struct slot *sl = &p->slots[p->tail % p->cap];
        sl->e = (struct pack_entry){ .offset = ch.offset, .stored_len = ch.stored_len, .raw_len = ch.raw_len,
                                     .flags = ch.flags, .inner = ch.inner };
        memcpy(sl->e.id, id, HASH_LEN);
        memcpy(sl->path, p->last_path, sizeof sl->path);
        sl->err = 0;
        sl->msg[0] = 0;
        pthread_mutex_lock(&p->lock);
        sl->state = SLOT_QUEUED;
        p->bytes += ch.raw_len;
        p->tail++;
        pthread_cond_signal(&p->cond_work);
        pthread_mutex_unlock(&p->lock);
        return 0;
}

/* Takes back the oldest queued chunk, which must be `want`. */
static int next(struct readahead *p, const uint8_t want[HASH_LEN], const struct buf **ret)
{
        pthread_mutex_lock(&p->lock);
        if (p->head == p->tail) {
                pthread_mutex_unlock(&p->lock);
                return error_set(EINVAL, "read-ahead: nothing queued");
        }
        struct slot *sl = &p->slots[p->head % p->cap];
        while (sl->state != SLOT_DONE)
                pthread_cond_wait(&p->cond_done, &p->lock);
        p->returned = true;
        pthread_mutex_unlock(&p->lock);
        if (memcmp(sl->e.id, want, HASH_LEN) != 0)
                return error_set(EINVAL, "read-ahead: a chunk came back out of order");
        if (sl->err < 0)
                return error_set(sl->err, "%s", sl->msg);
        *ret = &sl->data;
        return 0;
}

int readahead_chunk(struct readahead *p, const char *path, const struct chunk_ref *chunks, size_t n, size_t i,
                    size_t *queued, const struct buf **ret)
{
        int k = 0;
        pthread_mutex_lock(&p->lock);
        if (p->returned) {
                /* The caller is done with the chunk handed out last. */
                pop_locked(p);
                p->returned = false;
        }
        bool in_order = *queued >= i && p->tail - p->head == *queued - i;
        pthread_mutex_unlock(&p->lock);
        if (!in_order) {
                /* Chunks are taken one after the other: a caller that
                 * skips one has abandoned the file. */
                k = error_set(EINVAL, "read-ahead: chunk %zu of '%s' asked for out of order", i, path);
                goto fail;
        }
        /* Refill when half the window is free: lookups in runs, one read
         * transaction each, and readers find runs of a record's chunks. */
        if (*queued == i || (*queued - i) * 2 <= p->cap) {
                catalog_read_begin(p->repo->catalog);
                while (*queued < n && has_room(p, chunks[*queued].len)) {
                        k = add(p, chunks[*queued].id);
                        if (k < 0)
                                break;
                        (*queued)++;
                }
                catalog_read_end(p->repo->catalog);
                if (k < 0)
                        goto fail;
        }
        k = next(p, chunks[i].id, ret);
        if (k < 0)
                goto fail;
        if ((*ret)->len != chunks[i].len) {
                k = error_set(BERTH_ECORRUPT, "a chunk of '%s' has the wrong length", path);
                goto fail;
        }
        return 0;
fail:
        readahead_reset(p);
        *queued = n;
        return k;
}
