/* common.h — what every Berth module needs and nothing more.
 *
 * Cleanup helpers for locals, logging (one event per line on stderr), a
 * thread-local "last error" message that library modules fill in and the
 * program prints, growable byte buffers with varint coding, hex, time and a
 * few durable-file helpers.  Depends on libc only; knows nothing of chunks,
 * SQLite, Docker or SSH.
 */
#ifndef BERTH_COMMON_H
#define BERTH_COMMON_H

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <syslog.h>
#include <unistd.h>

#define BERTH_VERSION "0.1.0"

/* ---- ownership ---------------------------------------------------------- */

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void freep(void *p) { free(*(void **)p); }
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd)
{
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

#define TAKE_PTR(p) ({ __typeof__(p) _p = (p); (p) = NULL; _p; })
#define TAKE_FD(fd) ({ int _fd = (fd); (fd) = -1; _fd; })
#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Abort on allocation failure: Berth cannot do anything useful without
 * memory, and checking every small allocation hides the real error paths. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* ---- logging ------------------------------------------------------------- */

/* Levels are syslog's: LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG.
 * Default LOG_NOTICE; BERTH_LOG_LEVEL or --verbose raise it.  Under journald
 * (JOURNAL_STREAM set) lines get a "<N>" priority prefix. */
void log_set_level(int level);
int log_get_level(void);
int log_level_from_string(const char *s);
void log_open(const char *program);
/* Clears the progress line before a log line is written (set by agent/). */
void log_set_before_write(void (*fn)(void));

/* Logs "program: message[: strerror(err)]" and returns -|err| (or -EIO when
 * err is 0), so `return log_error_errno(r, "...")` logs and fails at once. */
int log_internal(int level, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_error(...) log_internal(LOG_ERR, 0, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_WARNING, 0, __VA_ARGS__)
#define log_notice(...) log_internal(LOG_NOTICE, 0, __VA_ARGS__)
#define log_info(...) log_internal(LOG_INFO, 0, __VA_ARGS__)
#define log_debug(...) log_internal(LOG_DEBUG, 0, __VA_ARGS__)
#define log_error_errno(e, ...) log_internal(LOG_ERR, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_internal(LOG_WARNING, (e), __VA_ARGS__)
#define log_debug_errno(e, ...) log_internal(LOG_DEBUG, (e), __VA_ARGS__)

/* ---- errors -------------------------------------------------------------- */

/* Library modules never print above debug level; instead they record a
 * one-line reason for the failure they return.  error_set() stores the
 * message (thread-local, replacing an earlier one), logs it at debug level
 * and returns -|err|.  error_message() gives the message, or NULL when the
 * failure carried none; error_clear() forgets it. */
int error_set(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *error_message(void);
void error_clear(void);

/* Berth's own errno-like codes for failures libc has no name for.  They sit
 * above the kernel's range so they never collide with a real errno. */
enum {
        BERTH_ECORRUPT = 10001, /* stored data does not match its hash or format */
        BERTH_ELOCKED = 10002,  /* the repository is locked by another process */
        BERTH_EFORMAT = 10003,  /* repository of another format version */
        BERTH_ENOTFOUND = 10004,/* named object does not exist */
        BERTH_EAMBIGUOUS = 10005,/* a reference matches more than one object */
        BERTH_EHOSTILE = 10006, /* an archive entry would escape its root */
        BERTH_EHOSTKEY = 10007, /* an SSH host key is unknown, changed or revoked */
        BERTH_EAUTH = 10008,    /* an SSH server refused every key we offered */
        BERTH_EPROTO = 10009,   /* a peer broke the wire protocol (bad frame, bounds, order) */
};
const char *berth_strerror(int err);

/* ---- byte buffers ------------------------------------------------------- */

struct buf {
        uint8_t *data;
        size_t len;
        size_t cap;
};

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_putc(struct buf *b, uint8_t c);
void buf_put_varint(struct buf *b, uint64_t v);
void buf_put_svarint(struct buf *b, int64_t v);
void buf_put_bytes(struct buf *b, const void *p, size_t n); /* varint length + bytes */
void buf_put_str(struct buf *b, const char *s);             /* NULL is stored as "" */
void buf_put_le32(struct buf *b, uint32_t v);
void buf_put_le64(struct buf *b, uint64_t v);
void buf_reset(struct buf *b);
void buf_free(struct buf *b);
/* Removes the first n bytes. */
void buf_consume(struct buf *b, size_t n);

/* A read cursor over bytes someone else owns.  Every get returns 0 on
 * success and -BERTH_ECORRUPT when the input ends early or a varint is too
 * long: parsers of stored data treat every byte as hostile. */
struct cursor {
        const uint8_t *p;
        const uint8_t *end;
};

int cur_get_u8(struct cursor *c, uint8_t *ret);
int cur_get_varint(struct cursor *c, uint64_t *ret);
int cur_get_svarint(struct cursor *c, int64_t *ret);
int cur_get_bytes(struct cursor *c, const uint8_t **ret_p, size_t *ret_n);
int cur_get_raw(struct cursor *c, size_t n, const uint8_t **ret_p);
static inline size_t cur_left(const struct cursor *c) { return (size_t)(c->end - c->p); }

uint32_t le32_read(const uint8_t *p);
uint64_t le64_read(const uint8_t *p);
void le32_write(uint8_t *p, uint32_t v);
void le64_write(uint8_t *p, uint64_t v);

/* ---- hex, strings, time -------------------------------------------------- */

/* Writes 2*n hex digits and a NUL into out (2*n+1 bytes). */
void hex_encode(const uint8_t *p, size_t n, char *out);
/* Parses exactly 2*n hex digits; returns 0 or -EINVAL. */
int hex_decode(const char *s, uint8_t *out, size_t n);
bool is_hex(const char *s);

/* "1.5 GiB", "512 B", into buf (at least 16 bytes); returns buf. */
char *format_bytes(uint64_t n, char *buf, size_t size);
/* Parses "64", "64K", "16MiB", "1G"; returns 0 or -EINVAL. */
int parse_size(const char *s, uint64_t *ret);
/* Parses "30", "30s", "5m", "2h", "1d" into seconds; returns 0 or -EINVAL. */
int parse_duration(const char *s, uint64_t *ret);

int64_t now_ns(void);     /* CLOCK_REALTIME */
int64_t mono_ns(void);    /* CLOCK_MONOTONIC */
/* ISO-8601 UTC with seconds, "2026-11-22T15:46:13Z"; buf >= 32 bytes. */
char *format_time(int64_t ns, char *buf, size_t size);
/* Parses "2026-11-22", "2026-11-22T15:46", "2026-11-22T15:46:13[Z|+01:00]"
 * (local time when no zone is given) into ns since the epoch. */
int parse_time(const char *s, int64_t *ret);

/* sec * 10^9 + nsec, saturated to INT64_MIN/INT64_MAX instead of
 * overflowing (times in hostile or imported data can be anything). */
int64_t time_ns(int64_t sec, int64_t nsec);

/* Appends s[0..n) with what a terminal would act on made visible, as ls
 * and journalctl do: control characters as C escapes (\n, \t, \e, ...)
 * or \xNN, and bytes that are not valid UTF-8 (or are C1 controls) as
 * \xNN.  With backslash, a backslash is doubled, so the result is
 * unambiguous.  Valid printable UTF-8 passes unchanged. */
void buf_put_escaped(struct buf *b, const char *s, size_t n, bool backslash);
/* Appends s as one word for a POSIX shell: in single quotes, each ' as '\''. */
void buf_put_shell_word(struct buf *b, const char *s);
/* The same into a new NUL-terminated string (backslashes doubled); the
 * caller frees it. */
char *escape_name(const char *s, size_t n);
/* A message that quotes names, escaped as log lines are (backslashes kept
 * as they are); the caller frees it. */
char *escape_text(const char *s);

/* The id of a user or group name from the system's databases (passwd,
 * group, NSS), or -ENOENT when there is none. */
int64_t user_id(const char *name);
int64_t group_id(const char *name);

/* ---- files --------------------------------------------------------------- */

/* mkdir -p with the given mode for missing components; 0 or -errno. */
int mkdir_p(const char *path, mode_t mode);
/* fsync a directory by fd or path. */
int fsync_dirfd(int dirfd);
/* Writes data to dirfd/name atomically: O_EXCL temp file, fsync, rename,
 * fsync the directory.  Returns 0 or -errno (nothing left behind). */
int write_file_atomic(int dirfd, const char *name, const void *data, size_t n, mode_t mode);
/* Reads a whole (small) file; the caller frees *ret.  0 or -errno. */
int read_file_at(int dirfd, const char *name, size_t max, struct buf *ret);
/* Full write/read loops that retry EINTR; 0 or -errno (-EIO on short read). */
int write_all(int fd, const void *p, size_t n);
int pread_all(int fd, void *p, size_t n, off_t off);
/* 1 when path is a directory with no entries, 0 when it has some, -errno
 * when it cannot be read (-ENOENT when it does not exist). */
int dir_empty(const char *path);
/* Recursively removes path (no symlink following); 0 or -errno. */
int rm_rf_at(int dirfd, const char *name);
/* Opens directory `name` relative to dirfd ("." for dirfd itself, as a
 * description of its own, so reading it does not move dirfd's offset) for
 * readdir(); `flags` are added to O_RDONLY|O_DIRECTORY|O_CLOEXEC.  0 and
 * *ret (closedir() it), or -errno. */
int opendir_at(int dirfd, const char *name, int flags, DIR **ret);
/* True for the "." and ".." entries of a listing. */
static inline bool dot_or_dotdot(const char *n) { return n[0] == '.' && (!n[1] || (n[1] == '.' && !n[2])); }

#endif
