/* cmd-prune.c — berth prune: reclaim the space no snapshot uses. */
#include <stdlib.h>
#include <string.h>

#include "remote.h"

static const char help[] =
        "Usage: berth [-r REPO] prune [--dry-run] [--max-unused PERCENT]\n"
        "                             [--grace DURATION] [--json]\n"
        "\n"
        "Deletes the packs no snapshot uses, and repacks the packs that are mostly\n"
        "unused: their chunks that some snapshot still uses are copied into new packs\n"
        "(each verified against its hash), then the old pack is deleted.  Packs an\n"
        "interrupted backup left behind (chunks of a snapshot that never came to be)\n"
        "are reclaimed too, and so are temporary files in tmp/.  Removing snapshots\n"
        "('berth forget') frees nothing by itself: prune is what gives the space back.\n"
        "\n"
        "Every snapshot file in the repository's snapshots/ protects the data it uses,\n"
        "whether or not the catalog lists it.  A snapshot file that cannot be read makes\n"
        "prune refuse, deleting nothing, until 'berth check' (and, if the catalog is at\n"
        "fault, 'berth catalog rebuild') has sorted it out.\n"
        "\n"
        "Prune works in two phases, so that a backup can run at the same time.  First it\n"
        "reads every snapshot and marks the chunks they use, without the writer lock.\n"
        "Then it takes the writer lock (waiting up to --lock-wait seconds for a running\n"
        "backup or import to finish), marks the snapshots that appeared meanwhile, and\n"
        "condemns the unused packs in one step: a backup that starts afterwards no longer\n"
        "deduplicates against them.  Condemned packs are then deleted.  Memory stays\n"
        "small whatever the repository's size: the set of used chunks is kept in a\n"
        "temporary file ($TMPDIR).\n"
        "\n"
        "Prune can be interrupted or killed at any point without losing a snapshot: each\n"
        "step is committed before the next, and the next prune finishes the work.\n"
        "'berth check --read-data' passes at every point in between.\n"
        "\n"
        "--grace keeps condemned packs for DURATION before deleting them.  The default is\n"
        "0 on a local or SSH repository, which is safe there because it lets one writer in at\n"
        "a time: once prune has condemned a pack, no backup can still be about to use it.\n"
        "On s3:// the default is 1d and 0 is refused: prune takes the lease object\n"
        "locks/prune, announces condemned packs (condemned/<hash>) so that other hosts stop\n"
        "deduplicating against them, and deletes one only if no snapshot written since uses it.\n"
        "The grace period counts from that announcement.  The lease lasts 6 hours and is\n"
        "renewed every 2 hours while prune runs, each time only if it is still the one this\n"
        "prune wrote (If-Match on its ETag): a prune whose lease another prune took over, or\n"
        "that could not renew it in time, stops before deleting anything more (exit 4).\n"
        "A grace period matters when several hosts write to shared object storage, where\n"
        "there is no such lock, and for long restores started before a repack (the grace\n"
        "period lets them finish reading the old pack).\n"
        "\n"
        "On a repository over ssh:// prune (--dry-run too) runs on the repository's\n"
        "host, where its catalog and lock live, as 'berth forget' does there (see its\n"
        "help): '<berth> -r PATH prune ...' over SSH, its output relayed, then the\n"
        "local cache brought up to date.  A key restricted to 'berth serve' cannot run\n"
        "it: that is said, exit status 1, and nothing changes.\n"
        "\n"
        "The report gives the packs deleted and repacked, the new packs written, the\n"
        "chunks removed from the catalog, and the bytes freed (the size of the deleted\n"
        "packs minus the size of the new ones).  An append-only server (berth serve\n"
        "--append-only) refuses deletion: the unused packs then stay condemned, and the\n"
        "error says so.\n"
        "\n"
        "Exit status 0 when done, 1 on failure (nothing is lost: rerun it; also when\n"
        "the catalog could not be written back to disk: check the disk), 4 when the\n"
        "repository is locked (pass --lock-wait) or, on s3://, another prune holds the\n"
        "lease or took it over.\n"
        "\n"
        "Options:\n"
        "  -n, --dry-run        show what would be deleted and repacked; change nothing\n"
        "                       (packs an interrupted backup left are counted once a\n"
        "                       writer has indexed them)\n"
        "      --max-unused PERCENT\n"
        "                       repack a pack when more than PERCENT of its bytes are\n"
        "                       unused (default 30; 100: never repack)\n"
        "      --grace DURATION keep condemned packs this long before deleting them\n"
        "                       (30s, 15m, 2h, 7d; default 0)\n"
        "      --json           {\"dry_run\", \"snapshots\", \"chunks_used\", \"packs\",\n"
        "                       \"packs_unused\", \"packs_repacked\", \"packs_written\",\n"
        "                       \"packs_deleted\", \"packs_waiting\", \"chunks_removed\",\n"
        "                       \"chunks_repacked\", \"bytes_deleted\", \"bytes_written\",\n"
        "                       \"bytes_freed\", \"seconds\"}\n"
        "  -h, --help           this help\n";

