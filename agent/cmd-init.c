/* cmd-init.c — berth init: create a repository. */
#include "agent.h"

static const char help[] =
        "Usage: berth [-r REPO] init [OPTIONS]\n"
        "\n"
        "Creates an empty repository in REPO (default $BERTH_REPO, then /var/lib/berth):\n"
        "its config, packs/, snapshots/, tmp/ and catalog.db.  Missing parent directories\n"
        "are created.  An existing repository is left alone and reported.\n"
        "\n"
        "Options:\n"
        "      --chunk-min SIZE   smallest chunk (default 8K)\n"
        "      --chunk-avg SIZE   average chunk, a power of two (default 32K)\n"
        "      --chunk-max SIZE   largest chunk (default 128K)\n"
        "      --level N          zstd level for new chunks, 1..19 (default 3)\n"
        "      --pack-size SIZE   target pack file size (default 16M)\n"
        "      --record-size SIZE\n"
        "                         new chunks are compressed together in records of\n"
        "                         about SIZE plain bytes, 16K..4M (default 256K); a\n"
        "                         chunk is read by decoding its record\n"
        "      --json             print {\"repository\": PATH, \"created\": true}\n"
        "  -h, --help             this help\n"
        "\n"
        "Chunk sizes are fixed for the life of a repository: smaller chunks dedupe\n"
        "databases better and cost more index.  The defaults are measured; see the\n"
        "README's Performance section.\n";

static int option(int c, const char *arg, void *ud)
{
        struct repo_init_options *o = ud;
        uint64_t v;
        switch (c) {
        case 1:
        case 2:
        case 3:
        case 5:
        case 6:
                if (parse_size(arg, &v) < 0 || v == 0 || (c != 5 && v > (16u << 20)))
                        return usage_error("init", "'%s' is not a valid size", arg);
                if (c == 1)
                        o->chunk_min = (uint32_t)v;
                else if (c == 2)
                        o->chunk_avg = (uint32_t)v;
                else if (c == 3)
                        o->chunk_max = (uint32_t)v;
                else if (c == 6)
                        o->record_size = (uint32_t)v;
                else
                        o->pack_size = v;
                return OPT_DONE;
        case 4:
                o->level = atoi(arg);
                return OPT_DONE;
        default:
                return OPT_UNKNOWN;
        }
}

static int run(int argc, char **argv)
{
        static const struct option options[] = {
                GLOBAL_OPTIONS,
                { "chunk-min", required_argument, NULL, 1 },
                { "chunk-avg", required_argument, NULL, 2 },
                { "chunk-max", required_argument, NULL, 3 },
                { "level", required_argument, NULL, 4 },
                { "pack-size", required_argument, NULL, 5 },
                { "record-size", required_argument, NULL, 6 },
                {},
        };
        struct repo_init_options st = { .level = settings.level };
        int pr = parse_options(argc, argv, NULL, options, option, &st);
        if (pr != OPT_DONE)
                return pr;
        if (optind < argc)
                return usage_error("init", "unexpected argument '%s'", argv[optind]);

        if (repo_is_remote())
                return usage_error("init", "%s is on another host: run 'berth init' there", settings.repo);
        int r = repo_init(settings.repo, &st);
        if (r < 0)
                return fail(r, "init");
        if (settings.json) {
                json_object *j = json_object_new_object();
                json_object_object_add(j, "repository", json_object_new_string(settings.repo));
                json_object_object_add(j, "created", json_object_new_boolean(1));
                json_print(j);
        } else if (!settings.quiet)
                printf("created repository at %s\n", settings.repo);
        return EXIT_OK;
}

const struct command command_init = { "init", run, "create a repository", help };
