/* main.c — settings, global options and the command dispatch table. */
#include <ctype.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <limits.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "agent.h"
#include "keyhand.h"
#include "quiesce.h"
#include "../transport/remote.h"
#include "../transport/s3.h"

struct settings settings;
volatile sig_atomic_t interrupted;

/* Replaces a setting's string with a copy of v. */
static void set_string(char **dst, const char *v)
{
        free(*dst);
        *dst = xstrdup(v);
}

static const struct command *const table[] = {
        &command_init, &command_backup, &command_volumes, &command_snapshots, &command_ls, &command_find,
        &command_diff, &command_restore, &command_cat, &command_export, &command_import, &command_check,
        &command_recover, &command_catalog, &command_serve, &command_copy, &command_migrate, &command_agent,
        &command_status, &command_run_now,
        &command_metrics,
        &command_forget,
        &command_tag,
        &command_prune,
        &command_key,
};

static const char main_help[] =
        "Usage: berth [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]\n"
        "\n"
        "Berth backs up directories and Docker volumes into a deduplicated, zstd-compressed\n"
        "repository with a SQLite catalog, and restores them.\n"
        "\n"
        "Commands:\n"
        "%s"
        "\n"
        "Global options (before or after the command):\n"
        "  -r, --repo PATH      repository directory (default $BERTH_REPO, then /var/lib/berth)\n"
        "      --json           machine-readable output on stdout\n"
        "  -v, --verbose        more log output (repeat for debug)\n"
        "  -q, --quiet          only errors and the command's result\n"
        "      --lock-wait SEC  wait up to SEC seconds for a repository another process holds\n"
        "      --no-progress    no progress line, even on a terminal\n"
        "\n"
        "  A repository on another host: -r ssh://[USER@]HOST[:PORT]/PATH; it is served there\n"
        "  by 'berth serve --stdio', and this host keeps a cache of its catalog.\n"
        "  A bucket of S3-compatible storage (Ceph RGW, AWS S3), shared by many hosts:\n"
        "  -r 's3://BUCKET[/PREFIX]?endpoint=URL[&region=R][&style=path|virtual][&insecure=1]',\n"
        "  credentials from BERTH_S3_* or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; a local cache too.\n"
        "  -i, --identity FILE  SSH private key (default: ssh-agent, then ~/.ssh/id_*)\n"
        "      --known-hosts FILE  host keys to check the server against (~/.ssh/known_hosts)\n"
        "      --accept-new-host-key  record an unknown host's key instead of refusing it\n"
        "      --remote-berth PATH  berth on the far side (default: berth, in its PATH)\n"
        "\n"
        "  An encrypted repository (berth init --encrypt) needs its password, taken from, in order:\n"
        "      --password-file FILE     the first line of FILE\n"
        "      --password-command CMD   the first line CMD prints (run with /bin/sh -c)\n"
        "  then $BERTH_PASSWORD_FILE, $CREDENTIALS_DIRECTORY/berth-password (systemd\n"
        "  LoadCredential=berth-password), $BERTH_PASSWORD (discouraged: other processes of\n"
        "  the same user can read the environment), then a prompt on the terminal.\n"
        "  -h, --help           this help, or a command's help after the command\n"
        "      --version        the version\n"
        "\n"
        "Configuration: built-in defaults, then /etc/berth/berth.conf (or $BERTH_CONFIG), then\n"
        "BERTH_REPO, BERTH_LEVEL, BERTH_LOCK_WAIT, BERTH_UNCHANGED, BERTH_QUIESCE, BERTH_DOCKER_WAIT,\n"
        "BERTH_LOG_LEVEL, BERTH_SSH_IDENTITY, BERTH_SSH_KNOWN_HOSTS, BERTH_REMOTE_BERTH,\n"
        "BERTH_CACHE_DIR (where remote repositories are cached), BERTH_RUNTIME_DIR (the agent's\n"
        "control socket), then flags.  Docker is reached\n"
        "at $DOCKER_HOST (default unix:///var/run/docker.sock).\n"
        "\n"
        "Exit status:\n"
        "  0  success\n"
        "  1  failure (stderr says what happened and what to do)\n"
        "  2  bad command line\n"
        "  3  finished, but some entries were skipped or not restored (listed as warnings)\n"
        "  4  the repository is locked by another process\n"
        "  5  check found damaged or missing data\n"
        "\n"
        "Run 'berth COMMAND --help' for a command's options.\n";

