/* cmd-migrate.c — berth migrate: move a Docker volume to another Docker host
 * (back up here, copy the snapshot over SSH, restore it there). */
#include <string.h>

#include "remote.h"

static const char help[] =
        "Usage: berth [-r REPO] migrate VOLUME [USER@]HOST[:PORT] [--as NAME] [--live] [--force]\n"
        "                                [--remote-repo PATH] [OPTIONS]\n"
        "       berth [-r REPO] migrate --container NAME [USER@]HOST[:PORT] [--live] [--force]\n"
        "                                [--remote-repo PATH] [OPTIONS]\n"
        "\n"
        "Moves Docker volume VOLUME to the Docker host HOST, reached over SSH, in\n"
        "three steps:\n"
        "\n"
        "  1. VOLUME is backed up into the local repository (-r) exactly as 'berth\n"
        "     backup VOLUME' does: the running containers using it are quiesced per\n"
        "     their berth.quiesce label (pause, stop, none) while it is read, and put\n"
        "     back afterwards.  With --live, a two-phase copy: first while the\n"
        "     application runs, then quiesced for only what changed meanwhile.\n"
        "  2. That snapshot is copied to the repository PATH on HOST (default\n"
        "     /var/lib/berth, or --remote-repo), as 'berth copy' does: only the chunks\n"
        "     HOST lacks are sent, so a second migration after a small change sends\n"
        "     little.  When HOST has no repository there, one is created first with\n"
        "     '<remote berth> -r PATH init' (and said so).\n"
        "  3. HOST runs '<remote berth> -r PATH restore ID --to-volume NAME --json'\n"
        "     against its own Docker Engine: the volume is created with the source's\n"
        "     driver and labels and checked against the snapshot.  An existing\n"
        "     target volume (not empty, or in use) is refused there unless --force.\n"
        "     HOST's errors are relayed (escaped) with its exit status.\n"
        "\n"
        "With --container NAME, every named volume of container NAME (what 'berth\n"
        "backup --container NAME' covers, less anonymous volumes and bind mounts) is\n"
        "backed up under one quiesce window, then each is copied and restored on\n"
        "HOST under its own name (--as does not apply).  The report is per volume,\n"
        "with totals.\n"
        "\n"
        "The source volume is never modified.  Its containers are running again\n"
        "(as they were) once step 1 ends, whatever happens later.  The host key is\n"
        "checked before anything is read or sent: an unknown host is refused with\n"
        "its fingerprint unless --accept-new-host-key.  berth must be installed on\n"
        "HOST (or named with --remote-berth PATH), and the user must be allowed to\n"
        "reach HOST's Docker Engine there.\n"
        "\n"
        "The report gives the bytes sent (stored, compressed bytes of the chunks HOST\n"
        "lacked), the volume's size, the quiesce window and the snapshot id (the same\n"
        "on both hosts, unless the local repository is encrypted).  Progress is shown\n"
        "on a terminal.\n"
        "\n"
        "From an encrypted local repository: the repository on HOST must be\n"
        "unencrypted (it is created so; an encrypted one is refused before anything is\n"
        "sent).  The snapshot is decrypted here and stored there in plain form, with\n"
        "new chunk ids and a new snapshot id (\"remote_snapshot\"): HOST restores the\n"
        "data, so it reads it anyway.  The local password and key never leave this\n"
        "host.  To keep an encrypted copy elsewhere, use 'berth copy'.\n"
        "\n"
        "Options:\n"
        "      --as NAME            the volume's name on HOST (default VOLUME)\n"
        "      --container NAME     all of container NAME's named volumes, one quiesce\n"
        "                           window; --json then gives {\"container\", \"volumes\":\n"
        "                           [per volume as below], \"bytes_sent\", \"volume_bytes\",\n"
        "                           \"host\", \"remote_repo\", \"repo_created\",\n"
        "                           \"quiesce_window_ns\", \"quiesced\", \"two_phase\"}\n"
        "      --live               two-phase copy: quiesce only for the delta\n"
        "      --force              replace the contents of an existing volume on HOST\n"
        "      --remote-repo PATH   the repository on HOST, an absolute path\n"
        "                           (default /var/lib/berth)\n"
        "      --json               {\"volume\", \"as\", \"host\", \"remote_repo\",\n"
        "                           \"snapshot\", \"remote_snapshot\", \"repo_created\",\n"
        "                           \"volume_bytes\", \"files\", \"quiesce_window_ns\",\n"
        "                           \"quiesced\", \"two_phase\", \"chunks\", \"chunks_sent\",\n"
        "                           \"bytes_sent\", \"bytes_skipped\", \"restore\"} where\n"
        "                           \"restore\" is HOST's own restore report\n"
        "  -h, --help               this help\n"
        "\n"
        "SSH options: -i/--identity KEYFILE, --known-hosts FILE, --accept-new-host-key,\n"
        "--remote-berth PATH (global options; see 'berth --help').\n"
        "\n"
        "Exit status: 0 when the volume is on HOST; 1 when a step failed (stderr says\n"
        "which; HOST's exit status when its restore failed, e.g. 3 for a partial one);\n"
        "2 for a bad command line.\n";

