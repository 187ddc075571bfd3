/* cmd-catalog.c — berth catalog rebuild. */
#include <string.h>

#include "agent.h"

static const char help[] =
        "Usage: berth [-r REPO] catalog rebuild [--json]\n"
        "\n"
        "Recreates catalog.db from the repository's packs and snapshot files alone:\n"
        "the chunk index from the pack trailers, the snapshots and the file index from\n"
        "the snapshot files and their manifests.  Use it when catalog.db was lost or\n"
        "damaged.  The new catalog is built in tmp/ and moved into place in one step:\n"
        "until then, and if the rebuild fails or is killed, the old one stays as it was.\n"
        "Rows of the quiesce journal (not derived from packs) are carried over.  Every\n"
        "snapshot file in snapshots/ is indexed, including files no writer of this\n"
        "repository announced (which backups leave alone).  Needs the repository to\n"
        "itself: it waits for, and blocks, every reader and writer.\n"
        "\n"
        "On s3:// the catalog is this host's cache of the bucket (under\n"
        "$BERTH_CACHE_DIR): it is rebuilt from the bucket's objects, and only this\n"
        "host's readers and writers wait; other hosts are not affected.  Packs a\n"
        "prune condemned (condemned/ objects) are dropped again by the next backup's\n"
        "cache sync.  Over ssh:// run it on the repository's host.\n"
        "\n"
        "Options:\n"
        "      --json   {\"packs\": N, \"snapshots\": N, \"chunks\": N, \"seconds\": S}\n"
        "  -h, --help   this help\n";

static int run(int argc, char **argv)
{
        int r = parse_options(argc, argv, NULL, NULL, NULL, NULL);
        if (r != OPT_DONE)
                return r;
        if (argc - optind != 1 || strcmp(argv[optind], "rebuild") != 0)
                return usage_error("catalog", "the only subcommand is 'rebuild'");

        /* s3://: the bucket is the repository, and this host's catalog is
         * a cache of it, rebuilt here from the bucket's objects. */
        bool s3 = strncmp(settings.repo, "s3://", 5) == 0;
        if (repo_is_remote() && !s3)
                return usage_error("catalog", "%s is on another host: run 'berth catalog rebuild' there (this "
                                   "host's cache of it is rebuilt by deleting it)", settings.repo);
        _cleanup_(repo_freep) struct repo *repo = NULL;
        int64_t t0 = mono_ns();
        if (s3)
                r = open_repo_at(settings.repo, REPO_REBUILD, &settings.state_dir, &repo);
        else
                r = repo_open(settings.repo, REPO_REBUILD, settings.lock_wait, &repo);
        uint64_t packs = 0, snaps = 0;
        if (r == 0)
                r = repo_rebuild_catalog(repo, &packs, &snaps);
        if (r < 0)
                return fail(r, "catalog rebuild");
        double secs = (double)(mono_ns() - t0) / 1e9;
        int64_t chunks = catalog_chunk_count(repo_catalog(repo));
        if (settings.json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "packs", json_object_new_int64((int64_t)packs));
                json_object_object_add(o, "snapshots", json_object_new_int64((int64_t)snaps));
                json_object_object_add(o, "chunks", json_object_new_int64(chunks));
                json_object_object_add(o, "seconds", json_object_new_double(secs));
                json_print(o);
        } else if (!settings.quiet)
                printf("rebuilt the catalog from %llu packs (%lld chunks) and %llu snapshots in %.2fs\n",
                       (unsigned long long)packs, (long long)chunks, (unsigned long long)snaps, secs);
        return EXIT_OK;
}

const struct command command_catalog = { "catalog", run, "rebuild the catalog from the packs", help };
