/* packer.c — the chunk store's worker threads: hashing, compression, packs.
 *
 * Workers take jobs from the store's queue.  A submitted chunk (a ticket)
 * is hashed here and its dedup decision taken under the lock
 * (store_decide_locked); a new chunk is compressed with zstd, decompressed
 * and compared with the original (a chunk counts as stored only once
 * verified), and appended to the open pack.  A worker that fills a pack
 * finishes it outside the lock (the backend makes it durable) and puts it
 * on the list of finished packs, which the calling thread records in the
 * catalog (store.c).  This file never touches the catalog.
 *
 * The queue holds at most qcap jobs and WORK_BYTES of chunk copies:
 * packer_enqueue() waits for room, and only workers release it, so the
 * wait cannot deadlock.  After a failure the first error is kept
 * (s->error) and every waiter is woken; the workers go on taking jobs but
 * only free them (the queue drains), tickets not yet hashed stay
 * TICKET_WAITING, the open pack is dropped by packer_drain() or
 * store_free(), and packs already finished stay on s->done, unrecorded:
 * their files are left for the next writer's recovery.
 */
#include <stdio.h>
#include <string.h>

#include "store-private.h"

static void set_worker_error(struct store *s, int r)
{
        /* Called with the lock held.  The first failure wins. */
        if (s->error)
                return;
        s->error = r;
        const char *m = error_message();
        snprintf(s->error_msg, sizeof s->error_msg, "%s", m ? m : berth_strerror(r));
        pthread_cond_broadcast(&s->cond_ticket);
        pthread_cond_broadcast(&s->cond_space);
}

int packer_error_locked(struct store *s)
{
        if (s->error)
                error_set(s->error, "%s", s->error_msg);
        return s->error;
}

static int worker_error(struct store *s)
{
        pthread_mutex_lock(&s->lock);
        int r = packer_error_locked(s);
        pthread_mutex_unlock(&s->lock);
        return r;
}

static void push_done(struct store *s, struct finished_pack *f)
{
        /* Called with the lock held. */
        if (s->done_tail)
                s->done_tail->next = f;
        else
                s->done = f;
        s->done_tail = f;
}

static int finish_pack(struct store *s, struct pack_writer *w)
{
        struct finished_pack *f = xcalloc(1, sizeof *f);
        int r = pack_writer_finish(w, s->repo->be, f->hash, &f->size, &f->entries, &f->n);
        pthread_mutex_lock(&s->lock);
        if (r < 0) {
                set_worker_error(s, r);
                free(f);
        } else
                push_done(s, f);
        pthread_mutex_unlock(&s->lock);
        return r;
}

/* Compresses and verifies one chunk into *stored; returns the pack flags or
 * -errno. */
static int encode_chunk(const struct job *j, ZSTD_CCtx *cctx, ZSTD_DCtx *dctx, struct buf *stored, struct buf *check)
{
        size_t bound = ZSTD_compressBound(j->len);
        buf_reset(stored);
        buf_reserve(stored, bound);
        size_t k = ZSTD_compress2(cctx, stored->data, bound, j->data, j->len);
        if (ZSTD_isError(k))
                return error_set(EIO, "zstd compression failed: %s", ZSTD_getErrorName(k));
        if (k >= j->len) {
                /* Incompressible: store it as it is. */
                buf_reset(stored);
                buf_append(stored, j->data, j->len);
                return j->flags;
        }
        stored->len = k;
        /* A chunk counts as stored only once its compressed form is known to
         * give the same bytes back.  Comparing with the bytes we hashed is
         * the same check as re-hashing, at a fraction of the cost. */
        buf_reset(check);
        buf_reserve(check, j->len);
        size_t back = ZSTD_decompressDCtx(dctx, check->data, j->len, stored->data, k);
        if (ZSTD_isError(back) || back != j->len || memcmp(check->data, j->data, j->len) != 0)
                return error_set(EIO, "a compressed chunk did not decompress to its own bytes; refusing to store it");
        return j->flags | PACK_F_ZSTD;
}

/* Checks a chunk given in its stored form (store_put_stored): decoded and
 * hashed, it must give its id.  Returns its pack flags or -errno. */
static int verify_stored(const struct repo_keys *k, const struct job *j, ZSTD_DCtx *dctx, struct buf *check)
{
        struct pack_entry e = { .stored_len = (uint32_t)j->len, .raw_len = j->raw_len, .flags = j->flags };
        memcpy(e.id, j->id, HASH_LEN);
        if (chunk_decode(k, &e, j->data, check, dctx) < 0) {
                char hex[2 * HASH_LEN + 1];
                hex_encode(j->id, HASH_LEN, hex);
                return error_set(BERTH_ECORRUPT,
                                 "chunk %.16s is damaged in the source (its stored bytes do not decode to its hash); "
                                 "refusing to store it",
                                 hex);
        }
        return j->flags;
}

