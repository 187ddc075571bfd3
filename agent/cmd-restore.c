/* cmd-restore.c — berth restore: write a snapshot back to disk. */
#include "agent.h"

static const char help[] =
        "Usage: berth [-r REPO] restore SNAPSHOT --target DIR [--include PATH]... [OPTIONS]\n"
        "\n"
        "Restores SNAPSHOT into DIR, which must not exist or be an empty directory.\n"
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
        "  -i, --include PATH   restore only PATH (a file or a sub-tree) with its parent\n"
        "                       directories; repeatable\n"
        "      --partial        skip files whose data is damaged, restore the rest, exit 3\n"
        "      --json           print the result as a JSON object\n"
        "  -h, --help           this help\n";

static int run(int argc, char **argv)
{
        static const struct option options[] = {
                GLOBAL_OPTIONS,
                { "target", required_argument, NULL, 't' },
                { "include", required_argument, NULL, 'i' },
                { "partial", no_argument, NULL, 1 },
                {},
        };
        struct restore_options o = {
                .events = { .warning = report_warning, .progress = progress_update, .cancel = &interrupted },
        };
        const char **inc = xcalloc((size_t)argc + 1, sizeof *inc);
        int c;

        while ((c = getopt_long(argc, argv, GLOBAL_SHORT "t:i:", options, NULL)) != -1) {
                int g = global_option(c, optarg);
                if (g < 0)
                        return EXIT_USAGE;
                if (g)
                        continue;
                switch (c) {
                case 'h':
                        free(inc);
                        return command_help("restore");
                case 't':
                        o.target = optarg;
                        break;
                case 'i':
                        inc[o.ninclude++] = optarg;
                        break;
                case 1:
                        o.partial = true;
                        break;
                default:
                        free(inc);
                        return usage_error("restore", "unknown option");
                }
        }
        o.include = inc;
        if (argc - optind != 1) {
                free(inc);
                return usage_error("restore", "give exactly one SNAPSHOT");
        }
        if (!o.target) {
                free(inc);
                return usage_error("restore", "give the directory to restore into with --target DIR");
        }

        _cleanup_(repo_freep) struct repo *repo = NULL;
        struct catalog_snapshot s = { 0 };
        struct restore_result res;
        int r = open_repo(REPO_READ, &repo);
        if (r == 0)
                r = snapshot_resolve(repo, argv[optind], &s);
        if (r == 0) {
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
                json_object_object_add(j, "files", json_object_new_int64((int64_t)res.files));
                json_object_object_add(j, "dirs", json_object_new_int64((int64_t)res.dirs));
                json_object_object_add(j, "bytes", json_object_new_int64((int64_t)res.bytes));
                json_object_object_add(j, "errors", json_object_new_int64((int64_t)res.errors));
                json_print(j);
        } else if (!settings.quiet)
                printf("restored snapshot %.12s (%s) to '%s': %llu files, %llu directories, %s%s\n", s.id, s.name,
                       o.target, (unsigned long long)res.files, (unsigned long long)res.dirs,
                       format_bytes(res.bytes, b, sizeof b), res.errors ? "; some entries were not restored" : "");
        catalog_snapshot_clear(&s);
        return res.errors ? EXIT_PARTIAL : EXIT_OK;
}

const struct command command_restore = { "restore", run, "restore a snapshot into a directory", help };
