/* repo.c — creating, opening and locking a repository, and its configuration.
 *
 * The repository's objects (config, packs, snapshot files) are reached
 * through its backend (backend.h); what stays local is this file's: the
 * catalog (catalog_path), the lock and the spool directory tmp/.  For a
 * local repository all of them live in the repository directory.
 * Recovery and catalog rebuild are recover.c's; snapshot references are
 * resolve.c's. */
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Defaults chosen by measurement; see README, "Performance". */
#define DEFAULT_MIN (8u << 10)
#define DEFAULT_AVG (32u << 10)
#define DEFAULT_MAX (128u << 10)
#define TREE_MIN (2u << 10)
#define TREE_AVG (8u << 10)
#define TREE_MAX (32u << 10)
#define DEFAULT_LEVEL 3
#define DEFAULT_PACK_SIZE (16u << 20)
/* Pages per page-aligned chunk (README, Performance: 1, 2 and 4 measured). */
#define DEFAULT_PAGE_CHUNK 2
#define PAGE_CHUNK_MAX 16
/* One range for init and for every later open, so init cannot make a
 * repository that nothing can open. */
#define PACK_SIZE_MIN (1ULL << 20)
#define PACK_SIZE_MAX (1ULL << 31)

static char *config_to_json(const struct repo_config *c)
{
        json_object *o = json_object_new_object();
        json_object *ch = json_object_new_object(), *tr = json_object_new_object();
        char seed[17];

        snprintf(seed, sizeof seed, "%016llx", (unsigned long long)c->seed);
        /* Format 3 (records, encryption by the "encryption" block): a berth
         * that knows neither refuses it instead of misreading it. */
        json_object_object_add(o, "format", json_object_new_int(c->format ? c->format : REPO_FORMAT));
        json_object_object_add(o, "id", json_object_new_string(c->id));
        json_object_object_add(o, "hash", json_object_new_string(c->encrypted ? "hmac-sha256" : "sha256"));
        if (c->encrypted) {
                /* Parameters only: nothing here reveals data. */
                json_object *en = json_object_new_object();
                json_object_object_add(en, "cipher", json_object_new_string(c->cipher));
                json_object_object_add(en, "kdf", json_object_new_string("scrypt"));
                json_object_object_add(en, "keys", json_object_new_string("keys/"));
                json_object_object_add(o, "encryption", en);
        }
        json_object_object_add(o, "compression", json_object_new_string("zstd"));
        json_object_object_add(o, "level", json_object_new_int(c->level));
        json_object_object_add(o, "pack_size", json_object_new_int64((int64_t)c->pack_size));
        json_object_object_add(o, "record_size", json_object_new_int64(c->record_size));
        json_object_object_add(ch, "algorithm", json_object_new_string("fastcdc"));
        json_object_object_add(ch, "min", json_object_new_int64(c->min));
        json_object_object_add(ch, "avg", json_object_new_int64(c->avg));
        json_object_object_add(ch, "max", json_object_new_int64(c->max));
        json_object_object_add(ch, "seed", json_object_new_string(seed));
        json_object_object_add(o, "chunker", ch);
        json_object_object_add(tr, "min", json_object_new_int64(c->tree_min));
        json_object_object_add(tr, "avg", json_object_new_int64(c->tree_avg));
        json_object_object_add(tr, "max", json_object_new_int64(c->tree_max));
        json_object_object_add(o, "tree_chunker", tr);
        json_object *pg = json_object_new_object();
        char ps[32];
        pages_format(c->page_size, ps, sizeof ps);
        json_object_object_add(pg, "size", json_object_new_string(ps));
        json_object_object_add(pg, "per_chunk", json_object_new_int64(c->page_chunk));
        json_object_object_add(o, "pages", pg);
        char *s = xasprintf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
        json_object_put(o);
        return s;
}

static int64_t jint(json_object *o, const char *k, int64_t def)
{
        json_object *v;
        if (!o || !json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_int))
                return def;
        return json_object_get_int64(v);
}

