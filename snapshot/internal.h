/* internal.h — the snapshot engine's private pieces, shared by its files.
 *
 * Nothing outside snapshot/ (tests excepted) includes this header; the
 * engine's interface is snapshot.h.
 */
#ifndef BERTH_SNAPSHOT_INTERNAL_H
#define BERTH_SNAPSHOT_INTERNAL_H

#include <pthread.h>
#include <sys/stat.h>

#include "../catalog/catalog.h"
#include "backend.h"
#include "snapshot.h"

#define HASH_LEN 32

/* ---- chunker.c: FastCDC ---------------------------------------------------
 *
 * Pure content-defined chunking: no I/O, no allocation.  A gear hash with
 * normalized chunking (a harder mask before the average size, an easier one
 * after) and cut-point skipping (no hashing before the minimum size).
 */
struct chunker {
        uint64_t gear[256];
        uint64_t gear_ls[256];  /* gear << 1: two bytes per step */
        uint64_t mask_s, mask_s_ls; /* before avg: two more bits than log2(avg) */
        uint64_t mask_l, mask_l_ls; /* from avg to max: two fewer bits */
        uint32_t min, avg, max;
};

/* avg must be a power of two; min < avg < max.  Returns 0 or -EINVAL. */
int chunker_init(struct chunker *c, uint32_t min, uint32_t avg, uint32_t max, uint64_t seed);
/* Replaces the gear table (an encrypted repository's, from its key). */
void chunker_set_gear(struct chunker *c, const uint64_t gear[256]);
/* Length of the chunk that starts at p, given n available bytes.  Returns 0
 * when more bytes are needed to decide (n < max and !eof); at eof returns
 * at most n. */
size_t chunker_cut(const struct chunker *c, const uint8_t *p, size_t n, bool eof);

/* ---- chunker.c: page-aligned chunking -------------------------------------
 *
 * Database files change in pages: cut them into fixed runs of whole pages
 * (from offset 0) so that one changed page costs about one chunk, while
 * every other file keeps content-defined chunks.  Whether a file is paged
 * depends only on its name, its size, its first bytes and the tree it is
 * in, so the choice is the same on every backup and unchanged pages dedupe
 * across versions.  Pure: no I/O.
 */
enum page_tree {
        PAGE_TREE_NONE,
        PAGE_TREE_PG,       /* a PostgreSQL data directory: PG_VERSION, base/, global/ */
        PAGE_TREE_MYSQL,    /* an InnoDB data directory: ibdata1 or mysql.ibd */
        PAGE_TREE_WT,       /* a WiredTiger (MongoDB) directory: WiredTiger */
};
/* The tree kind a directory starts, from its sorted entry names (0 when it
 * starts none). */
uint8_t page_tree_of(char *const *names, size_t n);
/* An InnoDB tablespace's page size from its first page (FSP flags), or 0
 * when the bytes do not say. */
uint32_t innodb_page_size(const uint8_t *head, size_t n);
/* The page size to cut a file at, or 0 for content-defined chunks.
 * setting: PAGES_AUTO, PAGES_OFF or a page size; tree/tree_page: the
 * database tree the file is in (tree_page 0: its default); name: the
 * file's own name; size: its size when opened; head: its first n bytes. */
uint32_t page_size_detect(int32_t setting, uint8_t tree, uint32_t tree_page, const char *name, uint64_t size,
                          const uint8_t *head, size_t n);
/* Bytes per chunk for pages of `page` bytes, `per_chunk` pages at a time
 * (at least 8 KiB). */
size_t page_chunk_bytes(uint32_t page, uint32_t per_chunk);
/* Length of the next fixed-size chunk given n available bytes: `fixed`,
 * or what is left at eof, or 0 when more bytes are needed. */
size_t chunker_cut_fixed(size_t fixed, size_t n, bool eof);

/* ---- hash.c ---------------------------------------------------------------- */

/* SHA-256 through OpenSSL's EVP (the CPU's SHA instructions when present). */
void hash_sha256(const void *p, size_t n, uint8_t out[HASH_LEN]);

struct hasher;
struct hasher *hasher_new(void);
void hasher_update(struct hasher *h, const void *p, size_t n);
void hasher_final(struct hasher *h, uint8_t out[HASH_LEN]); /* and resets */
void hasher_free(struct hasher *h);


