/* cmd-find.c — berth find: which snapshots hold paths matching a glob. */
#include <string.h>

#include "agent.h"

static const char help[] =
        "Usage: berth [-r REPO] find PATTERN [--name NAME] [--json]\n"
        "\n"
        "Prints every snapshot and path whose path matches the glob PATTERN, newest\n"
        "snapshot first: snapshot id, time (UTC), snapshot name, size and path.  A\n"
        "PATTERN without '/' is matched against the last component ('*.conf',\n"
        "'pg_hba.conf'); with '/', against the whole path relative to the snapshot's\n"
        "top ('etc/*/*.conf'; a leading '/' is ignored).  '*', '?' and '[...]' work as\n"
        "in the shell, and '*' also matches '/'.  Answered from the catalog, without\n"
        "reading packs.  Quote the pattern so the shell does not expand it.\n"
        "\n"
        "Options:\n"
        "  -n, --name NAME   only snapshots of this name\n"
        "      --json        one JSON object per line: {snapshot, name, time, path, type,\n"
        "                    mode, uid, gid, size, mtime, mtime_ns, link}\n"
        "  -h, --help        this help\n";

struct find_state {
        size_t hits;
};

static int print_hit(void *ud, const struct catalog_hit *h)
{
        struct find_state *st = ud;
        char t[32], sz[32];
        st->hits++;
        if (settings.json) {
                json_object *o = json_file(&h->file);
                json_object_object_add(o, "snapshot", json_object_new_string(h->snapshot));
                json_object_object_add(o, "snapshot_name", json_object_new_string(h->name));
                json_object_object_add(o, "snapshot_time", json_object_new_string(format_time(h->started, t, sizeof t)));
                puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(o);
                return 0;
        }
        _cleanup_free_ char *name = escape_name(h->name, strlen(h->name));
        printf("%.12s  %s  %-16s %10s  ", h->snapshot, format_time(h->started, t, sizeof t), name,
               h->file.type == 2 ? format_bytes(h->file.size, sz, sizeof sz) : "-");
        print_name(h->file.path, h->file.path_len);
        puts(h->file.type == 1 ? "/" : "");
        return 0;
}

static int option(int c, const char *arg, void *ud)
{
        if (c != 'n')
                return OPT_UNKNOWN;
        *(const char **)ud = arg;
        return OPT_DONE;
}

static int run(int argc, char **argv)
{
        static const struct option options[] = { GLOBAL_OPTIONS, { "name", required_argument, NULL, 'n' }, {} };
        const char *name = NULL;
        int r = parse_options(argc, argv, "n:", options, option, &name);
        if (r != OPT_DONE)
                return r;
        if (argc - optind != 1)
                return usage_error("find", "give one PATTERN");
        const char *pattern = argv[optind];
        while (*pattern == '/')
                pattern++;
        if (!*pattern)
                return usage_error("find", "the pattern is empty");

        _cleanup_(repo_freep) struct repo *repo = NULL;
        r = open_repo(REPO_READ, &repo);
        if (r < 0)
                return fail(r, "find");
        struct find_state st = { 0 };
        r = catalog_find(repo_catalog(repo), pattern, name, print_hit, &st);
        if (r < 0)
                return fail(r, "find");
        if (st.hits == 0 && !settings.json)
                log_notice("no path matches '%s'%s%s", pattern, name ? " in snapshots of " : "", name ? name : "");
        return EXIT_OK;
}

const struct command command_find = { "find", run, "find paths in all snapshots", help };
