/* cmd-volumes.c — berth volumes: the host's volumes and their backups. */
#include <string.h>
#include <sys/stat.h>

#include "agent.h"
#include "volumes.h"

static const char help[] =
        "Usage: berth [-r REPO] volumes [--json] [--no-size]\n"
        "\n"
        "Lists every Docker volume on this host: the name Berth gives its snapshots\n"
        "(anonymous volumes as CONTAINER:/PATH), driver, size on disk, the containers\n"
        "using it (with their state), and its newest snapshot in the repository with\n"
        "its age.\n"
        "\n"
        "Options:\n"
        "      --no-size   do not measure sizes (it walks each volume)\n"
        "      --json      a JSON array of {name, volume, driver, mountpoint, anonymous,\n"
        "                  size, containers: [{name, state, destination}], last_backup,\n"
        "                  last_backup_id, age_seconds}\n"
        "  -h, --help      this help\n";

static char *age(int64_t ns, char *buf, size_t size)
{
        int64_t s = (now_ns() - ns) / 1000000000;
        if (s < 120)
                snprintf(buf, size, "%llds", (long long)s);
        else if (s < 7200)
                snprintf(buf, size, "%lldm", (long long)s / 60);
        else if (s < 172800)
                snprintf(buf, size, "%lldh", (long long)s / 3600);
        else
                snprintf(buf, size, "%lldd", (long long)s / 86400);
        return buf;
}

static int option(int c, const char *arg, void *ud)
{
        if (c != 1)
                return OPT_UNKNOWN;
        *(bool *)ud = false;
        return OPT_DONE;
}

static int run(int argc, char **argv)
{
        static const struct option options[] = { GLOBAL_OPTIONS, { "no-size", no_argument, NULL, 1 }, {} };
        bool sizes = true;
        int r = parse_options(argc, argv, NULL, options, option, &sizes);
        if (r != OPT_DONE)
                return r;
        if (optind < argc)
                return usage_error("volumes", "unexpected argument '%s'", argv[optind]);

        _cleanup_(docker_freep) struct docker *d = NULL;
        struct docker_container *list = NULL;
        struct volume_target *t = NULL;
        size_t nlist = 0, n = 0;
        unsigned skipped = 0;
        r = docker_open(settings.docker_wait, &d);
        if (r == 0)
                r = docker_containers(d, &list, &nlist);
        if (r == 0)
                r = volume_targets_all(d, list, nlist, &t, &n, &skipped);
        if (r < 0) {
                docker_containers_free(list, nlist);
                return fail(r, "volumes");
        }
        /* The repository is optional here: without one, nothing was backed up. */
        _cleanup_(repo_freep) struct repo *repo = NULL;
        struct stat st;
        if ((repo_is_remote() || stat(settings.repo, &st) == 0) && open_repo(REPO_READ, &repo) < 0) {
                log_warning("%s; backup times are not shown", error_message());
                repo = NULL;
        }

        json_object *arr = json_object_new_array();
        if (!settings.json)
                printf("%-32s %-8s %10s  %-8s %-30s %s\n", "NAME", "DRIVER", "SIZE", "BACKUP", "CONTAINERS", "NEWEST SNAPSHOT");
        for (size_t i = 0; i < n; i++) {
                struct catalog_snapshot s = { 0 };
                bool have = repo && catalog_snapshot_latest(repo_catalog(repo), t[i].name, INT64_MAX, &s) > 0;
                uint64_t size = sizes ? disk_usage(t[i].path) : 0;
                char users[256] = "", sz[32], a[32], tm[32];
                for (size_t u = 0; u < t[i].nusers; u++) {
                        const struct docker_container *ct = &list[t[i].users[u]];
                        char one[96];
                        snprintf(one, sizeof one, "%s%s(%s)", u ? "," : "", ct->name, ct->state ? ct->state : "?");
                        strncat(users, one, sizeof users - strlen(users) - 1);
                }
                if (settings.json) {
                        json_object *o = json_object_new_object(), *cs = json_object_new_array();
                        json_object_object_add(o, "name", json_object_new_string(t[i].name));
                        json_object_object_add(o, "volume", json_object_new_string(t[i].vol.name));
                        json_object_object_add(o, "driver", json_object_new_string(t[i].vol.driver ? t[i].vol.driver : ""));
                        json_object_object_add(o, "mountpoint", json_object_new_string(t[i].path));
                        json_object_object_add(o, "anonymous", json_object_new_boolean(t[i].anonymous));
                        json_object_object_add(o, "size", sizes ? json_object_new_int64((int64_t)size) : NULL);
                        for (size_t u = 0; u < t[i].nusers; u++) {
                                const struct docker_container *ct = &list[t[i].users[u]];
                                json_object *co = json_object_new_object(), *m = json_object_array_get_idx(t[i].mounts, u), *dest;
                                json_object_object_get_ex(m, "destination", &dest);
                                json_object_object_add(co, "name", json_object_new_string(ct->name));
                                json_object_object_add(co, "state", json_object_new_string(ct->state ? ct->state : ""));
                                json_object_object_add(co, "destination", json_object_get(dest));
                                json_object_array_add(cs, co);
                        }
                        json_object_object_add(o, "containers", cs);
                        json_object_object_add(o, "last_backup", have ? json_object_new_string(format_time(s.started, tm, sizeof tm)) : NULL);
                        json_object_object_add(o, "last_backup_id", have ? json_object_new_string(s.id) : NULL);
                        json_object_object_add(o, "age_seconds", have ? json_object_new_int64((now_ns() - s.started) / 1000000000) : NULL);
                        json_object_array_add(arr, o);
                } else
                        printf("%-32s %-8s %10s  %-8s %-30s %s\n", t[i].name, t[i].vol.driver ? t[i].vol.driver : "",
                               sizes ? format_bytes(size, sz, sizeof sz) : "-", have ? age(s.started, a, sizeof a) : "never",
                               *users ? users : "-", have ? format_time(s.started, tm, sizeof tm) : "");
                catalog_snapshot_clear(&s);
        }
        if (settings.json)
                json_print(arr);
        else
                json_object_put(arr);
        volume_targets_free(t, n);
        docker_containers_free(list, nlist);
        return EXIT_OK;
}

const struct command command_volumes = { "volumes", run, "list Docker volumes and their backups", help };
