/* keyhand.c — an encrypted repository's key, opened once by the agent and
 * handed to each of its jobs.
 *
 * Opening the key costs scrypt (64 MiB, a fifth of a second) and a read
 * of the password; every job is a new process, so without this each of
 * them would pay it again.  The agent opens the repository once at start,
 * keeps its master key (repo_keep_key: a locked page left out of core
 * dumps) and gives each job a fresh pipe holding it: the job's
 * BERTH_KEY_FD names the read end, which the job reads and closes at once
 * (keyhand_receive); the agent's own reads of the catalog use the kept key
 * as well.  The key never goes to
 * disk, argv or the environment; a job that gets no key, or one for another
 * repository, asks for the password as before.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "agent.h"
#include "keyhand.h"

#define MAGIC "BERTHKY1"
#define MAGIC_LEN 8
#define ID_LEN 32
#define KEY_LEN 32
#define RECORD_LEN (MAGIC_LEN + ID_LEN + KEY_LEN)

int keyhand_open(void)
{
        struct repo *r = NULL;
        int k = open_repo_key(settings.repo, &r);
        if (k < 0) {
                /* A repository the first backup creates, a host that is
                 * down: the jobs open it themselves, as they always could. */
                bool absent = k == -ENOENT || k == -BERTH_ENOTFOUND;
                log_internal(absent ? LOG_INFO : LOG_WARNING, 0,
                             "cannot open the repository now (%s); each job opens it itself",
                             error_message() ? error_message() : berth_strerror(k));
                error_clear();
                return 0;
        }
        /* kept for the agent's own reads of the catalog (its scheduler) too */
        k = repo_keep_key(r);
        repo_free(r);
        if (k == 0)
                log_notice("opened the key of encrypted repository %s once; jobs get it from the agent, not from the "
                           "password",
                           settings.repo);
        return 0; /* not encrypted (or not kept): nothing to hand over */
}

bool keyhand_held(void) { return repo_kept_key(NULL, NULL); }

int keyhand_pipe(void)
{
        uint8_t rec[RECORD_LEN];
        char id[ID_LEN + 1] = { 0 }; /* zero-padded in the record */
        int p[2];

        if (!repo_kept_key(id, rec + MAGIC_LEN + ID_LEN))
                return -1;
        if (pipe2(p, O_CLOEXEC) < 0) {
                explicit_bzero(rec, sizeof rec);
                log_warning("cannot hand the repository key to the job (pipe: %s); it asks for the password",
                            strerror(errno));
                return -1;
        }
        memcpy(rec, MAGIC, MAGIC_LEN);
        memcpy(rec + MAGIC_LEN, id, ID_LEN);
        /* far less than a pipe's buffer: never blocks */
        ssize_t n = write(p[1], rec, RECORD_LEN);
        explicit_bzero(rec, sizeof rec);
        close(p[1]);
        if (n != RECORD_LEN) {
                close(p[0]);
                return -1;
        }
        return p[0];
}

void keyhand_receive(void)
{
        const char *e = getenv("BERTH_KEY_FD");
        uint8_t rec[RECORD_LEN];
        char id[ID_LEN + 1];
        struct stat st;

        if (!e)
                return;
        char *end;
        long fd = strtol(e, &end, 10);
        unsetenv("BERTH_KEY_FD");
        /* only a pipe, read without waiting: anything else is not ours */
        if (*end || fd < 3 || fd > INT32_MAX || fstat((int)fd, &st) < 0 || !S_ISFIFO(st.st_mode))
                return;
        int fl = fcntl((int)fd, F_GETFL);
        if (fl < 0 || fcntl((int)fd, F_SETFL, fl | O_NONBLOCK) < 0)
                return;
        ssize_t n = read((int)fd, rec, sizeof rec);
        close((int)fd);
        if (n == RECORD_LEN && memcmp(rec, MAGIC, MAGIC_LEN) == 0) {
                memcpy(id, rec + MAGIC_LEN, ID_LEN);
                id[ID_LEN] = 0;
                repo_set_kept_key(id, rec + MAGIC_LEN + ID_LEN);
        }
        explicit_bzero(rec, sizeof rec);
}

void keyhand_clear(void) { repo_set_kept_key(NULL, NULL); }
