/* cmd-import.c — berth import: a tar from any tool into a snapshot. */
#include <fcntl.h>
#include <string.h>

#include "agent.h"

static const char help[] =
        "Usage: berth [-r REPO] import --name NAME FILE|-\n"
        "\n"
        "Reads a tar (plain, .gz, .bz2, .xz or .zst; '-' for stdin) into a new snapshot\n"
        "of NAME, deduplicating against what the repository already holds.  Archives\n"
        "from other tools work, e.g. 'docker run --rm --volumes-from app -v $PWD:/b\n"
        "busybox tar czf /b/vol.tgz -C /data .'.\n"
        "\n"
        "Hostile entries are refused with a message naming the entry, and nothing is\n"
        "imported: absolute paths, '..', hard links to anything but an earlier regular\n"
        "file of the archive, and entries below anything that is not a directory\n"
        "(a symlink included).  Symlink targets are data and stored as they are,\n"
        "absolute or climbing: Berth never writes through a symlink.  Missing parent\n"
        "directories are created (mode 0755, owner root).  A path that appears twice\n"
        "keeps its last entry, as tar does, with a warning.  The new snapshot's id is\n"
        "the last line.\n"
        "\n"
        "Options:\n"
        "  -n, --name NAME                 snapshot series name\n"
        "      --host NAME                 host name to record (default this host's)\n"
        "      --json                      print the result as a JSON object\n"
        "  -h, --help                      this help\n";

static int option(int c, const char *arg, void *ud)
{
        struct import_options *o = ud;
        switch (c) {
        case 'n':
                o->name = arg;
                return OPT_DONE;
        case 1: /* --allow-absolute-symlinks: the default now, kept for old scripts */
                return OPT_DONE;
        case 2:
                o->host = arg;
                return OPT_DONE;
        default:
                return OPT_UNKNOWN;
        }
}

static int run(int argc, char **argv)
{
        static const struct option options[] = {
                GLOBAL_OPTIONS,
                { "name", required_argument, NULL, 'n' },
                { "allow-absolute-symlinks", no_argument, NULL, 1 },
                { "host", required_argument, NULL, 2 },
                {},
        };
        struct import_options o = {
                .events = { .warning = report_warning, .progress = progress_update, .cancel = &interrupted },
        };
        int pr = parse_options(argc, argv, "n:", options, option, &o);
        if (pr != OPT_DONE)
                return pr;
        if (argc - optind != 1)
                return usage_error("import", "give one FILE, or '-' for stdin");
        if (!o.name || !*o.name || strchr(o.name, '@'))
                return usage_error("import", "give the snapshot name with --name NAME (no '@')");
        const char *file = argv[optind];
        if (strcmp(file, "-") == 0) {
                if (isatty(STDIN_FILENO))
                        return usage_error("import", "refusing to read a tar from a terminal");
                o.fd = STDIN_FILENO;
                o.source = "stdin";
        } else {
                o.fd = open(file, O_RDONLY | O_CLOEXEC);
                if (o.fd < 0)
                        return fail(error_set(errno, "cannot open '%s': %s", file, strerror(errno)), "import");
                o.source = file;
        }

        _cleanup_(repo_freep) struct repo *repo = NULL;
        int r = open_repo(REPO_WRITE, &repo);
        struct backup_result res;
        if (r == 0) {
                progress_begin("import:");
                r = snapshot_import(repo, &o, &res);
                progress_end();
        }
        if (o.fd != STDIN_FILENO)
                close(o.fd);
        if (r < 0)
                return fail(r, "import");
        int status = close_repo(TAKE_PTR(repo), "snapshot %s is saved", res.id);
        print_backup_result(o.source, o.name, &res);
        return status;
}

const struct command command_import = { "import", run, "read a tar into a snapshot", help };