struct args {
        const char *as, *remote_repo, *container;
        bool live, force;
};

static int option(int c, const char *arg, void *ud)
{
        struct args *a = ud;
        switch (c) {
        case 1:
                a->as = arg;
                return OPT_DONE;
        case 2:
                a->live = true;
                return OPT_DONE;
        case 3:
                a->force = true;
                return OPT_DONE;
        case 4:
                a->remote_repo = arg;
                return OPT_DONE;
        case 5:
                a->container = arg;
                return OPT_DONE;
        default:
                return OPT_UNKNOWN;
        }
}

/* The JSON report of one volume's migration. */
static json_object *volume_json(const struct volume_backup_result *b, const char *as, const struct copy_result *cr,
                                json_object *restored)
{
        json_object *j = json_object_new_object();
        json_object_object_add(j, "volume", json_object_new_string(b->volume));
        json_object_object_add(j, "as", json_object_new_string(as));
        json_object_object_add(j, "snapshot", json_object_new_string(b->id));
        json_object_object_add(j, "remote_snapshot", json_object_new_string(cr->id[0] ? cr->id : b->id));
        json_object_object_add(j, "volume_bytes", json_object_new_int64((int64_t)b->bytes));
        json_object_object_add(j, "files", json_object_new_int64((int64_t)b->files));
        json_object_object_add(j, "chunks", json_object_new_int64((int64_t)cr->chunks));
        json_object_object_add(j, "chunks_sent", json_object_new_int64((int64_t)cr->chunks_sent));
        json_object_object_add(j, "bytes_sent", json_object_new_int64((int64_t)cr->bytes_sent));
        json_object_object_add(j, "bytes_skipped", json_object_new_int64((int64_t)cr->bytes_skipped));
        json_object_object_add(j, "restore", restored);
        return j;
}

static void print_backed_up(const struct volume_backup_result *b)
{
        char size[32];
        _cleanup_free_ char *vol_shown = escape_name(b->volume, strlen(b->volume));
        printf("backed up '%s' (%s, snapshot %.12s)\n", vol_shown, format_bytes(b->bytes, size, sizeof size), b->id);
}

static void print_window(const struct volume_backup_result *b)
{
        char dur[32];
        if (b->quiesced)
                printf("quiesce window %s%s\n", format_duration(b->window_ns, dur, sizeof dur),
                       b->two_phase ? " (two-phase copy)" : "");
        else
                printf("nothing to quiesce\n");
}

