/* agent.h — the program: shared pieces of the command implementations.
 *
 * agent/ decides what the user sees and the exit status; the modules below
 * it only return errors and report events.
 */
#ifndef BERTH_AGENT_H
#define BERTH_AGENT_H

#include <getopt.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>

#include "../snapshot/snapshot.h"

/* Exit statuses, documented in the README and `berth --help`. */
enum {
        EXIT_OK = 0,
        EXIT_FAILURE_ = 1,  /* the command failed; stderr says why */
        EXIT_USAGE = 2,     /* bad command line */
        EXIT_PARTIAL = 3,   /* finished, but some entries were skipped or not restored */
        EXIT_LOCKED = 4,    /* the repository is locked by another process */
        EXIT_DAMAGED = 5,   /* check found damaged or missing data */
};

/* Settings from defaults, /etc/berth/berth.conf, BERTH_* variables and
 * global flags, in that order. */
struct settings {
        char *repo;
        bool json;
        bool quiet;
        int level;             /* zstd level for new chunks, 0: repository default */
        uint64_t lock_wait;    /* seconds */
        char *unchanged;       /* "size,mtime,ctime,inode" */
        char *config_path;
        bool progress;         /* a progress line on stderr (a terminal) */
        int quiesce;           /* enum quiesce_action: the default policy (pause) */
        int hook_timeout;      /* seconds a berth.pre/berth.post hook may run */
        uint64_t docker_wait;  /* seconds to wait for an unreachable Docker daemon */
        bool no_auto_recover;  /* open_repo() leaves the quiesce journal alone */
        char *identity;        /* -i, --identity: SSH key file; NULL: agent, then ~/.ssh/id_* */
        char *known_hosts;     /* --known-hosts; NULL: ~/.ssh/known_hosts */
        bool accept_new_host_key;
        char *remote_berth;    /* --remote-berth: the far side's berth; NULL: "berth" */
        bool damaged;          /* opening the repository found damage (repo_damage()) */
        char *password_file;   /* --password-file: an encrypted repository's password */
        char *password_command; /* --password-command: run with /bin/sh -c, its first line */
        char *s3_access_key_file;  /* berth.conf: files holding S3 credentials (one line each) */
        char *s3_secret_key_file;
        char *s3_region;
        char *state_dir;       /* where this host keeps the repository's local state: the
                                * repository itself, or the cache of a remote one (open_repo) */
        /* berth agent (config keys of the same names; NULL: unset) */
        char *schedule;        /* default schedule of volumes covered without a berth.schedule label */
        char *keep;            /* default retention (berth.keep syntax) */
        char *volumes;         /* which unlabelled volumes: NULL/"labelled", "all", or NAME,NAME */
        char *prune_schedule;  /* NULL: weekly */
        char *metrics_file;    /* berth metrics --output FILE after each job */
        char *runtime_dir;     /* the control socket's directory; NULL: /run/berth ($BERTH_RUNTIME_DIR) */
};

extern struct settings settings;
extern volatile sig_atomic_t interrupted;

int settings_load(void);
/* Re-reads the configuration file's agent keys (schedule, keep, volumes,
 * prune_schedule, metrics_file; not runtime_dir) and log_level, for SIGHUP;
 * the rest stays as started.  check (may be NULL) then judges the new
 * values.  On error (said, by check too) the agent keys stay as they were. */
int settings_reload_agent(int (*check)(void));

/* Global options accepted by every command, before or after its name. */
#define GLOBAL_OPTIONS                                                   \
        { "repo", required_argument, NULL, 'r' },                        \
        { "json", no_argument, NULL, 0x1001 },                           \
        { "verbose", no_argument, NULL, 'v' },                           \
        { "quiet", no_argument, NULL, 'q' },                             \
        { "lock-wait", required_argument, NULL, 0x1002 },                \
        { "no-progress", no_argument, NULL, 0x1003 },                    \
        { "identity", required_argument, NULL, 0x1004 },                 \
        { "known-hosts", required_argument, NULL, 0x1005 },              \
        { "accept-new-host-key", no_argument, NULL, 0x1006 },            \
        { "remote-berth", required_argument, NULL, 0x1007 },             \
        { "password-file", required_argument, NULL, 0x1008 },            \
        { "password-command", required_argument, NULL, 0x1009 },         \
        { "help", no_argument, NULL, 'h' }
