/* cmd-recover.c — berth recover: put back containers a crash left quiesced. */
#include <string.h>

#include "agent.h"
#include "quiesce.h"

static const char help[] =
        "Usage: berth [-r REPO] recover\n"
        "\n"
        "Puts back every container that an interrupted or killed berth left paused or\n"
        "stopped, from the repository's quiesce journal: a paused container is\n"
        "unpaused, a stopped one started (a container that was already stopped before\n"
        "the backup was never touched, and stays stopped).  A container that compose\n"
        "recreated since is found by its project and service.  Only rows this host's\n"
        "berth wrote are acted on (each is signed with a key kept in $BERTH_STATE_DIR,\n"
        "default /var/lib/berth); others are ignored with a warning.\n"
        "\n"
        "When another berth holds the repository (a backup that hangs or was stopped\n"
        "while containers were quiesced), recover does not wait for it: it uses the\n"
        "journal's own lock and puts back that backup's containers too, and that\n"
        "backup then fails instead of recording a snapshot.  Every berth command that\n"
        "opens the repository puts back what a dead berth left; 'berth agent' does it\n"
        "when it starts.\n"
        "\n"
        "On s3:// the journal is this host's, kept in its local cache of the bucket\n"
        "($BERTH_CACHE_DIR): recover puts back what this host's runs left.  Other\n"
        "hosts run it themselves.\n"
        "\n"
        "Options:\n"
        "      --json   {\"resumed\": N}\n"
        "  -h, --help   this help\n";

/* Where the catalog (and so the quiesce journal) of the local repository
 * lives: beside it, or, for an encrypted one, in this host's cache
 * (repo_cache_dir()).  Read from its config without the key: a reader's
 * keyless open, which the writer holding the repository does not block. */
static char *catalog_of_repo(void)
{
        struct repo *r = NULL;
        char *path = NULL;
        if (repo_open_flags(settings.repo, REPO_READ, 0, REPO_OPEN_KEYLESS, &r) == 0 && repo_encrypted(r)) {
                _cleanup_free_ char *dir = repo_cache_dir(repo_id(r));
                path = xasprintf("%s/catalog.db", dir);
        }
        repo_free(r);
        error_clear();
        return path ? path : xasprintf("%s/catalog.db", settings.repo);
}

/* The repository is locked by another berth: work on the quiesce journal
 * alone, under its own lock (SQLite lets us write next to the holder). */
static int recover_locked(unsigned *ret_resumed)
{
        log_notice("%s; putting back containers from the quiesce journal without waiting", error_message());
        error_clear();
        _cleanup_free_ char *path = catalog_of_repo();
        _cleanup_(catalog_freep) struct catalog *cat = NULL;
        _cleanup_(docker_freep) struct docker *d = NULL;
        struct catalog_quiesce *rows;
        size_t n;
        int r = catalog_open(path, false, &cat);
        if (r == 0)
                r = catalog_quiesce_open(cat, &rows, &n);
        if (r < 0)
                return r;
        catalog_quiesce_list_free(rows, n);
        *ret_resumed = 0;
        if (n == 0)
                return 0;
        r = docker_open(settings.docker_wait, &d);
        if (r < 0)
                return r;
        return quiesce_recover(d, cat, true, ret_resumed);
}

/* What recover did: the count of containers put back. */
static int print_resumed(unsigned resumed)
{
        if (settings.json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "resumed", json_object_new_int64(resumed));
                json_print(o);
        } else if (!settings.quiet)
                printf(resumed ? "put back %u container(s)\n" : "no container needed putting back\n", resumed);
        return EXIT_OK;
}

/* ---- s3:// ---------------------------------------------------------------------- */

/* A repository in a bucket: its writer lock and quiesce journal are this
 * host's, in the local cache (the bucket holds neither).  The journal is
 * read there; when another berth on this host holds the cache, from the
 * journal alone, as for a local repository. */
static int recover_s3(void)
{
        _cleanup_(repo_freep) struct repo *repo = NULL;
        settings.no_auto_recover = true;
        unsigned resumed = 0;
        int r = open_repo(REPO_WRITE, &repo);
        if (r == 0)
                r = recover_containers(repo, true, &resumed);
        else if (r == -BERTH_ELOCKED && settings.state_dir) {
                log_notice("%s; putting back containers from this host's quiesce journal without waiting",
                           error_message());
                error_clear();
                _cleanup_free_ char *path = xasprintf("%s/catalog.db", settings.state_dir);
                _cleanup_(catalog_freep) struct catalog *cat = NULL;
                _cleanup_(docker_freep) struct docker *d = NULL;
                struct catalog_quiesce *rows;
                size_t n = 0;
                r = catalog_open(path, false, &cat);
                if (r == 0)
                        r = catalog_quiesce_open(cat, &rows, &n);
                if (r == 0)
                        catalog_quiesce_list_free(rows, n);
                if (r == 0 && n > 0 && (r = docker_open(settings.docker_wait, &d)) == 0)
                        r = quiesce_recover(d, cat, true, &resumed);
        }
        if (r < 0)
                return fail(r, "recover");
        int status = close_repo(TAKE_PTR(repo), "recover put back %u container(s)", resumed);
        r = print_resumed(resumed);
        return status != EXIT_OK ? status : r;
}

static int run(int argc, char **argv)
{
        int r = parse_options(argc, argv, NULL, NULL, NULL, NULL);
        if (r != OPT_DONE)
                return r;
        if (optind < argc)
                return usage_error("recover", "unexpected argument '%s'", argv[optind]);

        /* s3://: the quiesce journal of this host's runs is in this
         * host's cache of the bucket; see recover_s3(). */
        if (strncmp(settings.repo, "s3://", 5) == 0)
                return recover_s3();
        if (repo_is_remote())
                return usage_error("recover", "%s is on another host: 'berth recover' works on a local "
                                   "repository (the quiesce journal of this host's runs)", settings.repo);
        _cleanup_free_ char *config = xasprintf("%s/config", settings.repo);
        if (access(config, F_OK) < 0) {
                if (!settings.quiet && !settings.json)
                        printf("no repository at %s: nothing to put back\n", settings.repo);
                if (settings.json)
                        puts("{ \"resumed\": 0 }");
                return EXIT_OK;
        }
        _cleanup_(repo_freep) struct repo *repo = NULL;
        settings.no_auto_recover = true;
        r = open_repo(REPO_WRITE, &repo);
        unsigned resumed = 0;
        if (r == 0)
                r = recover_containers(repo, true, &resumed);
        else if (r == -BERTH_ELOCKED)
                r = recover_locked(&resumed);
        if (r < 0)
                return fail(r, "recover");
        int status = close_repo(TAKE_PTR(repo), "recover put back %u container(s)", resumed);
        r = print_resumed(resumed);
        return status != EXIT_OK ? status : r;
}

const struct command command_recover = { "recover", run, "put back containers a crash left quiesced", help };
