/* repo.c — creating, opening, locking and repairing a repository. */
#include <dirent.h>
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
/* One range for init and for every later open, so init cannot make a
 * repository that nothing can open. */
#define PACK_SIZE_MIN (1ULL << 20)
#define PACK_SIZE_MAX (1ULL << 31)

static const char *const repo_dirs[] = { "packs", "snapshots", "tmp" };

static char *config_to_json(const struct repo_config *c)
{
        json_object *o = json_object_new_object();
        json_object *ch = json_object_new_object(), *tr = json_object_new_object();
        char seed[17];

        snprintf(seed, sizeof seed, "%016llx", (unsigned long long)c->seed);
        json_object_object_add(o, "format", json_object_new_int(REPO_FORMAT));
        json_object_object_add(o, "id", json_object_new_string(c->id));
        json_object_object_add(o, "hash", json_object_new_string("sha256"));
        json_object_object_add(o, "compression", json_object_new_string("zstd"));
        json_object_object_add(o, "level", json_object_new_int(c->level));
        json_object_object_add(o, "pack_size", json_object_new_int64((int64_t)c->pack_size));
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
        json_object *ch = NULL, *tr = NULL, *v;
        int r = 0;

        if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return error_set(BERTH_ECORRUPT, "%s/config is not a Berth repository configuration", path);
        }
        int64_t format = jint(o, "format", -1);
        if (format != REPO_FORMAT) {
                json_object_put(o);
                return error_set(BERTH_EFORMAT,
                                 "repository %s has format version %lld; this berth reads format %d only: "
                                 "use a berth release that matches it",
                                 path, (long long)format, REPO_FORMAT);
        }
        json_object_object_get_ex(o, "chunker", &ch);
        json_object_object_get_ex(o, "tree_chunker", &tr);
        *c = (struct repo_config){
                .min = (uint32_t)jint(ch, "min", 0),
                .avg = (uint32_t)jint(ch, "avg", 0),
                .max = (uint32_t)jint(ch, "max", 0),
                .tree_min = (uint32_t)jint(tr, "min", TREE_MIN),
                .tree_avg = (uint32_t)jint(tr, "avg", TREE_AVG),
                .tree_max = (uint32_t)jint(tr, "max", TREE_MAX),
                .level = (int)jint(o, "level", DEFAULT_LEVEL),
                .pack_size = (uint64_t)jint(o, "pack_size", DEFAULT_PACK_SIZE),
        };
        if (json_object_object_get_ex(o, "id", &v) && json_object_is_type(v, json_type_string))
                snprintf(c->id, sizeof c->id, "%s", json_object_get_string(v));
        if (ch && json_object_object_get_ex(ch, "seed", &v) && json_object_is_type(v, json_type_string))
                c->seed = strtoull(json_object_get_string(v), NULL, 16);
        if (c->pack_size < PACK_SIZE_MIN || c->pack_size > PACK_SIZE_MAX)
                r = error_set(BERTH_ECORRUPT, "%s/config: pack_size out of range", path);
        json_object_put(o);
        return r;
}