static int print_main_help(FILE *f)
{
        char list[8192] = "";
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                char line[160];
                snprintf(line, sizeof line, "  %-12s %s\n", table[i]->name, table[i]->summary);
                strncat(list, line, sizeof list - strlen(list) - 1);
        }
        fprintf(f, main_help, list);
        return f == stdout ? EXIT_OK : EXIT_USAGE;
}

const struct command *command_lookup(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (strcmp(table[i]->name, name) == 0)
                        return table[i];
        return NULL;
}

int command_help(const char *name)
{
        const struct command *c = command_lookup(name);
        if (!c)
                return print_main_help(stdout);
        fputs(c->help, stdout);
        return EXIT_OK;
}

int usage_error(const char *cmd, const char *fmt, ...)
{
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        fprintf(stderr, "berth%s%s: %s\nTry 'berth %s%s--help'.\n", cmd ? " " : "", cmd ? cmd : "", msg,
                cmd ? cmd : "", cmd ? " " : "");
        return EXIT_USAGE;
}

int fail(int err, const char *what)
{
        const char *m = error_message();
        progress_end();
        if (m)
                log_error("%s", m);
        else
                log_error("%s: %s", what, berth_strerror(err));
        switch (-err) {
        case BERTH_ELOCKED: return EXIT_LOCKED;
        /* What a damaged repository could not give: see open_remote_repo(). */
        case BERTH_ECORRUPT: return settings.damaged ? EXIT_DAMAGED : EXIT_FAILURE_;
        default: return EXIT_FAILURE_;
        }
}

int global_option(int c, const char *arg)
{
        switch (c) {
        case 'r':
                set_string(&settings.repo, arg);
                return 1;
        case 0x1001:
                settings.json = true;
                return 1;
        case 'v':
                log_set_level(log_get_level() < LOG_INFO ? LOG_INFO : LOG_DEBUG);
                return 1;
        case 'q':
                settings.quiet = true;
                log_set_level(LOG_ERR);
                return 1;
        case 0x1002:
                if (parse_duration(arg, &settings.lock_wait) < 0) {
                        log_error("--lock-wait: '%s' is not a number of seconds", arg);
                        return -1;
                }
                return 1;
        case 0x1003:
                settings.progress = false;
                return 1;
        case 'i':
        case 0x1004:
                set_string(&settings.identity, arg);
                return 1;
        case 0x1005:
                set_string(&settings.known_hosts, arg);
                return 1;
        case 0x1006:
                settings.accept_new_host_key = true;
                return 1;
        case 0x1007:
                set_string(&settings.remote_berth, arg);
                return 1;
        case 0x1008:
                set_string(&settings.password_file, arg);
                return 1;
        case 0x1009:
                set_string(&settings.password_command, arg);
                return 1;
        default:
                return 0;
        }
}

int parse_options(int argc, char **argv, const char *shortopts, const struct option *opts,
                  int (*fn)(int c, const char *arg, void *ud), void *ud)
{
        static const struct option global_only[] = { GLOBAL_OPTIONS, {} };
        char all_short[64];
        int c;

        snprintf(all_short, sizeof all_short, "%s%s", GLOBAL_SHORT, shortopts ? shortopts : "");
        while ((c = getopt_long(argc, argv, all_short, opts ? opts : global_only, NULL)) != -1) {
                /* -i was --include for restore and export: a name that is
                 * no file is that habit, not a key. */
                if (c == 'i' && shortopts && strchr(shortopts, 'I') && access(optarg, F_OK) < 0)
                        return usage_error(argv[0], "-i is --identity (an SSH key file); for --include use -I");
                int g = global_option(c, optarg);
                if (g < 0)
                        return EXIT_USAGE;
                if (g)
                        continue;
                if (c == 'h')
                        return command_help(argv[0]);
                int r = fn && c != '?' && c != ':' ? fn(c, optarg, ud) : OPT_UNKNOWN;
                if (r == OPT_UNKNOWN)
                        return usage_error(argv[0], "unknown option");
                if (r >= 0)
                        return r;
        }
        return OPT_DONE;
}

