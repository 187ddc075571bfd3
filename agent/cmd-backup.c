/* cmd-backup.c — berth backup: Docker volumes, a container's volumes, or a
 * directory, into snapshots. */
#include <libgen.h>
#include <string.h>

#include "agent.h"
#include "quiesce.h"
#include "volumes.h"

static const char help[] =
        "Usage: berth [-r REPO] backup VOLUME... [OPTIONS]\n"
        "       berth [-r REPO] backup --all [OPTIONS]\n"
        "       berth [-r REPO] backup --container NAME [--binds] [OPTIONS]\n"
        "       berth [-r REPO] backup --path DIR [--name NAME] [OPTIONS]\n"
        "\n"
        "Backs up Docker volumes (each into a snapshot named after the volume), every\n"
        "volume on the host (--all), all volumes of one container under a single\n"
        "quiesce window (--container), or a plain directory (--path).  Anonymous\n"
        "volumes are named by the container and path that use them, e.g.\n"
        "'mysql:/var/lib/mysql'.  Docker is reached at $DOCKER_HOST (unix://PATH,\n"
        "default /var/run/docker.sock).\n"
        "\n"
        "Quiescing: the running containers that mount a volume are paused (processes\n"
        "frozen: a crash-consistent image, no restart) or stopped (clean shutdown)\n"
        "while it is copied, per their label berth.quiesce=pause|stop|none, else the\n"
        "configured default (pause), else --quiesce.  Labels berth.pre and berth.post\n"
        "are commands run inside the container (sh -c) before quiescing and after it\n"
        "is back; a failing pre abandons that volume's backup and resumes everything.\n"
        "Every pause and stop is journaled first: on error, SIGINT/SIGTERM, or after a\n"
        "kill -9 (by 'berth recover' or the next berth run), each container is put\n"
        "back as it was.  Containers of one compose project are stopped dependants\n"
        "first and started providers first.\n"
        "\n"
        "Two-phase copy (default when a container would be quiesced): copy while the\n"
        "application runs, make it durable, then quiesce and copy only what changed.\n"
        "The quiesce window is printed and recorded in the snapshot; it never lasts\n"
        "longer than --max-window.  A second SIGINT/SIGTERM while containers are\n"
        "quiesced does not kill berth before they are back (SIGKILL does; then run\n"
        "'berth recover').\n"
        "\n"
        "Files are cut into content-defined chunks, database files (PostgreSQL, InnoDB,\n"
        "WiredTiger, SQLite: found by their tree, name and header) into runs of whole\n"
        "pages (2 by default), so that a changed page costs one such chunk.  A chunk the\n"
        "repository already has is not stored again, and a file whose size, mtime,\n"
        "ctime and inode match the previous snapshot is reused without being read.  A\n"
        "file that changes while it is read is read again (up to 4 times), then\n"
        "stored as last read, marked inconsistent and reported.  An unreadable entry\n"
        "is skipped with a warning; the snapshot is marked incomplete and the exit\n"
        "status is 3.  Each new snapshot's id is printed on a line of its own, last.\n"
        "\n"
        "Options:\n"
        "      --all                 every volume on the host\n"
        "  -c, --container NAME      the named and anonymous volumes of container NAME\n"
        "      --binds               with --container, its bind mounts too\n"
        "      --quiesce MODE        pause, stop or none for every container (overrides labels)\n"
        "      --two-phase           copy live first, then quiesced (default when quiescing)\n"
        "      --no-two-phase        copy once, all of it quiesced\n"
        "      --max-window SEC      abandon the quiesced copy and resume the containers\n"
        "                            after SEC seconds (default 300); the backup fails\n"
        "      --path DIR            back up a directory instead\n"
        "  -n, --name NAME           with --path: the snapshot name (default DIR's last component)\n"
        "      --unchanged FIELDS    stat fields that must match for a file to be reused:\n"
        "                            a comma list of size,mtime,ctime,inode (default all;\n"
        "                            size and mtime are required)\n"
        "      --force-read          read every file, reuse nothing\n"
        "      --one-file-system     do not descend into other mounted filesystems\n"
        "      --parent SNAPSHOT     compare with this snapshot instead of the newest\n"
        "      --host NAME           host name to record (default this host's)\n"
        "      --level N             zstd level for new chunks (default: the repository's)\n"
        "      --page-size SIZE      auto, off, or a page size (4k..64k): database files\n"
        "                            are cut at page boundaries (default: the volume's\n"
        "                            label berth.pagesize, else the repository's setting)\n"
        "      --json                print each result as a JSON object\n"
        "  -h, --help                this help\n";

