/* gen-sealed-corpus.c — writes tests/fuzz/corpus/sealed/: inputs of
 * fuzz-sealed.c under its fixed key (both ciphers): built packs (mode 1)
 * with a raw record of one chunk, a zstd record of three chunks and a tree
 * chunk; the same packs whole (mode 0); and objects (mode 2): a snapshot
 * record, a key object, a sealed record.  Not built by make; run once by
 * hand:
 *   cc -std=gnu11 -D_GNU_SOURCE -o /tmp/gen tests/fuzz/gen-sealed-corpus.c build/libsnapshot.a \
 *      build/libcatalog.a build/libcommon.a $(pkg-config --libs libzstd libcrypto json-c sqlite3) -lpthread &&
 *   /tmp/gen tests/fuzz/corpus/sealed */
#include <stdio.h>
#include <string.h>
#include <zstd.h>

#include "../../snapshot/internal.h"

#define SEALED_REPO_ID "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"

static const char *dir;

static void save(const char *name, const void *p, size_t n)
{
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
                perror(path);
                exit(1);
        }
}

static void put_entry(struct buf *t, const uint8_t id[HASH_LEN], uint32_t off, uint32_t slen, uint32_t inner,
                      uint32_t raw, uint8_t flags)
{
        uint8_t rec[PACK_ENTRY_SIZE] = { 0 };
        memcpy(rec, id, HASH_LEN);
        le32_write(rec + 32, off);
        le32_write(rec + 36, slen);
        le32_write(rec + 40, inner);
        le32_write(rec + 44, raw);
        rec[48] = flags;
        buf_append(t, rec, sizeof rec);
}

/* One record's item of a mode-1 input. */
static void put_record(struct buf *in, const struct buf *stored)
{
        buf_putc(in, (uint8_t)(stored->len & 0xff));
        buf_putc(in, (uint8_t)(stored->len >> 8));
        buf_append(in, stored->data, stored->len);
}