int repo_init(const char *path, const struct repo_init_options *o)
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
        };
        struct chunker test;
        uint8_t rnd[16];
        int r;

        if (chunker_init(&test, c.min, c.avg, c.max, 0) < 0)
                return error_set(EINVAL, "chunk sizes %u/%u/%u are invalid: need min < avg < max, avg a power of two",
                                 c.min, c.avg, c.max);
        if (c.level < 1 || c.level > 19)
                return error_set(EINVAL, "compression level %d is out of range 1..19", c.level);
        if (c.pack_size < PACK_SIZE_MIN || c.pack_size > PACK_SIZE_MAX)
                return error_set(EINVAL, "pack size %llu is out of range 1M..2G",
                                 (unsigned long long)c.pack_size);
        if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
                return error_set(errno, "cannot get random bytes: %s", strerror(errno));
        hex_encode(rnd, 8, c.id);
        memcpy(&c.seed, rnd + 8, sizeof c.seed);

        r = mkdir_p(path, 0700);
        if (r < 0)
                return error_set(r, "cannot create %s: %s", path, berth_strerror(r));
        _cleanup_close_ int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return error_set(errno, "cannot open %s: %s", path, strerror(errno));
        if (faccessat(dfd, "config", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                return error_set(EEXIST, "%s already holds a repository", path);
        for (size_t i = 0; i < ELEMENTSOF(repo_dirs); i++)
                if (mkdirat(dfd, repo_dirs[i], 0700) < 0 && errno != EEXIST)
                        return error_set(errno, "cannot create %s/%s: %s", path, repo_dirs[i], strerror(errno));

        _cleanup_free_ char *dbpath = xasprintf("%s/catalog.db", path);
        struct catalog *cat;
        r = catalog_open(dbpath, true, &cat);
        if (r < 0)
                return r;
        catalog_free(cat);

        /* config last: its presence is what makes the directory a repository. */
        _cleanup_free_ char *text = config_to_json(&c);
        r = write_file_atomic(dfd, "config", text, strlen(text), 0644);
        if (r < 0)
                return error_set(r, "cannot write %s/config: %s", path, berth_strerror(r));
        return fsync_dirfd(dfd);
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
        r->lockfd = openat(r->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (r->lockfd >= 0)
                return 0;
        if (mode != REPO_READ)
                return error_set(errno, "cannot open %s/lock: %s", r->path, strerror(errno));
        /* A shared lock needs only a descriptor open for reading. */
        r->lockfd = openat(r->dirfd, "lock", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
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

void repo_free(struct repo *r)
{
        if (!r)
                return;
        store_free(r->store);
        catalog_free(r->catalog);
        if (r->tmp_dirfd >= 0)
                close(r->tmp_dirfd);
        if (r->lockfd >= 0)
                close(r->lockfd);
        if (r->dirfd >= 0)
                close(r->dirfd);
        free(r->path);
        free(r);
}

struct catalog *repo_catalog(struct repo *r) { return r->catalog; }
void repo_set_level(struct repo *r, int level)
{
        if (level >= 1 && level <= 19)
                r->cfg.level = level;
}

int repo_open(const char *path, enum repo_mode mode, uint64_t lock_wait, struct repo **ret)
{
        struct repo *r = xcalloc(1, sizeof *r);
        _cleanup_free_ char *dbpath = NULL;
        struct buf b = { 0 };
        int k;

        r->path = xstrdup(path);
        r->dirfd = r->tmp_dirfd = r->lockfd = -1;
        r->writable = mode != REPO_READ;

        r->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (r->dirfd < 0) {
                k = error_set(errno, "cannot open repository %s: %s%s", path, strerror(errno),
                              errno == ENOENT ? " (create it with 'berth init')" : "");
                goto fail;
        }
        k = read_file_at(r->dirfd, "config", 1 << 20, &b);
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
        k = take_lock(r, mode, lock_wait);
        if (k < 0)
                goto fail;
        r->tmp_dirfd = openat(r->dirfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (r->tmp_dirfd < 0 && r->writable) {
                k = error_set(errno, "cannot open %s/tmp: %s", path, strerror(errno));
                goto fail;
        }

        dbpath = xasprintf("%s/catalog.db", path);
        bool missing = faccessat(r->dirfd, "catalog.db", F_OK, 0) < 0;
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
                bool frozen = faccessat(r->dirfd, ".", W_OK, AT_EACCESS) < 0;
                k = catalog_open_reader(dbpath, frozen, &r->catalog);
                if (k < 0)
                        goto fail;
        } else if (mode == REPO_WRITE) {
                k = catalog_open(dbpath, true, &r->catalog);
                if (k < 0)
                        goto fail;
        }
        if (mode == REPO_WRITE) {
                struct store *s;
                k = store_open(r, false, &s);
                if (k == 0) {
                        /* A catalog this writer had to create is a rebuild:
                         * everything on disk is indexed. */
                        k = repo_recover(r, s, missing);
                        store_free(s);
                }
                if (k < 0)
                        goto fail;
        }
        *ret = r;
        return 0;
fail:
        repo_free(r);
        return k;
}

/* ---- recovery ------------------------------------------------------------------ */

/* catalog rebuild builds its new catalog in tmp/ under this name. */
#define REBUILD_NAME "catalog-rebuild.db"

/* Removes everything in tmp/ but, when `keep` is set, the files whose name
 * starts with it. */
static int clean_tmp(struct repo *r, const char *keep)
{
        /* Holding the writer lock, anything in tmp/ belongs to a writer
         * that died: only writers use tmp/ (readers, running alongside,
         * never do), and there is one writer at a time. */
        int fd = dup(r->tmp_dirfd);
        if (fd < 0)
                return -errno;
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -errno;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2])))
                        continue;
                if (keep && strncmp(de->d_name, keep, strlen(keep)) == 0)
                        continue;
                rm_rf_at(r->tmp_dirfd, de->d_name);
        }
        closedir(d);
        return 0;
}