/* -i is --identity for every command (restore and export spell --include
 * -I), so it names the key before or after any command that reaches a host. */
#define GLOBAL_SHORT "r:vqhi:"

/* Handles a global option returned by getopt_long; returns 1 when it was
 * one, 0 when not, -1 on a bad value (after saying so). */
int global_option(int c, const char *arg);

/* password.c: an encrypted repository's password, from --password-file,
 * --password-command, BERTH_PASSWORD_FILE, $CREDENTIALS_DIRECTORY/berth-password,
 * BERTH_PASSWORD, then the terminal (twice when confirm).  The caller
 * frees *ret.  (repo_password_fn) */
int password_get(const char *where, bool confirm, char **ret);
/* While on: the password of the destination repository being opened
 * (copy --to, the far repository of migrate / restore --host), from
 * --to-password-file, --to-password-command (set here) or
 * $BERTH_TO_PASSWORD_FILE, else the usual sources. */
void password_set_destination(const char *file, const char *command);
void password_for_destination(bool on);
/* A new password: the first line of file, else asked twice on the terminal. */
int password_new(const char *file, char **ret);

enum { OPT_DONE = -1, OPT_UNKNOWN = -2 };
/* Parses a command's options (argv[0] is its name; opts must include
 * GLOBAL_OPTIONS, or be NULL when it has none of its own): global options
 * are applied, -h/--help prints the command's help, and each other option
 * goes to fn, which returns OPT_DONE to go on, OPT_UNKNOWN, or an exit
 * status to stop with.  Returns OPT_DONE when the arguments start at
 * optind, else the exit status to return. */
int parse_options(int argc, char **argv, const char *shortopts, const struct option *opts,
                  int (*fn)(int c, const char *arg, void *ud), void *ud);

struct command {
        const char *name;
        int (*run)(int argc, char **argv);
        const char *summary;
        const char *help;      /* full text for `berth CMD --help` */
};

const struct command *command_lookup(const char *name);

/* Prints `help` for a command to stdout; returns EXIT_OK. */
int command_help(const char *name);
/* Says "try 'berth CMD --help'" on stderr; returns EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints the failure of a library call (error_message() or strerror) and
 * maps it to an exit status. */
int fail(int err, const char *what);

/* Opens the repository named by settings.repo (creating it for a writer
 * when its directory is missing or empty; over SSH for ssh://user@host[:port]/path,
 * with a local cache, see transport/remote.h), then puts back containers an
 * interrupted run left quiesced. */
int open_repo(enum repo_mode mode, struct repo **ret);
/* Opens the repository at `where` (a directory, or ssh://[USER@]HOST[:PORT]/PATH)
 * as open_repo() does, creating a local one for a writer where nothing
 * lives, but leaves the quiesce journal alone; *ret_state_dir (freed and
 * replaced) is where its local state is kept.  For a second repository
 * (copy's destination). */
int open_repo_at(const char *where, enum repo_mode mode, char **ret_state_dir, struct repo **ret);
/* Opens repository `where` for its key only (REPO_OPEN_KEY_ONLY): the
 * configuration and, when encrypted, the master key; no lock, no catalog. */
int open_repo_key(const char *where, struct repo **ret);
/* Closes a repository a command wrote, with its catalog flushed to disk
 * (repo_close()).  When that fails, prints "DONE, but the catalog could not
 * record it on disk: WHY; check the disk", DONE being what the command
 * changed in the repository (printf format: "snapshot %s is forgotten"),
 * and returns EXIT_FAILURE_; else EXIT_OK.  NULL is EXIT_OK. */
int close_repo(struct repo *repo, const char *done, ...) __attribute__((format(printf, 2, 3)));
/* Whether settings.repo names a repository on another host (ssh://). */
bool repo_is_remote(void);
/* Whether it is one reached over SSH (ssh://), whose host runs maintenance. */
bool repo_is_ssh(void);
/* Opens s3://BUCKET/PREFIX?endpoint=... as a backend, with the credentials
 * of BERTH_S3_*, AWS_* or berth.conf's s3_*_key_file: 0, or -errno with a
 * one-line message. */
struct backend;
int open_s3_backend(const char *where, bool writable, struct backend **ret);
/* Resumes containers from open quiesce journal rows: all of this host's
 * when `all` (the caller holds the exclusive lock), else those whose owner
 * process is gone. */
int recover_containers(struct repo *repo, bool all, unsigned *ret_resumed);

