/* store-private.h — the chunk store's state, shared by store.c (the dedup
 * decision, tickets, reading) and packer.c (the worker threads that hash,
 * compress and pack).  Nothing else includes it: the store's interface is
 * the store_* section of internal.h.
 */
#ifndef BERTH_SNAPSHOT_STORE_PRIVATE_H
#define BERTH_SNAPSHOT_STORE_PRIVATE_H

#include <zstd.h>

#include "internal.h"

#define NO_TICKET UINT64_MAX
#define TICKETS 4096
/* Copies of chunk bytes the store may hold for workers (queued or being
 * worked on), and again for the calling thread (chunks whose dedup needs a
 * catalog lookup).  Bytes, not chunks: with duplicates the workers drain
 * at once and only this bound keeps the tickets from holding 4096 chunks. */
#define WORK_BYTES (8u << 20)
#define TICKET_BYTES (4u << 20)

struct job {
        uint8_t id[HASH_LEN];
        bool known;              /* id computed and dedup decided already */
        uint8_t flags;
        uint64_t ticket;         /* NO_TICKET for store_put() */
        uint8_t *data;
        size_t len;
        bool stored;             /* store_put_stored(): data is already the stored form
                                  * (flags tell which), len its length; raw_len the plain one */
        uint32_t raw_len;
};

enum { TICKET_WAITING, TICKET_DONE, TICKET_MAYBE };

struct ticket {
        uint8_t id[HASH_LEN];
        uint8_t state;
        uint8_t flags;
        uint8_t *data;           /* TICKET_MAYBE: the bytes, in case the catalog lacks them */
        size_t len;
};

/* New chunks gathered into one record (packer.c), under the store's lock. */
struct open_record {
        struct buf plain;        /* the chunks' bytes, concatenated */
        struct pack_entry *e;    /* id, inner, raw_len, flags of each */
        size_t n, cap;
};

struct finished_pack {
        uint8_t hash[HASH_LEN];
        uint64_t size;
        struct pack_entry *entries;
        size_t n;
        struct finished_pack *next;
};

struct store {
        struct repo *repo;
        bool writable;
        uint64_t pack_target;
        bool rewrite;            /* store_set_rewrite(): recorded chunks are stored again */
        int64_t *missing;        /* rowids of listed packs that are gone, ascending */
        size_t nmissing;

        /* Reading, calling thread only. */
        ZSTD_DCtx *dctx;
        ZSTD_CCtx *cctx;         /* store_read_stored() re-encoding a chunk alone; packer_drain() */
        struct buf stored, plain, check;
        struct buf opened;          /* scratch: an encrypted record opened (store_read_stored) */
        struct buf sealed;          /* scratch: a record sealed by packer_drain() */
        struct record_cache rc;
        size_t record_max;       /* plain bytes per record (repository config) */
        bool format1;            /* a format-1 repository: format-1 packs, one chunk per record */

        /* Everything below is under `lock`. */
        pthread_mutex_t lock;
        struct idfilter filter;
        struct idset pending;
        struct store_stats stats;
        struct ticket *tickets;
        uint64_t submitted, resolved;
        size_t work_bytes;       /* chunk bytes queued or in a worker's hands */
        size_t ticket_bytes;     /* chunk bytes held by TICKET_MAYBE tickets */
        pthread_t *threads;
        unsigned nthreads;
        pthread_cond_t cond_job;
        pthread_cond_t cond_space;
        pthread_cond_t cond_idle;
        pthread_cond_t cond_ticket;
        struct job *queue;
        size_t qcap, qhead, qlen;
        unsigned busy;
        bool stop;
        struct pack_writer *writer;
        struct open_record rec[2]; /* filling: data, manifest chunks */
        struct finished_pack *done, *done_tail;
        int error;
        char error_msg[512];
};

/* ---- store.c ------------------------------------------------------------------- */

/* With the lock held: the dedup decision for a hashed chunk that is not
 * known to need the catalog.  Returns TICKET_DONE when it is a duplicate,
 * TICKET_MAYBE when the catalog must be asked, or -1 when it is new (and
 * now pending). */
int store_decide_locked(struct store *s, const uint8_t id[HASH_LEN], size_t len);

/* ---- packer.c ------------------------------------------------------------------ */

/* A worker thread's body (arg: the store); returns when s->stop is set and
 * the queue is empty. */
void *packer_main(void *arg);
/* Queues a job for the workers, waiting for room (a free slot, and the
 * bytes the workers hold under WORK_BYTES); with `ticket`, gives it the
 * next ticket.  Takes ownership of j->data, also on failure.  Returns 0,
 * or the workers' error without waiting. */
int packer_enqueue(struct store *s, struct job *j, bool ticket);
/* Waits until the workers are idle, then closes the open records and
 * finishes the open pack (or drops them after a failure, or when empty).  Returns 0 or the workers'
 * first error; finished packs wait in s->done for the caller to record. */
int packer_drain(struct store *s);
/* With the lock held: the workers' first error (error_message() set from
 * it), or 0. */
int packer_error_locked(struct store *s);
/* Frees an open record's memory. */
void open_record_free(struct open_record *r);

#endif
