/* cmd-forget.c — berth forget: remove snapshots, by name or by a keep policy. */
#include <stdlib.h>
#include <string.h>

#include "remote.h"

static const char help[] =
        "Usage: berth [-r REPO] forget SNAPSHOT... [--dry-run] [--json]\n"
        "       berth [-r REPO] forget [--name NAME]... [--host HOST] [--keep-last N]\n"
        "                       [--keep-hourly N] [--keep-daily N] [--keep-weekly N]\n"
        "                       [--keep-monthly N] [--keep-yearly N] [--keep SPEC]\n"
        "                       [--dry-run] [--json]\n"
        "\n"
        "Removes snapshots from the repository: their snapshot files and their catalog\n"
        "rows.  The data they used stays in the packs until 'berth prune' reclaims what\n"
        "no remaining snapshot uses: forget alone frees almost no space.\n"
        "\n"
        "With SNAPSHOT arguments (an id or unique id prefix, NAME for its newest\n"
        "snapshot, NAME@latest or NAME@TIME, as for restore), exactly those are\n"
        "removed.  A protected snapshot ('berth tag SNAPSHOT --keep') is refused: lift\n"
        "the protection with 'berth tag SNAPSHOT --no-keep' first.\n"
        "\n"
        "With --keep-* rules instead, a keep policy is applied to each group of\n"
        "snapshots with the same name and host (all of them, or those of the --name\n"
        "and --host given), and every snapshot of the group that no rule keeps is\n"
        "removed:\n"
        "  --keep-last N      the N newest snapshots\n"
        "  --keep-hourly N    the newest snapshot of each of the N newest hours that\n"
        "                     have snapshots\n"
        "  --keep-daily N     likewise per day, --keep-weekly per ISO 8601 week (Monday\n"
        "                     to Sunday), --keep-monthly per month, --keep-yearly per\n"
        "                     year\n"
        "Periods are calendar periods in local time (set TZ to choose another zone);\n"
        "periods without snapshots do not count.  A snapshot kept by several rules is\n"
        "kept once.  Protected snapshots are always kept and use up no rule's count.\n"
        "A policy never removes every snapshot of a group: when it would, the newest\n"
        "stays (rule 'only-snapshot'), unless --keep-last 0 is given, which is how a\n"
        "whole group is let go.\n"
        "\n"
        "--keep SPEC takes the rules in the syntax of the berth.keep label:\n"
        "'last=N,hourly=N,daily=N,weekly=N,monthly=N,yearly=N' (any of them, in any\n"
        "order); a --keep-* flag given as well wins over the same rule in SPEC.\n"
        "\n"
        "On a repository over ssh:// forget (--dry-run too) runs on the repository's\n"
        "host, where its catalog and lock live: berth connects as for any ssh://\n"
        "command (-i, --known-hosts, --remote-berth), runs '<berth> -r PATH forget\n"
        "...' there with this command line (each word quoted, with --json, -q and TZ),\n"
        "relays what it prints and exits with its status, then brings the local cache\n"
        "up to date.  A key restricted to 'berth serve' (a forced command) cannot run\n"
        "it: that is said, exit status 1, and nothing changes.\n"
        "\n"
        "Each removal is durable on its own; an interrupted forget (even kill -9)\n"
        "leaves every snapshot either listed and whole or gone, and the next command\n"
        "that writes to the repository (or 'berth catalog rebuild') finishes it.\n"
        "\n"
        "Options:\n"
        "      --keep-last N, --keep-hourly N, --keep-daily N, --keep-weekly N,\n"
        "      --keep-monthly N, --keep-yearly N\n"
        "                     the policy's rules (N >= 0), see above\n"
        "      --keep SPEC    rules in the berth.keep label syntax\n"
        "  -n, --name NAME    apply the policy to snapshots of NAME only; repeatable\n"
        "      --host HOST    apply the policy to snapshots made on HOST only\n"
        "      --dry-run      change nothing: list what would be removed and, for each\n"
        "                     snapshot that stays, the rules that keep it\n"
        "      --prune        then run 'berth prune' with its defaults, reclaiming the\n"
        "                     space no remaining snapshot uses (not with --dry-run);\n"
        "                     on s3:// with prune's lease and its 1d grace period\n"
        "      --json         print the result as a JSON object: dry_run, groups (each\n"
        "                     with name, host, keep: [{id, time, rules}] and forget:\n"
        "                     [{id, time}]), removed (ids), failed, and with --prune\n"
        "                     prune: the object 'berth prune --json' prints\n"
        "  -h, --help         this help\n"
        "\n"
        "Exit status: 0 when everything asked for was done (or, with --dry-run,\n"
        "listed), 1 when a snapshot could not be removed (the others still are) or\n"
        "the catalog could not be written back to disk (the snapshots are removed;\n"
        "check the disk), 2 for a bad command line, 4 when the repository is locked.\n";

