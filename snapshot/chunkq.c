/* chunkq.c — file contents: reading, chunking, and the chunks in flight.
 *
 * A file's bytes are read into one buffer, cut with the data chunker, and
 * each chunk is handed to the store's workers (store_submit), which hash it
 * while the walk goes on.  Ids come back in submission order
 * (store_resolve); refs[] says which entry and which chunk each belongs
 * to.  An entry whose ids are not all known yet is encoded and queued,
 * and the queue reaches the manifest in walk order as ids arrive.
 *
 * Memory is bounded: the store bounds the chunk copies it holds
 * (store_submit_ready), refs[] has store_ticket_window() slots, and queued
 * records stay under QUEUE_BYTES (beyond it the walk waits for the
 * workers).  After a failure the queue holds what it held: records and
 * ids in flight; chunkq_release() takes the ids back from the store and
 * frees the records.  This file is not the walk (walk.c) and does not
 * decide what is new (the store does).
 */
#include <fcntl.h>
#include <string.h>

#include "walker.h"

#define READ_BUFFER (1u << 20)
/* Queued entries may hold this many bytes of records before the walk
 * waits for the workers. */
#define QUEUE_BYTES (4u << 20)

void chunkq_init(struct walker *w)
{
        w->refs = xcalloc(store_ticket_window(), sizeof *w->refs);
        buf_reserve(&w->rbuf, MAX(READ_BUFFER, 2 * w->repo->cfg.max));
}

static const char *cur_name(const struct walker *w)
{
        return w->path.len ? (const char *)w->path.data : "";
}

static void add_chunk(struct walker *w, const uint8_t id[HASH_LEN], size_t len)
{
        chunk_refs_add(&w->chunks, &w->nchunks, &w->chunks_cap, id, len);
}

/* Takes back the id of the oldest chunk in flight (waiting for it when
 * `wait`) and puts it where it belongs; 1 when one was resolved. */
static int resolve_one(struct walker *w, bool wait)
{
        uint8_t id[HASH_LEN];
        int k = store_resolve(w->store, wait, id);
        if (k <= 0)
                return k;
        size_t window = store_ticket_window();
        struct chunk_dest d = w->refs[w->refs_head++ % window];
        if (d.entry == w->cur_entry) {
                memcpy(w->chunks[d.idx].id, id, HASH_LEN);
                w->cur_missing--;
                return 1;
        }
        /* An entry already encoded: patch its record. */
        struct queued *qe = &w->q[(w->q_head + (size_t)(d.entry - (w->cur_entry - w->q_len))) % w->q_cap];
        memcpy(qe->rec.data + qe->chunks_off + (size_t)d.idx * ENTRY_CHUNK_REF_SIZE, id, HASH_LEN);
        qe->missing--;
        return 1;
}

/* Resolves what is ready (everything when `all`) and writes the complete
 * entries at the head of the queue to the manifest. */
static int pump(struct walker *w, bool all)
{
        while (w->refs_head < w->refs_tail) {
                int k = resolve_one(w, all);
                if (k < 0)
                        return k;
                if (k == 0)
                        break;
        }
        while (w->q_len > 0 && w->q[w->q_head].missing == 0) {
                struct queued *qe = &w->q[w->q_head];
                int k = manifest_writer_add_record(w->mw, qe->rec.data, qe->rec.len);
                w->q_bytes -= qe->rec.len;
                buf_free(&qe->rec);
                w->q_head = (w->q_head + 1) % w->q_cap;
                w->q_len--;
                if (k < 0)
                        return k;
        }
        return 0;
}

/* Forgets the chunks read for the current entry (a retry, or a file
 * skipped): they must be resolved first, since ids come back in order. */
int chunkq_drop_current(struct walker *w)
{
        int k = w->cur_missing ? pump(w, true) : 0;
        w->nchunks = 0;
        return k;
}

static int submit_chunk(struct walker *w, const uint8_t *p, size_t len)
{
        size_t window = store_ticket_window();
        while (!store_submit_ready(w->store, len)) {
                int k = resolve_one(w, true);
                if (k < 0)
                        return k;
        }
        int k = store_submit(w->store, p, len);
        if (k < 0)
                return k;
        static const uint8_t unknown[HASH_LEN];
        add_chunk(w, unknown, len);
        w->refs[w->refs_tail++ % window] = (struct chunk_dest){ w->cur_entry, (uint32_t)(w->nchunks - 1) };
        w->cur_missing++;
        w->bytes_done += len;
        walker_progress(w, false);
        if (w->o->events.cancel && *w->o->events.cancel)
                return error_set(ECANCELED, "interrupted; no snapshot was written");
        return 0;
}

/* Reads the file's data regions (all of it when not sparse) as one stream,
 * cutting and storing chunks as the buffer fills.  A sparse file that
 * shrank under us has its map trimmed to what was read, so the map and the
 * chunks always agree. */
