/* output.c — progress line, warnings, JSON and number formatting. */
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "agent.h"

static bool progress_shown;
static const char *progress_verb = "";
static const char *progress_unit = "files";

void progress_set_unit(const char *unit) { progress_unit = unit; }
static int64_t progress_start, progress_last;

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

/* $BERTH_PROGRESS_FD: the agent that started us reads progress there, one
 * JSON object a line; -1 when not set (looked up once). */
static int progress_fd(void)
{
        static int fd = -2;
        if (fd == -2) {
                const char *e = getenv("BERTH_PROGRESS_FD");
                char *end;
                long v = e && *e ? strtol(e, &end, 10) : -1;
                fd = v >= 0 && v < INT32_MAX && !*end && fcntl((int)v, F_GETFD) >= 0 ? (int)v : -1;
        }
        return fd;
}

static void progress_to_fd(int fd, const struct snapshot_progress *p)
{
        static int64_t last;
        int64_t now = mono_ns();
        if (now - last < 500 * 1000 * 1000)
                return;
        last = now;
        char line[256];
        int n = snprintf(line, sizeof line,
                         "{\"files\":%llu,\"bytes\":%llu,\"bytes_read\":%llu,\"bytes_added\":%llu}\n",
                         (unsigned long long)p->files, (unsigned long long)p->bytes,
                         (unsigned long long)p->bytes_read, (unsigned long long)p->bytes_added);
        /* the agent may be gone: never block, never die of it */
        if (n > 0 && (size_t)n < sizeof line && write(fd, line, (size_t)n) < 0 && errno != EAGAIN)
                log_debug("progress fd %d: %s", fd, strerror(errno));
}

void progress_update(void *ud, const struct snapshot_progress *p)
{
        int fd = progress_fd();
        if (fd >= 0)
                progress_to_fd(fd, p);
        if (!settings.progress || settings.quiet)
                return;
        int64_t now = mono_ns();
        if (now - progress_last < 200 * 1000 * 1000)
                return;
        progress_last = now;
        char bytes[32], read[32], added[32], line[512];
        _cleanup_free_ char *path = p->path ? escape_name(p->path, strlen(p->path)) : NULL;
        struct winsize ws;
        int width = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20 ? ws.ws_col : 80;
        double secs = (double)(mono_ns() - progress_start) / 1e9;

        int n = snprintf(line, sizeof line, "%s %llu %s, %s (read %s, added %s), %.0fs  %s", progress_verb,
                         (unsigned long long)p->files, progress_unit, format_bytes(p->bytes, bytes, sizeof bytes),
                         format_bytes(p->bytes_read, read, sizeof read), format_bytes(p->bytes_added, added, sizeof added),
                         secs, path ? path : "");
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

json_object *json_backup_result(const char *source, const char *name, const struct backup_result *b)
{
        char t[32];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(b->id));
        json_object_object_add(o, "name", json_object_new_string(name));
        json_object_object_add(o, "source", json_object_new_string(source));
        json_object_object_add(o, "time", json_object_new_string(format_time(b->started, t, sizeof t)));
        json_object_object_add(o, "status", json_object_new_string(b->complete ? "complete" : "incomplete"));
        json_object_object_add(o, "files", json_object_new_int64((int64_t)b->files));
        json_object_object_add(o, "dirs", json_object_new_int64((int64_t)b->dirs));
        json_object_object_add(o, "bytes", json_object_new_int64((int64_t)b->bytes));
        json_object_object_add(o, "files_read", json_object_new_int64((int64_t)b->files_read));
        json_object_object_add(o, "files_reused", json_object_new_int64((int64_t)b->files_reused));
        json_object_object_add(o, "bytes_read", json_object_new_int64((int64_t)b->bytes_read));
        json_object_object_add(o, "bytes_added", json_object_new_int64((int64_t)b->bytes_added));
        json_object_object_add(o, "chunks_new", json_object_new_int64((int64_t)b->chunks_new));
        json_object_object_add(o, "chunks_dup", json_object_new_int64((int64_t)b->chunks_dup));
        json_object_object_add(o, "warnings", json_object_new_int64((int64_t)b->warnings));
        json_object_object_add(o, "skipped", json_object_new_int64((int64_t)b->skipped));
        json_object_object_add(o, "inconsistent", json_object_new_int64((int64_t)b->inconsistent));
        json_object_object_add(o, "duration_ns", json_object_new_int64(b->finished - b->started));
        json_object_object_add(o, "index_bytes", json_object_new_int64((int64_t)b->index_bytes));
        json_object_object_add(o, "index_chunks", json_object_new_int64((int64_t)b->index_chunks));
        return o;
}

