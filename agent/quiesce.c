/* quiesce.c — pause/stop with a journal, hooks, compose ordering, recovery. */
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "agent.h"
#include "quiesce.h"

/* ---- signals while containers are quiesced -------------------------------------
 *
 * The first SIGINT/SIGTERM sets `interrupted` and the copy stops; main.c's
 * handler makes a second one kill berth at once.  From the first freeze
 * until every container is back that would leave them paused or stopped,
 * so meanwhile further signals only set `interrupted` again. */

volatile sig_atomic_t quiesce_cancel;
static unsigned signals_held;
static struct sigaction saved_int, saved_term;

static void on_held_signal(int sig)
{
        interrupted = sig;
        quiesce_cancel = 1;
}

static void signals_hold(void)
{
        if (signals_held++ > 0)
                return;
        struct sigaction sa = { .sa_handler = on_held_signal };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &saved_int);
        sigaction(SIGTERM, &sa, &saved_term);
}

static void signals_release(void)
{
        if (signals_held == 0 || --signals_held > 0)
                return;
        sigaction(SIGINT, &saved_int, NULL);
        sigaction(SIGTERM, &saved_term, NULL);
}

/* ---- the journal's own lock ------------------------------------------------------
 *
 * A backup holds the repository's lock for its whole run, so 'berth
 * recover' could not put anything back while a hung backup holds it.  The
 * journal has its own lock instead, REPO/journal.lock, held only while
 * containers are being quiesced or put back and journal rows written: a
 * recover never interleaves with a freeze or a thaw, and never waits for
 * a copy. */

#define JOURNAL_LOCK_WAIT_NS (30LL * 1000000000)

/* Returns the locked fd (close it to unlock), -1 when the repository is
 * not writable here (nothing can be journaled then either), or -errno
 * when another process kept it for JOURNAL_LOCK_WAIT_NS. */
static int journal_lock(void)
{
        const char *dir = settings.state_dir ? settings.state_dir : settings.repo;
        _cleanup_free_ char *path = xasprintf("%s/journal.lock", dir);
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0) {
                log_debug("not locking %s: %s", path, strerror(errno));
                return -1;
        }
        int64_t deadline = mono_ns() + JOURNAL_LOCK_WAIT_NS;
        for (;;) {
                struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
                if (fcntl(fd, F_SETLK, &fl) == 0)
                        return fd;
                if ((errno != EAGAIN && errno != EACCES) || mono_ns() >= deadline) {
                        int e = errno == EAGAIN || errno == EACCES ? BERTH_ELOCKED : errno;
                        struct flock who = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
                        fcntl(fd, F_GETLK, &who);
                        close(fd);
                        return error_set(e, "the quiesce journal of %s is locked by pid %d, which is quiescing or "
                                            "resuming containers and does not finish",
                                         settings.repo, who.l_type == F_UNLCK ? 0 : (int)who.l_pid);
                }
                struct timespec ts = { 0, 100 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
}

static void journal_unlock(int fd)
{
        if (fd >= 0)
                close(fd);
}

/* ---- authenticating journal rows --------------------------------------------------
 *
 * A journal row makes berth unpause or start a container, and the catalog
 * lives in the repository, which others may be able to write (a shared
 * disk, a compromised backup host).  Each row is signed with an
 * HMAC-SHA-256 under a random key that lives on this host only
 * ($BERTH_STATE_DIR/journal.key; /var/lib/berth-host for root — never the
 * default repository /var/lib/berth, which gets copied to other hosts —
 * else ~/.local/state/berth), and rows that do not verify are ignored. */

#define JOURNAL_KEY_LEN 32

static char *state_dir(void)
{
        const char *e = getenv("BERTH_STATE_DIR");
        if (e && *e)
                return xstrdup(e);
        const char *home = getenv("HOME");
        if (geteuid() != 0 && home && *home)
                return xasprintf("%s/.local/state/berth", home);
        return xstrdup("/var/lib/berth-host");
}

static int read_key(const char *path, uint8_t key[JOURNAL_KEY_LEN])
{
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        /* A key others can read or replace signs nothing. */
        struct stat st;
        if (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
                close(fd);
                return -EPERM;
        }
        ssize_t n = read(fd, key, JOURNAL_KEY_LEN);
        close(fd);
        if (n != JOURNAL_KEY_LEN)
                return n < 0 ? -errno : -EBADMSG;
        return 0;
}

/* This host's journal key, created on first use (atomically: a temp file
 * linked into place, so concurrent first runs agree on one key). */
static int journal_key(uint8_t ret[JOURNAL_KEY_LEN])
{
        static uint8_t key[JOURNAL_KEY_LEN];
        static bool have;
        if (have) {
                memcpy(ret, key, sizeof key);
                return 0;
        }
        _cleanup_free_ char *dir = state_dir();
        _cleanup_free_ char *path = xasprintf("%s/journal.key", dir);
        int k = read_key(path, key);
        if (k == -ENOENT) {
                _cleanup_free_ char *tmp = xasprintf("%s/.journal.key.%d", dir, (int)getpid());
                uint8_t fresh[JOURNAL_KEY_LEN];
                k = mkdir_p(dir, 0700);
                int fd = k < 0 ? k : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0)
                        k = k < 0 ? k : -errno;
                else {
                        k = getrandom(fresh, sizeof fresh, 0) == sizeof fresh ? 0 : -EIO;
                        if (k == 0)
                                k = write_all(fd, fresh, sizeof fresh);
                        if (k == 0 && fsync(fd) < 0)
                                k = -errno;
                        close(fd);
                        if (k == 0 && link(tmp, path) < 0 && errno != EEXIST)
                                k = -errno;
                        unlink(tmp);
                }
                if (k == 0)
                        k = read_key(path, key);
        }
        if (k == -EPERM)
                return error_set(EPERM, "this host's quiesce journal key %s must belong to uid %d and be readable "
                                        "by it alone (chmod 600)",
                                 path, (int)geteuid());
        if (k < 0)
                return error_set(-k, "cannot read or create this host's quiesce journal key %s: %s (set "
                                     "BERTH_STATE_DIR to a directory only root can write)",
                                 path, strerror(-k));
        have = true;
        memcpy(ret, key, sizeof key);
        return 0;
}

