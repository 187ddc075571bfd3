/* cmd-ls.c — berth ls: list a directory of a snapshot, from the catalog. */
#include <string.h>

#include "agent.h"

static const char help[] =
        "Usage: berth [-r REPO] ls SNAPSHOT [PATH] [--long] [--json]\n"
        "\n"
        "Lists the entries directly inside PATH (default: the top) of SNAPSHOT, or PATH\n"
        "itself when it is not a directory.  Answered from the catalog's file index,\n"
        "without reading packs.  SNAPSHOT is an id prefix, NAME, NAME@latest or\n"
        "NAME@TIME (see 'berth restore --help').\n"
        "\n"
        "Options:\n"
        "  -l, --long   like ls -l: type and mode, numeric owner and group, size,\n"
        "               mtime (UTC), name, and '-> target' for symlinks\n"
        "      --json   a JSON array of {path, name, type, mode, uid, gid, size, mtime,\n"
        "               mtime_ns, link}; type is one of dir, file, symlink, hardlink,\n"
        "               chardev, blockdev, fifo; mode is octal text\n"
        "  -h, --help   this help\n";

struct ls_state {
        bool lng;
        json_object *array;
        size_t count;
};

static int print_entry(void *ud, const struct catalog_file *f)
{
        struct ls_state *st = ud;
        const char *slash = memrchr(f->path, '/', f->path_len);
        const char *name = slash ? slash + 1 : f->path;
        int name_len = (int)(f->path_len - (size_t)(name - f->path));
        st->count++;
        if (settings.json) {
                json_object_array_add(st->array, json_file(f));
                return 0;
        }
        if (!st->lng) {
                print_name(name, (size_t)name_len);
                puts(f->type == 1 ? "/" : "");
                return 0;
        }
        char mode[16], t[32];
        format_mode(f->type, f->mode, mode);
        printf("%s %6u %6u %12llu %s ", mode, f->uid, f->gid, (unsigned long long)f->size,
               format_time(f->mtime, t, sizeof t));
        print_name(name, (size_t)name_len);
        if (f->link && (f->type == 3 || f->type == 4)) {
                fputs(f->type == 3 ? " -> " : " (hard link to ", stdout);
                print_name(f->link, f->link_len);
                fputs(f->type == 3 ? "" : ")", stdout);
        }
        putchar('\n');
        return 0;
}

static int option(int c, const char *arg, void *ud)
{
        if (c != 'l')
                return OPT_UNKNOWN;
        ((struct ls_state *)ud)->lng = true;
        return OPT_DONE;
}

static int run(int argc, char **argv)
{
        static const struct option options[] = { GLOBAL_OPTIONS, { "long", no_argument, NULL, 'l' }, {} };
        struct ls_state st = { 0 };
        int r = parse_options(argc, argv, "l", options, option, &st);
        if (r != OPT_DONE)
                return r;
        if (argc - optind < 1 || argc - optind > 2)
                return usage_error("ls", "give a SNAPSHOT and optionally a PATH");
        _cleanup_free_ char *path = snapshot_path_normalize(optind + 1 < argc ? argv[optind + 1] : "");

        _cleanup_(repo_freep) struct repo *repo = NULL;
        struct catalog_snapshot s = { 0 };
        r = open_repo(REPO_READ, &repo);
        if (r == 0)
                r = snapshot_resolve(repo, argv[optind], &s);
        if (r < 0)
                return fail(r, "ls");
        st.array = json_object_new_array();
        r = catalog_ls(repo_catalog(repo), s.name, s.seq, path, strlen(path), print_entry, &st);
        if (r == 0)
                r = error_set(BERTH_ENOTFOUND, "snapshot %.12s (%s) has no path '%s'", s.id, s.name, path);
        catalog_snapshot_clear(&s);
        if (r < 0) {
                json_object_put(st.array);
                return fail(r, "ls");
        }
        if (settings.json)
                json_print(st.array);
        else
                json_object_put(st.array);
        return EXIT_OK;
}

const struct command command_ls = { "ls", run, "list a directory of a snapshot", help };