/* set_string(), except that an empty value unsets the field. */
static void set_optional(char **field, const char *v)
{
        if (*v) {
                set_string(field, v);
                return;
        }
        free(*field);
        *field = NULL;
}

/* The agent's keys: 1 when k is one of them.  Their values are the
 * agent's to check (other commands ignore them, so a typo there never
 * stops a backup). */
static int agent_setting(const char *k, const char *v)
{
        if (strcmp(k, "schedule") == 0)
                set_optional(&settings.schedule, v);
        else if (strcmp(k, "prune_schedule") == 0)
                set_optional(&settings.prune_schedule, v);
        else if (strcmp(k, "keep") == 0)
                set_optional(&settings.keep, v);
        else if (strcmp(k, "volumes") == 0)
                set_optional(&settings.volumes, v);
        else if (strcmp(k, "metrics_file") == 0)
                set_optional(&settings.metrics_file, v);
        else if (strcmp(k, "runtime_dir") == 0)
                set_optional(&settings.runtime_dir, v);
        else
                return 0;
        return 1;
}

/* Reads KEY = VALUE lines; '#' starts a comment.  Unknown keys are an
 * error, so a typo does not silently fall back to a default.  agent_only:
 * only the agent's keys (and log_level) are applied, for a reload. */
static int load_config_file(const char *path, bool required, bool agent_only)
{
        FILE *f = fopen(path, "re");
        if (!f) {
                if (errno == ENOENT && !required)
                        return 0;
                return log_error_errno(errno, "cannot read %s", path);
        }
        char line[4096];
        int lineno = 0, r = 0;
        while (fgets(line, sizeof line, f)) {
                lineno++;
                char *p = line, *hash = strchr(line, '#');
                if (hash)
                        *hash = 0;
                while (isspace((unsigned char)*p))
                        p++;
                if (!*p)
                        continue;
                char *eq = strchr(p, '=');
                if (!eq) {
                        r = log_error("%s:%d: expected KEY = VALUE", path, lineno);
                        break;
                }
                char *k = p, *v = eq + 1;
                char *e = eq;
                while (e > k && isspace((unsigned char)e[-1]))
                        e--;
                *e = 0;
                while (isspace((unsigned char)*v))
                        v++;
                e = v + strlen(v);
                while (e > v && isspace((unsigned char)e[-1]))
                        e--;
                *e = 0;
                int ak = agent_setting(k, v);
                if (ak > 0 || (agent_only && strcmp(k, "log_level") != 0))
                        continue;
                if (strcmp(k, "repo") == 0) {
                        set_string(&settings.repo, v);
                } else if (strcmp(k, "level") == 0)
                        settings.level = atoi(v);
                else if (strcmp(k, "lock_wait") == 0) {
                        if (parse_duration(v, &settings.lock_wait) < 0)
                                r = log_error("%s:%d: lock_wait: not a duration", path, lineno);
                } else if (strcmp(k, "unchanged") == 0) {
                        set_string(&settings.unchanged, v);
                } else if (strcmp(k, "quiesce") == 0) {
                        enum quiesce_action a;
                        if (quiesce_parse(v, &a) < 0)
                                r = log_error("%s:%d: quiesce: use pause, stop or none", path, lineno);
                        else
                                settings.quiesce = (int)a;
                } else if (strcmp(k, "hook_timeout") == 0 || strcmp(k, "docker_wait") == 0) {
                        uint64_t secs;
                        if (parse_duration(v, &secs) < 0)
                                r = log_error("%s:%d: %s: not a duration", path, lineno, k);
                        else if (k[0] == 'h')
                                settings.hook_timeout = (int)secs;
                        else
                                settings.docker_wait = secs;
                } else if (strcmp(k, "s3_access_key_file") == 0 || strcmp(k, "s3_secret_key_file") == 0 ||
                           strcmp(k, "s3_region") == 0) {
                        char **dst = k[3] == 'a' ? &settings.s3_access_key_file
                                     : k[3] == 's' ? &settings.s3_secret_key_file : &settings.s3_region;
                        free(*dst);
                        *dst = xstrdup(v);
                } else if (strcmp(k, "log_level") == 0) {
                        int l = log_level_from_string(v);
                        if (l < 0)
                                r = log_error("%s:%d: log_level: use error, warning, notice, info or debug", path,
                                              lineno);
                        else
                                log_set_level(l);
                } else
                        r = log_error("%s:%d: unknown setting '%s'", path, lineno, k);
                if (r < 0)
                        break;
        }
        fclose(f);
        return r;
}

