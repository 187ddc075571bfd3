/* job.c — the agent's jobs as child processes of this binary. */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>

#include "agent.h"
#include "job.h"
#include "keyhand.h"
#include "scheduler.h"

static void push(char ***argv, size_t *n, const char *s)
{
        *argv = xrealloc(*argv, (*n + 2) * sizeof **argv);
        (*argv)[(*n)++] = xstrdup(s);
        (*argv)[*n] = NULL;
}

static void argv_freep(char ***argv)
{
        for (size_t i = 0; *argv && (*argv)[i]; i++)
                free((*argv)[i]);
        free(*argv);
}

int job_start(struct job *j, const char *label, const char *const *args)
{
        _cleanup_(argv_freep) char **argv = NULL;
        size_t n = 0;
        char num[32];
        push(&argv, &n, "berth");
        push(&argv, &n, "-r");
        push(&argv, &n, settings.repo);
        if (settings.lock_wait) {
                snprintf(num, sizeof num, "%llu", (unsigned long long)settings.lock_wait);
                push(&argv, &n, "--lock-wait");
                push(&argv, &n, num);
        }
        if (settings.identity) {
                push(&argv, &n, "--identity");
                push(&argv, &n, settings.identity);
        }
        if (settings.known_hosts) {
                push(&argv, &n, "--known-hosts");
                push(&argv, &n, settings.known_hosts);
        }
        if (settings.accept_new_host_key)
                push(&argv, &n, "--accept-new-host-key");
        if (settings.remote_berth) {
                push(&argv, &n, "--remote-berth");
                push(&argv, &n, settings.remote_berth);
        }
        for (int l = LOG_INFO; l <= log_get_level(); l++)
                push(&argv, &n, "-v");
        push(&argv, &n, "--no-progress");
        for (size_t i = 0; args[i]; i++)
                push(&argv, &n, args[i]);

        int errp[2], progp[2];
        if (pipe2(errp, O_CLOEXEC | O_NONBLOCK) < 0)
                return log_error_errno(errno, "pipe");
        if (pipe2(progp, O_CLOEXEC | O_NONBLOCK) < 0) {
                close(errp[0]);
                close(errp[1]);
                return log_error_errno(errno, "pipe");
        }
        int keyfd = keyhand_pipe();
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0) {
                int e = errno;
                close(errp[0]), close(errp[1]), close(progp[0]), close(progp[1]);
                if (keyfd >= 0)
                        close(keyfd);
                return log_error_errno(e, "fork");
        }
        if (pid == 0) {
                /* the agent killed (even by -9): the job cleans up */
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (getppid() != parent)
                        _exit(1);
                sigset_t all;
                sigemptyset(&all);
                sigprocmask(SIG_SETMASK, &all, NULL);
                int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (devnull >= 0) {
                        dup2(devnull, STDIN_FILENO);
                        dup2(devnull, STDOUT_FILENO);
                }
                dup2(errp[1], STDERR_FILENO);
                int pfd = dup(progp[1]); /* without O_CLOEXEC */
                if (pfd >= 0) {
                        snprintf(num, sizeof num, "%d", pfd);
                        setenv("BERTH_PROGRESS_FD", num, 1);
                }
                int kfd = keyfd >= 0 ? dup(keyfd) : -1; /* without O_CLOEXEC */
                if (kfd >= 0) {
                        snprintf(num, sizeof num, "%d", kfd);
                        setenv("BERTH_KEY_FD", num, 1);
                }
                unsetenv("NOTIFY_SOCKET");
                unsetenv("WATCHDOG_USEC");
                unsetenv("WATCHDOG_PID");
                /* The jobs run this very binary.  BERTH_JOB_EXE names
                 * another, for running the agent itself under valgrind
                 * (where /proc/self/exe is valgrind's tool). */
                const char *exe = getenv("BERTH_JOB_EXE");
                if (!exe || !*exe)
                        exe = "/proc/self/exe";
                execv(exe, argv);
                dprintf(STDERR_FILENO, "berth: error: cannot run %s: %s\n", exe, strerror(errno));
                _exit(127);
        }
        close(errp[1]);
        close(progp[1]);
        if (keyfd >= 0)
                close(keyfd);
        j->pid = pid;
        j->err_fd = errp[0];
        j->progress_fd = progp[0];
        j->started_mono = mono_ns();
        j->label = xstrdup(label);
        _cleanup_free_ char *cmdline = NULL;
        {
                struct buf b = { 0 };
                for (size_t i = 0; argv[i]; i++) {
                        if (i)
                                buf_putc(&b, ' ');
                        buf_put_shell_word(&b, argv[i]);
                }
                buf_putc(&b, 0);
                cmdline = (char *)b.data;
        }
        log_info("job pid %d: %s", (int)pid, cmdline);
        return 0;
}

