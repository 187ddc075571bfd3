/* job.h — one job of the agent: this binary run again as a child process,
 * `berth [the agent's global options] ARGS...`.  Its stderr is relayed to
 * the agent's log a line at a time (prefixed with the job's label), the last
 * error line is kept for `berth status`, and its progress arrives as JSON
 * lines on the fd named by $BERTH_PROGRESS_FD (agent/output.c writes them).
 *
 * The child gets SIGTERM when the agent dies, even by SIGKILL
 * (PR_SET_PDEATHSIG), stays in the agent's process group, and starts with
 * no signal blocked.  Reaping is the caller's: it owns SIGCHLD.
 */
#ifndef BERTH_JOB_H
#define BERTH_JOB_H

#include <sys/types.h>

#include "../common/common.h"

struct job {
        pid_t pid;                      /* 0: not running */
        int err_fd, progress_fd;        /* the child's stderr and progress pipes; -1: closed */
        struct buf err_buf, progress_buf;
        char *label;                    /* "backup 'pgdata'" */
        int64_t started_mono;           /* ns */
        uint64_t files, bytes, bytes_added; /* progress so far */
        char *last_error;               /* the last error line it logged, or NULL */
};

#define JOB_INIT { .err_fd = -1, .progress_fd = -1 }

/* Starts `berth GLOBAL... args...` (args NULL-terminated) as j, which must
 * be cleared (JOB_INIT or job_clear()).  Returns 0, or -errno after
 * logging why (no child then). */
int job_start(struct job *j, const char *label, const char *const *args);
/* Reads what the child wrote so far (non-blocking); a pipe it closed is
 * closed here too, so poll() stops waking up for it. */
void job_read(struct job *j);
/* The child was reaped: reads the rest and closes the pipes.  last_error
 * and the progress stay until job_clear(). */
void job_exited(struct job *j);
/* Frees and closes everything; j is as JOB_INIT afterwards.  Does not kill
 * or reap a running child. */
void job_clear(struct job *j);

#endif