/* ---- crypto.c: encryption at rest -------------------------------------------------
 *
 * An encrypted repository's key context: the master key and the subkeys
 * HKDF-SHA-256 derives from it (data: AEAD; id: HMAC-SHA-256 chunk ids;
 * the chunker's gear table).  Every object that leaves the host goes
 * through crypto_seal() at ONE place per kind: version(1) || nonce(12) ||
 * ciphertext || tag(16), AES-256-GCM or ChaCha20-Poly1305, with the
 * repository id and the kind as associated data.  crypto_open() returns
 * -BERTH_ECORRUPT for anything that does not authenticate. */
#define CRYPTO_KEY_LEN 32
#define CRYPTO_OVERHEAD (1 + 12 + 16)
enum {
        CRYPTO_KIND_RECORD = 1,   /* a pack record (compressed chunk) */
        CRYPTO_KIND_TRAILER = 2,  /* a pack's trailer */
        CRYPTO_KIND_SNAPSHOT = 3, /* a snapshot file */
        CRYPTO_KIND_KEEP = 4,     /* a keep/ object */
        CRYPTO_KIND_KEY = 5,      /* the master key inside a key object */
};
struct repo_keys;
struct crypto_kdf {
        uint64_t n;
        uint32_t r, p;
};
/* "aes-256-gcm" where the CPU has AES-NI, else "chacha20-poly1305". */
const char *crypto_default_cipher(void);
int crypto_keys_new(const char *repo_id, const char *cipher, const uint8_t master[CRYPTO_KEY_LEN],
                    struct repo_keys **ret);
void crypto_keys_free(struct repo_keys *k);
const char *crypto_cipher(const struct repo_keys *k);
const uint8_t *crypto_master(const struct repo_keys *k);
int crypto_random_key(uint8_t out[CRYPTO_KEY_LEN]);
/* HMAC-SHA-256 under the id key: an encrypted repository's chunk ids. */
void crypto_chunk_id(const struct repo_keys *k, const void *p, size_t n, uint8_t out[HASH_LEN]);
/* The chunker's gear table, derived from the master key. */
int crypto_gear(const struct repo_keys *k, uint64_t gear[256]);
/* out = the sealed (opened) form; crypto_open: 0 or -BERTH_ECORRUPT. */
int crypto_seal(const struct repo_keys *k, uint8_t kind, const void *plain, size_t len, struct buf *out);
int crypto_open(const struct repo_keys *k, uint8_t kind, const void *sealed, size_t len, struct buf *out);
/* scrypt parameters for new key objects (BERTH_SCRYPT_N_LOG2 overrides N). */
void crypto_kdf_default(struct crypto_kdf *p);
/* A key object's text: the master key wrapped under scrypt(password). */
int crypto_key_wrap(const uint8_t master[CRYPTO_KEY_LEN], const char *repo_id, const char *cipher,
                    const char *password, const struct crypto_kdf *p, char **ret_text);
/* 0 and master, -EACCES when password does not open it, -BERTH_ECORRUPT
 * when text is not a key object.  A NULL password checks the shape only. */
int crypto_key_unwrap(const char *text, const char *repo_id, const char *cipher, const char *password,
                      uint8_t master[CRYPTO_KEY_LEN], int64_t *ret_created);

/* A chunk's id: SHA-256, or HMAC-SHA-256 under the id key of an encrypted
 * repository (k != NULL). */
void chunk_id(const struct repo_keys *k, const void *p, size_t n, uint8_t out[HASH_LEN]);

/* keys.c: reads the password and opens the master key from keys/ (a no-op
 * for a plain repository); sets r->keys and the chunkers' gear tables. */
int repo_unlock(struct repo *r);
/* A new master key, wrapped under password as keys/<id> in be. */
int repo_init_key(struct backend *be, const char *where, const char *repo_id, const char *cipher,
                  const char *password);

/* ---- idset.c: open-addressing sets of chunk ids -------------------------------
 *
 * `struct idset` keeps whole 32-byte ids (exact membership, with removal);
 * `struct idfilter` keeps 8-byte prefixes only: a miss is certain, a hit
 * must be confirmed elsewhere.  Both grow by doubling.
 */
struct idset {
        uint8_t (*slots)[HASH_LEN];
        uint8_t *used;
        size_t cap, n;
};
bool idset_contains(const struct idset *s, const uint8_t id[HASH_LEN]);
bool idset_add(struct idset *s, const uint8_t id[HASH_LEN]); /* true when new */
bool idset_remove(struct idset *s, const uint8_t id[HASH_LEN]);
void idset_free(struct idset *s);

struct idfilter {
        uint64_t *slots;
        size_t cap, n;
};
bool idfilter_maybe(const struct idfilter *f, const uint8_t id[HASH_LEN]);
void idfilter_add(struct idfilter *f, const uint8_t id[HASH_LEN]);
size_t idfilter_bytes(const struct idfilter *f);
void idfilter_free(struct idfilter *f);