static void mac_str(struct buf *b, const char *s)
{
        /* Length-prefixed, NULL apart from "": fields cannot run together. */
        if (!s) {
                buf_put_le32(b, UINT32_MAX);
                return;
        }
        buf_put_le32(b, (uint32_t)strlen(s));
        buf_append(b, s, strlen(s));
}

/* The row's HMAC, as 64 hex digits, into out. */
static void row_mac(const uint8_t key[JOURNAL_KEY_LEN], const struct catalog_quiesce *j, char out[65])
{
        struct buf b = { 0 };
        buf_append(&b, "berth quiesce journal 1", 24);
        mac_str(&b, j->container);
        mac_str(&b, j->name);
        mac_str(&b, j->project);
        mac_str(&b, j->service);
        mac_str(&b, j->action);
        mac_str(&b, j->host);
        buf_put_le64(&b, (uint64_t)j->owner_pid);
        buf_put_le64(&b, (uint64_t)j->owner_start);
        buf_put_le64(&b, (uint64_t)j->started);
        uint8_t md[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        if (!HMAC(EVP_sha256(), key, JOURNAL_KEY_LEN, b.data, b.len, md, &len) || len != 32)
                abort();
        buf_free(&b);
        for (unsigned i = 0; i < len; i++)
                snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* True when the row was written by berth on this host. */
static bool row_authentic(const struct catalog_quiesce *j)
{
        uint8_t key[JOURNAL_KEY_LEN];
        char want[65];
        if (!j->mac || strlen(j->mac) != 64 || journal_key(key) < 0)
                return false;
        row_mac(key, j, want);
        /* Constant time, though only this host could learn from it. */
        unsigned diff = 0;
        for (size_t i = 0; i < 64; i++)
                diff |= (unsigned)(want[i] ^ j->mac[i]);
        return diff == 0;
}


int quiesce_parse(const char *s, enum quiesce_action *ret)
{
        if (strcmp(s, "pause") == 0)
                *ret = QUIESCE_PAUSE;
        else if (strcmp(s, "stop") == 0)
                *ret = QUIESCE_STOP;
        else if (strcmp(s, "none") == 0)
                *ret = QUIESCE_NONE;
        else
                return -EINVAL;
        return 0;
}

const char *quiesce_name(enum quiesce_action a)
{
        return a == QUIESCE_PAUSE ? "pause" : a == QUIESCE_STOP ? "stop" : "none";
}

int64_t process_start_time(pid_t pid)
{
        char path[64], line[4096];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return -1;
        size_t n = fread(line, 1, sizeof line - 1, f);
        fclose(f);
        line[n] = 0;
        /* Field 22, counted after the ")" that ends the command name. */
        char *p = strrchr(line, ')');
        if (!p)
                return -1;
        long long v = -1;
        int field = 2;
        for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " "))
                if (++field == 22) {
                        v = atoll(tok);
                        break;
                }
        return v;
}

