/* cmd-migrate.c — berth migrate: move a Docker volume to another Docker host
 * (back up here, copy the snapshot over SSH, restore it there). */
#include <string.h>

#include "agent.h"
#include "../transport/transport.h"

static const char help[] =
        "Usage: berth [-r REPO] migrate VOLUME [USER@]HOST[:PORT] [--as NAME] [--live] [--force]\n"
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
        "The source volume is never modified.  Its containers are running again\n"
        "(as they were) once step 1 ends, whatever happens later.  The host key is\n"
        "checked before anything is read or sent: an unknown host is refused with\n"
        "its fingerprint unless --accept-new-host-key.  berth must be installed on\n"
        "HOST (or named with --remote-berth PATH), and the user must be allowed to\n"
        "reach HOST's Docker Engine there.\n"
        "\n"
        "The report gives the bytes sent (stored, compressed bytes of the chunks HOST\n"
        "lacked), the volume's size, the quiesce window and the snapshot id (the same\n"
        "on both hosts).  Progress is shown on a terminal.\n"
        "\n"
        "Options:\n"
        "      --as NAME            the volume's name on HOST (default VOLUME)\n"
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
        const char *as, *remote_repo;
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
        default:
                return OPT_UNKNOWN;
        }
}

/* Appends 'word', quoted for the far side's shell, and a space. */
static void put_word(struct buf *b, const char *s)
{
        buf_put_shell_word(b, s);
        buf_putc(b, ' ');
}

static void ssh_options_for(const struct ssh_destination *d, struct ssh_options *o)
{
        *o = (struct ssh_options){
                .user = d->user,
                .host = d->host,
                .port = d->port,
                .identity_file = settings.identity,
                .known_hosts = settings.known_hosts,
                .accept_new_host_key = settings.accept_new_host_key,
        };
}

/* What a command run on the far side did. */
struct remote_run {
        int status;       /* its exit status */
        char *out;        /* its stdout, NUL-terminated */
        char *err;        /* its stderr, trimmed and escaped */
};

static void remote_run_clear(struct remote_run *r)
{
        free(r->out);
        free(r->err);
        *r = (struct remote_run){ 0 };
}

/* Runs the command in b (words already quoted) on d's host in a new
 * session.  Returns 0 and fills *ret whatever the command's exit status,
 * or -errno when it could not be run. */
static int run_remote(const struct ssh_destination *d, struct buf *b, struct remote_run *ret)
{
        struct ssh_options o;
        ssh_options_for(d, &o);
        buf_putc(b, 0);
        _cleanup_(ssh_session_freep) struct ssh_session *s = NULL;
        int k = ssh_connect(&o, &s);
        if (k < 0)
                return k;
        _cleanup_(ssh_channel_freep) struct ssh_channel *ch = NULL;
        k = ssh_exec(s, (const char *)b->data, &ch);
        if (k < 0)
                return k;
        struct buf out = { 0 };
        for (;;) {
                char chunk[16384];
                ssize_t n = ssh_channel_read(ch, chunk, sizeof chunk);
                if (n < 0) {
                        free(out.data);
                        return (int)n;
                }
                if (n > 0)
                        buf_append(&out, chunk, (size_t)n);
                if ((size_t)n < sizeof chunk)
                        break;
                if (out.len > (16u << 20)) {
                        free(out.data);
                        return error_set(EMSGSIZE, "%s printed more than 16 MiB", ssh_session_name(s));
                }
        }
        buf_putc(&out, 0);
        int status = 255;
        k = ssh_channel_close(ch, &status);
        if (k < 0) {
                free(out.data);
                return k;
        }
        _cleanup_free_ char *raw = xstrdup(ssh_channel_stderr(ch));
        size_t n = strlen(raw);
        while (n > 0 && (raw[n - 1] == '\n' || raw[n - 1] == '\r' || raw[n - 1] == ' '))
                raw[--n] = 0;
        *ret = (struct remote_run){ .status = status, .out = (char *)out.data, .err = escape_text(raw) };
        return 0;
}

static char *dest_name(const struct ssh_destination *d)
{
        bool v6 = strchr(d->host, ':') != NULL;
        _cleanup_free_ char *port = d->port ? xasprintf(":%u", d->port) : xstrdup("");
        return xasprintf("%s%s%s%s%s%s", d->user ? d->user : "", d->user ? "@" : "", v6 ? "[" : "", d->host,
                         v6 ? "]" : "", port);
}