/* ---- pack.c ------------------------------------------------------------------
 *
 * A pack: an 8-byte magic, RECORDS back to back, a trailer of fixed-size
 * entries, and a 24-byte footer: entry count, trailer length, the first 8
 * bytes of the trailer's SHA-256, and a magic.  A pack's name is the
 * SHA-256 of its trailer and footer.  Little-endian throughout.
 *
 * Format 2 ("BERTHPK2" ... "BPKTRL02", 52-byte entries: id, record offset,
 * record stored length, the chunk's offset inside the record's plain bytes,
 * the chunk's length, flags, 3 zero bytes): a record is one or more
 * consecutive chunks of one kind (data or manifest), their plain bytes
 * concatenated and compressed as one zstd frame (or stored raw when zstd
 * does not shrink them).  The entries of one record are contiguous and
 * tile its plain bytes from 0 in order; records do not overlap; a record of
 * one chunk says so (PACK_F_ALONE).
 * Format 1 ("BERTHPK1" ... "BPKTRL01", 48-byte entries without the inner
 * offset) stays readable: every chunk is a record alone.  Writers write
 * format 2.
 * In an encrypted repository each record is sealed after compression
 * (crypto.c: one AEAD per record; the entries list its sealed length) and
 * the entries are one sealed unit; the footer has count 0 and the magic
 * "BPKTRLE2", so shape and name are checked without the key.  Encrypted
 * packs are always format 2.
 */
#define PACK_MAGIC "BERTHPK2"
#define PACK_MAGIC_V1 "BERTHPK1"
#define PACK_FOOTER_MAGIC "BPKTRL02"
#define PACK_FOOTER_MAGIC_V1 "BPKTRL01"
#define PACK_FOOTER_MAGIC_SEALED "BPKTRLE2" /* encrypted repository: the trailer is sealed */
#define PACK_HEADER_SIZE 8
#define PACK_ENTRY_SIZE 52
#define PACK_ENTRY_SIZE_V1 48
#define PACK_FOOTER_SIZE 24
#define PACK_MAX_CHUNK (16u << 20) /* no stored chunk or record, nor a record's plain bytes, is larger */
#define RECORD_SIZE_DEFAULT (256u << 10) /* plain bytes per record, about */
#define RECORD_SIZE_MIN (16u << 10)
#define RECORD_SIZE_MAX (4u << 20)

enum {
        PACK_F_ZSTD = 1 << 0, /* the record's stored bytes are one zstd frame */
        PACK_F_TREE = 1 << 1, /* a manifest chunk, not file data */
        PACK_F_ALONE = 1 << 2, /* format 2: the chunk is all of its record (format 1 entries never carry it) */
};

struct pack_entry {
        uint8_t id[HASH_LEN];
        uint32_t offset;     /* of the record in the pack */
        uint32_t stored_len; /* of the record */
        uint32_t raw_len;    /* of the chunk */
        uint8_t flags;
        uint32_t inner;      /* the chunk's offset in the record's plain bytes */
};

/* True when pack_header names a pack format this berth reads. */
bool pack_header_ok(const uint8_t head[PACK_HEADER_SIZE]);

struct pack_writer;
/* Creates a temporary pack in a local spool directory (the repository's
 * tmp/ for a local repository), where the writer builds it. */
int pack_writer_new(int spool_dirfd, const struct repo_keys *keys, struct pack_writer **ret);
/* Makes a new writer's pack a format-1 pack (magic, 48-byte entries, one
 * chunk per record, no PACK_F_ALONE): what a repository whose config says
 * format 1 gets, so that the berths that made it still read it.  Plain
 * repositories only; call before adding anything. */
void pack_writer_format1(struct pack_writer *w);
/* Appends one record: its stored bytes, and the entries of its n chunks
 * (id, inner, raw_len, flags set by the caller; offset, stored_len and
 * PACK_F_ALONE are set here, in the entries too); in an encrypted
 * repository sealed first (pack_record_seal). */
int pack_writer_add_record(struct pack_writer *w, struct pack_entry *entries, size_t n, const void *stored,
                           size_t len);
/* The one place a record is sealed (an encrypted repository): out = its
 * sealed form.  Callers that seal outside a lock (the packer's workers)
 * then add it with pack_writer_add_sealed(). */
int pack_record_seal(const struct repo_keys *k, const void *stored, size_t len, struct buf *out);
/* pack_writer_add_record() for a record that is already in the form the
 * pack holds: sealed by pack_record_seal() when the writer has keys, the
 * stored bytes as they are otherwise. */
