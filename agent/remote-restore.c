/* remote-restore.c — the far half of migrate and restore --host: open (or
 * create) a repository on a Docker host over SSH, send it a snapshot, and
 * have that host's berth restore it into a Docker volume. */
#include <string.h>

#include "remote.h"

/* Runs `<berth> -r PATH init` on the far side. */
static int remote_init(const struct remote_host *h)
{
        struct buf b = { 0 };
        remote_put_word(&b, h->berth);
        buf_append(&b, "-r ", 3);
        remote_put_word(&b, h->path);
        buf_append(&b, "init", 4);
        struct remote_run rr = { 0 };
        int k = remote_run_at(&h->d, &b, &rr);
        free(b.data);
        if (k < 0)
                return k;
        if (rr.status != 0) {
                if (rr.status == 126 || rr.status == 127)
                        k = remote_not_found(h->berth, h->shown, rr.err);
                else
                        k = error_set(EIO, "cannot create a repository at %s on %s (exit status %d)%s%s", h->path,
                                      h->shown, rr.status, *rr.err ? ": " : "", rr.err);
        }
        remote_run_clear(&rr);
        return k;
}

int remote_host_parse(const char *cmd, const char *host, const char *path, struct remote_host *ret)
{
        *ret = (struct remote_host){ .path = path };
        if (path[0] != '/')
                return usage_error(cmd, "--remote-repo takes an absolute path, not '%s'", path);
        if (strncmp(host, "ssh://", 6) == 0)
                return usage_error(cmd, "name the host as [USER@]HOST[:PORT]; the repository there is "
                                        "--remote-repo PATH");
        if (ssh_parse_destination(host, &ret->d) < 0)
                return usage_error(cmd, "%s", error_message());
        ret->berth = settings.remote_berth && *settings.remote_berth ? settings.remote_berth : "berth";
        ret->shown = remote_dest_name(&ret->d);
        ret->url = xasprintf("ssh://%s%s", ret->shown, path);
        return EXIT_OK;
}

static int remote_host_open_repo(struct remote_host *h);

/* The far repository of migrate and restore --host must be unencrypted,
 * and is created so.  From an encrypted local repository the snapshot is
 * re-keyed on the way (snapshot/copy.c): decrypted here, stored plain
 * there.  The far host restores it into a Docker volume, so it reads the
 * data anyway; what never leaves this host is the local repository's
 * password and master key.  An encrypted far repository is refused before
 * anything is sent: its host's berth would need a password of its own for
 * the restore, and this side will not hand one over. */
static int far_password(const char *where, bool confirm, char **ret)
{
        (void)confirm;
        (void)ret;
        return error_set(EACCES,
                         "the repository %s is encrypted: migrate and restore --host need an unencrypted "
                         "repository on the far host (its host restores the data, so it reads it anyway); "
                         "name another with --remote-repo, or use 'berth copy' to fill an encrypted one",
                         where);
}

int remote_host_open(struct remote_host *h)
{
        repo_set_password_source(far_password);
        int r = remote_host_open_repo(h);
        repo_set_password_source(password_get);
        return r;
}

static int remote_host_open_repo(struct remote_host *h)
{
        _cleanup_free_ char *state = NULL;
        int r = open_repo_at(h->url, REPO_WRITE, &state, &h->repo);
        if (r == -ENOENT || r == -BERTH_ENOTFOUND) {
                const char *m = error_message();
                if (m && strstr(m, "cannot be run"))
                        return r;
                if (!settings.quiet && !settings.json)
                        printf("no repository at %s on %s: creating one ('%s -r %s init')\n", h->path, h->shown,
                               h->berth, h->path);
                r = remote_init(h);
                if (r < 0)
                        return r;
                h->created = true;
                free(state);
                state = NULL;
                r = open_repo_at(h->url, REPO_WRITE, &state, &h->repo);
        }
        return r;
}

void remote_host_close_repo(struct remote_host *h)
{
        repo_free(h->repo);
        h->repo = NULL;
}

void remote_host_clear(struct remote_host *h)
{
        remote_host_close_repo(h);
        ssh_destination_clear(&h->d);
        free(h->shown);
        free(h->url);
        *h = (struct remote_host){ 0 };
}

int remote_send(struct remote_host *h, struct repo *src, const char *id, struct copy_result *ret)
{
        struct copy_options co = { .events = { .progress = progress_update, .cancel = &interrupted } };
        progress_set_unit("chunks");
        progress_begin("sending");
        int r = snapshot_copy(src, h->repo, id, &co, ret);
        progress_end();
        if (r < 0) {
                const char *m = error_message();
                _cleanup_free_ char *msg = xstrdup(m ? m : berth_strerror(r));
                return error_set(-r, "cannot copy snapshot %.12s to %s: %s; nothing was restored there", id, h->url,
                                 msg);
        }
        char sent[32];
        if (!settings.quiet && !settings.json)
                printf("sent %s (%llu of %llu chunks) to %s\n", format_bytes(ret->bytes_sent, sent, sizeof sent),
                       (unsigned long long)ret->chunks_sent, (unsigned long long)ret->chunks, h->shown);
        return 0;
}