struct plan {
        struct backup_options base;
        int override;        /* enum quiesce_action, or -1 */
        int two_phase;       /* 1, 0, or -1: when quiescing */
        uint64_t max_window; /* seconds */
        bool any_failed, any_incomplete;
        json_object *results; /* --json with several volumes */
        struct volume_backup_result *capture; /* backup_volume(): the results go here, nothing printed */
        size_t ncapture, ncaptured;           /* capture's size, and how many are filled */
};

static void report(struct plan *p, const char *source, const char *name, const struct backup_result *res,
                   const struct quiesce *q, bool two)
{
        if (!res->complete)
                p->any_incomplete = true;
        if (p->capture) {
                if (p->ncaptured >= p->ncapture)
                        return;
                struct volume_backup_result *c = &p->capture[p->ncaptured++];
                snprintf(c->id, sizeof c->id, "%s", res->id);
                snprintf(c->volume, sizeof c->volume, "%s", name);
                c->bytes = res->bytes;
                c->files = res->files;
                c->window_ns = q ? quiesce_window(q) : 0;
                c->quiesced = q && quiesce_needed(q);
                c->two_phase = two;
                c->complete = res->complete;
                return;
        }
        if (settings.json) {
                /* Several volumes make one array: collect the objects. */
                json_object *o = json_backup_result(source, name, res);
                json_object_object_add(o, "quiesce_window_ns", json_object_new_int64(q ? quiesce_window(q) : 0));
                json_object_object_add(o, "two_phase", json_object_new_boolean(two));
                json_object_array_add(p->results, o);
                return;
        }
        print_backup_result(source, name, res);
}

/* The page setting for a volume: --page-size, else its label
 * berth.pagesize (auto, off or a size; a bad one is warned about and
 * ignored), else 0 (the repository's). */
static int32_t volume_pages(const struct volume_target *t, int32_t given)
{
        if (given || strcmp(t->kind, "volume") != 0)
                return given;
        const char *l = docker_label(t->vol.labels, "berth.pagesize");
        int32_t v = 0;
        if (l && pages_parse(l, &v) < 0) {
                log_warning("volume '%s': label berth.pagesize=%.40s is not auto, off or a page size: ignored",
                            t->name, l);
                v = 0;
        }
        return v;
}

/* Records one attempt in the repository's job history (for metrics and
 * status): ok or partial with the snapshot `res` made, else failed with
 * `error`.  Not being able to record it is worth a warning only, unless the
 * disk failed (a failed write or fsync of catalog.db): that fails the
 * command (p->any_failed), the snapshot being saved all the same. */
static void record_job(struct repo *repo, struct plan *p, const char *name, int64_t started,
                       const struct backup_result *res, const char *error)
{
        char host[256] = "";
        if (!p->base.host && gethostname(host, sizeof host - 1) < 0)
                host[0] = 0;
        struct catalog_job j = {
                .kind = "backup",
                .name = name,
                .host = p->base.host ? p->base.host : host,
                .started = started,
                .finished = now_ns(),
                .status = !res ? "failed" : res->complete ? "ok" : "partial",
                .error = res ? NULL : error,
                .snapshot = res ? res->id : NULL,
                .bytes_added = res ? res->bytes_added : 0,
        };
        /* The backup's own failure is what the caller reports next.  The
         * job is the backup's last change to the catalog: flushed then. */
        _cleanup_free_ char *before = error_message() ? xstrdup(error_message()) : NULL;
        int k = catalog_job_add(repo_catalog(repo), &j);
        if (k == 0)
                k = catalog_flush(repo_catalog(repo));
        if (k == -EIO || k == -ENOSPC) {
                log_error("%s%s%s, but the catalog could not record it on disk: %s",
                          res ? "snapshot " : "backing up '", res ? res->id : name, res ? " is saved" : "' failed",
                          error_message());
                p->any_failed = true;
                if (before)
                        error_set(EIO, "%s", before);
        } else if (k < 0) {
                log_warning("cannot record the result of backing up '%s' in the job history: %s", name,
                            error_message());
                if (before)
                        error_set(EIO, "%s", before);
        }
}

