/* volumes.c — which host directories a backup of volumes or a container
 * means, and what to record about them. */
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "agent.h"
#include "volumes.h"

/* True when path is a mount point (listed in /proc/self/mountinfo). */
static bool is_mounted(const char *path)
{
        FILE *f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return true; /* cannot tell: do not refuse */
        char line[8192];
        bool found = false;
        while (!found && fgets(line, sizeof line, f)) {
                /* field 5 is the mount point (octal escapes for spaces) */
                char *p = line;
                for (int i = 0; i < 4 && p; i++)
                        p = strchr(p + 1, ' ');
                if (!p)
                        continue;
                p++;
                size_t n = strcspn(p, " ");
                found = n == strlen(path) && strncmp(p, path, n) == 0;
        }
        fclose(f);
        return found;
}

static bool all_hex64(const char *s)
{
        return s && strlen(s) == 64 && is_hex(s);
}

void volume_target_clear(struct volume_target *t)
{
        free(t->name);
        free(t->path);
        docker_volume_clear(&t->vol);
        json_object_put(t->mounts);
        free(t->users);
        *t = (struct volume_target){ 0 };
}

void volume_targets_free(struct volume_target *list, size_t n)
{
        for (size_t i = 0; i < n; i++)
                volume_target_clear(&list[i]);
        free(list);
}

static void add_user(struct volume_target *t, const struct docker_container *c, size_t idx, const struct docker_mount *m)
{
        t->users = xrealloc(t->users, (t->nusers + 1) * sizeof *t->users);
        t->users[t->nusers++] = idx;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "container", json_object_new_string(c->name));
        json_object_object_add(o, "container_id", json_object_new_string(c->id));
        json_object_object_add(o, "destination", json_object_new_string(m->destination ? m->destination : ""));
        json_object_object_add(o, "rw", json_object_new_boolean(m->rw));
        json_object_array_add(t->mounts, o);
}

/* Fills a target for a named or anonymous volume. */
static int volume_target(struct docker *d, const char *name, const struct docker_container *all, size_t nall,
                         struct volume_target *t)
{
        *t = (struct volume_target){ .kind = "volume", .mounts = json_object_new_array() };
        int k = docker_volume_inspect(d, name, &t->vol);
        if (k < 0)
                return k;
        for (size_t i = 0; i < nall; i++)
                for (size_t m = 0; m < all[i].nmounts; m++) {
                        const struct docker_mount *dm = &all[i].mounts[m];
                        if (dm->type && strcmp(dm->type, "volume") == 0 && dm->name && strcmp(dm->name, name) == 0)
                                add_user(t, &all[i], i, dm);
                }
        t->anonymous = all_hex64(name) || docker_label(t->vol.labels, "com.docker.volume.anonymous");
        if (t->anonymous && t->nusers > 0) {
                /* A Dockerfile VOLUME: named by who uses it, so it can be found again. */
                const struct docker_container *c = &all[t->users[0]];
                json_object *m0 = json_object_array_get_idx(t->mounts, 0), *dest;
                json_object_object_get_ex(m0, "destination", &dest);
                t->name = xasprintf("%s:%s", c->name, json_object_get_string(dest));
        } else
                t->name = xstrdup(name);
        if (!t->vol.mountpoint || !*t->vol.mountpoint)
                return error_set(ENOTSUP, "volume '%s' (driver '%s') has no local mountpoint: Berth can back up only "
                                          "volumes whose data is a directory on this host",
                                 name, t->vol.driver ? t->vol.driver : "?");
        struct stat st;
        if (stat(t->vol.mountpoint, &st) < 0 || !S_ISDIR(st.st_mode))
                return error_set(ENOTSUP, "volume '%s' (driver '%s'): its mountpoint %s is not a directory on this host",
                                 name, t->vol.driver ? t->vol.driver : "?", t->vol.mountpoint);
        /* A local volume with mount options (nfs, tmpfs, a bind) has its
         * data only while some container has it mounted; otherwise the
         * mountpoint is an empty directory, and backing that up would
         * silently save nothing. */
        json_object *type;
        if (json_object_object_get_ex(t->vol.options, "type", &type) && !is_mounted(t->vol.mountpoint))
                return error_set(ENOTSUP, "volume '%s' is mounted (type=%s) only while a container uses it, and none "
                                          "does now: start one that uses it, then back it up",
                                 name, json_object_get_string(type));
        t->path = xstrdup(t->vol.mountpoint);
        return 0;
}