int settings_load(void)
{
        const char *e;
        int r;

        settings.repo = xstrdup("/var/lib/berth");
        settings.progress = isatty(STDERR_FILENO);
        settings.quiesce = QUIESCE_PAUSE;
        settings.hook_timeout = 300;
        settings.docker_wait = 10;
        e = getenv("BERTH_CONFIG");
        settings.config_path = xstrdup(e ? e : "/etc/berth/berth.conf");
        r = load_config_file(settings.config_path, e != NULL, false);
        if (r < 0)
                return r;
        if ((e = getenv("BERTH_RUNTIME_DIR")) && *e)
                set_string(&settings.runtime_dir, e);
        if ((e = getenv("BERTH_REPO")) && *e) {
                set_string(&settings.repo, e);
        }
        if ((e = getenv("BERTH_LEVEL")) && *e)
                settings.level = atoi(e);
        if ((e = getenv("BERTH_LOCK_WAIT")) && *e && parse_duration(e, &settings.lock_wait) < 0)
                return log_error("BERTH_LOCK_WAIT: '%s' is not a number of seconds", e);
        if ((e = getenv("BERTH_DOCKER_WAIT")) && *e && parse_duration(e, &settings.docker_wait) < 0)
                return log_error("BERTH_DOCKER_WAIT: '%s' is not a number of seconds", e);
        if ((e = getenv("BERTH_QUIESCE")) && *e) {
                enum quiesce_action a;
                if (quiesce_parse(e, &a) < 0)
                        return log_error("BERTH_QUIESCE: use pause, stop or none");
                settings.quiesce = (int)a;
        }
        if ((e = getenv("BERTH_SSH_IDENTITY")) && *e)
                settings.identity = xstrdup(e);
        if ((e = getenv("BERTH_SSH_KNOWN_HOSTS")) && *e)
                settings.known_hosts = xstrdup(e);
        if ((e = getenv("BERTH_REMOTE_BERTH")) && *e)
                settings.remote_berth = xstrdup(e);
        if ((e = getenv("BERTH_UNCHANGED")) && *e) {
                set_string(&settings.unchanged, e);
        }
        return 0;
}

int settings_reload_agent(int (*check)(void))
{
        struct settings saved = settings;
        settings.schedule = settings.keep = settings.volumes = settings.prune_schedule = settings.metrics_file = NULL;
        settings.runtime_dir = NULL;
        int r = load_config_file(settings.config_path, false, true);
        if (r == 0 && check)
                r = check();
        if (r < 0) {
                /* keep what worked */
                free(settings.schedule), free(settings.keep), free(settings.volumes);
                free(settings.prune_schedule), free(settings.metrics_file), free(settings.runtime_dir);
                settings = saved;
                return r;
        }
        /* the socket stays where it is */
        free(settings.runtime_dir);
        settings.runtime_dir = saved.runtime_dir;
        free(saved.schedule), free(saved.keep), free(saved.volumes);
        free(saved.prune_schedule), free(saved.metrics_file);
        return 0;
}

