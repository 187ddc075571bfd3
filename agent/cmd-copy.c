/* cmd-copy.c — berth copy: replicate snapshots into another repository. */
#include <string.h>

#include "agent.h"

static const char help[] =
        "Usage: berth [-r REPO] copy SNAPSHOT... --to DEST [--json]\n"
        "       berth [-r REPO] copy --all-snapshots NAME --to DEST\n"
        "\n"
        "Replicates snapshots of the repository (-r, the source) into the repository DEST,\n"
        "a directory on this host or ssh://[USER@]HOST[:PORT]/PATH on another one (served\n"
        "there by 'berth serve --stdio', as for -r).  A local DEST that does not exist or\n"
        "is empty is created.  Each SNAPSHOT is an id, a unique id prefix, NAME, NAME@latest\n"
        "or NAME@TIME, resolved in the source.\n"
        "\n"
        "Only the chunks DEST lacks are sent, as the source stores them (compressed\n"
        "bytes are not decompressed and compressed again); DEST decodes each once and\n"
        "checks it against its id before it counts as stored, and the snapshot appears\n"
        "there, with the same id, only once all its data is durable.  A snapshot DEST\n"
        "has already is skipped (and said so).  Damaged data in the source fails the\n"
        "copy of that snapshot, which DEST then does not get.  An interrupted copy,\n"
        "run again, sends only what had not arrived.\n"
        "\n"
        "Encrypted repositories: the source's password comes from the usual sources\n"
        "(--password-file, --password-command, BERTH_PASSWORD_FILE, ...; see berth\n"
        "--help), DEST's from --to-password-file, --to-password-command or\n"
        "BERTH_TO_PASSWORD_FILE, else from the same sources as the source's.  When\n"
        "both are plain, or both encrypted under the same master key, chunks keep\n"
        "their ids and travel as stored (sealed again for DEST).  Otherwise (plain to\n"
        "encrypted, encrypted to plain, two different keys) every chunk is read (and\n"
        "decrypted) here and stored under DEST's own id and key, and the snapshot gets\n"
        "a new id in DEST (shown as \"copied as ID\", \"to_id\" in --json); the data\n"
        "is then re-read on every copy, but only what DEST lacks is stored.  Copying\n"
        "from an encrypted repository into a plain one stores the data there\n"
        "unencrypted.\n"
        "\n"
        "Options:\n"
        "      --to DEST              the destination repository (required)\n"
        "      --all-snapshots NAME   every snapshot of NAME, oldest first (repeatable)\n"
        "      --to-password-file FILE    DEST's password: the first line of FILE\n"
        "      --to-password-command CMD  DEST's password: the first line CMD prints\n"
        "      --json                 {\"to\", \"snapshots\": [{\"id\", \"to_id\", \"name\", \"copied\",\n"
        "                             \"present\", \"chunks\", \"chunks_sent\", \"bytes_sent\",\n"
        "                             \"bytes_skipped\"}], \"snapshots_copied\",\n"
        "                             \"snapshots_present\", \"chunks_sent\", \"bytes_sent\",\n"
        "                             \"bytes_skipped\"}; bytes are stored (compressed) bytes\n"
        "  -h, --help                 this help\n"
        "\n"
        "SSH options (-i, --known-hosts, --accept-new-host-key, --remote-berth) apply to\n"
        "both repositories.  Exit status 0 when every snapshot was copied or present.\n";

struct args {
        const char *to, *to_password_file, *to_password_command;
        const char **names;
        size_t nnames;
};

static int option(int c, const char *arg, void *ud)
{
        struct args *a = ud;
        switch (c) {
        case 1:
                a->to = arg;
                return OPT_DONE;
        case 2:
                a->names = xrealloc(a->names, (a->nnames + 1) * sizeof *a->names);
                a->names[a->nnames++] = arg;
                return OPT_DONE;
        case 3:
                a->to_password_file = arg;
                return OPT_DONE;
        case 4:
                a->to_password_command = arg;
                return OPT_DONE;
        default:
                return OPT_UNKNOWN;
        }
}

