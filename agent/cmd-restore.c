/* cmd-restore.c — berth restore: write a snapshot back to disk or into a
 * Docker volume. */
#include <string.h>
#include <sys/stat.h>

#include "agent.h"
#include "quiesce.h"
#include "remote.h"

static const char help[] =
        "Usage: berth [-r REPO] restore SNAPSHOT --target DIR [--include PATH]... [OPTIONS]\n"
        "       berth [-r REPO] restore SNAPSHOT --to-volume NAME [--force] [OPTIONS]\n"
        "       berth [-r REPO] restore SNAPSHOT --host [USER@]HOST[:PORT] --to-volume NAME\n"
        "                                 [--force] [--remote-repo PATH] [OPTIONS]\n"
        "\n"
        "Restores SNAPSHOT into DIR, which must not exist or be an empty directory, or\n"
        "into the Docker volume NAME: an existing empty volume that no running\n"
        "container uses, or one created through the Docker API with the labels the\n"
        "snapshot recorded.  The driver and driver options it recorded are shown, not\n"
        "applied (they can mount a host path, a device or a network share, and a\n"
        "repository is data, not instructions): pass --volume-opts-from-snapshot to\n"
        "apply them after reading them, or --volume-opt to give your own.  A non-empty\n"
        "or in-use volume is refused unless --force, which stops the containers using\n"
        "it, swaps the restored tree in atomically, and starts them again.  A volume\n"
        "whose driver keeps no data on this host is refused, and so is a local volume\n"
        "mounted from elsewhere (tmpfs, nfs, cifs, a device: its data is visible only\n"
        "while a container mounts it); a bind volume (o=bind, device=DIR) is restored\n"
        "into DIR.\n"
        "\n"
        "SNAPSHOT is an id or unique id prefix, NAME (its newest snapshot), NAME@latest,\n"
        "or NAME@TIME, the newest snapshot at or before TIME (2026-11-22T10:00 local,\n"
        "or 2026-11-22T09:00:00Z).\n"
        "\n"
        "Everything is restored as it was: contents, type, mode with setuid/setgid/\n"
        "sticky, numeric owner and group (even when this host has no such user),\n"
        "nanosecond mtimes, symlinks, hard links, fifos, device nodes, xattrs, POSIX\n"
        "ACLs and sparse files.  The tree is written to a staging directory next to\n"
        "DIR and renamed into place at the end, so DIR appears whole or not at all.\n"
        "Every chunk is verified against its hash: damaged data fails the restore\n"
        "(naming the pack) and nothing is left behind, unless --partial.\n"
        "\n"
        "With --host, the restore happens on another Docker host reached over SSH,\n"
        "as the far half of 'berth migrate': SNAPSHOT is copied from this repository\n"
        "to the repository PATH on HOST (default /var/lib/berth, created with a\n"
        "remote 'berth init' when missing; only the chunks HOST lacks are sent), and\n"
        "HOST's berth restores it into its Docker volume NAME (refusing an existing\n"
        "non-empty or in-use one unless --force).  The report gives the bytes sent,\n"
        "the snapshot id there and HOST's restore result.  SSH options: -i/--identity\n"
        "KEYFILE, --known-hosts FILE, --accept-new-host-key, --remote-berth PATH\n"
        "(global options, before or after the command).\n"
        "\n"
        "Options:\n"
        "  -t, --target DIR     where to restore\n"
        "      --to-volume NAME restore into Docker volume NAME\n"
        "      --force          with --to-volume: replace a non-empty or in-use volume's contents\n"
        "      --host [USER@]HOST[:PORT]\n"
        "                       restore into volume NAME (--to-volume) on HOST, over SSH\n"
        "      --remote-repo PATH\n"
        "                       with --host: the repository on HOST (default /var/lib/berth)\n"
        "      --volume-opt KEY=VALUE\n"
        "                       with --to-volume: a driver option for a volume it\n"
        "                       creates; repeatable\n"
        "      --volume-opts-from-snapshot\n"
        "                       with --to-volume: create the volume with the driver\n"
        "                       and options the snapshot recorded\n"
        "  -I, --include PATH   restore only PATH (a file or a sub-tree) with its parent\n"
        "                       directories; repeatable\n"
        "      --partial        skip files whose data is damaged, restore the rest, exit 3\n"
        "      --verify         then check the restored tree against the snapshot (types,\n"
        "                       modes, times, owners as root, link targets, contents);\n"
        "                       exit 5 if anything differs (not with --include)\n"
        "      --json           print the result as a JSON object\n"
        "  -h, --help           this help\n";

