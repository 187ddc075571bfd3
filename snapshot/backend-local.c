/* backend-local.c — a repository's objects as files in a local directory.
 *
 * Object "packs/ab/ab12…" is the file <root>/packs/ab/ab12…; only regular
 * files are objects, and no symlink is followed at the last component (a
 * repository is data: a planted link is "no such object").  The directory
 * also holds the repository's local state — catalog.db, lock and the
 * spool tmp/ — which repo.c owns and which are not objects: a listing of
 * the root skips them.
 *
 * Writes follow the durable sequence: a temporary file in <root>/tmp/
 * (O_EXCL), fsync, linked into place (a link never replaces: an existing
 * object is compared instead), fsync of the directory, and of its parent
 * when the directory is new.  A file system without hard links gets
 * renameat2(RENAME_NOREPLACE) of a private copy instead.  Temporary files a
 * crash leaves in tmp/ are removed by the next writer's recovery.
 *
 * Reads of packs are many small preads of a few big files: open
 * descriptors are kept in a small cache shared by every thread (a mutex
 * guards the table, never a read), each with a reference count so that no
 * descriptor is closed under a reader.  It is not a general file API: no
 * appends, no renames, no directories as objects.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"

#define HANDLES 16
#define HANDLE_NAME 96          /* longer names are opened for each read */
#define COPY_BLOCK (1u << 20)
#define LIST_DEPTH 4

struct handle {
        char name[HANDLE_NAME];
        int fd;                  /* -1: slot free */
        unsigned refs;           /* readers using fd right now */
        bool stale;              /* the object was deleted: close at last release */
        uint64_t used;
};

struct local {
        char *path;
        int dirfd;
        int tmpfd;               /* <root>/tmp, writable backends only */
        pthread_mutex_t lock;    /* guards handles[] and clock */
        struct handle handles[HANDLES];
        uint64_t clock;
};

static struct local *L(struct backend *b) { return b->impl; }

/* Opens an object for reading: a regular file, not a symlink.  The fd in
 * *ret, or -ENOENT when there is no such object. */
static int open_object(struct local *l, const char *name, int *ret)
{
        int fd = openat(l->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return errno == ELOOP || errno == ENOTDIR ? -ENOENT : -errno;
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                int e = S_ISREG(st.st_mode) ? -errno : -ENOENT;
                close(fd);
                return e;
        }
        *ret = fd;
        return 0;
}

/* ---- the handle cache ----------------------------------------------------------- */

/* An open descriptor for `name` in *ret_fd; *ret_slot is its cache slot to
 * hand back to release(), or -1 when it is not cached (release closes it). */
static int acquire(struct local *l, const char *name, int *ret_fd, int *ret_slot)
{
        bool cacheable = strlen(name) < HANDLE_NAME;
        struct handle *h;

        if (cacheable) {
                pthread_mutex_lock(&l->lock);
                for (size_t i = 0; i < HANDLES; i++) {
                        h = &l->handles[i];
                        if (h->fd >= 0 && !h->stale && strcmp(h->name, name) == 0) {
                                h->refs++;
                                h->used = ++l->clock;
                                *ret_fd = h->fd;
                                *ret_slot = (int)i;
                                pthread_mutex_unlock(&l->lock);
                                return 0;
                        }
                }
                pthread_mutex_unlock(&l->lock);
        }
        /* Opened outside the lock: an open may block on a slow disk. */
        int fd, r = open_object(l, name, &fd);
        if (r < 0)
                return r;
        *ret_fd = fd;
        *ret_slot = -1;
        if (!cacheable)
                return 0;

        pthread_mutex_lock(&l->lock);
        struct handle *victim = NULL;
        for (size_t i = 0; i < HANDLES; i++) {
                h = &l->handles[i];
                if (h->fd >= 0 && !h->stale && strcmp(h->name, name) == 0) {
                        /* Another thread cached it meanwhile: use that one. */
                        h->refs++;
                        h->used = ++l->clock;
                        *ret_fd = h->fd;
                        *ret_slot = (int)i;
                        pthread_mutex_unlock(&l->lock);
                        close(fd);
                        return 0;
                }
                if (h->refs == 0 && (!victim || h->fd < 0 || (victim->fd >= 0 && h->used < victim->used)))
                        victim = h;
        }
        if (victim) {
                if (victim->fd >= 0)
                        close(victim->fd);
                snprintf(victim->name, sizeof victim->name, "%s", name);
                victim->fd = fd;
                victim->refs = 1;
                victim->stale = false;
                victim->used = ++l->clock;
                *ret_slot = (int)(victim - l->handles);
        }
        pthread_mutex_unlock(&l->lock);
        return 0;
}