/* Progress line on stderr, only when it is a terminal. */
void progress_begin(const char *verb);
/* What progress_update() counts in p->files: "files" unless set (copy: "chunks"). */
void progress_set_unit(const char *unit);
void progress_update(void *ud, const struct snapshot_progress *p);
void progress_end(void);
void report_warning(void *ud, const char *path, const char *msg);

/* Prints a JSON document to stdout with a newline, and frees it. */
void json_print(json_object *o);
json_object *json_snapshot(const struct catalog_snapshot *s);
char *format_duration(int64_t ns, char *buf, size_t size);
/* "drwxr-xr-x" for a file index type (ENTRY_*) and mode; out >= 11 bytes. */
void format_mode(uint8_t type, uint32_t mode, char out[11]);
/* Writes a name from a volume, archive or repository to stdout with
 * control characters and invalid UTF-8 escaped (escape_name()), so a name
 * cannot start a line of its own or drive the terminal. */
void print_name(const char *s, size_t n);
json_object *json_file(const struct catalog_file *f);
void print_backup_result(const char *source, const char *name, const struct backup_result *b);
json_object *json_backup_result(const char *source, const char *name, const struct backup_result *b);

/* What backup_volume() made. */
struct volume_backup_result {
        char id[2 * CATALOG_HASH_LEN + 1];  /* the new snapshot */
        uint64_t bytes, files;              /* the volume's size: file bytes, files */
        int64_t window_ns;                  /* how long containers were quiesced (0: none) */
        bool quiesced, two_phase, complete;
        char volume[256];                   /* the volume backed up */
};
/* Backs up Docker volume `name` into repo exactly as `berth backup NAME`
 * does (quiescing its containers per their labels, journaled, under
 * --max-window's default), with a two-phase copy when two_phase is 1,
 * never when 0, when quiescing when -1.  Shows progress but prints no
 * result (it is in *ret).  Returns 0, or -errno once the reason has been
 * said on stderr. */
int backup_volume(struct repo *repo, const char *name, int two_phase, struct volume_backup_result *ret);
/* Backs up the named volumes of container `container` into repo as
 * `berth backup --container NAME` does, all under one quiesce window
 * (anonymous volumes and bind mounts are left out, with a warning).
 * *ret (the caller frees) gets one result per volume, *ret_n of them.
 * Returns 0, or -errno once the reason has been said on stderr. */
int backup_container_volumes(struct repo *repo, const char *container, int two_phase,
                             struct volume_backup_result **ret, size_t *ret_n);

/* Writes the Prometheus text exposition of r's job history and size (see
 * `berth metrics --help`) to out.  0, or -errno from the catalog (nothing
 * is printed about it). */
int metrics_render(struct repo *r, FILE *out);
/* Whether a summary's newest backup succeeded (berth_last_run_success). */
bool metrics_last_run_ok(const struct catalog_job_summary *s);

/* cmd-prune.c, for forget --prune: the defaults of `berth prune` on the
 * repository settings.repo names; runs it with a progress line; the result
 * as JSON or printed. */
void prune_options_default(struct prune_options *o);
/* On s3://: the lease backend (*ret_lease, freed by the caller after the
 * prune) and, when o->grace is UINT64_MAX (not given), a day's grace; else
 * a grace of 0 when not given.  0 or -errno with a message. */
int prune_options_shared(struct prune_options *o, struct backend **ret_lease);
int prune_with_progress(const struct prune_options *o, struct prune_result *ret);
json_object *json_prune_result(const struct prune_options *o, const struct prune_result *p);
void print_prune_result(const struct prune_options *o, const struct prune_result *p);

extern const struct command command_init, command_backup, command_snapshots, command_restore, command_check,
        command_ls, command_find, command_diff, command_cat, command_export, command_import, command_catalog,
        command_volumes, command_recover, command_serve, command_copy, command_migrate, command_agent,
        command_status, command_run_now, command_metrics;

/* The agent's control socket: $runtime_dir/agent.sock (default /run/berth). */
char *control_socket_path(void);
/* Sends one request (a JSON object) to the running agent and returns its
 * answer in *ret.  -ENOENT/-ECONNREFUSED (said in error_message()) when no
 * agent runs. */
int control_request(json_object *req, json_object **ret);

extern const struct command command_forget;
extern const struct command command_tag;
extern const struct command command_prune;
extern const struct command command_key;

#endif
