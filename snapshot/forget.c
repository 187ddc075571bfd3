/* forget.c — removing snapshots, and protecting them from removal.
 *
 * Forgetting a snapshot removes its snapshot file and its catalog rows;
 * the packs it used stay until prune finds them unused.  Protection lives
 * in the repository as an object keep/<id> (so it survives `catalog
 * rebuild` and travels with a remote repository) and is mirrored in the
 * catalog's snapshot_keep table, which policies read.  Which snapshots a
 * policy keeps is retention.c's; agent/cmd-forget.c puts the two together.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define KEEP_PREFIX "keep/"
#define KEEP_MAX 4096  /* a keep/ object is a few dozen bytes */

static bool id_valid(const char *id)
{
        if (strlen(id) != 2 * HASH_LEN)
                return false;
        for (const char *p = id; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

/* 0 when id is a recorded snapshot of r, which is open for writing. */
static int writable_snapshot(struct repo *r, const char *id)
{
        if (!r->writable || !r->catalog)
                return error_set(EROFS, "the repository is not open for writing");
        if (!id_valid(id))
                return error_set(EINVAL, "'%s' is not a snapshot id", id);
        int k = catalog_snapshot_known(r->catalog, id);
        if (k <= 0)
                return k < 0 ? k : error_set(BERTH_ENOTFOUND, "no snapshot %.12s", id);
        return 0;
}

/* Deletes an object that may already be gone. */
static int delete_object(struct repo *r, const char *name)
{
        int k = backend_delete(r->be, name);
        if (k == -ENOENT)
                return 0;
        if (k < 0 && !error_message())
                error_set(k, "cannot delete %s in %s: %s", name, r->path, berth_strerror(k));
        return k;
}

/* Order, and what a crash between the steps leaves:
 *
 *   1. one catalog transaction drops the snapshot's rows and records the
 *      id in snapshot_forgets;
 *   2. the objects snapshots/<id> and keep/<id> are deleted;
 *   3. the snapshot_forgets row is dropped.
 *
 * Killed after 1, the repository holds a snapshot file the catalog does
 * not list: `check` counts it as "not indexed" (advice, not damage), no
 * query shows it, and the next writer's recovery (forget_finish(), run at
 * every REPO_WRITE open and by `catalog rebuild`, which carries the table
 * over) deletes it and never indexes it again.  The other order would
 * leave a catalog row whose file is gone, which `check` rightly reports
 * as a damaged snapshot. */
int snapshot_forget(struct repo *r, const char *id)
{
        int k = writable_snapshot(r, id);
        if (k < 0)
                return k;
        _cleanup_free_ char *keep = xasprintf(KEEP_PREFIX "%s", id);
        uint64_t size;
        k = catalog_keep_get(r->catalog, id);
        if (k == 0 && backend_stat(r->be, keep, &size) == 0)
                k = 1; /* protected in the repository, not yet in this catalog */
        if (k < 0)
                return k;
        if (k > 0)
                return error_set(EPERM,
                                 "snapshot %.12s is protected ('berth tag --keep'): lift that with 'berth tag %.12s "
                                 "--no-keep' first",
                                 id, id);
        /* Deleting the (absent) keep/ object first proves that this
         * backend deletes at all (a remote one may refuse) before anything
         * is changed. */
        k = delete_object(r, keep);
        if (k < 0)
                return k;

        k = catalog_snapshot_remove(r->catalog, id);
        if (k <= 0)
                return k < 0 ? k : error_set(BERTH_ENOTFOUND, "no snapshot %.12s", id);
        _cleanup_free_ char *snap = xasprintf("snapshots/%s", id);
        k = delete_object(r, snap);
        if (k < 0) {
                _cleanup_free_ char *why = xstrdup(error_message() ? error_message() : berth_strerror(k));
                return error_set(k,
                                 "snapshot %.12s is gone from the catalog, but its file could not be deleted (%s); "
                                 "the next command that writes to the repository finishes it",
                                 id, why);
        }
        return catalog_snapshot_forget_done(r->catalog, id);
}

int forget_finish(struct repo *r)
{
        char **ids = NULL;
        size_t n = 0;
        int k = catalog_snapshot_forgets(r->catalog, &ids, &n);
        if (k < 0)
                return k;
        for (size_t i = 0; i < n && k >= 0; i++) {
                /* Recorded again since (copied back in): it is not to go. */
                int known = id_valid(ids[i]) ? catalog_snapshot_known(r->catalog, ids[i]) : 1;
                if (known < 0) {
                        k = known;
                        break;
                }
                if (!known) {
                        _cleanup_free_ char *snap = xasprintf("snapshots/%s", ids[i]);
                        _cleanup_free_ char *keep = xasprintf(KEEP_PREFIX "%s", ids[i]);
                        if (delete_object(r, snap) < 0 || delete_object(r, keep) < 0) {
                                /* Left for a writer that may delete (a remote
                                 * repository opened for writing only). */
                                log_debug("cannot finish forgetting snapshot %.12s: %s", ids[i], error_message());
                                error_clear();
                                continue;
                        }
                        log_debug("finished forgetting snapshot %.12s", ids[i]);
                }
                k = catalog_snapshot_forget_done(r->catalog, ids[i]);
        }
        catalog_id_list_free(ids, n);
        return k;
}

/* ---- protection ------------------------------------------------------------------ */

int snapshot_is_protected(struct repo *r, const char *id)
{
        return catalog_keep_get(r->catalog, id);
}

int snapshot_set_protected(struct repo *r, const char *id, bool protect)
{
        int k = writable_snapshot(r, id);
        if (k < 0)
                return k;
        _cleanup_free_ char *name = xasprintf(KEEP_PREFIX "%s", id);
        int changed = 0;
        if (protect) {
                /* The object first: a crash before the catalog row leaves
                 * it protected, as the next writer's recovery mirrors it. */
                json_object *o = json_object_new_object();
                json_object_object_add(o, "snapshot", json_object_new_string(id));
                json_object_object_add(o, "time", json_object_new_int64(now_ns()));
                const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
                size_t len = strlen(text);
                struct buf sealed = { 0 };
                /* The one place a keep/ object is sealed. */
                k = r->keys ? crypto_seal(r->keys, CRYPTO_KIND_KEEP, text, len, &sealed) : 0;
                if (k == 0 && r->keys)
                        text = (const char *)sealed.data, len = sealed.len;
                if (k == 0)
                        k = backend_put(r->be, name, text, len);
                buf_free(&sealed);
                json_object_put(o);
                if (k == -EEXIST)
                        k = 0; /* there already, written at another time */
                if (k < 0)
                        return error_message() ? k : error_set(k, "cannot write %s: %s", name, berth_strerror(k));
                changed = k;
                k = catalog_keep_set(r->catalog, id, true);
        } else {
                k = delete_object(r, name);
                if (k < 0)
                        return k;
                k = catalog_keep_set(r->catalog, id, false);
        }
        if (k < 0)
                return k;
        return changed || k > 0;
}

struct keep_scan {
        struct repo *r;
        void (*warn)(void *ud, const char *object, const char *msg);
        void *ud;
        char **ids;
        size_t n;
};

static void keep_warn(struct keep_scan *s, const char *object, const char *msg)
{
        if (s->warn)
                s->warn(s->ud, object, msg);
        else
                log_debug("%s: %s", object, msg);
}

/* backend_list() callback for keep/: a repository's keep/ objects are
 * data, not instructions.  Only the name counts, and only when it is a
 * recorded snapshot's id; the content is looked at (when someone listens
 * to warnings) only to say it is not what `tag` writes. */
static int keep_object(void *ud, const char *object, uint64_t size)
{
        struct keep_scan *s = ud;
        const char *id = object + strlen(KEEP_PREFIX);
        if (!id_valid(id)) {
                keep_warn(s, object, "not named after a snapshot id: ignored");
                return 0;
        }
        int k = catalog_snapshot_known(s->r->catalog, id);
        if (k < 0)
                return k;
        if (k == 0) {
                if (catalog_snapshot_forgetting(s->r->catalog, id) != 1)
                        keep_warn(s, object, "no such snapshot in the repository: ignored");
                return 0;
        }
        if (s->warn) {
                struct buf b = { 0 };
                bool ok = false;
                struct buf plain = { 0 };
                bool got = size <= KEEP_MAX && backend_get(s->r->be, object, KEEP_MAX, &b) == 0;
                /* The one place a keep/ object is opened. */
                if (got && s->r->keys) {
                        got = crypto_open(s->r->keys, CRYPTO_KIND_KEEP, b.data, b.len, &plain) == 0;
                        buf_free(&b);
                        b = plain;
                }
                if (got) {
                        buf_putc(&b, 0);
                        json_object *o = json_tokener_parse((const char *)b.data);
                        json_object *v;
                        ok = o && json_object_is_type(o, json_type_object) &&
                             json_object_object_get_ex(o, "snapshot", &v) && json_object_is_type(v, json_type_string) &&
                             strcmp(json_object_get_string(v), id) == 0;
                        json_object_put(o);
                }
                error_clear();
                buf_free(&b);
                if (!ok)
                        keep_warn(s, object, "its content is not what 'berth tag --keep' writes (content ignored; "
                                             "the name protects the snapshot)");
        }
        s->ids = xrealloc(s->ids, (s->n + 1) * sizeof *s->ids);
        s->ids[s->n++] = xstrdup(id);
        return 0;
}

int snapshot_protected_ids(struct repo *r, void (*warn)(void *ud, const char *object, const char *msg), void *ud,
                           char ***ret, size_t *ret_n)
{
        struct keep_scan s = { .r = r, .warn = warn, .ud = ud };
        int k = backend_list(r->be, KEEP_PREFIX, keep_object, &s);
        if (k < 0) {
                catalog_id_list_free(s.ids, s.n);
                return error_message() ? k : error_set(k, "cannot list %s/keep: %s", r->path, berth_strerror(k));
        }
        *ret = s.ids;
        *ret_n = s.n;
        return 0;
}

static bool in_list(char **ids, size_t n, const char *id)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(ids[i], id) == 0)
                        return true;
        return false;
}