int remote_restore(struct remote_host *h, const char *id, const char *volume, bool force, json_object **ret_report)
{
        *ret_report = NULL;
        struct buf cmd = { 0 };
        remote_put_word(&cmd, h->berth);
        buf_append(&cmd, "-r ", 3);
        remote_put_word(&cmd, h->path);
        buf_append(&cmd, "restore ", 8);
        remote_put_word(&cmd, id);
        buf_append(&cmd, "--to-volume ", 12);
        remote_put_word(&cmd, volume);
        if (force)
                buf_append(&cmd, "--force ", 8);
        /* Success only when the far side's tree checks out (exit 5 if not). */
        buf_append(&cmd, "--verify ", 9);
        buf_append(&cmd, "--json", 6);
        _cleanup_free_ char *shown = escape_name(volume, strlen(volume));
        if (!settings.quiet && !settings.json && settings.progress)
                fprintf(stderr, "restoring '%s' on %s...\n", shown, h->shown);
        struct remote_run rr = { 0 };
        int r = remote_run_at(&h->d, &cmd, &rr);
        free(cmd.data);
        if (r < 0) {
                const char *m = error_message();
                _cleanup_free_ char *msg = xstrdup(m ? m : berth_strerror(r));
                return error_set(-r, "cannot run the restore on %s: %s", h->shown, msg);
        }
        if (rr.status != 0) {
                log_error("the restore of '%s' on %s failed (exit status %d)%s%s", shown, h->shown, rr.status,
                          *rr.err ? ": " : "", rr.err);
                int st = rr.status > 0 && rr.status < 64 ? rr.status : EXIT_FAILURE_;
                remote_run_clear(&rr);
                return st;
        }
        *ret_report = json_tokener_parse(rr.out);
        remote_run_clear(&rr);
        return 0;
}

int restore_to_host(const char *snapshot, const char *host, const char *remote_repo, const char *volume, bool force)
{
        _cleanup_(remote_host_clear) struct remote_host h = { 0 };
        int r = remote_host_parse("restore", host, remote_repo, &h);
        if (r != EXIT_OK)
                return r;
        if (!*volume)
                return usage_error("restore", "a volume name cannot be empty");

        /* The snapshot here first: a typo costs no connection. */
        _cleanup_(repo_freep) struct repo *src = NULL;
        struct catalog_snapshot s = { 0 };
        r = open_repo(REPO_READ, &src);
        if (r == 0)
                r = snapshot_resolve(src, snapshot, &s);
        if (r < 0)
                return fail(r, "restore");
        _cleanup_free_ char *id = xstrdup(s.id);
        catalog_snapshot_clear(&s);

        r = remote_host_open(&h);
        if (r < 0)
                return fail(r, "restore");
        if (strcmp(repo_id(src), repo_id(h.repo)) == 0)
                return usage_error("restore", "%s on %s is this host's repository %s: restore there without --host",
                                   h.path, h.shown, settings.repo);
        struct copy_result cr;
        r = remote_send(&h, src, id, &cr);
        if (r < 0)
                return fail(r, "restore");
        remote_host_close_repo(&h);

        /* Its id there: another one when the copy re-keyed it. */
        json_object *restored = NULL;
        r = remote_restore(&h, cr.id[0] ? cr.id : id, volume, force, &restored);
        if (r < 0)
                return fail(r, "restore");
        if (r > 0)
                return r;
        char sent[32], size[32];
        if (settings.json) {
                json_object *j = json_object_new_object();
                json_object_object_add(j, "snapshot", json_object_new_string(id));
                json_object_object_add(j, "remote_snapshot", json_object_new_string(cr.id[0] ? cr.id : id));
                json_object_object_add(j, "volume", json_object_new_string(volume));
                json_object_object_add(j, "host", json_object_new_string(h.shown));
                json_object_object_add(j, "remote_repo", json_object_new_string(h.path));
                json_object_object_add(j, "repo_created", json_object_new_boolean(h.created));
                json_object_object_add(j, "chunks", json_object_new_int64((int64_t)cr.chunks));
                json_object_object_add(j, "chunks_sent", json_object_new_int64((int64_t)cr.chunks_sent));
                json_object_object_add(j, "bytes_sent", json_object_new_int64((int64_t)cr.bytes_sent));
                json_object_object_add(j, "bytes_skipped", json_object_new_int64((int64_t)cr.bytes_skipped));
                json_object_object_add(j, "restore", restored);
                json_print(j);
                return EXIT_OK;
        }
        json_object *bytes = NULL, *files = NULL;
        if (restored) {
                json_object_object_get_ex(restored, "bytes", &bytes);
                json_object_object_get_ex(restored, "files", &files);
        }
        if (!settings.quiet) {
                _cleanup_free_ char *vs = escape_name(volume, strlen(volume));
                printf("restored snapshot %.12s to volume '%s' on %s: %s sent, %lld files, %s\n", id, vs, h.shown,
                       format_bytes(cr.bytes_sent, sent, sizeof sent), (long long)json_object_get_int64(files),
                       format_bytes((uint64_t)json_object_get_int64(bytes), size, sizeof size));
        }
        json_object_put(restored);
        return EXIT_OK;
}
