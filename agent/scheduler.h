/* scheduler.h — the volumes the agent covers, their schedules and results.
 *
 * Single-threaded, owned by the agent's loop.  Times are ns since the epoch
 * (CLOCK_REALTIME) unless named *_mono.  Nothing here starts a job.
 */
#ifndef BERTH_SCHEDULER_H
#define BERTH_SCHEDULER_H

#include "../common/schedule.h"
#include "../common/common.h"

#define NS 1000000000LL

/* How a job went: a volume's last backup, the last prune. */
struct result {
        int64_t time, duration; /* ns: started, how long */
        int64_t cpu;            /* ns of CPU (user + system) the job used */
        int64_t peak_rss;       /* bytes: the job's peak resident memory */
        char *status;           /* ok, partial, failed, interrupted; NULL: never ran */
        char *error;
};

/* One volume the agent covers. */
struct entry {
        char *name;
        char *schedule_text;   /* as written */
        struct schedule schedule;
        char *source;          /* "volume label", "container NAME", "config" */
        char *keep;            /* retention spec, NULL: none */
        int64_t next;          /* when it runs next */
        uint64_t queued;       /* run-now order (0: not queued) */
        bool seen, known_last; /* known_last: next is planned from the catalog */
        int64_t last_snapshot; /* 0: none */
        struct result last;
        unsigned failures;     /* in a row */
};

struct docker;

struct scheduler {
        struct entry *entries;
        size_t n;
        struct docker *docker;     /* NULL while unreachable */
        char *docker_error;        /* why, or NULL */
        int64_t docker_retry_mono, docker_backoff;
        int64_t next_events_mono, next_scan_mono;
        int64_t events_since;      /* seconds: the next events poll starts there */
        bool scan_wanted;
        char **warned;             /* label values warned about already */
        size_t nwarned;
};

/* Replaces *field with a copy of v (NULL: none). */
static inline void str_set(char **field, const char *v)
{
        free(*field);
        *field = v ? xstrdup(v) : NULL;
}

void result_clear(struct result *r);
void entry_clear(struct entry *e);
/* Frees everything sc holds; sc is empty afterwards. */
void scheduler_clear(struct scheduler *sc);
/* The entry of volume name, or NULL. */
struct entry *scheduler_find(struct scheduler *sc, const char *name);
/* Lists volumes and containers (connecting to Docker first when needed,
 * with backoff), adds, updates and drops entries, warns once about an
 * invalid label value (that volume is skipped), and plans new entries from
 * their newest snapshot in the catalog (a run missed by more than one
 * interval: now).  Blocks on Docker and the catalog; never fails: an
 * unreachable Docker is logged and retried later. */
void scheduler_scan(struct scheduler *sc);
/* Polls Docker's events since the last poll; sets scan_wanted when a
 * volume or container was created, started, removed... */
void scheduler_poll_events(struct scheduler *sc);
/* Forgets which label values were warned about (after a reload). */
void scheduler_forget_warnings(struct scheduler *sc);
/* 0 when spec is a valid retention policy (berth.keep syntax), else
 * -EINVAL with the reason in error_message(). */
int scheduler_check_keep(const char *spec);

#endif