static void release(struct local *l, int fd, int slot)
{
        if (slot < 0) {
                close(fd);
                return;
        }
        pthread_mutex_lock(&l->lock);
        struct handle *h = &l->handles[slot];
        if (--h->refs == 0 && h->stale) {
                close(h->fd);
                h->fd = -1;
                h->stale = false;
        }
        pthread_mutex_unlock(&l->lock);
}

/* Drops the cached descriptor of `name` (deleted or replaced). */
static void forget(struct local *l, const char *name)
{
        pthread_mutex_lock(&l->lock);
        for (size_t i = 0; i < HANDLES; i++) {
                struct handle *h = &l->handles[i];
                if (h->fd < 0 || strcmp(h->name, name) != 0)
                        continue;
                if (h->refs > 0)
                        h->stale = true;
                else {
                        close(h->fd);
                        h->fd = -1;
                }
        }
        pthread_mutex_unlock(&l->lock);
}

/* ---- reading ------------------------------------------------------------------------ */

static int local_get(struct backend *b, const char *name, size_t max, struct buf *ret)
{
        _cleanup_close_ int fd = -1;
        int r = open_object(L(b), name, &fd);
        if (r < 0)
                return r;
        struct buf d = { 0 };
        for (;;) {
                buf_reserve(&d, 65536);
                ssize_t k = read(fd, d.data + d.len, d.cap - d.len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = -errno;
                        buf_free(&d);
                        return r;
                }
                if (k == 0)
                        break;
                d.len += (size_t)k;
                if (d.len > max) {
                        buf_free(&d);
                        return -EFBIG;
                }
        }
        buf_free(ret);
        *ret = d;
        return 0;
}

static int local_get_range(struct backend *b, const char *name, uint64_t offset, size_t len, void *buf)
{
        struct local *l = L(b);
        int fd, slot;
        if (offset > INT64_MAX - len)
                return -EINVAL;
        int r = acquire(l, name, &fd, &slot);
        if (r < 0)
                return r;
        r = pread_all(fd, buf, len, (off_t)offset);
        release(l, fd, slot);
        return r;
}

