/* cmd-snapshots.c — berth snapshots: list snapshots. */
#include <string.h>

#include "agent.h"

static const char help[] =
        "Usage: berth [-r REPO] snapshots [NAME] [--json]\n"
        "\n"
        "Lists the snapshots in the repository, oldest first, or those of one NAME:\n"
        "ID (the first 12 of its 64 hex digits; any unique prefix names it), NAME, HOST,\n"
        "TIME (UTC), FILES, SIZE (bytes of file content), ADDED (bytes the backup added\n"
        "to the repository), STATUS (complete, or incomplete when entries were\n"
        "skipped) and KEEP ('keep' when 'berth tag --keep' protects it from forget).\n"
        "\n"
        "Options:\n"
        "      --json   a JSON array of snapshot objects: id, short_id, name, host, source,\n"
        "               time, started_ns, finished_ns, status, files, dirs, bytes,\n"
        "               files_read, files_reused, bytes_read, bytes_added, warnings,\n"
        "               parent, meta, protected\n"
        "  -h, --help   this help\n";

static int run(int argc, char **argv)
{
        int r = parse_options(argc, argv, NULL, NULL, NULL, NULL);
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
                if (!settings.quiet)
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
        catalog_snapshot_list_free(list, n);
        return EXIT_OK;
}

const struct command command_snapshots = { "snapshots", run, "list snapshots", help };