int pack_writer_add_sealed(struct pack_writer *w, struct pack_entry *entries, size_t n, const void *stored,
                           size_t len);
/* A record of one chunk: e's stored_len bytes of stored. */
int pack_writer_add(struct pack_writer *w, const struct pack_entry *e, const void *stored);
uint64_t pack_writer_size(const struct pack_writer *w);
size_t pack_writer_count(const struct pack_writer *w);
/* Writes the trailer and hands the finished spool file to the backend as
 * object packs/<xx>/<hash> (backend_put_file: durable when it returns).
 * On success *ret_entries (caller frees) holds the entries; success or
 * failure, the spool file is removed and the writer freed. */
int pack_writer_finish(struct pack_writer *w, struct backend *be, uint8_t ret_hash[HASH_LEN], uint64_t *ret_size,
                       struct pack_entry **ret_entries, size_t *ret_n);
/* Removes the temporary file and frees. */
void pack_writer_abort(struct pack_writer *w);

/* Reads and validates the trailer of pack object `name` of `size` bytes;
 * with ret_name, also the pack's name (the SHA-256 of trailer and footer). */
int pack_read_trailer(const struct repo_keys *k, struct backend *be, const char *name, uint64_t size,
                      struct pack_entry **ret, size_t *ret_n, uint8_t ret_name[HASH_LEN]);
/* The same for a pack in a local file (a spool being received). */
int pack_read_trailer_fd(const struct repo_keys *k, int fd, const char *name, uint64_t size, struct pack_entry **ret,
                         size_t *ret_n, uint8_t ret_name[HASH_LEN]);
/* Parses a trailer+footer held in memory (the last `n` bytes of a pack of
 * `size` bytes), format 1 or 2, with strict bounds; used by
 * pack_read_trailer and the fuzz target. */
int pack_parse_trailer(const uint8_t *tail, size_t n, uint64_t size, struct pack_entry **ret, size_t *ret_n);
/* "packs/ab/abcd…" for a hash; buf >= 80 bytes. */
void pack_path(const uint8_t hash[HASH_LEN], char *buf, size_t size);
/* The hash of an object named "packs/<2 hex>/<64 hex>": 0, or -EINVAL for
 * any other name. */
int pack_name_parse(const char *name, uint8_t ret_hash[HASH_LEN]);

/* An encrypted repository's record as its pack holds it (e->stored_len
 * sealed bytes) opened into out, its stored form; e->stored_len becomes
 * that form's length.  0 or -BERTH_ECORRUPT. */
int pack_record_open(const struct repo_keys *k, struct pack_entry *e, const uint8_t *sealed, struct buf *out);
/* Compresses a record's plain bytes into *stored and checks that they
 * decompress to the same bytes; returns PACK_F_ZSTD, or 0 when they are
 * stored raw (zstd did not shrink them), or -errno. */
int record_encode(void *cctx, void *dctx, const uint8_t *plain, size_t len, struct buf *stored, struct buf *check);
/* Reads e's record's stored bytes from pack object `path` into out: the
 * one place a record's stored bytes are read back.  -ENOENT, -EIO (short)
 * or another -errno from the backend. */
int record_read(struct backend *be, const char *path, const struct pack_entry *e, struct buf *out);
/* Turns a record as its pack holds it (e->stored_len bytes; sealed when k)
 * into its plain bytes (at most PACK_MAX_CHUNK, and holding e's chunk):
 * opened (k), then decompressed: the one place stored bytes are decoded.
 * 0 or -BERTH_ECORRUPT. */
int record_decode(const struct repo_keys *k, const struct pack_entry *e, const uint8_t *stored, struct buf *plain,
                  void *dctx);
/* Checks e's chunk inside a record's plain bytes against its id (keyed
 * under k): 0 or -BERTH_ECORRUPT. */
int record_chunk_check(const struct repo_keys *k, const struct pack_entry *e, const uint8_t *plain,
                       size_t plain_len);
/* A record's stored form, NOT sealed (as it travels), decoded; then e's
 * chunk, verified (ids keyed under k), copied into out.  Returns 0, or
 * -BERTH_ECORRUPT when the bytes do not match. */
int chunk_decode(const struct repo_keys *k, const struct pack_entry *e, const uint8_t *stored, struct buf *out,
                 void *dctx);
/* True when e's chunk is all of its record (stored as it travels): the
 * entry's PACK_F_ALONE, else (older catalog rows) the zstd frame header of
 * the unsealed stored bytes (stored NULL: sealed, not looked at). */
bool record_is_alone(const struct pack_entry *e, const uint8_t *stored);

