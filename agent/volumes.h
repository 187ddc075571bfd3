/* volumes.h — Docker volumes (and bind mounts) as backup targets. */
#ifndef BERTH_VOLUMES_H
#define BERTH_VOLUMES_H

#include "docker.h"

struct volume_target {
        char *name;              /* snapshot name: the volume's, or "container:/path" */
        char *path;              /* the host directory holding the data */
        const char *kind;        /* "volume" or "bind" */
        struct docker_volume vol;/* kind "volume" */
        bool anonymous;          /* a 64-hex volume made by a Dockerfile VOLUME */
        json_object *mounts;     /* [{container, container_id, destination, rw}] */
        size_t *users;           /* indices of the containers mounting it */
        size_t nusers;
};

void volume_target_clear(struct volume_target *t);
void volume_targets_free(struct volume_target *list, size_t n);

/* Targets for volumes named on the command line. */
int volume_targets_named(struct docker *d, const struct docker_container *all, size_t nall, char *const *names,
                         size_t n, struct volume_target **ret, size_t *ret_n);
/* Every volume on the host; ones without a local directory are skipped
 * with a warning and counted. */
int volume_targets_all(struct docker *d, const struct docker_container *all, size_t nall, struct volume_target **ret,
                       size_t *ret_n, unsigned *ret_skipped);
/* A container's named and anonymous volumes, and its bind mounts when
 * `binds`; tmpfs and skipped binds are reported. */
int volume_targets_container(struct docker *d, const struct docker_container *all, size_t nall, const char *container,
                             bool binds, struct volume_target **ret, size_t *ret_n);

/* What a snapshot of the target records: {kind, volume: {name, driver,
 * options, labels, mountpoint, scope, anonymous} | source, mounts}. */
json_object *volume_target_meta(const struct volume_target *t);

/* Bytes allocated under path, like du (no symlinks, one filesystem). */
uint64_t disk_usage(const char *path);

#endif
