/* fuzz-docker.c — the Docker Engine API answers berth parses: the first
 * byte picks which (a container list, a container or volume inspect, the
 * volume list, an error body, an exec's multiplexed output, the events
 * stream), the rest is the answer.  agent/docker.c is compiled in, so its
 * static parsers are called as request_json() would; no daemon. */
#include "../../agent/docker.c"

volatile sig_atomic_t interrupted; /* main.c's, for progress_cb() */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        unsigned kind = data[0] % 6;
        /* request() ends every body with a NUL */
        struct buf body = { 0 };
        buf_append(&body, data + 1, size - 1);
        buf_putc(&body, 0);
        const char *text = (const char *)body.data;
        json_object *o = kind <= 2 ? json_tokener_parse(text) : NULL;

        switch (kind) {
        case 0: /* GET /containers/json */
                if (o && json_object_is_type(o, json_type_array)) {
                        size_t n = json_object_array_length(o);
                        struct docker_container *list = xcalloc(n ? n : 1, sizeof *list);
                        for (size_t i = 0; i < n; i++)
                                container_from_list(json_object_array_get_idx(o, i), &list[i]);
                        for (size_t i = 0; i < n; i++)
                                (void)docker_label(list[i].labels, "berth.schedule");
                        docker_containers_free(list, n);
                }
                break;
        case 1: /* GET /containers/{id}/json */
                if (o) {
                        struct docker_container c;
                        container_from_inspect(o, &c);
                        for (size_t i = 0; i < c.nmounts; i++)
                                if (c.mounts[i].destination && !c.mounts[i].type)
                                        (void)strlen(c.mounts[i].destination);
                        docker_container_clear(&c);
                }
                break;
        case 2: /* GET /volumes, GET /volumes/{name} */
                if (o) {
                        json_object *arr;
                        if (json_object_object_get_ex(o, "Volumes", &arr) && json_object_is_type(arr, json_type_array))
                                for (size_t i = 0; i < json_object_array_length(arr); i++) {
                                        struct docker_volume v = { 0 };
                                        volume_from_json(json_object_array_get_idx(arr, i), &v);
                                        docker_volume_clear(&v);
                                }
                        struct docker_volume v = { 0 };
                        volume_from_json(o, &v);
                        docker_volume_clear(&v);
                }
                break;
        case 3: { /* an error body */
                char m[512];
                api_message(&body, m, sizeof m);
                if (strlen(m) >= sizeof m)
                        abort();
                break;
        }
        case 4: { /* POST /exec/{id}/start */
                struct buf out = { 0 };
                body.len--; /* the NUL */
                exec_demux(&body, &out);
                if (out.len > body.len)
                        abort();
                buf_free(&out);
                break;
        }
        case 5: /* GET /events */
                (void)count_changes(text, body.len);
                break;
        }
        json_object_put(o);
        buf_free(&body);
        return 0;
}
