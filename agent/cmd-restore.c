/* cmd-restore.c — berth restore: write a snapshot back to disk or into a
 * Docker volume. */
#include <string.h>

#include "agent.h"
#include "quiesce.h"

static const char help[] =
        "Usage: berth [-r REPO] restore SNAPSHOT --target DIR [--include PATH]... [OPTIONS]\n"
        "       berth [-r REPO] restore SNAPSHOT --to-volume NAME [--force] [OPTIONS]\n"
        "\n"
        "Restores SNAPSHOT into DIR, which must not exist or be an empty directory, or\n"
        "into the Docker volume NAME: created through the Docker API with the driver,\n"
        "driver options and labels the snapshot recorded (or an existing empty volume\n"
        "that no running container uses).  A non-empty or in-use volume is refused\n"
        "unless --force, which stops the containers using it, swaps the restored tree\n"
        "in atomically, and starts them again.  A volume whose driver keeps no data on\n"
        "this host is refused.\n"
        "\n"
        "SNAPSHOT is an id or unique id prefix, NAME (its newest snapshot), NAME@latest,\n"
        "or NAME@TIME, the newest snapshot at or before TIME (2026-11-22T10:00 local,\n"
        "or 2026-11-22T09:00:00Z).\n"
        "\n"
        "Everything is restored as it was: contents, type, mode with setuid/setgid/\n"
        "sticky, numeric owner and group (even when this host has no such user),\n"
        "nanosecond mtimes, symlinks, hard links, fifos, device nodes, xattrs, POSIX\n"
        "ACLs and sparse files.  The tree is written to a staging directory next to\n"
        "DIR and renamed into place at the end, so DIR appears whole or not at all.\n"
        "Every chunk is verified against its hash: damaged data fails the restore\n"
        "(naming the pack) and nothing is left behind, unless --partial.\n"
        "\n"
        "Options:\n"
        "  -t, --target DIR     where to restore\n"
        "      --to-volume NAME restore into Docker volume NAME\n"
        "      --force          with --to-volume: replace a non-empty or in-use volume's contents\n"
        "  -i, --include PATH   restore only PATH (a file or a sub-tree) with its parent\n"
        "                       directories; repeatable\n"
        "      --partial        skip files whose data is damaged, restore the rest, exit 3\n"
        "      --json           print the result as a JSON object\n"
        "  -h, --help           this help\n";

/* Restores into Docker volume `name`, creating it like the one backed up. */
static int restore_to_volume(struct repo *repo, const struct catalog_snapshot *s, const char *name, bool force,
                             struct restore_options *o, struct restore_result *res)
{
        _cleanup_(docker_freep) struct docker *d = NULL;
        struct docker_volume v = { 0 };
        struct docker_container *list = NULL, *users = NULL;
        size_t nlist = 0, nusers = 0, running = 0;
        struct quiesce q = { 0 };
        char who[512] = "";
        int r = docker_open(settings.docker_wait, &d);
        if (r < 0)
                return r;

        r = docker_volume_inspect(d, name, &v);
        if (r == -BERTH_ENOTFOUND) {
                /* Like the original: its driver, options and labels. */
                json_object *meta = s->meta ? json_tokener_parse(s->meta) : NULL, *vol = NULL, *drv = NULL, *opts = NULL,
                            *labels = NULL;
                if (meta && json_object_object_get_ex(meta, "volume", &vol)) {
                        json_object_object_get_ex(vol, "driver", &drv);
                        json_object_object_get_ex(vol, "options", &opts);
                        json_object_object_get_ex(vol, "labels", &labels);
                }
                error_clear();
                r = docker_volume_create(d, name, drv ? json_object_get_string(drv) : "local", opts, labels);
                json_object_put(meta);
                if (r == 0) {
                        log_info("created volume '%s'", name);
                        r = docker_volume_inspect(d, name, &v);
                }
        }
        if (r < 0)
                goto out;
        if (!v.mountpoint || !*v.mountpoint || access(v.mountpoint, F_OK) < 0) {
                r = error_set(ENOTSUP, "volume '%s' (driver '%s') has no local mountpoint: Berth can restore only into "
                                       "volumes whose data is a directory on this host",
                              name, v.driver ? v.driver : "?");
                goto out;
        }
        r = docker_containers(d, &list, &nlist);
        if (r < 0)
                goto out;
        users = xcalloc(nlist + 1, sizeof *users);
        for (size_t i = 0; i < nlist; i++)
                for (size_t m = 0; m < list[i].nmounts; m++)
                        if (list[i].mounts[m].name && strcmp(list[i].mounts[m].name, name) == 0 &&
                            strcmp(list[i].mounts[m].type ? list[i].mounts[m].type : "", "volume") == 0) {
                                users[nusers++] = list[i];
                                if (strcmp(list[i].state ? list[i].state : "", "running") == 0) {
                                        running++;
                                        snprintf(who + strlen(who), sizeof who - strlen(who), "%s'%s'",
                                                 *who ? ", " : "", list[i].name);
                                }
                                break;
                        }
        bool empty = dir_empty(v.mountpoint) != 0; /* unreadable: the restore says why */
        if ((!empty || running) && !force) {
                char in_use[700] = "";
                if (running)
                        snprintf(in_use, sizeof in_use, "is used by running container(s) %s", who);
                r = error_set(EEXIST, "volume '%s' %s%s%s; pass --force to replace its contents (its containers are "
                                      "stopped for the restore and started after)",
                              name, empty ? "" : "is not empty", !empty && running ? " and " : "", in_use);
                goto out;
        }
        if (running) {
                r = quiesce_plan(&q, d, repo_catalog(repo), users, nusers, QUIESCE_STOP);
                if (r == 0)
                        r = quiesce_freeze(&q);
                if (r < 0) {
                        quiesce_thaw(&q);
                        goto out;
                }
        }
        o->target = v.mountpoint;
        o->replace = !empty;
        progress_begin("restore:");
        r = snapshot_restore(repo, s->id, o, res);
        progress_end();
        if (running) {
                char why[1024] = "";
                if (r < 0)
                        snprintf(why, sizeof why, "%s", error_message() ? error_message() : berth_strerror(r));
                int t = quiesce_thaw(&q);
                if (r == 0 && t < 0)
                        r = t;
                else if (r < 0)
                        error_set(-r, "%s", why);
        }
out:
        quiesce_clear(&q);
        free(users);
        docker_containers_free(list, nlist);
        docker_volume_clear(&v);
        return r;
}

