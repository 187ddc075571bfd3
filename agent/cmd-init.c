/* cmd-init.c — berth init: create a repository. */
#include <string.h>

#include "agent.h"

static const char help[] =
        "Usage: berth [-r REPO] init [OPTIONS]\n"
        "\n"
        "Creates an empty repository in REPO (default $BERTH_REPO, then /var/lib/berth):\n"
        "its config, packs/, snapshots/, tmp/ and catalog.db.  Missing parent directories\n"
        "are created.  An existing repository is left alone and reported.\n"
        "\n"
        "Options:\n"
        "      --encrypt          encrypt the repository (see ENCRYPTION below)\n"
        "      --chunk-min SIZE   smallest chunk (default 8K)\n"
        "      --chunk-avg SIZE   average chunk, a power of two (default 32K)\n"
        "      --chunk-max SIZE   largest chunk (default 128K)\n"
        "      --level N          zstd level for new chunks, 1..19 (default 3)\n"
        "      --pack-size SIZE   target pack file size (default 16M)\n"
        "      --page-size SIZE   auto (default), off, or a page size 4k..64k: how\n"
        "                         database files are found and cut at page boundaries\n"
        "                         (auto: PostgreSQL, InnoDB, WiredTiger and SQLite files;\n"
        "                         a size: every file whose size is a multiple of it)\n"
        "      --page-chunk N     pages per page-aligned chunk, 1..16 (default 2)\n"
        "      --record-size SIZE\n"
        "                         new chunks are compressed together in records of\n"
        "                         about SIZE plain bytes, 16K..4M (default 256K); a\n"
        "                         chunk is read by decoding its record\n"
        "      --json             print {\"repository\": PATH, \"created\": true}\n"
        "  -h, --help             this help\n"
        "\n"
        "Chunk sizes are fixed for the life of a repository: smaller chunks dedupe\n"
        "databases better and cost more index.  The defaults are measured; see the\n"
        "README's Performance section.\n"
        "\n"
        "ENCRYPTION\n"
        "  With --encrypt, everything stored is ciphertext: chunk data, manifests, pack\n"
        "  trailers, snapshot files (AES-256-GCM, or ChaCha20-Poly1305 on CPUs without\n"
        "  AES-NI), chunk ids are keyed, and the catalog is a local cache outside the\n"
        "  repository ($BERTH_CACHE_DIR/<id>, or /var/cache/berth/<id> for root).  A random\n"
        "  key is wrapped under the password (scrypt) in keys/<id>; the password comes from\n"
        "  --password-file, --password-command, BERTH_PASSWORD_FILE, systemd's\n"
        "  LoadCredential=berth-password, BERTH_PASSWORD, or is asked twice on the terminal.\n"
        "  A LOST PASSWORD MEANS LOST DATA: nobody can decrypt the repository without one of\n"
        "  its passwords.  Add a second one with 'berth key add' and keep it safe.\n";

static int option(int c, const char *arg, void *ud)
{
        struct repo_init_options *o = ud;
        uint64_t v;
        switch (c) {
        case 1:
        case 2:
        case 3:
        case 5:
        case 9:
                if (parse_size(arg, &v) < 0 || v == 0 || (c != 5 && v > (16u << 20)))
                        return usage_error("init", "'%s' is not a valid size", arg);
                if (c == 1)
                        o->chunk_min = (uint32_t)v;
                else if (c == 2)
                        o->chunk_avg = (uint32_t)v;
                else if (c == 3)
                        o->chunk_max = (uint32_t)v;
                else if (c == 9)
                        o->record_size = (uint32_t)v;
                else
                        o->pack_size = v;
                return OPT_DONE;
        case 4:
                o->level = atoi(arg);
                return OPT_DONE;
        case 6:
                if (pages_parse(arg, &o->page_size) < 0)
                        return usage_error("init", "--page-size takes auto, off or a power of two 4k..64k, not '%s'",
                                           arg);
                return OPT_DONE;
        case 7:
                if (parse_size(arg, &v) < 0 || v < 1 || v > 16)
                        return usage_error("init", "--page-chunk takes a number of pages 1..16, not '%s'", arg);
                o->page_chunk = (uint32_t)v;
                return OPT_DONE;
        case 8:
                o->password = ""; /* asked for in run() */
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
                { "page-size", required_argument, NULL, 6 },
                { "page-chunk", required_argument, NULL, 7 },
                { "encrypt", no_argument, NULL, 8 },
                { "record-size", required_argument, NULL, 9 },
                {},
        };
        struct repo_init_options st = { .level = settings.level };
        int pr = parse_options(argc, argv, NULL, options, option, &st);
        if (pr != OPT_DONE)
                return pr;
        if (optind < argc)
                return usage_error("init", "unexpected argument '%s'", argv[optind]);

        if (repo_is_remote() && strncmp(settings.repo, "s3://", 5) != 0)
                return usage_error("init", "%s is on another host: run 'berth init' there", settings.repo);
        _cleanup_free_ char *password = NULL;
        int r;
        if (st.password) {
                r = password_get(settings.repo, true, &password);
                if (r < 0)
                        return fail(r, "init");
                st.password = password;
        }
        if (strncmp(settings.repo, "s3://", 5) == 0) {
                /* A bucket prefix: config written with a conditional create. */
                struct backend *be = NULL;
                r = open_s3_backend(settings.repo, true, &be);
                if (r == 0)
                        r = repo_init_backend(be, &st);
                backend_free(be);
        } else
                r = repo_init(settings.repo, &st);
        if (password)
                explicit_bzero(password, strlen(password));
        if (r < 0)
                return fail(r, "init");
        if (settings.json) {
                json_object *j = json_object_new_object();
                json_object_object_add(j, "repository", json_object_new_string(settings.repo));
                json_object_object_add(j, "created", json_object_new_boolean(1));
                json_object_object_add(j, "encrypted", json_object_new_boolean(st.password != NULL));
                json_print(j);
        } else if (!settings.quiet) {
                printf("created repository at %s\n", settings.repo);
                if (st.password)
                        printf("the repository is encrypted: keep its password safe, a lost password means lost "
                               "data\n");
                else
                        printf("the repository is not encrypted (use 'berth init --encrypt' for one that is)\n");
        }
        return EXIT_OK;
}

const struct command command_init = { "init", run, "create a repository", help };