/* Calls fn for every regular file in dirfd/sub whose name is 64 hex digits;
 * other files whose name ends in ".tmp" are removed when `clean`. */
static int foreach_hex_file(int parent, const char *sub, bool clean, int (*fn)(void *ud, int fd, const char *name),
                            void *ud)
{
        int fd = openat(parent, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -errno;
        }
        struct dirent *de;
        int k = 0;
        while (k >= 0 && (de = readdir(d))) {
                size_t len = strlen(de->d_name);
                if (len == 2 * HASH_LEN && is_hex(de->d_name))
                        k = fn(ud, dirfd(d), de->d_name);
                else if (clean && len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0)
                        unlinkat(dirfd(d), de->d_name, 0);
        }
        closedir(d);
        return k;
}

struct recover_state {
        struct repo *repo;
        bool all;               /* index every snapshot file, announced or not */
        char **intents;         /* ids this repository's writers announced */
        size_t nintents;
        uint64_t packs;
        struct snapfile *snaps;
        size_t nsnaps, cap;
};

static int recover_pack(void *ud, int dfd, const char *name)
{
        struct recover_state *st = ud;
        struct catalog *c = st->repo->catalog;
        uint8_t hash[HASH_LEN];
        struct pack_entry *entries = NULL;
        size_t n = 0;
        int64_t pack_id;
        struct stat sb;

        if (hex_decode(name, hash, HASH_LEN) < 0)
                return 0;
        int k = catalog_pack_known(c, hash);
        if (k != 0)
                return k < 0 ? k : 0;
        _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))
                return 0;
        uint8_t actual[HASH_LEN];
        if (pack_read_trailer(fd, (uint64_t)sb.st_size, name, &entries, &n, actual) < 0 ||
            memcmp(actual, hash, HASH_LEN) != 0) {
                /* Left for `check` to report; recovery does not delete data. */
                log_debug("not indexing pack %s: %s", name, error_message() ? error_message() : "name mismatch");
                error_clear();
                free(entries);
                return 0;
        }
        k = catalog_begin(c);
        if (k == 0)
                k = catalog_pack_add(c, hash, (uint64_t)sb.st_size, (uint32_t)n, &pack_id);
        for (size_t i = 0; k >= 0 && i < n; i++) {
                struct catalog_chunk ch = { .pack = pack_id, .offset = entries[i].offset,
                                            .stored_len = entries[i].stored_len, .raw_len = entries[i].raw_len,
                                            .flags = entries[i].flags };
                memcpy(ch.id, entries[i].id, HASH_LEN);
                k = catalog_chunk_add(c, &ch);
        }
        free(entries);
        if (k < 0) {
                catalog_rollback(c);
                return k;
        }
        k = catalog_commit(c);
        if (k < 0)
                return k;
        st->packs++;
        return 0;
}

static int recover_pack_dir(void *ud, int dfd, const char *name);

static int foreach_pack_subdir(struct recover_state *st)
{
        int fd = openat(st->repo->dirfd, "packs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -errno;
        }
        struct dirent *de;
        int k = 0;
        while (k >= 0 && (de = readdir(d)))
                if (strlen(de->d_name) == 2 && is_hex(de->d_name))
                        k = recover_pack_dir(st, dirfd(d), de->d_name);
        closedir(d);
        return k;
}

static int recover_pack_dir(void *ud, int dfd, const char *name)
{
        return foreach_hex_file(dfd, name, false, recover_pack, ud);
}

