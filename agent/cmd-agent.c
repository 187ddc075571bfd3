/* cmd-agent.c — berth agent: the daemon that backs up Docker volumes on the
 * schedules their labels (or the configuration) give, applies their
 * retention, prunes, and answers `berth status` / `berth run-now`.
 *
 * One thread, one poll() loop over a signalfd (SIGTERM, SIGINT, SIGHUP,
 * SIGCHLD), the control socket and the running job's pipes.  Every job is a
 * child process running this binary (`berth backup NAME`, `berth forget`,
 * `berth prune`, `berth metrics`, `berth recover`), one at a time: the
 * repository takes one writer, and a crash or a bug in a job never takes
 * the agent down with it.
 */
#include <poll.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>

#include "agent.h"
#include "control.h"
#include "docker.h"
#include "job.h"
#include "keyhand.h"
#include "notify.h"
#include "scheduler.h"
#include "../common/schedule.h"

static const char help[] =
        "Usage: berth [-r REPO] agent\n"
        "\n"
        "The long-running daemon (systemd: berth-agent.service).  It stays in the\n"
        "foreground and logs one event per line on stderr.  It backs up each Docker\n"
        "volume it covers on that volume's schedule, one job at a time, each as a child\n"
        "process: 'berth backup NAME' (quiescing containers from their labels, as\n"
        "always), then, when the volume has a retention policy, 'berth forget --name\n"
        "NAME --keep SPEC'.  'berth prune' runs on its own schedule, and 'berth metrics\n"
        "--output FILE' after each job when metrics_file is set.  At start it runs\n"
        "'berth recover' (containers a crash left paused or stopped).  An encrypted\n"
        "repository's key is opened once, at start (the password as for any command),\n"
        "and handed to each job over a pipe, so jobs neither read the password nor\n"
        "pay for scrypt; the agent keeps it in locked memory until it exits.\n"
        "\n"
        "Labels, on a volume or on a container (which covers its named volumes; the\n"
        "volume's own label wins):\n"
        "  berth.schedule   hourly | daily | weekly | monthly | daily HH:MM | every DURATION\n"
        "                   (every 15m, every 1h30m); hourly runs at minute 0, daily at\n"
        "                   00:00, weekly on Monday 00:00, monthly on the 1st, local time\n"
        "  berth.keep       last=N,hourly=N,daily=N,weekly=N,monthly=N,yearly=N\n"
        "An invalid value is logged as a warning and that volume is skipped.\n"
        "\n"
        "Configuration (berth.conf):\n"
        "  volumes = labelled | all | NAME,NAME   which volumes besides the labelled ones\n"
        "                   (default labelled: only volumes with a berth.schedule label)\n"
        "  schedule = SCHEDULE   for covered volumes without a label (default daily)\n"
        "  keep = SPEC           retention for volumes without a berth.keep label\n"
        "  prune_schedule = SCHEDULE   (default weekly)\n"
        "  metrics_file = PATH   a Prometheus textfile-collector file\n"
        "  runtime_dir = DIR     the control socket's directory (default /run/berth,\n"
        "                        $BERTH_RUNTIME_DIR)\n"
        "\n"
        "A volume whose last snapshot is older than its schedule (the host was off) is\n"
        "backed up once at start; one never backed up waits for its first scheduled\n"
        "time (or 'berth run-now').  A failed job is retried after 30s, 1m, 2m...\n"
        "(never later than the schedule's interval) and recorded; the other volumes\n"
        "go on.  Docker events (a labelled volume created, a container started) are\n"
        "picked up within seconds, and everything is looked at again every minute;\n"
        "while Docker is unreachable the agent retries and keeps answering.\n"
        "\n"
        "Signals: SIGHUP reloads the agent's configuration keys and looks again;\n"
        "SIGTERM/SIGINT pass SIGTERM to the running job (a backup resumes its\n"
        "containers and records no snapshot), wait for it, and exit 0.  If the agent is\n"
        "killed, its job gets SIGTERM (PR_SET_PDEATHSIG).\n"
        "\n"
        "systemd: READY=1 once the control socket listens and Docker was looked at,\n"
        "STATUS= what it does, STOPPING=1, and WATCHDOG=1 when WatchdogSec= is set.\n"
        "The control socket ($runtime_dir/agent.sock, mode 0600) answers root and the\n"
        "agent's user: 'berth status', 'berth run-now NAME'.\n"
        "\n"
        "Options:\n"
        "  -h, --help   this help\n";

