/* password.c — where an encrypted repository's password comes from.
 *
 * In this order: --password-file FILE, --password-command CMD (run with
 * /bin/sh -c, as restic does; its standard output), $BERTH_PASSWORD_FILE,
 * $CREDENTIALS_DIRECTORY/berth-password (systemd's
 * LoadCredential=berth-password), $BERTH_PASSWORD (discouraged: the
 * environment is visible to the same user's processes), then a prompt on
 * the terminal without echo (twice for a new password).  A file or a
 * command gives its first line.
 *
 * The destination of `copy` (and the far repository of `migrate` and
 * `restore --host`, opened here to write into it) has its own sources
 * while password_for_destination(true): --to-password-file FILE,
 * --to-password-command CMD, $BERTH_TO_PASSWORD_FILE; without any of
 * them, the usual ones above (one password for both repositories). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"

#define PASSWORD_MAX 4096

/* The first line of b, as a string; -EINVAL when empty. */
static int first_line(struct buf *b, const char *what, char **ret)
{
        size_t n = 0;
        while (n < b->len && b->data[n] != '\n' && b->data[n] != '\r')
                n++;
        if (n == 0)
                return error_set(EINVAL, "%s gives an empty password", what);
        *ret = xstrndup((const char *)b->data, n);
        return 0;
}

static int from_file(const char *path, const char *what, char **ret)
{
        struct buf b = { 0 };
        int k = read_file_at(AT_FDCWD, path, PASSWORD_MAX, &b);
        if (k < 0) {
                buf_free(&b);
                return error_set(k, "cannot read the password from %s %s: %s", what, path, berth_strerror(k));
        }
        _cleanup_free_ char *w = xasprintf("%s %s", what, path);
        k = first_line(&b, w, ret);
        explicit_bzero(b.data, b.len);
        buf_free(&b);
        return k;
}

static int from_command(const char *cmd, const char *what, char **ret)
{
        FILE *f = popen(cmd, "re"); /* /bin/sh -c CMD */
        if (!f)
                return error_set(errno, "cannot run %s: %s", what, strerror(errno));
        struct buf b = { 0 };
        char chunk[512];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < PASSWORD_MAX)
                buf_append(&b, chunk, n);
        explicit_bzero(chunk, sizeof chunk);
        int st = pclose(f);
        int k;
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
                k = error_set(EINVAL, "%s '%s' failed (status %d)", what, cmd,
                              st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        else
                k = first_line(&b, what, ret);
        if (b.data)
                explicit_bzero(b.data, b.len);
        buf_free(&b);
        return k;
}

static int read_tty_line(int fd, const char *prompt, char **ret)
{
        struct termios old, quiet;
        bool restore = tcgetattr(fd, &old) == 0;
        if (restore) {
                quiet = old;
                quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
                quiet.c_lflag |= ICANON;
                tcsetattr(fd, TCSAFLUSH, &quiet);
        }
        (void)!write(fd, prompt, strlen(prompt));
        char line[PASSWORD_MAX];
        size_t n = 0;
        char c;
        ssize_t got;
        while ((got = read(fd, &c, 1)) == 1 && c != '\n' && n < sizeof line - 1)
                line[n++] = c;
        line[n] = 0;
        if (restore)
                tcsetattr(fd, TCSAFLUSH, &old);
        (void)!write(fd, "\n", 1);
        if (got < 0 && n == 0)
                return error_set(errno, "cannot read the password from the terminal: %s", strerror(errno));
        *ret = xstrdup(line);
        explicit_bzero(line, sizeof line);
        return 0;
}

static int from_terminal(const char *where, bool confirm, char **ret)
{
        int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return error_set(EINVAL,
                                 "repository %s is encrypted and no password was given: use --password-file, "
                                 "--password-command, BERTH_PASSWORD_FILE or LoadCredential=berth-password",
                                 where);
        _cleanup_free_ char *prompt = xasprintf("Password for %s: ", where);
        char *a = NULL, *b = NULL;
        int k = read_tty_line(fd, confirm ? "New password: " : prompt, &a);
        if (k == 0 && !*a)
                k = error_set(EINVAL, "an empty password is not accepted");
        if (k == 0 && confirm) {
                k = read_tty_line(fd, "Repeat the new password: ", &b);
                if (k == 0 && strcmp(a, b) != 0)
                        k = error_set(EINVAL, "the two passwords differ; nothing was changed");
        }
        close(fd);
        if (b) {
                explicit_bzero(b, strlen(b));
                free(b);
        }
        if (k < 0) {
                if (a)
                        explicit_bzero(a, strlen(a));
                free(a);
                return k;
        }
        *ret = a;
        return 0;
}

static bool for_destination;
static const char *to_file, *to_command;

void password_set_destination(const char *file, const char *command)
{
        to_file = file;
        to_command = command;
}

void password_for_destination(bool on) { for_destination = on; }

int password_get(const char *where, bool confirm, char **ret)
{
        const char *e;
        if (for_destination) {
                if (to_file)
                        return from_file(to_file, "--to-password-file", ret);
                if (to_command)
                        return from_command(to_command, "--to-password-command", ret);
                if ((e = getenv("BERTH_TO_PASSWORD_FILE")) && *e)
                        return from_file(e, "BERTH_TO_PASSWORD_FILE", ret);
        }
        if (settings.password_file)
                return from_file(settings.password_file, "--password-file", ret);
        if (settings.password_command)
                return from_command(settings.password_command, "--password-command", ret);
        if ((e = getenv("BERTH_PASSWORD_FILE")) && *e)
                return from_file(e, "BERTH_PASSWORD_FILE", ret);
        if ((e = getenv("CREDENTIALS_DIRECTORY")) && *e) {
                _cleanup_free_ char *p = xasprintf("%s/berth-password", e);
                if (access(p, F_OK) == 0)
                        return from_file(p, "the systemd credential", ret);
        }
        if ((e = getenv("BERTH_PASSWORD")) && *e) {
                *ret = xstrdup(e);
                return 0;
        }
        return from_terminal(where, confirm, ret);
}

int password_new(const char *file, char **ret)
{
        if (file)
                return from_file(file, "--new-password-file", ret);
        return from_terminal("the repository", true, ret);
}