/* Says why a group's backup failed, and keeps the words for its job
 * records (err: GROUP_ERR bytes). */
#define GROUP_ERR 1024
static void __attribute__((format(printf, 3, 4))) group_failed(struct plan *p, char *err, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, GROUP_ERR, fmt, ap);
        va_end(ap);
        log_error("%s", err);
        p->any_failed = true;
}

static void print_window(const struct quiesce *q, bool two)
{
        if (settings.json || settings.quiet || !quiesce_needed(q))
                return;
        char dur[32], names[512] = "";
        for (size_t i = 0; i < q->n; i++) {
                if (q->t[i].action == QUIESCE_NONE)
                        continue;
                char one[160];
                snprintf(one, sizeof one, "%s%s %s", *names ? ", " : "",
                         q->t[i].action == QUIESCE_PAUSE ? "paused" : "stopped", q->t[i].c.name);
                strncat(names, one, sizeof names - strlen(names) - 1);
        }
        printf("quiesce window %s (%s%s)\n", format_duration(quiesce_window(q), dur, sizeof dur), names,
               two ? "; two-phase copy" : "");
}

/* The quiesced pass's events: it is cancelled by a signal (through
 * quiesce_cancel) or when the window has lasted max_window. */
struct window {
        const struct snapshot_events *base;
        int64_t deadline;    /* mono_ns */
        bool expired;
};

static void window_progress(void *ud, const struct snapshot_progress *pr)
{
        struct window *w = ud;
        if (interrupted)
                quiesce_cancel = 1;
        if (w->deadline && mono_ns() > w->deadline) {
                w->expired = true;
                quiesce_cancel = 1;
        }
        if (w->base->progress)
                w->base->progress(w->base->ud, pr);
}