static int config_parse(const char *path, const struct buf *b, struct repo_config *c)
{
        json_object *o = json_tokener_parse(b->data ? (const char *)b->data : "");
        json_object *ch = NULL, *tr = NULL, *pg = NULL, *v;
        int r = 0;

        if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return error_set(BERTH_ECORRUPT, "%s/config is not a Berth repository configuration", path);
        }
        int64_t format = jint(o, "format", -1);
        json_object *en = NULL;
        json_object_object_get_ex(o, "encryption", &en);
        if (format > REPO_FORMAT) {
                json_object_put(o);
                return error_set(BERTH_EFORMAT,
                                 "repository %s has format version %lld: it was made by a newer berth (this one "
                                 "reads formats %d and %d); use a berth release that matches it",
                                 path, (long long)format, REPO_FORMAT_V1, REPO_FORMAT);
        }
        if (format != REPO_FORMAT && !(format == REPO_FORMAT_V1 && !en)) {
                json_object_put(o);
                return error_set(BERTH_EFORMAT,
                                 "repository %s has format version %lld, which this berth does not read "
                                 "(it reads formats %d and %d)",
                                 path, (long long)format, REPO_FORMAT_V1, REPO_FORMAT);
        }
        json_object_object_get_ex(o, "chunker", &ch);
        json_object_object_get_ex(o, "tree_chunker", &tr);
        json_object_object_get_ex(o, "pages", &pg);
        *c = (struct repo_config){
                .min = (uint32_t)jint(ch, "min", 0),
                .avg = (uint32_t)jint(ch, "avg", 0),
                .max = (uint32_t)jint(ch, "max", 0),
                .tree_min = (uint32_t)jint(tr, "min", TREE_MIN),
                .tree_avg = (uint32_t)jint(tr, "avg", TREE_AVG),
                .tree_max = (uint32_t)jint(tr, "max", TREE_MAX),
                .level = (int)jint(o, "level", DEFAULT_LEVEL),
                .pack_size = (uint64_t)jint(o, "pack_size", DEFAULT_PACK_SIZE),
                .page_size = PAGES_AUTO,
                .page_chunk = (uint32_t)jint(pg, "per_chunk", DEFAULT_PAGE_CHUNK),
                .record_size = (uint32_t)jint(o, "record_size", RECORD_SIZE_DEFAULT),
                .format = (int)format,
        };
        /* Repositories made before page-aligned chunks have no "pages":
         * auto, like new ones.  An unknown value is off, never an error. */
        if (pg && json_object_object_get_ex(pg, "size", &v) && json_object_is_type(v, json_type_string) &&
            pages_parse(json_object_get_string(v), &c->page_size) < 0)
                c->page_size = PAGES_OFF;
        if (c->page_chunk < 1 || c->page_chunk > PAGE_CHUNK_MAX)
                c->page_chunk = DEFAULT_PAGE_CHUNK;
        if (json_object_object_get_ex(o, "id", &v) && json_object_is_type(v, json_type_string))
                snprintf(c->id, sizeof c->id, "%s", json_object_get_string(v));
        if (ch && json_object_object_get_ex(ch, "seed", &v) && json_object_is_type(v, json_type_string))
                c->seed = strtoull(json_object_get_string(v), NULL, 16);
        if (en) {
                c->encrypted = true;
                if (json_object_object_get_ex(en, "cipher", &v) && json_object_is_type(v, json_type_string))
                        snprintf(c->cipher, sizeof c->cipher, "%s", json_object_get_string(v));
                if (strcmp(c->cipher, "aes-256-gcm") != 0 && strcmp(c->cipher, "chacha20-poly1305") != 0)
                        r = error_set(BERTH_EFORMAT, "%s/config: unknown cipher '%s'", path, c->cipher);
        }
        if (c->pack_size < PACK_SIZE_MIN || c->pack_size > PACK_SIZE_MAX)
                r = error_set(BERTH_ECORRUPT, "%s/config: pack_size out of range", path);
        if (c->record_size < RECORD_SIZE_MIN || c->record_size > RECORD_SIZE_MAX)
                r = error_set(BERTH_ECORRUPT, "%s/config: record_size out of range", path);
        json_object_put(o);
        return r;
}