/* The last record a reader decoded, kept for the chunks that follow it. */
struct record_cache {
        char path[80];
        uint32_t offset, stored_len;
        bool valid;
        int err;                 /* the record could not be read or decoded */
        struct buf stored, plain;
        void *dctx;              /* ZSTD_DCtx, created on first use */
};
/* e's chunk from pack `path`, verified against its id: *ret points into
 * the cache (valid until the next call).  The record is read, opened (k)
 * and decoded once for all its chunks asked one after the other.  0,
 * -BERTH_ECORRUPT (damaged: record or chunk), -ENOENT/-EIO (missing,
 * short) or -errno. */
int record_cache_chunk(struct record_cache *rc, const struct repo_keys *k, struct backend *be, const char *path,
                       const struct pack_entry *e, const uint8_t **ret);
void record_cache_free(struct record_cache *rc);

/* ---- store.c: the chunk store ---------------------------------------------
 *
 * store_put() hashes a chunk, decides whether the repository already has it
 * (pending set, in-memory prefix filter, then the catalog), and hands new
 * chunks to worker threads that compress, verify and append them to packs.
 * Finished packs are recorded in the catalog by the calling thread.  One
 * thread calls store_*; the workers are internal (packer.c).  Memory is
 * bounded by bytes of chunk copies (about 8 MiB for the workers, 8 MiB for
 * tickets) plus the dedup filter; after a worker fails, every call that
 * would wait returns its error instead, and nothing more is stored (see
 * store.c).
 */
struct store;

struct store_stats {
        uint64_t chunks_new, chunks_dup;
        uint64_t raw_new;        /* plain bytes of new chunks */
        uint64_t bytes_added;    /* bytes of pack files written */
        uint64_t packs;
};

int store_open(struct repo *r, bool writable, struct store **ret);
void store_free(struct store *s);
static inline void store_freep(struct store **s) { store_free(*s); }
/* Stores data (tree: a manifest chunk) and writes its id.  Returns 1 when
 * the chunk was new, 0 when the repository had it. */
int store_put(struct store *s, bool tree, const uint8_t *data, size_t len, uint8_t ret_id[HASH_LEN]);
/* Hands a data chunk to the workers, which hash it; its id comes back from
 * store_resolve(), in submission order.  Blocks while the workers hold too
 * many bytes; -ENOBUFS when store_ticket_window() chunks await resolving.
 * Callers wait for store_submit_ready() first. */
int store_submit(struct store *s, const uint8_t *data, size_t len);
size_t store_outstanding(const struct store *s);
size_t store_ticket_window(void);
/* false when the caller must store_resolve() the oldest chunk before it
 * submits one of len bytes: store_ticket_window() chunks await resolving,
 * or the ones that wait for the caller hold too many bytes.  Memory is
 * bounded in bytes (a few MiB of chunk copies), whatever the dedup rate. */
bool store_submit_ready(struct store *s, size_t len);
/* The id of the oldest submitted chunk: 1 and ret_id, 0 when it is not
 * hashed yet and !wait, or -errno (a worker failed). */
int store_resolve(struct store *s, bool wait, uint8_t ret_id[HASH_LEN]);
/* Waits for the workers, finishes the open pack, records everything. */
int store_flush(struct store *s);
/* Stores a chunk given in its stored form (flags: PACK_F_ZSTD for one zstd
 * frame, else raw; PACK_F_TREE for a manifest chunk), as another
 * repository's pack holds it, without compressing it again (copy.c).  The
 * bytes are decoded once and checked against `id` before the chunk counts
 * as stored: a mismatch fails the store (-BERTH_ECORRUPT through
 * store_flush() and later calls, with a message naming the chunk).
 * Returns 1 when the chunk was new, 0 when the repository had it. */
int store_put_stored(struct store *s, const uint8_t id[HASH_LEN], uint8_t flags, const uint8_t *stored,
                     size_t stored_len, size_t raw_len);
/* From now on every chunk given is stored again, even when the catalog
 * records it (once per run: a chunk pending in this store is not), and its
 * catalog row is re-pointed at the new pack when that is recorded: for
 * prune's repacking, through store_put_stored(). */
void store_set_rewrite(struct store *s);
/* Reads one chunk's plain bytes into out (replacing its contents). */
int store_read(struct store *s, const uint8_t id[HASH_LEN], struct buf *out);
/* Reads one chunk's stored bytes (a zstd frame or raw, as its pack holds
 * them) into out, not decoded nor verified, and its entry (id, lengths,
 * flags) into *ret_e.  A chunk the catalog does not list is
 * -BERTH_ECORRUPT ("missing"), as in store_read(). */