static int opener(void *ud, enum repo_mode mode, struct repo **ret) { return open_repo(mode, ret); }

static int option(int c, const char *arg, void *ud)
{
        struct prune_options *o = ud;
        char *end;
        switch (c) {
        case 'n':
                o->dry_run = true;
                return OPT_DONE;
        case 1: {
                unsigned long v = strtoul(arg, &end, 10);
                if (end == arg || (*end && strcmp(end, "%") != 0) || v > 100)
                        return usage_error("prune", "--max-unused wants a percentage from 0 to 100, not '%s'", arg);
                o->max_unused = (unsigned)v;
                return OPT_DONE;
        }
        case 2:
                if (parse_duration(arg, &o->grace) < 0)
                        return usage_error("prune", "--grace wants a duration such as 30s, 15m, 2h or 7d, not '%s'",
                                           arg);
                return OPT_DONE;
        default:
                return OPT_UNKNOWN;
        }
}

static void add_u64(json_object *j, const char *k, uint64_t v) { json_object_object_add(j, k, json_object_new_int64((int64_t)v)); }

json_object *json_prune_result(const struct prune_options *o, const struct prune_result *p)
{
        json_object *j = json_object_new_object();
        json_object_object_add(j, "dry_run", json_object_new_boolean(o->dry_run));
        add_u64(j, "snapshots", p->snapshots);
        add_u64(j, "chunks_used", p->chunks_used);
        add_u64(j, "packs", p->packs);
        add_u64(j, "packs_unused", p->packs_unused);
        add_u64(j, "packs_repacked", p->packs_repacked);
        add_u64(j, "packs_written", p->packs_written);
        add_u64(j, "packs_deleted", p->packs_deleted);
        add_u64(j, "packs_waiting", p->packs_waiting);
        if (o->lease) {
                add_u64(j, "packs_revived", p->packs_revived);
                /* the object store frees deleted objects' space later */
                json_object_object_add(j, "space_reclaimed_later", json_object_new_boolean(1));
        }
        add_u64(j, "chunks_removed", p->chunks_removed);
        add_u64(j, "chunks_repacked", p->chunks_repacked);
        add_u64(j, "bytes_deleted", p->bytes_deleted);
        add_u64(j, "bytes_written", p->bytes_written);
        json_object_object_add(j, "bytes_freed", json_object_new_int64(p->bytes_freed));
        json_object_object_add(j, "seconds", json_object_new_double((double)p->duration_ns / 1e9));
        return j;
}

