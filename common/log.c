/* log.c — one event per line on stderr, and the thread-local last error. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common.h"

static int log_level = LOG_NOTICE;
static const char *log_program = "berth";
static bool log_journal;
static void (*log_before_write)(void);

void log_set_level(int level) { log_level = level; }
int log_get_level(void) { return log_level; }
void log_set_before_write(void (*fn)(void)) { log_before_write = fn; }

int log_level_from_string(const char *s)
{
        static const struct { const char *name; int level; } names[] = {
                { "error", LOG_ERR }, { "warning", LOG_WARNING }, { "notice", LOG_NOTICE },
                { "info", LOG_INFO }, { "debug", LOG_DEBUG },
        };
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strcasecmp(s, names[i].name) == 0)
                        return names[i].level;
        if (s[0] >= '0' && s[0] <= '7' && s[1] == 0)
                return s[0] - '0';
        return -EINVAL;
}

void log_open(const char *program)
{
        const char *e;

        log_program = program;
        /* journald connects our stderr to a stream socket and says so. */
        log_journal = getenv("JOURNAL_STREAM") != NULL;
        e = getenv("BERTH_LOG_LEVEL");
        if (e) {
                int l = log_level_from_string(e);
                if (l >= 0)
                        log_level = l;
        }
}

const char *berth_strerror(int err)
{
        err = abs(err);
        switch (err) {
        case BERTH_ECORRUPT: return "data is corrupted";
        case BERTH_ELOCKED: return "repository is locked";
        case BERTH_EFORMAT: return "unsupported repository format";
        case BERTH_ENOTFOUND: return "not found";
        case BERTH_EAMBIGUOUS: return "ambiguous reference";
        case BERTH_EHOSTILE: return "entry would escape the target directory";
        case BERTH_EHOSTKEY: return "host key not trusted";
        case BERTH_EAUTH: return "authentication refused";
        case BERTH_EPROTO: return "wire protocol violation";
        default: return strerror(err);
        }
}

int log_internal(int level, int err, const char *fmt, ...)
{
        int ret = err ? -abs(err) : -EIO;

        if (level > log_level)
                return ret;

        char msg[4096];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);

        if (log_before_write)
                log_before_write();

        /* Messages quote names from volumes, archives and repositories: a
         * newline or an escape sequence in one must not forge a line or
         * drive the terminal, so what a terminal would act on is shown as
         * C escapes (as ls and journalctl do). */
        struct buf esc = { 0 };
        buf_put_escaped(&esc, msg, strlen(msg), false);
        buf_putc(&esc, 0);

        /* One write per line so concurrent writers do not interleave. */
        char line[4352];
        const char *lvl = level <= LOG_ERR ? "error: " : level == LOG_WARNING ? "warning: " : "";
        if (log_journal)
                snprintf(line, sizeof line, "<%d>%s%s%s%s\n", level, lvl, (const char *)esc.data,
                         err ? ": " : "", err ? berth_strerror(err) : "");
        else
                snprintf(line, sizeof line, "%s: %s%s%s%s\n", log_program, lvl, (const char *)esc.data,
                         err ? ": " : "", err ? berth_strerror(err) : "");
        buf_free(&esc);
        size_t len = strlen(line);
        if (len == sizeof line - 1)
                line[len - 1] = '\n'; /* cut short: still one whole line */
        (void) !write(STDERR_FILENO, line, len);
        return ret;
}

static __thread char error_buf[1024];
static __thread bool error_present;

int error_set(int err, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(error_buf, sizeof error_buf, fmt, ap);
        va_end(ap);
        error_present = true;
        log_debug("%s", error_buf);
        return err ? -abs(err) : -EIO;
}

const char *error_message(void) { return error_present ? error_buf : NULL; }
void error_clear(void) { error_present = false; }

void *xmalloc(size_t n)
{
        void *p = malloc(n ? n : 1);
        if (!p)
                abort();
        return p;
}

void *xcalloc(size_t n, size_t m)
{
        void *p = calloc(n ? n : 1, m ? m : 1);
        if (!p)
                abort();
        return p;
}

void *xrealloc(void *p, size_t n)
{
        p = realloc(p, n ? n : 1);
        if (!p)
                abort();
        return p;
}

char *xstrdup(const char *s)
{
        char *p = strdup(s);
        if (!p)
                abort();
        return p;
}

char *xstrndup(const char *s, size_t n)
{
        char *p = strndup(s, n);
        if (!p)
                abort();
        return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
        char *p;
        if (vasprintf(&p, fmt, ap) < 0)
                abort();
        return p;
}

char *xasprintf(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        char *p = xvasprintf(fmt, ap);
        va_end(ap);
        return p;
}
