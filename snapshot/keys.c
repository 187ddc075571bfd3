/* keys.c — an encrypted repository's key objects (keys/<id>): unlocking
 * with a password, adding, listing and removing them.
 *
 * Each keys/<id> wraps the same master key under a different password
 * (crypto.c).  The repository is never left without a key that opens:
 * adding writes the new object before anything else changes, and removing
 * refuses the last key. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include "internal.h"

#define KEY_PREFIX "keys/"
#define KEY_MAX 4096

static repo_password_fn password_source;

void repo_set_password_source(repo_password_fn fn) { password_source = fn; }

bool repo_encrypted(const struct repo *r) { return r->cfg.encrypted; }

struct key_names {
        char **v;
        size_t n, cap;
};

static int collect_key(void *ud, const char *name, uint64_t size)
{
        struct key_names *l = ud;
        if (size > KEY_MAX || strlen(name) <= strlen(KEY_PREFIX))
                return 0;
        if (l->n == l->cap) {
                l->cap = l->cap ? 2 * l->cap : 8;
                l->v = xrealloc(l->v, l->cap * sizeof *l->v);
        }
        l->v[l->n++] = xstrdup(name);
        return 0;
}

static void key_names_free(struct key_names *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
        *l = (struct key_names){ 0 };
}

static int list_keys(struct repo *r, struct key_names *ret)
{
        int k = backend_list(r->be, KEY_PREFIX, collect_key, ret);
        if (k < 0 && k != -ENOENT)
                return error_message() ? k : error_set(k, "cannot list %s/keys: %s", r->path, berth_strerror(k));
        return 0;
}

/* Writes a new key object for the master key under password. */
static int write_key(struct backend *be, const char *where, const char *repo_id, const char *cipher,
                     const uint8_t master[CRYPTO_KEY_LEN], const char *password, char ret_id[17])
{
        struct crypto_kdf p;
        uint8_t rnd[8];
        _cleanup_free_ char *text = NULL;

        crypto_kdf_default(&p);
        int k = crypto_key_wrap(master, repo_id, cipher, password, &p, &text);
        if (k < 0)
                return k;
        if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
                return error_set(EIO, "cannot get random bytes");
        hex_encode(rnd, sizeof rnd, ret_id);
        _cleanup_free_ char *name = xasprintf(KEY_PREFIX "%s", ret_id);
        k = backend_put(be, name, text, strlen(text));
        if (k == 0 || k == -EEXIST)
                return error_set(EEXIST, "%s/%s already exists", where, name);
        if (k < 0)
                return error_message() ? k : error_set(k, "cannot write %s/%s: %s", where, name, berth_strerror(k));
        return 0;
}

int repo_init_key(struct backend *be, const char *where, const char *repo_id, const char *cipher,
                  const char *password)
{
        uint8_t master[CRYPTO_KEY_LEN];
        char id[17];
        int k = crypto_random_key(master);
        if (k == 0)
                k = write_key(be, where, repo_id, cipher, master, password, id);
        explicit_bzero(master, sizeof master);
        return k;
}

static int set_keys(struct repo *r, const uint8_t master[CRYPTO_KEY_LEN])
{
        uint64_t gear[256];
        int k = crypto_keys_new(r->cfg.id, r->cfg.cipher, master, &r->keys);
        if (k == 0)
                k = crypto_gear(r->keys, gear);
        if (k < 0)
                return k;
        chunker_set_gear(&r->chunker, gear);
        chunker_set_gear(&r->tree_chunker, gear);
        return 0;
}

/* The master key kept for later opens of its repository in this process
 * (repo_keep_key, repo_set_kept_key): in a page of its own, locked in
 * memory and left out of core dumps; NULL until a key is kept. */
static struct kept {
        bool set;
        char id[33];
        uint8_t master[CRYPTO_KEY_LEN];
} *kept;

void repo_set_kept_key(const char *id, const uint8_t master[CRYPTO_KEY_LEN])
{
        if (kept)
                explicit_bzero(kept, sizeof *kept);
        if (!id || !master || strlen(id) >= sizeof kept->id)
                return;
        if (!kept) {
                size_t page = (size_t)sysconf(_SC_PAGESIZE);
                void *p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED)
                        return; /* kept nothing: opens ask for the password */
                if (mlock(p, page) < 0)
                        log_debug("mlock of the key page failed: %s", strerror(errno));
                madvise(p, page, MADV_DONTDUMP);
                kept = p;
        }
        snprintf(kept->id, sizeof kept->id, "%s", id);
        memcpy(kept->master, master, CRYPTO_KEY_LEN);
        kept->set = true;
}

int repo_keep_key(const struct repo *r)
{
        if (!r->keys)
                return -EINVAL;
        repo_set_kept_key(r->cfg.id, crypto_master(r->keys));
        return kept && kept->set ? 0 : -ENOMEM;
}

bool repo_kept_key(char ret_id[33], uint8_t ret_master[CRYPTO_KEY_LEN])
{
        if (!kept || !kept->set)
                return false;
        if (ret_id)
                memcpy(ret_id, kept->id, sizeof kept->id);
        if (ret_master)
                memcpy(ret_master, kept->master, CRYPTO_KEY_LEN);
        return true;
}

