/* internal.h — what the files of transport/ share and nobody else sees. */
#ifndef BERTH_TRANSPORT_INTERNAL_H
#define BERTH_TRANSPORT_INTERNAL_H

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

#endif