static int run(int argc, char **argv)
{
        static const struct option options[] = {
                GLOBAL_OPTIONS,
                { "as", required_argument, NULL, 1 },
                { "live", no_argument, NULL, 2 },
                { "force", no_argument, NULL, 3 },
                { "remote-repo", required_argument, NULL, 4 },
                { "container", required_argument, NULL, 5 },
                {},
        };
        struct args a = { .remote_repo = "/var/lib/berth" };
        int r = parse_options(argc, argv, NULL, options, option, &a);
        if (r != OPT_DONE)
                return r;
        if (a.container && a.as)
                return usage_error("migrate", "--as goes with one VOLUME, not --container (each volume keeps its "
                                              "name)");
        if (a.container && argc - optind != 1)
                return usage_error("migrate", "with --container NAME, name only the [USER@]HOST[:PORT]");
        if (!a.container && argc - optind != 2)
                return usage_error("migrate", "name a VOLUME and a [USER@]HOST[:PORT]");
        const char *volume = a.container ? NULL : argv[optind], *host = argv[argc - 1];
        const char *as = a.as ? a.as : volume;
        if (a.container ? !*a.container : (!*volume || !*as))
                return usage_error("migrate", "a volume or container name cannot be empty");
        _cleanup_(remote_host_clear) struct remote_host h = { 0 };
        r = remote_host_parse("migrate", host, a.remote_repo, &h);
        if (r != EXIT_OK)
                return r;

        /* The far side first: its host key and our key are checked, and its
         * repository made, before the application is touched. */
        r = remote_host_open(&h);
        if (r < 0)
                return fail(r, "migrate");

        _cleanup_(repo_freep) struct repo *src = NULL;
        r = open_repo(REPO_WRITE, &src);
        if (r < 0)
                return fail(r, "migrate");
        if (strcmp(repo_id(src), repo_id(h.repo)) == 0)
                return usage_error("migrate", "%s on %s is this host's repository %s", a.remote_repo, h.shown,
                                   settings.repo);

        /* 1. The backup, as `berth backup VOLUME` (or --container NAME)
         * makes it: one quiesce window for all. */
        _cleanup_free_ struct volume_backup_result *b = NULL;
        size_t n = 1;
        if (a.container)
                r = backup_container_volumes(src, a.container, a.live ? 1 : 0, &b, &n);
        else {
                b = xcalloc(1, sizeof *b);
                r = backup_volume(src, volume, a.live ? 1 : 0, b);
                snprintf(b->volume, sizeof b->volume, "%s", volume);
        }
        if (r < 0)
                return r == -ECANCELED ? fail(r, "interrupted") : EXIT_FAILURE_;
        uint64_t total_bytes = 0;
        for (size_t i = 0; i < n; i++) {
                total_bytes += b[i].bytes;
                if (!b[i].complete) {
                        _cleanup_free_ char *vs = escape_name(b[i].volume, strlen(b[i].volume));
                        error_set(EIO, "the backup of '%s' (snapshot %.12s) skipped entries (see the warnings "
                                       "above): not migrated", vs, b[i].id);
                        return fail(-EIO, "migrate");
                }
                if (!settings.quiet && !settings.json)
                        print_backed_up(&b[i]);
        }
        if (!settings.quiet && !settings.json)
                print_window(&b[0]);

        /* 2. The copies: only what the far side lacks. */
        _cleanup_free_ struct copy_result *cr = xcalloc(n, sizeof *cr);
        uint64_t total_sent = 0;
        for (size_t i = 0; i < n; i++) {
                r = remote_send(&h, src, b[i].id, &cr[i]);
                if (r < 0)
                        return fail(r, "migrate");
                total_sent += cr[i].bytes_sent;
        }
        remote_host_close_repo(&h);

        /* 3. The restores, by the far side's berth into its Docker. */
        json_object *vols = json_object_new_array();
        char sent[32], size[32], dur[32];
        for (size_t i = 0; i < n; i++) {
                const char *to = a.container ? b[i].volume : as;
                json_object *restored = NULL;
                /* Its id there: another one when the copy re-keyed it. */
                r = remote_restore(&h, cr[i].id[0] ? cr[i].id : b[i].id, to, a.force, &restored);
                if (r < 0) {
                        json_object_put(vols);
                        return fail(r, "migrate");
                }
                if (r > 0) {
                        json_object_put(vols);
                        return r;
                }
                json_object_array_add(vols, volume_json(&b[i], to, &cr[i], restored));
                if (!settings.quiet && !settings.json && a.container) {
                        _cleanup_free_ char *vs = escape_name(b[i].volume, strlen(b[i].volume));
                        printf("migrated '%s': %s sent, volume %s; snapshot %s\n", vs,
                               format_bytes(cr[i].bytes_sent, sent, sizeof sent),
                               format_bytes(b[i].bytes, size, sizeof size), b[i].id);
                }
        }

        if (settings.json) {
                json_object *j;
                if (a.container) {
                        j = json_object_new_object();
                        json_object_object_add(j, "container", json_object_new_string(a.container));
                        json_object_object_add(j, "volumes", json_object_get(vols));
                        json_object_object_add(j, "bytes_sent", json_object_new_int64((int64_t)total_sent));
                        json_object_object_add(j, "volume_bytes", json_object_new_int64((int64_t)total_bytes));
                } else
                        j = json_object_get(json_object_array_get_idx(vols, 0));
                json_object_object_add(j, "host", json_object_new_string(h.shown));
                json_object_object_add(j, "remote_repo", json_object_new_string(a.remote_repo));
                json_object_object_add(j, "repo_created", json_object_new_boolean(h.created));
                json_object_object_add(j, "quiesce_window_ns", json_object_new_int64(b[0].window_ns));
                json_object_object_add(j, "quiesced", json_object_new_boolean(b[0].quiesced));
                json_object_object_add(j, "two_phase", json_object_new_boolean(b[0].two_phase));
                json_print(j);
        } else if (!settings.quiet) {
                if (a.container) {
                        _cleanup_free_ char *cs = escape_name(a.container, strlen(a.container));
                        printf("migrated %zu volume%s of container '%s' to %s: %s sent, volumes %s, quiesce window "
                               "%s\n",
                               n, n == 1 ? "" : "s", cs, h.shown, format_bytes(total_sent, sent, sizeof sent),
                               format_bytes(total_bytes, size, sizeof size),
                               format_duration(b[0].window_ns, dur, sizeof dur));
                } else {
                        _cleanup_free_ char *vs = escape_name(volume, strlen(volume));
                        _cleanup_free_ char *as_shown = escape_name(as, strlen(as));
                        printf("migrated '%s' to %s as '%s': %s sent, volume %s, quiesce window %s; snapshot %s\n",
                               vs, h.shown, as_shown, format_bytes(total_sent, sent, sizeof sent),
                               format_bytes(total_bytes, size, sizeof size),
                               format_duration(b[0].window_ns, dur, sizeof dur), b[0].id);
                }
        }
        json_object_put(vols);
        return EXIT_OK;
}

const struct command command_migrate = {
        .name = "migrate",
        .run = run,
        .summary = "move a Docker volume to another Docker host over SSH",
        .help = help,
};