/* A new repository's configuration from o (NULL: defaults), checked. */
static int config_make(const struct repo_init_options *o, struct repo_config *ret)
{
        struct repo_config c = {
                .min = o && o->chunk_min ? o->chunk_min : DEFAULT_MIN,
                .avg = o && o->chunk_avg ? o->chunk_avg : DEFAULT_AVG,
                .max = o && o->chunk_max ? o->chunk_max : DEFAULT_MAX,
                .tree_min = TREE_MIN,
                .tree_avg = TREE_AVG,
                .tree_max = TREE_MAX,
                .level = o && o->level ? o->level : DEFAULT_LEVEL,
                .pack_size = o && o->pack_size ? o->pack_size : DEFAULT_PACK_SIZE,
                .page_size = o && o->page_size ? o->page_size : PAGES_AUTO,
                .page_chunk = o && o->page_chunk ? o->page_chunk : DEFAULT_PAGE_CHUNK,
                .record_size = o && o->record_size ? o->record_size : RECORD_SIZE_DEFAULT,
                .format = REPO_FORMAT,
        };
        struct chunker test;
        uint8_t rnd[16];

        if (chunker_init(&test, c.min, c.avg, c.max, 0) < 0)
                return error_set(EINVAL, "chunk sizes %u/%u/%u are invalid: need min < avg < max, avg a power of two",
                                 c.min, c.avg, c.max);
        if (c.page_chunk > PAGE_CHUNK_MAX)
                return error_set(EINVAL, "%u pages per chunk is out of range 1..%d", c.page_chunk, PAGE_CHUNK_MAX);
        if (c.level < 1 || c.level > 19)
                return error_set(EINVAL, "compression level %d is out of range 1..19", c.level);
        if (c.pack_size < PACK_SIZE_MIN || c.pack_size > PACK_SIZE_MAX)
                return error_set(EINVAL, "pack size %llu is out of range 1M..2G",
                                 (unsigned long long)c.pack_size);
        if (c.record_size < RECORD_SIZE_MIN || c.record_size > RECORD_SIZE_MAX)
                return error_set(EINVAL, "record size %u is out of range 16K..4M", c.record_size);
        if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
                return error_set(errno, "cannot get random bytes: %s", strerror(errno));
        hex_encode(rnd, 8, c.id);
        memcpy(&c.seed, rnd + 8, sizeof c.seed);
        if (o && o->password) {
                c.encrypted = true;
                snprintf(c.cipher, sizeof c.cipher, "%s", crypto_default_cipher());
        }
        *ret = c;
        return 0;
}

/* Writes config, only if absent: two inits cannot both win. */
static int config_publish(struct backend *be, const struct repo_config *c)
{
        _cleanup_free_ char *text = config_to_json(c);
        int r = backend_put(be, "config", text, strlen(text));
        if (r == -EEXIST || r == 0)
                return error_set(EEXIST, "%s already holds a repository", be->where);
        if (r < 0)
                return error_message() ? r : error_set(r, "cannot write %s/config: %s", be->where, berth_strerror(r));
        return 0;
}

int repo_init(const char *path, const struct repo_init_options *o)
{
        struct repo_config c;
        int r = config_make(o, &c);
        if (r < 0)
                return r;

        /* A local repository: its directory, with packs/, snapshots/ and
         * the spool tmp/. */
        r = backend_local_init(path);
        if (r < 0)
                return r;
        _cleanup_(backend_freep) struct backend *be = NULL;
        r = backend_local_open(path, true, &be);
        if (r < 0)
                return error_set(r, "cannot open %s: %s", path, berth_strerror(r));
        uint64_t size;
        if (backend_stat(be, "config", &size) == 0)
                return error_set(EEXIST, "%s already holds a repository", path);

        if (c.encrypted) {
                /* The key first: a config without one would be a
                 * repository nothing can open.  The catalog of an
                 * encrypted repository is a cache outside it, made on first
                 * open. */
                r = repo_init_key(be, path, c.id, c.cipher, o->password);
                if (r < 0)
                        return r;
        } else {
                _cleanup_free_ char *dbpath = xasprintf("%s/catalog.db", path);
                struct catalog *cat;
                r = catalog_open(dbpath, true, &cat);
                if (r == 0)
                        r = catalog_close(cat);
                if (r < 0)
                        return r;
        }

        /* config last: its presence is what makes the directory a
         * repository. */
        return config_publish(be, &c);
}

