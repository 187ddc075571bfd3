/* faultfs.c — an LD_PRELOAD shim that makes one system call fail, for the
 * torture suite (tests/torture/faultfs.sh).
 *
 *   FAULT_AT=N          the Nth counted call fails (1-based); unset: no fault
 *   FAULT_CALLS=LIST    which calls count, comma-separated, from: write, pwrite,
 *                       fsync, fdatasync, rename (rename, renameat, renameat2, linkat)
 *                       (default: all of them)
 *   FAULT_ERRNO=NAME    EIO (default) or ENOSPC; or KILL: the process kills
 *                       itself with SIGKILL at the Nth call, before making it
 *                       (a kill -9 at an exact point)
 *   FAULT_PATH=PREFIX   count only calls on paths under PREFIX (the fd's path
 *                       from /proc/self/fd for write/fsync; either name for
 *                       rename); unset: every path.  fds 0-2 never count.
 *   FAULT_STICKY=1      every counted call from the Nth on fails, not just the Nth
 *   FAULT_LOG=FILE      append a line naming the call (for fsync/fdatasync, and
 *                       the file) when a fault is injected
 *
 * The counter is per process (a fork starts from the parent's count).
 * Built by the Makefile as $(BUILD)/tests/faultfs.so.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

enum { C_WRITE = 1, C_PWRITE = 2, C_FSYNC = 4, C_FDATASYNC = 8, C_RENAME = 16 };

static atomic_long counter;
static long fault_at = -1;
static int fault_calls = C_WRITE | C_PWRITE | C_FSYNC | C_FDATASYNC | C_RENAME;
static int fault_errno = EIO;
static int fault_kill; /* FAULT_ERRNO=KILL */
static int sticky;
static const char *fault_path;
static const char *fault_log;
static atomic_int inited;

static void init(void)
{
        if (atomic_load(&inited))
                return;
        const char *s = getenv("FAULT_AT");
        if (s && *s)
                fault_at = strtol(s, NULL, 10);
        s = getenv("FAULT_CALLS");
        if (s && *s) {
                fault_calls = 0;
                if (strstr(s, "write"))
                        fault_calls |= C_WRITE;
                if (strstr(s, "pwrite") || (fault_calls & C_WRITE))
                        fault_calls |= C_PWRITE;
                if (strstr(s, "fsync"))
                        fault_calls |= C_FSYNC;
                if (strstr(s, "fdatasync") || strstr(s, "fsync"))
                        fault_calls |= C_FDATASYNC;
                if (strstr(s, "rename"))
                        fault_calls |= C_RENAME;
        }
        s = getenv("FAULT_ERRNO");
        if (s && strcmp(s, "ENOSPC") == 0)
                fault_errno = ENOSPC;
        fault_kill = s && strcmp(s, "KILL") == 0;
        s = getenv("FAULT_STICKY");
        sticky = s && *s == '1';
        s = getenv("FAULT_PATH");
        fault_path = s && *s ? s : NULL;
        s = getenv("FAULT_LOG");
        fault_log = s && *s ? s : NULL;
        atomic_store(&inited, 1);
}

static int under(const char *p)
{
        init(); /* evaluated before should_fail(), which calls it too */
        if (!fault_path)
                return 1;
        if (!p)
                return 0;
        size_t n = strlen(fault_path);
        return strncmp(p, fault_path, n) == 0 && (p[n] == '\0' || p[n] == '/' || fault_path[n - 1] == '/');
}

static int fd_under(int fd)
{
        if (fd <= 2)
                return 0;
        if (!fault_path)
                return 1;
        char link[64], path[4096];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, path, sizeof(path) - 1);
        if (n <= 0)
                return 0;
        path[n] = '\0';
        return under(path);
}

static void note(const char *what, long n, int of)
{
        if (!fault_log)
                return;
        int fd = (int)syscall(SYS_openat, AT_FDCWD, fault_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0)
                return;
        char line[4400], link[64], path[4096] = "";
        if (of >= 0) {
                snprintf(link, sizeof(link), "/proc/self/fd/%d", of);
                ssize_t k = readlink(link, path, sizeof(path) - 1);
                path[k > 0 ? k : 0] = '\0';
        }
        int len = snprintf(line, sizeof(line), "faultfs: pid %d: %s #%ld -> %s%s%s\n", (int)getpid(), what, n,
                           fault_kill ? "KILL" : fault_errno == ENOSPC ? "ENOSPC" : "EIO", *path ? " on " : "", path);
        syscall(SYS_write, fd, line, (size_t)len);
        syscall(SYS_close, fd);
}

