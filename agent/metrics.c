/* metrics.c — the repository's state and its job history in the Prometheus
 * text exposition format (version 0.0.4), for `berth metrics` and the
 * agent's textfile-collector file. */
#include <string.h>

#include "agent.h"

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0: the format
 * wants UTF-8, and a path's name may be any bytes. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
        size_t len = p[0] < 0x80 ? 1 : p[0] >= 0xc2 && p[0] < 0xe0 ? 2 : p[0] >= 0xe0 && p[0] < 0xf0 ? 3
                   : p[0] >= 0xf0 && p[0] < 0xf5                    ? 4
                                                                    : 0;
        if (len == 0 || len > n)
                return 0;
        for (size_t i = 1; i < len; i++)
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
        /* overlong 3- and 4-byte forms, surrogates, above U+10FFFF */
        if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) || (p[0] == 0xf0 && p[1] < 0x90) ||
            (p[0] == 0xf4 && p[1] >= 0x90))
                return 0;
        return len;
}

/* A label value: backslash, double quote and newline escaped as the format
 * says; a byte that is not UTF-8 becomes U+FFFD. */
static void put_label_value(FILE *out, const char *s)
{
        const unsigned char *p = (const unsigned char *)s;
        size_t n = strlen(s);
        for (size_t i = 0; i < n;) {
                size_t len = utf8_seq(p + i, n - i);
                if (len == 0) {
                        fputs("\xef\xbf\xbd", out);
                        i++;
                        continue;
                }
                if (p[i] == '\\')
                        fputs("\\\\", out);
                else if (p[i] == '"')
                        fputs("\\\"", out);
                else if (p[i] == '\n')
                        fputs("\\n", out);
                else
                        fwrite(p + i, 1, len, out);
                i += len;
        }
}

enum { LAST_SUCCESS, LAST_DURATION, LAST_BYTES, FAILURES, LAST_RUN_SUCCESS, SNAPSHOTS };

/* The per-volume families, in the order they are written. */
static const struct {
        int what;
        const char *name, *type, *help;
} per_volume[] = {
        { LAST_SUCCESS, "berth_last_success_timestamp_seconds", "gauge",
          "Unix time at which the newest successful backup of the volume finished (0: never)." },
        { LAST_DURATION, "berth_last_duration_seconds", "gauge",
          "How long the newest successful backup of the volume took, quiescing included." },
        { LAST_BYTES, "berth_last_bytes_added", "gauge",
          "Bytes the newest successful backup of the volume added to the repository." },
        { FAILURES, "berth_failures_total", "counter", "Backups of the volume that failed." },
        { LAST_RUN_SUCCESS, "berth_last_run_success", "gauge",
          "1 when the newest backup of the volume succeeded, 0 when it failed or skipped entries." },
        { SNAPSHOTS, "berth_snapshots", "gauge", "Snapshots of the volume in the repository." },
};

static void put_value(FILE *out, int what, const struct catalog_job_summary *s)
{
        switch (what) {
        case LAST_SUCCESS:
                fprintf(out, "%.3f", (double)s->ok_finished / 1e9);
                break;
        case LAST_DURATION:
                fprintf(out, "%.3f", s->ok_finished ? (double)(s->ok_finished - s->ok_started) / 1e9 : 0.0);
                break;
        case LAST_BYTES:
                fprintf(out, "%llu", (unsigned long long)s->ok_bytes_added);
                break;
        case FAILURES:
                fprintf(out, "%llu", (unsigned long long)s->failures);
                break;
        case LAST_RUN_SUCCESS:
                fputs(metrics_last_run_ok(s) ? "1" : "0", out);
                break;
        case SNAPSHOTS:
                fprintf(out, "%llu", (unsigned long long)s->snapshots);
                break;
        }
}

bool metrics_last_run_ok(const struct catalog_job_summary *s)
{
        /* No job yet: a complete snapshot is the last known result. */
        return s->last_status ? strcmp(s->last_status, "ok") == 0 : s->ok_finished != 0;
}

static void family(FILE *out, const char *name, const char *type, const char *help)
{
        fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int metrics_render(struct repo *r, FILE *out)
{
        struct catalog *c = repo_catalog(r);
        struct catalog_job_summary *list;
        size_t n;
        uint64_t packs, bytes;
        int k = catalog_job_summaries(c, &list, &n);
        if (k < 0)
                return k;
        k = catalog_pack_totals(c, &packs, &bytes);
        if (k < 0) {
                catalog_job_summary_free(list, n);
                return k;
        }
        for (size_t f = 0; f < ELEMENTSOF(per_volume); f++) {
                family(out, per_volume[f].name, per_volume[f].type, per_volume[f].help);
                for (size_t i = 0; i < n; i++) {
                        fprintf(out, "%s{volume=\"", per_volume[f].name);
                        put_label_value(out, list[i].name);
                        fputs("\"} ", out);
                        put_value(out, per_volume[f].what, &list[i]);
                        fputc('\n', out);
                }
        }
        family(out, "berth_repository_size_bytes", "gauge", "Bytes of all packs in the repository.");
        fprintf(out, "berth_repository_size_bytes %llu\n", (unsigned long long)bytes);
        family(out, "berth_repository_packs", "gauge", "Pack files in the repository.");
        fprintf(out, "berth_repository_packs %llu\n", (unsigned long long)packs);
        catalog_job_summary_free(list, n);
        return 0;
}
