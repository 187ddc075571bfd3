/* fuzz-sealed.c — an encrypted repository's sealed objects, under a fixed
 * key (master 32 x 0x42, repository id SEALED_REPO_ID).  The first byte
 * picks the cipher (bit 7: ChaCha20-Poly1305, else AES-256-GCM) and the mode
 * (low 2 bits):
 *
 *   0  the rest is a pack after its 8-byte header, read as an encrypted
 *      repository reads it (pack_read_trailer_fd with the key): footer,
 *      sealed trailer, entries; then every record as below.
 *   1  a pack built here: u8 n, then n records (le16 length, that many
 *      bytes of a record's stored form), each sealed here and laid out
 *      back to back after the header; the remaining bytes are the plain
 *      trailer entries, sealed here, with a footer that fits.  So mutations
 *      reach the entry parser and the record decoders behind the AEAD,
 *      which random bytes never pass.
 *   2  the rest is a sealed object of each kind (crypto_open), a key
 *      object's text (its shape), and, sealed here, a snapshot file opened
 *      and parsed as snapfile_read() does.
 *
 * After a trailer opens: every entry lies in the data area and is at least
 * a seal long; each record is opened and decoded (record_decode), each
 * chunk checked against its keyed id (record_chunk_check), and a record's
 * opened stored form decoded as it travels (pack_record_open, then
 * chunk_decode and record_is_alone, as copy and store_read_stored do).
 * Seeds: tests/fuzz/corpus/sealed (gen-sealed-corpus.c). */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zstd.h>

#include "../../snapshot/internal.h"

#define SEALED_REPO_ID "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"

/* -DSEALED_TRACE: say how far each input got (to check the seeds). */
#ifdef SEALED_TRACE
#include <stdio.h>
#define TRACE(...) fprintf(stderr, __VA_ARGS__)
#else
#define TRACE(...) ((void)0)
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct repo_keys *keys[2];
static ZSTD_DCtx *dctx;
static int memfd = -1;

static void init(void)
{
        if (dctx)
                return;
        uint8_t master[CRYPTO_KEY_LEN];
        memset(master, 0x42, sizeof master);
        if (crypto_keys_new(SEALED_REPO_ID, "aes-256-gcm", master, &keys[0]) < 0 ||
            crypto_keys_new(SEALED_REPO_ID, "chacha20-poly1305", master, &keys[1]) < 0)
                abort();
        dctx = ZSTD_createDCtx();
        memfd = memfd_create("fuzz-sealed", MFD_CLOEXEC);
        if (!dctx || memfd < 0)
                abort();
}

/* Reads the trailer of the pack in `pack` (size bytes) through a file, as
 * a reader does, and exercises every record it lists. */
static void read_pack(const struct repo_keys *k, const uint8_t *pack, size_t size)
{
        if (ftruncate(memfd, 0) < 0 || pwrite(memfd, pack, size, 0) != (ssize_t)size)
                abort();
        struct pack_entry *e = NULL;
        size_t n = 0;
        uint8_t name[HASH_LEN];
        int r = pack_read_trailer_fd(k, memfd, "fuzz", size, &e, &n, name);
        TRACE("trailer: %d (%s), %zu entries\n", r, error_message() ? error_message() : "", n);
        error_clear();
        if (r < 0)
                return;
        /* A sealed trailer: its length from the footer. */
        uint64_t tlen = le32_read(pack + size - PACK_FOOTER_SIZE + 4);
        uint64_t data_end = size - PACK_FOOTER_SIZE - tlen;
        struct buf plain = { 0 }, opened = { 0 }, out = { 0 };
        for (size_t i = 0; i < n; i++) {
                if (e[i].offset < PACK_HEADER_SIZE || (uint64_t)e[i].offset + e[i].stored_len > data_end ||
                    e[i].stored_len < CRYPTO_OVERHEAD)
                        abort();
                const uint8_t *sealed = pack + e[i].offset;
                bool same = i > 0 && e[i].offset == e[i - 1].offset;
                if (!same && record_decode(k, &e[i], sealed, &plain, dctx) != 0)
                        buf_reset(&plain);
                if (plain.len > PACK_MAX_CHUNK)
                        abort();
                int c = plain.len ? record_chunk_check(k, &e[i], plain.data, plain.len) : -1;
                TRACE("  entry %zu: record %zu bytes plain, chunk check %d\n", i, plain.len, c);
                if (c == 0 && (uint64_t)e[i].inner + e[i].raw_len > plain.len)
                        abort();
                /* As it travels: opened, then decoded and verified. */
                struct pack_entry t = e[i];
                if (pack_record_open(k, &t, sealed, &opened) == 0) {
                        if (t.stored_len != opened.len || opened.len + CRYPTO_OVERHEAD != e[i].stored_len)
                                abort();
                        (void)record_is_alone(&t, opened.data);
                        int d = chunk_decode(k, &t, opened.data, &out, dctx);
                        TRACE("  entry %zu: opened, chunk_decode %d\n", i, d);
                        if (d == 0 && out.len != t.raw_len)
                                abort();
                }
                error_clear();
        }
        buf_free(&plain);
        buf_free(&opened);
        buf_free(&out);
        free(e);
}