struct target {
        char id[2 * CATALOG_HASH_LEN + 1];
        char *name;
};

static void add_target(struct target **v, size_t *n, const char *id, const char *name)
{
        for (size_t i = 0; i < *n; i++)
                if (strcmp((*v)[i].id, id) == 0)
                        return;
        *v = xrealloc(*v, (*n + 1) * sizeof **v);
        snprintf((*v)[*n].id, sizeof (*v)[*n].id, "%s", id);
        (*v)[*n].name = xstrdup(name);
        (*n)++;
}

static void free_targets(struct target *v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i].name);
        free(v);
}

static int run(int argc, char **argv)
{
        static const struct option options[] = {
                GLOBAL_OPTIONS,
                { "to", required_argument, NULL, 1 },
                { "all-snapshots", required_argument, NULL, 2 },
                { "to-password-file", required_argument, NULL, 3 },
                { "to-password-command", required_argument, NULL, 4 },
                {},
        };
        struct args a = { 0 };
        int r = parse_options(argc, argv, NULL, options, option, &a);
        _cleanup_free_ const char **names = a.names;
        if (r != OPT_DONE)
                return r;
        if (!a.to || !*a.to)
                return usage_error("copy", "name the destination repository with --to DEST");
        if (optind >= argc && a.nnames == 0)
                return usage_error("copy", "name at least one SNAPSHOT (or --all-snapshots NAME)");
        if (strcmp(a.to, settings.repo) == 0)
                return usage_error("copy", "the destination is the source repository");

        _cleanup_(repo_freep) struct repo *src = NULL;
        r = open_repo(REPO_READ, &src);
        if (r < 0)
                return fail(r, "copy");

        struct target *targets = NULL;
        size_t ntargets = 0;
        for (int i = optind; i < argc; i++) {
                struct catalog_snapshot s = { 0 };
                r = snapshot_resolve(src, argv[i], &s);
                if (r < 0) {
                        free_targets(targets, ntargets);
                        return fail(r, "copy");
                }
                add_target(&targets, &ntargets, s.id, s.name);
                catalog_snapshot_clear(&s);
        }
        for (size_t i = 0; i < a.nnames; i++) {
                struct catalog_snapshot *list;
                size_t n;
                r = catalog_snapshot_list(repo_catalog(src), a.names[i], &list, &n);
                if (r < 0) {
                        free_targets(targets, ntargets);
                        return fail(r, "copy");
                }
                if (n == 0) {
                        free_targets(targets, ntargets);
                        error_set(BERTH_ENOTFOUND, "no snapshots of '%s' in %s", a.names[i], settings.repo);
                        return fail(-BERTH_ENOTFOUND, "copy");
                }
                for (size_t k = 0; k < n; k++)
                        add_target(&targets, &ntargets, list[k].id, list[k].name);
                catalog_snapshot_list_free(list, n);
        }

        _cleanup_free_ char *dst_state = NULL;
        _cleanup_(repo_freep) struct repo *dst = NULL;
        password_set_destination(a.to_password_file, a.to_password_command);
        password_for_destination(true);
        r = open_repo_at(a.to, REPO_WRITE, &dst_state, &dst);
        password_for_destination(false);
        if (r < 0) {
                free_targets(targets, ntargets);
                return fail(r, "copy");
        }
        if (strcmp(repo_id(src), repo_id(dst)) == 0) {
                free_targets(targets, ntargets);
                return usage_error("copy", "%s and %s are the same repository", settings.repo, a.to);
        }

        json_object *jlist = json_object_new_array();
        uint64_t copied = 0, present = 0, chunks_sent = 0, bytes_sent = 0, bytes_skipped = 0;
        struct copy_options o = { .events = { .progress = progress_update, .cancel = &interrupted } };
        int status = EXIT_OK;
        _cleanup_free_ char *to_shown = escape_name(a.to, strlen(a.to));
        if (repo_encrypted(src) && !repo_encrypted(dst))
                log_notice("%s is not encrypted: the snapshots copied there are stored in plain form", to_shown);
        progress_set_unit("chunks");
        for (size_t i = 0; i < ntargets; i++) {
                struct target *t = &targets[i];
                _cleanup_free_ char *nm = escape_name(t->name, strlen(t->name));
                struct copy_result res;
                progress_begin("copying");
                r = snapshot_copy(src, dst, t->id, &o, &res);
                progress_end();
                if (r < 0) {
                        const char *m = error_message();
                        _cleanup_free_ char *msg = xstrdup(m ? m : berth_strerror(r));
                        error_set(-r, "cannot copy snapshot %.12s (%s) to %s: %s; it was not recorded there", t->id,
                                  nm, to_shown, msg);
                        status = fail(r, "copy");
                        break;
                }
                if (res.present)
                        present++;
                else
                        copied++;
                chunks_sent += res.chunks_sent;
                bytes_sent += res.bytes_sent;
                bytes_skipped += res.bytes_skipped;
                if (settings.json) {
                        json_object *j = json_object_new_object();
                        json_object_object_add(j, "id", json_object_new_string(t->id));
                        json_object_object_add(j, "to_id", json_object_new_string(res.id));
                        json_object_object_add(j, "name", json_object_new_string(t->name));
                        json_object_object_add(j, "copied", json_object_new_boolean(!res.present));
                        json_object_object_add(j, "present", json_object_new_boolean(res.present));
                        json_object_object_add(j, "chunks", json_object_new_int64((int64_t)res.chunks));
                        json_object_object_add(j, "chunks_sent", json_object_new_int64((int64_t)res.chunks_sent));
                        json_object_object_add(j, "bytes_sent", json_object_new_int64((int64_t)res.bytes_sent));
                        json_object_object_add(j, "bytes_skipped", json_object_new_int64((int64_t)res.bytes_skipped));
                        json_object_array_add(jlist, j);
                } else if (!settings.quiet) {
                        char sent[32], skipped[32];
                        char as[40] = "";
                        if (strcmp(res.id, t->id) != 0)
                                snprintf(as, sizeof as, " as %.12s", res.id);
                        if (res.present)
                                printf("%.12s %s: already in %s%s, skipped\n", t->id, nm, to_shown, as);
                        else
                                printf("%.12s %s: copied%s, %llu of %llu chunks sent (%s), %s already there\n",
                                       t->id, nm, as, (unsigned long long)res.chunks_sent,
                                       (unsigned long long)res.chunks, format_bytes(res.bytes_sent, sent, sizeof sent),
                                       format_bytes(res.bytes_skipped, skipped, sizeof skipped));
                }
        }
        free_targets(targets, ntargets);
        if (status != EXIT_OK) {
                json_object_put(jlist);
                return status;
        }
        status = close_repo(TAKE_PTR(dst), "the snapshots are copied to %s", to_shown);
        if (settings.json) {
                json_object *j = json_object_new_object();
                json_object_object_add(j, "to", json_object_new_string(a.to));
                json_object_object_add(j, "snapshots", jlist);
                json_object_object_add(j, "snapshots_copied", json_object_new_int64((int64_t)copied));
                json_object_object_add(j, "snapshots_present", json_object_new_int64((int64_t)present));
                json_object_object_add(j, "chunks_sent", json_object_new_int64((int64_t)chunks_sent));
                json_object_object_add(j, "bytes_sent", json_object_new_int64((int64_t)bytes_sent));
                json_object_object_add(j, "bytes_skipped", json_object_new_int64((int64_t)bytes_skipped));
                json_print(j);
        } else {
                json_object_put(jlist);
                if (!settings.quiet && ntargets > 1) {
                        char sent[32];
                        printf("%llu snapshot(s) copied, %llu already there; %s sent\n", (unsigned long long)copied,
                               (unsigned long long)present, format_bytes(bytes_sent, sent, sizeof sent));
                }
        }
        return status;
}

const struct command command_copy = {
        .name = "copy",
        .run = run,
        .summary = "replicate snapshots into another repository (local or ssh://)",
        .help = help,
};