struct volume_args {
        json_object *opts;           /* --volume-opt KEY=VALUE, as an object (NULL: none given) */
        bool from_snapshot;          /* --volume-opts-from-snapshot */
};

/* Appends s escaped: recorded values come from the repository and must
 * not reach the terminal raw. */
static void append_escaped(struct buf *b, const char *s)
{
        if (s)
                buf_put_escaped(b, s, strlen(s), true);
}

/* "driver=X, type=none, o=bind, device=/etc" for a message; the caller
 * frees. */
static char *describe_opts(const char *driver, json_object *opts)
{
        struct buf b = { 0 };
        if (driver && strcmp(driver, "local") != 0) {
                buf_append(&b, "driver=", 7);
                append_escaped(&b, driver);
        }
        if (opts && json_object_is_type(opts, json_type_object)) {
                json_object_object_foreach(opts, key, val) {
                        if (b.len)
                                buf_append(&b, ", ", 2);
                        append_escaped(&b, key);
                        buf_putc(&b, '=');
                        append_escaped(&b, json_object_get_string(val));
                }
        }
        buf_putc(&b, 0);
        return (char *)b.data;
}

static bool has_opts(json_object *opts)
{
        return opts && json_object_is_type(opts, json_type_object) && json_object_object_length(opts) > 0;
}

/* Where the data of a volume with this driver and these options lives on
 * this host, as a container would see it.  A local volume without options:
 * Docker's own directory (*ret_dir = NULL).  A local bind volume (o=bind,
 * device=DIR): DIR, the directory the daemon bind-mounts.  Any other
 * mount (tmpfs, nfs, cifs, a device) is mounted only while a container
 * uses it, so writing into Docker's directory would restore data no
 * container sees: -ENOTSUP, saying what to do instead.  Other drivers are
 * judged by their mountpoint later. */
static int volume_data_dir(const char *name, const char *driver, json_object *opts, const char **ret_dir)
{
        *ret_dir = NULL;
        if ((driver && strcmp(driver, "local") != 0) || !has_opts(opts))
                return 0;
        json_object *type = NULL, *o = NULL, *device = NULL;
        json_object_object_get_ex(opts, "type", &type);
        json_object_object_get_ex(opts, "o", &o);
        json_object_object_get_ex(opts, "device", &device);
        const char *dev = device ? json_object_get_string(device) : NULL;
        bool bind = false;
        if (o) {
                _cleanup_free_ char *copy = xstrdup(json_object_get_string(o));
                char *save = NULL;
                for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
                        if (strcmp(tok, "bind") == 0 || strcmp(tok, "rbind") == 0)
                                bind = true;
        }
        if (bind && dev && dev[0] == '/') {
                *ret_dir = dev;
                return 0;
        }
        _cleanup_free_ char *what = describe_opts(driver, opts);
        const char *t = type ? json_object_get_string(type) : "";
        if (strcmp(t, "tmpfs") == 0)
                return error_set(ENOTSUP,
                                 "volume '%s' is a tmpfs mount (%s): it holds data only while a container uses it, "
                                 "and Docker's directory for it is not what a container sees, so nothing was "
                                 "restored; restore into a volume without mount options (no --volume-opt or "
                                 "--volume-opts-from-snapshot), or with --target DIR",
                                 name, what);
        return error_set(ENOTSUP,
                         "volume '%s' is a mount (%s): its data is on that filesystem, mounted only while a "
                         "container uses it, not in Docker's directory for the volume, so nothing was restored; "
                         "mount the filesystem on this host and restore into it with --target DIR, or restore into "
                         "a volume without mount options",
                         name, what);
}

