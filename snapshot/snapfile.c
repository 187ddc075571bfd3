/* snapfile.c — snapshots/<id>: a snapshot's root record, as JSON.
 *
 * Small and readable on purpose: with the packs, these files are all a
 * catalog rebuild needs, and an operator can read one with `cat`.  The id
 * is the SHA-256 of the file's bytes.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define SNAPFILE_VERSION 1
#define SNAPFILE_MAX (64u << 20)

void snapfile_clear(struct snapfile *f)
{
        catalog_snapshot_clear(&f->info);
        free(f->manifest);
        *f = (struct snapfile){ 0 };
}

static void add_str(json_object *o, const char *k, const char *v)
{
        json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

static void add_int(json_object *o, const char *k, int64_t v) { json_object_object_add(o, k, json_object_new_int64(v)); }

int snapfile_write(struct repo *r, struct snapfile *f, bool *ret_created)
{
        const struct catalog_snapshot *s = &f->info;
        json_object *o = json_object_new_object();
        json_object *stats = json_object_new_object();
        json_object *man = json_object_new_array();
        char hex[2 * HASH_LEN + 1];

        add_int(o, "version", SNAPFILE_VERSION);
        add_str(o, "name", s->name);
        add_str(o, "host", s->host);
        add_str(o, "source", s->source);
        add_int(o, "started", s->started);
        add_int(o, "finished", s->finished);
        add_str(o, "status", s->status);
        add_str(o, "parent", s->parent);
        add_int(stats, "files", (int64_t)s->files);
        add_int(stats, "dirs", (int64_t)s->dirs);
        add_int(stats, "bytes", (int64_t)s->bytes);
        add_int(stats, "files_read", (int64_t)s->files_read);
        add_int(stats, "files_reused", (int64_t)s->files_reused);
        add_int(stats, "bytes_read", (int64_t)s->bytes_read);
        add_int(stats, "bytes_added", (int64_t)s->bytes_added);
        add_int(stats, "warnings", (int64_t)s->warnings);
        json_object_object_add(o, "stats", stats);
        add_int(o, "quiesce_ns", f->quiesce_ns);
        if (s->meta) {
                json_object *m = json_tokener_parse(s->meta);
                json_object_object_add(o, "meta", m);
        }
        for (size_t i = 0; i < f->nmanifest; i++) {
                hex_encode(f->manifest[i], HASH_LEN, hex);
                json_object_array_add(man, json_object_new_string(hex));
        }
        json_object_object_add(o, "manifest", man);

        const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        size_t len = strlen(text);
        uint8_t id[HASH_LEN];
        chunk_id(r->keys, text, len, id);
        hex_encode(id, HASH_LEN, f->info.id);

        char name[2 * HASH_LEN + 16];
        uint64_t size;
        snprintf(name, sizeof name, "snapshots/%s", f->info.id);
        /* Identical bytes are already there (the id is their hash): nothing
         * to write, and nothing this run may remove on failure. */
        if (backend_stat(r->be, name, &size) == 0) {
                json_object_put(o);
                if (ret_created)
                        *ret_created = false;
                return 0;
        }
        /* Announce the id before the file exists: recovery indexes only
         * what this repository's writers announced. */
        int k = catalog_snapshot_intend(r->catalog, f->info.id);
        if (k < 0) {
                json_object_put(o);
                return k;
        }
        /* Created only if absent; durable when it returns.  The one place
         * a snapshot file is sealed. */
        struct buf sealed = { 0 };
        if (r->keys) {
                k = crypto_seal(r->keys, CRYPTO_KIND_SNAPSHOT, text, len, &sealed);
                if (k < 0) {
                        json_object_put(o);
                        catalog_snapshot_intent_drop(r->catalog, f->info.id);
                        return k;
                }
                text = (const char *)sealed.data;
                len = sealed.len;
        }
        k = backend_put(r->be, name, text, len);
        buf_free(&sealed);
        json_object_put(o);
        if (k < 0) {
                catalog_snapshot_intent_drop(r->catalog, f->info.id);
                return error_set(-k, "cannot write %s: %s", name, berth_strerror(k));
        }
        if (ret_created)
                *ret_created = k > 0;
        return 0;
}

int snapfile_commit(struct repo *r, struct store *s, struct snapfile *f)
{
        bool created = false;
        int k = snapfile_write(r, f, &created);
        if (k < 0)
                return k;
        k = index_snapshot(r, s, f);
        if (k < 0 && created) {
                /* The catalog refused it: a file nobody will index would be
                 * re-read by every writer and reported by check forever. */
                _cleanup_free_ char *msg = xstrdup(error_message() ? error_message() : berth_strerror(k));
                char name[2 * HASH_LEN + 16];
                snprintf(name, sizeof name, "snapshots/%s", f->info.id);
                backend_delete(r->be, name);
                catalog_snapshot_intent_drop(r->catalog, f->info.id);
                k = error_set(-k, "%s", msg);
        }
        return k;
}

static const char *get_str(json_object *o, const char *k)
{
        json_object *v;
        if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static int64_t get_int(json_object *o, const char *k)
{
        json_object *v;
        if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_int))
                return 0;
        return json_object_get_int64(v);
}