int chunkq_read_content(struct walker *w, int fd, uint64_t *ret_bytes)
{
        struct buf *b = &w->rbuf;
        uint64_t total = 0;
        size_t region = 0;
        uint64_t roff = w->nsparse ? w->sparse[0].offset : 0;
        bool eof = false;

        size_t fixed = 0;          /* page-aligned chunks of this size; 0: content-defined */
        bool decided = false;

        buf_reset(b);
        w->nchunks = 0;
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        for (;;) {
                while (!eof && b->len < b->cap) {
                        ssize_t k;
                        if (w->nsparse) {
                                if (region == w->nsparse) {
                                        eof = true;
                                        break;
                                }
                                uint64_t rend = w->sparse[region].offset + w->sparse[region].length;
                                if (roff >= rend) {
                                        if (++region < w->nsparse)
                                                roff = w->sparse[region].offset;
                                        continue;
                                }
                                k = pread(fd, b->data + b->len, (size_t)MIN((uint64_t)(b->cap - b->len), rend - roff),
                                          (off_t)roff);
                        } else
                                k = read(fd, b->data + b->len, b->cap - b->len);
                        if (k < 0) {
                                if (errno == EINTR)
                                        continue;
                                return -errno;
                        }
                        if (k == 0) {
                                eof = true;
                                break;
                        }
                        roff += (uint64_t)k;
                        b->len += (size_t)k;
                        total += (uint64_t)k;
                }
                if (!decided) {
                        /* From the name, the size when opened and the first
                         * bytes only: the same file is cut the same way on
                         * every backup. */
                        const char *slash = strrchr(cur_name(w), '/');
                        uint32_t page = page_size_detect(w->pages, w->page_tree, w->page_tree_page,
                                                         slash ? slash + 1 : cur_name(w), w->e.size, b->data, b->len);
                        fixed = page ? page_chunk_bytes(page, w->repo->cfg.page_chunk) : 0;
                        decided = true;
                }
                size_t pos = 0;
                for (;;) {
                        size_t cut = fixed ? chunker_cut_fixed(fixed, b->len - pos, eof)
                                           : chunker_cut(&w->repo->chunker, b->data + pos, b->len - pos, eof);
                        if (cut == 0)
                                break;
                        int k = submit_chunk(w, b->data + pos, cut);
                        if (k < 0)
                                return k;
                        pos += cut;
                }
                buf_consume(b, pos);
                if (eof && b->len == 0)
                        break;
        }
        if (w->nsparse) {
                uint64_t left = total;
                for (size_t i = 0; i < w->nsparse; i++) {
                        if (w->sparse[i].length > left) {
                                w->sparse[i].length = left;
                                w->nsparse = i + 1;
                                w->e.nsparse = w->nsparse;
                                break;
                        }
                        left -= w->sparse[i].length;
                }
        }
        *ret_bytes = total;
        return 0;
}

int chunkq_emit(struct walker *w)
{
        struct entry *e = &w->e;
        int k;
        e->chunks = w->chunks;
        e->nchunks = e->type == ENTRY_REG ? w->nchunks : 0;
        if (e->type == ENTRY_DIR)
                w->res->dirs++;
        else
                w->res->files++;
        if (e->type == ENTRY_REG)
                w->res->bytes += e->size;

        if (w->cur_missing == 0 && w->q_len == 0)
                k = manifest_writer_add(w->mw, e);
        else {
                /* Some ids are still being computed: queue the record, with
                 * room for them, behind the entries before it. */
                if (w->q_len == w->q_cap) {
                        size_t cap = w->q_cap ? w->q_cap * 2 : 64;
                        struct queued *q = xcalloc(cap, sizeof *q);
                        for (size_t i = 0; i < w->q_len; i++)
                                q[i] = w->q[(w->q_head + i) % w->q_cap];
                        free(w->q);
                        w->q = q;
                        w->q_cap = cap;
                        w->q_head = 0;
                }
                struct queued *qe = &w->q[(w->q_head + w->q_len) % w->q_cap];
                *qe = (struct queued){ .missing = w->cur_missing };
                entry_encode(e, &qe->rec);
                qe->chunks_off = qe->rec.len - e->nchunks * ENTRY_CHUNK_REF_SIZE;
                w->q_len++;
                w->q_bytes += qe->rec.len;
                k = 0;
        }
        w->cur_entry++;
        w->cur_missing = 0;
        if (k == 0)
                k = pump(w, w->q_bytes > QUEUE_BYTES);
        walker_progress(w, false);
        return k;
}

int chunkq_finish(struct walker *w)
{
        int k = pump(w, true);
        if (k == 0 && w->q_len != 0)
                k = error_set(EIO, "internal error: entries left without chunk ids");
        return k;
}

void chunkq_release(struct walker *w)
{
        /* On failure, ids still in flight must be taken back (into storage
         * that is still ours) so that the store's next user starts clean. */
        while (w->store && w->refs_head < w->refs_tail && resolve_one(w, true) > 0)
                ;
        for (size_t i = 0; i < w->q_len; i++)
                buf_free(&w->q[(w->q_head + i) % w->q_cap].rec);
        free(w->q);
        free(w->refs);
        buf_free(&w->rbuf);
}