/* Service names from com.docker.compose.depends_on: "db:service_started:false,cache:...". */
static bool depends_on(const struct quiesce_target *a, const struct quiesce_target *b)
{
        const char *deps = docker_label(a->c.labels, "com.docker.compose.depends_on");
        if (!deps || !a->project || !b->project || !b->service || strcmp(a->project, b->project) != 0)
                return false;
        size_t len = strlen(b->service);
        for (const char *p = deps; *p;) {
                const char *end = p + strcspn(p, ",");
                size_t name = strcspn(p, ":,");
                if (name == len && strncmp(p, b->service, len) == 0)
                        return true;
                p = *end ? end + 1 : end;
        }
        return false;
}

/* Freeze order: a container before the ones it depends on (dependants are
 * stopped first), found by repeatedly taking a target nothing remaining
 * depends on; thaw runs it backwards, providers first. */
static void plan_order(struct quiesce *q)
{
        bool *taken = xcalloc(q->n + 1, sizeof *taken);
        q->order = xcalloc(q->n + 1, sizeof *q->order);
        for (size_t k = 0; k < q->n; k++) {
                size_t pick = q->n;
                for (size_t i = 0; i < q->n && pick == q->n; i++) {
                        if (taken[i])
                                continue;
                        bool needed = false;
                        for (size_t j = 0; j < q->n && !needed; j++)
                                needed = !taken[j] && j != i && depends_on(&q->t[j], &q->t[i]);
                        if (!needed)
                                pick = i;
                }
                if (pick == q->n) /* a cycle: take the first remaining */
                        for (pick = 0; taken[pick]; pick++)
                                ;
                taken[pick] = true;
                q->order[k] = pick;
        }
        free(taken);
}

int quiesce_plan(struct quiesce *q, struct docker *d, struct catalog *cat, const struct docker_container *containers,
                 size_t n, int override)
{
        *q = (struct quiesce){ .docker = d, .catalog = cat, .hook_timeout = settings.hook_timeout };
        q->t = xcalloc(n ? n : 1, sizeof *q->t);
        for (size_t i = 0; i < n; i++) {
                struct quiesce_target *t = &q->t[q->n];
                /* A fresh copy, and the current state: lists go stale. */
                int k = docker_container_inspect(d, containers[i].id, &t->c);
                if (k == -BERTH_ENOTFOUND)
                        continue;
                if (k < 0)
                        return k;
                q->n++;
                t->pre = docker_label(t->c.labels, "berth.pre");
                t->post = docker_label(t->c.labels, "berth.post");
                t->project = docker_label(t->c.labels, "com.docker.compose.project");
                t->service = docker_label(t->c.labels, "com.docker.compose.service");
                const char *st = docker_label(t->c.labels, "berth.stop-timeout");
                /* Unless labelled, Docker uses the container's own stop
                 * timeout (compose's stop_grace_period). */
                t->stop_timeout = st ? atoi(st) : -1;

                enum quiesce_action a = settings.quiesce;
                const char *label = docker_label(t->c.labels, "berth.quiesce");
                if (label && quiesce_parse(label, &a) < 0)
                        return error_set(EINVAL, "container '%s' has label berth.quiesce=%s; use pause, stop or none",
                                         t->c.name, label);
                if (override >= 0)
                        a = (enum quiesce_action)override;
                /* Only a running container needs quiescing; one already
                 * paused or stopped is left exactly as it is. */
                if (!t->c.state || strcmp(t->c.state, "running") != 0)
                        a = QUIESCE_NONE;
                const char *swarm = docker_label(t->c.labels, "com.docker.swarm.service.name");
                if (a == QUIESCE_STOP && swarm)
                        return error_set(EINVAL,
                                         "container '%s' is a task of swarm service '%s': stopping it would make the "
                                         "swarm replace it; use --quiesce pause or label it berth.quiesce=pause",
                                         t->c.name, swarm);
                t->action = a;
        }
        plan_order(q);
        return 0;
}