struct restore_args {
        struct restore_options o;
        const char **inc;
        const char *volume;
        bool force;
};

static int option(int c, const char *arg, void *ud)
{
        struct restore_args *a = ud;
        switch (c) {
        case 't':
                a->o.target = arg;
                return OPT_DONE;
        case 'i':
                a->inc[a->o.ninclude++] = arg;
                return OPT_DONE;
        case 1:
                a->o.partial = true;
                return OPT_DONE;
        case 2:
                a->volume = arg;
                return OPT_DONE;
        case 3:
                a->force = true;
                return OPT_DONE;
        default:
                return OPT_UNKNOWN;
        }
}

static int run(int argc, char **argv)
{
        static const struct option options[] = {
                GLOBAL_OPTIONS,
                { "target", required_argument, NULL, 't' },
                { "include", required_argument, NULL, 'i' },
                { "partial", no_argument, NULL, 1 },
                { "to-volume", required_argument, NULL, 2 },
                { "force", no_argument, NULL, 3 },
                {},
        };
        struct restore_args a = {
                .o = { .events = { .warning = report_warning, .progress = progress_update, .cancel = &interrupted } },
                .inc = xcalloc((size_t)argc + 1, sizeof *a.inc),
        };
        struct restore_options o;
        const char **inc = a.inc;
        int pr = parse_options(argc, argv, "t:i:", options, option, &a);
        if (pr != OPT_DONE) {
                free(inc);
                return pr;
        }
        o = a.o;
        const char *volume = a.volume;
        bool force = a.force;
        o.include = inc;
        if (argc - optind != 1) {
                free(inc);
                return usage_error("restore", "give exactly one SNAPSHOT");
        }
        if (!o.target == !volume) {
                free(inc);
                return usage_error("restore", "give where to restore: --target DIR or --to-volume NAME");
        }
        if (force && !volume) {
                free(inc);
                return usage_error("restore", "--force goes with --to-volume");
        }

        _cleanup_(repo_freep) struct repo *repo = NULL;
        struct catalog_snapshot s = { 0 };
        struct restore_result res;
        int r = open_repo(REPO_READ, &repo);
        if (r == 0)
                r = snapshot_resolve(repo, argv[optind], &s);
        if (r == 0 && volume)
                r = restore_to_volume(repo, &s, volume, force, &o, &res);
        else if (r == 0) {
                progress_begin("restore:");
                r = snapshot_restore(repo, s.id, &o, &res);
                progress_end();
        }
        free(inc);
        if (r < 0) {
                catalog_snapshot_clear(&s);
                return fail(r, "restore");
        }
        char b[32];
        if (settings.json) {
                json_object *j = json_object_new_object();
                json_object_object_add(j, "snapshot", json_object_new_string(s.id));
                json_object_object_add(j, "target", json_object_new_string(o.target));
                json_object_object_add(j, "volume", volume ? json_object_new_string(volume) : NULL);
                json_object_object_add(j, "files", json_object_new_int64((int64_t)res.files));
                json_object_object_add(j, "dirs", json_object_new_int64((int64_t)res.dirs));
                json_object_object_add(j, "bytes", json_object_new_int64((int64_t)res.bytes));
                json_object_object_add(j, "errors", json_object_new_int64((int64_t)res.errors));
                json_print(j);
        } else if (!settings.quiet)
                printf("restored snapshot %.12s (%s) to %s%s%s: %llu files, %llu directories, %s%s\n", s.id, s.name,
                       volume ? "volume '" : "'", volume ? volume : o.target, "'", (unsigned long long)res.files, (unsigned long long)res.dirs,
                       format_bytes(res.bytes, b, sizeof b), res.errors ? "; some entries were not restored" : "");
        catalog_snapshot_clear(&s);
        return res.errors ? EXIT_PARTIAL : EXIT_OK;
}

const struct command command_restore = { "restore", run, "restore a snapshot into a directory or a volume", help };