void print_backup_result(const char *path, const char *name, const struct backup_result *b)
{
        char bytes[32], read[32], added[32], dur[32], idx[32];
        format_duration(b->finished - b->started, dur, sizeof dur);
        if (settings.json) {
                json_object *o = json_backup_result(path, name, b);
                json_print(o);
                return;
        }
        if (!settings.quiet) {
                _cleanup_free_ char *p = escape_name(path, strlen(path)), *n = escape_name(name, strlen(name));
                printf("backed up '%s' as '%s'%s\n", p, n, b->complete ? "" : " (incomplete)");
                printf("  files     %llu (%llu read, %llu reused unchanged), %llu directories\n",
                       (unsigned long long)b->files, (unsigned long long)b->files_read,
                       (unsigned long long)b->files_reused, (unsigned long long)b->dirs);
                printf("  data      %s, read %s, added %s to the repository\n", format_bytes(b->bytes, bytes, sizeof bytes),
                       format_bytes(b->bytes_read, read, sizeof read), format_bytes(b->bytes_added, added, sizeof added));
                printf("  chunks    %llu new, %llu already stored; index %s for %llu chunks\n",
                       (unsigned long long)b->chunks_new, (unsigned long long)b->chunks_dup,
                       format_bytes(b->index_bytes, idx, sizeof idx), (unsigned long long)b->index_chunks);
                if (b->warnings)
                        printf("  warnings  %llu (%llu skipped, %llu inconsistent)\n", (unsigned long long)b->warnings,
                               (unsigned long long)b->skipped, (unsigned long long)b->inconsistent);
                printf("  duration  %s\n", dur);
                printf("snapshot %.12s saved\n", b->id);
        }
        printf("%s\n", b->id);
}

void print_name(const char *s, size_t n)
{
        _cleanup_free_ char *e = escape_name(s, n);
        fputs(e, stdout);
}

void format_mode(uint8_t type, uint32_t mode, char out[11])
{
        static const char types[] = "?d-lhcbp";
        out[0] = type < sizeof types - 1 ? types[type] : '?';
        if (out[0] == 'h')
                out[0] = '-';
        const char *rwx = "rwxrwxrwx";
        for (int i = 0; i < 9; i++)
                out[1 + i] = (mode & (0400u >> i)) ? rwx[i] : '-';
        if (mode & 04000)
                out[3] = (mode & 0100) ? 's' : 'S';
        if (mode & 02000)
                out[6] = (mode & 0010) ? 's' : 'S';
        if (mode & 01000)
                out[9] = (mode & 0001) ? 't' : 'T';
        out[10] = 0;
}

json_object *json_file(const struct catalog_file *f)
{
        static const char *const types[] = { "unknown", "dir", "file", "symlink", "hardlink", "chardev", "blockdev",
                                             "fifo" };
        json_object *o = json_object_new_object();
        char t[32], mode[8];
        const char *slash = memrchr(f->path, '/', f->path_len);
        const char *name = slash ? slash + 1 : f->path;
        snprintf(mode, sizeof mode, "%04o", f->mode);
        json_object_object_add(o, "path", json_object_new_string_len(f->path, (int)f->path_len));
        json_object_object_add(o, "name", json_object_new_string_len(name, (int)(f->path_len - (size_t)(name - f->path))));
        json_object_object_add(o, "type", json_object_new_string(f->type < ELEMENTSOF(types) ? types[f->type] : "unknown"));
        json_object_object_add(o, "mode", json_object_new_string(mode));
        json_object_object_add(o, "uid", json_object_new_int64(f->uid));
        json_object_object_add(o, "gid", json_object_new_int64(f->gid));
        json_object_object_add(o, "size", json_object_new_int64((int64_t)f->size));
        json_object_object_add(o, "mtime", json_object_new_string(format_time(f->mtime, t, sizeof t)));
        json_object_object_add(o, "mtime_ns", json_object_new_int64(f->mtime));
        json_object_object_add(o, "link", f->link ? json_object_new_string_len(f->link, (int)f->link_len) : NULL);
        return o;
}

