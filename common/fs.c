/* fs.c — durable writes, whole-file reads and directory helpers. */
#include <dirent.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "common.h"

int write_all(int fd, const void *p, size_t n)
{
        const uint8_t *q = p;
        while (n > 0) {
                ssize_t k = write(fd, q, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                q += k;
                n -= (size_t)k;
        }
        return 0;
}

int pread_all(int fd, void *p, size_t n, off_t off)
{
        uint8_t *q = p;
        while (n > 0) {
                ssize_t k = pread(fd, q, n, off);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EIO;
                q += k;
                n -= (size_t)k;
                off += k;
        }
        return 0;
}

int mkdir_p(const char *path, mode_t mode)
{
        _cleanup_free_ char *p = xstrdup(path);

        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int fsync_dirfd(int dirfd)
{
        if (fsync(dirfd) < 0)
                return -errno;
        return 0;
}

int write_file_atomic(int dirfd, const char *name, const void *data, size_t n, mode_t mode)
{
        char tmp[256];
        uint32_t rnd;
        int r;

        if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
                rnd = (uint32_t)getpid();
        snprintf(tmp, sizeof tmp, ".%.200s.%08x.tmp", name, rnd);

        _cleanup_close_ int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
        if (fd < 0)
                return -errno;
        r = write_all(fd, data, n);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
                r = -errno;
        if (r < 0) {
                unlinkat(dirfd, tmp, 0);
                return r;
        }
        return fsync_dirfd(dirfd);
}

int read_file_at(int dirfd, const char *name, size_t max, struct buf *ret)
{
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        struct buf b = { 0 };
        for (;;) {
                buf_reserve(&b, 65536);
                ssize_t k = read(fd, b.data + b.len, b.cap - b.len);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        int e = -errno;
                        buf_free(&b);
                        return e;
                }
                if (k == 0)
                        break;
                b.len += (size_t)k;
                if (b.len > max) {
                        buf_free(&b);
                        return -EFBIG;
                }
        }
        *ret = b;
        return 0;
}

/* Clears the immutable and append-only flags of a file or directory (not
 * of a device or fifo, whose ioctls belong to their driver), so it can be
 * removed.  0 when there was something to clear. */
static int clear_locked_flags(int parent, const char *name, const struct stat *st)
{
        if (!S_ISDIR(st->st_mode) && !S_ISREG(st->st_mode))
                return -EPERM;
        int fd = openat(parent, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        int flags = 0, r = -EPERM;
        if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & (FS_IMMUTABLE_FL | FS_APPEND_FL))) {
                flags &= ~(FS_IMMUTABLE_FL | FS_APPEND_FL);
                r = ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0 ? 0 : -errno;
        }
        close(fd);
        return r;
}

int rm_rf_at(int parent, const char *name)
{
        struct stat st;

        if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISDIR(st.st_mode)) {
                if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
                        return 0;
                if (errno != EPERM || clear_locked_flags(parent, name, &st) < 0)
                        return -errno;
                return unlinkat(parent, name, 0) < 0 && errno != ENOENT ? -errno : 0;
        }
        /* A directory marked immutable or append-only keeps its entries:
         * clear that first (what we remove is ours, e.g. a staging tree). */
        clear_locked_flags(parent, name, &st);

        DIR *d;
        int r = opendir_at(parent, name, O_NOFOLLOW, &d);
        if (r < 0)
                return r;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (dot_or_dotdot(de->d_name))
                        continue;
                int k = rm_rf_at(dirfd(d), de->d_name);
                if (k < 0 && r == 0)
                        r = k;
        }
        closedir(d);
        if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
                r = -errno;
        return r;
}

int opendir_at(int dirfd, const char *name, int flags, DIR **ret)
{
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | flags);
        if (fd < 0)
                return -errno;
        DIR *d = fdopendir(fd);
        if (!d) {
                int e = -errno;
                close(fd);
                return e;
        }
        *ret = d;
        return 0;
}

int dir_empty(const char *path)
{
        DIR *d = opendir(path);
        if (!d)
                return -errno;
        struct dirent *de;
        int empty = 1;
        while (empty && (de = readdir(d)))
                empty = dot_or_dotdot(de->d_name);
        closedir(d);
        return empty;
}