/* Backs up a group of targets under one quiesce window. */
static void backup_group(struct plan *p, struct repo *repo, struct docker *d, const struct docker_container *all,
                         size_t nall, struct volume_target *t, size_t n)
{
        struct quiesce q;
        struct backup_run **first = xcalloc(n, sizeof *first), **second = xcalloc(n, sizeof *second);
        struct docker_container *users = xcalloc(nall + 1, sizeof *users);
        bool *seen = xcalloc(nall + 1, sizeof *seen);
        size_t nusers = 0;
        int64_t started = now_ns();
        char err[GROUP_ERR] = "";
        int k;

        for (size_t i = 0; i < n; i++)
                for (size_t u = 0; u < t[i].nusers; u++)
                        if (!seen[t[i].users[u]]) {
                                seen[t[i].users[u]] = true;
                                users[nusers++] = all[t[i].users[u]];
                        }
        k = quiesce_plan(&q, d, repo_catalog(repo), users, nusers, p->override);
        if (k < 0) {
                group_failed(p, err, "cannot back up %s: %s", t[0].name, error_message());
                goto out;
        }
        bool two = p->two_phase < 0 ? quiesce_needed(&q) : p->two_phase == 1;

        if (two)
                for (size_t i = 0; i < n; i++) {
                        struct backup_options o = p->base;
                        o.path = t[i].path;
                        o.name = t[i].name;
                        o.page_size = volume_pages(&t[i], p->base.page_size);
                        o.first_pass = true;
                        o.events.warning = NULL; /* the quiesced pass reports what matters */
                        log_info("'%s': first pass while the application runs", t[i].name);
                        progress_begin("backup (live):");
                        k = snapshot_backup_walk(repo, &o, &first[i]);
                        progress_end();
                        if (k < 0) {
                                group_failed(p, err, "cannot back up '%s': %s", t[i].name, error_message());
                                goto out;
                        }
                }

        /* The first pass's packs are written and recorded now, not at the
         * start of the quiesced pass. */
        if (two) {
                k = snapshot_flush(repo);
                if (k < 0) {
                        group_failed(p, err, "cannot back up '%s': %s", t[0].name, error_message());
                        goto out;
                }
        }
        k = quiesce_pre(&q);
        if (k < 0) {
                group_failed(p, err, "%s", error_message());
                goto out;
        }
        quiesce_cancel = 0;
        struct window win = { .base = &p->base.events };
        k = quiesce_freeze(&q);
        if (quiesce_needed(&q))
                win.deadline = (q.frozen_at ? q.frozen_at : mono_ns()) + (int64_t)p->max_window * 1000000000;
        for (size_t i = 0; k >= 0 && i < n; i++) {
                struct backup_options o = p->base;
                o.path = t[i].path;
                o.name = t[i].name;
                o.page_size = volume_pages(&t[i], p->base.page_size);
                o.parent_run = first[i];
                o.events.progress = window_progress;
                o.events.ud = &win;
                o.events.cancel = quiesce_needed(&q) ? &quiesce_cancel : &interrupted;
                progress_begin(quiesce_needed(&q) ? "backup (quiesced):" : "backup:");
                k = snapshot_backup_walk(repo, &o, &second[i]);
                progress_end();
        }
        /* Containers go back as soon as the data is read, before the slow
         * part (compression, fsync, catalog). */
        char why[1024] = "";
        if (k < 0 && win.expired)
                snprintf(why, sizeof why,
                         "the quiesced copy took longer than --max-window %llus: it was abandoned, the containers "
                         "resumed, and no snapshot was written (raise --max-window%s)",
                         (unsigned long long)p->max_window, two ? "" : ", or drop --no-two-phase");
        else if (k < 0)
                snprintf(why, sizeof why, "%s", error_message() ? error_message() : berth_strerror(k));
        int t2 = quiesce_thaw(&q);
        quiesce_post(&q);
        if (k >= 0 && t2 >= 0 && q.resumed_elsewhere) {
                k = -ECANCELED;
                snprintf(why, sizeof why, "'berth recover' put its containers back during the quiesced copy, so "
                                          "the copy may be inconsistent; no snapshot was written");
        }
        if (k < 0 || t2 < 0) {
                group_failed(p, err, "cannot back up %s%s: %s", t[0].name, n > 1 ? " and the other volumes" : "",
                             *why ? why : error_message());
                goto out;
        }
        if (!p->capture)
                print_window(&q, two);

        for (size_t i = 0; i < n; i++) {
                json_object *meta = volume_target_meta(&t[i]);
                json_object *qj = quiesce_json(&q);
                json_object_object_add(qj, "two_phase", json_object_new_boolean(two));
                json_object_object_add(meta, "quiesce", qj);
                struct backup_result res;
                k = snapshot_backup_commit(repo, second[i], json_object_to_json_string_ext(meta, JSON_C_TO_STRING_PLAIN),
                                           quiesce_window(&q), &res);
                json_object_put(meta);
                if (k < 0) {
                        group_failed(p, err, "cannot record the backup of '%s': %s", t[i].name, error_message());
                        record_job(repo, p, t[i].name, started, NULL, err);
                        continue;
                }
                record_job(repo, p, t[i].name, started, &res, NULL);
                report(p, t[i].path, t[i].name, &res, &q, two);
        }
        err[0] = 0; /* each one is recorded */
out:
        for (size_t i = 0; *err && i < n; i++)
                record_job(repo, p, t[i].name, started, NULL, err);
        for (size_t i = 0; i < n; i++) {
                backup_run_free(first[i]);
                backup_run_free(second[i]);
        }
        free(first);
        free(second);
        free(users);
        free(seen);
        quiesce_clear(&q);
}