/* Runs `<berth> -r PATH init` on the far side. */
static int remote_init(const struct ssh_destination *d, const char *berth, const char *path, const char *shown)
{
        struct buf b = { 0 };
        put_word(&b, berth);
        buf_append(&b, "-r ", 3);
        put_word(&b, path);
        buf_append(&b, "init", 4);
        struct remote_run rr = { 0 };
        int k = run_remote(d, &b, &rr);
        free(b.data);
        if (k < 0)
                return k;
        if (rr.status != 0) {
                if (rr.status == 126 || rr.status == 127)
                        k = error_set(ENOENT, "'%s' cannot be run on %s (%s): install berth there, or name it with "
                                              "--remote-berth PATH (BERTH_REMOTE_BERTH)",
                                      berth, shown, *rr.err ? rr.err : "command not found");
                else
                        k = error_set(EIO, "cannot create a repository at %s on %s (exit status %d)%s%s", path, shown,
                                      rr.status, *rr.err ? ": " : "", rr.err);
        }
        remote_run_clear(&rr);
        return k;
}

static int run(int argc, char **argv)
{
        static const struct option options[] = {
                GLOBAL_OPTIONS,
                { "as", required_argument, NULL, 1 },
                { "live", no_argument, NULL, 2 },
                { "force", no_argument, NULL, 3 },
                { "remote-repo", required_argument, NULL, 4 },
                {},
        };
        struct args a = { .remote_repo = "/var/lib/berth" };
        int r = parse_options(argc, argv, NULL, options, option, &a);
        if (r != OPT_DONE)
                return r;
        if (argc - optind != 2)
                return usage_error("migrate", "name a VOLUME and a [USER@]HOST[:PORT]");
        const char *volume = argv[optind], *host = argv[optind + 1];
        const char *as = a.as ? a.as : volume;
        if (!*volume || !*as)
                return usage_error("migrate", "a volume name cannot be empty");
        if (a.remote_repo[0] != '/')
                return usage_error("migrate", "--remote-repo takes an absolute path, not '%s'", a.remote_repo);
        if (strncmp(host, "ssh://", 6) == 0)
                return usage_error("migrate", "name the host as [USER@]HOST[:PORT]; the repository there is "
                                              "--remote-repo PATH");
        _cleanup_(ssh_destination_clear) struct ssh_destination d = { 0 };
        r = ssh_parse_destination(host, &d);
        if (r < 0)
                return usage_error("migrate", "%s", error_message());
        const char *berth = settings.remote_berth && *settings.remote_berth ? settings.remote_berth : "berth";
        _cleanup_free_ char *shown = dest_name(&d);
        _cleanup_free_ char *url = xasprintf("ssh://%s%s", shown, a.remote_repo);
        _cleanup_free_ char *vol_shown = escape_name(volume, strlen(volume));
        _cleanup_free_ char *as_shown = escape_name(as, strlen(as));

        /* The far side first: its host key and our key are checked, and its
         * repository made, before the application is touched. */
        _cleanup_free_ char *dst_state = NULL;
        _cleanup_(repo_freep) struct repo *dst = NULL;
        bool created = false;
        r = open_repo_at(url, REPO_WRITE, &dst_state, &dst);
        if (r == -ENOENT || r == -BERTH_ENOTFOUND) {
                const char *m = error_message();
                if (m && strstr(m, "cannot be run"))
                        return fail(r, "migrate");
                if (!settings.quiet && !settings.json)
                        printf("no repository at %s on %s: creating one ('%s -r %s init')\n", a.remote_repo, shown,
                               berth, a.remote_repo);
                r = remote_init(&d, berth, a.remote_repo, shown);
                if (r < 0)
                        return fail(r, "migrate");
                created = true;
                r = open_repo_at(url, REPO_WRITE, &dst_state, &dst);
        }
        if (r < 0)
                return fail(r, "migrate");

        _cleanup_(repo_freep) struct repo *src = NULL;
        r = open_repo(REPO_WRITE, &src);
        if (r < 0)
                return fail(r, "migrate");
        if (strcmp(repo_id(src), repo_id(dst)) == 0)
                return usage_error("migrate", "%s on %s is this host's repository %s", a.remote_repo, shown,
                                   settings.repo);

        /* 1. The backup, as `berth backup VOLUME` makes it. */
        struct volume_backup_result b;
        r = backup_volume(src, volume, a.live ? 1 : 0, &b);
        if (r < 0)
                return r == -ECANCELED ? fail(r, "interrupted") : EXIT_FAILURE_;
        if (!b.complete) {
                error_set(EIO, "the backup of '%s' (snapshot %.12s) skipped entries (see the warnings above): not "
                               "migrated", vol_shown, b.id);
                return fail(-EIO, "migrate");
        }
        char dur[32], size[32];
        if (!settings.quiet && !settings.json) {
                if (b.quiesced)
                        printf("backed up '%s' (%s, snapshot %.12s); quiesce window %s%s\n", vol_shown,
                               format_bytes(b.bytes, size, sizeof size), b.id,
                               format_duration(b.window_ns, dur, sizeof dur), b.two_phase ? " (two-phase copy)" : "");
                else
                        printf("backed up '%s' (%s, snapshot %.12s); nothing to quiesce\n", vol_shown,
                               format_bytes(b.bytes, size, sizeof size), b.id);
        }

        /* 2. The copy: only what the far side lacks. */
        struct copy_options co = { .events = { .progress = progress_update, .cancel = &interrupted } };
        struct copy_result cr;
        progress_set_unit("chunks");
        progress_begin("sending");
        r = snapshot_copy(src, dst, b.id, &co, &cr);
        progress_end();
        if (r < 0) {
                const char *m = error_message();
                _cleanup_free_ char *msg = xstrdup(m ? m : berth_strerror(r));
                error_set(-r, "cannot copy snapshot %.12s to %s: %s; nothing was restored there", b.id, url, msg);
                return fail(r, "migrate");
        }
        repo_free(dst);
        dst = NULL;
        char sent[32];
        if (!settings.quiet && !settings.json)
                printf("sent %s (%llu of %llu chunks) to %s\n", format_bytes(cr.bytes_sent, sent, sizeof sent),
                       (unsigned long long)cr.chunks_sent, (unsigned long long)cr.chunks, shown);

        /* 3. The restore, by the far side's berth into its Docker. */
        struct buf cmd = { 0 };
        put_word(&cmd, berth);
        buf_append(&cmd, "-r ", 3);
        put_word(&cmd, a.remote_repo);
        buf_append(&cmd, "restore ", 8);
        put_word(&cmd, b.id);
        buf_append(&cmd, "--to-volume ", 12);
        put_word(&cmd, as);
        if (a.force)
                buf_append(&cmd, "--force ", 8);
        buf_append(&cmd, "--json", 6);
        struct remote_run rr = { 0 };
        if (!settings.quiet && !settings.json && settings.progress)
                fprintf(stderr, "restoring '%s' on %s...\n", as_shown, shown);
        r = run_remote(&d, &cmd, &rr);
        free(cmd.data);
        if (r < 0) {
                const char *m = error_message();
                _cleanup_free_ char *msg = xstrdup(m ? m : berth_strerror(r));
                error_set(-r, "cannot run the restore on %s: %s", shown, msg);
                return fail(r, "migrate");
        }
        if (rr.status != 0) {
                log_error("the restore of '%s' on %s failed (exit status %d)%s%s", as_shown, shown, rr.status,
                          *rr.err ? ": " : "", rr.err);
                int st = rr.status > 0 && rr.status < 64 ? rr.status : EXIT_FAILURE_;
                remote_run_clear(&rr);
                return st;
        }
        json_object *restored = json_tokener_parse(rr.out);
        remote_run_clear(&rr);

        if (settings.json) {
                json_object *j = json_object_new_object();
                json_object_object_add(j, "volume", json_object_new_string(volume));
                json_object_object_add(j, "as", json_object_new_string(as));
                json_object_object_add(j, "host", json_object_new_string(shown));
                json_object_object_add(j, "remote_repo", json_object_new_string(a.remote_repo));
                json_object_object_add(j, "snapshot", json_object_new_string(b.id));
                json_object_object_add(j, "remote_snapshot", json_object_new_string(cr.id[0] ? cr.id : b.id));
                json_object_object_add(j, "repo_created", json_object_new_boolean(created));
                json_object_object_add(j, "volume_bytes", json_object_new_int64((int64_t)b.bytes));
                json_object_object_add(j, "files", json_object_new_int64((int64_t)b.files));
                json_object_object_add(j, "quiesce_window_ns", json_object_new_int64(b.window_ns));
                json_object_object_add(j, "quiesced", json_object_new_boolean(b.quiesced));
                json_object_object_add(j, "two_phase", json_object_new_boolean(b.two_phase));
                json_object_object_add(j, "chunks", json_object_new_int64((int64_t)cr.chunks));
                json_object_object_add(j, "chunks_sent", json_object_new_int64((int64_t)cr.chunks_sent));
                json_object_object_add(j, "bytes_sent", json_object_new_int64((int64_t)cr.bytes_sent));
                json_object_object_add(j, "bytes_skipped", json_object_new_int64((int64_t)cr.bytes_skipped));
                json_object_object_add(j, "restore", restored);
                json_print(j);
        } else {
                json_object_put(restored);
                if (!settings.quiet)
                        printf("migrated '%s' to %s as '%s': %s sent, volume %s, quiesce window %s; snapshot %s\n",
                               vol_shown, shown, as_shown, format_bytes(cr.bytes_sent, sent, sizeof sent),
                               format_bytes(b.bytes, size, sizeof size), format_duration(b.window_ns, dur, sizeof dur),
                               b.id);
        }
        return EXIT_OK;
}

const struct command command_migrate = {
        .name = "migrate",
        .run = run,
        .summary = "move a Docker volume to another Docker host over SSH",
        .help = help,
};
