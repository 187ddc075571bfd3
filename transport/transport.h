/* transport.h — SSH sessions to other hosts, and the byte pipe to a command
 * run there.
 *
 * A session is one authenticated SSH connection made with libssh2 (never the
 * ssh binary).  Before any authentication the server's host key is checked
 * against a known_hosts file that this module reads itself, because
 * libssh2's own matching has traps (see DESIGN.md): an entry is for exactly
 * one host and port ("[host]:port" unless the port is 22), hashed entries
 * (|1|salt|hash) count, a bad line is skipped rather than ending the file,
 * "@revoked" keys are refused and "@cert-authority" lines are ignored.  An
 * unknown host is refused with its key's SHA-256 fingerprint unless the
 * caller accepts new keys (the key is then recorded); a known host whose key
 * differs, of whatever type, is always refused.  Authentication is by public
 * key only: ssh-agent identities, then the identity file given, else
 * ~/.ssh/id_ed25519, id_ecdsa, id_rsa.  Never a password, never agent
 * forwarding.
 *
 * A channel runs one command on the far side; its stdin/stdout are a
 * blocking byte pipe (the `berth serve --stdio` protocol runs over it) and
 * its stderr is collected on the side.  Everything here is blocking, bounded
 * by the session's I/O timeout: a server that sends nothing at all (not even
 * a keepalive reply) for that long fails the call with -ETIMEDOUT.
 *
 * Not thread-safe: a session and its channels belong to one thread.  Errors
 * are -errno (or -BERTH_EHOSTKEY, -BERTH_EAUTH) with error_set()'s message;
 * nothing here prints above debug level.  Only transport/ includes libssh2.h.
 */
#ifndef BERTH_TRANSPORT_H
#define BERTH_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* ---- destinations ------------------------------------------------------- */

/* Where the user wants to go, as parsed from "user@host:port" or
 * "ssh://user@host:port/path".  Strings are owned (ssh_destination_clear
 * frees them); user and path are NULL when not given, port is 0 when not
 * given.  host never has brackets: "[::1]" is stored as "::1". */
struct ssh_destination {
        char *user;
        char *host;
        unsigned port;
        char *path;
};

/* Parses s, one of:
 *   host  user@host  user@host:port  [v6addr]  user@[v6addr]:port  v6addr
 *   ssh://[user@]host[:port][/path]          (host may be [v6addr])
 * A ':' after the host must be followed by a port (1-65535): a path needs the
 * ssh:// form.  Names are checked (no control characters or spaces, nothing
 * starting with '-', no '@' or ':' in a user).  Returns 0 and fills *ret, or
 * -EINVAL with error_set()'s message and *ret untouched. */
int ssh_parse_destination(const char *s, struct ssh_destination *ret);
/* Frees the strings of d and zeroes it; accepts a zeroed struct. */
void ssh_destination_clear(struct ssh_destination *d);

/* ---- sessions ----------------------------------------------------------- */

struct ssh_options {
        const char *user;               /* NULL: the current user's name */
        const char *host;               /* a name or an address, IPv6 without brackets */
        unsigned port;                  /* 0: 22 */
        const char *identity_file;      /* NULL: ~/.ssh/id_ed25519, id_ecdsa, id_rsa */
        const char *known_hosts;        /* NULL: ~/.ssh/known_hosts */
        bool accept_new_host_key;       /* record an unknown host's key and go on */
        unsigned connect_timeout;       /* seconds for TCP connect, handshake, auth; 0: 30 */
        unsigned io_timeout;            /* seconds without a byte from the server; 0: 120 */
        unsigned keepalive_interval;    /* seconds between keepalives; 0: 15.  At least 2
                                         * (libssh2's floor), at most a third of the I/O
                                         * timeout, which grows to three intervals */
};

struct ssh_session;