enum {
        OPT_KEEP_LAST = 0x2001, /* .. OPT_KEEP_LAST + 5: hourly .. yearly, in struct retention_policy order */
        OPT_KEEP_SPEC = 0x2010,
        OPT_HOST,
        OPT_DRY_RUN,
        OPT_PRUNE,
};

struct args {
        struct retention_policy flags;   /* from --keep-* */
        struct retention_policy spec;    /* from --keep SPEC */
        const char **names;
        size_t nnames;
        const char *host;
        bool dry_run;
        bool prune;
};

static int *policy_slot(struct retention_policy *p, int i)
{
        int *f[] = { &p->last, &p->hourly, &p->daily, &p->weekly, &p->monthly, &p->yearly };
        return f[i];
}

static int option(int c, const char *arg, void *ud)
{
        struct args *a = ud;
        if (c >= OPT_KEEP_LAST && c < OPT_KEEP_LAST + 6) {
                char *end;
                long v = strtol(arg, &end, 10);
                if (!*arg || *end || v < 0 || v > 1000000)
                        return usage_error("forget", "--keep-* needs a number of 0 or more, not '%s'", arg);
                *policy_slot(&a->flags, c - OPT_KEEP_LAST) = (int)v;
                return OPT_DONE;
        }
        switch (c) {
        case OPT_KEEP_SPEC:
                if (retention_parse(arg, &a->spec) < 0)
                        return usage_error("forget", "%s", error_message());
                return OPT_DONE;
        case 'n':
                a->names = xrealloc(a->names, (a->nnames + 1) * sizeof *a->names);
                a->names[a->nnames++] = arg;
                return OPT_DONE;
        case OPT_HOST:
                a->host = arg;
                return OPT_DONE;
        case OPT_DRY_RUN:
                a->dry_run = true;
                return OPT_DONE;
        case OPT_PRUNE:
                a->prune = true;
                return OPT_DONE;
        }
        return OPT_UNKNOWN;
}

static void keep_warning(void *ud, const char *object, const char *msg)
{
        _cleanup_free_ char *name = escape_name(object, strlen(object));
        log_warning("%s: %s", name, msg);
}

/* What a run decided and did, for the text and JSON reports. */
struct report {
        bool dry_run;
        json_object *groups;   /* JSON: one object per group */
        json_object *removed;  /* ids */
        json_object *failed;   /* {id, error} */
        size_t nremoved, nkept, nfailed, nforget;
};

static bool is_protected(char **ids, size_t n, const char *id)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(ids[i], id) == 0)
                        return true;
        return false;
}

static json_object *rules_json(unsigned rules)
{
        json_object *a = json_object_new_array();
        for (unsigned b = 0; b < RETAIN__COUNT; b++)
                if (rules & (1u << b))
                        json_object_array_add(a, json_object_new_string(retention_rule_name(1u << b)));
        return a;
}

static void rules_text(unsigned rules, char *out, size_t size)
{
        size_t len = 0;
        out[0] = 0;
        for (unsigned b = 0; b < RETAIN__COUNT; b++)
                if (rules & (1u << b))
                        len += (size_t)snprintf(out + len, len < size ? size - len : 0, "%s%s", len ? ", " : "",
                                                retention_rule_name(1u << b));
}

/* Removes one snapshot (unless dry run), reporting it. */
static void forget_one(struct repo *repo, struct report *rep, const struct catalog_snapshot *s)
{
        char t[32];
        format_time(s->started, t, sizeof t);
        rep->nforget++;
        if (rep->dry_run) {
                if (!settings.json && !settings.quiet)
                        printf("  would remove  %.12s  %s\n", s->id, t);
                return;
        }
        int r = snapshot_forget(repo, s->id);
        if (r < 0) {
                const char *m = error_message() ? error_message() : berth_strerror(r);
                log_error("cannot forget snapshot %.12s: %s", s->id, m);
                json_object *f = json_object_new_object();
                json_object_object_add(f, "id", json_object_new_string(s->id));
                json_object_object_add(f, "error", json_object_new_string(m));
                json_object_array_add(rep->failed, f);
                error_clear();
                rep->nfailed++;
                return;
        }
        rep->nremoved++;
        json_object_array_add(rep->removed, json_object_new_string(s->id));
        if (!settings.json && !settings.quiet)
                printf("  removed       %.12s  %s\n", s->id, t);
}

