/* scheduler.c — what the agent backs up and when: the volumes it covers
 * (from berth.schedule / berth.keep labels on volumes and containers, and
 * the configuration), when each runs next, and Docker's events.  It looks
 * at Docker and reads the catalog; it starts no job (cmd-agent.c does). */
#include <string.h>
#include <time.h>

#include "agent.h"
#include "docker.h"
#include "scheduler.h"

#define EVENTS_EVERY (2 * NS)
#define RESCAN_EVERY (60 * NS)

void result_clear(struct result *r)
{
        free(r->status);
        free(r->error);
}

/* ---- entries ---------------------------------------------------------------- */

int scheduler_check_keep(const char *spec)
{
        struct retention_policy pol;
        return retention_parse(spec, &pol);
}

void scheduler_forget_warnings(struct scheduler *sc)
{
        for (size_t i = 0; i < sc->nwarned; i++)
                free(sc->warned[i]);
        free(sc->warned);
        sc->warned = NULL;
        sc->nwarned = 0;
}

void scheduler_clear(struct scheduler *sc)
{
        for (size_t i = 0; i < sc->n; i++)
                entry_clear(&sc->entries[i]);
        free(sc->entries);
        scheduler_forget_warnings(sc);
        free(sc->docker_error);
        docker_free(sc->docker);
        *sc = (struct scheduler){ 0 };
}

void entry_clear(struct entry *e)
{
        free(e->name);
        free(e->schedule_text);
        free(e->source);
        free(e->keep);
        result_clear(&e->last);
}

struct entry *scheduler_find(struct scheduler *sc, const char *name)
{
        for (size_t i = 0; i < sc->n; i++)
                if (strcmp(sc->entries[i].name, name) == 0)
                        return &sc->entries[i];
        return NULL;
}

static int64_t now_s(void) { return now_ns() / NS; }

/* A warning about one volume's label value, once per value. */
static void warn_once(struct scheduler *sc, const char *volume, const char *what, const char *value, const char *why)
{
        _cleanup_free_ char *key = xasprintf("%s\t%s\t%s", volume, what, value);
        for (size_t i = 0; i < sc->nwarned; i++)
                if (strcmp(sc->warned[i], key) == 0)
                        return;
        sc->warned = xrealloc(sc->warned, (sc->nwarned + 1) * sizeof *sc->warned);
        sc->warned[sc->nwarned++] = key;
        key = NULL;
        log_warning("volume '%s': %s '%s' is not valid (%s); skipping this volume", volume, what, value, why);
}

/* When the entry runs next, from its last snapshot (a missed run: now). */
static void entry_plan(struct entry *e)
{
        int64_t now = now_ns();
        if (e->last_snapshot > 0) {
                int64_t n = schedule_next(&e->schedule, e->last_snapshot / NS) * NS;
                if (n <= now) {
                        char t[32];
                        log_notice("'%s': last snapshot %s is older than its schedule (%s): backing up now", e->name,
                                   format_time(e->last_snapshot, t, sizeof t), e->schedule_text);
                        n = now;
                }
                e->next = n;
        } else
                e->next = schedule_next(&e->schedule, now / NS) * NS;
}

/* The newest snapshot time of every entry not looked up yet, from the
 * catalog (the repository opened for reading, briefly). */
