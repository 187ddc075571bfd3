/* cmd-key.c — berth key: the passwords of an encrypted repository. */
#include <string.h>
#include <time.h>

#include "agent.h"

static const char help[] =
        "Usage: berth [-r REPO] key list [--json]\n"
        "       berth [-r REPO] key add [--new-password-file FILE]\n"
        "       berth [-r REPO] key remove ID\n"
        "       berth [-r REPO] key passwd [--new-password-file FILE]\n"
        "\n"
        "Manages the passwords of an encrypted repository (berth init --encrypt).  Each\n"
        "password is a key object keys/ID that wraps the repository's one master key, so\n"
        "several passwords open the same repository and changing one re-encrypts nothing.\n"
        "The current password (the one given as usual: --password-file, --password-command,\n"
        "BERTH_PASSWORD_FILE, LoadCredential=berth-password, BERTH_PASSWORD or the terminal)\n"
        "opens the repository first.\n"
        "\n"
        "  list            the key objects; the one the current password opened is marked\n"
        "  add             adds a key for a new password\n"
        "  remove ID       removes key ID.  The last key, and the key the current password\n"
        "                  opened, are refused: the repository always keeps a usable key\n"
        "  passwd          changes the current password: adds a key for the new one, then\n"
        "                  removes the old key (if anything fails in between, both work)\n"
        "\n"
        "Options:\n"
        "      --new-password-file FILE  the new password: the first line of FILE (default:\n"
        "                         asked twice on the terminal)\n"
        "      --json             list: [{\"id\", \"created\", \"current\"}]; others: {\"id\"}\n"
        "  -h, --help             this help\n"
        "\n"
        "A lost password means lost data: keep a second key somewhere safe.\n";

static int option(int c, const char *arg, void *ud)
{
        const char **newfile = ud;
        if (c != 1)
                return OPT_UNKNOWN;
        *newfile = arg;
        return OPT_DONE;
}

static int list(struct repo *repo)
{
        struct repo_key_info *v;
        size_t n;
        int r = repo_key_list(repo, &v, &n);
        if (r < 0)
                return fail(r, "key list");
        if (settings.json) {
                json_object *a = json_object_new_array();
                for (size_t i = 0; i < n; i++) {
                        json_object *o = json_object_new_object();
                        json_object_object_add(o, "id", json_object_new_string(v[i].id));
                        json_object_object_add(o, "created", json_object_new_int64(v[i].created));
                        json_object_object_add(o, "current", json_object_new_boolean(v[i].in_use));
                        json_object_object_add(o, "valid", json_object_new_boolean(v[i].valid));
                        json_object_array_add(a, o);
                }
                json_print(a);
        } else {
                printf("%-16s  %-20s  %s\n", "ID", "CREATED", "");
                for (size_t i = 0; i < n; i++) {
                        char when[32] = "-";
                        time_t t = (time_t)v[i].created;
                        struct tm tm;
                        if (t > 0 && gmtime_r(&t, &tm))
                                strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
                        printf("%-16s  %-20s  %s\n", v[i].id, when,
                               v[i].in_use ? "current" : v[i].valid ? "" : "damaged");
                }
        }
        free(v);
        return EXIT_OK;
}

static int print_id(const char *verb, const char *id)
{
        if (settings.json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "id", json_object_new_string(id));
                json_print(o);
        } else if (!settings.quiet)
                printf("%s key %s\n", verb, id);
        return EXIT_OK;
}

static int run(int argc, char **argv)
{
        static const struct option options[] = {
                GLOBAL_OPTIONS,
                { "new-password-file", required_argument, NULL, 1 },
                {},
        };
        const char *newfile = NULL;
        int pr = parse_options(argc, argv, NULL, options, option, &newfile);
        if (pr != OPT_DONE)
                return pr;
        if (optind >= argc)
                return usage_error("key", "missing subcommand: list, add, remove ID or passwd");
        const char *sub = argv[optind++];
        bool is_list = strcmp(sub, "list") == 0, is_add = strcmp(sub, "add") == 0,
             is_remove = strcmp(sub, "remove") == 0, is_passwd = strcmp(sub, "passwd") == 0;
        if (!is_list && !is_add && !is_remove && !is_passwd)
                return usage_error("key", "unknown subcommand '%s'", sub);
        if (optind + (is_remove ? 1 : 0) != argc)
                return usage_error("key", is_remove ? "key remove takes one key ID" : "unexpected argument");

        _cleanup_(repo_freep) struct repo *repo = NULL;
        int r = open_repo(is_list ? REPO_READ : REPO_WRITE, &repo);
        if (r < 0)
                return fail(r, "open");
        if (!repo_encrypted(repo))
                return fail(error_set(EINVAL, "repository %s is not encrypted: it has no keys", settings.repo),
                            "key");
        if (is_list)
                return list(repo);
        if (is_remove) {
                r = repo_key_remove(repo, argv[optind], false);
                return r < 0 ? fail(r, "key remove") : print_id("removed", argv[optind]);
        }

        /* The id of the key in use, before a new one is added. */
        char old[17] = "";
        if (is_passwd) {
                struct repo_key_info *v;
                size_t n;
                r = repo_key_list(repo, &v, &n);
                if (r < 0)
                        return fail(r, "key passwd");
                for (size_t i = 0; i < n; i++)
                        if (v[i].in_use)
                                snprintf(old, sizeof old, "%s", v[i].id);
                free(v);
        }
        _cleanup_free_ char *password = NULL;
        r = password_new(newfile, &password);
        if (r < 0)
                return fail(r, "key");
        char id[17];
        r = repo_key_add(repo, password, id);
        explicit_bzero(password, strlen(password));
        if (r < 0)
                return fail(r, "key add");
        if (is_add)
                return print_id("added", id);
        /* passwd: the new key is durable; only now the old one goes. */
        if (*old) {
                r = repo_key_remove(repo, old, true);
                if (r < 0) {
                        log_error("the new password works (key %s), but the old key %s is still there: %s", id, old,
                                  error_message() ? error_message() : berth_strerror(r));
                        return EXIT_FAILURE_;
                }
        }
        return print_id("changed the password: new", id);
}

const struct command command_key = { "key", run, "manage the passwords of an encrypted repository", help };
