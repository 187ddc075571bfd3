/* cmd-snapshots.c — berth snapshots: list snapshots. */
#include <string.h>

#include "agent.h"

static const char help[] =
        "Usage: berth [-r REPO] snapshots [NAME] [--host HOST] [--json]\n"
        "\n"
        "Lists the snapshots in the repository, oldest first, or those of one NAME:\n"
        "ID (the first 12 of its 64 hex digits; any unique prefix names it), NAME, HOST,\n"
        "TIME (UTC), FILES, SIZE (bytes of file content), ADDED (bytes the backup added\n"
        "to the repository), STATUS (complete, or incomplete when entries were\n"
        "skipped) and KEEP ('keep' when 'berth tag --keep' protects it from forget).\n"
        "\n"
        "HOST is the host that took the snapshot (backup --host, default this host's\n"
        "name); --host lists only the snapshots of that HOST (snapshots recorded\n"
        "without a host have an empty one and match --host '').\n"
        "\n"
        "Options:\n"
        "      --host HOST  only the snapshots taken on HOST\n"
        "      --json       a JSON array of snapshot objects: id, short_id, name, host,\n"
        "                   source, time, started_ns, finished_ns, status, files, dirs,\n"
        "                   bytes, files_read, files_reused, bytes_read, bytes_added,\n"
        "                   warnings, parent, meta, protected\n"
        "  -h, --help       this help\n";

enum { OPT_HOST = 0x2201 };

static int option(int c, const char *arg, void *ud)
{
        if (c != OPT_HOST)
                return OPT_UNKNOWN;
        *(const char **)ud = arg;
        return OPT_DONE;
}

/* Keeps the snapshots taken on `host` (all when NULL); returns how many. */
static size_t filter_host(struct catalog_snapshot *list, size_t n, const char *host)
{
        if (!host)
                return n;
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
                if (strcmp(list[i].host ? list[i].host : "", host) == 0) {
                        struct catalog_snapshot t = list[m];
                        list[m++] = list[i];
                        list[i] = t;
                }
        }
        return m;
}

static int run(int argc, char **argv)
{
        static const struct option options[] = { GLOBAL_OPTIONS, { "host", required_argument, NULL, OPT_HOST }, {} };
        const char *only_host = NULL;
        int r = parse_options(argc, argv, NULL, options, option, &only_host);
        if (r != OPT_DONE)
                return r;
        if (argc - optind > 1)
                return usage_error("snapshots", "give at most one NAME");
        const char *name = optind < argc ? argv[optind] : NULL;

        _cleanup_(repo_freep) struct repo *repo = NULL;
        r = open_repo(REPO_READ, &repo);
        if (r < 0)
                return fail(r, "snapshots");
        struct catalog_snapshot *list;
        size_t n;
        r = catalog_snapshot_list(repo_catalog(repo), name, &list, &n);
        if (r < 0)
                return fail(r, "snapshots");
        /* All `total` are freed; the first n are those of --host. */
        size_t total = n;
        n = filter_host(list, n, only_host);
        char **prot = NULL;
        size_t nprot = 0;
        /* From the repository's keep/ objects, not the catalog's copy: a
         * reader's catalog may not have seen a mark another host made. */
        r = snapshot_protected_ids(repo, NULL, NULL, &prot, &nprot);
        if (r < 0) {
                catalog_snapshot_list_free(list, n);
                return fail(r, "snapshots");
        }
        _cleanup_free_ bool *kept = xcalloc(n ? n : 1, sizeof *kept);
        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < nprot && !kept[i]; j++)
                        kept[i] = strcmp(prot[j], list[i].id) == 0;
        catalog_id_list_free(prot, nprot);

        if (settings.json) {
                json_object *a = json_object_new_array();
                for (size_t i = 0; i < n; i++) {
                        json_object *o = json_snapshot(&list[i]);
                        json_object_object_add(o, "protected", json_object_new_boolean(kept[i]));
                        json_object_array_add(a, o);
                }
                json_print(a);
        } else if (n == 0) {
                if (!settings.quiet && only_host) {
                        _cleanup_free_ char *h = escape_name(only_host, strlen(only_host));
                        if (name) {
                                _cleanup_free_ char *nm = escape_name(name, strlen(name));
                                printf("no snapshots of '%s' taken on host '%s'\n", nm, h);
                        } else
                                printf("no snapshots taken on host '%s'\n", h);
                } else if (!settings.quiet)
                        printf(name ? "no snapshots of '%s'\n" : "no snapshots yet\n", name);
        } else {
                printf("%-12s  %-20s  %-12s  %-20s  %9s  %10s  %10s  %-10s  %s\n", "ID", "NAME", "HOST", "TIME",
                       "FILES", "SIZE", "ADDED", "STATUS", "KEEP");
                for (size_t i = 0; i < n; i++) {
                        char t[32], sz[32], add[32];
                        /* Names and hosts come from the repository: escaped. */
                        _cleanup_free_ char *nm = escape_name(list[i].name, strlen(list[i].name));
                        _cleanup_free_ char *host = escape_name(list[i].host, strlen(list[i].host));
                        _cleanup_free_ char *status = escape_name(list[i].status, strlen(list[i].status));
                        /* No trailing blanks when KEEP is empty. */
                        printf("%.12s  %-20s  %-12s  %-20s  %9llu  %10s  %10s  %-*s%s\n", list[i].id, nm, host,
                               format_time(list[i].started, t, sizeof t),
                               (unsigned long long)(list[i].files + list[i].dirs),
                               format_bytes(list[i].bytes, sz, sizeof sz),
                               format_bytes(list[i].bytes_added, add, sizeof add), kept[i] ? 10 : 0, status,
                               kept[i] ? "  keep" : "");
                }
        }
        catalog_snapshot_list_free(list, total);
        return EXIT_OK;
}

const struct command command_snapshots = { "snapshots", run, "list snapshots", help };