int snapfile_parse(const uint8_t *p, size_t n, struct snapfile *ret)
{
        struct snapfile f = { 0 };
        json_tokener *tok = json_tokener_new();
        json_object *o = json_tokener_parse_ex(tok, (const char *)p, (int)n);
        bool complete = json_tokener_get_error(tok) == json_tokener_success && json_tokener_get_parse_end(tok) == n;
        json_tokener_free(tok);
        if (!o || !complete || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return -BERTH_ECORRUPT;
        }
        int r = -BERTH_ECORRUPT;
        const char *name = get_str(o, "name");
        json_object *stats, *man, *meta;
        if (get_int(o, "version") != SNAPFILE_VERSION || !name || !*name ||
            !json_object_object_get_ex(o, "manifest", &man) || !json_object_is_type(man, json_type_array))
                goto out;
        f.info.name = xstrdup(name);
        f.info.host = xstrdup(get_str(o, "host") ? get_str(o, "host") : "");
        f.info.source = xstrdup(get_str(o, "source") ? get_str(o, "source") : "");
        f.info.status = xstrdup(get_str(o, "status") ? get_str(o, "status") : "complete");
        if (get_str(o, "parent"))
                f.info.parent = xstrdup(get_str(o, "parent"));
        f.info.started = get_int(o, "started");
        f.info.finished = get_int(o, "finished");
        f.quiesce_ns = get_int(o, "quiesce_ns");
        if (json_object_object_get_ex(o, "stats", &stats) && json_object_is_type(stats, json_type_object)) {
                f.info.files = (uint64_t)get_int(stats, "files");
                f.info.dirs = (uint64_t)get_int(stats, "dirs");
                f.info.bytes = (uint64_t)get_int(stats, "bytes");
                f.info.files_read = (uint64_t)get_int(stats, "files_read");
                f.info.files_reused = (uint64_t)get_int(stats, "files_reused");
                f.info.bytes_read = (uint64_t)get_int(stats, "bytes_read");
                f.info.bytes_added = (uint64_t)get_int(stats, "bytes_added");
                f.info.warnings = (uint64_t)get_int(stats, "warnings");
        }
        if (json_object_object_get_ex(o, "meta", &meta) && json_object_is_type(meta, json_type_object))
                f.info.meta = xstrdup(json_object_to_json_string_ext(meta, JSON_C_TO_STRING_PLAIN));
        size_t nm = json_object_array_length(man);
        if (nm == 0)
                goto out;
        f.manifest = xcalloc(nm, HASH_LEN);
        f.nmanifest = nm;
        for (size_t i = 0; i < nm; i++) {
                json_object *h = json_object_array_get_idx(man, i);
                if (!json_object_is_type(h, json_type_string) ||
                    hex_decode(json_object_get_string(h), f.manifest[i], HASH_LEN) < 0)
                        goto out;
        }
        *ret = f;
        f = (struct snapfile){ 0 };
        r = 0;
out:
        snapfile_clear(&f);
        json_object_put(o);
        return r;
}

const char *snapfile_name_id(const char *name)
{
        if (strncmp(name, "snapshots/", 10) != 0 || strlen(name + 10) != 2 * HASH_LEN || !is_hex(name + 10))
                return NULL;
        return name + 10;
}

int snapfile_read(struct repo *r, const char *id, struct snapfile *ret)
{
        char name[2 * HASH_LEN + 16];
        struct buf b = { 0 };
        uint8_t want[HASH_LEN], got[HASH_LEN];

        if (strlen(id) != 2 * HASH_LEN || hex_decode(id, want, HASH_LEN) < 0)
                return error_set(EINVAL, "'%s' is not a snapshot id", id);
        snprintf(name, sizeof name, "snapshots/%s", id);
        int k = backend_get(r->be, name, SNAPFILE_MAX, &b);
        if (k == -ENOENT)
                return error_set(BERTH_ENOTFOUND, "snapshot file %s is missing", name);
        if (k < 0)
                return error_set(k, "cannot read %s: %s", name, berth_strerror(k));
        if (r->keys) {
                /* The one place a snapshot file is opened. */
                struct buf plain = { 0 };
                if (crypto_open(r->keys, CRYPTO_KIND_SNAPSHOT, b.data, b.len, &plain) < 0) {
                        buf_free(&b);
                        buf_free(&plain);
                        return error_set(BERTH_ECORRUPT, "snapshot file %s is damaged (it does not decrypt)", name);
                }
                buf_free(&b);
                b = plain;
        }
        chunk_id(r->keys, b.data, b.len, got);
        if (memcmp(want, got, HASH_LEN) != 0) {
                buf_free(&b);
                return error_set(BERTH_ECORRUPT, "snapshot file %s is damaged (its bytes do not match its id)", name);
        }
        k = snapfile_parse(b.data, b.len, ret);
        buf_free(&b);
        if (k < 0)
                return error_set(k, "snapshot file %s is damaged (not a snapshot record)", name);
        snprintf(ret->info.id, sizeof ret->info.id, "%s", id);
        return 0;
}
