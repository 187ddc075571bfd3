/* remote.h — the far half of migrate and restore --host: a Docker host
 * reached over SSH, its repository, and restores run there. */
#ifndef BERTH_REMOTE_H
#define BERTH_REMOTE_H

#include "agent.h"
#include "../transport/transport.h"

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