enum step { STEP_RECOVER, STEP_BACKUP, STEP_FORGET, STEP_PRUNE, STEP_METRICS, STEP_DONE };
static const char *const step_names[] = { "recover", "backup", "forget", "prune", "metrics", "" };

/* The job running now: a volume's backup (then forget, metrics), the prune
 * (then metrics), or the recover at start; one child per step. */
struct task {
        bool active;
        enum step step;
        char *volume;          /* a volume's job, else NULL */
        char *keep;
        int64_t started, started_mono; /* ns */
        struct job job;        /* the step running now */
        bool backup_ok;
};

struct agent {
        struct scheduler sc;
        struct task task;
        uint64_t queue_seq;
        struct schedule prune_schedule;
        char *prune_text;
        int64_t prune_next;
        struct result prune;
        bool stopping;
        int64_t started;
        char *socket_path;
        char status_line[256];
};

/* ---- jobs ----------------------------------------------------------------- */

static int start_step(struct agent *a, enum step step)
{
        struct task *t = &a->task;
        _cleanup_free_ char *label = t->volume ? xasprintf("%s '%s'", step_names[step], t->volume)
                                               : xstrdup(step_names[step]);
        t->step = step;
        job_clear(&t->job);
        switch (step) {
        case STEP_RECOVER:
                return job_start(&t->job, label, (const char *const[]){ "recover", NULL });
        case STEP_BACKUP:
                log_notice("backing up '%s'", t->volume);
                return job_start(&t->job, label, (const char *const[]){ "backup", "--", t->volume, NULL });
        case STEP_FORGET:
                return job_start(&t->job, label,
                                 (const char *const[]){ "forget", "--name", t->volume, "--keep", t->keep, NULL });
        case STEP_PRUNE:
                log_notice("pruning the repository");
                return job_start(&t->job, label, (const char *const[]){ "prune", NULL });
        case STEP_METRICS:
                return job_start(&t->job, label,
                                 (const char *const[]){ "metrics", "--output", settings.metrics_file, NULL });
        default:
                return 0;
        }
}

static void task_end(struct agent *a)
{
        struct task *t = &a->task;
        free(t->volume);
        free(t->keep);
        job_clear(&t->job);
        *t = (struct task){ .job = JOB_INIT };
}

/* The step after `done`, or STEP_DONE. */
static enum step next_step(const struct agent *a, enum step done)
{
        const struct task *t = &a->task;
        if (a->stopping)
                return STEP_DONE;
        switch (done) {
        case STEP_BACKUP:
                if (!t->backup_ok)
                        return settings.metrics_file ? STEP_METRICS : STEP_DONE;
                return t->keep ? STEP_FORGET : settings.metrics_file ? STEP_METRICS : STEP_DONE;
        case STEP_FORGET:
        case STEP_PRUNE:
                return settings.metrics_file ? STEP_METRICS : STEP_DONE;
        default:
                return STEP_DONE;
        }
}

static void exit_text(int status, char *buf, size_t size)
{
        if (WIFEXITED(status))
                snprintf(buf, size, "exit status %d", WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
                snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
        else
                snprintf(buf, size, "wait status %d", status);
}

/* Records the volume's backup result and plans its next run. */
static void record_usage(struct result *r, const struct rusage *ru)
{
        r->cpu = (int64_t)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * NS +
                 (int64_t)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) * 1000;
        r->peak_rss = (int64_t)ru->ru_maxrss * 1024;
}