/* should_fail: counts one call of kind KIND that is in scope; true when it must fail */
static int should_fail_fd(int kind, int in_scope, const char *what, int fd)
{
        init();
        if (fault_at < 1 || !(fault_calls & kind) || !in_scope)
                return 0;
        long n = atomic_fetch_add(&counter, 1) + 1;
        if (n == fault_at || (sticky && n > fault_at)) {
                note(what, n, fd);
                if (fault_kill)
                        syscall(SYS_kill, getpid(), SIGKILL);
                errno = fault_errno;
                return 1;
        }
        return 0;
}

static int should_fail(int kind, int in_scope, const char *what)
{
        return should_fail_fd(kind, in_scope, what, -1);
}

#define REAL(name, type) \
        static __typeof__(&name) real_##name; \
        if (!real_##name) \
                real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t count)
{
        REAL(write, x);
        if (fd > 2 && should_fail(C_WRITE, fd_under(fd), "write"))
                return -1;
        return real_write(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t off)
{
        REAL(pwrite, x);
        if (should_fail(C_PWRITE, fd_under(fd), "pwrite"))
                return -1;
        return real_pwrite(fd, buf, count, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t off)
{
        REAL(pwrite64, x);
        if (should_fail(C_PWRITE, fd_under(fd), "pwrite"))
                return -1;
        return real_pwrite64(fd, buf, count, off);
}

int fsync(int fd)
{
        REAL(fsync, x);
        if (should_fail_fd(C_FSYNC, fd_under(fd), "fsync", fd))
                return -1;
        return real_fsync(fd);
}

int fdatasync(int fd)
{
        REAL(fdatasync, x);
        if (should_fail_fd(C_FDATASYNC, fd_under(fd), "fdatasync", fd))
                return -1;
        return real_fdatasync(fd);
}

static int rename_in_scope(int dirfd, const char *a, int dirfd2, const char *b)
{
        init();
        if (!fault_path)
                return 1;
        char buf[8300];
        const char *names[2] = { a, b };
        int dirs[2] = { dirfd, dirfd2 };
        for (int i = 0; i < 2; i++) {
                const char *p = names[i];
                if (p && p[0] != '/') {
                        char link[64], dir[4096];
                        if (dirs[i] == AT_FDCWD)
                                snprintf(link, sizeof(link), "/proc/self/cwd");
                        else
                                snprintf(link, sizeof(link), "/proc/self/fd/%d", dirs[i]);
                        ssize_t n = readlink(link, dir, sizeof(dir) - 1);
                        if (n <= 0)
                                continue;
                        dir[n] = '\0';
                        snprintf(buf, sizeof(buf), "%s/%s", dir, p);
                        p = buf;
                }
                if (under(p))
                        return 1;
        }
        return 0;
}

int rename(const char *a, const char *b)
{
        REAL(rename, x);
        if (should_fail(C_RENAME, rename_in_scope(AT_FDCWD, a, AT_FDCWD, b), "rename"))
                return -1;
        return real_rename(a, b);
}

int renameat(int da, const char *a, int db, const char *b)
{
        REAL(renameat, x);
        if (should_fail(C_RENAME, rename_in_scope(da, a, db, b), "renameat"))
                return -1;
        return real_renameat(da, a, db, b);
}

int renameat2(int da, const char *a, int db, const char *b, unsigned int flags)
{
        REAL(renameat2, x);
        if (should_fail(C_RENAME, rename_in_scope(da, a, db, b), "renameat2"))
                return -1;
        return real_renameat2(da, a, db, b, flags);
}

/* Backups publish packs and snapshot files with linkat (a no-replace link of
 * a temporary): counted with the renames. */
int linkat(int da, const char *a, int db, const char *b, int flags)
{
        REAL(linkat, x);
        if (should_fail(C_RENAME, rename_in_scope(da, a, db, b), "linkat"))
                return -1;
        return real_linkat(da, a, db, b, flags);
}
