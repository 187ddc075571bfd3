/* walker.h — the backup walk's private state, shared by walk.c, chunkq.c
 * and backup.c only (nothing else includes it).
 *
 * One `struct walker` lives for one backup run's walk.  walk.c owns the
 * path, the hard-link table, the previous manifest and the per-entry
 * scratch; chunkq.c owns the chunks in flight (refs[]) and the entries
 * waiting for their ids (q[]); backup.c sets the walker up and turns its
 * result into a snapshot.  This is not an interface: the fields are the
 * contract, and all three files run on the one thread that calls the
 * backup.
 */
#ifndef BERTH_SNAPSHOT_WALKER_H
#define BERTH_SNAPSHOT_WALKER_H

#include <archive.h>
#include <archive_entry.h>

#include "internal.h"

struct link_slot {
        dev_t dev;
        ino_t ino;
        char *path;
};

struct backup_run;

struct walker {
        struct repo *repo;
        struct store *store;
        const struct backup_options *o;
        struct backup_result *res;
        struct backup_run *run;
        struct archive *disk;
        struct archive_entry *ae;
        struct manifest_writer *mw;
        struct manifest_reader *prev;
        const struct entry *prev_e;
        int prev_state;                 /* 1: prev_e valid, 0: prev exhausted */
        int64_t prev_started;
        unsigned unchanged;
        dev_t root_dev;
        struct buf path;
        struct buf rbuf;
        /* per-entry scratch */
        struct entry e;
        struct chunk_ref *chunks;
        size_t nchunks, chunks_cap;
        struct sparse_region *sparse;
        size_t nsparse, sparse_cap;
        struct xattr *xattrs;
        size_t xattrs_cap;
        char *acl;
        struct buf strings;             /* copies of names kept from prev */
        /* hard links: (dev, ino) of files with more than one link */
        struct link_slot *links;
        size_t links_cap, nlinks;
        /* Page-aligned chunks: the run's setting (PAGES_*), and the
         * database tree being walked (enum page_tree, its page size or 0). */
        int32_t pages;
        uint8_t page_tree;
        uint32_t page_tree_page;
        int64_t last_progress;
        uint64_t bytes_done;
        /* Chunks in flight: workers hash them, and their ids come back in
         * submission order; refs[] says which entry and which chunk each
         * belongs to.  Entries are numbered in walk order; the current
         * one (cur_entry) is still being read. */
        struct chunk_dest {
                uint64_t entry;
                uint32_t idx;
        } *refs;
        uint64_t refs_head, refs_tail;
        uint64_t cur_entry;
        size_t cur_missing;
        /* Entries encoded but still waiting for chunk ids, oldest first;
         * they reach the manifest in order. */
        struct queued {
                struct buf rec;
                size_t chunks_off, missing;
        } *q;
        size_t q_head, q_len, q_cap;
        size_t q_bytes;
};

/* ---- walk.c ------------------------------------------------------------------ */

/* Counts a warning and hands it to the caller's warning callback, for the
 * current path ("." for the root). */
void walker_warn(struct walker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reports progress to the caller's callback, at most every 250 ms unless
 * `force`. */
void walker_progress(struct walker *w, bool force);
/* Stops comparing with the previous snapshot, whose manifest could not be
 * read (error_message() says why): the rest of the walk reads every file.
 * A damaged parent costs speed, never the backup. */
void walker_drop_prev(struct walker *w);
/* Emits the root directory (`root`, whose fstat is `rst`) and walks
 * everything below it.  Entries may still wait for chunk ids afterwards:
 * chunkq_finish() writes them.  Returns 0 or -errno (per-file problems are
 * warnings, not failures). */
int walker_walk(struct walker *w, int root, const struct stat *rst);
/* Takes back the chunks still in flight (see chunkq_release()) and frees
 * everything the walker holds; the walker itself is the caller's. */
void walker_free(struct walker *w);

/* ---- chunkq.c ---------------------------------------------------------------- */

/* Allocates the ring of chunks in flight and the read buffer. */
void chunkq_init(struct walker *w);
/* Reads the current file's data from fd and submits its chunks; *ret_bytes
 * is how many bytes were read.  A read error is -errno with no
 * error_message(); a repository failure has one. */
int chunkq_read_content(struct walker *w, int fd, uint64_t *ret_bytes);
/* Forgets the chunks read for the current entry (a retry, or a file
 * skipped) after resolving them.  Returns 0 or -errno. */
int chunkq_drop_current(struct walker *w);
/* Counts the current entry and writes it to the manifest, or queues it
 * when chunk ids it (or an earlier entry) needs are still being computed.
 * Returns 0 or -errno. */
int chunkq_emit(struct walker *w);
/* Waits for every chunk in flight and writes every queued entry.  Returns
 * 0 or -errno. */
int chunkq_finish(struct walker *w);
/* After a failure too: takes back the ids still in flight, so that the
 * store's next user starts clean, and frees the queue. */
void chunkq_release(struct walker *w);

/* ---- backup.c ---------------------------------------------------------------- */

/* Warns that the previous snapshot cannot be compared with and keeps the
 * reason for a second phase; the new snapshot records no parent. */
void backup_parent_unusable(struct walker *w);

#endif