/* Connects to o->host, checks its host key, authenticates.  Blocks up to
 * the connect timeout for each step.  Returns 0 and a session in *ret (free
 * it with ssh_session_free), or:
 *   -BERTH_EHOSTKEY  the host is unknown (message: key type, SHA256:
 *                    fingerprint and --accept-new-host-key), its key changed
 *                    (message: known_hosts file and line) or is revoked;
 *   -BERTH_EAUTH     every key was refused (message: user, host, what was
 *                    tried);
 *   -ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH, -ENOENT (no such host), -EIO
 *                    (protocol failure, libssh2's words in the message). */
int ssh_connect(const struct ssh_options *o, struct ssh_session **ret);

/* Disconnects (politely, without blocking past the I/O timeout) and frees;
 * accepts NULL.  Channels must be freed first. */
void ssh_session_free(struct ssh_session *s);
static inline void ssh_session_freep(struct ssh_session **s) { ssh_session_free(*s); }

/* "user@host:port" as connected, for messages; owned by the session. */
const char *ssh_session_name(const struct ssh_session *s);

/* The SHA-256 fingerprint of a host key blob (the SSH wire encoding) in
 * OpenSSH's form, "SHA256:" and unpadded base64, into out (at least
 * SSH_FINGERPRINT_MAX bytes). */
#define SSH_FINGERPRINT_MAX 64
void ssh_fingerprint(const void *blob, size_t n, char *out);

/* ---- channels ------------------------------------------------------------ */

struct ssh_channel;

/* Runs command on the far side (through the user's shell, as ssh does) in a
 * new channel; no pty, no agent forwarding, no environment.  Returns 0 and
 * the channel in *ret, or -errno (-EIO when the server refused). */
int ssh_exec(struct ssh_session *s, const char *command, struct ssh_channel **ret);

/* Reads exactly n bytes of the command's stdout unless it ends first.
 * Returns the count read: n, fewer only at end of file (0 when the stream
 * had already ended), or -errno.  While waiting, the command's stderr is
 * collected (see ssh_channel_stderr) so it can never stall the channel. */
ssize_t ssh_channel_read(struct ssh_channel *ch, void *p, size_t n);

/* Writes all n bytes to the command's stdin.  Returns 0 or -errno (-EPIPE
 * after ssh_channel_send_eof or when the far side closed).  Blocks while the
 * far side's window is full; its stdout keeps arriving into libssh2's
 * buffers meanwhile, up to the channel window (2 MiB), after which a
 * command that does not read its stdin stalls: a protocol over this pipe
 * must not have both ends write unboundedly without reading. */
int ssh_channel_write(struct ssh_channel *ch, const void *p, size_t n);

/* Closes the command's stdin (it reads end of file).  0 or -errno. */
int ssh_channel_send_eof(struct ssh_channel *ch);

/* Reads up to n bytes of the command's stderr: what was collected so far
 * first, otherwise blocks until some arrives.  Returns the count, 0 at end
 * of file, or -errno.  Stdout arriving meanwhile is kept for
 * ssh_channel_read, up to 4 MiB; past that it stays in libssh2's window and
 * a command that keeps writing stdout stalls until it is read. */
ssize_t ssh_channel_read_stderr(struct ssh_channel *ch, void *p, size_t n);

/* The stderr collected and not yet read, NUL-terminated (at most 64 KiB:
 * beyond that the first 64 KiB are kept); owned by the channel, valid until
 * the next call on it. */
const char *ssh_channel_stderr(struct ssh_channel *ch);

/* Sends EOF if not yet sent, discards the rest of stdout (stderr is still
 * collected), waits for the command to end and closes the channel.  With
 * ret_exit_status, stores the command's exit status, or 128 + the signal
 * number when a signal killed it (255 when the server gave neither).  The
 * channel stays to be freed.  0 or -errno. */
int ssh_channel_close(struct ssh_channel *ch, int *ret_exit_status);

/* Frees a channel (closing it without waiting, if still open); accepts
 * NULL. */
void ssh_channel_free(struct ssh_channel *ch);
static inline void ssh_channel_freep(struct ssh_channel **ch) { ssh_channel_free(*ch); }

#endif