static void lookup_last_snapshots(struct scheduler *sc)
{
        bool need = false;
        for (size_t i = 0; i < sc->n; i++)
                need |= !sc->entries[i].known_last;
        if (!need)
                return;
        _cleanup_(repo_freep) struct repo *repo = NULL;
        struct catalog_job_summary *jobs = NULL;
        size_t njobs = 0;
        int r = open_repo(REPO_READ, &repo);
        if (r == 0)
                r = catalog_job_summaries(repo_catalog(repo), &jobs, &njobs);
        if (r < 0) {
                log_debug("no last snapshot times: %s", error_message() ? error_message() : berth_strerror(r));
                error_clear();
        }
        for (size_t i = 0; i < sc->n; i++) {
                struct entry *e = &sc->entries[i];
                if (e->known_last)
                        continue;
                struct catalog_snapshot s = { 0 };
                if (repo && catalog_snapshot_latest(repo_catalog(repo), e->name, INT64_MAX, &s) == 1) {
                        e->last_snapshot = s.started;
                        catalog_snapshot_clear(&s);
                }
                /* the last result from the job history, for status after a restart */
                for (size_t k = 0; k < njobs && !e->last.status; k++)
                        if (jobs[k].last_status && strcmp(jobs[k].name, e->name) == 0) {
                                str_set(&e->last.status, jobs[k].last_status);
                                e->last.time = jobs[k].last_started;
                                e->last.duration = jobs[k].last_finished - jobs[k].last_started;
                        }
                e->known_last = true;
                entry_plan(e);
                char t[64], sched[64];
                time_t tt = (time_t)(e->next / NS);
                struct tm tm;
                localtime_r(&tt, &tm);
                strftime(t, sizeof t, "%Y-%m-%d %H:%M:%S", &tm);
                log_notice("'%s': %s (%s)%s%s, next run %s", e->name, schedule_format(&e->schedule, sched, sizeof sched),
                           e->source, e->keep ? ", keep " : "", e->keep ? e->keep : "", t);
        }
        catalog_job_summary_free(jobs, njobs);
}

/* Whether config `volumes` names this volume (besides labels). */
static bool config_covers(const char *name)
{
        const char *v = settings.volumes;
        if (!v || !*v || strcmp(v, "labelled") == 0 || strcmp(v, "labeled") == 0)
                return false;
        if (strcmp(v, "all") == 0)
                return !(strlen(name) == 64 && is_hex(name)); /* anonymous volumes: by their containers */
        size_t n = strlen(name);
        for (const char *p = v; *p;) {
                while (*p == ',' || *p == ' ')
                        p++;
                size_t l = strcspn(p, ", ");
                if (l == n && strncmp(p, name, n) == 0)
                        return true;
                p += l;
        }
        return false;
}

static void docker_lost(struct scheduler *sc, const char *why)
{
        if (!sc->docker_error || strcmp(sc->docker_error, why) != 0)
                log_warning("Docker is not reachable: %s; retrying (status keeps answering)", why);
        str_set(&sc->docker_error, why);
        docker_free(sc->docker);
        sc->docker = NULL;
        sc->docker_backoff = sc->docker_backoff ? MIN(sc->docker_backoff * 2, 60 * NS) : 2 * NS;
        sc->docker_retry_mono = mono_ns() + sc->docker_backoff;
}

static bool docker_ready(struct scheduler *sc)
{
        if (sc->docker)
                return true;
        if (mono_ns() < sc->docker_retry_mono)
                return false;
        if (docker_open(0, &sc->docker) < 0) {
                docker_lost(sc, error_message() ? error_message() : "cannot connect");
                error_clear();
                return false;
        }
        if (sc->docker_error)
                log_notice("Docker is reachable again");
        str_set(&sc->docker_error, NULL);
        sc->docker_backoff = 0;
        sc->events_since = now_s();
        return true;
}

