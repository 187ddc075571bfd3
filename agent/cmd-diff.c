/* cmd-diff.c — berth diff: what changed between two snapshots. */
#include <string.h>

#include "agent.h"

static const char help[] =
        "Usage: berth [-r REPO] diff SNAPSHOT_A SNAPSHOT_B [--json]\n"
        "\n"
        "Lists the paths that differ between two snapshots, sorted by path, one per line\n"
        "with a marker:\n"
        "  +  added in B\n"
        "  -  removed in B\n"
        "  M  contents changed (and maybe metadata)\n"
        "  m  metadata only: mode, owner, mtime, xattrs, ACLs or flags\n"
        "  T  the type changed (a file became a directory, ...)\n"
        "and a summary.  Answered from the catalog, without reading packs; the snapshots\n"
        "may be of different names.\n"
        "\n"
        "Options:\n"
        "      --json   {\"added\": N, \"removed\": N, \"modified\": N, \"changes\": [{path,\n"
        "               change: added|removed|modified|metadata|type}]}\n"
        "  -h, --help   this help\n";

struct diff_state {
        uint64_t added, removed, modified;
        json_object *changes;
};

static int on_change(void *ud, const struct catalog_file *a, const struct catalog_file *b)
{
        struct diff_state *st = ud;
        const struct catalog_file *f = a ? a : b;
        const char *kind;
        char mark;
        if (!a) {
                kind = "added", mark = '+';
                st->added++;
        } else if (!b) {
                kind = "removed", mark = '-';
                st->removed++;
        } else {
                st->modified++;
                if (a->type != b->type)
                        kind = "type", mark = 'T';
                else if (memcmp(a->content, b->content, sizeof a->content) != 0 || a->size != b->size)
                        kind = "modified", mark = 'M';
                else
                        kind = "metadata", mark = 'm';
        }
        if (settings.json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "path", json_object_new_string_len(f->path, (int)f->path_len));
                json_object_object_add(o, "change", json_object_new_string(kind));
                json_object_array_add(st->changes, o);
        } else {
                printf("%c ", mark);
                print_name(f->path_len ? f->path : ".", f->path_len ? f->path_len : 1);
                puts(f->type == 1 && f->path_len ? "/" : "");
        }
        return 0;
}

static int run(int argc, char **argv)
{
        int r = parse_options(argc, argv, NULL, NULL, NULL, NULL);
        if (r != OPT_DONE)
                return r;
        if (argc - optind != 2)
                return usage_error("diff", "give two snapshots");

        _cleanup_(repo_freep) struct repo *repo = NULL;
        struct catalog_snapshot a = { 0 }, b = { 0 };
        r = open_repo(REPO_READ, &repo);
        if (r == 0)
                r = snapshot_resolve(repo, argv[optind], &a);
        if (r == 0)
                r = snapshot_resolve(repo, argv[optind + 1], &b);
        struct diff_state st = { .changes = json_object_new_array() };
        if (r == 0)
                r = catalog_diff(repo_catalog(repo), a.name, a.seq, b.name, b.seq, on_change, &st);
        catalog_snapshot_clear(&a);
        catalog_snapshot_clear(&b);
        if (r < 0) {
                json_object_put(st.changes);
                return fail(r, "diff");
        }
        if (settings.json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "added", json_object_new_int64((int64_t)st.added));
                json_object_object_add(o, "removed", json_object_new_int64((int64_t)st.removed));
                json_object_object_add(o, "modified", json_object_new_int64((int64_t)st.modified));
                json_object_object_add(o, "changes", st.changes);
                json_print(o);
        } else {
                json_object_put(st.changes);
                if (!settings.quiet)
                        printf("%llu added, %llu removed, %llu modified\n", (unsigned long long)st.added,
                               (unsigned long long)st.removed, (unsigned long long)st.modified);
        }
        return EXIT_OK;
}

const struct command command_diff = { "diff", run, "compare two snapshots", help };