int repo_init_backend(struct backend *be, const struct repo_init_options *o)
{
        struct repo_config c;
        int r = config_make(o, &c);
        if (r == 0 && c.encrypted)
                /* the key first, as repo_init() does */
                r = repo_init_key(be, be->where, c.id, c.cipher, o->password);
        return r < 0 ? r : config_publish(be, &c);
}

/* The lock file holds two one-byte POSIX record locks:
 *
 *   byte 0, "maintenance": readers and writers take it shared; catalog
 *           rebuild (and a future prune) takes it exclusive, because it
 *           replaces what everyone else reads.
 *   byte 1, "writer": writers (backup, import, recover) take it
 *           exclusive, so one at a time adds packs and runs recovery.
 *           Readers never touch it, so a long restore, export or
 *           `volumes` never stops the nightly backup.
 *
 * Record locks are released by the kernel when the process dies, however
 * it dies, and F_GETLK names the holder.  A berth from before this layout
 * locks the whole file, which conflicts with both bytes: old and new
 * exclude each other as each expects. */
enum { LOCK_MAINTENANCE = 0, LOCK_WRITER = 1 };

static int lock_range(int fd, int cmd, short type, off_t start)
{
        struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = 1 };
        if (fcntl(fd, cmd, &fl) < 0)
                return -errno;
        return cmd == F_GETLK ? (fl.l_type == F_UNLCK ? 0 : fl.l_pid) : 0;
}

