/* keyhand.c — an encrypted repository's key, opened once by the agent and
 * handed to each of its jobs.
 *
 * Opening the key costs scrypt (64 MiB, a fifth of a second) and a read
 * of the password; every job is a new process, so without this each of
 * them would pay it again.  The agent opens the repository once at start,
 * keeps the master key in a locked page left out of core dumps, and gives
 * each job a fresh pipe holding it: the job's BERTH_KEY_FD names the read
 * end, which the job reads and closes at once (keyhand_receive); the
 * agent's own reads of the catalog use it as well.  The key never goes to
 * disk, argv or the environment; a job that gets no key, or one for another
 * repository, asks for the password as before.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "agent.h"
#include "keyhand.h"

#define MAGIC "BERTHKY1"
#define MAGIC_LEN 8
#define ID_LEN 32
#define KEY_LEN 32
#define RECORD_LEN (MAGIC_LEN + ID_LEN + KEY_LEN)

static uint8_t *held; /* RECORD_LEN bytes in a locked page, or NULL */

static void held_clear(void)
{
        if (!held)
                return;
        explicit_bzero(held, RECORD_LEN);
        munmap(held, (size_t)sysconf(_SC_PAGESIZE));
        held = NULL;
}

int keyhand_open(void)
{
        struct repo *r = NULL;
        char id[ID_LEN + 1] = { 0 }; /* zero-padded in the record */
        uint8_t master[KEY_LEN];

        held_clear();
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
        k = repo_key_export(r, id, master);
        repo_free(r);
        if (k < 0)
                return 0; /* not encrypted: nothing to hold */
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        void *p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
                explicit_bzero(master, sizeof master);
                return log_error_errno(errno, "cannot hold the repository key: mmap");
        }
        if (mlock(p, page) < 0)
                log_debug("mlock of the key page failed: %s", strerror(errno));
        madvise(p, page, MADV_DONTDUMP);
        held = p;
        memcpy(held, MAGIC, MAGIC_LEN);
        memcpy(held + MAGIC_LEN, id, ID_LEN);
        memcpy(held + MAGIC_LEN + ID_LEN, master, KEY_LEN);
        /* the agent's own reads of the catalog (its scheduler) use it too */
        repo_set_handed_key(id, master);
        explicit_bzero(master, sizeof master);
        log_notice("opened the key of encrypted repository %s once; jobs get it from the agent, not from the "
                   "password", settings.repo);
        return 0;
}

bool keyhand_held(void) { return held != NULL; }

int keyhand_pipe(void)
{
        int p[2];
        if (!held)
                return -1;
        if (pipe2(p, O_CLOEXEC) < 0) {
                log_warning("cannot hand the repository key to the job (pipe: %s); it asks for the password",
                            strerror(errno));
                return -1;
        }
        /* far less than a pipe's buffer: never blocks */
        ssize_t n = write(p[1], held, RECORD_LEN);
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
                repo_set_handed_key(id, rec + MAGIC_LEN + ID_LEN);
        }
        explicit_bzero(rec, sizeof rec);
}

void keyhand_clear(void)
{
        held_clear();
        repo_set_handed_key(NULL, NULL);
}
