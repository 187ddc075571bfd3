/* s3.h — a repository in a bucket of S3-compatible object storage (AWS S3,
 * Ceph's RADOS Gateway, ...): a backend (snapshot/backend.h) whose objects
 * are "<prefix>/<name>" keys, reached with libcurl and its SigV4 signing.
 *
 * Objects map one to one: packs, snapshots and config are written once
 * with a conditional create (If-None-Match: *), so hosts sharing a bucket
 * never overwrite each other; this side keeps only a cache (catalog,
 * spool, lock) that repo_open_backend() maintains.  Errors are -errno with
 * error_set()'s message; secrets never appear in a message.
 */
#ifndef BERTH_TRANSPORT_S3_H
#define BERTH_TRANSPORT_S3_H

#include <stdbool.h>
#include <stdint.h>

#include "../snapshot/snapshot.h"

/* A parsed s3://BUCKET[/PREFIX][?endpoint=URL&region=R&style=path|virtual&insecure=1]. */
struct s3_url {
        char *bucket;      /* [a-z0-9.-], 3..63 characters */
        char *prefix;      /* "" or "a/b" (object-name characters, no leading or trailing '/') */
        char *endpoint;    /* "http[s]://host[:port]" (no path); NULL: AWS's for the region */
        char *region;      /* NULL: from the environment, else us-east-1 */
        bool virtual_host; /* bucket in the host name; default: path style with an endpoint */
        bool insecure;     /* plain http allowed to a host that is not a loopback one */
};

/* Parses `url`; 0 or -EINVAL with a message naming what is wrong.  *ret
 * is replaced (s3_url_clear it). */
int s3_url_parse(const char *url, struct s3_url *ret);
void s3_url_clear(struct s3_url *u);
/* true when `url` starts with "s3://". */
bool s3_url_is(const char *url);

struct s3_credentials {
        const char *access_key;
        const char *secret_key;
        const char *session_token;  /* NULL: none */
};

/* Calls fn(ud, key, size) for each <Contents> of a ListObjectsV2 reply in
 * xml[0..len) (key as sent, the prefix included); sets *ret_truncated and
 * *ret_token (malloc'd, NULL when none) from IsTruncated and
 * NextContinuationToken.  0, fn's negative return, or -BERTH_EPROTO with a
 * message when the reply is not a well-formed listing. */
int s3_parse_list(const char *xml, size_t len, int (*fn)(void *ud, const char *key, uint64_t size), void *ud,
                  bool *ret_truncated, char **ret_token);

/* Opens the bucket prefix as a backend, checking that the bucket exists and
 * the credentials are accepted with one listing request: a one-line error
 * for bad credentials (-EACCES), a missing bucket (-ENOENT), an endpoint
 * that cannot be reached (-ECONNREFUSED, -ETIMEDOUT) or refused plain
 * http (-EINVAL).  Requests use a pool of curl handles (connections kept
 * between calls), are retried with backoff on 5xx, timeouts and resets,
 * and sign x-amz-content-sha256 with the payload's SHA-256.  `where` is
 * for messages. */
int backend_s3_open(const struct s3_url *u, const struct s3_credentials *c, bool writable, const char *where,
                    struct backend **ret);
/* true for a backend backend_s3_open() made. */
bool backend_is_s3(const struct backend *b);
/* Requests sent and retried so far. */
void backend_s3_stats(struct backend *b, uint64_t *ret_requests, uint64_t *ret_retries);

#endif