static int collect_snapshot(void *ud, int dfd, const char *name)
{
        struct recover_state *st = ud;
        int k = catalog_snapshot_known(st->repo->catalog, name);
        if (k != 0)
                return k < 0 ? k : 0;
        if (!st->all) {
                bool announced = false;
                for (size_t i = 0; i < st->nintents && !announced; i++)
                        announced = strcmp(st->intents[i], name) == 0;
                if (!announced) {
                        /* Not written by a writer of this repository (planted,
                         * or copied in): data, not instructions.  It is not
                         * even read; `catalog rebuild` indexes it on purpose. */
                        log_debug("not indexing snapshots/%s: no writer of this repository announced it; "
                                  "'berth catalog rebuild' indexes it",
                                  name);
                        return 0;
                }
        }
        struct snapfile f = { 0 };
        if (snapfile_read(st->repo, name, &f) < 0) {
                log_debug("not indexing snapshot %s: %s", name, error_message());
                error_clear();
                return 0;
        }
        if (st->nsnaps == st->cap) {
                st->cap = st->cap ? st->cap * 2 : 16;
                st->snaps = xrealloc(st->snaps, st->cap * sizeof *st->snaps);
        }
        st->snaps[st->nsnaps++] = f;
        return 0;
}

static int by_start(const void *a, const void *b)
{
        const struct snapfile *x = a, *y = b;
        if (x->info.started != y->info.started)
                return x->info.started < y->info.started ? -1 : 1;
        return strcmp(x->info.id, y->info.id);
}

int repo_recover(struct repo *r, struct store *s, bool all)
{
        struct recover_state st = { .repo = r, .all = all };
        int k;

        k = catalog_snapshot_intents(r->catalog, &st.intents, &st.nintents);
        if (k < 0)
                return k;
        /* A rebuild (`all`) is building its catalog in tmp/. */
        k = clean_tmp(r, all ? REBUILD_NAME : NULL);
        if (k < 0)
                return error_set(k, "cannot clean %s/tmp: %s", r->path, berth_strerror(k));
        k = foreach_pack_subdir(&st);
        if (k < 0)
                return error_message() ? k : error_set(k, "cannot list %s/packs: %s", r->path, berth_strerror(k));
        k = foreach_hex_file(r->dirfd, "snapshots", true, collect_snapshot, &st);
        if (k < 0)
                goto out;
        /* Oldest first, so each is compared with its true predecessor. */
        if (st.nsnaps > 1)
                qsort(st.snaps, st.nsnaps, sizeof *st.snaps, by_start);
        for (size_t i = 0; i < st.nsnaps && k >= 0; i++) {
                k = index_snapshot(r, s, &st.snaps[i]);
                if (k < 0 && (k == -BERTH_ECORRUPT || k == -BERTH_EHOSTILE)) {
                        log_debug("not indexing snapshot %s: %s", st.snaps[i].info.id, error_message());
                        error_clear();
                        k = 0;
                } else if (k >= 0)
                        r->recovered_snapshots++;
        }
        r->recovered_packs += st.packs;
        /* What is still announced now has no file (its writer died before
         * writing it) or a file that cannot be indexed: stop re-reading it. */
        for (size_t i = 0; i < st.nintents && k >= 0; i++)
                if (catalog_snapshot_known(r->catalog, st.intents[i]) == 0)
                        k = catalog_snapshot_intent_drop(r->catalog, st.intents[i]);
out:
        for (size_t i = 0; i < st.nsnaps; i++)
                snapfile_clear(&st.snaps[i]);
        free(st.snaps);
        catalog_id_list_free(st.intents, st.nintents);
        return k < 0 ? k : 0;
}

void repo_recovered(const struct repo *r, uint64_t *ret_packs, uint64_t *ret_snapshots)
{
        *ret_packs = r->recovered_packs;
        *ret_snapshots = r->recovered_snapshots;
}

/* ---- snapshot references --------------------------------------------------------- */

static int list_candidates(struct repo *r, const char *ref, struct catalog_snapshot *list, size_t n, int err)
{
        struct buf b = { 0 };
        char t[32];
        for (size_t i = 0; i < n && i < 10; i++) {
                char *line = xasprintf("%s  %.12s  %s  %s", i ? "," : "", list[i].id, list[i].name,
                                       format_time(list[i].started, t, sizeof t));
                buf_append(&b, line + (i ? 0 : 2), strlen(line + (i ? 0 : 2)));
                free(line);
        }
        buf_putc(&b, 0);
        int k = error_set(err, "'%s' matches %zu snapshots: %s; give more of the id", ref, n, (char *)b.data);
        buf_free(&b);
        return k;
}