static void record_backup(struct agent *a, int status, const struct rusage *ru)
{
        struct task *t = &a->task;
        struct entry *e = scheduler_find(&a->sc, t->volume);
        int64_t now = now_ns(), dur = mono_ns() - t->started_mono;
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        char how[128], d[32];
        exit_text(status, how, sizeof how);
        t->backup_ok = code == EXIT_OK || code == EXIT_PARTIAL;
        const char *st = code == EXIT_OK ? "ok" : code == EXIT_PARTIAL ? "partial" : a->stopping ? "interrupted" : "failed";
        if (t->backup_ok)
                log_notice("backed up '%s' in %s%s", t->volume, format_duration(dur, d, sizeof d),
                           code == EXIT_PARTIAL ? " (incomplete: some entries were skipped)" : "");
        else
                log_error("backup of '%s' failed (%s)%s%s", t->volume, how, t->job.last_error ? ": " : "",
                          t->job.last_error ? t->job.last_error : "");
        if (!e) {
                log_notice("'%s' is no longer covered; its result is not kept", t->volume);
                return;
        }
        e->last.time = t->started;
        e->last.duration = dur;
        record_usage(&e->last, ru);
        str_set(&e->last.status, st);
        if (t->backup_ok) {
                str_set(&e->last.error, NULL);
                e->failures = 0;
                e->last_snapshot = t->started;
                int64_t n = schedule_next(&e->schedule, t->started / NS) * NS;
                e->next = n > now ? n : schedule_next(&e->schedule, now / NS) * NS;
        } else {
                _cleanup_free_ char *err = t->job.last_error ? xasprintf("%s (%s)", t->job.last_error, how) : xstrdup(how);
                str_set(&e->last.error, err);
                if (!a->stopping)
                        e->failures++;
                /* 30 s, 1 m, 2 m... never later than the schedule's interval */
                int64_t cap = (int64_t)schedule_interval(&e->schedule) * NS;
                int64_t delay = 30 * NS << MIN(e->failures ? e->failures - 1 : 0, 16u);
                delay = MIN(delay, cap);
                e->next = now + delay;
                log_notice("'%s': retrying in %s (%u failure(s) in a row)", t->volume,
                           format_duration(delay, d, sizeof d), e->failures);
        }
}

static void step_exited(struct agent *a, int status, const struct rusage *ru)
{
        struct task *t = &a->task;
        job_exited(&t->job);
        bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        char how[128];
        exit_text(status, how, sizeof how);
        enum step done = t->step;
        switch (done) {
        case STEP_RECOVER:
                if (!ok)
                        log_warning("recover at start failed (%s); containers a crash left quiesced may still be "
                                    "paused or stopped: run 'berth recover'", how);
                break;
        case STEP_BACKUP:
                record_backup(a, status, ru);
                break;
        case STEP_FORGET: {
                struct entry *e = scheduler_find(&a->sc, t->volume);
                if (ok)
                        log_notice("applied retention %s to '%s'", t->keep, t->volume);
                else {
                        log_error("retention of '%s' failed (%s)", t->volume, how);
                        if (e) {
                                _cleanup_free_ char *m = xasprintf("retention: %s (%s)",
                                                                   t->job.last_error ? t->job.last_error : "failed", how);
                                str_set(&e->last.error, m);
                        }
                }
                break;
        }
        case STEP_PRUNE: {
                int64_t now = now_ns();
                a->prune.time = t->started;
                a->prune.duration = mono_ns() - t->job.started_mono;
                record_usage(&a->prune, ru);
                str_set(&a->prune.status, ok ? "ok" : "failed");
                _cleanup_free_ char *m = ok ? NULL : xasprintf("%s (%s)", t->job.last_error ? t->job.last_error : "failed", how);
                str_set(&a->prune.error, m);
                if (!ok)
                        log_error("prune failed (%s)", how);
                a->prune_next = schedule_next(&a->prune_schedule, now / NS) * NS;
                break;
        }
        case STEP_METRICS:
                if (!ok)
                        log_warning("writing metrics to %s failed (%s)", settings.metrics_file, how);
                break;
        default:
                break;
        }
        enum step next = next_step(a, done);
        while (next != STEP_DONE && start_step(a, next) < 0)
                next = next_step(a, next);
        if (next == STEP_DONE)
                task_end(a);
}

