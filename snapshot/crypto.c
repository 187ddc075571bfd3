/* crypto.c — encryption at rest: the repository key, its subkeys, sealing
 * and opening objects, and password-wrapped key objects (keys/<id>).
 *
 * libcrypto only.  A random 32-byte master key; HKDF-SHA-256 derives the
 * data key (AEAD), the id key (HMAC-SHA-256 chunk ids) and the chunker's
 * gear table.  A sealed object is version(1) || nonce(12) || ciphertext ||
 * tag(16), authenticated with the repository id and the object's kind as
 * associated data.  Key objects wrap the master key under a key that scrypt
 * derives from a password. */
#include <json-c/json.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <string.h>

#include "internal.h"

#define SEAL_VERSION 1
#define NONCE_LEN 12
#define TAG_LEN 16

struct repo_keys {
        uint8_t master[CRYPTO_KEY_LEN];
        uint8_t data[CRYPTO_KEY_LEN];
        uint8_t id[CRYPTO_KEY_LEN];
        char repo_id[33];
        char cipher_name[32];
        EVP_CIPHER *cipher;
        EVP_MAC *mac;
        EVP_MAC_CTX *hmac; /* keyed template, duplicated per call */
};

const char *crypto_default_cipher(void)
{
#if defined(__x86_64__) || defined(__i386__)
        /* Without AES-NI, ChaCha20-Poly1305 is several times faster and
         * free of table-lookup timing leaks. */
        if (!__builtin_cpu_supports("aes") || !__builtin_cpu_supports("pclmul"))
                return "chacha20-poly1305";
#endif
        return "aes-256-gcm";
}

static const char *evp_cipher_name(const char *name)
{
        if (strcmp(name, "aes-256-gcm") == 0)
                return "AES-256-GCM";
        if (strcmp(name, "chacha20-poly1305") == 0)
                return "ChaCha20-Poly1305";
        return NULL;
}

static int hkdf(const uint8_t *ikm, size_t ikm_len, const char *info, uint8_t *out, size_t out_len)
{
        EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
        EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
        OSSL_PARAM p[] = {
                OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len),
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)"berth-repository-v1", 19),
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info)),
                OSSL_PARAM_construct_end(),
        };
        int ok = ctx && EVP_KDF_derive(ctx, out, out_len, p) == 1;
        EVP_KDF_CTX_free(ctx);
        EVP_KDF_free(kdf);
        return ok ? 0 : error_set(EIO, "HKDF-SHA-256 failed in libcrypto");
}

int crypto_keys_new(const char *repo_id, const char *cipher, const uint8_t master[CRYPTO_KEY_LEN],
                    struct repo_keys **ret)
{
        const char *evp = evp_cipher_name(cipher);
        if (!evp)
                return error_set(BERTH_EFORMAT, "cipher '%s' is not one this berth knows", cipher);
        struct repo_keys *k = xcalloc(1, sizeof *k);
        snprintf(k->repo_id, sizeof k->repo_id, "%s", repo_id);
        snprintf(k->cipher_name, sizeof k->cipher_name, "%s", cipher);
        memcpy(k->master, master, CRYPTO_KEY_LEN);
        int r = hkdf(master, CRYPTO_KEY_LEN, "data", k->data, CRYPTO_KEY_LEN);
        if (r == 0)
                r = hkdf(master, CRYPTO_KEY_LEN, "chunk-id", k->id, CRYPTO_KEY_LEN);
        if (r < 0)
                goto fail;
        k->cipher = EVP_CIPHER_fetch(NULL, evp, NULL);
        k->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        k->hmac = k->mac ? EVP_MAC_CTX_new(k->mac) : NULL;
        OSSL_PARAM p[] = {
                OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                OSSL_PARAM_construct_end(),
        };
        if (!k->cipher || !k->hmac || EVP_MAC_init(k->hmac, k->id, CRYPTO_KEY_LEN, p) != 1) {
                r = error_set(EIO, "libcrypto lacks %s or HMAC-SHA-256", evp);
                goto fail;
        }
        *ret = k;
        return 0;
fail:
        crypto_keys_free(k);
        return r;
}

