/* packer.c — the chunk store's worker threads: hashing, compression, packs.
 *
 * Workers take jobs from the store's queue.  A submitted chunk (a ticket)
 * is hashed here and its dedup decision taken under the lock
 * (store_decide_locked); a new chunk joins the open record of its kind
 * (data or manifest), and whoever fills a record to s->record_max plain
 * bytes compresses it with zstd as one frame, decompresses it and compares
 * it with the original (a chunk counts as stored only once verified),
 * seals it in an encrypted repository, and appends it to the open pack;
 * only the append happens under the lock.  A chunk as large as a record, and one
 * given in its stored form, is a record alone.  A worker that fills a pack
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

/* Checks a chunk given in its stored form (store_put_stored): decoded and
 * hashed, it must give its id.  Returns its pack flags or -errno. */
static int verify_stored(const struct repo_keys *k, const struct job *j, ZSTD_DCtx *dctx, struct buf *check)
{
        struct pack_entry e = { .stored_len = (uint32_t)j->len, .raw_len = j->raw_len, .flags = j->flags };
        memcpy(e.id, j->id, HASH_LEN);
        if (!record_is_alone(&e, j->data) || chunk_decode(k, &e, j->data, check, dctx) < 0) {
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

void open_record_free(struct open_record *r)
{
        buf_free(&r->plain);
        free(r->e);
        *r = (struct open_record){ 0 };
}

/* Appends a record's stored form to the open pack, finishing the pack when
 * it is full.  In an encrypted repository the record is sealed first, here,
 * outside the lock, so that the workers seal in parallel; only the append
 * (a copy into the writer's buffer) is serialised.  `sealed` is the
 * caller's scratch.  Records a failure as the workers' error. */
static void pack_record(struct store *s, struct pack_entry *e, size_t n, const uint8_t *stored, size_t len,
                        struct buf *sealed)
{
        struct pack_writer *full = NULL;
        const struct repo_keys *k = s->repo->keys;
        int r = 0;
        if (k) {
                r = pack_record_seal(k, stored, len, sealed);
                stored = sealed->data;
                len = sealed->len;
        }
        pthread_mutex_lock(&s->lock);
        if (r < 0)
                set_worker_error(s, r);
        else if (!s->error) {
                if (!s->writer) {
                        r = pack_writer_new(s->repo->spool_dirfd, k, &s->writer);
                        if (r == 0 && s->format1)
                                pack_writer_format1(s->writer);
                }
                if (r == 0)
                        r = pack_writer_add_sealed(s->writer, e, n, stored, len);
                if (r < 0)
                        set_worker_error(s, r);
                else if (pack_writer_size(s->writer) >= s->pack_target)
                        full = TAKE_PTR(s->writer);
        }
        pthread_mutex_unlock(&s->lock);
        if (full)
                finish_pack(s, full);
}

/* Compresses, verifies and packs a closed record (sealing it in an
 * encrypted repository): all of it outside the lock but the append. */
static void close_record(struct store *s, struct open_record *rec, ZSTD_CCtx *cctx, ZSTD_DCtx *dctx,
                         struct buf *stored, struct buf *check, struct buf *sealed)
{
        int flags = record_encode(cctx, dctx, rec->plain.data, rec->plain.len, stored, check);
        if (flags < 0) {
                pthread_mutex_lock(&s->lock);
                set_worker_error(s, flags);
                pthread_mutex_unlock(&s->lock);
                return;
        }
        for (size_t i = 0; i < rec->n; i++)
                rec->e[i].flags = (uint8_t)((rec->e[i].flags & ~PACK_F_ZSTD) | flags);
        pack_record(s, rec->e, rec->n, stored->data, stored->len, sealed);
}

/* With the lock held: adds a new chunk to the open record of its kind;
 * when that reaches s->record_max, moves it to *ret for the caller to
 * close (outside the lock). */
static void gather_locked(struct store *s, const struct job *j, struct open_record *ret)
{
        struct open_record *r = &s->rec[j->flags & PACK_F_TREE ? 1 : 0];
        if (r->n == r->cap) {
                r->cap = r->cap ? r->cap * 2 : 64;
                r->e = xrealloc(r->e, r->cap * sizeof *r->e);
        }
        struct pack_entry *e = &r->e[r->n++];
        *e = (struct pack_entry){ .inner = (uint32_t)r->plain.len, .raw_len = (uint32_t)j->len, .flags = j->flags };
        memcpy(e->id, j->id, HASH_LEN);
        buf_append(&r->plain, j->data, j->len);
        if (r->plain.len >= s->record_max) {
                *ret = *r;
                *r = (struct open_record){ 0 };
        }
}

void *packer_main(void *arg)
{
        struct store *s = arg;
        ZSTD_CCtx *cctx = ZSTD_createCCtx();
        ZSTD_DCtx *dctx = ZSTD_createDCtx();
        struct buf stored = { 0 }, check = { 0 }, sealed = { 0 };

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
                if (store && j.stored) {
                        /* A stored form from elsewhere: a record alone, as it is. */
                        int flags = verify_stored(s->repo->keys, &j, dctx, &check);
                        if (flags < 0) {
                                pthread_mutex_lock(&s->lock);
                                set_worker_error(s, flags);
                                pthread_mutex_unlock(&s->lock);
                        } else {
                                struct pack_entry e = { .raw_len = j.raw_len, .flags = (uint8_t)flags };
                                memcpy(e.id, j.id, HASH_LEN);
                                pack_record(s, &e, 1, j.data, j.len, &sealed);
                        }
                } else if (store) {
                        struct open_record full = { 0 };
                        if (j.len >= s->record_max || s->format1) {
                                /* As large as a record (or any chunk of a
                                 * format-1 repository): a record alone. */
                                struct pack_entry e = { .raw_len = (uint32_t)j.len, .flags = j.flags };
                                memcpy(e.id, j.id, HASH_LEN);
                                full = (struct open_record){ .plain = { .data = j.data, .len = j.len, .cap = j.len },
                                                             .e = &e, .n = 1 };
                                close_record(s, &full, cctx, dctx, &stored, &check, &sealed);
                        } else {
                                pthread_mutex_lock(&s->lock);
                                if (!s->error)
                                        gather_locked(s, &j, &full);
                                pthread_mutex_unlock(&s->lock);
                                if (full.n) {
                                        close_record(s, &full, cctx, dctx, &stored, &check, &sealed);
                                        open_record_free(&full);
                                }
                        }
                }
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
        buf_free(&sealed);
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
        struct open_record rec[2] = { s->rec[0], s->rec[1] };
        s->rec[0] = s->rec[1] = (struct open_record){ 0 };
        int err = s->error;
        pthread_mutex_unlock(&s->lock);

        /* The workers are idle: the records they left open are closed here. */
        for (size_t i = 0; i < ELEMENTSOF(rec); i++) {
                if (!err && rec[i].n)
                        close_record(s, &rec[i], s->cctx, s->dctx, &s->stored, &s->check, &s->sealed);
                open_record_free(&rec[i]);
        }

        pthread_mutex_lock(&s->lock);
        struct pack_writer *w = TAKE_PTR(s->writer);
        err = s->error;
        pthread_mutex_unlock(&s->lock);

        if (w) {
                if (err || pack_writer_count(w) == 0)
                        pack_writer_abort(w);
                else
                        finish_pack(s, w);
        }
        return worker_error(s);
}
