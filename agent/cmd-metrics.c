/* cmd-metrics.c — berth metrics: the job history and the repository's size
 * for Prometheus. */
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>

#include "agent.h"

static const char help[] =
        "Usage: berth [-r REPO] metrics [--output FILE] [--json]\n"
        "\n"
        "Prints the state of the repository's backups in the Prometheus text\n"
        "exposition format, one sample per volume (or --path name) for each of:\n"
        "\n"
        "  berth_last_success_timestamp_seconds  when the newest successful backup\n"
        "                           finished (Unix time; 0: never)\n"
        "  berth_last_duration_seconds  how long it took, quiescing included\n"
        "  berth_last_bytes_added   bytes it added to the repository\n"
        "  berth_failures_total     backups of the volume that failed\n"
        "  berth_last_run_success   1 when the newest backup succeeded, 0 when it\n"
        "                           failed or skipped entries (exit status 3)\n"
        "  berth_snapshots          snapshots of the volume in the repository\n"
        "\n"
        "labelled volume=\"NAME\"; and berth_repository_size_bytes (the bytes of all\n"
        "packs) and berth_repository_packs.  The figures come from the catalog's job\n"
        "history: 'berth backup' records every volume it attempts, and why one\n"
        "failed; a volume whose backups all failed is listed too.  Snapshots made\n"
        "before the history existed (or copied in) count as successes.  The\n"
        "repository is opened for reading only and nothing is changed.\n"
        "\n"
        "For node_exporter's textfile collector, write a file in its directory:\n"
        "  berth metrics -o /var/lib/node_exporter/textfile_collector/berth.prom\n"
        "and alert on, say, time() - berth_last_success_timestamp_seconds > 93600\n"
        "(26 hours).\n"
        "\n"
        "Options:\n"
        "  -o, --output FILE  write FILE instead of stdout, atomically (a temporary\n"
        "                     file in the same directory, fsync, rename), mode 0644\n"
        "      --json         the same figures as a JSON object: repository\n"
        "                     {size_bytes, packs} and volumes, an array of {name,\n"
        "                     snapshots, runs, failures, last_status (ok, failed,\n"
        "                     partial or null), last_run_success, last_success_ns,\n"
        "                     last_duration_ns, last_bytes_added}\n"
        "  -h, --help         this help\n";

static json_object *metrics_json(struct repo *r)
{
        struct catalog_job_summary *list;
        size_t n;
        uint64_t packs, bytes;
        if (catalog_job_summaries(repo_catalog(r), &list, &n) < 0)
                return NULL;
        if (catalog_pack_totals(repo_catalog(r), &packs, &bytes) < 0) {
                catalog_job_summary_free(list, n);
                return NULL;
        }
        json_object *o = json_object_new_object(), *repo = json_object_new_object(), *a = json_object_new_array();
        json_object_object_add(repo, "size_bytes", json_object_new_int64((int64_t)bytes));
        json_object_object_add(repo, "packs", json_object_new_int64((int64_t)packs));
        json_object_object_add(o, "repository", repo);
        for (size_t i = 0; i < n; i++) {
                const struct catalog_job_summary *s = &list[i];
                json_object *v = json_object_new_object();
                json_object_object_add(v, "name", json_object_new_string(s->name));
                json_object_object_add(v, "snapshots", json_object_new_int64((int64_t)s->snapshots));
                json_object_object_add(v, "runs", json_object_new_int64((int64_t)s->runs));
                json_object_object_add(v, "failures", json_object_new_int64((int64_t)s->failures));
                json_object_object_add(v, "last_status", s->last_status ? json_object_new_string(s->last_status) : NULL);
                json_object_object_add(v, "last_run_success", json_object_new_boolean(metrics_last_run_ok(s)));
                json_object_object_add(v, "last_success_ns", json_object_new_int64(s->ok_finished));
                json_object_object_add(v, "last_duration_ns",
                                       json_object_new_int64(s->ok_finished ? s->ok_finished - s->ok_started : 0));
                json_object_object_add(v, "last_bytes_added", json_object_new_int64((int64_t)s->ok_bytes_added));
                json_object_array_add(a, v);
        }
        json_object_object_add(o, "volumes", a);
        catalog_job_summary_free(list, n);
        return o;
}

/* Writes the exposition to path: a temporary file next to it, renamed over
 * it, so a collector never reads half a file. */
static int write_output(struct repo *r, const char *path)
{
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f)
                return error_set(errno, "cannot write the metrics: %s", strerror(errno));
        int k = metrics_render(r, f);
        fclose(f);
        _cleanup_free_ char *data = text;
        if (k < 0)
                return k;

        _cleanup_free_ char *d = xstrdup(path), *b = xstrdup(path);
        const char *dir = dirname(d), *name = basename(b);
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return error_set(errno, "cannot write %s: %s", path, strerror(errno));
        /* The collector runs as another user: 0644 whatever the umask
         * (the units set 0077).  Only this thread runs here. */
        mode_t old = umask(022);
        k = write_file_atomic(dfd, name, data, len, 0644);
        umask(old);
        if (k < 0)
                return error_set(-k, "cannot write %s: %s", path, strerror(-k));
        return 0;
}

static int option(int c, const char *arg, void *ud)
{
        if (c != 'o')
                return OPT_UNKNOWN;
        *(const char **)ud = arg;
        return OPT_DONE;
}

static int run(int argc, char **argv)
{
        static const struct option options[] = {
                GLOBAL_OPTIONS,
                { "output", required_argument, NULL, 'o' },
                {},
        };
        const char *output = NULL;
        int r = parse_options(argc, argv, "o:", options, option, &output);
        if (r != OPT_DONE)
                return r;
        if (optind < argc)
                return usage_error("metrics", "takes no arguments");
        if (output && settings.json)
                return usage_error("metrics", "--output writes the Prometheus format: leave out --json");
        if (output && !*output)
                return usage_error("metrics", "--output needs a file name");

        /* Reading only: no containers are put back from here. */
        settings.no_auto_recover = true;
        _cleanup_(repo_freep) struct repo *repo = NULL;
        r = open_repo(REPO_READ, &repo);
        if (r < 0)
                return fail(r, "metrics");
        if (settings.json) {
                json_object *o = metrics_json(repo);
                if (!o)
                        return fail(-EIO, "metrics");
                json_print(o);
                return EXIT_OK;
        }
        if (output)
                r = write_output(repo, output);
        else {
                r = metrics_render(repo, stdout);
                if (r == 0 && fflush(stdout) != 0)
                        r = error_set(errno, "cannot write the metrics: %s", strerror(errno));
        }
        return r < 0 ? fail(r, "metrics") : EXIT_OK;
}

const struct command command_metrics = { "metrics", run, "backup metrics for Prometheus", help };