static int names_hint(struct repo *r, const char *ref)
{
        struct catalog_snapshot *list;
        size_t n;
        struct buf b = { 0 };
        if (catalog_snapshot_list(r->catalog, NULL, &list, &n) < 0)
                return error_set(BERTH_ENOTFOUND, "no snapshot matches '%s'", ref);
        for (size_t i = 0; i < n; i++) {
                bool seen = false;
                for (size_t j = 0; j < i && !seen; j++)
                        seen = strcmp(list[j].name, list[i].name) == 0;
                if (seen)
                        continue;
                if (b.len)
                        buf_append(&b, ", ", 2);
                buf_append(&b, list[i].name, strlen(list[i].name));
        }
        buf_putc(&b, 0);
        int k = n ? error_set(BERTH_ENOTFOUND,
                              "no snapshot matches '%s'; snapshot names here: %s (use NAME, NAME@latest, "
                              "NAME@TIME or an id; 'berth snapshots' lists them)",
                              ref, (char *)b.data)
                  : error_set(BERTH_ENOTFOUND, "no snapshot matches '%s': the repository has no snapshots yet", ref);
        buf_free(&b);
        catalog_snapshot_list_free(list, n);
        return k;
}

int snapshot_resolve(struct repo *r, const char *ref, struct catalog_snapshot *ret)
{
        const char *at = strchr(ref, '@');
        int k;

        if (at) {
                _cleanup_free_ char *name = xstrndup(ref, (size_t)(at - ref));
                const char *spec = at + 1;
                int64_t before = INT64_MAX;
                if (strcmp(spec, "latest") != 0 && parse_time(spec, &before) < 0)
                        return error_set(EINVAL,
                                         "'%s': after '@' give 'latest' or a time such as 2026-11-22T10:00 "
                                         "(local) or 2026-11-22T09:00:00Z",
                                         ref);
                k = catalog_snapshot_latest(r->catalog, name, before, ret);
                if (k < 0)
                        return k;
                if (k == 0) {
                        if (catalog_snapshot_max_seq(r->catalog, name) > 0)
                                return error_set(BERTH_ENOTFOUND, "snapshot series '%s' has no snapshot at or before %s",
                                                 name, spec);
                        return names_hint(r, ref);
                }
                return 0;
        }

        /* A bare reference may be a name, an id prefix, or both: a volume
         * called 'cafe' or '2024' is also a plausible prefix.  Both lookups
         * run, and a reference that is both is refused rather than guessed. */
        struct catalog_snapshot named = { 0 };
        k = catalog_snapshot_latest(r->catalog, ref, INT64_MAX, &named);
        if (k < 0)
                return k;
        bool have_name = k > 0;
        struct catalog_snapshot *list = NULL;
        size_t n = 0;
        if (is_hex(ref) && strlen(ref) >= 4 && strlen(ref) <= 2 * HASH_LEN) {
                _cleanup_free_ char *lower = xstrdup(ref);
                for (char *p = lower; *p; p++)
                        if (*p >= 'A' && *p <= 'F')
                                *p = (char)(*p - 'A' + 'a');
                k = catalog_snapshot_by_prefix(r->catalog, lower, 11, &list, &n);
                if (k < 0) {
                        catalog_snapshot_clear(&named);
                        return k;
                }
        }
        /* The series' own newest snapshot may be the only one its name
         * prefixes: then both readings agree. */
        if (have_name && n == 1 && strcmp(list[0].id, named.id) == 0) {
                catalog_snapshot_list_free(list, n);
                list = NULL;
                n = 0;
        }
        if (have_name && n > 0) {
                char t[32], t2[32];
                k = error_set(BERTH_EAMBIGUOUS,
                              "'%s' is both the name of a snapshot series (newest %.12s, %s) and the start of the "
                              "id of %s%.12s (%s, %s); use '%s@latest' for the series, or give more of the id",
                              ref, named.id, format_time(named.started, t, sizeof t), n > 1 ? "several snapshots, e.g. " : "",
                              list[0].id, list[0].name, format_time(list[0].started, t2, sizeof t2), ref);
                catalog_snapshot_clear(&named);
                catalog_snapshot_list_free(list, n);
                return k;
        }
        if (have_name) {
                free(list);
                *ret = named;
                return 0;
        }
        if (n == 1) {
                *ret = list[0];
                free(list);
                return 0;
        }
        if (n > 1) {
                k = list_candidates(r, ref, list, n, BERTH_EAMBIGUOUS);
                catalog_snapshot_list_free(list, n);
                return k;
        }
        free(list);
        return names_hint(r, ref);
}

