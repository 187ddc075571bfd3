/* ssh-probe — drives transport/ssh.c from the end-to-end tests.
 *
 *   ssh-probe [options] DESTINATION COMMAND
 *     -i FILE                  identity file
 *     --known-hosts FILE       known_hosts file (default ~/.ssh/known_hosts)
 *     --accept-new-host-key    record an unknown host's key
 *     --timeout N              connect and I/O timeout in seconds
 *     --keepalive N            keepalive interval in seconds
 *     --stdin                  send our stdin to the command, then EOF
 *     --stderr-first           read the command's stderr to its end first and
 *                              print it on stdout between "--- stderr" and
 *                              "--- stdout" lines
 *
 * DESTINATION is user@host:port or ssh://user@host:port.  The command's
 * stdout goes to our stdout, its stderr to our stderr, and its exit status
 * becomes ours; a failure of our own prints "ssh-probe: message" and exits
 * 255. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../../common/common.h"
#include "../../transport/transport.h"

static int fail(int r)
{
        const char *m = error_message();
        fprintf(stderr, "ssh-probe: %s (%s)\n", m ? m : "failed", berth_strerror(r));
        return 255;
}

int main(int argc, char **argv)
{
        static const struct option longopts[] = {
                { "known-hosts", required_argument, NULL, 'k' },
                { "accept-new-host-key", no_argument, NULL, 'a' },
                { "timeout", required_argument, NULL, 't' },
                { "keepalive", required_argument, NULL, 'K' },
                { "stdin", no_argument, NULL, 's' },
                { "stderr-first", no_argument, NULL, 'e' },
                {},
        };
        _cleanup_(ssh_destination_clear) struct ssh_destination d = {};
        struct ssh_options o = {};
        _cleanup_(ssh_session_freep) struct ssh_session *s = NULL;
        _cleanup_(ssh_channel_freep) struct ssh_channel *ch = NULL;
        bool send_stdin = false, stderr_first = false;
        char buf[65536];
        ssize_t n;
        int c, r, status;

        log_open("ssh-probe");
        if (getenv("BERTH_LOG_LEVEL"))
                log_set_level(log_level_from_string(getenv("BERTH_LOG_LEVEL")));
        while ((c = getopt_long(argc, argv, "i:", longopts, NULL)) >= 0) {
                switch (c) {
                case 'i': o.identity_file = optarg; break;
                case 'k': o.known_hosts = optarg; break;
                case 'a': o.accept_new_host_key = true; break;
                case 't': o.connect_timeout = o.io_timeout = (unsigned)atoi(optarg); break;
                case 'K': o.keepalive_interval = (unsigned)atoi(optarg); break;
                case 's': send_stdin = true; break;
                case 'e': stderr_first = true; break;
                default: return 2;
                }
        }
        if (argc - optind != 2) {
                fprintf(stderr, "usage: ssh-probe [options] DESTINATION COMMAND\n");
                return 2;
        }
        r = ssh_parse_destination(argv[optind], &d);
        if (r < 0)
                return fail(r);
        o.user = d.user;
        o.host = d.host;
        o.port = d.port;
        r = ssh_connect(&o, &s);
        if (r < 0)
                return fail(r);
        r = ssh_exec(s, argv[optind + 1], &ch);
        if (r < 0)
                return fail(r);
        if (send_stdin) {
                while ((n = read(0, buf, sizeof buf)) > 0)
                        if ((r = ssh_channel_write(ch, buf, (size_t)n)) < 0)
                                return fail(r);
                r = ssh_channel_send_eof(ch);
                if (r < 0)
                        return fail(r);
        }
        if (stderr_first) {
                printf("--- stderr\n");
                while ((n = ssh_channel_read_stderr(ch, buf, sizeof buf)) > 0)
                        printf("%.*s", (int)n, buf);
                if (n < 0)
                        return fail((int)n);
                printf("--- stdout\n");
                fflush(stdout);
        }
        while ((n = ssh_channel_read(ch, buf, sizeof buf)) > 0)
                if (write_all(1, buf, (size_t)n) < 0)
                        return 255;
        if (n < 0)
                return fail((int)n);
        r = ssh_channel_close(ch, &status);
        if (r < 0)
                return fail(r);
        fputs(ssh_channel_stderr(ch), stderr);
        return status;
}
