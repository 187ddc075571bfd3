/* output.c — progress line, warnings, JSON and number formatting. */
#include <string.h>
#include <sys/ioctl.h>

#include "agent.h"

static bool progress_shown;
static const char *progress_verb = "";
static int64_t progress_start;

static void progress_clear(void)
{
        if (progress_shown) {
                fputs("\r\033[K", stderr);
                fflush(stderr);
                progress_shown = false;
        }
}

void progress_begin(const char *verb)
{
        progress_verb = verb;
        progress_start = mono_ns();
        log_set_before_write(progress_clear);
}

void progress_update(void *ud, const struct snapshot_progress *p)
{
        if (!settings.progress || settings.quiet)
                return;
        char bytes[32], read[32], added[32], line[512];
        struct winsize ws;
        int width = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20 ? ws.ws_col : 80;
        double secs = (double)(mono_ns() - progress_start) / 1e9;

        int n = snprintf(line, sizeof line, "%s %llu files, %s (read %s, added %s), %.0fs  %s", progress_verb,
                         (unsigned long long)p->files, format_bytes(p->bytes, bytes, sizeof bytes),
                         format_bytes(p->bytes_read, read, sizeof read), format_bytes(p->bytes_added, added, sizeof added),
                         secs, p->path ? p->path : "");
        if (n >= width)
                line[width - 1] = 0;
        fprintf(stderr, "\r\033[K%s", line);
        fflush(stderr);
        progress_shown = true;
}

void progress_end(void)
{
        progress_clear();
        log_set_before_write(NULL);
}

void report_warning(void *ud, const char *path, const char *msg)
{
        log_warning("'%s': %s", path, msg);
}

void json_print(json_object *o)
{
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
}

char *format_duration(int64_t ns, char *buf, size_t size)
{
        double s = (double)ns / 1e9;
        if (s < 60)
                snprintf(buf, size, "%.2fs", s);
        else if (s < 3600)
                snprintf(buf, size, "%dm%02ds", (int)s / 60, (int)s % 60);
        else
                snprintf(buf, size, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
        return buf;
}

json_object *json_snapshot(const struct catalog_snapshot *s)
{
        json_object *o = json_object_new_object();
        char t[32];
        json_object_object_add(o, "id", json_object_new_string(s->id));
        json_object_object_add(o, "short_id", json_object_new_string_len(s->id, 12));
        json_object_object_add(o, "name", json_object_new_string(s->name ? s->name : ""));
        json_object_object_add(o, "host", json_object_new_string(s->host ? s->host : ""));
        json_object_object_add(o, "source", json_object_new_string(s->source ? s->source : ""));
        json_object_object_add(o, "time", json_object_new_string(format_time(s->started, t, sizeof t)));
        json_object_object_add(o, "started_ns", json_object_new_int64(s->started));
        json_object_object_add(o, "finished_ns", json_object_new_int64(s->finished));
        json_object_object_add(o, "status", json_object_new_string(s->status ? s->status : ""));
        json_object_object_add(o, "files", json_object_new_int64((int64_t)s->files));
        json_object_object_add(o, "dirs", json_object_new_int64((int64_t)s->dirs));
        json_object_object_add(o, "bytes", json_object_new_int64((int64_t)s->bytes));
        json_object_object_add(o, "files_read", json_object_new_int64((int64_t)s->files_read));
        json_object_object_add(o, "files_reused", json_object_new_int64((int64_t)s->files_reused));
        json_object_object_add(o, "bytes_read", json_object_new_int64((int64_t)s->bytes_read));
        json_object_object_add(o, "bytes_added", json_object_new_int64((int64_t)s->bytes_added));
        json_object_object_add(o, "warnings", json_object_new_int64((int64_t)s->warnings));
        json_object_object_add(o, "parent", s->parent ? json_object_new_string(s->parent) : NULL);
        json_object_object_add(o, "meta", s->meta ? json_tokener_parse(s->meta) : NULL);
        return o;
}