int store_read_stored(struct store *s, const uint8_t id[HASH_LEN], struct buf *out, struct pack_entry *ret_e);
/* 1 when the repository has the chunk (committed or pending); a chunk
 * whose pack is missing counts as absent in a writable store. */
int store_has(struct store *s, const uint8_t id[HASH_LEN]);
/* How many packs the catalog lists that a writable store found missing or
 * truncated when it opened (their chunks are stored again when met). */
size_t store_missing_packs(const struct store *s);
/* Counts catalog pack `pack` (its rowid) as missing from now on, as if
 * the store had found it so when it opened: its chunks are stored again
 * when met.  For a copy told by the destination itself that it lacks a
 * chunk this catalog (a cache) places there.  Calling thread only. */
void store_forget_pack(struct store *s, int64_t pack);
struct chunk_ref;
/* 1 when every chunk of the list can be reused (committed in a pack that is
 * there, or pending), 0 when one cannot, or -errno.  Free of catalog
 * lookups unless packs are missing. */
int store_chunks_usable(struct store *s, const struct chunk_ref *chunks, size_t n);
void store_get_stats(struct store *s, struct store_stats *ret);

/* Cuts as many chunks as b holds (all of it at eof), stores each, calls
 * add(ud, id, len) in order, and removes them from b. */
int store_put_stream(struct store *s, const struct chunker *ch, struct buf *b, bool eof,
                     int (*add)(void *ud, const uint8_t id[HASH_LEN], size_t len), void *ud);
size_t store_index_bytes(const struct store *s);

/* ---- readahead.c: reading a file's chunks ahead -------------------------------
 *
 * Reader threads read, decompress and verify the chunks of the file being
 * restored or exported while the caller writes the previous ones.  It
 * holds at most `window` chunks and about 8 MiB of plain bytes.  After a
 * failure it holds nothing: the queue is emptied before
 * readahead_chunk() returns the error, and the caller abandons that file.
 */
struct readahead;
struct chunk_ref;
int readahead_new(struct repo *r, size_t window, struct readahead **ret);
void readahead_free(struct readahead *p);
static inline void readahead_freep(struct readahead **p) { readahead_free(*p); }
/* Drops everything queued (waits for reads in flight). */
void readahead_reset(struct readahead *p);
/* Reading file `path`'s chunks in order, i = 0, 1, ... n-1: queues
 * chunks[*queued..n) as far as the window allows, then hands back chunk i,
 * checked to be chunks[i] (id, and bytes verified against it, and length)
 * in *ret, valid until the next call.  *queued starts at 0 for each file.
 * Returns 0, or -errno (-BERTH_ECORRUPT for damaged or missing data); on
 * failure the read-ahead is empty and *queued is n. */
int readahead_chunk(struct readahead *p, const char *path, const struct chunk_ref *chunks, size_t n, size_t i,
                    size_t *queued, const struct buf **ret);

/* ---- manifest.c ---------------------------------------------------------------
 *
 * A snapshot's manifest: its entries in depth-first order, children sorted
 * bytewise, each a varint-length-prefixed record.  The stream is cut with
 * the chunker and stored as tree chunks, so unchanged stretches dedupe.
 */
enum {
        ENTRY_DIR = 1,
        ENTRY_REG = 2,
        ENTRY_SYMLINK = 3,
        ENTRY_HARDLINK = 4,
        ENTRY_CHR = 5,
        ENTRY_BLK = 6,
        ENTRY_FIFO = 7,
};

enum {
        ENTRY_F_INCONSISTENT = 1 << 0, /* changed while it was read */
        ENTRY_F_LINKED = 1 << 1,       /* later entries are hard links to it */
};

struct xattr {
        const char *name;
        const uint8_t *value;
        size_t len;
};

struct sparse_region {
        uint64_t offset, length;
};

struct chunk_ref {
        uint8_t id[HASH_LEN];
        uint32_t len;
};

struct entry {
        uint8_t type;
        const char *path;       /* NUL-terminated; "" is the root */
        size_t path_len;
        uint32_t mode;          /* 07777 bits */
        uint32_t uid, gid;
        const char *uname, *gname;
        int64_t mtime_sec;
        uint32_t mtime_nsec;
        int64_t ctime_sec;
        uint32_t ctime_nsec;
        uint64_t ino;
        uint64_t size;
        uint64_t rdev;
        const char *link;       /* symlink target, or hard link's first path */
        size_t link_len;
        uint32_t flags;
        uint64_t fflags_set, fflags_clear;
        struct xattr *xattrs;
        size_t nxattrs;
        const char *acl;        /* libarchive ACL text, "" when none */
        struct sparse_region *sparse;
        size_t nsparse;
        struct chunk_ref *chunks;
        size_t nchunks;
};