int volume_targets_named(struct docker *d, const struct docker_container *all, size_t nall, char *const *names,
                         size_t n, struct volume_target **ret, size_t *ret_n)
{
        struct volume_target *list = xcalloc(n ? n : 1, sizeof *list);
        for (size_t i = 0; i < n; i++) {
                int k = volume_target(d, names[i], all, nall, &list[i]);
                if (k < 0) {
                        volume_targets_free(list, i + 1);
                        return k;
                }
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

int volume_targets_all(struct docker *d, const struct docker_container *all, size_t nall, struct volume_target **ret,
                       size_t *ret_n, unsigned *ret_skipped)
{
        struct docker_volume *vols;
        size_t nv, n = 0;
        unsigned skipped = 0;
        int k = docker_volumes(d, &vols, &nv);
        if (k < 0)
                return k;
        struct volume_target *list = xcalloc(nv ? nv : 1, sizeof *list);
        for (size_t i = 0; i < nv; i++) {
                k = volume_target(d, vols[i].name, all, nall, &list[n]);
                if (k == -ENOTSUP) {
                        /* Say so, and go on with the others. */
                        log_warning("%s", error_message());
                        volume_target_clear(&list[n]);
                        skipped++;
                        continue;
                }
                if (k < 0) {
                        volume_targets_free(list, n + 1);
                        docker_volumes_free(vols, nv);
                        return k;
                }
                n++;
        }
        docker_volumes_free(vols, nv);
        *ret = list;
        *ret_n = n;
        *ret_skipped = skipped;
        return 0;
}

int volume_targets_container(struct docker *d, const struct docker_container *all, size_t nall, const char *container,
                             bool binds, struct volume_target **ret, size_t *ret_n)
{
        struct docker_container c;
        int k = docker_container_inspect(d, container, &c);
        if (k < 0)
                return k == -BERTH_ENOTFOUND ? error_set(BERTH_ENOTFOUND, "no container named '%s'", container) : k;
        struct volume_target *list = xcalloc(c.nmounts ? c.nmounts : 1, sizeof *list);
        size_t n = 0;
        for (size_t m = 0; m < c.nmounts && k >= 0; m++) {
                const struct docker_mount *dm = &c.mounts[m];
                const char *type = dm->type ? dm->type : "";
                if (strcmp(type, "volume") == 0) {
                        k = volume_target(d, dm->name, all, nall, &list[n]);
                        if (k == 0)
                                n++;
                } else if (strcmp(type, "bind") == 0 && binds) {
                        struct volume_target *t = &list[n++];
                        *t = (struct volume_target){ .kind = "bind", .mounts = json_object_new_array() };
                        t->name = xasprintf("%s:%s", c.name, dm->destination);
                        t->path = xstrdup(dm->source);
                        for (size_t i = 0; i < nall; i++)
                                for (size_t j = 0; j < all[i].nmounts; j++)
                                        if (all[i].mounts[j].source && strcmp(all[i].mounts[j].source, dm->source) == 0)
                                                add_user(t, &all[i], i, &all[i].mounts[j]);
                } else if (strcmp(type, "bind") == 0)
                        log_notice("skipping bind mount %s -> %s of '%s' (host paths are backed up only with --binds)",
                                   dm->source, dm->destination, c.name);
                else
                        log_notice("skipping %s mount %s of '%s' (it holds no data on disk)", type, dm->destination,
                                   c.name);
        }
        if (k == 0 && n == 0)
                k = error_set(BERTH_ENOTFOUND, "container '%s' has no volumes to back up%s", container,
                              binds ? "" : " (bind mounts need --binds)");
        docker_container_clear(&c);
        if (k < 0) {
                volume_targets_free(list, n + 1);
                return k;
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

json_object *volume_target_meta(const struct volume_target *t)
{
        json_object *o = json_object_new_object();
        json_object_object_add(o, "kind", json_object_new_string(t->kind));
        if (strcmp(t->kind, "volume") == 0) {
                json_object *v = json_object_new_object();
                json_object_object_add(v, "name", json_object_new_string(t->vol.name));
                json_object_object_add(v, "driver", json_object_new_string(t->vol.driver ? t->vol.driver : "local"));
                json_object_object_add(v, "options", json_object_get(t->vol.options));
                json_object_object_add(v, "labels", json_object_get(t->vol.labels));
                json_object_object_add(v, "mountpoint", json_object_new_string(t->vol.mountpoint));
                json_object_object_add(v, "scope", t->vol.scope ? json_object_new_string(t->vol.scope) : NULL);
                json_object_object_add(v, "anonymous", json_object_new_boolean(t->anonymous));
                json_object_object_add(o, "volume", v);
        } else
                json_object_object_add(o, "source", json_object_new_string(t->path));
        json_object_object_add(o, "mounts", json_object_get(t->mounts));
        return o;
}

static uint64_t du_total;

static int du_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
        du_total += (uint64_t)st->st_blocks * 512;
        return 0;
}

uint64_t disk_usage(const char *path)
{
        du_total = 0;
        nftw(path, du_one, 64, FTW_PHYS | FTW_MOUNT);
        return du_total;
}
