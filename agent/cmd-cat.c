/* cmd-cat.c — berth cat: one file's bytes to stdout. */
#include "agent.h"

static const char help[] =
        "Usage: berth [-r REPO] cat SNAPSHOT PATH > FILE\n"
        "\n"
        "Writes the contents of the regular file PATH of SNAPSHOT to stdout, holes of\n"
        "sparse files as zeros.  A hard link gives its file's contents.  Every chunk is\n"
        "verified against its hash first; damaged data stops the output with an error.\n"
        "\n"
        "Options:\n"
        "  -h, --help   this help\n";

static int run(int argc, char **argv)
{
        int r = parse_options(argc, argv, NULL, NULL, NULL, NULL);
        if (r != OPT_DONE)
                return r;
        if (argc - optind != 2)
                return usage_error("cat", "give a SNAPSHOT and a PATH");

        _cleanup_(repo_freep) struct repo *repo = NULL;
        struct catalog_snapshot s = { 0 };
        r = open_repo(REPO_READ, &repo);
        if (r == 0)
                r = snapshot_resolve(repo, argv[optind], &s);
        if (r == 0)
                r = snapshot_cat(repo, s.id, argv[optind + 1], STDOUT_FILENO);
        catalog_snapshot_clear(&s);
        if (r < 0)
                return fail(r, "cat");
        return EXIT_OK;
}

const struct command command_cat = { "cat", run, "write one file of a snapshot to stdout", help };
