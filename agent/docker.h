/* docker.h — a small Docker Engine API client (agent/ only).
 *
 * Talks HTTP over the daemon's unix socket with libcurl ($DOCKER_HOST as
 * unix://PATH, default /var/run/docker.sock) and parses JSON with json-c.
 * Only the endpoints Berth needs: list and inspect volumes and containers,
 * pause/unpause, stop/start, exec (for hooks) and create volume.  Functions
 * return 0 or -errno with a reason in error_message().
 */
#ifndef BERTH_DOCKER_H
#define BERTH_DOCKER_H

#include <json-c/json.h>

#include "../common/common.h"

struct docker;

/* Connects to the daemon, retrying with backoff for up to `wait` seconds
 * while it is not reachable yet. */
int docker_open(uint64_t wait, struct docker **ret);
void docker_free(struct docker *d);
static inline void docker_freep(struct docker **d) { docker_free(*d); }
/* Whether a pending interrupt (SIGINT/SIGTERM) aborts requests; off while
 * containers are being put back. */
void docker_set_interruptible(struct docker *d, bool on);

struct docker_mount {
        char *type;        /* volume, bind, tmpfs, npipe */
        char *name;        /* volume name (volume mounts) */
        char *source;      /* host path */
        char *destination; /* path in the container */
        bool rw;
};

struct docker_container {
        char *id;
        char *name;        /* without the leading '/' */
        char *state;       /* created, running, paused, restarting, removing, exited, dead */
        char *image;
        json_object *labels; /* object, never NULL */
        struct docker_mount *mounts;
        size_t nmounts;
};

struct docker_volume {
        char *name;
        char *driver;
        char *mountpoint;
        char *scope;
        char *created;
        json_object *labels;  /* object, never NULL */
        json_object *options; /* object, never NULL */
};

void docker_container_clear(struct docker_container *c);
void docker_containers_free(struct docker_container *list, size_t n);
void docker_volume_clear(struct docker_volume *v);
void docker_volumes_free(struct docker_volume *list, size_t n);

/* Label value or NULL. */
const char *docker_label(json_object *labels, const char *key);

/* All containers, running or not. */
int docker_containers(struct docker *d, struct docker_container **ret, size_t *ret_n);
/* One container by id or name; -BERTH_ENOTFOUND when there is none. */
int docker_container_inspect(struct docker *d, const char *id, struct docker_container *ret);
int docker_volumes(struct docker *d, struct docker_volume **ret, size_t *ret_n);
/* -BERTH_ENOTFOUND when there is no such volume. */
int docker_volume_inspect(struct docker *d, const char *name, struct docker_volume *ret);
int docker_volume_create(struct docker *d, const char *name, const char *driver, json_object *options,
                         json_object *labels);

/* "pause", "unpause", "stop" (with stop_timeout seconds, or the
 * container's own when negative) or "start".  A container already in the
 * wanted state is success. */
int docker_container_action(struct docker *d, const char *id, const char *action, int stop_timeout);

/* Runs `sh -c cmd` in a running container, waits up to timeout seconds;
 * *ret_exit is its exit status, output gets stdout and stderr. */
int docker_exec(struct docker *d, const char *id, const char *cmd, int timeout, int *ret_exit, struct buf *output);

/* The volume and container events between since and until (seconds since
 * the epoch; the daemon answers at once when until is not in the future):
 * *ret_changes is how many of them create, destroy, start, rename or update
 * something, i.e. call for a new look at the volumes. */
int docker_events(struct docker *d, int64_t since, int64_t until, unsigned *ret_changes);

#endif