bool quiesce_needed(const struct quiesce *q)
{
        for (size_t i = 0; i < q->n; i++)
                if (q->t[i].action != QUIESCE_NONE)
                        return true;
        return false;
}

static int run_hook(struct quiesce *q, struct quiesce_target *t, const char *which, const char *cmd)
{
        struct buf out = { 0 };
        int status = -1;
        log_info("running %s hook in '%s': %s", which, t->c.name, cmd);
        int k = docker_exec(q->docker, t->c.id, cmd, q->hook_timeout, &status, &out);
        if (out.len) {
                buf_putc(&out, 0);
                log_info("%s hook output in '%s': %s", which, t->c.name, (char *)out.data);
        }
        buf_free(&out);
        if (k < 0)
                return error_set(-k, "the %s hook of container '%s' failed: %s", which, t->c.name, error_message());
        if (status != 0)
                return error_set(EIO, "the %s hook of container '%s' (%s) exited with status %d", which, t->c.name, cmd,
                                 status);
        return 0;
}

int quiesce_pre(struct quiesce *q)
{
        for (size_t k = 0; k < q->n; k++) {
                struct quiesce_target *t = &q->t[q->order[k]];
                if (!t->pre || strcmp(t->c.state ? t->c.state : "", "running") != 0)
                        continue;
                int r = run_hook(q, t, "pre", t->pre);
                if (r < 0) {
                        char msg[1024];
                        snprintf(msg, sizeof msg, "%s", error_message());
                        quiesce_post(q);
                        return error_set(-r, "%s; the backup of this volume was abandoned", msg);
                }
                t->pre_ok = true;
        }
        return 0;
}

int quiesce_post(struct quiesce *q)
{
        int first = 0;
        for (size_t k = q->n; k-- > 0;) {
                struct quiesce_target *t = &q->t[q->order[k]];
                if (!t->post || (t->pre && !t->pre_ok) || strcmp(t->c.state ? t->c.state : "", "running") != 0)
                        continue;
                int r = run_hook(q, t, "post", t->post);
                if (r < 0) {
                        log_warning("%s", error_message());
                        if (!first)
                                first = r;
                }
        }
        return first;
}

int quiesce_freeze(struct quiesce *q)
{
        char host[256] = "";
        uint8_t key[JOURNAL_KEY_LEN];
        gethostname(host, sizeof host - 1);
        if (!quiesce_needed(q))
                return 0;
        if (!q->held) {
                signals_hold();
                q->held = true;
                if (interrupted)
                        quiesce_cancel = 1;
        }
        int r = journal_key(key);
        if (r < 0)
                return r;
        int lock = journal_lock();
        if (lock < -1)
                return lock;
        r = 0;
        for (size_t k = 0; r == 0 && k < q->n; k++) {
                struct quiesce_target *t = &q->t[q->order[k]];
                if (t->action == QUIESCE_NONE)
                        continue;
                if (interrupted) {
                        r = error_set(ECANCELED, "interrupted before every container was quiesced");
                        break;
                }
                struct catalog_quiesce j = {
                        .container = t->c.id,
                        .name = t->c.name,
                        .project = (char *)t->project,
                        .service = (char *)t->service,
                        .action = (char *)quiesce_name(t->action),
                        .host = host,
                        .owner_pid = getpid(),
                        .owner_start = process_start_time(getpid()),
                        .started = now_ns(),
                };
                char mac[65];
                row_mac(key, &j, mac);
                j.mac = mac;
                r = catalog_quiesce_begin(q->catalog, &j);
                if (r < 0)
                        break;
                t->journal_id = j.id;
                if (!q->frozen_at)
                        q->frozen_at = mono_ns();
                log_info("%s container '%s'", t->action == QUIESCE_PAUSE ? "pausing" : "stopping", t->c.name);
                r = docker_container_action(q->docker, t->c.id, quiesce_name(t->action), t->stop_timeout);
        }
        journal_unlock(lock);
        return r;
}