static json_object *entry_json(const struct catalog_snapshot *s, const unsigned *rules)
{
        char t[32];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(s->id));
        json_object_object_add(o, "short_id", json_object_new_string_len(s->id, 12));
        json_object_object_add(o, "time", json_object_new_string(format_time(s->started, t, sizeof t)));
        if (rules)
                json_object_object_add(o, "rules", rules_json(*rules));
        return o;
}

/* Applies the policy to one group (list[idx[0..n)], oldest first). */
static int apply_group(struct repo *repo, struct report *rep, const struct retention_policy *p,
                       const struct catalog_snapshot *list, const size_t *idx, size_t n, char **prot, size_t nprot)
{
        _cleanup_free_ struct retention_item *items = xcalloc(n, sizeof *items);
        _cleanup_free_ struct retention_decision *d = xcalloc(n, sizeof *d);
        for (size_t i = 0; i < n; i++) {
                const struct catalog_snapshot *s = &list[idx[i]];
                items[i] = (struct retention_item){ s->id, s->started, is_protected(prot, nprot, s->id) };
        }
        int r = retention_select(p, items, n, d);
        if (r < 0)
                return r;
        const struct catalog_snapshot *first = &list[idx[0]];
        json_object *g = json_object_new_object(), *keep = json_object_new_array(), *gone = json_object_new_array();
        json_object_object_add(g, "name", json_object_new_string(first->name));
        json_object_object_add(g, "host", json_object_new_string(first->host));
        if (!settings.json && !settings.quiet) {
                _cleanup_free_ char *nm = escape_name(first->name, strlen(first->name));
                _cleanup_free_ char *host = escape_name(first->host, strlen(first->host));
                size_t nk = 0;
                for (size_t i = 0; i < n; i++)
                        nk += d[i].keep;
                printf("%s (host %s): %zu snapshot(s), keeping %zu, %s %zu\n", nm, host, n, nk,
                       rep->dry_run ? "would remove" : "removing", n - nk);
        }
        /* Newest first, as the rules count. */
        for (size_t j = n; j-- > 0;) {
                const struct catalog_snapshot *s = &list[idx[j]];
                if (d[j].keep) {
                        rep->nkept++;
                        json_object_array_add(keep, entry_json(s, &d[j].rules));
                        if (!settings.json && !settings.quiet) {
                                char t[32], why[128];
                                rules_text(d[j].rules, why, sizeof why);
                                printf("  keep          %.12s  %s  (%s)\n", s->id, format_time(s->started, t, sizeof t),
                                       why);
                        }
                } else {
                        json_object_array_add(gone, entry_json(s, NULL));
                        forget_one(repo, rep, s);
                }
        }
        json_object_object_add(g, "keep", keep);
        json_object_object_add(g, "forget", gone);
        json_object_array_add(rep->groups, g);
        return 0;
}

static bool name_selected(const struct args *a, const char *name)
{
        if (a->nnames == 0)
                return true;
        for (size_t i = 0; i < a->nnames; i++)
                if (strcmp(a->names[i], name) == 0)
                        return true;
        return false;
}

static int by_policy(struct repo *repo, struct report *rep, const struct args *a, const struct retention_policy *p)
{
        struct catalog_snapshot *list = NULL;
        size_t n = 0;
        char **prot = NULL;
        size_t nprot = 0;
        /* Protection as the repository's keep/ objects say (the catalog
         * mirrors them; this also names objects that are not valid). */
        int r = snapshot_protected_ids(repo, keep_warning, NULL, &prot, &nprot);
        if (r == 0)
                r = catalog_snapshot_list(repo_catalog(repo), NULL, &list, &n);
        _cleanup_free_ bool *done = xcalloc(n ? n : 1, sizeof *done);
        _cleanup_free_ size_t *idx = xcalloc(n ? n : 1, sizeof *idx);
        size_t groups = 0;
        for (size_t i = 0; r == 0 && i < n; i++) {
                if (done[i] || !name_selected(a, list[i].name) || (a->host && strcmp(a->host, list[i].host) != 0))
                        continue;
                size_t m = 0;
                for (size_t j = i; j < n; j++)
                        if (!done[j] && strcmp(list[j].name, list[i].name) == 0 &&
                            strcmp(list[j].host, list[i].host) == 0) {
                                done[j] = true;
                                idx[m++] = j;
                        }
                r = apply_group(repo, rep, p, list, idx, m, prot, nprot);
                groups++;
        }
        if (r == 0 && groups == 0 && !settings.json)
                log_notice("no snapshots match%s", a->nnames || a->host ? " the --name/--host given" : "");
        catalog_snapshot_list_free(list, n);
        catalog_id_list_free(prot, nprot);
        return r;
}