void crypto_keys_free(struct repo_keys *k)
{
        if (!k)
                return;
        EVP_MAC_CTX_free(k->hmac);
        EVP_MAC_free(k->mac);
        EVP_CIPHER_free(k->cipher);
        OPENSSL_cleanse(k, sizeof *k);
        free(k);
}

const char *crypto_cipher(const struct repo_keys *k) { return k->cipher_name; }
const uint8_t *crypto_master(const struct repo_keys *k) { return k->master; }

void crypto_chunk_id(const struct repo_keys *k, const void *p, size_t n, uint8_t out[HASH_LEN])
{
        EVP_MAC_CTX *c = EVP_MAC_CTX_dup(k->hmac);
        size_t len = 0;
        if (!c || EVP_MAC_update(c, p, n) != 1 || EVP_MAC_final(c, out, &len, HASH_LEN) != 1 || len != HASH_LEN)
                abort();
        EVP_MAC_CTX_free(c);
}

int crypto_gear(const struct repo_keys *k, uint64_t gear[256])
{
        uint8_t b[256 * 8];
        int r = hkdf(k->master, CRYPTO_KEY_LEN, "chunker-gear", b, sizeof b);
        if (r < 0)
                return r;
        for (size_t i = 0; i < 256; i++)
                memcpy(&gear[i], b + 8 * i, 8);
        OPENSSL_cleanse(b, sizeof b);
        return 0;
}

/* AEAD with an explicit key: the one place that encrypts. */
static int aead(const EVP_CIPHER *cipher, const uint8_t key[CRYPTO_KEY_LEN], bool enc, const char *repo_id,
                uint8_t kind, const uint8_t *in, size_t len, struct buf *out)
{
        uint8_t aad[40];
        size_t alen = strlen(repo_id);
        if (alen > sizeof aad - 1)
                alen = sizeof aad - 1;
        memcpy(aad, repo_id, alen);
        aad[alen++] = kind;

        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
        int outl = 0, ok = 0;
        if (!c)
                abort();
        buf_reset(out);
        if (enc) {
                buf_reserve(out, len + CRYPTO_OVERHEAD);
                uint8_t *o = out->data;
                o[0] = SEAL_VERSION;
                if (RAND_bytes(o + 1, NONCE_LEN) != 1)
                        goto done;
                if (EVP_EncryptInit_ex2(c, cipher, key, o + 1, NULL) != 1 ||
                    EVP_EncryptUpdate(c, NULL, &outl, aad, (int)alen) != 1 ||
                    (len && EVP_EncryptUpdate(c, o + 1 + NONCE_LEN, &outl, in, (int)len) != 1) ||
                    EVP_EncryptFinal_ex(c, o + 1 + NONCE_LEN + len, &outl) != 1 ||
                    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, o + 1 + NONCE_LEN + len) != 1)
                        goto done;
                out->len = len + CRYPTO_OVERHEAD;
                ok = 1;
        } else {
                if (len < CRYPTO_OVERHEAD || in[0] != SEAL_VERSION) {
                        ok = -1;
                        goto done;
                }
                size_t n = len - CRYPTO_OVERHEAD;
                buf_reserve(out, n ? n : 1);
                uint8_t tag[TAG_LEN];
                memcpy(tag, in + len - TAG_LEN, TAG_LEN);
                if (EVP_DecryptInit_ex2(c, cipher, key, in + 1, NULL) != 1 ||
                    EVP_DecryptUpdate(c, NULL, &outl, aad, (int)alen) != 1 ||
                    (n && EVP_DecryptUpdate(c, out->data, &outl, in + 1 + NONCE_LEN, (int)n) != 1) ||
                    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, tag) != 1 ||
                    EVP_DecryptFinal_ex(c, out->data + n, &outl) != 1) {
                        ok = -1;
                        goto done;
                }
                out->len = n;
                ok = 1;
        }
