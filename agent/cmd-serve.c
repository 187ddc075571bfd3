/* cmd-serve.c — berth serve --stdio: the far end of a remote repository. */
#include <fcntl.h>
#include <unistd.h>

#include "../transport/serve.h"
#include "agent.h"

static const char help[] =
        "Usage: berth serve --stdio [--restrict-to-path DIR]... [--append-only]\n"
        "\n"
        "Serves repositories on this host to one Berth client over stdin and stdout,\n"
        "with Berth's framed wire protocol (transport/protocol.h).  A client runs it\n"
        "through SSH ('berth -r ssh://user@host/path ...' runs 'berth serve --stdio' on\n"
        "host); it is not meant to be run by hand.  The client opens one existing\n"
        "repository (serve never creates one), then reads and stores its objects:\n"
        "the config, packs and snapshot files.  catalog.db, the lock and the spool\n"
        "directory are never reachable.\n"
        "\n"
        "The client is not trusted.  Every frame is bounded (16 MiB + 64 KiB); an\n"
        "upload is received into the repository's tmp/ directory and becomes visible\n"
        "only after its size and SHA-256 match and, for a pack, after every chunk's\n"
        "bytes were checked against its id; an existing object is never replaced.\n"
        "Nothing outside the repository is written.  A client that breaks the\n"
        "protocol gets an error frame and the connection ends.\n"
        "\n"
        "For a forced command in ~/.ssh/authorized_keys, e.g.\n"
        "  command=\"berth serve --stdio --restrict-to-path /srv/berth --append-only\",restrict ssh-ed25519 AAAA...\n"
        "\n"
        "Options:\n"
        "      --stdio                  speak the protocol on stdin/stdout (required)\n"
        "      --restrict-to-path DIR   open only repositories at or beneath DIR, after\n"
        "                               resolving symlinks and '..' (repeatable: any of\n"
        "                               the DIRs); others are refused (EACCES)\n"
        "      --append-only            refuse deletions, maintenance opens, and uploads\n"
        "                               that would change an existing object (EPERM); an\n"
        "                               identical re-upload is accepted\n"
        "  -v, --verbose                more log output on stderr (-vv: every request)\n"
        "  -h, --help                   this help\n"
        "\n"
        "Nothing but protocol frames is ever written to stdout; messages go to stderr.\n"
        "\n"
        "Exit status:\n"
        "  0  the client said BYE or closed the connection between frames\n"
        "  1  the client broke the protocol, the connection failed, or a DIR does\n"
        "     not exist\n"
        "  2  bad command line\n";

struct serve_args {
        bool stdio;
        bool append_only;
        const char **dirs;
        size_t ndirs;
};

static int option(int c, const char *arg, void *ud)
{
        struct serve_args *a = ud;
        switch (c) {
        case 1: a->stdio = true; return OPT_DONE;
        case 2:
                a->dirs = xrealloc(a->dirs, (a->ndirs + 1) * sizeof *a->dirs);
                a->dirs[a->ndirs++] = arg;
                return OPT_DONE;
        case 3: a->append_only = true; return OPT_DONE;
        default: return OPT_UNKNOWN;
        }
}

static int run(int argc, char **argv)
{
        static const struct option options[] = {
                GLOBAL_OPTIONS,
                { "stdio", no_argument, NULL, 1 },
                { "restrict-to-path", required_argument, NULL, 2 },
                { "append-only", no_argument, NULL, 3 },
                {},
        };
        struct serve_args a = { 0 };
        int r = parse_options(argc, argv, NULL, options, option, &a);
        _cleanup_free_ const char **dirs = a.dirs;
        if (r != OPT_DONE)
                return r;
        if (optind < argc)
                return usage_error("serve", "unexpected argument '%s'", argv[optind]);
        if (!a.stdio)
                return usage_error("serve", "--stdio is required (the only way to serve for now)");

        /* stdout carries frames only: keep it for the wire and point fd 1 at
         * stderr, so that nothing printed by mistake can corrupt a frame. */
        int out = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
        if (out < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
                return fail(-errno, "serve");
        struct wire_io io;
        wire_io_fd(&io, STDIN_FILENO, out);
        struct serve_options o = {
                .restrict_to = a.dirs,
                .nrestrict = a.ndirs,
                .append_only = a.append_only,
                .software_version = "berth " BERTH_VERSION,
        };
        r = serve_run(&o, &io);
        close(out);
        if (r < 0)
                return fail(r, "serve");
        return EXIT_OK;
}

const struct command command_serve = { "serve", run, "serve repositories to a client over stdin/stdout (SSH)", help };