static int by_reference(struct repo *repo, struct report *rep, char **refs, size_t nrefs)
{
        _cleanup_free_ struct catalog_snapshot *snaps = xcalloc(nrefs, sizeof *snaps);
        size_t n = 0;
        int r = 0;
        /* Every reference is resolved before anything is removed: a typo
         * in the last one removes nothing. */
        for (size_t i = 0; i < nrefs && r == 0; i++) {
                r = snapshot_resolve(repo, refs[i], &snaps[n]);
                if (r < 0)
                        break;
                bool dup = false;
                for (size_t j = 0; j < n && !dup; j++)
                        dup = strcmp(snaps[j].id, snaps[n].id) == 0;
                if (dup)
                        catalog_snapshot_clear(&snaps[n]);
                else
                        n++;
        }
        for (size_t i = 0; i < n; i++) {
                if (r == 0) {
                        json_object *g = json_object_new_object(), *gone = json_object_new_array();
                        json_object_object_add(g, "name", json_object_new_string(snaps[i].name));
                        json_object_object_add(g, "host", json_object_new_string(snaps[i].host));
                        json_object_object_add(g, "keep", json_object_new_array());
                        json_object_array_add(gone, entry_json(&snaps[i], NULL));
                        json_object_object_add(g, "forget", gone);
                        json_object_array_add(rep->groups, g);
                        if (rep->dry_run && snapshot_is_protected(repo, snaps[i].id) > 0) {
                                log_error("snapshot %.12s is protected ('berth tag --keep'): it would be refused",
                                          snaps[i].id);
                                rep->nfailed++;
                        } else
                                forget_one(repo, rep, &snaps[i]);
                }
                catalog_snapshot_clear(&snaps[i]);
        }
        return r;
}

/* The same command line, for the host of an ssh:// repository. */
static int remote_forget(const struct args *a, struct retention_policy *p, char **refs, size_t nrefs)
{
        static const char *const flags[] = { "--keep-last", "--keep-hourly", "--keep-daily",
                                             "--keep-weekly", "--keep-monthly", "--keep-yearly" };
        size_t n = 0, max = 16 + 2 * a->nnames + nrefs;
        _cleanup_free_ const char **args = xcalloc(max, sizeof *args);
        char counts[6][16];
        for (int i = 0; i < 6; i++) {
                int v = *policy_slot(p, i);
                if (v < 0)
                        continue;
                snprintf(counts[i], sizeof counts[i], "%d", v);
                args[n++] = flags[i];
                args[n++] = counts[i];
        }
        for (size_t i = 0; i < a->nnames; i++) {
                args[n++] = "--name";
                args[n++] = a->names[i];
        }
        if (a->host) {
                args[n++] = "--host";
                args[n++] = a->host;
        }
        if (a->dry_run)
                args[n++] = "--dry-run";
        if (a->prune)
                args[n++] = "--prune";
        args[n++] = "--";
        for (size_t i = 0; i < nrefs; i++)
                args[n++] = refs[i];
        return remote_maintenance("forget", args, n, a->dry_run);
}

