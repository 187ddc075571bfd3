/* serve.h — the far end of the wire protocol: `berth serve --stdio`.
 *
 * serve_run() answers one client on a wire_io (stdin/stdout for --stdio)
 * as protocol.h specifies, over a repository on this host that the client
 * OPENs.  It trusts nothing it receives: every frame is bounded by the
 * decoder, object names are limited to a repository's objects ("config",
 * "packs/...", "snapshots/..."), an upload is spooled in the repository's
 * tmp/ and checked (size, SHA-256, and for a pack every chunk against its
 * id) before it becomes visible, and nothing is written outside the
 * repository.  It logs at debug level only and never exits: the caller
 * (agent/cmd-serve.c) decides the exit status.
 *
 * Where protocol.h leaves a choice:
 *  - Objects are never replaced (backend.h: an object is immutable): a PUT
 *    without WIRE_PUT_CREATE of a name that holds other bytes is ERROR
 *    EEXIST (EPERM under --append-only); the same bytes again are OK.
 *  - A request the open mode does not allow (PUT or ANNOUNCE when opened
 *    for reading, DELETE unless opened for maintenance) is ERROR EROFS.
 *  - Maintenance mode opens the repository as REPO_REBUILD, without its
 *    catalog: HAVE and ANNOUNCE are refused there.
 *  - A stored pack is recorded in the catalog at once (HAVE counts its
 *    chunks); ANNOUNCE checks that the catalog knows every chunk the
 *    snapshot references, then indexes it.
 */
#ifndef BERTH_TRANSPORT_SERVE_H
#define BERTH_TRANSPORT_SERVE_H

#include <stdbool.h>
#include <stddef.h>

#include "protocol.h"

struct serve_options {
        const char *const *restrict_to; /* --restrict-to-path DIRs (resolved by serve_run) */
        size_t nrestrict;               /* 0: any path */
        bool append_only;               /* --append-only */
        const char *software_version;   /* for WELCOME */
};

/* Serves one connection until BYE or the end of the input.  Returns 0 after
 * BYE or a clean end of stream between frames; -BERTH_EPROTO when the peer
 * broke the protocol (an ERROR frame was sent when possible), or the io's
 * -errno, or -errno when a --restrict-to-path DIR cannot be resolved; with
 * error_set()'s message. */
int serve_run(const struct serve_options *o, const struct wire_io *io);

#endif
