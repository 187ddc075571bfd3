/* docker.c — the Docker Engine API over its unix socket. */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "docker.h"

/* Supported by Docker 20.10 (Debian 12's docker.io) and every later
 * engine, so requests mean the same everywhere. */
#define API "/v1.41"

struct docker {
        CURL *curl;
        char *socket;
        bool interruptible;
};

static int progress_cb(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
        /* Abort a long request (a hook, a stop) when the user interrupts,
         * except while containers are being put back. */
        const struct docker *d = ud;
        return d->interruptible && interrupted ? 1 : 0;
}

void docker_set_interruptible(struct docker *d, bool on) { d->interruptible = on; }

static void curl_freep(char **p) { curl_free(*p); }
#define _cleanup_curl_ _cleanup_(curl_freep)

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
        buf_append(ud, p, size * n);
        return size * n;
}

/* Sends one request; *ret_status is the HTTP status, body the response. */
static int request(struct docker *d, const char *method, const char *path, const char *json_body, long timeout,
                   long *ret_status, struct buf *body)
{
        char url[1024];
        char errbuf[CURL_ERROR_SIZE] = "";
        struct curl_slist *headers = NULL;
        CURL *c = d->curl;

        snprintf(url, sizeof url, "http://docker%s%s", API, path);
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, d->socket);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress_cb);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, d);
        if (json_body) {
                headers = curl_slist_append(headers, "Content-Type: application/json");
                curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, json_body);
        } else if (strcmp(method, "POST") == 0) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        }
        buf_reset(body);
        CURLcode rc = curl_easy_perform(c);
        curl_slist_free_all(headers);
        if (rc != CURLE_OK) {
                if (rc == CURLE_ABORTED_BY_CALLBACK)
                        return error_set(ECANCELED, "interrupted while talking to Docker");
                if (rc == CURLE_OPERATION_TIMEDOUT)
                        return error_set(ETIMEDOUT, "Docker did not answer %s %s within %lds", method, path, timeout);
                return error_set(rc == CURLE_COULDNT_CONNECT ? ECONNREFUSED : EIO,
                                 "cannot reach the Docker daemon at %s: %s (is dockerd running? set DOCKER_HOST=unix:///path/to/docker.sock)",
                                 d->socket, *errbuf ? errbuf : curl_easy_strerror(rc));
        }
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, ret_status);
        buf_putc(body, 0);
        body->len--;
        return 0;
}

/* The daemon's error message from a JSON error body, or the body. */
static const char *api_message(const struct buf *body, char *out, size_t size)
{
        json_object *o = json_tokener_parse(body->data ? (const char *)body->data : "");
        json_object *m;
        if (o && json_object_object_get_ex(o, "message", &m))
                snprintf(out, size, "%s", json_object_get_string(m));
        else
                snprintf(out, size, "%s", body->data ? (const char *)body->data : "");
        json_object_put(o);
        size_t n = strlen(out);
        while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
                out[--n] = 0;
        return out;
}

/* GET/POST expecting a JSON answer with a 2xx status. */
static int request_json(struct docker *d, const char *method, const char *path, const char *json_body, long timeout,
                        json_object **ret)
{
        struct buf body = { 0 };
        long status = 0;
        int k = request(d, method, path, json_body, timeout, &status, &body);
        if (k < 0) {
                buf_free(&body);
                return k;
        }
        if (status == 404) {
                char m[512];
                k = error_set(BERTH_ENOTFOUND, "%s", api_message(&body, m, sizeof m));
                buf_free(&body);
                return k;
        }
        if (status < 200 || status >= 300) {
                char m[512];
                k = error_set(EIO, "Docker refused %s %s (HTTP %ld): %s", method, path, status,
                              api_message(&body, m, sizeof m));
                buf_free(&body);
                return k;
        }
        json_object *o = json_tokener_parse(body.data ? (const char *)body.data : "");
        buf_free(&body);
        if (!o)
                return error_set(EIO, "Docker answered %s %s with something that is not JSON", method, path);
        *ret = o;
        return 0;
}

