/* backend.h — where a repository's objects live.
 *
 * A repository's data is a set of immutable objects named by relative
 * keys: "config", "packs/ab/<64 hex>", "snapshots/<64 hex>".  A backend
 * stores them and nothing else: a local directory (backend-local.c), the
 * same directory on another host over SSH (transport/backend-ssh.c), later
 * a bucket prefix on S3-compatible storage.  The engine reaches objects only
 * through these calls, so it never knows where its bytes live: no call
 * takes or returns a path or a descriptor of the repository.
 *
 * It is not the catalog (a local SQLite file), the lock, nor the spool in
 * which the pack writer builds a pack before publishing it: those are
 * local files that repo.c and pack.c own.  An object is never modified:
 * put creates one only if its name is free, delete removes a whole one.
 *
 * Names: relative, components separated by single '/', each made of
 * [A-Za-z0-9_.-] and not starting with '.'; anything else is refused with
 * -EINVAL before it reaches an implementation (backend.c).
 *
 * Errors are -errno.  -ENOENT ("no such object") is an answer, not a
 * failure, and sets no message; get, get_range and stat set none either
 * (their callers name the object in their own words).  put, put_file, list
 * and delete describe other failures with error_set().  Written for
 * snapshot/ and public through snapshot.h, for transport/ (serve.c, later an SSH
 * backend) and an S3 module.
 */
#ifndef BERTH_SNAPSHOT_BACKEND_H
#define BERTH_SNAPSHOT_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/common.h"

struct backend;

/* A finished local file to publish as an object (see put_file): the pack
 * writer's spool.  `fd` is open for reading (and writing); `dirfd`/`name`
 * name the same file, so a backend on the same filesystem may link it
 * instead of copying its bytes. */
struct backend_spool {
        int dirfd;
        const char *name;
        int fd;
        uint64_t size;
};

/* list() calls this for every object under the prefix; a negative return
 * stops the listing and is returned by list(). */
typedef int (*backend_list_fn)(void *ud, const char *name, uint64_t size);

struct backend_ops {
        /* Reads a whole object of at most `max` bytes into *ret (replaced;
         * the caller frees it with buf_free()).  0, -ENOENT, -EFBIG when it
         * is larger, or -errno.  Blocks on I/O; thread-safe. */
        int (*get)(struct backend *b, const char *name, size_t max, struct buf *ret);
        /* Reads len bytes at offset into buf.  0, -ENOENT, -EIO when the
         * object ends before offset + len, or -errno.  Meant for many small
         * reads of the same few big objects (packs): implementations keep
         * handles open between calls.  Thread-safe: reader threads call it
         * at once. */
        int (*get_range)(struct backend *b, const char *name, uint64_t offset, size_t len, void *buf);
        /* The object's size in *ret_size.  0, -ENOENT, or -errno.
         * Thread-safe. */
        int (*stat)(struct backend *b, const char *name, uint64_t *ret_size);
        /* Calls fn(ud, name, size) for every object whose name starts with
         * `prefix` ("" or ending in '/': "packs/", "snapshots/"), in no
         * particular order, names in full ("packs/ab/ab12…"; `name` is
         * valid during the call only).  0, fn's negative return, or -errno.
         * A missing prefix lists nothing.  Blocks for the whole listing (a
         * remote one: one round trip per page); objects put meanwhile may
         * or may not be listed.  Thread-safe. */
        int (*list)(struct backend *b, const char *prefix, backend_list_fn fn, void *ud);
        /* Creates an object from memory (data stays the caller's), only if
         * its name is free, and durably before it returns.  1 when
         * created, 0 when an object of that name with these very bytes
         * exists (success for content-addressed names), -EEXIST when one
         * with other bytes exists (never replaced), -EROFS when opened
         * read-only, -errno.  On failure nothing new is visible under the
         * name.  Blocks (writes, syncs).  Thread-safe for distinct names;
         * writers of one repository are serialized by its lock anyway. */
        int (*put)(struct backend *b, const char *name, const void *data, size_t len);
        /* put() for a big object whose bytes are a local file the caller
         * wrote (`f`, read with pread: its offset is not used).  The same
         * returns, blocking and thread-safety.  The file, its name and
         * descriptor stay the caller's, who removes and closes them
         * afterwards, whatever the result: a backend may link it (the
         * local one, on the same file system) or send its bytes. */
        int (*put_file)(struct backend *b, const char *name, const struct backend_spool *f);
        /* Removes an object.  0, -ENOENT, -EROFS, or -errno.  Durable
         * before it returns; a reader holding it open (get_range) may
         * still finish its read.  Blocks.  Thread-safe. */
        int (*delete)(struct backend *b, const char *name);
        /* Optional (NULL: the backend cannot tell; backend_lacks() is then
         * -EOPNOTSUPP): sets bit i (byte i/8, bit i%8) of ret_lack ((n+7)/8
         * bytes, all written) when the repository does not hold chunk
         * ids[i], as the repository's own index says (a remote one asks
         * its far side, whatever this host's cache believes).  n <=
         * BACKEND_LACKS_MAX.  0 or -errno with a message.  Blocks (one
         * round trip).  Thread-safe. */
        int (*lacks)(struct backend *b, const uint8_t (*ids)[32], size_t n, uint8_t *ret_lack);
        /* Optional (NULL: backend_replace() is -EOPNOTSUPP): the one
         * exception to "never modified", for small mutable objects such as
         * the prune lease.  Replaces object `name` with data[0..len) only
         * if it holds exactly old[0..oldlen) now, atomically on the server
         * (compare-and-swap: S3's If-Match on the ETag read with those
         * bytes).  0 when replaced, -ESTALE when it holds other bytes
         * (nothing changed), -ENOENT when it is gone, -EOPNOTSUPP with a
         * message when the server ignores the condition, -errno with a
         * message.  Blocks.  Thread-safe. */
        int (*replace)(struct backend *b, const char *name, const void *old, size_t oldlen, const void *data,
                       size_t len);
        /* Frees the implementation (b->impl), closing what it holds.  No
         * other call may be running. */
        void (*free)(struct backend *b);
};