static void task_begin(struct agent *a, enum step step, const struct entry *e)
{
        struct task *t = &a->task;
        task_end(a);
        t->active = true;
        t->volume = e ? xstrdup(e->name) : NULL;
        t->keep = e && e->keep ? xstrdup(e->keep) : NULL;
        t->started = now_ns();
        t->started_mono = mono_ns();
        if (start_step(a, step) < 0) {
                if (e)
                        record_backup(a, W_EXITCODE(1, 0), &(struct rusage){ 0 });
                task_end(a);
        }
}

/* The next job when none runs: run-now requests first, then the most
 * overdue volume, then prune. */
static void pick(struct agent *a)
{
        if (a->task.active || a->stopping)
                return;
        int64_t now = now_ns();
        struct entry *best = NULL;
        for (size_t i = 0; i < a->sc.n; i++) {
                struct entry *e = &a->sc.entries[i];
                if (!e->known_last)
                        continue;
                if (e->queued) {
                        if (!best || !best->queued || e->queued < best->queued)
                                best = e;
                } else if (e->next <= now && (!best || (!best->queued && e->next < best->next)))
                        best = e;
        }
        if (best) {
                best->queued = 0;
                task_begin(a, STEP_BACKUP, best);
                return;
        }
        if (a->prune_next <= now)
                task_begin(a, STEP_PRUNE, NULL);
}

/* ---- status ---------------------------------------------------------------- */

static json_object *jstr_or_null(const char *s) { return s ? json_object_new_string(s) : NULL; }

static json_object *jtime(int64_t ns)
{
        char t[32];
        return ns > 0 ? json_object_new_string(format_time(ns, t, sizeof t)) : NULL;
}

/* {time, time_s, status, error, duration_ns, cpu_ns, peak_rss_bytes}, or
 * null when it never ran */
static json_object *json_result(const struct result *r)
{
        if (!r->status)
                return NULL;
        json_object *l = json_object_new_object();
        json_object_object_add(l, "time", jtime(r->time));
        json_object_object_add(l, "time_s", json_object_new_int64(r->time / NS));
        json_object_object_add(l, "status", json_object_new_string(r->status));
        json_object_object_add(l, "error", jstr_or_null(r->error));
        json_object_object_add(l, "duration_ns", json_object_new_int64(r->duration));
        json_object_object_add(l, "cpu_ns", json_object_new_int64(r->cpu));
        json_object_object_add(l, "peak_rss_bytes", json_object_new_int64(r->peak_rss));
        return l;
}

static json_object *status_json(struct agent *a)
{
        json_object *o = json_object_new_object(), *vols = json_object_new_array(), *queue = json_object_new_array();
        json_object_object_add(o, "ok", json_object_new_boolean(true));
        json_object_object_add(o, "pid", json_object_new_int64(getpid()));
        json_object_object_add(o, "repo", json_object_new_string(settings.repo));
        json_object_object_add(o, "key_held", json_object_new_boolean(keyhand_held()));
        json_object_object_add(o, "started", jtime(a->started));
        json_object *dk = json_object_new_object();
        json_object_object_add(dk, "reachable", json_object_new_boolean(a->sc.docker != NULL));
        json_object_object_add(dk, "error", jstr_or_null(a->sc.docker_error));
        json_object_object_add(o, "docker", dk);
        if (a->task.active && a->task.job.pid) {
                struct task *t = &a->task;
                json_object *r = json_object_new_object();
                json_object_object_add(r, "job", json_object_new_string(step_names[t->step]));
                json_object_object_add(r, "volume", jstr_or_null(t->volume));
                json_object_object_add(r, "pid", json_object_new_int64(t->job.pid));
                json_object_object_add(r, "started", jtime(t->started));
                json_object_object_add(r, "elapsed_ns", json_object_new_int64(mono_ns() - t->started_mono));
                json_object_object_add(r, "files", json_object_new_int64((int64_t)t->job.files));
                json_object_object_add(r, "bytes", json_object_new_int64((int64_t)t->job.bytes));
                json_object_object_add(r, "bytes_added", json_object_new_int64((int64_t)t->job.bytes_added));
                json_object_object_add(o, "running", r);
        } else
                json_object_object_add(o, "running", NULL);
        for (size_t i = 0; i < a->sc.n; i++) {
                struct entry *e = &a->sc.entries[i];
                json_object *v = json_object_new_object();
                char sched[64];
                json_object_object_add(v, "name", json_object_new_string(e->name));
                json_object_object_add(v, "schedule", json_object_new_string(schedule_format(&e->schedule, sched, sizeof sched)));
                json_object_object_add(v, "source", json_object_new_string(e->source));
                json_object_object_add(v, "keep", jstr_or_null(e->keep));
                json_object_object_add(v, "next", e->known_last ? jtime(e->next) : NULL);
                json_object_object_add(v, "next_s", json_object_new_int64(e->known_last ? e->next / NS : 0));
                json_object_object_add(v, "queued", json_object_new_boolean(e->queued != 0));
                json_object_object_add(v, "running", json_object_new_boolean(a->task.active && a->task.volume &&
                                                                              strcmp(a->task.volume, e->name) == 0));
                json_object_object_add(v, "failures", json_object_new_int64(e->failures));
                json_object_object_add(v, "last_snapshot", jtime(e->last_snapshot));
                json_object_object_add(v, "last", json_result(&e->last));
                json_object_array_add(vols, v);
                if (e->queued)
                        json_object_array_add(queue, json_object_new_string(e->name));
        }
        json_object_object_add(o, "queue", queue);
        json_object_object_add(o, "volumes", vols);
        json_object *p = json_object_new_object();
        json_object_object_add(p, "schedule", json_object_new_string(a->prune_text));
        json_object_object_add(p, "next", jtime(a->prune_next));
        json_object_object_add(p, "next_s", json_object_new_int64(a->prune_next / NS));
        json_object_object_add(p, "last", json_result(&a->prune));
        json_object_object_add(o, "prune", p);
        return o;
}