static int backup_docker(struct plan *p, char *const *names, size_t nnames, bool all, const char *container,
                         bool binds)
{
        _cleanup_(docker_freep) struct docker *d = NULL;
        _cleanup_(repo_freep) struct repo *repo = NULL;
        struct docker_container *list = NULL;
        struct volume_target *t = NULL;
        size_t nlist = 0, n = 0;
        unsigned skipped = 0;

        int k = docker_open(settings.docker_wait, &d);
        if (k == 0)
                k = open_repo(REPO_WRITE, &repo);
        if (k == 0)
                k = docker_containers(d, &list, &nlist);
        if (k == 0) {
                if (container)
                        k = volume_targets_container(d, list, nlist, container, binds, &t, &n);
                else if (all)
                        k = volume_targets_all(d, list, nlist, &t, &n, &skipped);
                else
                        k = volume_targets_named(d, list, nlist, names, nnames, &t, &n);
        }
        if (k < 0) {
                /* A volume that is not there (any more) is a failed backup of it. */
                for (size_t i = 0; repo && i < nnames; i++)
                        record_job(repo, p, names[i], now_ns(), NULL,
                                   error_message() ? error_message() : berth_strerror(k));
                docker_containers_free(list, nlist);
                return fail(k, "backup");
        }
        if (n == 0 && !settings.quiet)
                log_notice("no volumes to back up");

        if (container)
                backup_group(p, repo, d, list, nlist, t, n);
        else
                for (size_t i = 0; i < n && !interrupted; i++)
                        backup_group(p, repo, d, list, nlist, &t[i], 1);

        volume_targets_free(t, n);
        docker_containers_free(list, nlist);
        if (skipped)
                p->any_incomplete = true;
        /* record_job() flushed the catalog after each job: nothing is left
         * to flush unless something was written after the last. */
        if (close_repo(TAKE_PTR(repo), "the backups are saved") != EXIT_OK)
                p->any_failed = true;
        return 0;
}

int backup_volume(struct repo *repo, const char *name, int two_phase, struct volume_backup_result *ret)
{
        _cleanup_(docker_freep) struct docker *d = NULL;
        struct docker_container *list = NULL;
        struct volume_target *t = NULL;
        size_t nlist = 0, n = 0;
        char *names[] = { (char *)name };
        struct plan p = {
                .base = { .events = { .warning = report_warning, .progress = progress_update, .cancel = &interrupted } },
                .override = -1,
                .two_phase = two_phase,
                .max_window = 300,
                .capture = ret,
                .ncapture = 1,
        };

        memset(ret, 0, sizeof *ret);
        int k = docker_open(settings.docker_wait, &d);
        if (k == 0)
                k = docker_containers(d, &list, &nlist);
        if (k == 0)
                k = volume_targets_named(d, list, nlist, names, 1, &t, &n);
        if (k < 0) {
                docker_containers_free(list, nlist);
                fail(k, "backup");
                return k;
        }
        if (n > 0)
                backup_group(&p, repo, d, list, nlist, t, n);
        volume_targets_free(t, n);
        docker_containers_free(list, nlist);
        if (interrupted)
                return -ECANCELED;
        if (p.any_failed || !ret->id[0])
                return -EIO; /* backup_group said why */
        return 0;
}

int backup_container_volumes(struct repo *repo, const char *container, int two_phase,
                             struct volume_backup_result **ret, size_t *ret_n)
{
        _cleanup_(docker_freep) struct docker *d = NULL;
        struct docker_container *list = NULL;
        struct volume_target *t = NULL;
        size_t nlist = 0, n = 0, m = 0;
        struct plan p = {
                .base = { .events = { .warning = report_warning, .progress = progress_update, .cancel = &interrupted } },
                .override = -1,
                .two_phase = two_phase,
                .max_window = 300,
        };