/* Appends a chunk reference to a growable array. */
void chunk_refs_add(struct chunk_ref **v, size_t *n, size_t *cap, const uint8_t id[HASH_LEN], size_t len);

/* Appends an entry's record to out.  The chunk list comes last, as
 * (32-byte id, le32 length) pairs: ids can be filled in afterwards. */
void entry_encode(const struct entry *e, struct buf *out);
#define ENTRY_CHUNK_REF_SIZE (HASH_LEN + 4)

/* Decoded entries point into storage owned by this holder. */
struct entry_store {
        struct entry e;
        struct buf strings;
        struct xattr *xattrs;
        size_t xattrs_cap;
        struct sparse_region *sparse;
        size_t sparse_cap;
        struct chunk_ref *chunks;
        size_t chunks_cap;
};
/* Decodes one record body (without its length prefix).  Returns 0 or
 * -BERTH_ECORRUPT. */
int entry_decode(const uint8_t *p, size_t n, struct entry_store *es);
void entry_store_free(struct entry_store *es);

/* Compares paths in manifest order: component by component, bytewise. */
int path_cmp(const char *a, size_t an, const char *b, size_t bn);
/* The content and metadata digests the file index keeps. */
void entry_digests(const struct entry *e, uint8_t content[16], uint8_t meta[8]);

struct manifest_writer;
int manifest_writer_new(struct store *s, const struct chunker *ch, struct manifest_writer **ret);
int manifest_writer_add(struct manifest_writer *w, const struct entry *e);
/* An entry already encoded with entry_encode(). */
int manifest_writer_add_record(struct manifest_writer *w, const uint8_t *rec, size_t len);
/* Flushes the rest; *ret_ids (caller frees) lists the manifest chunks. */
int manifest_writer_finish(struct manifest_writer *w, uint8_t (**ret_ids)[HASH_LEN], size_t *ret_n);
void manifest_writer_free(struct manifest_writer *w);

/* Reads a manifest back, validating as it goes: every path well formed,
 * strictly increasing, its parent a directory entry already seen, hard
 * links pointing at an earlier linked file.  Anything else is
 * -BERTH_ECORRUPT (or -BERTH_EHOSTILE for paths that would escape). */
struct manifest_reader;
int manifest_reader_new(struct store *s, const uint8_t (*ids)[HASH_LEN], size_t n, struct manifest_reader **ret);
/* 1 and *ret (valid until the next call), 0 at the end, or -errno. */
int manifest_reader_next(struct manifest_reader *r, const struct entry **ret);
void manifest_reader_free(struct manifest_reader *r);
static inline void manifest_reader_freep(struct manifest_reader **r) { manifest_reader_free(*r); }

/* ---- restore.c: shared with export ------------------------------------------------ */

struct archive_entry;
/* Fills ae (cleared first) from e, named `path`. */
void entry_to_archive(const struct entry *e, const char *path, struct archive_entry *ae);
/* The file offset of position pos in a file's data stream, and in *ret_run
 * how many bytes from there are contiguous (UINT64_MAX when not sparse). */
uint64_t entry_stream_offset(const struct entry *e, uint64_t pos, uint64_t *ret_run);
/* 2: e is an included path or below one; 1: a directory above one; 0: no. */
int include_match(const struct entry *e, char *const *inc, size_t ninc);

/* ---- snapfile.c: the snapshot file, snapshots/<id> --------------------------- */

struct snapfile {
        struct catalog_snapshot info;   /* id, name, host, times, stats... */
        uint8_t (*manifest)[HASH_LEN];
        size_t nmanifest;
        int64_t quiesce_ns;             /* time the application was quiesced */
};
void snapfile_clear(struct snapfile *f);
/* Serializes to JSON, fills f->info.id, announces the id in the catalog
 * (catalog_snapshot_intend) and writes snapshots/<id> atomically.
 * *ret_created (may be NULL) says whether this call created the file: false
 * when identical bytes were already there. */
int snapfile_write(struct repo *r, struct snapfile *f, bool *ret_created);
/* snapfile_write() then index_snapshot(); when indexing fails, the file this
 * call wrote and its announcement are removed again, and the failure is
 * returned. */
int snapfile_commit(struct repo *r, struct store *s, struct snapfile *f);
/* Reads and verifies snapshots/<id> (its content must hash to its name). */
int snapfile_read(struct repo *r, const char *id, struct snapfile *ret);
/* The id of an object named "snapshots/<64 hex>" (a pointer into name):
 * NULL for any other name. */