static void seal(const struct repo_keys *k, uint8_t kind, const uint8_t *p, size_t n, struct buf *out)
{
        buf_reset(out);
        if (crypto_seal(k, kind, p ? p : (const uint8_t *)"", n, out) < 0)
                abort();
}

/* Mode 1: records and trailer sealed here. */
static void build_pack(const struct repo_keys *k, const uint8_t *p, size_t n)
{
        struct buf pack = { 0 }, s = { 0 };
        buf_append(&pack, PACK_MAGIC, PACK_HEADER_SIZE);
        if (n < 1) {
                buf_free(&pack);
                return;
        }
        size_t nrec = p[0];
        p++, n--;
        for (size_t i = 0; i < nrec; i++) {
                if (n < 2)
                        break;
                size_t len = (size_t)p[0] | (size_t)p[1] << 8;
                p += 2, n -= 2;
                len = MIN(len, n);
                seal(k, CRYPTO_KIND_RECORD, p, len, &s);
                buf_append(&pack, s.data, s.len);
                p += len, n -= len;
        }
        size_t start = pack.len;
        seal(k, CRYPTO_KIND_TRAILER, p, n, &s);
        buf_append(&pack, s.data, s.len);
        uint8_t digest[HASH_LEN];
        hash_sha256(pack.data + start, s.len, digest);
        buf_put_le32(&pack, 0);
        buf_put_le32(&pack, (uint32_t)s.len);
        buf_append(&pack, digest, 8);
        buf_append(&pack, PACK_FOOTER_MAGIC_SEALED, 8);
        read_pack(k, pack.data, pack.len);
        buf_free(&s);
        buf_free(&pack);
}

/* Mode 2: sealed objects of every kind, a key object, a snapshot file. */
static void objects(const struct repo_keys *k, const uint8_t *p, size_t n)
{
        struct buf out = { 0 };
        for (uint8_t kind = CRYPTO_KIND_RECORD; kind <= CRYPTO_KIND_KEY; kind++) {
                int o = crypto_open(k, kind, p, n, &out);
                TRACE("open as kind %u: %d\n", kind, o);
                if (o == 0 && out.len + CRYPTO_OVERHEAD != n)
                        abort();
                buf_reset(&out);
        }
        char *text = xstrndup((const char *)p, n);
        int64_t created;
        int ku = crypto_key_unwrap(text, SEALED_REPO_ID, crypto_cipher(k), NULL, NULL, &created);
        TRACE("key object shape %d\n", ku);
        (void)ku;
        free(text);
        error_clear();
        struct buf sealed = { 0 };
        seal(k, CRYPTO_KIND_SNAPSHOT, p, n, &sealed);
        if (crypto_open(k, CRYPTO_KIND_SNAPSHOT, sealed.data, sealed.len, &out) != 0 || out.len != n ||
            (n && memcmp(out.data, p, n) != 0))
                abort();
        /* Bound to its kind: a snapshot file does not open as a record. */
        struct buf other = { 0 };
        if (crypto_open(k, CRYPTO_KIND_RECORD, sealed.data, sealed.len, &other) == 0)
                abort();
        struct snapfile f = { 0 };
        int sp = snapfile_parse(out.data, out.len, &f);
        TRACE("snapshot parse %d\n", sp);
        if (sp == 0)
                snapfile_clear(&f);
        error_clear();
        buf_free(&other);
        buf_free(&sealed);
        buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        init();
        if (size < 1)
                return 0;
        const struct repo_keys *k = keys[data[0] >> 7];
        const uint8_t *p = data + 1;
        size_t n = size - 1;
        switch (data[0] & 3) {
        case 0: {
                if (n > (8u << 20))
                        return 0;
                uint8_t *pack = xmalloc(n + PACK_HEADER_SIZE);
                memcpy(pack, PACK_MAGIC, PACK_HEADER_SIZE);
                memcpy(pack + PACK_HEADER_SIZE, p, n);
                read_pack(k, pack, n + PACK_HEADER_SIZE);
                free(pack);
                break;
        }
        case 1:
                build_pack(k, p, n);
                break;
        default:
                objects(k, p, n);
                break;
        }
        return 0;
}