        *ret = NULL;
        *ret_n = 0;
        int k = docker_open(settings.docker_wait, &d);
        if (k == 0)
                k = docker_containers(d, &list, &nlist);
        if (k == 0)
                k = volume_targets_container(d, list, nlist, container, false, &t, &n);
        if (k < 0) {
                docker_containers_free(list, nlist);
                fail(k, "backup");
                return k;
        }
        /* Only named volumes have a name to give on the far side. */
        for (size_t i = 0; i < n; i++) {
                if (strcmp(t[i].kind, "volume") != 0 || t[i].anonymous) {
                        log_warning("'%s' is not a named volume: left out", t[i].name);
                        volume_target_clear(&t[i]);
                } else if (strlen(t[i].name) >= sizeof (*ret)->volume) {
                        log_warning("volume name '%.40s...' is too long: left out", t[i].name);
                        volume_target_clear(&t[i]);
                } else
                        t[m++] = t[i];
        }
        if (m == 0) {
                volume_targets_free(t, m);
                docker_containers_free(list, nlist);
                _cleanup_free_ char *shown = escape_name(container, strlen(container));
                fail(error_set(ENOENT, "container '%s' has no named volumes", shown), "backup");
                return -ENOENT;
        }
        p.capture = xcalloc(m, sizeof *p.capture);
        p.ncapture = m;
        backup_group(&p, repo, d, list, nlist, t, m);
        volume_targets_free(t, m);
        docker_containers_free(list, nlist);
        if (interrupted || p.any_failed || p.ncaptured != m) {
                free(p.capture);
                return interrupted ? -ECANCELED : -EIO; /* backup_group said why */
        }
        *ret = p.capture;
        *ret_n = m;
        return 0;
}

struct backup_args {
        struct plan *p;
        const char *unchanged, *container;
        bool all, binds;
};

static int option(int c, const char *arg, void *ud)
{
        struct backup_args *a = ud;
        struct backup_options *o = &a->p->base;
        enum quiesce_action q;
        switch (c) {
        case 1:
                o->path = arg;
                break;
        case 'n':
                o->name = arg;
                break;
        case 2:
                a->unchanged = arg;
                break;
        case 3:
                o->force_read = true;
                break;
        case 4:
                o->one_file_system = true;
                break;
        case 5:
                o->parent = arg;
                break;
        case 6:
                o->host = arg;
                break;
        case 7:
                settings.level = atoi(arg);
                if (settings.level < 1 || settings.level > 19)
                        return usage_error("backup", "--level must be 1..19");
                break;
        case 8:
                a->all = true;
                break;
        case 'c':
                a->container = arg;
                break;
        case 9:
                a->binds = true;
                break;
        case 10:
                if (quiesce_parse(arg, &q) < 0)
                        return usage_error("backup", "--quiesce takes pause, stop or none");
                a->p->override = (int)q;
                break;
        case 11:
                a->p->two_phase = 1;
                break;
        case 12:
                a->p->two_phase = 0;
                break;
        case 14:
                if (pages_parse(arg, &o->page_size) < 0)
                        return usage_error("backup", "--page-size takes auto, off or a power of two 4k..64k, not '%s'",
                                           arg);
                break;
        case 13:
                if (parse_duration(arg, &a->p->max_window) < 0 || a->p->max_window == 0)
                        return usage_error("backup", "--max-window takes a number of seconds (or 5m, 1h), not '%s'",
                                           arg);
                if (a->p->max_window > 366 * 86400) /* a year is forever here; no overflow in ns */
                        a->p->max_window = 366 * 86400;
                break;
        default:
                return OPT_UNKNOWN;
        }
        return OPT_DONE;
}

