/* remote-exec.c — running a berth command on another host over an SSH exec
 * channel: the shared part of migrate, restore --host (remote-restore.c)
 * and the maintenance commands run where an ssh:// repository lives
 * (remote-maint.c). */
#include <string.h>
#include <unistd.h>

#include "remote.h"

void remote_put_word(struct buf *b, const char *s)
{
        buf_put_shell_word(b, s);
        buf_putc(b, ' ');
}

void remote_ssh_options(const struct ssh_destination *d, struct ssh_options *o)
{
        *o = (struct ssh_options){
                .user = d->user,
                .host = d->host,
                .port = d->port,
                .identity_file = settings.identity,
                .known_hosts = settings.known_hosts,
                .accept_new_host_key = settings.accept_new_host_key,
        };
}

char *remote_dest_name(const struct ssh_destination *d)
{
        bool v6 = strchr(d->host, ':') != NULL;
        _cleanup_free_ char *port = d->port ? xasprintf(":%u", d->port) : xstrdup("");
        return xasprintf("%s%s%s%s%s%s", d->user ? d->user : "", d->user ? "@" : "", v6 ? "[" : "", d->host,
                         v6 ? "]" : "", port);
}

int remote_not_found(const char *berth, const char *shown, const char *err)
{
        return error_set(ENOENT, "'%s' cannot be run on %s (%s): install berth there, or name it with "
                                 "--remote-berth PATH (BERTH_REMOTE_BERTH)",
                         berth, shown, err && *err ? err : "command not found");
}

void remote_run_clear(struct remote_run *r)
{
        free(r->out);
        free(r->err);
        *r = (struct remote_run){ 0 };
}

/* Writes s[0..n) to f with what a terminal would act on made visible,
 * newlines and tabs kept: the far side's words, relayed. */
static void relay(FILE *f, const char *s, size_t n)
{
        struct buf b = { 0 };
        size_t start = 0;
        for (size_t i = 0; i <= n; i++) {
                if (i < n && s[i] != '\n' && s[i] != '\t')
                        continue;
                buf_put_escaped(&b, s + start, i - start, false);
                if (i < n)
                        buf_putc(&b, (uint8_t)s[i]);
                start = i + 1;
        }
        if (b.len)
                fwrite(b.data, 1, b.len, f);
        fflush(f);
        free(b.data);
}

int remote_exec(struct ssh_session *s, struct buf *cmd, bool relay_out, struct remote_run *ret)
{
        *ret = (struct remote_run){ 0 };
        buf_putc(cmd, 0);
        _cleanup_(ssh_channel_freep) struct ssh_channel *ch = NULL;
        int k = ssh_exec(s, (const char *)cmd->data, &ch);
        cmd->len--;
        if (k < 0)
                return k;
        /* Nothing is sent to its stdin: a command that reads it (a forced
         * `serve --stdio`) sees end of file rather than waiting. */
        k = ssh_channel_send_eof(ch);
        if (k < 0)
                return k;
        struct buf out = { 0 };
        for (;;) {
                char chunk[16384];
                ssize_t n = ssh_channel_read(ch, chunk, sizeof chunk);
                if (n < 0) {
                        free(out.data);
                        return (int)n;
                }
                if (n > 0)
                        buf_append(&out, chunk, (size_t)n);
                if (relay_out) {
                        /* Whole lines only, so a character is never cut. */
                        size_t end = out.len;
                        while (end > 0 && out.data[end - 1] != '\n' && (size_t)n == sizeof chunk)
                                end--;
                        relay(stdout, (const char *)out.data, end);
                        memmove(out.data, out.data + end, out.len - end);
                        out.len -= end;
                }
                if ((size_t)n < sizeof chunk)
                        break;
                if (out.len > (16u << 20)) {
                        free(out.data);
                        return error_set(EMSGSIZE, "%s printed more than 16 MiB", ssh_session_name(s));
                }
        }
        buf_putc(&out, 0);
        int status = 255;
        k = ssh_channel_close(ch, &status);
        if (k < 0) {
                free(out.data);
                return k;
        }
        const char *err = ssh_channel_stderr(ch);
        if (relay_out) {
                relay(stderr, err, strlen(err));
                *ret = (struct remote_run){ .status = status, .out = (char *)out.data, .err = xstrdup("") };
                return 0;
        }
        _cleanup_free_ char *raw = xstrdup(err);
        size_t n = strlen(raw);
        while (n > 0 && (raw[n - 1] == '\n' || raw[n - 1] == '\r' || raw[n - 1] == ' '))
                raw[--n] = 0;
        *ret = (struct remote_run){ .status = status, .out = (char *)out.data, .err = escape_text(raw) };
        return 0;
}

int remote_run_at(const struct ssh_destination *d, struct buf *cmd, struct remote_run *ret)
{
        struct ssh_options o;
        remote_ssh_options(d, &o);
        _cleanup_(ssh_session_freep) struct ssh_session *s = NULL;
        int k = ssh_connect(&o, &s);
        if (k < 0)
                return k;
        return remote_exec(s, cmd, false, ret);
}
