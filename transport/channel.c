/* channel.c — one command run on the far side, as a byte pipe.
 *
 * stdin/stdout are the pipe; stderr is taken in whenever we wait, so a
 * chatty command can never stall the channel on a full stderr window.  All
 * waits go through session_wait() (ssh.c): non-blocking libssh2 calls, a
 * poll, keepalives while the far side is silent. */
#include <libssh2.h>
#include <signal.h>
#include <string.h>

#include "../common/common.h"
#include "internal.h"
#include "transport.h"

struct ssh_channel {
        struct ssh_session *s;
        LIBSSH2_CHANNEL *ch;
        char *command;
        struct buf err;         /* stderr collected, NUL-terminated when shown */
        struct buf out;         /* stdout taken in by ssh_channel_read_stderr */
        bool eof_sent;
        bool err_eof;
        bool closed;
};

#define STDERR_KEEP (64 * 1024)
/* stdout taken in while a caller waits for stderr (see read_stderr) */
#define STDOUT_STASH_MAX (4 * 1024 * 1024)

/* Takes whatever stderr libssh2 holds without waiting; keeps the first
 * STDERR_KEEP bytes not yet read.  Returns the count taken, or a libssh2
 * error. */
static int drain_stderr(struct ssh_channel *ch)
{
        char tmp[4096];
        int taken = 0;

        while (!ch->err_eof) {
                ssize_t n = libssh2_channel_read_stderr(ch->ch, tmp, sizeof tmp);
                if (n == LIBSSH2_ERROR_EAGAIN)
                        break;
                if (n < 0)
                        return (int)n;
                if (n == 0) {
                        if (libssh2_channel_eof(ch->ch))
                                ch->err_eof = true;
                        break;
                }
                taken = 1;
                size_t keep = ch->err.len < STDERR_KEEP ? MIN((size_t)n, STDERR_KEEP - ch->err.len) : 0;
                buf_append(&ch->err, tmp, keep);
        }
        return taken;
}

int ssh_exec(struct ssh_session *s, const char *command, struct ssh_channel **ret)
{
        _cleanup_(ssh_channel_freep) struct ssh_channel *ch = NULL;
        int r;

        ch = xcalloc(1, sizeof *ch);
        ch->s = s;
        ch->command = xstrdup(command);
        s->last_rx_ns = mono_ns();
        while (!(ch->ch = libssh2_channel_open_session(s->ssh))) {
                r = libssh2_session_last_errno(s->ssh);
                if (r != LIBSSH2_ERROR_EAGAIN)
                        return ssh_fail(s, r, "cannot open a channel");
                if (session_wait(s) < 0)
                        return s->wait_err;
        }
        s->channels++;
        r = RETRY(s, libssh2_channel_exec(ch->ch, command));
        if (r < 0)
                return ssh_fail(s, r, "the server refused to run the command");
        *ret = TAKE_PTR(ch);
        return 0;
}

ssize_t ssh_channel_read(struct ssh_channel *ch, void *p, size_t n)
{
        struct ssh_session *s = ch->s;
        size_t got = 0;

        if (ch->out.len > 0) {
                got = MIN(n, ch->out.len);
                memcpy(p, ch->out.data, got);
                buf_consume(&ch->out, got);
        }
        s->last_rx_ns = mono_ns();
        while (got < n) {
                int r = drain_stderr(ch);
                if (r < 0)
                        return ssh_fail(s, r, "cannot read the command's stderr");
                ssize_t k = libssh2_channel_read(ch->ch, (char *)p + got, n - got);
                if (k > 0) {
                        got += (size_t)k;
                        continue;
                }
                if (k == 0 && libssh2_channel_eof(ch->ch))
                        break;
                if (k < 0 && k != LIBSSH2_ERROR_EAGAIN)
                        return ssh_fail(s, (int)k, "cannot read from the command");
                /* EAGAIN, or 0 without end of file: stderr came in
                 * meanwhile (take it and look again), or libssh2 emptied
                 * the socket without a packet for us */
                r = drain_stderr(ch);
                if (r < 0)
                        return ssh_fail(s, r, "cannot read the command's stderr");
                if (r > 0)
                        continue;
                if (session_wait(s) < 0)
                        return s->wait_err;
        }
        return (ssize_t)got;
}

int ssh_channel_write(struct ssh_channel *ch, const void *p, size_t n)
{
        struct ssh_session *s = ch->s;

        if (ch->eof_sent || ch->closed)
                return error_set(EPIPE, "%s: writing to '%s' after its end", s->name, ch->command);
        s->last_rx_ns = mono_ns();
        while (n > 0) {
                ssize_t k = libssh2_channel_write(ch->ch, p, n);
                if (k > 0) {
                        p = (const char *)p + k;
                        n -= (size_t)k;
                        continue;
                }
                if (k < 0 && k != LIBSSH2_ERROR_EAGAIN)
                        return ssh_fail(s, (int)k, "cannot write to the command");
                int r = drain_stderr(ch);
                if (r < 0)
                        return ssh_fail(s, r, "cannot read the command's stderr");
                /* 0: the far side's window is full; wait for it to open */
                if (session_wait(s) < 0)
                        return s->wait_err;
        }
        return 0;
}