static json_object *error_json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_object *error_json(const char *fmt, ...)
{
        char m[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m, sizeof m, fmt, ap);
        va_end(ap);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "ok", json_object_new_boolean(false));
        json_object_object_add(o, "error", json_object_new_string(m));
        return o;
}

static json_object *handle_request(struct agent *a, json_object *req)
{
        json_object *v;
        const char *cmd = json_object_object_get_ex(req, "cmd", &v) ? json_object_get_string(v) : NULL;
        if (!cmd)
                return error_json("a request needs \"cmd\"");
        if (strcmp(cmd, "status") == 0)
                return status_json(a);
        if (strcmp(cmd, "run-now") == 0) {
                const char *name = json_object_object_get_ex(req, "name", &v) ? json_object_get_string(v) : NULL;
                if (!name || !*name)
                        return error_json("run-now needs \"name\"");
                if (a->stopping)
                        return error_json("the agent is stopping");
                struct entry *e = scheduler_find(&a->sc, name);
                if (!e) {
                        /* maybe created a moment ago */
                        scheduler_scan(&a->sc);
                        e = scheduler_find(&a->sc, name);
                }
                _cleanup_free_ char *esc = escape_name(name, strlen(name));
                if (!e)
                        return error_json("the agent does not cover a volume named '%s' (not a Docker volume with a "
                                          "berth.schedule label, nor in 'volumes' of the configuration; see "
                                          "'berth status')", esc);
                if (!e->queued)
                        e->queued = ++a->queue_seq;
                log_notice("'%s': queued by run-now", e->name);
                json_object *o = json_object_new_object();
                json_object_object_add(o, "ok", json_object_new_boolean(true));
                json_object_object_add(o, "queued", json_object_new_string(e->name));
                return o;
        }
        _cleanup_free_ char *esc = escape_name(cmd, strlen(cmd));
        return error_json("unknown command '%s' (status, run-now)", esc);
}

static void serve_clients(struct agent *a, int lfd)
{
        for (;;) {
                bool allowed;
                int fd = control_accept(lfd, &allowed);
                if (fd < 0)
                        return;
                json_object *req = NULL;
                /* read even a refused request: closing on unread data would
                 * reset the connection before the client sees why */
                int r = control_read_request(fd, &req);
                if (!allowed)
                        control_reply(fd, error_json("permission denied: the agent answers root and its own user"));
                else if (r < 0) {
                        control_reply(fd, error_json("%s", error_message()));
                        error_clear();
                } else
                        control_reply(fd, handle_request(a, req));
                json_object_put(req);
                error_clear();
                close(fd);
        }
}