/* True when path does not exist or is an empty directory. */
static bool missing_or_empty(const char *path)
{
        int r = dir_empty(path);
        return r == 1 || r == -ENOENT;
}

static bool url_is_remote(const char *where)
{
        return strncmp(where, "ssh://", 6) == 0 || s3_url_is(where);
}

bool repo_is_remote(void)
{
        return url_is_remote(settings.repo);
}

bool repo_is_ssh(void)
{
        return strncmp(settings.repo, "ssh://", 6) == 0;
}


static int open_remote_repo(const char *where, enum repo_mode mode, unsigned flags, char **ret_state_dir,
                            struct repo **ret)
{
        _cleanup_(ssh_destination_clear) struct ssh_destination d = { 0 };
        int r = ssh_parse_destination(where, &d);
        if (r < 0)
                return r;
        if (!d.path || !*d.path)
                return error_set(EINVAL, "%s names no repository directory: use ssh://[USER@]HOST[:PORT]/PATH",
                                 where);
        struct ssh_options o = {
                .user = d.user,
                .host = d.host,
                .port = d.port,
                .identity_file = settings.identity,
                .known_hosts = settings.known_hosts,
                .accept_new_host_key = settings.accept_new_host_key,
        };
        struct ssh_session *s;
        r = ssh_connect(&o, &s);
        if (r < 0)
                return r;
        struct remote_options ro = {
                .remote_berth = settings.remote_berth,
                .path = d.path,
                .mode = mode,
                .lock_wait = (unsigned)MIN(settings.lock_wait, (uint64_t)UINT_MAX),
                .where = where,
        };
        struct backend *be;
        r = backend_ssh_open(s, &ro, &be);
        if (r < 0)
                return r;
        free(*ret_state_dir);
        *ret_state_dir = repo_cache_dir(backend_ssh_repo_id(be));
        r = repo_open_backend_flags(be, *ret_state_dir, mode, settings.lock_wait, flags, ret);
        if (r < 0)
                return r;
        const char *const *damage;
        size_t n = repo_damage(*ret, &damage);
        for (size_t i = 0; i < n; i++)
                log_warning("%s", damage[i]);
        settings.damaged = settings.damaged || n > 0;
        return 0;
}

/* The first set of BERTH_S3_<name> and <name>. */
static const char *s3_env(const char *name)
{
        _cleanup_free_ char *own = xasprintf("BERTH_S3_%s", name + (strncmp(name, "AWS_", 4) == 0 ? 4 : 0));
        const char *e = getenv(own);
        if (e && *e)
                return e;
        e = getenv(name);
        return e && *e ? e : NULL;
}

/* The first line of file `path` (a key file of berth.conf), or NULL with a
 * message. */
static char *key_file(const char *path, const char *what)
{
        struct buf b = { 0 };
        int r = read_file_at(AT_FDCWD, path, 4096, &b);
        if (r < 0) {
                error_set(r, "cannot read the S3 %s file %s: %s", what, path, berth_strerror(r));
                return NULL;
        }
        buf_putc(&b, 0);
        char *s = (char *)b.data;
        s[strcspn(s, "\r\n")] = 0;
        return s;
}

int open_s3_backend(const char *where, bool writable, struct backend **ret)
{
        _cleanup_(s3_url_clear) struct s3_url u = { 0 };
        int r = s3_url_parse(where, &u);
        if (r < 0)
                return r;
        if (!u.region) {
                const char *e = s3_env("AWS_REGION");
                if (!e)
                        e = s3_env("AWS_DEFAULT_REGION");
                if (!e)
                        e = settings.s3_region;
                u.region = e ? xstrdup(e) : NULL;
        }
        _cleanup_free_ char *ak = NULL, *sk = NULL;
        const char *access = s3_env("AWS_ACCESS_KEY_ID"), *secret = s3_env("AWS_SECRET_ACCESS_KEY");
        if (!access && settings.s3_access_key_file && !(access = ak = key_file(settings.s3_access_key_file, "access key")))
                return -EACCES;
        if (!secret && settings.s3_secret_key_file && !(secret = sk = key_file(settings.s3_secret_key_file, "secret key")))
                return -EACCES;
        struct s3_credentials c = { .access_key = access, .secret_key = secret,
                                    .session_token = s3_env("AWS_SESSION_TOKEN") };
        r = backend_s3_open(&u, &c, writable, where, ret);
        if (sk)
                explicit_bzero(sk, strlen(sk));
        return r;
}