/* Creates volume `name` for snapshot s: with its recorded labels, and with
 * its recorded driver and options only when va->from_snapshot (they can
 * mount a host path, a device or a network share: a repository is data,
 * not instructions); --volume-opt options are applied as given. */
static int create_volume(struct docker *d, const struct catalog_snapshot *s, const char *name,
                         const struct volume_args *va)
{
        json_object *meta = s->meta ? json_tokener_parse(s->meta) : NULL, *vol = NULL, *drv = NULL, *ropts = NULL,
                    *labels = NULL;
        if (meta && json_object_object_get_ex(meta, "volume", &vol)) {
                json_object_object_get_ex(vol, "driver", &drv);
                json_object_object_get_ex(vol, "options", &ropts);
                json_object_object_get_ex(vol, "labels", &labels);
        }
        error_clear();
        const char *rdriver = drv ? json_object_get_string(drv) : "local";
        const char *driver = va->from_snapshot ? rdriver : "local";
        json_object *opts = json_object_new_object();
        if (va->from_snapshot && has_opts(ropts)) {
                json_object_object_foreach(ropts, rk, rv) {
                        json_object_object_add(opts, rk, json_object_get(rv));
                }
        }
        if (va->opts) {
                json_object_object_foreach(va->opts, ck, cv) {
                        json_object_object_add(opts, ck, json_object_get(cv));
                }
        }
        if (!va->from_snapshot && (has_opts(ropts) || strcmp(rdriver, "local") != 0)) {
                _cleanup_free_ char *what = describe_opts(rdriver, ropts);
                log_warning("the snapshot recorded volume driver options for '%s' that were not applied (%s): they "
                            "can mount a host path, a device or a network share; after reading them, pass "
                            "--volume-opts-from-snapshot to apply them, or give options with --volume-opt KEY=VALUE",
                            name, what);
        }
        const char *dir;
        int r = volume_data_dir(name, driver, opts, &dir);
        if (r == 0 && dir && mkdir(dir, 0755) < 0 && errno != EEXIST)
                r = error_set(errno, "cannot create %s, the directory volume '%s' binds: %s", dir, name,
                              strerror(errno));
        if (r == 0)
                r = docker_volume_create(d, name, driver, opts, labels);
        if (r == 0) {
                _cleanup_free_ char *what = describe_opts(driver, opts);
                log_info("created volume '%s'%s%s", name, *what ? " with " : "", what);
        }
        json_object_put(opts);
        json_object_put(meta);
        return r;
}

/* Like dir_empty, but a staging directory that a killed restore left
 * (".berth-restore-PID-...", PID gone; snapshot/stage.c names them and the
 * restore removes them) does not count: the rerun of a killed restore into a
 * new volume must not be refused as "not empty". */
static int volume_dir_empty(const char *path)
{
        DIR *d = opendir(path);
        if (!d)
                return -errno;
        struct dirent *de;
        int empty = 1;
        while (empty && (de = readdir(d))) {
                if (dot_or_dotdot(de->d_name))
                        continue;
                char *end;
                long pid = strncmp(de->d_name, ".berth-restore-", 15) == 0 ? strtol(de->d_name + 15, &end, 10) : 0;
                empty = pid > 0 && *end == '-' && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
        }
        closedir(d);
        return empty;
}

/* Restores into Docker volume `name`, creating it when missing; *ret_dir
 * (the caller frees) is the directory that was written.  With vr, the tree
 * is verified into it before the volume's containers start again. */