done:
        EVP_CIPHER_CTX_free(c);
        if (ok < 0) {
                buf_reset(out);
                return -BERTH_ECORRUPT;
        }
        return ok ? 0 : -EIO;
}

int crypto_seal(const struct repo_keys *k, uint8_t kind, const void *plain, size_t len, struct buf *out)
{
        if (len > INT32_MAX)
                return -EINVAL;
        int r = aead(k->cipher, k->data, true, k->repo_id, kind, plain, len, out);
        return r < 0 ? error_set(r, "cannot encrypt: libcrypto failed") : 0;
}

int crypto_open(const struct repo_keys *k, uint8_t kind, const void *sealed, size_t len, struct buf *out)
{
        if (len > INT32_MAX)
                return -BERTH_ECORRUPT;
        return aead(k->cipher, k->data, false, k->repo_id, kind, sealed, len, out);
}

/* ---- key objects ---------------------------------------------------------------- */

static int scrypt(const char *password, const uint8_t *salt, size_t salt_len, const struct crypto_kdf *p,
                  uint8_t out[CRYPTO_KEY_LEN])
{
        EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
        EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
        uint64_t n = p->n;
        uint32_t rr = p->r, pp = p->p;
        uint64_t maxmem = 128ULL * rr * n + (16u << 20);
        OSSL_PARAM params[] = {
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)password, strlen(password)),
                OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len),
                OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
                OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &rr),
                OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &pp),
                OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
                OSSL_PARAM_construct_end(),
        };
        int ok = ctx && EVP_KDF_derive(ctx, out, CRYPTO_KEY_LEN, params) == 1;
        EVP_KDF_CTX_free(ctx);
        EVP_KDF_free(kdf);
        return ok ? 0 : error_set(EIO, "scrypt failed in libcrypto (N=%llu r=%u p=%u)", (unsigned long long)p->n,
                                  p->r, p->p);
}

static bool kdf_valid(const struct crypto_kdf *p)
{
        /* A key object is data from the repository: its cost is bounded
         * (at most 256 MiB of memory). */
        return p->n >= 1024 && p->n <= (1u << 20) && (p->n & (p->n - 1)) == 0 && p->r >= 1 && p->r <= 32 &&
               p->p >= 1 && p->p <= 4 && 128ULL * p->r * p->n <= (256ULL << 20);
}

void crypto_kdf_default(struct crypto_kdf *p)
{
        /* N = 2^16, r = 8: 64 MiB and about 0.2 s here (README, "Encryption"). */
        *p = (struct crypto_kdf){ .n = 1u << 16, .r = 8, .p = 1 };
        const char *e = getenv("BERTH_SCRYPT_N_LOG2"); /* tests: a cheaper KDF */
        if (e && atoi(e) >= 10 && atoi(e) <= 20)
                p->n = 1u << atoi(e);
}

int crypto_key_wrap(const uint8_t master[CRYPTO_KEY_LEN], const char *repo_id, const char *cipher,
                    const char *password, const struct crypto_kdf *p, char **ret_text)
{
        uint8_t salt[32], wrap[CRYPTO_KEY_LEN];
        char hex[2 * 128 + 1];
        struct buf sealed = { 0 };

        if (RAND_bytes(salt, sizeof salt) != 1)
                return error_set(EIO, "cannot get random bytes from libcrypto");
        int r = scrypt(password, salt, sizeof salt, p, wrap);
        if (r < 0)
                return r;
        EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, evp_cipher_name(cipher) ? evp_cipher_name(cipher) : "AES-256-GCM", NULL);
        r = c ? aead(c, wrap, true, repo_id, CRYPTO_KIND_KEY, master, CRYPTO_KEY_LEN, &sealed) : -EIO;
        EVP_CIPHER_free(c);
        OPENSSL_cleanse(wrap, sizeof wrap);
        if (r < 0) {
                buf_free(&sealed);
                return error_set(EIO, "cannot wrap the repository key");
        }
        json_object *o = json_object_new_object();
        json_object_object_add(o, "kdf", json_object_new_string("scrypt"));
        json_object_object_add(o, "n", json_object_new_int64((int64_t)p->n));
        json_object_object_add(o, "r", json_object_new_int(p->r));
        json_object_object_add(o, "p", json_object_new_int(p->p));
        hex_encode(salt, sizeof salt, hex);
        json_object_object_add(o, "salt", json_object_new_string(hex));
        hex_encode(sealed.data, sealed.len, hex);
        json_object_object_add(o, "wrapped", json_object_new_string(hex));
        json_object_object_add(o, "created", json_object_new_int64(now_ns() / 1000000000));
        *ret_text = xasprintf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
        json_object_put(o);
        buf_free(&sealed);
        return 0;
}

