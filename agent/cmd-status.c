/* cmd-status.c — berth status and berth run-now: clients of the agent's
 * control socket. */
#include <string.h>
#include <time.h>

#include "agent.h"

static const char status_help[] =
        "Usage: berth status [--json]\n"
        "\n"
        "Asks the running agent ('berth agent') what it does: the job running now with\n"
        "its progress (files and bytes so far), and for every volume it covers the\n"
        "schedule and where it comes from (a berth.schedule label on the volume or on a\n"
        "container using it, or the configuration), the retention policy, the next\n"
        "run, and the last result (time, ok/failed/partial, error, duration, failures\n"
        "in a row).  Times are local.  The agent listens on $BERTH_RUNTIME_DIR/agent.sock\n"
        "(runtime_dir in berth.conf, default /run/berth) and answers root and its own\n"
        "user only.\n"
        "\n"
        "Options:\n"
        "      --json   the agent's answer as one JSON object: pid, repo, key_held (an\n"
        "               encrypted repository's key opened by the agent), docker, running,\n"
        "               queue, volumes[] (name, schedule, source, keep, next, next_s, queued,\n"
        "               failures, last {time, time_s, status, error, duration_ns,\n"
        "               cpu_ns, peak_rss_bytes}), prune\n"
        "               (schedule, next, next_s, last)\n"
        "  -h, --help   this help\n"
        "\n"
        "Exit status: 0, or 1 when no agent answers.\n";

static const char run_now_help[] =
        "Usage: berth run-now VOLUME\n"
        "\n"
        "Asks the running agent to back up VOLUME (one it covers: see 'berth status') as\n"
        "soon as the job running now, if any, is done, then apply its retention policy,\n"
        "as a scheduled run would.  Returns once the job is queued; 'berth status' shows\n"
        "its progress and result.  The next scheduled run stays where it was.\n"
        "\n"
        "Options:\n"
        "      --json   the agent's answer as JSON\n"
        "  -h, --help   this help\n"
        "\n"
        "Exit status: 0 when queued, 1 when no agent answers or it does not cover VOLUME.\n";