static int run(int argc, char **argv)
{
        static const struct option options[] = {
                GLOBAL_OPTIONS,
                { "path", required_argument, NULL, 1 },
                { "name", required_argument, NULL, 'n' },
                { "unchanged", required_argument, NULL, 2 },
                { "force-read", no_argument, NULL, 3 },
                { "one-file-system", no_argument, NULL, 4 },
                { "parent", required_argument, NULL, 5 },
                { "host", required_argument, NULL, 6 },
                { "level", required_argument, NULL, 7 },
                { "all", no_argument, NULL, 8 },
                { "container", required_argument, NULL, 'c' },
                { "binds", no_argument, NULL, 9 },
                { "quiesce", required_argument, NULL, 10 },
                { "two-phase", no_argument, NULL, 11 },
                { "no-two-phase", no_argument, NULL, 12 },
                { "max-window", required_argument, NULL, 13 },
                { "page-size", required_argument, NULL, 14 },
                {},
        };
        struct plan p = {
                .base = { .events = { .warning = report_warning, .progress = progress_update, .cancel = &interrupted } },
                .override = -1,
                .two_phase = -1,
                .max_window = 300,
        };
        struct backup_options *o = &p.base;
        struct backup_args a = { .p = &p, .unchanged = settings.unchanged };
        int pr = parse_options(argc, argv, "n:c:", options, option, &a);
        if (pr != OPT_DONE)
                return pr;
        const char *unchanged = a.unchanged, *container = a.container;
        bool all = a.all, binds = a.binds;
        size_t nnames = (size_t)(argc - optind);
        int modes = (o->path != NULL) + (all ? 1 : 0) + (container != NULL) + (nnames > 0);
        if (modes == 0)
                return usage_error("backup", "name the volumes to back up, or use --all, --container NAME or --path DIR");
        if (modes > 1)
                return usage_error("backup", "give volumes, --all, --container or --path: one of them");
        if (binds && !container)
                return usage_error("backup", "--binds goes with --container");
        if (o->name && !o->path)
                return usage_error("backup", "--name goes with --path; a volume's snapshots are named after it");
        if (unchanged && parse_unchanged_fields(unchanged, &o->unchanged) < 0)
                return usage_error("backup", "--unchanged: '%s' is not a list of size,mtime,ctime,inode including "
                                             "size and mtime", unchanged);

        if (!o->path) {
                p.results = json_object_new_array();
                int r = backup_docker(&p, argv + optind, nnames, all, container, binds);
                if (r != 0) {
                        json_object_put(p.results);
                        return r;
                }
                if (settings.json)
                        json_print(json_object_array_length(p.results) == 1 ? json_object_get(json_object_array_get_idx(p.results, 0))
                                                                            : json_object_get(p.results));
                json_object_put(p.results);
                if (interrupted)
                        return fail(-ECANCELED, "interrupted");
                return p.any_failed ? EXIT_FAILURE_ : p.any_incomplete ? EXIT_PARTIAL : EXIT_OK;
        }

        _cleanup_free_ char *copy = xstrdup(o->path);
        if (!o->name) {
                char *b = basename(copy);
                o->name = strcmp(b, "/") == 0 || strcmp(b, ".") == 0 ? "root" : b;
        }
        if (strchr(o->name, '@') || !*o->name)
                return usage_error("backup", "a snapshot name cannot be empty or contain '@'");

        _cleanup_(repo_freep) struct repo *repo = NULL;
        int r = open_repo(REPO_WRITE, &repo);
        if (r < 0)
                return fail(r, "backup");
        struct backup_result res;
        int64_t started = now_ns();
        progress_begin("backup:");
        r = snapshot_backup(repo, o, &res);
        progress_end();
        record_job(repo, &p, o->name, started, r < 0 ? NULL : &res,
                   error_message() ? error_message() : berth_strerror(r));
        if (r < 0)
                return fail(r, "backup");
        /* Flushed by record_job() already: the close has nothing to do. */
        if (close_repo(TAKE_PTR(repo), "snapshot %s is saved", res.id) != EXIT_OK)
                p.any_failed = true;
        print_backup_result(o->path, o->name, &res);
        if (p.any_failed)
                return EXIT_FAILURE_; /* record_job or close_repo said why */
        return res.complete ? EXIT_OK : EXIT_PARTIAL;
}

const struct command command_backup = { "backup", run, "back up Docker volumes or a directory", help };
