/* cmd-tag.c — berth tag: protect snapshots from forgetting, or lift that. */
#include <string.h>

#include "remote.h"

static const char help[] =
        "Usage: berth [-r REPO] tag SNAPSHOT... --keep | --no-keep [--json]\n"
        "\n"
        "--keep protects each SNAPSHOT from 'berth forget': a keep policy always keeps\n"
        "it (it uses up none of the policy's counts, and 'forget --dry-run' names it\n"
        "'protected'), and 'forget SNAPSHOT' refuses it.  --no-keep lifts the\n"
        "protection.  SNAPSHOT is an id or unique id prefix, NAME (its newest\n"
        "snapshot), NAME@latest or NAME@TIME, as for restore.\n"
        "\n"
        "The protection is stored in the repository itself, as a small object\n"
        "keep/<snapshot id> beside the snapshot file, so it survives 'berth catalog\n"
        "rebuild' and holds for every host using the repository; the catalog keeps a\n"
        "copy for 'berth snapshots', which shows protected snapshots in its KEEP\n"
        "column.  Over ssh:// --no-keep (which deletes the object) runs on the\n"
        "repository's host, as 'berth forget' does there (see its help).\n"
        "\n"
        "Options:\n"
        "      --keep      protect the snapshots\n"
        "      --no-keep   lift their protection\n"
        "      --json      a JSON array: {id, name, protected, changed} per snapshot\n"
        "  -h, --help      this help\n"
        "\n"
        "Exit status: 0 when done, 1 when a snapshot could not be changed (the others\n"
        "still are) or the catalog could not be written back to disk (the change is\n"
        "made; check the disk), 2 for a bad command line, 4 when the repository is\n"
        "locked.\n";

enum { OPT_KEEP = 0x2101, OPT_NO_KEEP };

static int option(int c, const char *arg, void *ud)
{
        int *mode = ud;
        if (c != OPT_KEEP && c != OPT_NO_KEEP)
                return OPT_UNKNOWN;
        int want = c == OPT_KEEP ? 1 : 0;
        if (*mode >= 0 && *mode != want)
                return usage_error("tag", "give --keep or --no-keep, not both");
        *mode = want;
        return OPT_DONE;
}

static int run(int argc, char **argv)
{
        static const struct option options[] = {
                GLOBAL_OPTIONS,
                { "keep", no_argument, NULL, OPT_KEEP },
                { "no-keep", no_argument, NULL, OPT_NO_KEEP },
                {},
        };
        int mode = -1;
        int r = parse_options(argc, argv, NULL, options, option, &mode);
        if (r != OPT_DONE)
                return r;
        if (mode < 0)
                return usage_error("tag", "give --keep or --no-keep");
        if (optind >= argc)
                return usage_error("tag", "give at least one SNAPSHOT");

        /* Lifting deletes an object: over SSH the repository's host does
         * it, with its catalog. */
        if (mode == 0 && repo_is_ssh()) {
                size_t n = (size_t)(argc - optind);
                _cleanup_free_ const char **args = xcalloc(n + 2, sizeof *args);
                args[0] = "--no-keep";
                args[1] = "--";
                for (size_t i = 0; i < n; i++)
                        args[2 + i] = argv[optind + i];
                return remote_maintenance("tag", args, n + 2, false);
        }
        _cleanup_(repo_freep) struct repo *repo = NULL;
        r = open_repo(REPO_WRITE, &repo);
        if (r < 0)
                return fail(r, "tag");
        /* Every reference first: a typo changes nothing. */
        size_t n = (size_t)(argc - optind);
        _cleanup_free_ struct catalog_snapshot *snaps = xcalloc(n, sizeof *snaps);
        for (size_t i = 0; i < n; i++) {
                r = snapshot_resolve(repo, argv[optind + i], &snaps[i]);
                if (r < 0) {
                        catalog_snapshot_list_free(TAKE_PTR(snaps), i);
                        return fail(r, "tag");
                }
        }
        json_object *out = json_object_new_array();
        size_t failed = 0;
        for (size_t i = 0; i < n; i++) {
                const struct catalog_snapshot *s = &snaps[i];
                r = snapshot_set_protected(repo, s->id, mode == 1);
                _cleanup_free_ char *nm = escape_name(s->name, strlen(s->name));
                if (r < 0) {
                        log_error("snapshot %.12s: %s", s->id, error_message() ? error_message() : berth_strerror(r));
                        error_clear();
                        failed++;
                        continue;
                }
                if (settings.json) {
                        json_object *o = json_object_new_object();
                        json_object_object_add(o, "id", json_object_new_string(s->id));
                        json_object_object_add(o, "name", json_object_new_string(s->name));
                        json_object_object_add(o, "protected", json_object_new_boolean(mode == 1));
                        json_object_object_add(o, "changed", json_object_new_boolean(r > 0));
                        json_object_array_add(out, o);
                } else if (!settings.quiet)
                        printf("%.12s (%s): %s%s\n", s->id, nm, mode == 1 ? "protected" : "not protected",
                               r > 0 ? "" : " (already)");
        }
        catalog_snapshot_list_free(TAKE_PTR(snaps), n);
        int status = close_repo(TAKE_PTR(repo), "tag made the snapshots %s in the repository",
                                mode == 1 ? "protected" : "no longer protected");
        if (settings.json)
                json_print(out);
        else
                json_object_put(out);
        return status != EXIT_OK ? status : failed ? EXIT_FAILURE_ : EXIT_OK;
}

const struct command command_tag = { "tag", run, "protect snapshots from forget (--keep), or lift it", help };
