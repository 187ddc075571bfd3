/* repo.c — creating, opening, locking and repairing a repository. */
#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

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
        if (c->pack_size < (1u << 20) || c->pack_size > (1ULL << 31))
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

static int lock_holder(int fd, bool exclusive)
{
        struct flock fl = { .l_type = exclusive ? F_WRLCK : F_RDLCK, .l_whence = SEEK_SET };
        if (fcntl(fd, F_GETLK, &fl) < 0 || fl.l_type == F_UNLCK)
                return 0;
        return fl.l_pid;
}

static int take_lock(struct repo *r, bool exclusive, uint64_t wait)
{
        r->lockfd = openat(r->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (r->lockfd < 0 && !exclusive)
                r->lockfd = openat(r->dirfd, "lock", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (r->lockfd < 0)
                return error_set(errno, "cannot open %s/lock: %s", r->path, strerror(errno));

        /* POSIX record locks: released by the kernel when the process dies,
         * however it dies, and F_GETLK names the holder. */
        int64_t deadline = mono_ns() + (int64_t)wait * 1000000000;
        for (;;) {
                struct flock fl = { .l_type = exclusive ? F_WRLCK : F_RDLCK, .l_whence = SEEK_SET };
                if (fcntl(r->lockfd, F_SETLK, &fl) == 0)
                        return 0;
                if (errno != EAGAIN && errno != EACCES)
                        return error_set(errno, "cannot lock %s: %s", r->path, strerror(errno));
                if (mono_ns() >= deadline) {
                        int pid = lock_holder(r->lockfd, exclusive);
                        return error_set(BERTH_ELOCKED,
                                         "repository %s is locked by pid %d (%s); wait for it to finish, or "
                                         "pass --lock-wait SECONDS",
                                         r->path, pid, exclusive ? "another berth is using it" : "a backup is writing to it");
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
        k = take_lock(r, r->writable, lock_wait);
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
        if (mode != REPO_REBUILD) {
                k = catalog_open(dbpath, r->writable, &r->catalog);
                if (k < 0)
                        goto fail;
        }
        if (mode == REPO_WRITE) {
                struct store *s;
                k = store_open(r, false, &s);
                if (k == 0) {
                        k = repo_recover(r, s);
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

static int clean_tmp(struct repo *r)
{
        /* Holding the exclusive lock, anything in tmp/ belongs to a writer
         * that died. */
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

int repo_recover(struct repo *r, struct store *s)
{
        struct recover_state st = { .repo = r };
        int k;

        k = clean_tmp(r);
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
out:
        for (size_t i = 0; i < st.nsnaps; i++)
                snapfile_clear(&st.snaps[i]);
        free(st.snaps);
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

        if (is_hex(ref) && strlen(ref) >= 4 && strlen(ref) <= 2 * HASH_LEN) {
                struct catalog_snapshot *list;
                size_t n;
                _cleanup_free_ char *lower = xstrdup(ref);
                for (char *p = lower; *p; p++)
                        if (*p >= 'A' && *p <= 'F')
                                *p = (char)(*p - 'A' + 'a');
                k = catalog_snapshot_by_prefix(r->catalog, lower, 11, &list, &n);
                if (k < 0)
                        return k;
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
        }
        k = catalog_snapshot_latest(r->catalog, ref, INT64_MAX, ret);
        if (k < 0)
                return k;
        if (k == 0)
                return names_hint(r, ref);
        return 0;
}

/* ---- catalog rebuild ---------------------------------------------------------------- */

static const char *const catalog_files[] = { "catalog.db", "catalog.db-wal", "catalog.db-shm" };

static void move_catalog(struct repo *r, const char *from_suffix, const char *to_suffix)
{
        for (size_t i = 0; i < ELEMENTSOF(catalog_files); i++) {
                _cleanup_free_ char *from = xasprintf("%s%s", catalog_files[i], from_suffix);
                _cleanup_free_ char *to = xasprintf("%s%s", catalog_files[i], to_suffix);
                if (renameat(r->dirfd, from, r->dirfd, to) < 0 && errno == ENOENT)
                        unlinkat(r->dirfd, to, 0);
        }
}

int repo_rebuild_catalog(struct repo *r, uint64_t *ret_packs, uint64_t *ret_snapshots)
{
        if (!r->writable)
                return error_set(EROFS, "the repository is open read-only");
        catalog_free(r->catalog);
        r->catalog = NULL;
        /* Keep the old catalog until the new one is complete. */
        move_catalog(r, "", ".old");
        _cleanup_free_ char *dbpath = xasprintf("%s/catalog.db", r->path);
        uint64_t packs0 = r->recovered_packs, snaps0 = r->recovered_snapshots;
        int k = catalog_open(dbpath, true, &r->catalog);
        if (k == 0) {
                struct store *s;
                k = store_open(r, false, &s);
                if (k == 0) {
                        k = repo_recover(r, s);
                        store_free(s);
                }
        }
        if (k < 0) {
                catalog_free(r->catalog);
                r->catalog = NULL;
                move_catalog(r, ".old", "");
                catalog_open(dbpath, false, &r->catalog);
                return k;
        }
        for (size_t i = 0; i < ELEMENTSOF(catalog_files); i++) {
                _cleanup_free_ char *old = xasprintf("%s.old", catalog_files[i]);
                unlinkat(r->dirfd, old, 0);
        }
        fsync_dirfd(r->dirfd);
        *ret_packs = r->recovered_packs - packs0;
        *ret_snapshots = r->recovered_snapshots - snaps0;
        return 0;
}
