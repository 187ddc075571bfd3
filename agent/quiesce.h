/* quiesce.h — stopping applications for exactly as long as a copy needs.
 *
 * Policy comes from container labels (berth.quiesce=pause|stop|none,
 * berth.pre, berth.post, berth.stop-timeout), an override from the command
 * line, or the configured default.  Every pause or stop is written to the
 * catalog's quiesce journal before it is done and closed after the
 * container is back, so a crash is repaired by quiesce_recover().
 */
#ifndef BERTH_QUIESCE_H
#define BERTH_QUIESCE_H

#include "docker.h"

/* Set when a SIGINT/SIGTERM arrives while containers are quiesced (see
 * quiesce_freeze), and by the caller when the window is too long: the
 * quiesced copy's cancel flag. */
extern volatile sig_atomic_t quiesce_cancel;

enum quiesce_action {
        QUIESCE_NONE,
        QUIESCE_PAUSE,
        QUIESCE_STOP,
};

int quiesce_parse(const char *s, enum quiesce_action *ret);
const char *quiesce_name(enum quiesce_action a);

struct quiesce_target {
        struct docker_container c;
        enum quiesce_action action;
        const char *pre, *post;      /* hook commands (label values) */
        const char *project, *service;
        int stop_timeout;
        int64_t journal_id;          /* > 0 once journaled: thaw puts it back */
        bool pre_ok;                 /* its pre hook ran and succeeded */
};

struct quiesce {
        struct docker *docker;
        struct catalog *catalog;
        struct quiesce_target *t;
        size_t n;
        size_t *order;               /* freeze order: dependants before providers */
        int64_t frozen_at, thawed_at;
        int hook_timeout;
        bool held;                   /* SIGINT/SIGTERM held off until the thaw */
        bool resumed_elsewhere;      /* 'berth recover' put a container back during the window */
};

/* Decides what to do with each container (copied from `containers`): a
 * container that is not running is left alone; a running one gets the
 * override (when `override` >= 0), else its berth.quiesce label, else the
 * default.  A swarm service task whose policy says stop is refused. */
int quiesce_plan(struct quiesce *q, struct docker *d, struct catalog *cat, const struct docker_container *containers,
                 size_t n, int override);
bool quiesce_needed(const struct quiesce *q);
/* Runs the berth.pre hooks; on a failure runs the post hooks of those
 * that succeeded and fails. */
int quiesce_pre(struct quiesce *q);
/* Pauses or stops, journaling each first (rows signed with this host's
 * key, under the journal's own lock).  From here until quiesce_thaw()
 * ends, SIGINT/SIGTERM only set `interrupted`: they never kill berth with
 * containers quiesced.  On failure the caller thaws. */
int quiesce_freeze(struct quiesce *q);
/* Puts every journaled container back; safe to call twice.  Returns the
 * first failure but tries them all.  Sets q->resumed_elsewhere when a
 * journal row had been closed by someone else ('berth recover'). */
int quiesce_thaw(struct quiesce *q);
/* Runs the berth.post hooks of containers whose pre hook succeeded or
 * that have no pre hook. */
int quiesce_post(struct quiesce *q);
int64_t quiesce_window(const struct quiesce *q);
/* {"window_ns": N, "containers": [{id, name, action, ...}]} */
json_object *quiesce_json(const struct quiesce *q);
void quiesce_clear(struct quiesce *q);

/* Puts back containers a crashed run left paused or stopped: open journal
 * rows of this host whose owner is gone (every open row of this host when
 * `all`: for 'berth recover', or a caller holding the repository's
 * exclusive lock).  Rows whose HMAC does not verify under this host's key
 * were not written by this host's berth: ignored, with a warning.  Takes
 * the journal's lock, not the repository's. */
int quiesce_recover(struct docker *d, struct catalog *cat, bool all, unsigned *ret_resumed);

/* This process's start time in clock ticks since boot (from /proc). */
int64_t process_start_time(pid_t pid);

#endif