/* A bucket prefix: its objects through backend-s3.c, a local cache of its
 * catalog under repo_cache_dir("s3-<hash of endpoint, bucket, prefix>"). */
static int open_s3_repo(const char *where, enum repo_mode mode, unsigned flags, char **ret_state_dir,
                        struct repo **ret)
{
        struct backend *be;
        int r = open_s3_backend(where, mode != REPO_READ, &be);
        if (r < 0)
                return r;
        _cleanup_(s3_url_clear) struct s3_url u = { 0 };
        s3_url_parse(where, &u);
        _cleanup_free_ char *key = xasprintf("%s\n%s\n%s", u.endpoint ? u.endpoint : "", u.bucket, u.prefix);
        uint8_t d[32];
        char id[3 + 32 + 1] = "s3-";
        EVP_Digest(key, strlen(key), d, NULL, EVP_sha256(), NULL);
        hex_encode(d, 16, id + 3);
        free(*ret_state_dir);
        *ret_state_dir = repo_cache_dir(id);
        return repo_open_backend_flags(be, *ret_state_dir, mode, settings.lock_wait, flags, ret);
}

int open_repo_key(const char *where, struct repo **ret)
{
        _cleanup_free_ char *state = NULL;
        if (s3_url_is(where))
                return open_s3_repo(where, REPO_READ, REPO_OPEN_KEY_ONLY, &state, ret);
        if (url_is_remote(where))
                return open_remote_repo(where, REPO_READ, REPO_OPEN_KEY_ONLY, &state, ret);
        return repo_open_flags(where, REPO_READ, 0, REPO_OPEN_KEY_ONLY, ret);
}

int open_repo_at(const char *where, enum repo_mode mode, char **ret_state_dir, struct repo **ret)
{
        if (s3_url_is(where))
                return open_s3_repo(where, mode, 0, ret_state_dir, ret);
        if (url_is_remote(where))
                return open_remote_repo(where, mode, 0, ret_state_dir, ret);
        free(*ret_state_dir);
        *ret_state_dir = xstrdup(where);
        /* A writer creates the repository on first use, so a timer on a
         * new host just works; only where nothing else lives. */
        if (mode == REPO_WRITE && missing_or_empty(where)) {
                struct repo_init_options o = { .level = settings.level };
                int r = repo_init(where, &o);
                if (r < 0)
                        return r;
                log_notice("created repository at %s", where);
        }
        int r = repo_open(where, mode, settings.lock_wait, ret);
        if (r < 0)
                return r;
        if (repo_encrypted(*ret)) {
                /* Its local state lives in the cache, as its catalog does. */
                free(*ret_state_dir);
                *ret_state_dir = repo_cache_dir(repo_id(*ret));
        }
        if (settings.level)
                repo_set_level(*ret, settings.level);
        uint64_t packs, snaps;
        repo_recovered(*ret, &packs, &snaps);
        if ((packs || snaps) && repo_encrypted(*ret))
                log_info("brought the local catalog cache up to date: indexed %llu pack(s) and %llu snapshot(s)",
                         (unsigned long long)packs, (unsigned long long)snaps);
        else if (packs || snaps)
                log_notice("repaired what an interrupted run left: indexed %llu pack(s) and %llu snapshot(s)",
                           (unsigned long long)packs, (unsigned long long)snaps);
        return 0;
}