int docker_open(uint64_t wait, struct docker **ret)
{
        static bool curl_ready;
        if (!curl_ready) {
                curl_global_init(CURL_GLOBAL_DEFAULT);
                curl_ready = true;
        }
        const char *host = getenv("DOCKER_HOST");
        const char *path = "/var/run/docker.sock";
        if (host && *host) {
                if (strncmp(host, "unix://", 7) != 0)
                        return error_set(ENOTSUP, "DOCKER_HOST=%s: only unix:// sockets are supported", host);
                path = host + 7;
        }
        struct docker *d = xcalloc(1, sizeof *d);
        d->socket = xstrdup(path);
        d->interruptible = true;
        d->curl = curl_easy_init();
        if (!d->curl)
                abort();

        /* The daemon may still be starting (a timer at boot): ping with
         * backoff before giving up. */
        int64_t deadline = mono_ns() + (int64_t)wait * 1000000000;
        long delay_ms = 250;
        for (;;) {
                struct buf body = { 0 };
                long status = 0;
                int k = request(d, "GET", "/_ping", NULL, 10, &status, &body);
                buf_free(&body);
                if (k == 0 && status == 200)
                        break;
                if (k == 0)
                        k = error_set(EIO, "the Docker daemon at %s answered /_ping with HTTP %ld", path, status);
                if (k == -ECANCELED || mono_ns() >= deadline) {
                        docker_free(d);
                        return k;
                }
                log_info("Docker is not reachable yet; retrying in %ldms", delay_ms);
                struct timespec ts = { delay_ms / 1000, (delay_ms % 1000) * 1000000 };
                nanosleep(&ts, NULL);
                delay_ms = MIN(delay_ms * 2, 4000);
        }
        *ret = d;
        return 0;
}

void docker_free(struct docker *d)
{
        if (!d)
                return;
        curl_easy_cleanup(d->curl);
        free(d->socket);
        free(d);
}

static char *jstr(json_object *o, const char *key)
{
        json_object *v;
        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return xstrdup(json_object_get_string(v));
}

static json_object *jobj(json_object *o, const char *key)
{
        json_object *v;
        if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_object))
                return json_object_get(v);
        return json_object_new_object();
}