const char *snapfile_name_id(const char *name);
int snapfile_parse(const uint8_t *p, size_t n, struct snapfile *ret);

/* Finishes a new snapshot whose manifest is f->manifest: flushes the store,
 * writes the snapshot file and indexes it.  f->info carries the name and
 * statistics; bytes_added is counted from `before`; on success the id is
 * filled in.  Shared by backup and import. */
int snapshot_commit(struct repo *r, struct store *s, struct snapfile *f, const struct store_stats *before);
/* The repository's writable chunk store, opened on first use and shared
 * by every backup and import of this handle; freed with the repository. */
int repo_store(struct repo *r, struct store **ret);
char *host_name(void);

/* ---- index.c: the catalog's file index from manifests ------------------------- */

/* Records a snapshot row and its file index rows: the manifest of `f`
 * compared with the manifest of the newest snapshot of its name.  Opens and
 * commits its own transaction. */
int index_snapshot(struct repo *r, struct store *s, struct snapfile *f);

/* ---- repo.c ------------------------------------------------------------------- */

struct repo_config {
        char id[33];
        uint32_t min, avg, max;          /* data chunker */
        uint64_t seed;
        uint32_t tree_min, tree_avg, tree_max;
        int level;                       /* zstd level */
        uint64_t pack_size;              /* target pack size */
        int32_t page_size;               /* PAGES_AUTO, PAGES_OFF or a page size */
        uint32_t page_chunk;             /* pages per page-aligned chunk */
        bool encrypted;
        char cipher[32];                 /* "aes-256-gcm" or "chacha20-poly1305" */
        uint32_t record_size;            /* plain bytes per pack record (format 2) */
        int format;                      /* the config's "format" (REPO_FORMAT_V1 or REPO_FORMAT) */
};

/* The objects (config, packs, snapshot files) are reached through `be`
 * only.  What stays local is repo.c's: the catalog, the lock and the spool
 * directory, all in local_dirfd — the repository directory itself for a
 * local repository; a local cache directory for remote ones later. */
/* What a backend listed, kept for a while (a cache sync lists once). */
struct object_list {
        struct listed_object {
                char *name;
                uint64_t size;
        } *v;
        size_t n, cap;
};

struct repo {
        char *path;                      /* as the user named it, for messages */
        struct backend *be;
        char *catalog_path;              /* catalog.db */
        int local_dirfd;                 /* holds catalog.db, lock, tmp/ */
        int spool_dirfd;                 /* tmp/: pack spool, catalog rebuild; -1 when absent */
        int lockfd;
        bool writable;
        struct repo_config cfg;
        struct chunker chunker;
        struct chunker tree_chunker;
        struct catalog *catalog;
        struct store *store;             /* see repo_store() */
        struct repo_keys *keys;          /* an encrypted repository's key; NULL: plain, or keyless */
        char *key_name;                  /* the keys/ object the password opened */
        uint64_t recovered_packs, recovered_snapshots;
        bool cached;                     /* a cache of a repository elsewhere (repo_open_backend) */
        char **damage;                   /* what recovery could not index, see repo_damage() */
        size_t ndamage;
        const struct object_list *listing; /* during a cache sync: the backend's objects, listed once */
};

/* backend_list(r->be, …), or, during a cache sync, the one listing of
 * everything it made (r->listing): what recovery lists goes through here. */
int repo_list_objects(struct repo *r, const char *prefix, backend_list_fn fn, void *ud);
/* Records that recovery left `object` ("pack packs/…") out: it `is`
 * ("is damaged", "cannot be indexed") because of `why`. */
void repo_note_damage(struct repo *r, const char *object, const char *is, const char *why);

/* Records a verified pack and its chunks in the catalog, in one
 * transaction (rolled back on failure). */
int recover_record_pack(struct catalog *c, const uint8_t hash[HASH_LEN], uint64_t size,
                        const struct pack_entry *entries, size_t n);
/* Indexes packs and snapshot files that a crashed writer left unrecorded,
 * and removes its temporary files.  Snapshot files are indexed only when a
 * writer announced them (catalog_snapshot_intend), or all of them when
 * `all` (catalog rebuild).  Needs the writer lock.  s reads manifests;
 * repo_recover_open() opens (and frees) a reading store for it. */
int repo_recover(struct repo *r, struct store *s, bool all);
int repo_recover_open(struct repo *r, bool all);

/* forget.c: deletes the objects of snapshots whose forgetting a crash
 * interrupted (catalog_snapshot_forgets), when the backend lets it.  Needs
 * the writer lock. */
int forget_finish(struct repo *r);

#endif