int open_repo(enum repo_mode mode, struct repo **ret)
{
        if (repo_is_remote()) {
                int r = open_repo_at(settings.repo, mode, &settings.state_dir, ret);
                if (r < 0)
                        return r;
                if (!settings.no_auto_recover)
                        recover_containers(*ret, false, NULL);
                return 0;
        }
        int r = open_repo_at(settings.repo, mode, &settings.state_dir, ret);
        if (r < 0)
                return r;
        /* Only what dead processes left: readers and writers run side by
         * side, and a live one (a restore --force, another backup) puts
         * back its own containers.  `berth recover` takes them all. */
        if (!settings.no_auto_recover)
                recover_containers(*ret, false, NULL);
        return 0;
}

int close_repo(struct repo *repo, const char *done, ...)
{
        int r = repo_close(repo);
        if (r == 0)
                return EXIT_OK;
        va_list ap;
        va_start(ap, done);
        _cleanup_free_ char *what = xvasprintf(done, ap);
        va_end(ap);
        progress_end();
        log_error("%s, but the catalog could not record it on disk: %s", what,
                  error_message() ? error_message() : berth_strerror(r));
        return EXIT_FAILURE_;
}

int recover_containers(struct repo *repo, bool all, unsigned *ret_resumed)
{
        struct catalog_quiesce *rows;
        size_t n;
        int r = catalog_quiesce_open(repo_catalog(repo), &rows, &n);
        if (r < 0)
                return r;
        catalog_quiesce_list_free(rows, n);
        if (ret_resumed)
                *ret_resumed = 0;
        if (n == 0)
                return 0;
        /* A crashed run left containers paused or stopped: put them back
         * before anything else. */
        struct docker *d;
        r = docker_open(settings.docker_wait, &d);
        if (r < 0)
                return log_warning("the quiesce journal lists containers an interrupted berth may have left paused or "
                                   "stopped, but Docker is not reachable (%s); run 'berth recover' when it is",
                                   error_message());
        r = quiesce_recover(d, repo_catalog(repo), all, ret_resumed);
        docker_free(d);
        return r;
}

static void on_signal(int sig)
{
        if (interrupted) {
                /* A second Ctrl-C: the user insists. */
                signal(sig, SIG_DFL);
                raise(sig);
        }
        interrupted = sig;
}

static void raise_fd_limit(void)
{
        /* Deep trees hold one directory fd per level. */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
                GLOBAL_OPTIONS,
                { "version", no_argument, NULL, 0x1100 },
                {},
        };
        int c;

        log_open("berth");
        keyhand_receive();
        repo_set_password_source(password_get);
        if (settings_load() < 0)
                return EXIT_FAILURE_;
        raise_fd_limit();

        struct sigaction sa = { .sa_handler = on_signal };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);

        /* '+': stop at the command name; its options are its own. */
        while ((c = getopt_long(argc, argv, "+" GLOBAL_SHORT, options, NULL)) != -1) {
                if (c == 'h')
                        return print_main_help(stdout);
                if (c == 0x1100) {
                        printf("berth %s\n", BERTH_VERSION);
                        return EXIT_OK;
                }
                int r = global_option(c, optarg);
                if (r < 0)
                        return EXIT_USAGE;
                if (r == 0)
                        return usage_error(NULL, "unknown option");
        }
        if (optind >= argc)
                return print_main_help(stderr);

        const char *name = argv[optind];
        if (strcmp(name, "help") == 0)
                return optind + 1 < argc ? command_help(argv[optind + 1]) : print_main_help(stdout);
        if (strcmp(name, "version") == 0) {
                printf("berth %s\n", BERTH_VERSION);
                return EXIT_OK;
        }
        const struct command *cmd = command_lookup(name);
        if (!cmd)
                return usage_error(NULL, "unknown command '%s'", name);

        /* The command sees argv from its name on; optind = 0 makes getopt
         * start over (from index 1) with its state reset. */
        int first = optind;
        optind = 0;
        return cmd->run(argc - first, argv + first);
}