/* ---- catalog rebuild ---------------------------------------------------------------- */

/* The new catalog is built in tmp/ (REBUILD_NAME), where a rebuild killed
 * part-way leaves it for the next writer's clean_tmp(), and renamed over
 * catalog.db in one step: until then readers and writers see the old
 * catalog, whole. */

static void unlink_db_files(int dfd, const char *name)
{
        static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };
        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                _cleanup_free_ char *f = xasprintf("%s%s", name, suffixes[i]);
                unlinkat(dfd, f, 0);
        }
}

static int build_catalog(struct repo *r, const char *newpath, const char *oldpath, bool have_old)
{
        int k = catalog_open(newpath, true, &r->catalog);
        if (k < 0)
                return k;
        struct store *s;
        k = store_open(r, false, &s);
        if (k < 0)
                return k;
        k = repo_recover(r, s, true);
        store_free(s);
        if (k < 0 || !have_old)
                return k;
        /* The quiesce journal is not derived from packs: without it
         * `recover` could not find containers a crashed run left paused. */
        int64_t rows = 0;
        if (catalog_carry_table(r->catalog, oldpath, "quiesce_journal", &rows) < 0) {
                log_debug("the old catalog's quiesce journal cannot be read, not carried over: %s",
                          error_message());
                error_clear();
        } else
                log_debug("carried %lld quiesce journal row(s) into the new catalog", (long long)rows);
        return 0;
}

int repo_rebuild_catalog(struct repo *r, uint64_t *ret_packs, uint64_t *ret_snapshots)
{
        if (!r->writable)
                return error_set(EROFS, "the repository is open read-only");
        if (r->tmp_dirfd < 0)
                return error_set(ENOENT, "cannot open %s/tmp", r->path);
        catalog_free(r->catalog);
        r->catalog = NULL;
        _cleanup_free_ char *dbpath = xasprintf("%s/catalog.db", r->path);
        _cleanup_free_ char *newpath = xasprintf("%s/tmp/" REBUILD_NAME, r->path);
        unlink_db_files(r->tmp_dirfd, REBUILD_NAME);
        bool have_old = faccessat(r->dirfd, "catalog.db", F_OK, AT_SYMLINK_NOFOLLOW) == 0;
        uint64_t packs0 = r->recovered_packs, snaps0 = r->recovered_snapshots;

        int k = build_catalog(r, newpath, dbpath, have_old);
        if (k == 0) {
                struct catalog *c = TAKE_PTR(r->catalog);
                k = catalog_close_standalone(c);
        }
        _cleanup_close_ int fd = k < 0 ? -1 : openat(r->tmp_dirfd, REBUILD_NAME, O_RDONLY | O_CLOEXEC);
        if (k == 0 && (fd < 0 || fsync(fd) < 0))
                k = error_set(errno, "cannot write %s: %s", newpath, strerror(errno));
        if (k == 0) {
                /* A -wal left beside catalog.db would be replayed into the
                 * new file.  Empty it into the old catalog first, so that
                 * removing it loses nothing should we stop before the
                 * rename; a damaged or missing old catalog has nothing to
                 * lose. */
                if (have_old && catalog_checkpoint_path(dbpath) < 0) {
                        log_debug("cannot checkpoint the old catalog: %s", error_message());
                        error_clear();
                }
                unlinkat(r->dirfd, "catalog.db-wal", 0);
                unlinkat(r->dirfd, "catalog.db-shm", 0);
        }
        if (k == 0 && renameat(r->tmp_dirfd, REBUILD_NAME, r->dirfd, "catalog.db") < 0)
                k = error_set(errno, "cannot move the new catalog into place: %s", strerror(errno));
        if (k < 0) {
                catalog_free(r->catalog);
                r->catalog = NULL;
                unlink_db_files(r->tmp_dirfd, REBUILD_NAME);
                return k;
        }
        fsync_dirfd(r->dirfd);
        unlink_db_files(r->tmp_dirfd, REBUILD_NAME);
        k = catalog_open(dbpath, false, &r->catalog);
        if (k < 0)
                return k;
        *ret_packs = r->recovered_packs - packs0;
        *ret_snapshots = r->recovered_snapshots - snaps0;
        return 0;
}