static int run(int argc, char **argv)
{
        static const struct option options[] = {
                GLOBAL_OPTIONS,
                { "keep-last", required_argument, NULL, OPT_KEEP_LAST },
                { "keep-hourly", required_argument, NULL, OPT_KEEP_LAST + 1 },
                { "keep-daily", required_argument, NULL, OPT_KEEP_LAST + 2 },
                { "keep-weekly", required_argument, NULL, OPT_KEEP_LAST + 3 },
                { "keep-monthly", required_argument, NULL, OPT_KEEP_LAST + 4 },
                { "keep-yearly", required_argument, NULL, OPT_KEEP_LAST + 5 },
                { "keep", required_argument, NULL, OPT_KEEP_SPEC },
                { "name", required_argument, NULL, 'n' },
                { "host", required_argument, NULL, OPT_HOST },
                { "dry-run", no_argument, NULL, OPT_DRY_RUN },
                { "prune", no_argument, NULL, OPT_PRUNE },
                {},
        };
        struct args a = { 0 };
        retention_policy_init(&a.flags);
        retention_policy_init(&a.spec);
        int r = parse_options(argc, argv, "n:", options, option, &a);
        _cleanup_free_ const char **names = a.names;
        if (r != OPT_DONE)
                return r;
        struct retention_policy p = a.spec;
        for (int i = 0; i < 6; i++)
                if (*policy_slot(&a.flags, i) >= 0)
                        *policy_slot(&p, i) = *policy_slot(&a.flags, i);
        bool policy = retention_policy_given(&p);
        size_t nrefs = (size_t)(argc - optind);
        if (nrefs > 0 && (policy || a.nnames || a.host))
                return usage_error("forget", "give SNAPSHOT arguments or a keep policy, not both");
        if (nrefs == 0 && !policy)
                return usage_error("forget", "give SNAPSHOT arguments, or at least one --keep-* rule");
        if (a.prune && a.dry_run)
                return usage_error("forget", "--prune does not go with --dry-run: run 'berth prune --dry-run' "
                                             "after a real forget to see what it would reclaim");

        /* A repository over SSH: its host forgets, with its catalog. */
        if (repo_is_ssh())
                return remote_forget(&a, &p, argv + optind, nrefs);
        _cleanup_(repo_freep) struct repo *repo = NULL;
        r = open_repo(a.dry_run ? REPO_READ : REPO_WRITE, &repo);
        if (r < 0)
                return fail(r, "forget");
        struct report rep = { .dry_run = a.dry_run,
                              .groups = json_object_new_array(),
                              .removed = json_object_new_array(),
                              .failed = json_object_new_array() };
        r = nrefs ? by_reference(repo, &rep, argv + optind, nrefs) : by_policy(repo, &rep, &a, &p);
        if (r < 0) {
                json_object_put(rep.groups);
                json_object_put(rep.removed);
                json_object_put(rep.failed);
                return fail(r, "forget");
        }
        /* prune opens the repository itself, as often as it needs: this
         * handle (and its locks, which belong to the whole process) goes
         * first, its catalog on disk. */
        int status = close_repo(TAKE_PTR(repo), "forget removed %zu snapshot(s) from the repository", rep.nremoved);
        bool closed = status == EXIT_OK;
        if (closed && rep.nfailed)
                status = EXIT_FAILURE_;
        struct prune_options po;
        struct prune_result pr;
        prune_options_default(&po);
        po.grace = UINT64_MAX;  /* prune's default for the repository */
        _cleanup_(backend_freep) struct backend *lease = NULL;
        if (a.prune && closed) {
                /* On s3:// the same prune as 'berth prune': its lease and grace. */
                r = prune_options_shared(&po, &lease);
                if (r == 0)
                        r = prune_with_progress(&po, &pr);
                if (r < 0)
                        status = fail(r, "forget --prune");
        }
        bool pruned = a.prune && r >= 0;
        if (settings.json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "dry_run", json_object_new_boolean(a.dry_run));
                json_object_object_add(o, "groups", rep.groups);
                json_object_object_add(o, "removed", rep.removed);
                json_object_object_add(o, "failed", rep.failed);
                json_object_object_add(o, "kept", json_object_new_int64((int64_t)rep.nkept));
                if (pruned)
                        json_object_object_add(o, "prune", json_prune_result(&po, &pr));
                json_print(o);
        } else {
                json_object_put(rep.groups);
                json_object_put(rep.removed);
                json_object_put(rep.failed);
                if (!settings.quiet) {
                        if (a.dry_run)
                                printf("dry run: %zu snapshot(s) would be removed, %zu kept; nothing changed\n",
                                       rep.nforget, rep.nkept);
                        else
                                printf("removed %zu snapshot(s), kept %zu%s\n", rep.nremoved, rep.nkept,
                                       rep.nremoved && !a.prune ? "; 'berth prune' reclaims the space they alone used"
                                                                : "");
                }
                if (pruned)
                        print_prune_result(&po, &pr);
        }
        return status;
}

const struct command command_forget = { "forget", run, "remove snapshots, by id or by a keep policy", help };
