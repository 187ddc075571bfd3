/* cmd-check.c — berth check: verify the repository. */
#include "agent.h"

static const char help[] =
        "Usage: berth [-r REPO] check [--read-data] [--json]\n"
        "\n"
        "Verifies the repository: catalog.db itself first (SQLite's integrity check; a\n"
        "damaged catalog is reported with the fix, 'berth catalog rebuild'), then every\n"
        "snapshot file hashes to its id, every pack the catalog lists exists with the\n"
        "recorded size and a trailer that agrees with the catalog (entries and count),\n"
        "and every chunk each snapshot references is in the repository.  With\n"
        "--read-data, every pack is read whole and every chunk decompressed and\n"
        "re-hashed.  Each problem is printed on its own line, naming the pack, and each\n"
        "snapshot that depends on damaged or missing data is named with an example path.\n"
        "\n"
        "After a pack is lost, back up the affected volumes again: a backup never reuses\n"
        "chunks of a missing pack, so it stores again the data that still exists (older\n"
        "snapshots sharing it become whole again); 'berth catalog rebuild' then drops\n"
        "the missing packs from the catalog.\n"
        "\n"
        "Packs and snapshot files on disk but not in the catalog are counted as\n"
        "unindexed (not an error): the next backup indexes the packs, and the snapshot\n"
        "files an interrupted backup had announced; any other snapshot file (one copied\n"
        "or planted there) is indexed only by 'berth catalog rebuild', after you have\n"
        "decided to trust it.\n"
        "\n"
        "Exit status 0 when no problem was found, 5 when some were.\n"
        "\n"
        "Options:\n"
        "      --read-data   read and verify all data (slow: reads the whole repository)\n"
        "      --json        {\"ok\", \"problems\": [...], \"snapshots\", \"packs\", \"chunks\",\n"
        "                    \"bytes_read\", \"damaged_packs\", \"damaged_snapshots\", \"unindexed\",\n"
        "                    \"hint\" (how to heal, when packs are damaged)}\n"
        "  -h, --help        this help\n";

static json_object *problems;

static const char heal_hint[] =
        "to heal: back up each affected volume again; a backup never reuses chunks of a missing pack, so it "
        "stores again the data that still exists, and older snapshots sharing that data become whole again; run "
        "'berth check' again to see what stays damaged, then 'berth catalog rebuild' to drop missing packs from "
        "the catalog";

static void on_problem(void *ud, const char *msg)
{
        progress_end();
        if (settings.json)
                json_object_array_add(problems, json_object_new_string(msg));
        else {
                /* the message names files of the snapshot: no raw newlines */
                _cleanup_free_ char *m = escape_text(msg);
                printf("error: %s\n", m);
        }
        fflush(stdout);
}

static void on_progress(void *ud, const struct snapshot_progress *p)
{
        struct snapshot_progress q = *p;
        q.bytes_read = p->bytes;
        progress_update(ud, &q);
}

static int option(int c, const char *arg, void *ud)
{
        if (c != 1)
                return OPT_UNKNOWN;
        ((struct check_options *)ud)->read_data = true;
        return OPT_DONE;
}

static int run(int argc, char **argv)
{
        static const struct option options[] = { GLOBAL_OPTIONS, { "read-data", no_argument, NULL, 1 }, {} };
        struct check_options o = { .problem = on_problem, .events = { .progress = on_progress, .cancel = &interrupted } };
        int r = parse_options(argc, argv, NULL, options, option, &o);
        if (r != OPT_DONE)
                return r;
        if (optind < argc)
                return usage_error("check", "unexpected argument '%s'", argv[optind]);

        _cleanup_(repo_freep) struct repo *repo = NULL;
        r = open_repo(REPO_READ, &repo);
        if (r < 0)
                return fail(r, "check");
        problems = json_object_new_array();
        struct check_result res;
        progress_begin("check:");
        r = snapshot_check(repo, &o, &res);
        progress_end();
        if (r < 0) {
                json_object_put(problems);
                return fail(r, "check");
        }
        char b[32];
        if (settings.json) {
                json_object *j = json_object_new_object();
                json_object_object_add(j, "ok", json_object_new_boolean(res.errors == 0));
                json_object_object_add(j, "problems", problems);
                json_object_object_add(j, "snapshots", json_object_new_int64((int64_t)res.snapshots));
                json_object_object_add(j, "packs", json_object_new_int64((int64_t)res.packs));
                json_object_object_add(j, "chunks", json_object_new_int64((int64_t)res.chunks));
                json_object_object_add(j, "bytes_read", json_object_new_int64((int64_t)res.bytes));
                json_object_object_add(j, "damaged_packs", json_object_new_int64((int64_t)res.damaged_packs));
                json_object_object_add(j, "damaged_snapshots", json_object_new_int64((int64_t)res.damaged_snapshots));
                json_object_object_add(j, "unindexed", json_object_new_int64((int64_t)res.unindexed));
                if (res.damaged_packs)
                        json_object_object_add(j, "hint", json_object_new_string(heal_hint));
                json_print(j);
        } else {
                json_object_put(problems);
                if (!settings.quiet || res.errors)
                        printf("checked %llu snapshots, %llu packs, %llu chunks%s%s: %s\n",
                               (unsigned long long)res.snapshots, (unsigned long long)res.packs,
                               (unsigned long long)res.chunks, o.read_data ? ", read " : "",
                               o.read_data ? format_bytes(res.bytes, b, sizeof b) : "",
                               res.errors ? "PROBLEMS FOUND" : "no problems found");
                if (res.damaged_snapshots)
                        printf("%llu snapshot(s) depend on damaged or missing data (listed above); restore them "
                               "with --partial to recover the rest\n",
                               (unsigned long long)res.damaged_snapshots);
                if (res.damaged_packs)
                        printf("%s\n", heal_hint);
                if (res.unindexed && !settings.quiet)
                        printf("%llu pack(s)/snapshot file(s) are not indexed in the catalog: the next backup indexes "
                               "what an interrupted run left; 'berth catalog rebuild' indexes everything\n",
                               (unsigned long long)res.unindexed);
        }
        return res.errors ? EXIT_DAMAGED : EXIT_OK;
}

const struct command command_check = { "check", run, "verify the repository", help };