int quiesce_thaw(struct quiesce *q)
{
        int first = 0;
        if (!q->docker)
                return 0;
        /* Whatever happens now, containers go back: no interruption. */
        docker_set_interruptible(q->docker, false);
        int lock = journal_lock();
        if (lock < -1)
                log_warning("%s; resuming the containers anyway", error_message());
        for (size_t k = q->n; k-- > 0;) {
                struct quiesce_target *t = &q->t[q->order[k]];
                if (t->journal_id <= 0)
                        continue;
                const char *back = t->action == QUIESCE_PAUSE ? "unpause" : "start";
                log_info("%s container '%s'", t->action == QUIESCE_PAUSE ? "resuming" : "starting", t->c.name);
                int r = docker_container_action(q->docker, t->c.id, back, 0);
                if (r < 0) {
                        log_error("cannot %s container '%s': %s; run 'berth recover'", back, t->c.name,
                                  error_message());
                        if (!first)
                                first = r;
                        continue;
                }
                if (catalog_quiesce_end(q->catalog, t->journal_id) == 0) {
                        /* 'berth recover' put it back while we were copying. */
                        log_warning("container '%s' was put back by 'berth recover' while berth had it %sd",
                                    t->c.name, quiesce_name(t->action));
                        q->resumed_elsewhere = true;
                }
                t->journal_id = 0;
        }
        journal_unlock(lock);
        if (q->frozen_at && !q->thawed_at)
                q->thawed_at = mono_ns();
        docker_set_interruptible(q->docker, true);
        if (q->held) {
                q->held = false;
                signals_release();
        }
        return first;
}

int64_t quiesce_window(const struct quiesce *q)
{
        if (!q->frozen_at)
                return 0;
        return (q->thawed_at ? q->thawed_at : mono_ns()) - q->frozen_at;
}

json_object *quiesce_json(const struct quiesce *q)
{
        json_object *o = json_object_new_object(), *arr = json_object_new_array();
        json_object_object_add(o, "window_ns", json_object_new_int64(quiesce_window(q)));
        for (size_t i = 0; i < q->n; i++) {
                const struct quiesce_target *t = &q->t[i];
                json_object *c = json_object_new_object();
                json_object_object_add(c, "id", json_object_new_string(t->c.id));
                json_object_object_add(c, "name", json_object_new_string(t->c.name));
                json_object_object_add(c, "image", t->c.image ? json_object_new_string(t->c.image) : NULL);
                json_object_object_add(c, "state", json_object_new_string(t->c.state ? t->c.state : ""));
                json_object_object_add(c, "action", json_object_new_string(quiesce_name(t->action)));
                if (t->project)
                        json_object_object_add(c, "compose_project", json_object_new_string(t->project));
                if (t->service)
                        json_object_object_add(c, "compose_service", json_object_new_string(t->service));
                json_object_array_add(arr, c);
        }
        json_object_object_add(o, "containers", arr);
        return o;
}

void quiesce_clear(struct quiesce *q)
{
        if (q->held)
                signals_release();
        for (size_t i = 0; i < q->n; i++)
                docker_container_clear(&q->t[i].c);
        free(q->t);
        free(q->order);
        *q = (struct quiesce){ 0 };
}

static bool owner_alive(const struct catalog_quiesce *j)
{
        if (j->owner_pid <= 0 || kill((pid_t)j->owner_pid, 0) < 0)
                return false;
        return process_start_time((pid_t)j->owner_pid) == j->owner_start;
}

/* The container a journal row names: by id, else (recreated by compose)
 * by project and service. */