int snapshot_sync_protection(struct repo *r, void (*warn)(void *ud, const char *object, const char *msg), void *ud)
{
        char **want = NULL, **have = NULL;
        size_t nwant = 0, nhave = 0, changes = 0;
        int k = snapshot_protected_ids(r, warn, ud, &want, &nwant);
        if (k == 0)
                k = catalog_keep_list(r->catalog, &have, &nhave);
        for (size_t i = 0; k == 0 && i < nhave; i++)
                changes += !in_list(want, nwant, have[i]);
        for (size_t i = 0; k == 0 && i < nwant; i++)
                changes += !in_list(have, nhave, want[i]);
        /* Every writer's open comes here: no transaction when in step. */
        if (k == 0 && changes) {
                k = catalog_begin(r->catalog);
                for (size_t i = 0; k >= 0 && i < nhave; i++)
                        if (!in_list(want, nwant, have[i]))
                                k = catalog_keep_set(r->catalog, have[i], false);
                for (size_t i = 0; k >= 0 && i < nwant; i++)
                        k = catalog_keep_set(r->catalog, want[i], true);
                if (k >= 0)
                        k = catalog_commit(r->catalog);
                else
                        catalog_rollback(r->catalog);
        }
        catalog_id_list_free(have, nhave);
        catalog_id_list_free(want, nwant);
        return k < 0 ? k : 0;
}
