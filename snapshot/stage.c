/* stage.c — where a restore writes, and how the result is put in place.
 *
 * The target is checked first (a directory to create, an empty one to
 * fill, or with --replace one to swap out; never through a symlink).  The
 * tree is written into a staging directory on the target's filesystem,
 * named for the restoring process, so that a restore that was killed
 * leaves nothing a later one cannot recognise and remove.  Only when
 * everything was written is it made durable (syncfs) and put in place in
 * one rename (new target), one exchange (--replace), or by moving its
 * entries up (an empty target, which may be a mount point); file flags
 * that would stop those renames are set afterwards.  Writing the entries
 * is restore.c's.
 */
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "restorer.h"

#define STAGING_PREFIX ".berth-restore-"

/* Removes staging directories that a killed restore left in dirfd: their
 * names carry the pid that made them, and that process is gone. */
static void clean_stale_staging(int dirfd)
{
        DIR *d;
        if (opendir_at(dirfd, ".", 0, &d) < 0)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strncmp(de->d_name, STAGING_PREFIX, strlen(STAGING_PREFIX)) != 0)
                        continue;
                char *end;
                long pid = strtol(de->d_name + strlen(STAGING_PREFIX), &end, 10);
                if (pid <= 0 || *end != '-' || pid == getpid())
                        continue;
                if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
                        continue;
                log_debug("removing %s, left by a restore that was killed", de->d_name);
                rm_rf_at(dirfd, de->d_name);
        }
        closedir(d);
}

/* Whether the directory t is the root of a mount (then it cannot be
 * renamed or swapped): statx says so on Linux >= 5.8, else a device
 * that differs from its parent's. */
