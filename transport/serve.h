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
