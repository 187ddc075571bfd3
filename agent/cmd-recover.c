/* cmd-recover.c — berth recover: put back containers a crash left quiesced. */
#include "agent.h"

static const char help[] =
        "Usage: berth [-r REPO] recover\n"
        "\n"
        "Puts back every container that an interrupted or killed berth left paused or\n"
        "stopped, from the repository's quiesce journal: a paused container is\n"
        "unpaused, a stopped one started (a container that was already stopped before\n"
        "the backup was never touched, and stays stopped).  A container that compose\n"
        "recreated since is found by its project and service.  Takes the repository's\n"
        "exclusive lock, so it never interferes with a backup that is still running.\n"
        "Every berth command that opens the repository does this too; 'berth agent'\n"
        "does it when it starts.\n"
        "\n"
        "Options:\n"
        "      --json   {\"resumed\": N}\n"
        "  -h, --help   this help\n";

static int run(int argc, char **argv)
{
        int r = parse_options(argc, argv, NULL, NULL, NULL, NULL);
        if (r != OPT_DONE)
                return r;
        if (optind < argc)
                return usage_error("recover", "unexpected argument '%s'", argv[optind]);

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
        if (r < 0)
                return fail(r, "recover");
        if (settings.json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "resumed", json_object_new_int64(resumed));
                json_print(o);
        } else if (!settings.quiet)
                printf(resumed ? "put back %u container(s)\n" : "no container needed putting back\n", resumed);
        return EXIT_OK;
}

const struct command command_recover = { "recover", run, "put back containers a crash left quiesced", help };