static int find_container(struct docker *d, const struct catalog_quiesce *j, struct docker_container *ret)
{
        int k = docker_container_inspect(d, j->container, ret);
        if (k != -BERTH_ENOTFOUND || !j->project || !j->service)
                return k;
        struct docker_container *list;
        size_t n;
        k = docker_containers(d, &list, &n);
        if (k < 0)
                return k;
        k = -BERTH_ENOTFOUND;
        for (size_t i = 0; i < n && k < 0; i++) {
                const char *p = docker_label(list[i].labels, "com.docker.compose.project");
                const char *s = docker_label(list[i].labels, "com.docker.compose.service");
                if (p && s && strcmp(p, j->project) == 0 && strcmp(s, j->service) == 0)
                        k = docker_container_inspect(d, list[i].id, ret);
        }
        docker_containers_free(list, n);
        return k;
}

int quiesce_recover(struct docker *d, struct catalog *cat, bool all, unsigned *ret_resumed)
{
        struct catalog_quiesce *rows;
        size_t n;
        unsigned resumed = 0;
        char host[256] = "";
        int first = 0;

        gethostname(host, sizeof host - 1);
        int lock = journal_lock();
        if (lock < -1)
                return lock;
        int k = catalog_quiesce_open(cat, &rows, &n);
        if (k < 0) {
                journal_unlock(lock);
                return k;
        }
        uint8_t key[JOURNAL_KEY_LEN];
        if (n > 0 && (k = journal_key(key)) < 0) {
                /* Without the key no row can be trusted: say why once. */
                log_warning("%s; not acting on the quiesce journal", error_message());
                journal_unlock(lock);
                catalog_quiesce_list_free(rows, n);
                return k;
        }
        signals_hold();
        docker_set_interruptible(d, false);
        for (size_t i = 0; i < n; i++) {
                struct catalog_quiesce *j = &rows[i];
                bool alive = owner_alive(j);
                if (strcmp(j->host, host) != 0 || (!all && alive))
                        continue;
                if (!row_authentic(j)) {
                        _cleanup_free_ char *name = escape_name(j->name ? j->name : "", j->name ? strlen(j->name) : 0);
                        log_warning("ignoring quiesce journal row %lld (%s container '%s'): this host's berth did "
                                    "not write it",
                                    (long long)j->id, strcmp(j->action, "stop") == 0 ? "stop" : "pause", name);
                        continue;
                }
                if (alive)
                        log_notice("berth pid %lld is still running (stopped or hung?) with container '%s' %sd; "
                                   "putting it back: that backup will not record a snapshot",
                                   (long long)j->owner_pid, j->name, j->action);
                struct docker_container c = { 0 };
                k = find_container(d, j, &c);
                if (k == -BERTH_ENOTFOUND) {
                        log_notice("container '%s' that berth %sd is gone; nothing to put back", j->name, j->action);
                        catalog_quiesce_end(cat, j->id);
                        continue;
                }
                if (k == 0) {
                        bool pause = strcmp(j->action, "pause") == 0;
                        if (pause && strcmp(c.state ? c.state : "", "paused") == 0)
                                k = docker_container_action(d, c.id, "unpause", 0);
                        else if (!pause && strcmp(c.state ? c.state : "", "running") != 0 &&
                                 strcmp(c.state ? c.state : "", "paused") != 0)
                                k = docker_container_action(d, c.id, "start", 0);
                        if (k == 0) {
                                log_notice("%s container '%s', which an interrupted berth (pid %lld) had %sd",
                                           pause ? "resumed" : "started", c.name, (long long)j->owner_pid, j->action);
                                resumed++;
                                catalog_quiesce_end(cat, j->id);
                        }
                }
                if (k < 0) {
                        log_error("cannot put back container '%s': %s", j->name, error_message());
                        if (!first)
                                first = k;
                }
                docker_container_clear(&c);
        }
        docker_set_interruptible(d, true);
        signals_release();
        journal_unlock(lock);
        catalog_quiesce_list_free(rows, n);
        if (ret_resumed)
                *ret_resumed = resumed;
        return first;
}
