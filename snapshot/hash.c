/* hash.c — SHA-256 through OpenSSL's EVP interface. */
#include <openssl/evp.h>

#include "internal.h"

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
        /* Fetching once avoids a provider lookup per call. */
        sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
        if (!sha256_md)
                abort();
}

struct hasher {
        EVP_MD_CTX *ctx;
};

struct hasher *hasher_new(void)
{
        pthread_once(&sha256_once, sha256_fetch);
        struct hasher *h = xcalloc(1, sizeof *h);
        h->ctx = EVP_MD_CTX_new();
        if (!h->ctx || !EVP_DigestInit_ex(h->ctx, sha256_md, NULL))
                abort();
        return h;
}

void hasher_update(struct hasher *h, const void *p, size_t n)
{
        if (!EVP_DigestUpdate(h->ctx, p, n))
                abort();
}

void hasher_final(struct hasher *h, uint8_t out[HASH_LEN])
{
        unsigned len = HASH_LEN;
        if (!EVP_DigestFinal_ex(h->ctx, out, &len) || !EVP_DigestInit_ex(h->ctx, sha256_md, NULL))
                abort();
}

void hasher_free(struct hasher *h)
{
        if (!h)
                return;
        EVP_MD_CTX_free(h->ctx);
        free(h);
}

/* One context per thread, made on first use and never freed: workers and
 * the main thread hash millions of chunks. */
static __thread struct hasher *thread_hasher;
static pthread_key_t thread_hasher_key;
static pthread_once_t thread_hasher_once = PTHREAD_ONCE_INIT;

static void thread_hasher_destroy(void *p) { hasher_free(p); }
static void thread_hasher_key_make(void) { pthread_key_create(&thread_hasher_key, thread_hasher_destroy); }

void hash_sha256(const void *p, size_t n, uint8_t out[HASH_LEN])
{
        if (!thread_hasher) {
                pthread_once(&thread_hasher_once, thread_hasher_key_make);
                thread_hasher = hasher_new();
                pthread_setspecific(thread_hasher_key, thread_hasher);
        }
        hasher_update(thread_hasher, p, n);
        hasher_final(thread_hasher, out);
}

void chunk_id(const struct repo_keys *k, const void *p, size_t n, uint8_t out[HASH_LEN])
{
        if (k)
                crypto_chunk_id(k, p, n, out);
        else
                hash_sha256(p, n, out);
}