static bool is_mount_root(const char *t, const struct stat *st)
{
        struct statx sx;
        if (statx(AT_FDCWD, t, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx) == 0 &&
            (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
                return (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
        _cleanup_free_ char *copy = xstrdup(t);
        struct stat up;
        return stat(dirname(copy), &up) < 0 || up.st_dev != st->st_dev;
}

int stage_check_target(const char *target, bool replace, bool swap_empty, enum target_kind *ret_kind)
{
        size_t n = strlen(target);
        while (n > 1 && target[n - 1] == '/')
                n--;
        _cleanup_free_ char *t = xstrndup(target, n);
        const char *base = strrchr(t, '/') ? strrchr(t, '/') + 1 : t;
        if (!*t || strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || strcmp(t, "/") == 0)
                return error_set(EINVAL, "target '%s' does not name a directory to restore into; give a path such as "
                                         "/srv/restored (nothing was changed)",
                                 target);
        struct stat st;
        if (lstat(t, &st) < 0) {
                if (errno != ENOENT)
                        return error_set(errno, "cannot use target '%s': %s", target, strerror(errno));
                *ret_kind = TARGET_NEW;
                return 0;
        }
        if (S_ISLNK(st.st_mode))
                return error_set(EEXIST, "target '%s' is a symbolic link; Berth does not restore through links: give "
                                         "the directory it points to (nothing was changed)",
                                 target);
        if (!S_ISDIR(st.st_mode))
                return error_set(EEXIST, "target '%s' exists and is not a directory", target);
        _cleanup_close_ int fd = open(t, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0)
                clean_stale_staging(fd);
        int empty = dir_empty(t);
        if (empty < 0)
                return error_set(-empty, "cannot open target '%s': %s", target, strerror(-empty));
        if (!empty && !replace)
                return error_set(EEXIST,
                                 "target '%s' is not empty; restore into a new or empty directory (nothing was "
                                 "changed)",
                                 target);
        *ret_kind = empty && !(swap_empty && !is_mount_root(t, &st)) ? TARGET_EMPTY : TARGET_REPLACE;
        return 0;
}

int stage_open(struct stage *st, const char *target, enum target_kind kind)
{
        /* The staging directory is on the target's filesystem: next to a
         * new target or one to replace, inside an empty one (a mount point
         * cannot be renamed over). */
        _cleanup_free_ char *tpath = xstrdup(target);
        for (size_t n = strlen(tpath); n > 1 && tpath[n - 1] == '/'; n--)
                tpath[n - 1] = 0;
        {
                _cleanup_free_ char *c1 = xstrdup(tpath), *c2 = xstrdup(tpath);
                st->parent = xstrdup(dirname(c1));
                st->target_name = xstrdup(basename(c2));
        }
        if (kind == TARGET_NEW) {
                int k = mkdir_p(st->parent, 0755);
                if (k < 0)
                        return error_set(k, "cannot create '%s': %s", st->parent, berth_strerror(k));
        }
        st->parent_fd = open(st->parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (st->parent_fd < 0)
                return error_set(errno, "cannot open '%s': %s", st->parent, strerror(errno));
        /* a killed restore's staging directory next to the target goes,
         * whatever this one's kind (a swap into a new volume stages there) */
        clean_stale_staging(st->parent_fd);
        if (kind == TARGET_EMPTY) {
                st->target_fd = openat(st->parent_fd, st->target_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (st->target_fd < 0)
                        return error_set(errno, "cannot open target '%s': %s", target, strerror(errno));
        }
        int home = kind == TARGET_EMPTY ? st->target_fd : st->parent_fd;
        for (int tries = 0;; tries++) {
                uint8_t rnd[6];
                char hex[13];
                if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
                        memset(rnd, tries, sizeof rnd);
                hex_encode(rnd, sizeof rnd, hex);
                snprintf(st->staging_name, sizeof st->staging_name, STAGING_PREFIX "%ld-%s", (long)getpid(), hex);
                if (mkdirat(home, st->staging_name, 0700) == 0)
                        break;
                if (errno != EEXIST || tries > 100) {
                        int k = error_set(errno, "cannot create a staging directory in '%s': %s",
                                          kind == TARGET_EMPTY ? target : st->parent, strerror(errno));
                        st->staging_name[0] = 0;
                        return k;
                }
        }
        st->staging_fd = openat(home, st->staging_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        st->cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (st->staging_fd < 0 || st->cwd < 0 || fchdir(st->staging_fd) < 0)
                return error_set(errno, "cannot enter the staging directory: %s", strerror(errno));
        return 0;
}

/* Whether e is moved (renamed) when the staged tree goes into place: the
 * top directory, or with TARGET_EMPTY the entries right under it.  The
 * kernel refuses to rename an immutable or append-only file, so their
 * flags are set after the move. */
bool stage_moved_at_end(const struct restorer *r, const struct entry *e)
{
        if (e->path_len == 0)
                return true;
        return r->kind == TARGET_EMPTY && !memchr(e->path, '/', e->path_len);
}

void stage_defer_flags(struct restorer *r, const struct entry *e)
{
        if (r->nlater == r->later_cap) {
                r->later_cap = r->later_cap ? 2 * r->later_cap : 8;
                r->later = xrealloc(r->later, r->later_cap * sizeof *r->later);
        }
        r->later[r->nlater++] = (struct later_flags){ .path = xstrdup(e->path), .type = e->type,
                                                      .set = e->fflags_set, .clear = e->fflags_clear };
}

/* Sets file flags (chattr) as libarchive would, on a directory or a
 * regular file only: anything else's ioctls belong to its driver. */
static int set_flags_at(int dirfd, const char *name, const struct later_flags *f)
{
        if (f->type != ENTRY_DIR && f->type != ENTRY_REG)
                return -EOPNOTSUPP;
        int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        struct stat st;
        int flags = 0, k = 0;
        if (fstat(fd, &st) < 0 || !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)))
                k = -EOPNOTSUPP;
        else if (ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0)
                k = -errno;
        else {
                flags = (int)(((unsigned)flags | (unsigned)f->set) & ~(unsigned)f->clear);
                if (ioctl(fd, FS_IOC_SETFLAGS, &flags) < 0)
                        k = -errno;
        }
        close(fd);
        return k;
}

/* The deferred flags, once the tree is in place: entries right under the
 * target first, the top directory last. */
static void apply_later_flags(struct restorer *r, int target_fd)
{
        for (size_t i = r->nlater; i-- > 0;) {
                const struct later_flags *f = &r->later[i];
                int k = set_flags_at(target_fd, *f->path ? f->path : ".", f);
                if (k < 0)
                        restorer_warn(r, f->path, "cannot set its file flags: %s", berth_strerror(k));
        }
}

/* Applies the top directory's metadata to the target itself (TARGET_EMPTY:
 * the target is kept, only its contents came from the staging directory).
 * Runs a second disk writer with the target as its working directory, and
 * frees it there, so its deferred fix-ups land on the target only. */
static int restore_root_into(struct restorer *r, int target_fd, int cwd)
{
        if (!r->root_seen)
                return 0;
        if (entry_decode(r->root.data, r->root.len, &r->scratch) < 0)
                return error_set(BERTH_ECORRUPT, "cannot decode the top directory's entry");
        struct entry e = r->scratch.e;
        e.fflags_set = e.fflags_clear = 0; /* set after, with the others */
        if (fchdir(target_fd) < 0)
                return error_set(errno, "cannot enter the target: %s", strerror(errno));
        struct archive *a = archive_write_disk_new();
        if (!a)
                abort();
        archive_write_disk_set_options(a, RESTORE_FLAGS | (geteuid() == 0 ? ARCHIVE_EXTRACT_OWNER : 0));
        entry_to_archive(&e, ".", r->ae);
        char why[512];
        int k = archive_write_header(a, r->ae);
        if (k >= ARCHIVE_WARN)
                k = archive_write_finish_entry(a);
        if (k >= ARCHIVE_WARN)
                k = archive_write_close(a);
        if (k < ARCHIVE_OK)
                restorer_warn(r, "", "the top directory's metadata is not fully restored: %s",
                              restorer_disk_error(a, why, sizeof why));
        archive_write_free(a);
        struct timespec ts[2] = { { e.mtime_sec, e.mtime_nsec }, { e.mtime_sec, e.mtime_nsec } };
        if (utimensat(target_fd, ".", ts, 0) < 0)
                restorer_warn(r, "", "cannot set the time of the top directory: %s", strerror(errno));
        if (fchdir(cwd) < 0)
                return error_set(errno, "cannot return to the working directory: %s", strerror(errno));
        return 0;
}

/* TARGET_EMPTY: moves every entry of the staging directory up into the
 * target.  On failure the entries moved so far are moved back, so the
 * target is as empty as it was. */
static int move_up(int staging_fd, int target_fd, const char *target)
{
        DIR *d;
        int k = opendir_at(staging_fd, ".", 0, &d);
        if (k < 0)
                return error_set(-k, "cannot list the staging directory: %s", strerror(-k));
        char **moved = NULL;
        size_t nmoved = 0, cap = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (dot_or_dotdot(de->d_name))
                        continue;
                if (renameat2(staging_fd, de->d_name, target_fd, de->d_name, RENAME_NOREPLACE) < 0) {
                        k = error_set(errno, "cannot move '%s' into '%s': %s", de->d_name, target, strerror(errno));
                        break;
                }
                if (nmoved == cap) {
                        cap = cap ? 2 * cap : 64;
                        moved = xrealloc(moved, cap * sizeof *moved);
                }
                moved[nmoved++] = xstrdup(de->d_name);
        }
        closedir(d);
        for (size_t i = 0; i < nmoved; i++) {
                if (k < 0 && renameat2(target_fd, moved[i], staging_fd, moved[i], RENAME_NOREPLACE) < 0)
                        log_debug("cannot move '%s' back: %s", moved[i], strerror(errno));
                free(moved[i]);
        }
        free(moved);
        return k;
}

/* TARGET_EMPTY, after move_up: moves every entry of the target but the
 * staging directory back into it, so the target is as empty as it was. */
static int move_back(const struct stage *st)
{
        DIR *d;
        int k = opendir_at(st->target_fd, ".", 0, &d);
        if (k < 0)
                return k;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (dot_or_dotdot(de->d_name) || strcmp(de->d_name, st->staging_name) == 0)
                        continue;
                if (renameat2(st->target_fd, de->d_name, st->staging_fd, de->d_name, RENAME_NOREPLACE) < 0 && k == 0)
                        k = -errno;
        }
        closedir(d);
        return k;
}

/* The move into place could not be made durable (a failed fsync of the
 * directory it happened in, errno e): undoes it when it can, so that the
 * command fails with the target as it was; otherwise says the target holds
 * the snapshot but may not survive a crash. */
static int not_durable(const struct stage *st, enum target_kind kind, const char *target, int e)
{
        int u;
        switch (kind) {
        case TARGET_EMPTY:
                u = move_back(st);
                break;
        case TARGET_NEW:
                u = renameat2(st->parent_fd, st->target_name, st->parent_fd, st->staging_name, RENAME_NOREPLACE) < 0
                            ? -errno
                            : 0;
                break;
        default:
                u = renameat2(st->parent_fd, st->staging_name, st->parent_fd, st->target_name, RENAME_EXCHANGE) < 0
                            ? -errno
                            : 0;
                break;
        }
        if (u == 0)
                return error_set(e, "cannot flush the restored tree's move into '%s' to disk (fsync: %s); the restore "
                                    "was undone and '%s' is as it was; check the disk, then restore again",
                                 target, strerror(e), target);
        return error_set(e, "'%s' holds the restored snapshot, but its move into place cannot be flushed to disk "
                            "(fsync: %s) and could not be undone (%s): it may not survive a crash; check the disk, "
                            "then restore again",
                         target, strerror(e), berth_strerror(u));
}

/* Makes the staged tree durable, then puts it in place.  A failed fsync
 * fails the restore: the tree's move is undone (see not_durable()). */
int stage_put_in_place(struct restorer *r, const struct stage *st, const char *target)
{
        /* Everything written must be on disk before it replaces or fills
         * the target: a power cut must not leave a half-written tree. */
        if (syncfs(st->staging_fd) < 0)
                return error_set(errno, "cannot flush the restored tree to disk: %s", strerror(errno));
        int k;
        switch (r->kind) {
        case TARGET_EMPTY:
                k = move_up(st->staging_fd, st->target_fd, target);
                if (k < 0)
                        return k;
                if (fsync(st->target_fd) < 0)
                        return not_durable(st, r->kind, target, errno);
                /* Empty now; gone before the target gets its own times and
                 * flags. */
                if (unlinkat(st->target_fd, st->staging_name, AT_REMOVEDIR) < 0)
                        log_debug("cannot remove %s: %s", st->staging_name, strerror(errno));
                k = restore_root_into(r, st->target_fd, st->cwd);
                if (k < 0)
                        return k;
                apply_later_flags(r, st->target_fd);
                return 0;
        case TARGET_NEW:
                if (renameat2(st->parent_fd, st->staging_name, st->parent_fd, st->target_name, RENAME_NOREPLACE) < 0)
                        return error_set(errno, "cannot move the restored tree to '%s': %s", target, strerror(errno));
                break;
        case TARGET_REPLACE:
                /* Swap in one step, so the target is never half old, half
                 * new; the old contents end up under the staging name. */
                if (renameat2(st->parent_fd, st->staging_name, st->parent_fd, st->target_name, RENAME_EXCHANGE) < 0)
                        return error_set(errno, "cannot swap the restored tree into '%s': %s", target, strerror(errno));
                break;
        }
        if (fsync(st->parent_fd) < 0)
                return not_durable(st, r->kind, target, errno);
        /* st->staging_fd is the restored tree, wherever its name is now. */
        apply_later_flags(r, st->staging_fd);
        return 0;
}

int stage_close(struct stage *st, enum target_kind kind, int k)
{
        if (st->cwd >= 0) {
                if (fchdir(st->cwd) < 0 && k >= 0)
                        k = error_set(errno, "cannot return to the working directory: %s", strerror(errno));
                close(st->cwd);
        }
        if (st->staging_name[0]) {
                int home_fd = kind == TARGET_EMPTY ? st->target_fd : st->parent_fd;
                /* Placed: the staging name is empty (TARGET_EMPTY), gone
                 * (TARGET_NEW) or holds the old tree (TARGET_REPLACE), which
                 * goes only now that the new one is durable. */
                if (!(st->placed && kind == TARGET_NEW)) {
                        int q = rm_rf_at(home_fd, st->staging_name);
                        if (q < 0)
                                log_debug("cannot remove %s: %s", st->staging_name, berth_strerror(q));
                }
        }
        if (st->staging_fd >= 0)
                close(st->staging_fd);
        if (st->target_fd >= 0)
                close(st->target_fd);
        if (st->parent_fd >= 0)
                close(st->parent_fd);
        free(st->parent);
        free(st->target_name);
        return k;
}
