/* remote-maint.c — forget, prune and tag --no-keep on an ssh:// repository:
 * run on the repository's host, where its catalog and lock live, then the
 * local cache brought up to date. */
#include <string.h>

#include "remote.h"
#include "../transport/remote.h"

/* `<berth> --version` tells a shell that runs commands from a key
 * restricted to a forced command: a `berth serve --stdio` reads end of
 * file and prints nothing on stdout.  Returns 0, or an exit status once
 * the reason has been said. */
static int probe(struct ssh_session *s, const char *cmd, const char *berth, const char *shown)
{
        struct buf line = { 0 };
        remote_put_word(&line, berth);
        buf_append(&line, "--version", 9);
        struct remote_run rr = { 0 };
        int k = remote_exec(s, &line, false, &rr);
        free(line.data);
        if (k < 0)
                return fail(k, cmd);
        int status = EXIT_OK;
        if (rr.status == 126 || rr.status == 127)
                status = fail(remote_not_found(berth, shown, rr.err), cmd);
        else if (rr.status != 0 || strncmp(rr.out, "berth ", 6) != 0)
                status = fail(error_set(EPERM, "the SSH key for %s is restricted to berth serve: run forget/prune "
                                               "on that host, or use a key that may run berth (a forced command "
                                               "ran instead of '%s --version'); nothing was changed",
                                        shown, berth),
                              cmd);
        remote_run_clear(&rr);
        return status;
}

int remote_maintenance(const char *cmd, const char *const *args, size_t nargs, bool dry_run)
{
        _cleanup_(ssh_destination_clear) struct ssh_destination d = { 0 };
        int r = ssh_parse_destination(settings.repo, &d);
        if (r < 0)
                return fail(r, cmd);
        if (!d.path || !*d.path)
                return fail(error_set(EINVAL, "%s names no repository directory: use ssh://[USER@]HOST[:PORT]/PATH",
                                      settings.repo),
                            cmd);
        const char *berth = settings.remote_berth && *settings.remote_berth ? settings.remote_berth : "berth";
        _cleanup_free_ char *shown = remote_dest_name(&d);
        struct ssh_options o;
        remote_ssh_options(&d, &o);
        struct remote_run rr = { 0 };
        {
                _cleanup_(ssh_session_freep) struct ssh_session *s = NULL;
                r = ssh_connect(&o, &s);
                if (r < 0)
                        return fail(r, cmd);
                int st = probe(s, cmd, berth, shown);
                if (st != EXIT_OK)
                        return st;

                struct buf b = { 0 };
                const char *tz = getenv("TZ");
                if (tz) {
                        /* forget's periods are this side's local time */
                        buf_append(&b, "env ", 4);
                        _cleanup_free_ char *w = xasprintf("TZ=%s", tz);
                        remote_put_word(&b, w);
                }
                remote_put_word(&b, berth);
                buf_append(&b, "-r ", 3);
                remote_put_word(&b, d.path);
                buf_append(&b, "--no-progress ", 14);
                if (settings.json)
                        buf_append(&b, "--json ", 7);
                if (settings.quiet)
                        buf_append(&b, "-q ", 3);
                if (log_get_level() >= LOG_INFO)
                        buf_append(&b, "-v ", 3);
                if (log_get_level() >= LOG_DEBUG)
                        buf_append(&b, "-v ", 3);
                {
                        /* as a writer through serve would: the lock a dying
                         * serve still holds is waited for */
                        uint64_t wait = MAX(settings.lock_wait, (uint64_t)REMOTE_LOCK_GRACE);
                        _cleanup_free_ char *w = xasprintf("%llu", (unsigned long long)wait);
                        buf_append(&b, "--lock-wait ", 12);
                        remote_put_word(&b, w);
                }
                remote_put_word(&b, cmd);
                for (size_t i = 0; i < nargs; i++)
                        remote_put_word(&b, args[i]);
                log_debug("running on %s: %.*s", shown, (int)b.len, (const char *)b.data);
                r = remote_exec(s, &b, true, &rr);
                free(b.data);
                if (r < 0) {
                        const char *m = error_message();
                        _cleanup_free_ char *msg = xstrdup(m ? m : berth_strerror(r));
                        return fail(error_set(-r, "cannot run %s on %s: %s", cmd, shown, msg), cmd);
                }
        }
        int status = rr.status;
        remote_run_clear(&rr);
        if (status == 126 || status == 127)
                return fail(remote_not_found(berth, shown, ""), cmd);
        if (status < 0 || status >= 64)
                status = EXIT_FAILURE_;

        /* The far catalog is the truth; the cache here follows it (its
         * sync rebuilds when it lists snapshots or packs that are gone). */
        if (!dry_run && status != EXIT_USAGE) {
                _cleanup_(repo_freep) struct repo *repo = NULL;
                r = open_repo_at(settings.repo, REPO_READ, &settings.state_dir, &repo);
                if (r < 0) {
                        const char *m = error_message();
                        log_warning("the local cache of %s is not up to date (%s): the next command that writes "
                                    "there updates it",
                                    settings.repo, m ? m : berth_strerror(r));
                        error_clear();
                }
        }
        return status;
}