void print_prune_result(const struct prune_options *o, const struct prune_result *p)
{
        char b1[32], b2[32], b3[32], d[32];
        if (settings.quiet)
                return;
        uint64_t freed = p->bytes_freed > 0 ? (uint64_t)p->bytes_freed : 0;
        printf("%llu snapshot(s) use %llu chunk(s); %llu pack(s) looked at\n", (unsigned long long)p->snapshots,
               (unsigned long long)p->chunks_used, (unsigned long long)p->packs);
        if (o->dry_run)
                printf("would delete %llu pack(s) (%s): %llu unused, %llu to repack (%llu chunk(s), about %s, "
                       "copied into new packs); would remove %llu chunk(s) from the catalog; would free about %s\n",
                       (unsigned long long)p->packs_deleted, format_bytes(p->bytes_deleted, b1, sizeof b1),
                       (unsigned long long)p->packs_unused, (unsigned long long)p->packs_repacked,
                       (unsigned long long)p->chunks_repacked, format_bytes(p->bytes_written, b2, sizeof b2),
                       (unsigned long long)p->chunks_removed, format_bytes(freed, b3, sizeof b3));
        else
                printf("deleted %llu pack(s) (%s): %llu unused, %llu repacked into %llu new pack(s) (%s); removed "
                       "%llu chunk(s) from the catalog; freed %s in %s\n",
                       (unsigned long long)p->packs_deleted, format_bytes(p->bytes_deleted, b1, sizeof b1),
                       (unsigned long long)p->packs_unused, (unsigned long long)p->packs_repacked,
                       (unsigned long long)p->packs_written, format_bytes(p->bytes_written, b2, sizeof b2),
                       (unsigned long long)p->chunks_removed, format_bytes(freed, b3, sizeof b3),
                       format_duration(p->duration_ns, d, sizeof d));
        if (p->packs_waiting)
                printf("%llu condemned pack(s) are kept for the grace period; a later prune deletes them\n",
                       (unsigned long long)p->packs_waiting);
        if (p->packs_revived)
                printf("%llu condemned pack(s) are used by snapshots written since they were condemned: kept\n",
                       (unsigned long long)p->packs_revived);
        if (o->lease && !o->dry_run && p->bytes_deleted)
                printf("the object store frees the %s deleted later: Ceph's RADOS Gateway reclaims deleted objects' "
                       "space in its garbage collector (rgw_gc_obj_min_wait, default 2 hours; "
                       "'radosgw-admin gc list' shows what is pending)\n",
                       format_bytes(p->bytes_deleted, b1, sizeof b1));
}

void prune_options_default(struct prune_options *o)
{
        *o = (struct prune_options){ .max_unused = 30, .open = opener,
                                     .events = { .progress = progress_update, .cancel = &interrupted } };
}

int prune_options_shared(struct prune_options *o, struct backend **ret_lease)
{
        /* Object storage shared by hosts: a lease, and a day's grace by default. */
        bool shared = strncmp(settings.repo, "s3://", 5) == 0;
        *ret_lease = NULL;
        if (o->grace == UINT64_MAX)
                o->grace = shared ? 86400 : 0;
        if (!shared)
                return 0;
        int r = open_s3_backend(settings.repo, !o->dry_run, ret_lease);
        if (r < 0)
                return r;
        o->lease = *ret_lease;
        return 0;
}

int prune_with_progress(const struct prune_options *o, struct prune_result *ret)
{
        progress_set_unit("snapshots/packs");
        progress_begin(o->dry_run ? "prune (dry run):" : "prune:");
        int r = snapshot_prune(o, ret);
        progress_end();
        return r;
}

static int run(int argc, char **argv)
{
        static const struct option options[] = { GLOBAL_OPTIONS,
                                                 { "dry-run", no_argument, NULL, 'n' },
                                                 { "max-unused", required_argument, NULL, 1 },
                                                 { "grace", required_argument, NULL, 2 },
                                                 {} };
        struct prune_options o;
        prune_options_default(&o);
        o.grace = UINT64_MAX;  /* not given */
        int r = parse_options(argc, argv, "n", options, option, &o);
        if (r != OPT_DONE)
                return r;
        if (optind < argc)
                return usage_error("prune", "unexpected argument '%s'", argv[optind]);
        _cleanup_(backend_freep) struct backend *lease = NULL;
        r = prune_options_shared(&o, &lease);
        if (r < 0)
                return fail(r, "prune");

        /* A repository over SSH: its host prunes, with its catalog. */
        if (repo_is_ssh()) {
                char pct[16];
                snprintf(pct, sizeof pct, "%u", o.max_unused);
                _cleanup_free_ char *grace = xasprintf("%llus", (unsigned long long)o.grace);
                const char *args[] = { "--max-unused", pct, "--grace", grace, "--dry-run" };
                return remote_maintenance("prune", args, o.dry_run ? 5 : 4, o.dry_run);
        }
        struct prune_result res;
        r = prune_with_progress(&o, &res);
        if (r < 0)
                return fail(r, "prune");
        if (settings.json)
                json_print(json_prune_result(&o, &res));
        else
                print_prune_result(&o, &res);
        return EXIT_OK;
}

const struct command command_prune = { "prune", run, "delete and repack what no snapshot uses", help };