/* One line of the child's stderr: logged as ours, with the job's name. */
static void relay_line(struct job *j, char *line)
{
        int level = LOG_NOTICE;
        char *p = line;
        if (p[0] == '<' && p[1] >= '0' && p[1] <= '7' && p[2] == '>') {
                level = p[1] - '0';
                p += 3;
        } else if (strncmp(p, "berth: ", 7) == 0)
                p += 7;
        if (strncmp(p, "error: ", 7) == 0) {
                level = LOG_ERR;
                p += 7;
        } else if (strncmp(p, "warning: ", 9) == 0) {
                level = MIN(level, LOG_WARNING);
                p += 9;
        }
        if (!*p)
                return;
        if (level <= LOG_ERR)
                str_set(&j->last_error, p);
        log_internal(level, 0, "%s: %s", j->label, p);
}

/* Reads what the child wrote to fd and hands each whole line to `line`;
 * returns true at end of file (the child closed it). */
static bool drain(int fd, struct buf *b, void (*line)(struct job *, char *), struct job *j)
{
        char tmp[4096];
        bool eof = false;
        for (;;) {
                ssize_t k = read(fd, tmp, sizeof tmp);
                if (k < 0 && errno == EINTR)
                        continue;
                eof = k == 0;
                if (k <= 0)
                        break;
                buf_append(b, tmp, (size_t)k);
                if (b->len > (1u << 20)) /* a runaway line */
                        buf_reset(b);
        }
        for (;;) {
                uint8_t *nl = b->data ? memchr(b->data, '\n', b->len) : NULL;
                if (!nl)
                        break;
                *nl = 0;
                line(j, (char *)b->data);
                buf_consume(b, (size_t)(nl - b->data) + 1);
        }
        return eof;
}

static void progress_line(struct job *j, char *line)
{
        json_object *o = json_tokener_parse(line), *v;
        if (!o)
                return;
        if (json_object_object_get_ex(o, "files", &v))
                j->files = (uint64_t)json_object_get_int64(v);
        if (json_object_object_get_ex(o, "bytes", &v))
                j->bytes = (uint64_t)json_object_get_int64(v);
        if (json_object_object_get_ex(o, "bytes_added", &v))
                j->bytes_added = (uint64_t)json_object_get_int64(v);
        json_object_put(o);
}

static void close_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

void job_read(struct job *j)
{
        if (j->err_fd >= 0 && drain(j->err_fd, &j->err_buf, relay_line, j))
                close_fd(&j->err_fd);
        if (j->progress_fd >= 0 && drain(j->progress_fd, &j->progress_buf, progress_line, j))
                close_fd(&j->progress_fd);
}

void job_exited(struct job *j)
{
        job_read(j);
        close_fd(&j->err_fd);
        close_fd(&j->progress_fd);
        j->pid = 0;
}

void job_clear(struct job *j)
{
        close_fd(&j->err_fd);
        close_fd(&j->progress_fd);
        buf_free(&j->err_buf);
        buf_free(&j->progress_buf);
        free(j->label);
        free(j->last_error);
        *j = (struct job)JOB_INIT;
}