static void update_status(struct agent *a)
{
        char line[256];
        if (a->stopping)
                snprintf(line, sizeof line, "stopping");
        else if (a->task.active && a->task.step == STEP_BACKUP)
                snprintf(line, sizeof line, "backing up %s", a->task.volume);
        else if (a->task.active)
                snprintf(line, sizeof line, "%s%s%s", step_names[a->task.step], a->task.volume ? " " : "",
                         a->task.volume ? a->task.volume : "");
        else {
                const struct entry *next = NULL;
                for (size_t i = 0; i < a->sc.n; i++)
                        if (a->sc.entries[i].known_last && (!next || a->sc.entries[i].next < next->next))
                                next = &a->sc.entries[i];
                if (next) {
                        char t[32];
                        time_t tt = (time_t)(next->next / NS);
                        struct tm tm;
                        localtime_r(&tt, &tm);
                        strftime(t, sizeof t,
                                 tt - time(NULL) >= 86400 ? "%Y-%m-%d %H:%M" : tm.tm_sec ? "%H:%M:%S" : "%H:%M", &tm);
                        snprintf(line, sizeof line, "idle; next: %s at %s", next->name, t);
                } else
                        snprintf(line, sizeof line, "idle; no volume scheduled%s", a->sc.docker ? "" : " (Docker unreachable)");
        }
        if (strcmp(line, a->status_line) == 0)
                return;
        snprintf(a->status_line, sizeof a->status_line, "%s", line);
        _cleanup_free_ char *msg = xasprintf("STATUS=%s", line);
        sd_notify_send(msg);
}

static void reap(struct agent *a)
{
        int status;
        pid_t pid;
        struct rusage ru;
        while ((pid = wait4(-1, &status, WNOHANG, &ru)) > 0)
                if (a->task.active && pid == a->task.job.pid)
                        step_exited(a, status, &ru);
}

static int load_prune_schedule(struct agent *a)
{
        const char *text = settings.prune_schedule ? settings.prune_schedule : "weekly";
        if (schedule_parse(text, &a->prune_schedule) < 0)
                return log_error("prune_schedule: '%s' is not a schedule", text);
        if (!a->prune_text || strcmp(a->prune_text, text) != 0) {
                str_set(&a->prune_text, text);
                a->prune_next = schedule_next(&a->prune_schedule, now_ns() / NS) * NS;
        }
        return 0;
}

/* The agent's keys of berth.conf: 0, or -EINVAL after saying which is wrong. */
static int check_settings(void)
{
        struct schedule sch;
        const char *const keys[] = { "schedule", "prune_schedule" };
        const char *const values[] = { settings.schedule, settings.prune_schedule };
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (values[i] && schedule_parse(values[i], &sch) < 0)
                        return log_error("%s: %s: '%s' is not a schedule (hourly, daily, weekly, monthly, "
                                         "'daily HH:MM' or 'every DURATION')", settings.config_path, keys[i],
                                         values[i]);
        if (settings.keep && scheduler_check_keep(settings.keep) < 0) {
                int r = log_error("%s: keep = %s: %s", settings.config_path, settings.keep, error_message());
                error_clear();
                return r;
        }
        return 0;
}

/* SIGHUP: the agent's keys of berth.conf again; bad ones are refused and
 * the running configuration kept. */
static void reload(struct agent *a)
{
        if (settings_reload_agent(check_settings) < 0) {
                log_error("keeping the running configuration");
                return;
        }
        load_prune_schedule(a);
}

static void agent_clear(struct agent *a)
{
        task_end(a);
        scheduler_clear(&a->sc);
        free(a->socket_path);
        free(a->prune_text);
        result_clear(&a->prune);
}