static const char *jget(json_object *o, const char *key)
{
        json_object *v;
        if (!o || !json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
                return NULL;
        return json_object_get_string(v);
}

static int64_t jint(json_object *o, const char *key)
{
        json_object *v;
        return o && json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static json_object *jsub(json_object *o, const char *key)
{
        json_object *v;
        return o && json_object_object_get_ex(o, key, &v) && !json_object_is_type(v, json_type_null) ? v : NULL;
}

/* "2026-12-02 02:30:00" local time of a seconds value, "-" for 0. */
static const char *local_time(int64_t s, char *buf, size_t size)
{
        if (s <= 0)
                return "-";
        time_t t = (time_t)s;
        struct tm tm;
        localtime_r(&t, &tm);
        strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
        return buf;
}

static char *escaped(const char *s)
{
        return s ? escape_name(s, strlen(s)) : xstrdup("-");
}

static void print_status(json_object *o)
{
        char t1[64], t2[64], b[32], dur[32];
        json_object *run = jsub(o, "running"), *dk = jsub(o, "docker");
        _cleanup_free_ char *repo = escaped(jget(o, "repo"));
        printf("agent pid %lld, repository %s\n", (long long)jint(o, "pid"), repo);
        if (dk && !json_object_get_boolean(jsub(dk, "reachable"))) {
                _cleanup_free_ char *e = escaped(jget(dk, "error"));
                printf("Docker is not reachable: %s\n", e);
        }
        if (run) {
                _cleanup_free_ char *what = escaped(jget(run, "volume"));
                printf("running: %s %s, %lld files, %s so far (%s)\n", jget(run, "job"), what,
                       (long long)jint(run, "files"), format_bytes((uint64_t)jint(run, "bytes"), b, sizeof b),
                       format_duration(jint(run, "elapsed_ns"), dur, sizeof dur));
        } else
                printf("running: nothing\n");
        json_object *vols = jsub(o, "volumes");
        size_t n = vols ? json_object_array_length(vols) : 0;
        if (n == 0) {
                printf("no volume is scheduled (label one with berth.schedule, or set 'volumes' in berth.conf)\n");
        } else {
                printf("%-20s %-14s %-22s %-19s %-19s %s\n", "VOLUME", "SCHEDULE", "KEEP", "NEXT", "LAST",
                       "RESULT");
                for (size_t i = 0; i < n; i++) {
                        json_object *v = json_object_array_get_idx(vols, i), *last = jsub(v, "last");
                        _cleanup_free_ char *name = escaped(jget(v, "name")), *keep = escaped(jget(v, "keep"));
                        char result[512] = "-";
                        if (last) {
                                const char *st = jget(last, "status"), *err = jget(last, "error");
                                _cleanup_free_ char *e = err ? escape_name(err, strlen(err)) : NULL;
                                int64_t fails = jint(v, "failures");
                                snprintf(result, sizeof result, "%s (%s)%s%s", st ? st : "?",
                                         format_duration(jint(last, "duration_ns"), dur, sizeof dur), e ? ": " : "",
                                         e ? e : "");
                                if (fails > 1) {
                                        size_t l = strlen(result);
                                        snprintf(result + l, sizeof result - l, " [%lld failures in a row]",
                                                 (long long)fails);
                                }
                        }
                        const char *next = json_object_get_boolean(jsub(v, "queued"))
                                                   ? "queued"
                                                   : local_time(jint(v, "next_s"), t1, sizeof t1);
                        printf("%-20s %-14s %-22s %-19s %-19s %s\n", name, jget(v, "schedule"), keep, next,
                               local_time(last ? jint(last, "time_s") : 0, t2, sizeof t2), result);
                }
        }
        json_object *pr = jsub(o, "prune");
        if (pr) {
                json_object *last = jsub(pr, "last");
                printf("prune: %s, next %s", jget(pr, "schedule"), local_time(jint(pr, "next_s"), t1, sizeof t1));
                if (last) {
                        _cleanup_free_ char *e = escaped(jget(last, "error"));
                        printf("; last %s: %s%s%s", local_time(jint(last, "time_s"), t2, sizeof t2), jget(last, "status"),
                               jget(last, "error") ? ": " : "", jget(last, "error") ? e : "");
                }
                putchar('\n');
        }
}

static int run_status(int argc, char **argv)
{
        int r = parse_options(argc, argv, NULL, NULL, NULL, NULL);
        if (r != OPT_DONE)
                return r;
        if (optind < argc)
                return usage_error("status", "unexpected argument '%s'", argv[optind]);
        json_object *req = json_object_new_object(), *ans = NULL;
        json_object_object_add(req, "cmd", json_object_new_string("status"));
        r = control_request(req, &ans);
        json_object_put(req);
        if (r < 0)
                return fail(r, "status");
        json_object_object_del(ans, "ok");
        if (settings.json)
                json_print(ans);
        else {
                print_status(ans);
                json_object_put(ans);
        }
        return EXIT_OK;
}

static int run_run_now(int argc, char **argv)
{
        int r = parse_options(argc, argv, NULL, NULL, NULL, NULL);
        if (r != OPT_DONE)
                return r;
        if (optind >= argc)
                return usage_error("run-now", "which volume? (see 'berth status')");
        if (optind + 1 < argc)
                return usage_error("run-now", "unexpected argument '%s'", argv[optind + 1]);
        json_object *req = json_object_new_object(), *ans = NULL;
        json_object_object_add(req, "cmd", json_object_new_string("run-now"));
        json_object_object_add(req, "name", json_object_new_string(argv[optind]));
        r = control_request(req, &ans);
        json_object_put(req);
        if (r < 0)
                return fail(r, "run-now");
        if (settings.json)
                json_print(ans);
        else {
                if (!settings.quiet) {
                        _cleanup_free_ char *n = escaped(argv[optind]);
                        printf("queued %s\n", n);
                }
                json_object_put(ans);
        }
        return EXIT_OK;
}

const struct command command_status = { "status", run_status, "what the agent runs now, next runs, last results",
                                        status_help };
const struct command command_run_now = { "run-now", run_run_now, "ask the agent to back up a volume now",
                                         run_now_help };