static int restore_to_volume(struct repo *repo, const struct catalog_snapshot *s, const char *name, bool force,
                             const struct volume_args *va, struct restore_options *o, struct restore_result *res,
                             struct verify_result *vr, char **ret_dir)
{
        _cleanup_(docker_freep) struct docker *d = NULL;
        struct docker_volume v = { 0 };
        struct docker_container *list = NULL, *users = NULL;
        size_t nlist = 0, nusers = 0, running = 0;
        struct quiesce q = { 0 };
        char who[512] = "";
        const char *dir = NULL;
        int r = docker_open(settings.docker_wait, &d);
        if (r < 0)
                return r;

        r = docker_volume_inspect(d, name, &v);
        if (r == -BERTH_ENOTFOUND) {
                r = create_volume(d, s, name, va);
                if (r == 0)
                        r = docker_volume_inspect(d, name, &v);
        } else if (r == 0 && (va->opts || va->from_snapshot))
                log_warning("volume '%s' exists: --volume-opt and --volume-opts-from-snapshot apply only to a volume "
                            "the restore creates",
                            name);
        if (r < 0)
                goto out;
        /* Where a container will see the data: never report success for
         * data written where none does. */
        r = volume_data_dir(name, v.driver, v.options, &dir);
        if (r < 0)
                goto out;
        if (!dir && (!v.mountpoint || !*v.mountpoint || access(v.mountpoint, F_OK) < 0)) {
                r = error_set(ENOTSUP, "volume '%s' (driver '%s') has no local mountpoint: Berth can restore only into "
                                       "volumes whose data is a directory on this host",
                              name, v.driver ? v.driver : "?");
                goto out;
        }
        if (!dir)
                dir = v.mountpoint;
        r = docker_containers(d, &list, &nlist);
        if (r < 0)
                goto out;
        users = xcalloc(nlist + 1, sizeof *users);
        for (size_t i = 0; i < nlist; i++)
                for (size_t m = 0; m < list[i].nmounts; m++)
                        if (list[i].mounts[m].name && strcmp(list[i].mounts[m].name, name) == 0 &&
                            strcmp(list[i].mounts[m].type ? list[i].mounts[m].type : "", "volume") == 0) {
                                users[nusers++] = list[i];
                                if (strcmp(list[i].state ? list[i].state : "", "running") == 0) {
                                        running++;
                                        snprintf(who + strlen(who), sizeof who - strlen(who), "%s'%s'",
                                                 *who ? ", " : "", list[i].name);
                                }
                                break;
                        }
        bool empty = volume_dir_empty(dir) != 0; /* unreadable: the restore says why */
        if ((!empty || running) && !force) {
                char in_use[700] = "";
                if (running)
                        snprintf(in_use, sizeof in_use, "is used by running container(s) %s", who);
                r = error_set(EEXIST, "volume '%s' %s%s%s; pass --force to replace its contents (its containers are "
                                      "stopped for the restore and started after)",
                              name, empty ? "" : "is not empty", !empty && running ? " and " : "", in_use);
                goto out;
        }
        if (running) {
                r = quiesce_plan(&q, d, repo_catalog(repo), users, nusers, QUIESCE_STOP);
                if (r == 0)
                        r = quiesce_freeze(&q);
                if (r < 0) {
                        quiesce_thaw(&q);
                        goto out;
                }
        }
        o->target = dir;
        o->replace = !empty;
        /* An empty volume no container uses (one created just now, or left
         * empty by a killed restore): no container has its directory bound,
         * so the restored tree can take its place in one step. */
        o->swap_empty = empty && nusers == 0;
        progress_begin("restore:");
        r = snapshot_restore(repo, s->id, o, res);
        progress_end();
        if (r == 0 && vr)
                r = snapshot_verify_tree(repo, s->id, dir, NULL, 0, vr);
        *ret_dir = xstrdup(dir);
        o->target = *ret_dir;
        if (running) {
                char why[1024] = "";
                if (r < 0)
                        snprintf(why, sizeof why, "%s", error_message() ? error_message() : berth_strerror(r));
                int t = quiesce_thaw(&q);
                if (r == 0 && t < 0)
                        r = t;
                else if (r < 0)
                        error_set(-r, "%s", why);
        }
out:
        quiesce_clear(&q);
        free(users);
        docker_containers_free(list, nlist);
        docker_volume_clear(&v);
        return r;
}

