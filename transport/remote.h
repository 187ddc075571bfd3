/* remote.h — a repository on another host: a backend (snapshot/backend.h)
 * whose objects are reached over SSH through `berth serve --stdio` and the
 * wire protocol (protocol.h).
 *
 * The far side does the repository's locking (OPEN takes the lock its mode
 * needs and holds it until the connection ends) and checks every upload
 * before it becomes visible; this side keeps only a cache (catalog, spool)
 * that repo_open_backend() maintains.  Errors are -errno with error_set()'s
 * message; a message from the peer is escaped before it is quoted.
 */
#ifndef BERTH_TRANSPORT_REMOTE_H
#define BERTH_TRANSPORT_REMOTE_H

#include <stdbool.h>

#include "../snapshot/snapshot.h"
#include "transport.h"

/* A writer's lock on the far side may still be held, for a few seconds, by
 * the serve of a client that just died (it is finishing the pack it was
 * receiving, or sshd has yet to tell it), so a writer waits this long for
 * the lock even without --lock-wait: a rerun right after a killed backup
 * just works. */
#define REMOTE_LOCK_GRACE 10

struct remote_options {
        const char *remote_berth;       /* the far side's berth: NULL: "berth" (in its PATH) */
        const char *path;               /* the repository's directory there */
        enum repo_mode mode;            /* READ: read; WRITE: write; REBUILD: maintenance */
        unsigned lock_wait;             /* seconds the far side waits for its lock; anything
                                         * but a reader waits REMOTE_LOCK_GRACE at least */
        const char *where;              /* for messages: "ssh://user@host/path" */
};

/* Runs `<remote_berth> serve --stdio` in a new channel of session s (which
 * the backend takes over, whatever the result: backend_free() closes it),
 * shakes hands and OPENs o->path.  Returns 0 and the backend in *ret, or
 * -ENOENT with a message saying to install berth there or pass
 * --remote-berth when the far side has no such command, the far side's
 * error (ENOENT, BERTH_EFORMAT, EACCES, BERTH_ELOCKED, ...) with its
 * message, or -BERTH_EPROTO / -errno for a broken connection.
 *
 * The backend's calls hold one mutex for each request and its reply (one
 * channel, one request at a time): reader threads calling get_range at
 * once are served one after the other.  A small get_range reads 1 MiB from
 * its offset and keeps the last four such windows, so a pack's chunks read
 * in order cost about one round trip per MiB (a 96 MiB restore: ~110
 * requests for ~2700 chunks), and a lone small read up to 1 MiB more bytes.
 * Writing a "snapshots/<id>" object also ANNOUNCEs the id, so the far
 * side's own catalog indexes it. */
int backend_ssh_open(struct ssh_session *s, const struct remote_options *o, struct backend **ret);

/* The repository id the far side gave at OPEN (hex digits only, checked);
 * owned by the backend.  NULL for a backend that is not an SSH one. */
const char *backend_ssh_repo_id(struct backend *b);

/* Bytes written to and read from the channel so far (frames included). */
void backend_ssh_traffic(struct backend *b, uint64_t *ret_sent, uint64_t *ret_received);

#endif