int repo_unlock(struct repo *r)
{
        struct key_names keys = { 0 };
        _cleanup_free_ char *password = NULL;
        uint8_t master[CRYPTO_KEY_LEN];
        struct buf b = { 0 };
        int k;

        if (!r->cfg.encrypted)
                return 0;
        if (kept && kept->set && strcmp(kept->id, r->cfg.id) == 0) {
                log_debug("repository %s: using the key kept in this process", r->path);
                return set_keys(r, kept->master);
        }
        if (!password_source)
                return error_set(EACCES, "repository %s is encrypted and no password was given", r->path);
        k = list_keys(r, &keys);
        if (k < 0)
                return k;
        if (keys.n == 0) {
                key_names_free(&keys);
                return error_set(BERTH_ECORRUPT, "repository %s is encrypted but has no key objects in keys/",
                                 r->path);
        }
        k = password_source(r->path, false, &password);
        if (k < 0) {
                key_names_free(&keys);
                return k;
        }
        size_t damaged = 0;
        k = -EACCES;
        for (size_t i = 0; i < keys.n && k == -EACCES; i++) {
                buf_reset(&b);
                int g = backend_get(r->be, keys.v[i], KEY_MAX, &b);
                if (g < 0) {
                        error_clear();
                        damaged++;
                        continue;
                }
                buf_putc(&b, 0);
                k = crypto_key_unwrap((const char *)b.data, r->cfg.id, r->cfg.cipher, password, master, NULL);
                if (k == -BERTH_ECORRUPT) {
                        damaged++;
                        k = -EACCES;
                } else if (k == 0)
                        r->key_name = xstrdup(keys.v[i] + strlen(KEY_PREFIX));
        }
        buf_free(&b);
        key_names_free(&keys);
        explicit_bzero(password, strlen(password));
        if (k == -EACCES)
                return error_set(EACCES, "wrong password for repository %s: no key in keys/ opens with it%s", r->path,
                                 damaged ? " (some key objects are damaged)" : "");
        if (k < 0)
                return k;
        k = set_keys(r, master);
        explicit_bzero(master, sizeof master);
        return k;
}

int repo_key_list(struct repo *r, struct repo_key_info **ret, size_t *ret_n)
{
        struct key_names keys = { 0 };
        if (!r->keys)
                return error_set(EINVAL, "repository %s is not encrypted", r->path);
        int k = list_keys(r, &keys);
        if (k < 0)
                return k;
        struct repo_key_info *v = xcalloc(keys.n ? keys.n : 1, sizeof *v);
        for (size_t i = 0; i < keys.n; i++) {
                struct buf b = { 0 };
                const char *id = keys.v[i] + strlen(KEY_PREFIX);
                snprintf(v[i].id, sizeof v[i].id, "%s", id);
                v[i].in_use = r->key_name && strcmp(r->key_name, id) == 0;
                if (backend_get(r->be, keys.v[i], KEY_MAX, &b) == 0) {
                        buf_putc(&b, 0);
                        v[i].valid = crypto_key_unwrap((const char *)b.data, r->cfg.id, r->cfg.cipher, NULL, NULL,
                                                       &v[i].created) == 0;
                }
                error_clear();
                buf_free(&b);
        }
        *ret = v;
        *ret_n = keys.n;
        key_names_free(&keys);
        return 0;
}

int repo_key_add(struct repo *r, const char *password, char ret_id[17])
{
        if (!r->keys)
                return error_set(EINVAL, "repository %s is not encrypted", r->path);
        if (!r->writable)
                return error_set(EROFS, "the repository is open read-only");
        return write_key(r->be, r->path, r->cfg.id, r->cfg.cipher, crypto_master(r->keys), password, ret_id);
}

int repo_key_remove(struct repo *r, const char *id, bool current_ok)
{
        struct key_names keys = { 0 };
        if (!r->keys)
                return error_set(EINVAL, "repository %s is not encrypted", r->path);
        if (!r->writable)
                return error_set(EROFS, "the repository is open read-only");
        if (strchr(id, '/') || !*id)
                return error_set(EINVAL, "'%s' is not a key id", id);
        if (!current_ok && r->key_name && strcmp(r->key_name, id) == 0)
                return error_set(EBUSY,
                                 "key %s is the one this password opened: remove it with another password, "
                                 "or change it with 'berth key passwd'",
                                 id);
        int k = list_keys(r, &keys);
        if (k < 0)
                return k;
        bool found = false;
        size_t usable = 0;
        for (size_t i = 0; i < keys.n; i++) {
                const char *kid = keys.v[i] + strlen(KEY_PREFIX);
                if (strcmp(kid, id) == 0) {
                        found = true;
                        continue;
                }
                /* Another key counts when it is well formed; only the
                 * current one is known to open. */
                struct buf b = { 0 };
                if (backend_get(r->be, keys.v[i], KEY_MAX, &b) == 0) {
                        buf_putc(&b, 0);
                        if (crypto_key_unwrap((const char *)b.data, r->cfg.id, r->cfg.cipher, NULL, NULL, NULL) == 0)
                                usable++;
                }
                error_clear();
                buf_free(&b);
        }
        key_names_free(&keys);
        if (!found)
                return error_set(BERTH_ENOTFOUND, "repository %s has no key %s (see 'berth key list')", r->path, id);
        if (usable == 0)
                return error_set(EBUSY, "key %s is the last key of %s: removing it would make the repository "
                                        "unreadable; add another with 'berth key add' first",
                                 id, r->path);
        _cleanup_free_ char *name = xasprintf(KEY_PREFIX "%s", id);
        k = backend_delete(r->be, name);
        if (k < 0)
                return error_message() ? k : error_set(k, "cannot remove %s/%s: %s", r->path, name, berth_strerror(k));
        if (r->key_name && strcmp(r->key_name, id) == 0) {
                free(r->key_name);
                r->key_name = NULL;
        }
        return 0;
}