struct restore_args {
        struct restore_options o;
        const char **inc;
        const char *volume, *host, *remote_repo;
        bool force, verify;
        struct volume_args va;
};

static int option(int c, const char *arg, void *ud)
{
        struct restore_args *a = ud;
        switch (c) {
        case 't':
                a->o.target = arg;
                return OPT_DONE;
        case 'I':
                a->inc[a->o.ninclude++] = arg;
                return OPT_DONE;
        case 1:
                a->o.partial = true;
                return OPT_DONE;
        case 2:
                a->volume = arg;
                return OPT_DONE;
        case 3:
                a->force = true;
                return OPT_DONE;
        case 4: {
                const char *eq = strchr(arg, '=');
                if (!eq || eq == arg)
                        return usage_error("restore", "--volume-opt takes KEY=VALUE, not '%s'", arg);
                if (!a->va.opts)
                        a->va.opts = json_object_new_object();
                _cleanup_free_ char *key = xstrndup(arg, (size_t)(eq - arg));
                json_object_object_add(a->va.opts, key, json_object_new_string(eq + 1));
                return OPT_DONE;
        }
        case 5:
                a->va.from_snapshot = true;
                return OPT_DONE;
        case 6:
                a->host = arg;
                return OPT_DONE;
        case 7:
                a->remote_repo = arg;
                return OPT_DONE;
        case 8:
                a->verify = true;
                return OPT_DONE;
        default:
                return OPT_UNKNOWN;
        }
}