static int local_stat(struct backend *b, const char *name, uint64_t *ret_size)
{
        struct stat st;
        if (fstatat(L(b)->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOTDIR ? -ENOENT : -errno;
        if (!S_ISREG(st.st_mode))
                return -ENOENT;
        *ret_size = (uint64_t)st.st_size;
        return 0;
}

/* Not objects: the local state that shares the root directory. */
static bool local_state(const char *name)
{
        return strcmp(name, "tmp") == 0 || strcmp(name, "lock") == 0 || strncmp(name, "catalog.db", 10) == 0;
}

static int list_dir(int dfd, char *path, size_t plen, size_t cap, int depth, backend_list_fn fn, void *ud)
{
        DIR *d = fdopendir(dfd);
        if (!d) {
                int e = -errno;
                close(dfd);
                return e;
        }
        struct dirent *de;
        int r = 0;
        while (r >= 0 && (de = readdir(d))) {
                size_t n = strlen(de->d_name);
                if (de->d_name[0] == '.' || plen + n + 2 > cap)
                        continue; /* ".", "..", hidden and temporary files: not objects */
                if (plen == 0 && local_state(de->d_name))
                        continue;
                memcpy(path + plen, de->d_name, n + 1);
                if (!backend_name_valid(path))
                        continue;
                struct stat st;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue; /* gone meanwhile */
                if (S_ISREG(st.st_mode))
                        r = fn(ud, path, (uint64_t)st.st_size);
                else if (S_ISDIR(st.st_mode) && depth < LIST_DEPTH) {
                        int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub < 0)
                                continue;
                        path[plen + n] = '/';
                        path[plen + n + 1] = 0;
                        r = list_dir(sub, path, plen + n + 1, cap, depth + 1, fn, ud);
                }
        }
        closedir(d);
        path[plen] = 0;
        return r;
}

static int local_list(struct backend *b, const char *prefix, backend_list_fn fn, void *ud)
{
        struct local *l = L(b);
        char path[512];
        size_t plen = strlen(prefix);
        if (plen >= sizeof path - 1)
                return error_set(EINVAL, "listing prefix '%s' is too long", prefix);
        memcpy(path, prefix, plen + 1);
        int dfd;
        if (plen == 0)
                dfd = openat(l->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        else {
                path[plen - 1] = 0;
                dfd = openat(l->dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                path[plen - 1] = '/';
        }
        if (dfd < 0) {
                if (errno == ENOENT)
                        return 0;
                return error_set(errno, "cannot list %s/%s: %s", l->path, prefix, strerror(errno));
        }
        int r = list_dir(dfd, path, plen, sizeof path, (int)(plen > 0), fn, ud);
        if (r < 0 && !error_message())
                error_set(-r, "cannot list %s/%s: %s", l->path, prefix, berth_strerror(r));
        return r;
}

/* ---- writing ------------------------------------------------------------------------- */

/* 1 when the object `name` holds exactly the size bytes of fd, 0 when it
 * holds others (or is not a regular file), or -errno. */
static int same_bytes(struct local *l, const char *name, int fd, uint64_t size)
{
        _cleanup_close_ int ofd = -1;
        int r = open_object(l, name, &ofd);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        struct stat st;
        if (fstat(ofd, &st) < 0)
                return -errno;
        if ((uint64_t)st.st_size != size)
                return 0;
        _cleanup_free_ uint8_t *a = xmalloc(COPY_BLOCK), *c = xmalloc(COPY_BLOCK);
        for (uint64_t off = 0; off < size;) {
                size_t n = size - off < COPY_BLOCK ? (size_t)(size - off) : COPY_BLOCK;
                r = pread_all(fd, a, n, (off_t)off);
                if (r == 0)
                        r = pread_all(ofd, c, n, (off_t)off);
                if (r == -EIO)
                        return 0; /* shorter after all */
                if (r < 0)
                        return r;
                if (memcmp(a, c, n) != 0)
                        return 0;
                off += n;
        }
        return 1;
}

/* Creates the directories above `name` that are missing; *ret_new gets the
 * length of the shortest prefix created ("packs/ab" -> 8), or 0. */
static int make_parents(struct local *l, const char *name, size_t *ret_new)
{
        char dir[256];
        *ret_new = 0;
        for (const char *s = strchr(name, '/'); s; s = strchr(s + 1, '/')) {
                size_t n = (size_t)(s - name);
                if (n >= sizeof dir)
                        return error_set(ENAMETOOLONG, "object name '%s' is too long", name);
                memcpy(dir, name, n);
                dir[n] = 0;
                if (mkdirat(l->dirfd, dir, 0755) == 0) {
                        if (!*ret_new)
                                *ret_new = n;
                } else if (errno != EEXIST)
                        return error_set(errno, "cannot create %s/%s: %s", l->path, dir, strerror(errno));
        }
        return 0;
}

/* fsync of the directory holding `name` (its first `len` bytes; 0: the
 * root). */
static int sync_dir(struct local *l, const char *name, size_t len)
{
        char dir[256];
        if (len >= sizeof dir)
                return -ENAMETOOLONG;
        memcpy(dir, name, len);
        dir[len] = 0;
        _cleanup_close_ int fd = openat(l->dirfd, len ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
                return -errno;
        return 0;
}

static size_t parent_len(const char *name)
{
        const char *s = strrchr(name, '/');
        return s ? (size_t)(s - name) : 0;
}

/* Makes the name durable, and every directory created for it
 * (name[0..new_len) and below): the object's directory, then the parent of
 * each new directory, deepest first. */
static int sync_parents(struct local *l, const char *name, size_t new_len)
{
        char dir[256];
        size_t n = parent_len(name);
        if (n >= sizeof dir)
                return -ENAMETOOLONG;
        memcpy(dir, name, n);
        dir[n] = 0;
        int r = sync_dir(l, dir, n);
        while (r == 0 && new_len && n >= new_len) {
                size_t up = parent_len(dir);
                r = sync_dir(l, dir, up);
                dir[up] = 0;
                n = up;
        }
        return r;
}

/* Links dirfd/file to `name` without replacing anything; falls back to a
 * no-replace rename where hard links do not exist (the file is then
 * consumed: only our own temporaries are passed with `consume`).  0,
 * -EEXIST, -EXDEV, or -errno. */
static int link_noreplace(struct local *l, int dirfd, const char *file, const char *name, bool consume)
{
        if (linkat(dirfd, file, l->dirfd, name, 0) == 0)
                return 0;
        int e = errno;
        if (e == EEXIST || e == EXDEV || !consume)
                return -e;
        /* No hard links here (some FUSE or network file systems). */
        if (renameat2(dirfd, file, l->dirfd, name, RENAME_NOREPLACE) == 0)
                return 0;
        if (errno != EINVAL && errno != ENOSYS)
                return -errno;
        /* Nor RENAME_NOREPLACE: writers are serialized by the repository
         * lock, so checking first is enough. */
        if (faccessat(l->dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                return -EEXIST;
        return renameat(dirfd, file, l->dirfd, name) < 0 ? -errno : 0;
}

/* Creates our own temporary file in tmp/: its name in tmpname, fd in *ret. */
static int make_temp(struct local *l, char tmpname[64], int *ret)
{
        uint64_t rnd;
        if (l->tmpfd < 0)
                return error_set(ENOENT, "cannot open %s/tmp", l->path);
        if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
                rnd = (uint64_t)getpid() << 32 ^ (uint64_t)mono_ns();
        snprintf(tmpname, 64, "put-%016llx.tmp", (unsigned long long)rnd);
        int fd = openat(l->tmpfd, tmpname, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
                return error_set(errno, "cannot create a temporary file in %s/tmp: %s", l->path, strerror(errno));
        *ret = fd;
        return 0;
}

/* Publishes the durable file dirfd/file (fd, size bytes) as `name`.  1, 0
 * (identical object there), -EEXIST, -EXDEV (other file system, nothing
 * done), or -errno with a message. */
static int publish(struct local *l, const char *name, int dirfd, const char *file, int fd, uint64_t size,
                   bool consume)
{
        size_t new_len;
        int r = make_parents(l, name, &new_len);
        if (r < 0)
                return r;
        r = link_noreplace(l, dirfd, file, name, consume);
        if (r == -EEXIST) {
                /* Content-addressed names: the same bytes are already there. */
                int same = same_bytes(l, name, fd, size);
                if (same < 0)
                        return error_set(-same, "cannot read %s/%s: %s", l->path, name, berth_strerror(same));
                if (same)
                        return 0;
                return error_set(EEXIST, "%s/%s already exists with other content; not replaced", l->path, name);
        }
        if (r == -EXDEV)
                return r;
        if (r < 0)
                return error_set(-r, "cannot move %s into place in %s: %s", name, l->path, berth_strerror(r));
        /* The link is durable only once its directory is synced, and a new
         * directory only once its parent is. */
        r = sync_parents(l, name, new_len);
        if (r < 0) {
                unlinkat(l->dirfd, name, 0);
                return error_set(-r, "cannot sync the directory of %s in %s: %s", name, l->path, berth_strerror(r));
        }
        return 1;
}

/* Copies size bytes of fd into a new temporary file of ours, synced. */
static int copy_to_temp(struct local *l, int fd, uint64_t size, char tmpname[64], int *ret)
{
        _cleanup_close_ int out = -1;
        int r = make_temp(l, tmpname, &out);
        if (r < 0)
                return r;
        _cleanup_free_ uint8_t *blk = xmalloc(COPY_BLOCK);
        for (uint64_t off = 0; off < size && r == 0;) {
                size_t n = size - off < COPY_BLOCK ? (size_t)(size - off) : COPY_BLOCK;
                r = pread_all(fd, blk, n, (off_t)off);
                if (r == 0)
                        r = write_all(out, blk, n);
                off += n;
        }
        if (r == 0 && fsync(out) < 0)
                r = -errno;
        if (r < 0) {
                unlinkat(l->tmpfd, tmpname, 0);
                return error_set(-r, "cannot copy into %s/tmp: %s", l->path, berth_strerror(r));
        }
        *ret = TAKE_FD(out);
        return 0;
}

static int local_put(struct backend *b, const char *name, const void *data, size_t len)
{
        struct local *l = L(b);
        char tmpname[64];
        _cleanup_close_ int fd = -1;
        int r = make_temp(l, tmpname, &fd);
        if (r < 0)
                return r;
        r = write_all(fd, data, len);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (r < 0)
                r = error_set(-r, "cannot write %s/tmp/%s: %s", l->path, tmpname, berth_strerror(r));
        else
                r = publish(l, name, l->tmpfd, tmpname, fd, len, true);
        unlinkat(l->tmpfd, tmpname, 0);
        return r;
}

static int local_put_file(struct backend *b, const char *name, const struct backend_spool *f)
{
        struct local *l = L(b);
        if (fsync(f->fd) < 0)
                return error_set(errno, "cannot sync %s before storing it: %s", name, strerror(errno));
        /* The spool is on our file system (tmp/): link it, no copy. */
        int r = publish(l, name, f->dirfd, f->name, f->fd, f->size, false);
        if (r != -EXDEV && r != -EPERM && r != -EOPNOTSUPP && r != -EMLINK)
                return r;
        error_clear();
        /* Elsewhere, or no hard links here: publish a copy of ours. */
        char tmpname[64];
        _cleanup_close_ int fd = -1;
        r = copy_to_temp(l, f->fd, f->size, tmpname, &fd);
        if (r < 0)
                return r;
        r = publish(l, name, l->tmpfd, tmpname, fd, f->size, true);
        unlinkat(l->tmpfd, tmpname, 0);
        return r;
}

static int local_delete(struct backend *b, const char *name)
{
        struct local *l = L(b);
        forget(l, name);
        if (unlinkat(l->dirfd, name, 0) < 0) {
                if (errno == ENOENT || errno == ENOTDIR)
                        return -ENOENT;
                return error_set(errno, "cannot delete %s/%s: %s", l->path, name, strerror(errno));
        }
        int r = sync_dir(l, name, parent_len(name));
        if (r < 0)
                return error_set(-r, "cannot sync the directory of %s in %s: %s", name, l->path, berth_strerror(r));
        return 0;
}

static void local_free(struct backend *b)
{
        struct local *l = L(b);
        if (!l)
                return;
        for (size_t i = 0; i < HANDLES; i++)
                if (l->handles[i].fd >= 0)
                        close(l->handles[i].fd);
        if (l->tmpfd >= 0)
                close(l->tmpfd);
        if (l->dirfd >= 0)
                close(l->dirfd);
        pthread_mutex_destroy(&l->lock);
        free(l->path);
        free(l);
}

static const struct backend_ops local_ops = {
        .get = local_get,
        .get_range = local_get_range,
        .stat = local_stat,
        .list = local_list,
        .put = local_put,
        .put_file = local_put_file,
        .delete = local_delete,
        .free = local_free,
};

bool backend_is_local(const struct backend *b) { return b && b->ops == &local_ops; }

int backend_local_open(const char *path, bool writable, struct backend **ret)
{
        int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        struct local *l = xcalloc(1, sizeof *l);
        l->path = xstrdup(path);
        l->dirfd = dfd;
        l->tmpfd = writable ? openat(dfd, "tmp", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
        pthread_mutex_init(&l->lock, NULL);
        for (size_t i = 0; i < HANDLES; i++)
                l->handles[i].fd = -1;
        *ret = backend_new(&local_ops, l, path, writable);
        return 0;
}

int backend_local_init(const char *path)
{
        static const char *const dirs[] = { "packs", "snapshots", "tmp" };
        int r = mkdir_p(path, 0700);
        if (r < 0)
                return error_set(r, "cannot create %s: %s", path, berth_strerror(r));
        _cleanup_close_ int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return error_set(errno, "cannot open %s: %s", path, strerror(errno));
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
                if (mkdirat(dfd, dirs[i], 0700) < 0 && errno != EEXIST)
                        return error_set(errno, "cannot create %s/%s: %s", path, dirs[i], strerror(errno));
        return 0;
}