static int open_lock_file(struct repo *r, enum repo_mode mode)
{
        r->lockfd = openat(r->local_dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (r->lockfd >= 0)
                return 0;
        if (mode != REPO_READ)
                return error_set(errno, "cannot open %s/lock: %s", r->path, strerror(errno));
        /* A shared lock needs only a descriptor open for reading. */
        r->lockfd = openat(r->local_dirfd, "lock", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (r->lockfd >= 0)
                return 0;
        if (errno == EROFS || errno == EACCES || errno == EPERM || errno == ENOENT) {
                /* Read-only media: nothing can write there, so there is
                 * nothing to be protected from. */
                log_debug("reading %s without a lock: cannot create %s/lock: %s", r->path, r->path, strerror(errno));
                return 0;
        }
        return error_set(errno, "cannot open %s/lock: %s", r->path, strerror(errno));
}

static int take_lock(struct repo *r, enum repo_mode mode, uint64_t wait)
{
        int k = open_lock_file(r, mode);
        if (k < 0 || r->lockfd < 0)
                return k;

        short maint = mode == REPO_REBUILD ? F_WRLCK : F_RDLCK;
        bool have_maint = false, have_writer = mode != REPO_WRITE;
        int64_t deadline = mono_ns() + (int64_t)wait * 1000000000;
        for (;;) {
                off_t blocked = -1;
                short type = F_UNLCK;
                if (!have_maint) {
                        k = lock_range(r->lockfd, F_SETLK, maint, LOCK_MAINTENANCE);
                        if (k == 0)
                                have_maint = true;
                        else
                                blocked = LOCK_MAINTENANCE, type = maint;
                }
                if (have_maint && !have_writer) {
                        k = lock_range(r->lockfd, F_SETLK, F_WRLCK, LOCK_WRITER);
                        if (k == 0)
                                have_writer = true;
                        else
                                blocked = LOCK_WRITER, type = F_WRLCK;
                }
                if (have_maint && have_writer)
                        return 0;
                if (k != -EAGAIN && k != -EACCES)
                        return error_set(-k, "cannot lock %s: %s", r->path, strerror(-k));
                if (mono_ns() >= deadline) {
                        int pid = lock_range(r->lockfd, F_GETLK, type, blocked);
                        const char *why = blocked == LOCK_WRITER ? "another backup or import is writing to it"
                                          : mode == REPO_REBUILD ? "another berth is using it"
                                                                 : "its catalog is being rebuilt";
                        return error_set(BERTH_ELOCKED,
                                         "repository %s is locked by pid %d (%s); wait for it to finish, or "
                                         "pass --lock-wait SECONDS",
                                         r->path, pid > 0 ? pid : 0, why);
                }
                struct timespec ts = { 0, 200 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
}

int repo_store(struct repo *r, struct store **ret)
{
        if (!r->writable)
                return error_set(EROFS, "the repository is open read-only");
        if (!r->store) {
                int k = store_open(r, true, &r->store);
                if (k < 0)
                        return k;
        }
        *ret = r->store;
        return 0;
}

int snapshot_flush(struct repo *r)
{
        struct store *s = NULL;
        int k = repo_store(r, &s);
        return k < 0 ? k : store_flush(s);
}

int repo_close(struct repo *r)
{
        if (!r)
                return 0;
        /* Under the repository's lock still: the catalog is on disk before
         * the next writer may start. */
        store_free(r->store);
        r->store = NULL;
        int k = catalog_close(r->catalog);
        r->catalog = NULL;
        repo_free(r);
        return k;
}

void repo_free(struct repo *r)
{
        if (!r)
                return;
        store_free(r->store);
        catalog_free(r->catalog);
        crypto_keys_free(r->keys);
        free(r->key_name);
        backend_free(r->be);
        if (r->spool_dirfd >= 0)
                close(r->spool_dirfd);
        if (r->lockfd >= 0)
                close(r->lockfd);
        if (r->local_dirfd >= 0)
                close(r->local_dirfd);
        for (size_t i = 0; i < r->ndamage; i++)
                free(r->damage[i]);
        free(r->damage);
        free(r->catalog_path);
        free(r->path);
        free(r);
}

struct catalog *repo_catalog(struct repo *r) { return r->catalog; }
void repo_set_level(struct repo *r, int level)
{
        if (level >= 1 && level <= 19)
                r->cfg.level = level;
}

char *repo_cache_dir(const char *id)
{
        const char *e = getenv("BERTH_CACHE_DIR");
        if (e && *e)
                return xasprintf("%s/%s", e, id);
        if (geteuid() == 0)
                return xasprintf("/var/cache/berth/%s", id);
        if ((e = getenv("XDG_CACHE_HOME")) && *e == '/')
                return xasprintf("%s/berth/%s", e, id);
        e = getenv("HOME");
        return xasprintf("%s/.cache/berth/%s", e && *e ? e : "/tmp", id);
}

int repo_open(const char *path, enum repo_mode mode, uint64_t lock_wait, struct repo **ret)
{
        return repo_open_flags(path, mode, lock_wait, 0, ret);
}

int repo_open_flags(const char *path, enum repo_mode mode, uint64_t lock_wait, unsigned flags, struct repo **ret)
{
        struct repo *r = xcalloc(1, sizeof *r);
        struct buf b = { 0 };
        int k;

        r->path = xstrdup(path);
        r->local_dirfd = r->spool_dirfd = r->lockfd = -1;
        r->writable = mode != REPO_READ;

        k = backend_local_open(path, r->writable, &r->be);
        if (k == 0) {
                /* The local state of a local repository: its own directory. */
                r->local_dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                k = r->local_dirfd < 0 ? -errno : 0;
        }
        if (k < 0) {
                k = error_set(k, "cannot open repository %s: %s%s", path, berth_strerror(k),
                              k == -ENOENT ? " (create it with 'berth init')" : "");
                goto fail;
        }
        k = backend_get(r->be, "config", 1 << 20, &b);
        if (k < 0) {
                k = error_set(k == -ENOENT ? BERTH_ENOTFOUND : k, "%s is not a Berth repository (%s); create one with 'berth init'",
                              path, k == -ENOENT ? "no config file" : berth_strerror(k));
                goto fail;
        }
        buf_putc(&b, 0);
        k = config_parse(path, &b, &r->cfg);
        buf_free(&b);
        if (k < 0)
                goto fail;
        if (chunker_init(&r->chunker, r->cfg.min, r->cfg.avg, r->cfg.max, r->cfg.seed) < 0 ||
            chunker_init(&r->tree_chunker, r->cfg.tree_min, r->cfg.tree_avg, r->cfg.tree_max, r->cfg.seed) < 0) {
                k = error_set(BERTH_ECORRUPT, "%s/config: invalid chunker parameters", path);
                goto fail;
        }
        if (r->cfg.encrypted && !(flags & REPO_OPEN_KEYLESS)) {
                /* Its catalog, lock and spool are a local cache outside the
                 * repository, as for a remote one: nothing readable is kept
                 * beside the ciphertext. */
                _cleanup_free_ char *state = repo_cache_dir(r->cfg.id);
                struct backend *be = TAKE_PTR(r->be);
                repo_free(r);
                return repo_open_backend_flags(be, state, mode, lock_wait, flags, ret);
        }
        if (flags & REPO_OPEN_KEY_ONLY) {
                *ret = r; /* a plain repository: there is no key */
                return 0;
        }
        k = take_lock(r, mode, lock_wait);
        if (k < 0)
                goto fail;
        r->spool_dirfd = openat(r->local_dirfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (r->spool_dirfd < 0 && r->writable) {
                k = error_set(errno, "cannot open %s/tmp: %s", path, strerror(errno));
                goto fail;
        }

        if (r->cfg.encrypted) {
                /* Keyless (serve): objects only, no catalog. */
                *ret = r;
                return 0;
        }
        r->catalog_path = xasprintf("%s/catalog.db", path);
        const char *dbpath = r->catalog_path;
        bool missing = faccessat(r->local_dirfd, "catalog.db", F_OK, 0) < 0;
        if (missing && mode == REPO_READ) {
                k = error_set(BERTH_ENOTFOUND, "%s has no catalog.db; recreate it from the packs with 'berth catalog rebuild'",
                              path);
                goto fail;
        }
        /* A rebuild replaces the catalog, which may be missing or damaged. */
        if (mode == REPO_READ) {
                /* Readers change nothing but the quiesce journal; where the
                 * repository cannot be written at all, the catalog is opened
                 * read-only, or even as immutable. */
                bool frozen = faccessat(r->local_dirfd, ".", W_OK, AT_EACCESS) < 0;
                k = catalog_open_reader(dbpath, frozen, &r->catalog);
                if (k < 0)
                        goto fail;
        } else if (mode == REPO_WRITE) {
                k = catalog_open(dbpath, true, &r->catalog);
                if (k < 0)
                        goto fail;
        }
        if (mode == REPO_WRITE) {
                /* A catalog this writer had to create is a rebuild:
                 * everything on disk is indexed. */
                k = repo_recover_open(r, missing);
                if (k < 0)
                        goto fail;
        }
        *ret = r;
        return 0;
fail:
        repo_free(r);
        return k;
}

/* ---- a repository elsewhere, with a local cache ------------------------------------ */

static int collect_name(void *ud, const char *name, uint64_t size)
{
        struct object_list *l = ud;
        if (l->n == l->cap) {
                l->cap = l->cap ? 2 * l->cap : 64;
                l->v = xrealloc(l->v, l->cap * sizeof *l->v);
        }
        l->v[l->n++] = (struct listed_object){ xstrdup(name), size };
        return 0;
}

static int cmp_name(const void *a, const void *b)
{
        return strcmp(((const struct listed_object *)a)->name, ((const struct listed_object *)b)->name);
}

static bool names_has(const struct object_list *l, const char *name)
{
        struct listed_object key = { .name = (char *)name };
        return l->n > 0 && bsearch(&key, l->v, l->n, sizeof *l->v, cmp_name) != NULL;
}

static void object_list_clear(struct object_list *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i].name);
        free(l->v);
        *l = (struct object_list){ 0 };
}

struct stale_state {
        const struct object_list *objects;
        bool stale;
};

static int check_pack(void *ud, int64_t id, const uint8_t hash[CATALOG_HASH_LEN], uint64_t size, uint32_t nchunks)
{
        struct stale_state *st = ud;
        char name[96];
        (void)id, (void)size, (void)nchunks;
        pack_path(hash, name, sizeof name);
        if (!names_has(st->objects, name)) {
                log_debug("the cache lists %s, which is gone", name);
                st->stale = true;
        }
        return 0;
}

/* Whether the cached catalog lists a pack or a snapshot the backend no
 * longer has (pruned, or another repository under the same id); `objects`
 * is what the backend lists, sorted. */
static int cache_stale(struct repo *r, const struct object_list *objects, bool *ret)
{
        struct stale_state st = { .objects = objects };
        int k = catalog_pack_foreach(r->catalog, check_pack, &st);
        if (k > 0)
                k = 0;
        struct catalog_snapshot *snaps = NULL;
        size_t n = 0;
        if (k == 0 && !st.stale && (k = catalog_snapshot_list(r->catalog, NULL, &snaps, &n)) == 0) {
                for (size_t i = 0; i < n && !st.stale; i++) {
                        _cleanup_free_ char *name = xasprintf("snapshots/%s", snaps[i].id);
                        st.stale = !names_has(objects, name);
                }
                catalog_snapshot_list_free(snaps, n);
        }
        *ret = st.stale;
        return k;
}

struct condemned_state {
        const struct object_list *markers;
        int64_t *ids;
        size_t n, cap;
};

static int find_condemned(void *ud, int64_t id, const uint8_t hash[CATALOG_HASH_LEN], uint64_t size, uint32_t nchunks)
{
        struct condemned_state *st = ud;
        char name[16 + 2 * CATALOG_HASH_LEN];
        (void)size, (void)nchunks;
        memcpy(name, "condemned/", 10);
        hex_encode(hash, CATALOG_HASH_LEN, name + 10);
        if (names_has(st->markers, name)) {
                if (st->n == st->cap) {
                        st->cap = st->cap ? 2 * st->cap : 16;
                        st->ids = xrealloc(st->ids, st->cap * sizeof *st->ids);
                }
                st->ids[st->n++] = id;
        }
        return 0;
}

/* Shared object storage: a prune elsewhere published condemned/<hash> for
 * packs it will delete after its grace period; the cache stops
 * deduplicating against them (their chunk rows go) as that prune's own
 * catalog did. */
static int cache_condemn(struct repo *r)
{
        struct object_list markers = { 0 };
        struct condemned_state st = { .markers = &markers };
        int k = repo_list_objects(r, "condemned/", collect_name, &markers);
        if (k == 0 && markers.n) {
                if (markers.n > 1)
                        qsort(markers.v, markers.n, sizeof *markers.v, cmp_name);
                k = catalog_pack_foreach(r->catalog, find_condemned, &st);
                if (k > 0)
                        k = 0;
        }
        if (k == 0 && st.n) {
                k = catalog_begin(r->catalog);
                for (size_t i = 0; i < st.n && k == 0; i++) {
                        int64_t n = catalog_pack_condemn(r->catalog, st.ids[i], now_ns() / 1000000000);
                        k = n < 0 ? (int)n : 0;
                }
                if (k == 0)
                        k = catalog_commit(r->catalog);
                else
                        catalog_rollback(r->catalog);
                log_debug("%zu pack(s) of %s are condemned by a prune: not deduplicated against", st.n, r->path);
        }
        object_list_clear(&markers);
        free(st.ids);
        return k;
}

static void unlink_catalog(int dfd)
{
        static const char *const names[] = { "catalog.db", "catalog.db-wal", "catalog.db-shm", "catalog.db-journal" };
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                unlinkat(dfd, names[i], 0);
}

/* Brings the cached catalog up to date with the backend, with one
 * listing of its objects.  Needs the cache's writer lock. */
static int cache_sync(struct repo *r)
{
        _cleanup_(object_list_clear) struct object_list objects = { 0 };
        bool stale = false;
        /* One LIST of everything: packs/, snapshots/ and the few others. */
        int k = backend_list(r->be, "", collect_name, &objects);
        if (k < 0)
                return error_message() ? k : error_set(k, "cannot list %s: %s", r->path, berth_strerror(k));
        if (objects.n > 1)
                qsort(objects.v, objects.n, sizeof *objects.v, cmp_name);
        k = catalog_open(r->catalog_path, true, &r->catalog);
        if (k == 0)
                k = cache_stale(r, &objects, &stale);
        if (k == 0 && stale) {
                log_debug("the cache of %s lists objects that are gone: rebuilding it", r->path);
                catalog_free(r->catalog);
                r->catalog = NULL;
                unlink_catalog(r->local_dirfd);
                k = catalog_open(r->catalog_path, true, &r->catalog);
        }
        if (k < 0)
                return k;
        r->listing = &objects;
        k = repo_recover_open(r, true);
        if (k == 0)
                k = cache_condemn(r);
        r->listing = NULL;
        return k;
}

int repo_open_backend(struct backend *be, const char *state_dir, enum repo_mode mode, uint64_t lock_wait,
                      struct repo **ret)
{
        return repo_open_backend_flags(be, state_dir, mode, lock_wait, 0, ret);
}

int repo_open_backend_flags(struct backend *be, const char *state_dir, enum repo_mode mode, uint64_t lock_wait,
                            unsigned flags, struct repo **ret)
{
        struct repo *r = xcalloc(1, sizeof *r);
        struct buf b = { 0 };
        int k;

        r->path = xstrdup(be->where);
        r->be = be;
        r->cached = true;
        r->local_dirfd = r->spool_dirfd = r->lockfd = -1;
        r->writable = mode != REPO_READ;

        k = backend_get(r->be, "config", 1 << 20, &b);
        if (k < 0) {
                k = error_set(k == -ENOENT ? BERTH_ENOTFOUND : k, "%s is not a Berth repository (%s)", r->path,
                              k == -ENOENT ? "no config file" : berth_strerror(k));
                goto fail;
        }
        buf_putc(&b, 0);
        k = config_parse(r->path, &b, &r->cfg);
        buf_free(&b);
        if (k < 0)
                goto fail;
        if (chunker_init(&r->chunker, r->cfg.min, r->cfg.avg, r->cfg.max, r->cfg.seed) < 0 ||
            chunker_init(&r->tree_chunker, r->cfg.tree_min, r->cfg.tree_avg, r->cfg.tree_max, r->cfg.seed) < 0) {
                k = error_set(BERTH_ECORRUPT, "%s/config: invalid chunker parameters", r->path);
                goto fail;
        }
        /* The password first: a wrong one leaves no trace, not even the cache. */
        k = repo_unlock(r);
        if (k < 0)
                goto fail;
        if (flags & REPO_OPEN_KEY_ONLY) {
                *ret = r;
                return 0;
        }
        k = mkdir_p(state_dir, 0700);
        if (k < 0 && k != -EEXIST) {
                k = error_set(k, "cannot create %s: %s", state_dir, berth_strerror(k));
                goto fail;
        }
        r->local_dirfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (r->local_dirfd < 0 || (mkdirat(r->local_dirfd, "tmp", 0700) < 0 && errno != EEXIST)) {
                k = error_set(errno, "cannot open %s: %s", state_dir, strerror(errno));
                goto fail;
        }
        k = take_lock(r, mode, lock_wait);
        if (k < 0)
                goto fail;
        r->spool_dirfd = openat(r->local_dirfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (r->spool_dirfd < 0) {
                k = error_set(errno, "cannot open %s/tmp: %s", state_dir, strerror(errno));
                goto fail;
        }
        r->catalog_path = xasprintf("%s/catalog.db", state_dir);
        if (mode == REPO_WRITE)
                k = cache_sync(r);
        else if (mode == REPO_READ) {
                /* A reader updates the cache when no writer here is at it
                 * (the writer's byte, only while it syncs); else the cache
                 * as it is will do, if there is one. */
                bool have = lock_range(r->lockfd, F_SETLK, F_WRLCK, LOCK_WRITER) == 0;
                if (have) {
                        k = cache_sync(r);
                        lock_range(r->lockfd, F_SETLK, F_UNLCK, LOCK_WRITER);
                } else if (faccessat(r->local_dirfd, "catalog.db", F_OK, 0) == 0)
                        k = catalog_open(r->catalog_path, false, &r->catalog);
                else
                        k = error_set(BERTH_ELOCKED, "the local cache of %s (%s) is being built by another berth; "
                                                     "try again when it is done",
                                      r->path, state_dir);
        }
        if (k < 0)
                goto fail;
        *ret = r;
        return 0;
fail:
        repo_free(r);
        return k;
}