struct backend {
        const struct backend_ops *ops;
        void *impl;
        char *where;             /* for messages: "/var/lib/berth", later "ssh://…" */
        bool writable;
};

/* ---- backend.c: the calls, with names checked ------------------------------ */

/* Each backend_*() call checks the name (-EINVAL), refuses writes to a
 * read-only backend (-EROFS, with a message) and calls the op above: the
 * op's contract is the call's. */

/* true when `name` is a valid object name (see above). */
bool backend_name_valid(const char *name);
int backend_get(struct backend *b, const char *name, size_t max, struct buf *ret);
int backend_get_range(struct backend *b, const char *name, uint64_t offset, size_t len, void *buf);
int backend_stat(struct backend *b, const char *name, uint64_t *ret_size);
int backend_list(struct backend *b, const char *prefix, backend_list_fn fn, void *ud);
int backend_put(struct backend *b, const char *name, const void *data, size_t len);
int backend_put_file(struct backend *b, const char *name, const struct backend_spool *f);
int backend_delete(struct backend *b, const char *name);
/* The replace op; -EOPNOTSUPP (no message) when the backend has none. */
int backend_replace(struct backend *b, const char *name, const void *old, size_t oldlen, const void *data, size_t len);
#define BACKEND_LACKS_MAX 65536
/* The lacks op; -EOPNOTSUPP (no message) when the backend has none. */
int backend_lacks(struct backend *b, const uint8_t (*ids)[32], size_t n, uint8_t *ret_lack);
/* Frees the backend; accepts NULL. */
void backend_free(struct backend *b);
static inline void backend_freep(struct backend **b) { backend_free(*b); }
/* Allocates a backend around ops and impl (for implementations). */
struct backend *backend_new(const struct backend_ops *ops, void *impl, const char *where, bool writable);

/* ---- backend-local.c: a directory on this host ------------------------------ */

/* Opens the directory `path` as a backend (read-only unless `writable`).
 * -errno when it cannot be opened (-ENOENT when it does not exist); sets
 * no message.  Its put and put_file write temporary files in path/tmp/,
 * which a writer's recovery empties. */
int backend_local_open(const char *path, bool writable, struct backend **ret);
/* true for a backend backend_local_open() made. */
bool backend_is_local(const struct backend *b);
/* Creates path (and missing parents, mode 0700) and the directories a
 * local repository needs: packs/, snapshots/, tmp/.  0 or -errno, with a
 * message. */
int backend_local_init(const char *path);

#endif
