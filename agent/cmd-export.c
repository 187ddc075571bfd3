/* cmd-export.c — berth export: a snapshot as a standard tar. */
#include <fcntl.h>
#include <string.h>

#include "agent.h"

static const char help[] =
        "Usage: berth [-r REPO] export SNAPSHOT [-o FILE] [--zstd] [--include PATH]...\n"
        "\n"
        "Writes SNAPSHOT as a pax tar that GNU tar and bsdtar read, to FILE or to stdout\n"
        "(a pipe or file; never a terminal).  It streams: nothing is staged on disk,\n"
        "so a snapshot larger than memory or free space exports to a pipe.  Paths are\n"
        "relative to the snapshot's top ('.' is the top itself); owners are numeric\n"
        "with names, mtimes have nanoseconds, xattrs and ACLs are SCHILY.* records,\n"
        "hard links stay links, sparse files are GNU sparse 1.0.\n"
        "\n"
        "To extract with everything: tar --xattrs --acls --numeric-owner -xpf FILE -C DIR\n"
        "(GNU tar), or bsdtar -xpf FILE -C DIR.\n"
        "\n"
        "Options:\n"
        "  -o, --output FILE    write to FILE (written to FILE.tmp, renamed when done);\n"
        "                       a name ending in .zst or .tzst implies --zstd\n"
        "      --zstd           compress the tar with zstd\n"
        "  -I, --include PATH   only PATH and what is under it (with its parent\n"
        "                       directories); repeatable\n"
        "  -h, --help           this help\n"
        "\n"
        "With -r ssh://...: the SSH options (-i/--identity KEYFILE, --known-hosts,\n"
        "--accept-new-host-key, --remote-berth) go before or after the command.\n";

static bool ends_with(const char *s, const char *suffix)
{
        size_t n = strlen(s), m = strlen(suffix);
        return n >= m && strcmp(s + n - m, suffix) == 0;
}

struct export_args {
        struct export_options o;
        const char **inc;
        const char *out;
};

static int option(int c, const char *arg, void *ud)
{
        struct export_args *a = ud;
        switch (c) {
        case 'o':
                a->out = arg;
                return OPT_DONE;
        case 1:
                a->o.zstd = true;
                return OPT_DONE;
        case 'I':
                a->inc[a->o.ninclude++] = arg;
                return OPT_DONE;
        default:
                return OPT_UNKNOWN;
        }
}

static int run(int argc, char **argv)
{
        static const struct option options[] = {
                GLOBAL_OPTIONS,
                { "output", required_argument, NULL, 'o' },
                { "zstd", no_argument, NULL, 1 },
                { "include", required_argument, NULL, 'I' },
                {},
        };
        struct export_args a = {
                .o = { .fd = STDOUT_FILENO, .events = { .progress = progress_update, .cancel = &interrupted } },
                .inc = xcalloc((size_t)argc + 1, sizeof *a.inc),
        };
        _cleanup_free_ const char **inc = a.inc;
        int pr = parse_options(argc, argv, "o:I:", options, option, &a);
        if (pr != OPT_DONE)
                return pr;
        struct export_options o = a.o;
        const char *out = a.out;
        o.include = inc;
        if (argc - optind != 1)
                return usage_error("export", "give one SNAPSHOT");
        if (!out && isatty(STDOUT_FILENO))
                return usage_error("export", "refusing to write a tar to a terminal; use -o FILE or a pipe");
        if (out && (ends_with(out, ".zst") || ends_with(out, ".tzst")))
                o.zstd = true;

        _cleanup_(repo_freep) struct repo *repo = NULL;
        struct catalog_snapshot s = { 0 };
        int r = open_repo(REPO_READ, &repo);
        if (r == 0)
                r = snapshot_resolve(repo, argv[optind], &s);
        if (r < 0)
                return fail(r, "export");

        _cleanup_free_ char *tmp = out ? xasprintf("%s.tmp", out) : NULL;
        if (out) {
                o.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (o.fd < 0) {
                        catalog_snapshot_clear(&s);
                        return fail(-errno, tmp);
                }
        }
        struct export_result res;
        progress_begin("export:");
        r = snapshot_export(repo, s.id, &o, &res);
        progress_end();
        if (out) {
                if (r == 0 && (fsync(o.fd) < 0 || close(o.fd) < 0))
                        r = error_set(errno, "cannot write %s: %s", tmp, strerror(errno));
                else if (r < 0)
                        close(o.fd);
                if (r == 0 && rename(tmp, out) < 0)
                        r = error_set(errno, "cannot rename %s: %s", tmp, strerror(errno));
                if (r < 0)
                        unlink(tmp);
        }
        if (r < 0) {
                catalog_snapshot_clear(&s);
                return fail(r, "export");
        }
        char b[32];
        _cleanup_free_ char *nm = escape_name(s.name, strlen(s.name));
        if (!settings.quiet && out)
                printf("exported snapshot %.12s (%s) to '%s': %llu files, %llu directories, %s\n", s.id, nm, out,
                       (unsigned long long)res.files, (unsigned long long)res.dirs, format_bytes(res.bytes, b, sizeof b));
        catalog_snapshot_clear(&s);
        return EXIT_OK;
}

const struct command command_export = { "export", run, "write a snapshot as a tar", help };