int ssh_channel_send_eof(struct ssh_channel *ch)
{
        if (ch->eof_sent)
                return 0;
        ch->s->last_rx_ns = mono_ns();
        int r = RETRY(ch->s, libssh2_channel_send_eof(ch->ch));
        if (r < 0)
                return ssh_fail(ch->s, r, "cannot close the command's input");
        ch->eof_sent = true;
        return 0;
}

ssize_t ssh_channel_read_stderr(struct ssh_channel *ch, void *p, size_t n)
{
        struct ssh_session *s = ch->s;

        s->last_rx_ns = mono_ns();
        for (;;) {
                int r = drain_stderr(ch);
                if (r < 0)
                        return ssh_fail(s, r, "cannot read the command's stderr");
                if (ch->err.len > 0 || n == 0) {
                        size_t k = MIN(n, ch->err.len);
                        memcpy(p, ch->err.data, k);
                        buf_consume(&ch->err, k);
                        return (ssize_t)k;
                }
                if (ch->err_eof)
                        return 0;
                /* libssh2 shows end of file only once nothing is queued, stdout
                 * included: take stdout in (bounded) so the end can show */
                if (ch->out.len < STDOUT_STASH_MAX) {
                        char tmp[16384];
                        ssize_t k = libssh2_channel_read(ch->ch, tmp, MIN(sizeof tmp, STDOUT_STASH_MAX - ch->out.len));
                        if (k > 0) {
                                buf_append(&ch->out, tmp, (size_t)k);
                                continue;
                        }
                        if (k < 0 && k != LIBSSH2_ERROR_EAGAIN)
                                return ssh_fail(s, (int)k, "cannot read from the command");
                }
                if (libssh2_channel_eof(ch->ch))
                        return 0;
                if (session_wait(s) < 0)
                        return s->wait_err;
        }
}

const char *ssh_channel_stderr(struct ssh_channel *ch)
{
        (void)drain_stderr(ch);
        buf_reserve(&ch->err, 1);
        ch->err.data[ch->err.len] = 0;
        return (const char *)ch->err.data;
}

static int signal_number(const char *name)
{
        static const struct { const char *name; int sig; } sigs[] = {
                { "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "ILL", SIGILL },
                { "ABRT", SIGABRT }, { "FPE", SIGFPE }, { "KILL", SIGKILL }, { "SEGV", SIGSEGV },
                { "PIPE", SIGPIPE }, { "ALRM", SIGALRM }, { "TERM", SIGTERM }, { "USR1", SIGUSR1 },
                { "USR2", SIGUSR2 }, { "BUS", SIGBUS },
        };
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                if (strcmp(name, sigs[i].name) == 0)
                        return sigs[i].sig;
        return 127; /* 128 + 127 = 255: a signal we cannot name */
}

int ssh_channel_close(struct ssh_channel *ch, int *ret_exit_status)
{
        struct ssh_session *s = ch->s;
        char scratch[16384];
        ssize_t k;
        int r;

        if (!ch->closed) {
                r = ssh_channel_send_eof(ch);
                if (r < 0 && r != -EPIPE && r != -ECONNRESET)
                        return r;
                /* the rest of stdout is nobody's: read it so the command can finish */
                while ((k = ssh_channel_read(ch, scratch, sizeof scratch)) > 0)
                        ;
                if (k < 0)
                        return (int)k;
                /* end of file means nothing of either stream is queued */
                (void)drain_stderr(ch);
                r = RETRY(s, libssh2_channel_close(ch->ch));
                if (r < 0)
                        return ssh_fail(s, r, "cannot close the channel");
                r = RETRY(s, libssh2_channel_wait_closed(ch->ch));
                if (r < 0)
                        return ssh_fail(s, r, "the channel did not close");
                ch->closed = true;
        }

        char *sig = NULL;
        size_t siglen = 0;
        int status = libssh2_channel_get_exit_status(ch->ch);
        if (libssh2_channel_get_exit_signal(ch->ch, &sig, &siglen, NULL, NULL, NULL, NULL) == 0 && sig) {
                status = 128 + signal_number(sig);
                log_debug("%s: '%s' killed by SIG%s", s->name, ch->command, sig);
                libssh2_free(s->ssh, sig);
        }
        if (ret_exit_status)
                *ret_exit_status = status;
        return 0;
}

void ssh_channel_free(struct ssh_channel *ch)
{
        if (!ch)
                return;
        if (ch->ch) {
                struct ssh_session *s = ch->s;
                /* libssh2 sends a close if none was; bounded by a short wait */
                int64_t saved = s->io_timeout_ns;
                s->io_timeout_ns = MIN(saved, (int64_t)5 * 1000000000);
                s->last_rx_ns = mono_ns();
                if (RETRY(s, libssh2_channel_free(ch->ch)) < 0) {
                        log_debug("%s: channel not freed cleanly", s->name);
                        session_kill(s);
                        (void)libssh2_channel_free(ch->ch);
                }
                s->io_timeout_ns = saved;
                s->channels--;
        }
        buf_free(&ch->err);
        buf_free(&ch->out);
        free(ch->command);
        free(ch);
}