int crypto_key_unwrap(const char *text, const char *repo_id, const char *cipher, const char *password,
                      uint8_t master[CRYPTO_KEY_LEN], int64_t *ret_created)
{
        json_object *o = json_tokener_parse(text), *v;
        struct crypto_kdf p = { 0 };
        uint8_t salt[32], sealed[CRYPTO_KEY_LEN + CRYPTO_OVERHEAD], wrap[CRYPTO_KEY_LEN];
        int r = -BERTH_ECORRUPT;

        if (!o || !json_object_is_type(o, json_type_object))
                goto out;
        if (!json_object_object_get_ex(o, "kdf", &v) || strcmp(json_object_get_string(v), "scrypt") != 0)
                goto out;
        if (json_object_object_get_ex(o, "n", &v))
                p.n = (uint64_t)json_object_get_int64(v);
        if (json_object_object_get_ex(o, "r", &v))
                p.r = (uint32_t)json_object_get_int(v);
        if (json_object_object_get_ex(o, "p", &v))
                p.p = (uint32_t)json_object_get_int(v);
        if (ret_created)
                *ret_created = json_object_object_get_ex(o, "created", &v) ? json_object_get_int64(v) : 0;
        if (!kdf_valid(&p) || !json_object_object_get_ex(o, "salt", &v) ||
            strlen(json_object_get_string(v)) != 2 * sizeof salt ||
            hex_decode(json_object_get_string(v), salt, sizeof salt) < 0 ||
            !json_object_object_get_ex(o, "wrapped", &v) || strlen(json_object_get_string(v)) != 2 * sizeof sealed ||
            hex_decode(json_object_get_string(v), sealed, sizeof sealed) < 0)
                goto out;
        if (!password) {
                r = 0; /* only the shape was asked for */
                goto out;
        }
        r = scrypt(password, salt, sizeof salt, &p, wrap);
        if (r < 0)
                goto out;
        EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, evp_cipher_name(cipher) ? evp_cipher_name(cipher) : "AES-256-GCM", NULL);
        struct buf plain = { 0 };
        r = c ? aead(c, wrap, false, repo_id, CRYPTO_KIND_KEY, sealed, sizeof sealed, &plain) : -EIO;
        EVP_CIPHER_free(c);
        OPENSSL_cleanse(wrap, sizeof wrap);
        if (r == 0 && plain.len == CRYPTO_KEY_LEN)
                memcpy(master, plain.data, CRYPTO_KEY_LEN);
        else if (r == -BERTH_ECORRUPT)
                r = -EACCES; /* wrong password (or a damaged key object) */
        if (plain.data)
                OPENSSL_cleanse(plain.data, plain.len);
        buf_free(&plain);
out:
        json_object_put(o);
        return r;
}

int crypto_random_key(uint8_t out[CRYPTO_KEY_LEN])
{
        return RAND_bytes(out, CRYPTO_KEY_LEN) == 1 ? 0 : error_set(EIO, "cannot get random bytes from libcrypto");
}