static int run(int argc, char **argv)
{
        int r = parse_options(argc, argv, NULL, NULL, NULL, NULL);
        if (r != OPT_DONE)
                return r;
        if (optind < argc)
                return usage_error("agent", "unexpected argument '%s'", argv[optind]);

        _cleanup_(agent_clear) struct agent a = { .started = now_ns(), .task = { .job = JOB_INIT } };
        /* the recover job puts back what dead runs left; the agent only reads */
        settings.no_auto_recover = true;
        if (check_settings() < 0 || load_prune_schedule(&a) < 0)
                return EXIT_FAILURE_;

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGCHLD);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        _cleanup_close_ int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0)
                return fail(-errno, "signalfd");

        a.socket_path = control_socket_path();
        _cleanup_close_ int lfd = -1;
        r = control_listen(a.socket_path, &lfd);
        if (r < 0)
                return fail(r, "control socket");
        log_notice("agent started (pid %d): repository %s, control socket %s", (int)getpid(), settings.repo,
                   a.socket_path);

        /* an encrypted repository's key: opened here once, not by every job */
        keyhand_open();
        /* a remote repository's journal is put back by the first job's open */
        if (!repo_is_remote())
                task_begin(&a, STEP_RECOVER, NULL);
        scheduler_scan(&a.sc);
        sd_notify_send("READY=1");
        int64_t wd = sd_watchdog_ns(), next_wd = wd ? mono_ns() : INT64_MAX;

        while (!a.stopping || a.task.active) {
                if (a.sc.scan_wanted && !a.stopping)
                        scheduler_scan(&a.sc);
                pick(&a);
                update_status(&a);
                int64_t mono = mono_ns(), now = now_ns();
                if (wd && mono >= next_wd) {
                        sd_notify_send("WATCHDOG=1");
                        next_wd = mono + wd / 2;
                }
                /* sleep until the next thing to do, at most a second */
                int64_t wait = NS;
                if (!a.task.active)
                        for (size_t i = 0; i < a.sc.n; i++)
                                if (a.sc.entries[i].known_last)
                                        wait = MIN(wait, a.sc.entries[i].next - now);
                wait = MIN(wait, a.sc.next_events_mono - mono);
                wait = MIN(wait, a.sc.next_scan_mono - mono);
                if (wd)
                        wait = MIN(wait, next_wd - mono);
                wait = MAX(wait, 0);
                struct pollfd p[4] = {
                        { .fd = sfd, .events = POLLIN },
                        { .fd = lfd, .events = POLLIN }, /* status answers while stopping too */
                        { .fd = a.task.job.err_fd, .events = POLLIN },
                        { .fd = a.task.job.progress_fd, .events = POLLIN },
                };
                int k = poll(p, 4, (int)((wait + 999999) / 1000000));
                if (k < 0 && errno != EINTR)
                        return fail(-errno, "poll");
                if (p[0].revents) {
                        struct signalfd_siginfo si;
                        while (read(sfd, &si, sizeof si) == sizeof si) {
                                if (si.ssi_signo == SIGCHLD)
                                        reap(&a);
                                else if (si.ssi_signo == SIGHUP) {
                                        log_notice("SIGHUP: reloading %s", settings.config_path);
                                        reload(&a);
                                        scheduler_forget_warnings(&a.sc);
                                        a.sc.scan_wanted = true;
                                } else if (!a.stopping) {
                                        a.stopping = true;
                                        sd_notify_send("STOPPING=1");
                                        log_notice("%s: stopping%s", strsignal((int)si.ssi_signo),
                                                   a.task.job.pid ? "; asking the running job to stop" : "");
                                        if (a.task.job.pid)
                                                kill(a.task.job.pid, SIGTERM);
                                }
                        }
                }
                if (a.task.active && (p[2].revents || p[3].revents))
                        job_read(&a.task.job);
                if (p[1].revents)
                        serve_clients(&a, lfd);
                /* a SIGCHLD may have been merged with another: reap anyway */
                if (a.task.active && a.task.job.pid)
                        reap(&a);
                if (!a.stopping && mono_ns() >= a.sc.next_events_mono)
                        scheduler_poll_events(&a.sc);
                if (!a.stopping && mono_ns() >= a.sc.next_scan_mono)
                        a.sc.scan_wanted = true;
        }
        update_status(&a);
        keyhand_clear();
        unlink(a.socket_path);
        log_notice("agent stopped");
        return EXIT_OK;
}

const struct command command_agent = { "agent", run, "the daemon: scheduled backups, retention, status", help };