const char *docker_label(json_object *labels, const char *key)
{
        json_object *v;
        if (!labels || !json_object_object_get_ex(labels, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

void docker_container_clear(struct docker_container *c)
{
        free(c->id);
        free(c->name);
        free(c->state);
        free(c->image);
        json_object_put(c->labels);
        for (size_t i = 0; i < c->nmounts; i++) {
                free(c->mounts[i].type);
                free(c->mounts[i].name);
                free(c->mounts[i].source);
                free(c->mounts[i].destination);
        }
        free(c->mounts);
        *c = (struct docker_container){ 0 };
}

void docker_containers_free(struct docker_container *list, size_t n)
{
        for (size_t i = 0; i < n; i++)
                docker_container_clear(&list[i]);
        free(list);
}

void docker_volume_clear(struct docker_volume *v)
{
        free(v->name);
        free(v->driver);
        free(v->mountpoint);
        free(v->scope);
        free(v->created);
        json_object_put(v->labels);
        json_object_put(v->options);
        *v = (struct docker_volume){ 0 };
}

void docker_volumes_free(struct docker_volume *list, size_t n)
{
        for (size_t i = 0; i < n; i++)
                docker_volume_clear(&list[i]);
        free(list);
}

static void parse_mounts(json_object *arr, struct docker_container *c)
{
        if (!arr || !json_object_is_type(arr, json_type_array))
                return;
        size_t n = json_object_array_length(arr);
        c->mounts = xcalloc(n ? n : 1, sizeof *c->mounts);
        for (size_t i = 0; i < n; i++) {
                json_object *m = json_object_array_get_idx(arr, i), *rw;
                struct docker_mount *dm = &c->mounts[c->nmounts++];
                dm->type = jstr(m, "Type");
                dm->name = jstr(m, "Name");
                dm->source = jstr(m, "Source");
                dm->destination = jstr(m, "Destination");
                dm->rw = json_object_object_get_ex(m, "RW", &rw) && json_object_get_boolean(rw);
        }
}

/* One element of GET /containers/json. */
static void container_from_list(json_object *o, struct docker_container *c)
{
        json_object *names, *mounts;
        c->id = jstr(o, "Id");
        if (json_object_object_get_ex(o, "Names", &names) && json_object_is_type(names, json_type_array) &&
            json_object_array_length(names) > 0) {
                const char *n = json_object_get_string(json_object_array_get_idx(names, 0));
                c->name = xstrdup(n && n[0] == '/' ? n + 1 : n ? n : "");
        } else
                c->name = xstrdup("");
        c->state = jstr(o, "State");
        c->image = jstr(o, "Image");
        c->labels = jobj(o, "Labels");
        if (json_object_object_get_ex(o, "Mounts", &mounts))
                parse_mounts(mounts, c);
}

int docker_containers(struct docker *d, struct docker_container **ret, size_t *ret_n)
{
        json_object *arr;
        int k = request_json(d, "GET", "/containers/json?all=1", NULL, 30, &arr);
        if (k < 0)
                return k;
        size_t n = json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
        struct docker_container *list = xcalloc(n ? n : 1, sizeof *list);
        for (size_t i = 0; i < n; i++)
                container_from_list(json_object_array_get_idx(arr, i), &list[i]);
        json_object_put(arr);
        *ret = list;
        *ret_n = n;
        return 0;
}

/* The answer to GET /containers/{id}/json (tests/fuzz/fuzz-docker.c too). */
static void container_from_inspect(json_object *o, struct docker_container *ret)
{
        json_object *state, *config, *mounts;
        struct docker_container c = { 0 };
        c.id = jstr(o, "Id");
        char *name = jstr(o, "Name");
        c.name = xstrdup(name && name[0] == '/' ? name + 1 : name ? name : "");
        free(name);
        if (json_object_object_get_ex(o, "State", &state))
                c.state = jstr(state, "Status");
        if (json_object_object_get_ex(o, "Config", &config)) {
                c.image = jstr(config, "Image");
                c.labels = jobj(config, "Labels");
        } else
                c.labels = json_object_new_object();
        if (json_object_object_get_ex(o, "Mounts", &mounts))
                parse_mounts(mounts, &c);
        /* --tmpfs mounts are only in HostConfig. */
        json_object *hc, *tmpfs;
        if (json_object_object_get_ex(o, "HostConfig", &hc) && json_object_object_get_ex(hc, "Tmpfs", &tmpfs) &&
            json_object_is_type(tmpfs, json_type_object)) {
                json_object_object_foreach(tmpfs, dest, val) {
                        (void)val;
                        c.mounts = xrealloc(c.mounts, (c.nmounts + 1) * sizeof *c.mounts);
                        c.mounts[c.nmounts++] = (struct docker_mount){ .type = xstrdup("tmpfs"), .destination = xstrdup(dest),
                                                                       .rw = true };
                }
        }
        *ret = c;
}

/* GET PREFIX<name, escaped>SUFFIX as JSON: what request_json() returns. */
static int get_named(struct docker *d, const char *prefix, const char *name, const char *suffix, json_object **ret)
{
        char path[512];
        _cleanup_curl_ char *esc = curl_easy_escape(d->curl, name, 0);
        snprintf(path, sizeof path, "%s%s%s", prefix, esc, suffix);
        return request_json(d, "GET", path, NULL, 30, ret);
}

int docker_container_inspect(struct docker *d, const char *id, struct docker_container *ret)
{
        json_object *o;
        int k = get_named(d, "/containers/", id, "/json", &o);
        if (k < 0)
                return k == -BERTH_ENOTFOUND ? error_set(BERTH_ENOTFOUND, "no container '%s'", id) : k;
        container_from_inspect(o, ret);
        json_object_put(o);
        return 0;
}

static void volume_from_json(json_object *o, struct docker_volume *v)
{
        v->name = jstr(o, "Name");
        v->driver = jstr(o, "Driver");
        v->mountpoint = jstr(o, "Mountpoint");
        v->scope = jstr(o, "Scope");
        v->created = jstr(o, "CreatedAt");
        v->labels = jobj(o, "Labels");
        v->options = jobj(o, "Options");
}

int docker_volumes(struct docker *d, struct docker_volume **ret, size_t *ret_n)
{
        json_object *o, *arr;
        int k = request_json(d, "GET", "/volumes", NULL, 30, &o);
        if (k < 0)
                return k;
        size_t n = json_object_object_get_ex(o, "Volumes", &arr) && json_object_is_type(arr, json_type_array)
                           ? json_object_array_length(arr)
                           : 0;
        struct docker_volume *list = xcalloc(n ? n : 1, sizeof *list);
        for (size_t i = 0; i < n; i++)
                volume_from_json(json_object_array_get_idx(arr, i), &list[i]);
        json_object_put(o);
        *ret = list;
        *ret_n = n;
        return 0;
}

int docker_volume_inspect(struct docker *d, const char *name, struct docker_volume *ret)
{
        json_object *o;
        int k = get_named(d, "/volumes/", name, "", &o);
        if (k < 0)
                return k == -BERTH_ENOTFOUND
                               ? error_set(BERTH_ENOTFOUND, "no Docker volume named '%s' ('berth volumes' lists them)", name)
                               : k;
        struct docker_volume v = { 0 };
        volume_from_json(o, &v);
        json_object_put(o);
        *ret = v;
        return 0;
}

int docker_volume_create(struct docker *d, const char *name, const char *driver, json_object *options,
                         json_object *labels)
{
        json_object *body = json_object_new_object(), *o;
        json_object_object_add(body, "Name", json_object_new_string(name));
        json_object_object_add(body, "Driver", json_object_new_string(driver && *driver ? driver : "local"));
        json_object_object_add(body, "DriverOpts", options ? json_object_get(options) : json_object_new_object());
        json_object_object_add(body, "Labels", labels ? json_object_get(labels) : json_object_new_object());
        int k = request_json(d, "POST", "/volumes/create", json_object_to_json_string(body), 60, &o);
        json_object_put(body);
        if (k == 0)
                json_object_put(o);
        return k;
}

int docker_container_action(struct docker *d, const char *id, const char *action, int stop_timeout)
{
        char path[512];
        struct buf body = { 0 };
        long status = 0;
        _cleanup_curl_ char *esc = curl_easy_escape(d->curl, id, 0);
        bool stop = strcmp(action, "stop") == 0;
        if (stop && stop_timeout >= 0)
                snprintf(path, sizeof path, "/containers/%s/stop?t=%d", esc, stop_timeout);
        else
                snprintf(path, sizeof path, "/containers/%s/%s", esc, action);
        /* A stop takes the container's timeout (up to minutes) plus a kill. */
        int k = request(d, "POST", path, NULL, stop ? (stop_timeout >= 0 ? stop_timeout : 600) + 30 : 60, &status,
                        &body);
        if (k == 0 && status != 204 && status != 304) {
                char m[512];
                api_message(&body, m, sizeof m);
                /* "is already paused" / "is not paused" (409, or 500 from
                 * some daemon versions): the state we want. */
                if ((status == 409 || status == 500) && (strstr(m, "already paused") || strstr(m, "is not paused")))
                        k = 0;
                else if (status == 404)
                        k = error_set(BERTH_ENOTFOUND, "no container '%s': %s", id, m);
                else
                        k = error_set(EIO, "cannot %s container '%s' (HTTP %ld): %s", action, id, status, m);
        }
        buf_free(&body);
        return k;
}

/* Without a TTY an exec's answer is a multiplexed stream: 8-byte frame
 * headers (stream, 0, 0, 0, big-endian length) and payloads.  The
 * payloads, in order, into output. */
static void exec_demux(const struct buf *raw, struct buf *output)
{
        buf_reset(output);
        for (size_t pos = 0; pos + 8 <= raw->len;) {
                uint32_t n = (uint32_t)raw->data[pos + 4] << 24 | (uint32_t)raw->data[pos + 5] << 16 |
                             (uint32_t)raw->data[pos + 6] << 8 | raw->data[pos + 7];
                if (n > raw->len - pos - 8)
                        n = (uint32_t)(raw->len - pos - 8);
                buf_append(output, raw->data + pos + 8, n);
                pos += 8 + n;
        }
}

int docker_exec(struct docker *d, const char *id, const char *cmd, int timeout, int *ret_exit, struct buf *output)
{
        char path[512];
        json_object *body = json_object_new_object(), *argv = json_object_new_array(), *o, *v;
        _cleanup_curl_ char *esc = curl_easy_escape(d->curl, id, 0);

        json_object_array_add(argv, json_object_new_string("sh"));
        json_object_array_add(argv, json_object_new_string("-c"));
        json_object_array_add(argv, json_object_new_string(cmd));
        json_object_object_add(body, "Cmd", argv);
        json_object_object_add(body, "AttachStdout", json_object_new_boolean(1));
        json_object_object_add(body, "AttachStderr", json_object_new_boolean(1));
        snprintf(path, sizeof path, "/containers/%s/exec", esc);
        int k = request_json(d, "POST", path, json_object_to_json_string(body), 30, &o);
        json_object_put(body);
        if (k < 0)
                return k;
        _cleanup_free_ char *exec_id = jstr(o, "Id");
        json_object_put(o);
        if (!exec_id)
                return error_set(EIO, "Docker did not return an exec id");

        /* Without a TTY the answer is multiplexed: exec_demux(). */
        struct buf raw = { 0 };
        long status = 0;
        snprintf(path, sizeof path, "/exec/%s/start", exec_id);
        k = request(d, "POST", path, "{\"Detach\":false,\"Tty\":false}", timeout, &status, &raw);
        if (k == -ETIMEDOUT)
                k = error_set(ETIMEDOUT, "the command did not finish within %ds", timeout);
        if (k == 0 && (status < 200 || status >= 300)) {
                char m[512];
                k = error_set(EIO, "cannot run the command (HTTP %ld): %s", status, api_message(&raw, m, sizeof m));
        }
        if (k == 0 && output)
                exec_demux(&raw, output);
        buf_free(&raw);
        if (k < 0)
                return k;

        snprintf(path, sizeof path, "/exec/%s/json", exec_id);
        k = request_json(d, "GET", path, NULL, 30, &o);
        if (k < 0)
                return k;
        *ret_exit = json_object_object_get_ex(o, "ExitCode", &v) ? json_object_get_int(v) : -1;
        json_object_put(o);
        return 0;
}

/* The answer to GET /events: a stream of JSON objects, one after the
 * other; how many are changes to volumes or containers. */
static unsigned count_changes(const char *p, size_t left)
{
        static const char *const actions[] = { "create", "destroy", "start", "rename", "update", "prune" };
        /* a stream of JSON objects, one after the other */
        unsigned changes = 0;
        json_tokener *tok = json_tokener_new();
        while (left) {
                while (left && (*p == '\n' || *p == '\r' || *p == ' ')) {
                        p++;
                        left--;
                }
                if (!left)
                        break;
                json_object *o = json_tokener_parse_ex(tok, p, (int)MIN(left, (size_t)INT32_MAX));
                if (!o)
                        break;
                size_t used = json_tokener_get_parse_end(tok);
                json_tokener_reset(tok);
                _cleanup_free_ char *action = jstr(o, "Action");
                if (action)
                        for (size_t i = 0; i < ELEMENTSOF(actions); i++)
                                if (strcmp(action, actions[i]) == 0)
                                        changes++;
                json_object_put(o);
                if (!used)
                        break;
                p += used;
                left -= MIN(used, left);
        }
        json_tokener_free(tok);
        return changes;
}

int docker_events(struct docker *d, int64_t since, int64_t until, unsigned *ret_changes)
{
        _cleanup_curl_ char *filters = curl_easy_escape(d->curl, "{\"type\":[\"volume\",\"container\"]}", 0);
        char path[512];
        struct buf body = { 0 };
        long status = 0;
        snprintf(path, sizeof path, "/events?since=%lld&until=%lld&filters=%s", (long long)since, (long long)until,
                 filters);
        int k = request(d, "GET", path, NULL, 30, &status, &body);
        if (k == 0 && (status < 200 || status >= 300)) {
                char m[512];
                k = error_set(EIO, "Docker answered GET /events with HTTP %ld: %s", status,
                              api_message(&body, m, sizeof m));
        }
        if (k < 0) {
                buf_free(&body);
                return k;
        }
        *ret_changes = count_changes(body.data ? (const char *)body.data : "", body.len);
        buf_free(&body);
        return 0;
}