/* Hashes and decides a submitted chunk; returns true when it must be stored. */
static bool worker_hash(struct store *s, struct job *j)
{
        chunk_id(s->repo->keys, j->data, j->len, j->id);
        pthread_mutex_lock(&s->lock);
        int d = store_decide_locked(s, j->id, j->len);
        struct ticket *t = &s->tickets[j->ticket % TICKETS];
        memcpy(t->id, j->id, HASH_LEN);
        t->flags = j->flags;
        if (d == TICKET_MAYBE) {
                /* The calling thread asks the catalog; the bytes go with it. */
                t->data = TAKE_PTR(j->data);
                t->len = j->len;
                s->work_bytes -= j->len;
                s->ticket_bytes += j->len;
        }
        t->state = d == TICKET_MAYBE ? TICKET_MAYBE : TICKET_DONE;
        pthread_cond_broadcast(&s->cond_ticket);
        pthread_mutex_unlock(&s->lock);
        return d < 0;
}

void *packer_main(void *arg)
{
        struct store *s = arg;
        ZSTD_CCtx *cctx = ZSTD_createCCtx();
        ZSTD_DCtx *dctx = ZSTD_createDCtx();
        struct buf stored = { 0 }, check = { 0 };

        if (!cctx || !dctx)
                abort();
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, s->repo->cfg.level);
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0);

        for (;;) {
                pthread_mutex_lock(&s->lock);
                while (!s->stop && s->qlen == 0)
                        pthread_cond_wait(&s->cond_job, &s->lock);
                if (s->qlen == 0) {
                        pthread_mutex_unlock(&s->lock);
                        break;
                }
                struct job j = s->queue[s->qhead];
                s->qhead = (s->qhead + 1) % s->qcap;
                s->qlen--;
                s->busy++;
                pthread_cond_signal(&s->cond_space);
                bool failed = s->error != 0;
                pthread_mutex_unlock(&s->lock);

                bool store = !failed && (j.known || worker_hash(s, &j));
                int flags = !store ? -ECANCELED
                            : j.stored ? verify_stored(s->repo->keys, &j, dctx, &check)
                                       : encode_chunk(&j, cctx, dctx, &stored, &check);
                /* What goes into the pack: the stored form given, or made. */
                const uint8_t *sp = j.stored ? j.data : stored.data;
                size_t slen = j.stored ? j.len : stored.len;
                uint32_t raw_len = j.stored ? j.raw_len : (uint32_t)j.len;
                struct pack_writer *full = NULL;

                pthread_mutex_lock(&s->lock);
                if (flags < 0) {
                        if (flags != -ECANCELED)
                                set_worker_error(s, flags);
                } else if (!s->error) {
                        int r = 0;
                        if (!s->writer)
                                r = pack_writer_new(s->repo->spool_dirfd, s->repo->keys, &s->writer);
                        if (r == 0) {
                                struct pack_entry e = { .stored_len = (uint32_t)slen, .raw_len = raw_len,
                                                        .flags = (uint8_t)flags };
                                memcpy(e.id, j.id, HASH_LEN);
                                r = pack_writer_add(s->writer, &e, sp);
                        }
                        if (r < 0)
                                set_worker_error(s, r);
                        else if (pack_writer_size(s->writer) >= s->pack_target)
                                full = TAKE_PTR(s->writer);
                }
                pthread_mutex_unlock(&s->lock);

                if (full)
                        finish_pack(s, full);
                size_t held = j.data ? j.len : 0; /* not handed to a ticket */
                free(j.data);

                pthread_mutex_lock(&s->lock);
                if (held) {
                        s->work_bytes -= held;
                        pthread_cond_broadcast(&s->cond_space);
                }
                s->busy--;
                if (s->qlen == 0 && s->busy == 0)
                        pthread_cond_broadcast(&s->cond_idle);
                pthread_mutex_unlock(&s->lock);
        }
        ZSTD_freeCCtx(cctx);
        ZSTD_freeDCtx(dctx);
        buf_free(&stored);
        buf_free(&check);
        return NULL;
}

int packer_enqueue(struct store *s, struct job *j, bool ticket)
{
        pthread_mutex_lock(&s->lock);
        while ((s->qlen == s->qcap || (s->work_bytes > 0 && s->work_bytes + j->len > WORK_BYTES)) && !s->error)
                pthread_cond_wait(&s->cond_space, &s->lock);
        if (s->error) {
                int r = packer_error_locked(s);
                pthread_mutex_unlock(&s->lock);
                free(j->data);
                return r;
        }
        if (ticket) {
                j->ticket = s->submitted++;
                s->tickets[j->ticket % TICKETS].state = TICKET_WAITING;
        }
        s->queue[(s->qhead + s->qlen) % s->qcap] = *j;
        s->qlen++;
        s->work_bytes += j->len;
        pthread_cond_signal(&s->cond_job);
        pthread_mutex_unlock(&s->lock);
        return 0;
}

int packer_drain(struct store *s)
{
        pthread_mutex_lock(&s->lock);
        while (s->qlen > 0 || s->busy > 0)
                pthread_cond_wait(&s->cond_idle, &s->lock);
        struct pack_writer *w = TAKE_PTR(s->writer);
        int err = s->error;
        pthread_mutex_unlock(&s->lock);

        if (w) {
                if (err || pack_writer_count(w) == 0)
                        pack_writer_abort(w);
                else
                        finish_pack(s, w);
        }
        return worker_error(s);
}