static void gen(const struct repo_keys *k, uint8_t cipher_bit, const char *tag)
{
        ZSTD_CCtx *cctx = ZSTD_createCCtx();
        ZSTD_DCtx *dctx = ZSTD_createDCtx();
        struct buf in = { 0 }, trailer = { 0 }, stored = { 0 }, check = { 0 }, s = { 0 }, pack = { 0 };
        uint8_t id[HASH_LEN];
        char name[64];

        /* chunk A: 600 bytes of noise, a raw record alone */
        uint8_t a[600];
        for (size_t i = 0; i < sizeof a; i++)
                a[i] = (uint8_t)(i * 2654435761u >> 13);
        /* chunks B, C, D: text, one zstd record */
        char plain[3000];
        size_t bl = 1000, cl = 1200, dl = 800;
        for (size_t i = 0; i < sizeof plain; i++)
                plain[i] = "the quick brown fox jumps over the lazy dog\n"[i % 44];
        const char *tree = "BMF1 a manifest-like tree chunk";

        buf_putc(&in, (uint8_t)(cipher_bit | 1));
        buf_putc(&in, 3);
        uint32_t off = PACK_HEADER_SIZE;
        /* record 1: A raw */
        buf_reset(&stored);
        buf_append(&stored, a, sizeof a);
        put_record(&in, &stored);
        chunk_id(k, a, sizeof a, id);
        put_entry(&trailer, id, off, (uint32_t)(sizeof a + CRYPTO_OVERHEAD), 0, sizeof a, PACK_F_ALONE);
        off += sizeof a + CRYPTO_OVERHEAD;
        /* record 2: B C D zstd */
        int f = record_encode(cctx, dctx, (const uint8_t *)plain, bl + cl + dl, &stored, &check);
        if (f != PACK_F_ZSTD)
                exit(1);
        put_record(&in, &stored);
        uint32_t slen = (uint32_t)(stored.len + CRYPTO_OVERHEAD);
        chunk_id(k, plain, bl, id);
        put_entry(&trailer, id, off, slen, 0, bl, PACK_F_ZSTD);
        chunk_id(k, plain + bl, cl, id);
        put_entry(&trailer, id, off, slen, bl, cl, PACK_F_ZSTD);
        chunk_id(k, plain + bl + cl, dl, id);
        put_entry(&trailer, id, off, slen, bl + cl, dl, PACK_F_ZSTD);
        off += slen;
        /* record 3: a tree chunk, raw, alone */
        buf_reset(&stored);
        buf_append(&stored, tree, strlen(tree));
        put_record(&in, &stored);
        chunk_id(k, tree, strlen(tree), id);
        put_entry(&trailer, id, off, (uint32_t)(strlen(tree) + CRYPTO_OVERHEAD), 0, strlen(tree),
                  PACK_F_ALONE | PACK_F_TREE);
        buf_append(&in, trailer.data, trailer.len);
        snprintf(name, sizeof name, "built-%s", tag);
        save(name, in.data, in.len);

        /* the same pack whole (mode 0): built as fuzz-sealed builds it */
        buf_reset(&pack);
        buf_putc(&pack, cipher_bit | 0);
        const uint8_t *p = in.data + 2;
        size_t n = in.len - 2;
        for (int i = 0; i < 3; i++) {
                size_t len = (size_t)p[0] | (size_t)p[1] << 8;
                buf_reset(&s);
                crypto_seal(k, CRYPTO_KIND_RECORD, p + 2, len, &s);
                buf_append(&pack, s.data, s.len);
                p += 2 + len, n -= 2 + len;
        }
        size_t start = pack.len;
        buf_reset(&s);
        crypto_seal(k, CRYPTO_KIND_TRAILER, p, n, &s);
        buf_append(&pack, s.data, s.len);
        uint8_t digest[HASH_LEN];
        hash_sha256(pack.data + start, s.len, digest);
        buf_put_le32(&pack, 0);
        buf_put_le32(&pack, (uint32_t)s.len);
        buf_append(&pack, digest, 8);
        buf_append(&pack, PACK_FOOTER_MAGIC_SEALED, 8);
        snprintf(name, sizeof name, "pack-%s", tag);
        save(name, pack.data, pack.len);
        /* an empty sealed trailer */
        buf_reset(&in);
        buf_putc(&in, cipher_bit | 1);
        buf_putc(&in, 0);
        snprintf(name, sizeof name, "empty-%s", tag);
        save(name, in.data, in.len);

        /* objects (mode 2) */
        const char *snap = "{\"version\":1,\"name\":\"pg\",\"host\":\"h\",\"source\":\"/x\",\"started\":1,"
                           "\"finished\":2,\"status\":\"complete\",\"parent\":null,\"stats\":{\"files\":1},"
                           "\"quiesce_ns\":0,\"manifest\":"
                           "[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]}";
        buf_reset(&in);
        buf_putc(&in, cipher_bit | 2);
        buf_append(&in, snap, strlen(snap));
        snprintf(name, sizeof name, "snapshot-%s", tag);
        save(name, in.data, in.len);
        uint8_t master[CRYPTO_KEY_LEN];
        memset(master, 0x42, sizeof master);
        struct crypto_kdf kdf = { .n = 1 << 10, .r = 8, .p = 1 };
        char *text = NULL;
        if (crypto_key_wrap(master, SEALED_REPO_ID, crypto_cipher(k), "password", &kdf, &text) < 0)
                exit(1);
        buf_reset(&in);
        buf_putc(&in, cipher_bit | 2);
        buf_append(&in, text, strlen(text));
        snprintf(name, sizeof name, "key-%s", tag);
        save(name, in.data, in.len);
        free(text);
        buf_reset(&in);
        buf_putc(&in, cipher_bit | 2);
        buf_reset(&s);
        crypto_seal(k, CRYPTO_KIND_RECORD, a, sizeof a, &s);
        buf_append(&in, s.data, s.len);
        snprintf(name, sizeof name, "record-%s", tag);
        save(name, in.data, in.len);

        buf_free(&in);
        buf_free(&trailer);
        buf_free(&stored);
        buf_free(&check);
        buf_free(&s);
        buf_free(&pack);
        ZSTD_freeCCtx(cctx);
        ZSTD_freeDCtx(dctx);
}

int main(int argc, char **argv)
{
        if (argc != 2) {
                fprintf(stderr, "usage: %s DIR\n", argv[0]);
                return 2;
        }
        dir = argv[1];
        uint8_t master[CRYPTO_KEY_LEN];
        memset(master, 0x42, sizeof master);
        struct repo_keys *aes, *chacha;
        if (crypto_keys_new(SEALED_REPO_ID, "aes-256-gcm", master, &aes) < 0 ||
            crypto_keys_new(SEALED_REPO_ID, "chacha20-poly1305", master, &chacha) < 0)
                return 1;
        gen(aes, 0, "aes");
        gen(chacha, 0x80, "chacha");
        crypto_keys_free(aes);
        crypto_keys_free(chacha);
        return 0;
}
