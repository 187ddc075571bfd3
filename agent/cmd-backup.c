/* cmd-backup.c — berth backup: back up a directory into a snapshot. */
#include <libgen.h>
#include <string.h>

#include "agent.h"

static const char help[] =
        "Usage: berth [-r REPO] backup --path DIR [--name NAME] [OPTIONS]\n"
        "\n"
        "Backs up DIR into a new snapshot of the series NAME (default: DIR's last\n"
        "component).  Files are cut into content-defined chunks; a chunk the repository\n"
        "already has is not stored again.  A file whose size, mtime, ctime and inode\n"
        "match the previous snapshot of NAME is reused without being read.\n"
        "\n"
        "The walk never follows symlinks or leaves DIR.  A file that changes while it\n"
        "is read is read again (up to 4 times), then stored as last read and marked\n"
        "inconsistent, with a warning.  An entry that cannot be read is skipped with a\n"
        "warning; the snapshot is then marked incomplete and the exit status is 3.\n"
        "The new snapshot's id is the last line of the output.\n"
        "\n"
        "Options:\n"
        "      --path DIR            directory to back up\n"
        "  -n, --name NAME           snapshot series name\n"
        "      --unchanged FIELDS    stat fields that must match for a file to be reused:\n"
        "                            a comma list of size,mtime,ctime,inode (default all;\n"
        "                            size and mtime are required)\n"
        "      --force-read          read every file, reuse nothing\n"
        "      --one-file-system     do not descend into other mounted filesystems\n"
        "      --parent SNAPSHOT     compare with this snapshot instead of NAME's newest\n"
        "      --host NAME           host name to record (default this host's)\n"
        "      --level N             zstd level for new chunks (default: the repository's)\n"
        "      --json                print the result as a JSON object\n"
        "  -h, --help                this help\n";

static int run(int argc, char **argv)
{
        static const struct option options[] = {
                GLOBAL_OPTIONS,
                { "path", required_argument, NULL, 1 },
                { "name", required_argument, NULL, 'n' },
                { "unchanged", required_argument, NULL, 2 },
                { "force-read", no_argument, NULL, 3 },
                { "one-file-system", no_argument, NULL, 4 },
                { "parent", required_argument, NULL, 5 },
                { "host", required_argument, NULL, 6 },
                { "level", required_argument, NULL, 7 },
                {},
        };
        struct backup_options o = {
                .events = { .warning = report_warning, .progress = progress_update, .cancel = &interrupted },
        };
        const char *unchanged = settings.unchanged;
        int c;

        while ((c = getopt_long(argc, argv, GLOBAL_SHORT "n:", options, NULL)) != -1) {
                int g = global_option(c, optarg);
                if (g < 0)
                        return EXIT_USAGE;
                if (g)
                        continue;
                switch (c) {
                case 'h':
                        return command_help("backup");
                case 1:
                        o.path = optarg;
                        break;
                case 'n':
                        o.name = optarg;
                        break;
                case 2:
                        unchanged = optarg;
                        break;
                case 3:
                        o.force_read = true;
                        break;
                case 4:
                        o.one_file_system = true;
                        break;
                case 5:
                        o.parent = optarg;
                        break;
                case 6:
                        o.host = optarg;
                        break;
                case 7:
                        settings.level = atoi(optarg);
                        if (settings.level < 1 || settings.level > 19)
                                return usage_error("backup", "--level must be 1..19");
                        break;
                default:
                        return usage_error("backup", "unknown option");
                }
        }
        if (optind < argc)
                return usage_error("backup", "unexpected argument '%s' (Docker volumes come in a later release; use --path)",
                                   argv[optind]);
        if (!o.path)
                return usage_error("backup", "give the directory to back up with --path DIR");
        if (unchanged && parse_unchanged_fields(unchanged, &o.unchanged) < 0)
                return usage_error("backup", "--unchanged: '%s' is not a list of size,mtime,ctime,inode including "
                                             "size and mtime", unchanged);

        _cleanup_free_ char *copy = xstrdup(o.path);
        if (!o.name) {
                char *b = basename(copy);
                o.name = strcmp(b, "/") == 0 || strcmp(b, ".") == 0 ? "root" : b;
        }
        if (strchr(o.name, '@') || !*o.name)
                return usage_error("backup", "a snapshot name cannot be empty or contain '@'");

        _cleanup_(repo_freep) struct repo *repo = NULL;
        int r = open_repo(REPO_WRITE, &repo);
        if (r < 0)
                return fail(r, "backup");

        struct backup_result res;
        progress_begin("backup:");
        r = snapshot_backup(repo, &o, &res);
        progress_end();
        if (r < 0)
                return fail(r, "backup");
        print_backup_result(o.path, o.name, &res);
        return res.complete ? EXIT_OK : EXIT_PARTIAL;
}

const struct command command_backup = { "backup", run, "back up a directory into a snapshot", help };
