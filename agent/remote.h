/* remote.h — berth commands run on another host over SSH: the far half of
 * migrate and restore --host (a Docker host, its repository, restores run
 * there) and the maintenance of an ssh:// repository on its host. */
#ifndef BERTH_REMOTE_H
#define BERTH_REMOTE_H

#include "agent.h"
#include "../transport/transport.h"

/* ---- a berth command on another host (remote-exec.c) ---- */

/* Appends s quoted as one word for the far side's shell, and a space. */
void remote_put_word(struct buf *b, const char *s);
/* The SSH options for d: the global settings' identity, known hosts. */
void remote_ssh_options(const struct ssh_destination *d, struct ssh_options *o);
/* "[user@]host[:port]" ([v6addr] bracketed), for messages; caller frees. */
char *remote_dest_name(const struct ssh_destination *d);

/* What a command run on the far side did. */
struct remote_run {
        int status;       /* its exit status (128 + signal, 255 when unknown) */
        char *out;        /* its stdout, NUL-terminated (what was not relayed) */
        char *err;        /* its stderr, trimmed and escaped ("" when relayed) */
};
void remote_run_clear(struct remote_run *r);
/* error_set(ENOENT) for a far side where berth (exit 126/127) cannot be
 * run: install it, or --remote-berth; err is its stderr (escaped). */
int remote_not_found(const char *berth, const char *shown, const char *err);

/* Runs cmd (words already quoted, see remote_put_word) in a new exec
 * channel of session s; its stdin reads end of file at once.  With
 * relay_out, its stdout is copied to ours as it comes (whole lines) and
 * its stderr to ours at the end, control characters made visible.
 * Returns 0 and fills *ret whatever the command's exit status, or -errno
 * when it could not be run. */
int remote_exec(struct ssh_session *s, struct buf *cmd, bool relay_out, struct remote_run *ret);
/* The same in a new session to d's host, collecting the output. */
int remote_run_at(const struct ssh_destination *d, struct buf *cmd, struct remote_run *ret);

/* For `forget`, `prune` and `tag` on an ssh:// repository (settings.repo):
 * runs `<berth> -r PATH <cmd> <args...>` on its host, where its catalog
 * and lock live, with this side's --json, -q, -v and --lock-wait (and TZ),
 * each word quoted; relays its output and returns its exit status.  When
 * the command may have changed the repository (!dry_run), the local cache
 * is then brought up to date.  A key restricted to `berth serve` (a forced
 * command) is told apart first and refused with exit status 1, running
 * nothing. */
int remote_maintenance(const char *cmd, const char *const *args, size_t nargs, bool dry_run);

/* ---- restore and migrate to a Docker host (remote-restore.c) ---- */

struct remote_host {
        struct ssh_destination d;
        const char *berth;   /* the far side's berth (--remote-berth, default "berth") */
        const char *path;    /* its repository, an absolute path */
        char *shown;         /* [user@]host[:port], for messages */
        char *url;           /* ssh://shown/path */
        struct repo *repo;   /* the far repository, open for writing (remote_host_open) */
        bool created;        /* remote_host_open created it */
};

/* Parses [USER@]HOST[:PORT] and the far repository path for command cmd.
 * Returns EXIT_OK, or the usage error's exit status (said on stderr). */
int remote_host_parse(const char *cmd, const char *host, const char *path, struct remote_host *ret);
/* Opens the far repository for writing, creating it with a remote
 * `berth -r PATH init` (and saying so) when it is missing.  Returns 0 or
 * -errno (error_set). */
int remote_host_open(struct remote_host *h);
void remote_host_clear(struct remote_host *h);

/* Copies snapshot id from src to h's repository (only the chunks it
 * lacks), with progress; prints "sent ..." unless quiet/json.  Returns 0
 * or -errno (error_set, saying nothing was restored). */
int remote_send(struct remote_host *h, struct repo *src, const char *id, struct copy_result *ret);

/* Runs `<berth> -r PATH restore ID --to-volume NAME [--force] --json` on
 * h's host; h->repo must be closed (remote_host_close_repo).  Returns 0
 * with *ret_report its JSON report (NULL when unparsable; the caller puts
 * it), -errno when it could not be run (error_set), or the far side's
 * exit status (1..63, else 1) once its error has been logged. */
int remote_restore(struct remote_host *h, const char *id, const char *volume, bool force, json_object **ret_report);
void remote_host_close_repo(struct remote_host *h);

/* `berth restore SNAPSHOT --host HOST --to-volume NAME`: sends SNAPSHOT
 * from the local repository to remote_repo on HOST (created when missing)
 * and restores it there into Docker volume `volume`.  Prints the result;
 * returns the command's exit status. */
int restore_to_host(const char *snapshot, const char *host, const char *remote_repo, const char *volume, bool force);

#endif
