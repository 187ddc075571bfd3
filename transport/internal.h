/* internal.h — what the files of transport/ share and nobody else sees
 * (libssh2.h is included here, and only transport/ may include this). */
#ifndef BERTH_TRANSPORT_INTERNAL_H
#define BERTH_TRANSPORT_INTERNAL_H

#include <libssh2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- known_hosts (known-hosts.c) ------------------------------------------
 *
 * The file is read line by line: "[marker] patterns keytype base64 [comment]".
 * A line that cannot be parsed (unknown marker, bad base64, a key blob whose
 * own type is not the type field) is skipped, and the lines after it still
 * count.  The name looked up is "host" for port 22 and "[host]:port"
 * otherwise, lower-cased, exactly as OpenSSH writes and looks it up: an entry
 * for one port never matches another.  Patterns may use '*', '?' and '!';
 * hashed entries (|1|base64 salt|base64 HMAC-SHA1) match by HMAC of that
 * name.  "@cert-authority" lines are ignored (Berth takes no certificates). */

enum known_host_verdict {
        KNOWN_HOST_UNKNOWN,     /* no entry for this host and port */
        KNOWN_HOST_MATCH,       /* an entry holds exactly this key */
        KNOWN_HOST_CHANGED,     /* entries for the host, none with this key */
        KNOWN_HOST_REVOKED,     /* an "@revoked" entry holds this key */
};

/* The libssh2 host-key methods for the key types path holds for host:port,
 * in file order, comma-separated ("ssh-ed25519,rsa-sha2-512,..."), into a
 * new string in *ret (NULL when the file has no usable entry for it or does
 * not exist).  0 or -errno (a file that exists and cannot be read). */
int known_hosts_methods(const char *path, const char *host, unsigned port, char **ret);

/* Checks key (an SSH wire-format blob) for host:port against path.  Stores
 * the verdict and, for MATCH, CHANGED and REVOKED, the line number of the
 * entry in question (for CHANGED, the first entry of the key's own type, or
 * the first entry).  A missing file is UNKNOWN.  0 or -errno. */
int known_hosts_check(const char *path, const char *host, unsigned port, const uint8_t *key, size_t n,
                      enum known_host_verdict *ret_verdict, unsigned *ret_line);

/* Appends "name keytype base64" for host:port to path, creating the file
 * (0600) and its directory (0700) when missing, and fsyncs it.  0 or -errno
 * with a message. */
int known_hosts_add(const char *path, const char *host, unsigned port, const uint8_t *key, size_t n);

/* The key type named inside a key blob ("ssh-ed25519", ...) into out
 * (size bytes); 0, or -EINVAL when the blob is malformed. */
int key_blob_type(const uint8_t *key, size_t n, char *out, size_t size);

/* The name known_hosts uses for host:port, lower-cased; the caller frees. */
char *known_hosts_name(const char *host, unsigned port);

/* ---- sessions (ssh.c), shared with channel.c ------------------------------ */

struct ssh_session {
        LIBSSH2_SESSION *ssh;
        int fd;
        char *name;             /* user@host:port, for messages */
        int64_t io_timeout_ns;
        int64_t keepalive_ns;
        int64_t last_rx_ns;     /* when the server was last heard from */
        int wait_err;
        bool handshaken;        /* a disconnect message can be sent */
        bool dead;              /* timed out or reset: no more I/O, see session_kill */
        unsigned channels;
};

/* What session_wait() returns through the retry macros: the real error is
 * in s->wait_err (libssh2's codes are small negatives, errnos too). */
#define WAIT_FAILED INT32_MIN

/* Waits until the socket is ready for what libssh2 is blocked on, sending a
 * keepalive when one is due; 0, or WAIT_FAILED with s->wait_err set (after
 * the I/O timeout the session is killed). */
int session_wait(struct ssh_session *s);

/* Calls an int-returning libssh2 function until it stops saying EAGAIN. */
#define RETRY(s, call)                                                          \
        ({                                                                      \
                int _rc;                                                        \
                while ((_rc = (call)) == LIBSSH2_ERROR_EAGAIN)                  \
                        if (session_wait(s) < 0) {                              \
                                _rc = WAIT_FAILED;                              \
                                break;                                          \
                        }                                                       \
                _rc;                                                            \
        })

/* Fails with libssh2's words for rc (or session_wait's error when rc is
 * WAIT_FAILED), saying what we were doing; returns -errno.  A broken or
 * timed-out connection kills the session. */
int ssh_fail(struct ssh_session *s, int rc, const char *what);

/* Shuts the socket down so that every later libssh2 call fails at once. */
void session_kill(struct ssh_session *s);

/* ---- ranged reads through a cache of windows (window.c) -------------------
 *
 * The ssh and s3 backends serve get_range of small pieces (a pack's
 * records) from windows of `size` bytes, aligned in the object (window i
 * is [i * size, (i + 1) * size)), and keep the last `slots` of them.  Every
 * window is fetched once however many readers want it at the same time:
 * the others wait for it.  With `threads` > 0, a reader that had to fetch
 * a whole window, or reads past the middle of one, has the next `ahead`
 * windows of that object (not past its end, when known) loaded by
 * read-ahead threads (started when first needed), so a forward reader
 * rarely waits for a request; a guess never evicts another unread guess.
 * Objects must be immutable.  Memory: slots * size at most.  Thread-safe. */

#define WINDOW_NAME_MAX 96      /* longer names: not cached */

/* Reads up to len bytes of name at offset into buf (len is the window size
 * or less, offset aligned to it) and stores how many in *ret_n: fewer when
 * the object ends first, 0 when it ends before offset; and the object's
 * size in *ret_size when the reply says (else 0: read-ahead then learns
 * the end from a short window).  0, or -errno (with a message, or none for
 * -ENOENT). */
typedef int (*window_fetch_fn)(void *ud, const char *name, uint64_t offset, size_t len, void *buf,
                               size_t *ret_n, uint64_t *ret_size);

struct window_cache_stats {
        uint64_t reads;         /* pieces served (a read across windows is several) */
        uint64_t misses;        /* a reader found its window neither kept nor loading */
        uint64_t fetches;       /* requests made, read-ahead included */
        uint64_t ahead;         /* windows loaded by read-ahead */
        uint64_t ahead_used;    /* ... that a reader then read */
        uint64_t ahead_wasted;  /* ... that were dropped unread */
        uint64_t wait_ns;       /* readers' time waiting for windows */
};

struct window_cache;
struct window_cache *window_cache_new(size_t size, unsigned slots, unsigned ahead, unsigned threads,
                                      window_fetch_fn fetch, void *ud);
/* Stops the read-ahead threads (waits for loads in flight) and frees; NULL is fine. */
void window_cache_free(struct window_cache *wc);
/* Copies [offset, offset + len) of name into buf through the windows.  0;
 * -EIO with no message when the object ends first; -ENAMETOOLONG for a
 * name of WINDOW_NAME_MAX or more (the caller reads it directly); or the
 * fetch's error. */
int window_cache_read(struct window_cache *wc, const char *name, uint64_t offset, size_t len, void *buf);
void window_cache_get_stats(struct window_cache *wc, struct window_cache_stats *ret);

#endif