static int run(int argc, char **argv)
{
        static const struct option options[] = {
                GLOBAL_OPTIONS,
                { "target", required_argument, NULL, 't' },
                { "include", required_argument, NULL, 'I' },
                { "partial", no_argument, NULL, 1 },
                { "to-volume", required_argument, NULL, 2 },
                { "force", no_argument, NULL, 3 },
                { "volume-opt", required_argument, NULL, 4 },
                { "volume-opts-from-snapshot", no_argument, NULL, 5 },
                { "host", required_argument, NULL, 6 },
                { "remote-repo", required_argument, NULL, 7 },
                { "verify", no_argument, NULL, 8 },
                {},
        };
        struct restore_args a = {
                .o = { .events = { .warning = report_warning, .progress = progress_update, .cancel = &interrupted } },
                .inc = xcalloc((size_t)argc + 1, sizeof *a.inc),
        };
        struct restore_options o;
        const char **inc = a.inc;
        int pr = parse_options(argc, argv, "t:I:", options, option, &a);
        if (pr != OPT_DONE) {
                free(inc);
                json_object_put(a.va.opts);
                return pr;
        }
        o = a.o;
        const char *volume = a.volume;
        bool force = a.force;
        o.include = inc;
        if (argc - optind != 1) {
                free(inc);
                return usage_error("restore", "give exactly one SNAPSHOT");
        }
        if (a.verify && o.ninclude) {
                free(inc);
                json_object_put(a.va.opts);
                return usage_error("restore", "--verify checks a whole restore: it does not go with --include");
        }
        if (a.remote_repo && !a.host) {
                free(inc);
                json_object_put(a.va.opts);
                return usage_error("restore", "--remote-repo goes with --host");
        }
        if (a.host) {
                bool other = o.target || o.ninclude || o.partial || a.va.opts || a.va.from_snapshot;
                free(inc);
                json_object_put(a.va.opts);
                if (!volume)
                        return usage_error("restore", "--host restores into a Docker volume there: give --to-volume "
                                                      "NAME");
                if (other)
                        return usage_error("restore", "--host goes with --to-volume, --force and --remote-repo only");
                return restore_to_host(argv[optind], a.host, a.remote_repo ? a.remote_repo : "/var/lib/berth",
                                       volume, force);
        }
        if (!o.target == !volume) {
                free(inc);
                return usage_error("restore", "give where to restore: --target DIR or --to-volume NAME");
        }
        if ((force || a.va.opts || a.va.from_snapshot) && !volume) {
                free(inc);
                json_object_put(a.va.opts);
                return usage_error("restore", "--force, --volume-opt and --volume-opts-from-snapshot go with --to-volume");
        }

        _cleanup_(repo_freep) struct repo *repo = NULL;
        _cleanup_free_ char *written = NULL;
        struct catalog_snapshot s = { 0 };
        struct restore_result res;
        struct verify_result vr = { 0 };
        int r = open_repo(REPO_READ, &repo);
        if (r == 0)
                r = snapshot_resolve(repo, argv[optind], &s);
        if (r == 0 && volume)
                r = restore_to_volume(repo, &s, volume, force, &a.va, &o, &res, a.verify ? &vr : NULL, &written);
        else if (r == 0) {
                progress_begin("restore:");
                r = snapshot_restore(repo, s.id, &o, &res);
                progress_end();
        }
        free(inc);
        json_object_put(a.va.opts);
        if (r < 0) {
                catalog_snapshot_clear(&s);
                return fail(r, "restore");
        }
        if (a.verify) {
                if (!volume)
                        r = snapshot_verify_tree(repo, s.id, o.target, NULL, 0, &vr);
                if (r < 0) {
                        catalog_snapshot_clear(&s);
                        return fail(r, "restore --verify");
                }
                for (size_t i = 0; i < vr.mismatches && i < ELEMENTSOF(vr.paths); i++) {
                        _cleanup_free_ char *p = escape_name(vr.paths[i], strlen(vr.paths[i]));
                        log_error("verify: '%s': %s", p, vr.reasons[i]);
                }
                if (vr.mismatches)
                        log_error("the restored tree does not match snapshot %.12s: %llu entr%s differ%s", s.id,
                                  (unsigned long long)vr.mismatches, vr.mismatches == 1 ? "y" : "ies",
                                  vr.mismatches == 1 ? "s" : "");
        }
        char b[32];
        if (settings.json) {
                json_object *j = json_object_new_object();
                json_object_object_add(j, "snapshot", json_object_new_string(s.id));
                json_object_object_add(j, "target", json_object_new_string(o.target));
                json_object_object_add(j, "volume", volume ? json_object_new_string(volume) : NULL);
                json_object_object_add(j, "files", json_object_new_int64((int64_t)res.files));
                json_object_object_add(j, "dirs", json_object_new_int64((int64_t)res.dirs));
                json_object_object_add(j, "bytes", json_object_new_int64((int64_t)res.bytes));
                json_object_object_add(j, "errors", json_object_new_int64((int64_t)res.errors));
                if (a.verify) {
                        json_object_object_add(j, "verified", json_object_new_boolean(vr.mismatches == 0));
                        json_object_object_add(j, "mismatches", json_object_new_int64((int64_t)vr.mismatches));
                }
                json_print(j);
        } else if (!settings.quiet) {
                _cleanup_free_ char *nm = escape_name(s.name, strlen(s.name));
                printf("restored snapshot %.12s (%s) to %s%s%s: %llu files, %llu directories, %s%s\n", s.id, nm,
                       volume ? "volume '" : "'", volume ? volume : o.target, "'", (unsigned long long)res.files, (unsigned long long)res.dirs,
                       format_bytes(res.bytes, b, sizeof b), res.errors ? "; some entries were not restored" : "");
                if (a.verify && !vr.mismatches)
                        printf("verified %llu entries against the snapshot: all match\n",
                               (unsigned long long)vr.checked);
        }
        catalog_snapshot_clear(&s);
        uint64_t bad = vr.mismatches;
        verify_result_clear(&vr);
        if (bad)
                return EXIT_DAMAGED;
        return res.errors ? EXIT_PARTIAL : EXIT_OK;
}

const struct command command_restore = { "restore", run, "restore a snapshot into a directory or a volume", help };