/* Looks at every volume and container and updates the entries. */
void scheduler_scan(struct scheduler *sc)
{
        struct docker_volume *vols = NULL;
        struct docker_container *cons = NULL;
        size_t nv = 0, nc = 0;

        sc->scan_wanted = false;
        sc->next_scan_mono = mono_ns() + RESCAN_EVERY;
        if (!sc->next_events_mono)
                sc->next_events_mono = mono_ns() + EVENTS_EVERY;
        if (!docker_ready(sc))
                return;
        if (docker_volumes(sc->docker, &vols, &nv) < 0 || docker_containers(sc->docker, &cons, &nc) < 0) {
                docker_lost(sc, error_message() ? error_message() : "request failed");
                error_clear();
                docker_volumes_free(vols, nv);
                return;
        }
        for (size_t i = 0; i < sc->n; i++)
                sc->entries[i].seen = false;

        for (size_t i = 0; i < nv; i++) {
                const char *name = vols[i].name;
                if (!name)
                        continue;
                const char *sched = docker_label(vols[i].labels, "berth.schedule");
                const char *keep = docker_label(vols[i].labels, "berth.keep");
                _cleanup_free_ char *source = sched ? xstrdup("volume label") : NULL;
                /* a container's labels cover its named volumes */
                for (size_t c = 0; c < nc && (!sched || !keep); c++) {
                        bool mounts = false;
                        for (size_t m = 0; m < cons[c].nmounts; m++)
                                mounts |= cons[c].mounts[m].name && strcmp(cons[c].mounts[m].name, name) == 0;
                        if (!mounts)
                                continue;
                        const char *cs = docker_label(cons[c].labels, "berth.schedule");
                        if (!sched && cs) {
                                sched = cs;
                                source = xasprintf("container %s", cons[c].name ? cons[c].name : cons[c].id);
                        }
                        if (!keep)
                                keep = docker_label(cons[c].labels, "berth.keep");
                }
                if (!sched && config_covers(name)) {
                        sched = settings.schedule ? settings.schedule : "daily";
                        source = xstrdup("config");
                }
                if (!sched)
                        continue;
                if (!keep)
                        keep = settings.keep;
                struct schedule s;
                if (schedule_parse(sched, &s) < 0) {
                        warn_once(sc, name, "berth.schedule", sched,
                                  "use hourly, daily, weekly, monthly, 'daily HH:MM' or 'every DURATION'");
                        continue;
                }
                struct retention_policy pol;
                if (keep && retention_parse(keep, &pol) < 0) {
                        warn_once(sc, name, "berth.keep", keep, error_message());
                        error_clear();
                        continue;
                }
                struct entry *e = scheduler_find(sc, name);
                if (!e) {
                        sc->entries = xrealloc(sc->entries, (sc->n + 1) * sizeof *sc->entries);
                        e = &sc->entries[sc->n++];
                        *e = (struct entry){ .name = xstrdup(name) };
                } else if (strcmp(e->schedule_text, sched) != 0 || strcmp(e->source, source) != 0 ||
                           (e->keep ? !keep || strcmp(e->keep, keep) != 0 : keep != NULL)) {
                        log_notice("'%s': now %s (%s)%s%s", name, sched, source, keep ? ", keep " : "", keep ? keep : "");
                        e->known_last = false; /* plan again */
                }
                e->seen = true;
                e->schedule = s;
                str_set(&e->schedule_text, sched);
                str_set(&e->source, source);
                str_set(&e->keep, keep);
        }
        /* volumes gone (or no longer labelled) */
        for (size_t i = 0; i < sc->n;) {
                if (sc->entries[i].seen) {
                        i++;
                        continue;
                }
                log_notice("'%s': no longer covered (removed, or its label is gone)", sc->entries[i].name);
                entry_clear(&sc->entries[i]);
                sc->entries[i] = sc->entries[--sc->n];
        }
        docker_volumes_free(vols, nv);
        docker_containers_free(cons, nc);
        lookup_last_snapshots(sc);
}

/* Docker events since the last look: a rescan when something changed. */
void scheduler_poll_events(struct scheduler *sc)
{
        sc->next_events_mono = mono_ns() + EVENTS_EVERY;
        if (!sc->docker) {
                if (mono_ns() >= sc->docker_retry_mono)
                        sc->scan_wanted = true;
                return;
        }
        int64_t until = now_s();
        unsigned changes = 0;
        if (docker_events(sc->docker, sc->events_since, until, &changes) < 0) {
                docker_lost(sc, error_message() ? error_message() : "request failed");
                error_clear();
                return;
        }
        /* since is inclusive: the last second is looked at twice, which
         * at worst costs a rescan */
        sc->events_since = until;
        if (changes) {
                log_info("Docker: %u volume or container change(s); looking again", changes);
                sc->scan_wanted = true;
        }
}
